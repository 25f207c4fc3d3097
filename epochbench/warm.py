"""Warm start for training jobs: import torch and fastai once per machine, not once per job.

A training cell on small data trains for seconds, but a fresh Python needs
about 10 s on a slow CPU just to import torch, torchvision and fastai. So the
first training job starts a small fork server that imports them and waits on a
Unix socket; each job then asks it for a fresh process (a `fork` of the warm
server) that runs the cell with the job's environment, working directory and
log file, and reports the exit code back. The job process itself (the Snakemake
script) imports nothing heavy.

Kept deliberately narrow, and never in the way:
- CPU only. The server never touches CUDA (a CUDA context does not survive a
  fork); a config that may use a GPU runs in the job's own process.
- Not under a cluster scheduler (SLURM kills what a job leaves behind, and
  nodes differ): there, jobs run in their own process as before.
- The socket's name carries a digest of the interpreter and of epochbench's
  own source files, so an edited package never runs in an old server.
- If anything goes wrong in reaching the server, the job runs in its own
  process. `EPOCHBENCH_WARM_START=0` turns it off.
- The server exits after `IDLE_SECONDS` without a request.
"""

import contextlib
import fcntl
import hashlib
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

IDLE_SECONDS = 120
START_TIMEOUT = 120
PACKAGE_DIR = Path(__file__).resolve().parent
# Modules the server imports before it forks: the slow part of every training job.
PRELOAD = ["epochbench.train"]


def enabled(device: str) -> bool:
    """Whether a job with this device setting may use the warm server."""
    if os.environ.get("EPOCHBENCH_WARM_START", "1") == "0":
        return False
    if "SLURM_JOB_ID" in os.environ or "PBS_JOBID" in os.environ or "LSB_JOBID" in os.environ:
        return False
    return device in ("cpu", "auto") and hasattr(os, "fork")


def server_key() -> str:
    """A digest of the interpreter and epochbench's sources: a changed package gets a new server."""
    digest = hashlib.sha256(sys.executable.encode())
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(str(os.getuid()).encode())
    return digest.hexdigest()[:16]


def socket_path() -> Path:
    # Unix socket paths are limited to about 100 characters: keep it short and in the temp dir.
    return Path(tempfile.gettempdir()) / f"epochbench-warm-{server_key()}.sock"


def run(target: str, spec: dict, log_path, device: str = "auto") -> int:
    """Run `target` ("module:function") on `spec` with output to `log_path`; return the exit code."""
    Path(log_path).write_text("")  # a rerun's log starts afresh
    if enabled(device):
        try:
            return run_on_server(target, spec, log_path)
        except (OSError, TimeoutError, ValueError) as err:
            with open(log_path, "a") as log:
                log.write(f"warm start unavailable ({type(err).__name__}: {err}); running in this process\n")
    return run_here(target, spec, log_path)


def run_here(target: str, spec: dict, log_path) -> int:
    """Run the job in the current process (the cold path, and every job's path under a cluster scheduler)."""
    from .jobs import log_to

    log_to(log_path, mode="a")
    try:
        call(target, spec)
    except Exception:  # the job failed: its log has the traceback, Snakemake sees the exit code
        traceback.print_exc()
        return 1
    return 0


def call(target: str, spec: dict):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)(spec)


def run_on_server(target: str, spec: dict, log_path) -> int:
    request = dict(target=target, spec=spec, log=str(Path(log_path).resolve()), cwd=os.getcwd(), env=dict(os.environ))
    with connect() as conn:
        conn.sendall(json.dumps(request).encode() + b"\n")
        reply = conn.makefile("r").readline()  # blocks until the cell has finished
    if not reply:
        raise ValueError("the warm process ended without an exit code")
    return int(json.loads(reply)["exit_code"])


def connect() -> socket.socket:
    """A connection to the warm server, starting one if there is none (one starter at a time)."""
    path = socket_path()
    with contextlib.suppress(OSError):
        return _connect(path)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another job may be starting it right now
        with contextlib.suppress(OSError):
            return _connect(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a server that was killed
        # The server imports this very package, wherever the job found it.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_DIR.parent),
                                                                         os.environ.get("PYTHONPATH")])))
        with open(f"{path}.log", "a") as server_log:
            server = subprocess.Popen([sys.executable, "-m", "epochbench.warm", str(path)], env=env,
                                      stdin=subprocess.DEVNULL, stdout=server_log, stderr=server_log,
                                      start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and server.poll() is None:
            with contextlib.suppress(OSError):
                return _connect(path)
            time.sleep(0.1)
        if server.poll() is not None:
            raise ValueError(f"the warm server exited with code {server.returncode}; see {path}.log")
    raise TimeoutError(f"{path}: the warm server did not start within {START_TIMEOUT} s")


def _connect(path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        raise
    return conn


def serve(path, idle_seconds: float = IDLE_SECONDS) -> None:
    """Import the heavy modules, then fork one child per request until idle for `idle_seconds`."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # never create a CUDA context here
    for module in PRELOAD:
        importlib.import_module(module)
    path = Path(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path.with_name(path.name + f".{os.getpid()}")
    server.bind(str(tmp))
    server.listen(64)
    os.replace(tmp, path)  # clients connect only once the server is ready
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    last_request, children = time.monotonic(), set()
    try:
        while children or time.monotonic() - last_request < idle_seconds:
            if selector.select(timeout=1.0):
                conn, _ = server.accept()
                last_request = time.monotonic()
                pid = os.fork()
                if pid == 0:  # the child: runs one job and never returns to this loop
                    server.close()
                    os._exit(run_child(conn))
                children.add(pid)
                conn.close()
            for pid in list(children):  # reap finished children
                if os.waitpid(pid, os.WNOHANG)[0]:
                    children.discard(pid)
                    last_request = time.monotonic()
    finally:
        with contextlib.suppress(FileNotFoundError):
            if path.exists() and os.stat(path).st_ino == os.fstat(server.fileno()).st_ino:
                path.unlink()
        server.close()


def run_child(conn: socket.socket) -> int:
    """In the forked child: take on the job's environment, run it, send the exit code."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    request = json.loads(conn.makefile("r").readline())
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    # The job process waits on this connection: if it is killed (Ctrl-C, Snakemake
    # stopping a failed run), the cell must stop too.
    threading.Thread(target=_exit_when_closed, args=(conn,), daemon=True).start()
    log = open(request["log"], "a", buffering=1)  # noqa: SIM115  (lives as long as the child)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    logging.getLogger("epochbench").handlers.clear()
    code = run_here(request["target"], request["spec"], request["log"])
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(dict(exit_code=code)).encode() + b"\n")
    return code


def _exit_when_closed(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while conn.recv(1):
            pass
    os._exit(1)


def probe(spec: dict) -> None:
    """A job that reports where it ran (process, directory, one variable), or fails: for tests and diagnosis."""
    if spec.get("fail"):
        raise RuntimeError("probe asked to fail")
    time.sleep(spec.get("sleep", 0))
    Path(spec["out"]).write_text(json.dumps(dict(pid=os.getpid(), cwd=os.getcwd(),
                                                 value=os.environ.get(spec.get("variable", ""), None))))
    print("probe done", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
