"""Warm start for training jobs: import torch and fastai once per machine, not once per job.

A training cell on small data trains for seconds, but a fresh Python needs
about 10 s on a slow CPU just to import torch, torchvision and fastai. So the
first training job starts a small fork server that imports them and waits on a
Unix socket; each job then asks it for a fresh process (a `fork` of the warm
server) that runs the cell with the job's environment, working directory, umask
and log file, and reports the exit code back. The job process itself (the Snakemake
script) imports nothing heavy.

Kept deliberately narrow, and never in the way:
- Only where no CUDA device can be used: `device: cpu`, or `auto` on a machine
  without one. The server never touches CUDA (a CUDA context does not survive
  a fork); a job that may use a GPU runs in its own process.
- Not under a cluster scheduler (SLURM kills what a job leaves behind, and
  nodes differ): there, jobs run in their own process as before.
- One user's: the socket sits in a folder only its user can enter
  (`epochbench.userdir`), the server serves only clients of its own uid and
  the client talks only to a server of its own uid (`SO_PEERCRED`, checked on
  both ends), since every request carries the job's environment.
- The socket's name carries a digest of the interpreter, PYTHONPATH and
  epochbench's own source files, so an edited package never runs in an old
  server, nor a job in one that imports from elsewhere.
- What a fork cannot take on from the job is compared instead: a job whose
  group, supplementary groups or resource limits differ from the server's is
  refused, and runs in its own process, as it would have without the server.
- The server runs from the package's folder, not the job's, so that nothing in
  a job's folder (a `selectors.py`, say) is imported into it and every later job.
- Only "no server reachable" (none answers, none starts, none says "started"
  within `STARTED_TIMEOUT`, it refuses the job, or it closes the connection
  before taking it) sends the job to its own process. Once a
  fork has taken the job, its fate is the job's: a cell killed by a signal (the
  OOM killer, a segfault) fails the job with a line naming the signal, and is
  not run a second time. `EPOCHBENCH_WARM_START=0` turns warm start off.
- The server exits after `IDLE_SECONDS` without a request, or on SIGTERM, and
  removes its socket, lock and log files as it goes.
"""

import contextlib
import fcntl
import glob
import hashlib
import importlib
import json
import logging
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from .userdir import remove_if_empty, user_dir

IDLE_SECONDS = 120
START_TIMEOUT = 120
# How long a job waits for a server to take it: a stopped or hung server must not hang every job.
STARTED_TIMEOUT = 30
PACKAGE_DIR = Path(__file__).resolve().parent
# Modules the server imports before it forks: the slow part of every training job.
PRELOAD = ["epochbench.train"]
# What a GPU driver puts on a machine: NVIDIA's device nodes and /proc entries, AMD's
# ROCm (/dev/kfd, which torch also reaches as torch.cuda) and WSL2's GPU (/dev/dxg).
GPU_DEVICE_FILES = ("/dev/nvidia[0-9]*", "/proc/driver/nvidia/gpus/*", "/dev/kfd", "/dev/dxg")


class Unreachable(Exception):
    """No warm server took the job: it may run in the job's own process instead."""


class WarmError(RuntimeError):
    """A warm server took the job (or answered as another user): the job fails, it is not rerun."""


def cuda_device_present() -> bool:
    """Whether a CUDA device may be usable here, decided without importing torch or creating a CUDA context.

    The job process must stay thin (importing torch costs the ~10 s the warm
    start saves), and `torch.cuda.is_available()` can initialise CUDA. The
    driver's device files are what any CUDA process would open; when in doubt
    (a driver but a CPU-only torch, say) the answer is yes, and the job merely
    runs in its own process.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False  # CUDA's own way of hiding every device from this process
    return any(glob.glob(pattern) for pattern in GPU_DEVICE_FILES)


def enabled(device: str) -> bool:
    """Whether a job with this device setting may use the warm server."""
    if os.environ.get("EPOCHBENCH_WARM_START", "1") == "0":
        return False
    if "SLURM_JOB_ID" in os.environ or "PBS_JOBID" in os.environ or "LSB_JOBID" in os.environ:
        return False
    if not hasattr(os, "fork"):
        return False
    return device == "cpu" or (device == "auto" and not cuda_device_present())


def server_key() -> str:
    """A digest of the interpreter, its module search path and epochbench's sources: a changed one gets a new server.

    The server's sys.path is fixed when it starts: a job with another PYTHONPATH must not import from the first's.
    """
    digest = hashlib.sha256(sys.executable.encode() + b"\0" + os.environ.get("PYTHONPATH", "").encode())
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def socket_path() -> Path:
    # Unix socket paths are limited to about 100 characters: keep the name short.
    return user_dir() / f"warm-{server_key()}.sock"


def run(target: str, spec: dict, log_path, device: str = "auto") -> int:
    """Run `target` ("module:function") on `spec` with output to `log_path`; return the exit code."""
    Path(log_path).write_text("")  # a rerun's log starts afresh
    if enabled(device):
        try:
            return run_on_server(target, spec, log_path)
        except Unreachable as err:
            with open(log_path, "a") as log:
                log.write(f"warm start unavailable ({err}); running in this process\n")
        except WarmError as err:
            message = f"epochbench: {err}"
            with open(log_path, "a") as log:
                log.write(message + "\n")
            print(message, file=sys.stderr, flush=True)
            return getattr(err, "exit_code", 1)
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


def process_settings() -> dict:
    """What a fork inherits from the server, where a job's own process would have the job's: compared, never mixed."""
    limits = sorted(name for name in dir(resource) if name.startswith("RLIMIT_"))
    return {"group": os.getgid(), "effective group": os.getegid(), "supplementary groups": sorted(os.getgroups()),
            **{f"resource limit {name}": list(resource.getrlimit(getattr(resource, name))) for name in limits}}


def current_umask() -> int:
    umask = os.umask(0o077)  # reading the umask means setting it: set it back at once
    os.umask(umask)
    return umask


def run_on_server(target: str, spec: dict, log_path) -> int:
    """Run the job in a fork of the warm server; Unreachable if no server takes it, WarmError if the fork dies."""
    request = dict(target=target, spec=spec, log=str(Path(log_path).resolve()), cwd=os.getcwd(), env=dict(os.environ),
                   umask=current_umask(), settings=process_settings())
    with connect() as conn, conn.makefile("r") as replies:
        conn.settimeout(STARTED_TIMEOUT)
        try:
            conn.sendall(json.dumps(request).encode() + b"\n")
            started = replies.readline()
        except TimeoutError as err:
            # Closing the connection tells the fork, if it ever comes, not to run the job.
            raise Unreachable(f"the warm server did not take the job within {STARTED_TIMEOUT} s") from err
        except OSError as err:
            raise Unreachable(f"the warm server dropped the connection: {err}") from err
        if not started:
            # An idle server that was closing as we connected: nothing ran.
            raise Unreachable("the warm server closed the connection before taking the job")
        refused = json.loads(started).get("refused")
        if refused:
            raise Unreachable(f"the warm server refused the job: {refused}")
        conn.settimeout(None)  # the cell takes as long as it takes
        reply = replies.readline()  # blocks until the cell has finished
    if not reply:
        raise WarmError(f"{target}: the warm server went away while running the job; see {log_path}")
    reply = json.loads(reply)
    if "signal" in reply:
        number = reply["signal"]
        error = WarmError(f"{target}: killed by signal {number} ({signal_name(number)}) in its warm process; "
                          f"not rerun")
        error.exit_code = 128 + number  # the shell's convention for a process a signal ended
        raise error
    return int(reply["exit_code"])


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def peer_credentials(conn: socket.socket) -> tuple:
    """(pid, uid, gid) of the process at the other end of a Unix socket, as the kernel reports it."""
    return struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))


def connect() -> socket.socket:
    """A connection to this user's warm server, starting one if there is none (one starter at a time)."""
    try:
        path = socket_path()
        with contextlib.suppress(OSError):
            return _connect(path)
        with _starter_lock(path):
            with contextlib.suppress(OSError):
                return _connect(path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # left by a server that was killed
            return _start_server(path)
    except (OSError, TimeoutError) as err:
        raise Unreachable(f"{type(err).__name__}: {err}") from err


def _start_server(path: Path) -> socket.socket:
    # The server imports this very package, wherever the job found it. `python -m` puts its working
    # folder first on sys.path: the package's own, never the job's (whose files would be imported).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_DIR.parent),
                                                                     os.environ.get("PYTHONPATH")])))
    with open(f"{path}.log", "a") as server_log:
        server = subprocess.Popen([sys.executable, "-m", "epochbench.warm", str(path)], env=env, cwd=PACKAGE_DIR.parent,
                                  stdin=subprocess.DEVNULL, stdout=server_log, stderr=server_log,
                                  start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and server.poll() is None:
        with contextlib.suppress(OSError):
            return _connect(path)
        time.sleep(0.1)
    if server.poll() is not None:
        raise OSError(f"the warm server exited with code {server.returncode}; see {path}.log")
    raise TimeoutError(f"{path}: the warm server did not start within {START_TIMEOUT} s")


@contextlib.contextmanager
def _starter_lock(path: Path):
    """Hold `<socket>.lock`, the file that makes one job at a time start a server."""
    lock_path = f"{path}.lock"
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            user_dir()  # an exiting server removed the emptied folder just now
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)  # another job may be starting a server right now
        try:
            current = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)  # an exiting server removed this lock file while we waited: lock the one at the path now
    try:
        yield
    finally:
        os.close(fd)


def _connect(path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(STARTED_TIMEOUT)  # a server that stopped accepting fills its backlog, and connect() then waits
    try:
        conn.connect(str(path))
        _, uid, _ = peer_credentials(conn)
    except OSError:
        conn.close()
        raise
    if uid != os.getuid():
        conn.close()
        raise WarmError(f"{path}: answered by a process of uid {uid}, not this user's ({os.getuid()}); "
                        f"the job's environment was not sent")
    return conn


def server_pid(path=None):
    """The pid of the warm server listening at `path` (this user's by default), or None if none answers."""
    try:
        conn = _connect(path or socket_path())
    except (OSError, WarmError):
        return None
    with conn:
        return peer_credentials(conn)[0]


def serve(path, idle_seconds: float = IDLE_SECONDS) -> None:
    """Import the heavy modules, then fork one child per request until idle for `idle_seconds` or SIGTERM."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # never create a CUDA context here
    # A flag, not an exception: a signal can land inside a fork hook, where an exception is swallowed.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda number, frame: stop.set())
    for module in PRELOAD:
        importlib.import_module(module)
    path = Path(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path.with_name(path.name + f".{os.getpid()}")
    server.bind(str(tmp))
    server.listen(64)
    os.replace(tmp, path)  # clients connect only once the server is ready
    # What is at `path` when we exit may be a successor's socket: remove it only if it is still ours.
    bound_inode = os.stat(path).st_ino
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    last_request, children = time.monotonic(), {}  # pid -> the connection of the job it runs
    try:
        while not stop.is_set() and (children or time.monotonic() - last_request < idle_seconds):
            if selector.select(timeout=1.0):
                conn, _ = server.accept()
                _, uid, _ = peer_credentials(conn)
                if uid != os.getuid():
                    print(f"refused a connection from uid {uid}", flush=True)
                    conn.close()
                    continue
                last_request = time.monotonic()
                pid = os.fork()
                if pid == 0:  # the child: runs one job and never returns to this loop, whatever happens
                    code = 1
                    try:
                        server.close()
                        for other in children.values():
                            other.close()
                        code = run_child(conn)
                    finally:
                        os._exit(code)
                # Kept open: if the child dies by a signal, this process tells the job which.
                children[pid] = conn
            for pid, conn in list(children.items()):  # reap finished children
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    if os.WIFSIGNALED(status):
                        with contextlib.suppress(OSError):
                            conn.sendall(json.dumps(dict(signal=os.WTERMSIG(status))).encode() + b"\n")
                    conn.close()
                    del children[pid]
                    last_request = time.monotonic()
    finally:
        # Unlink before closing: a job connecting now finds no server and starts one,
        # rather than connecting to a socket about to close.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == bound_inode:
                path.unlink()
        server.close()
        _remove_starter_files(path)
        remove_if_empty(path.parent)


def _remove_starter_files(path: Path) -> None:
    """Remove `<socket>.lock` and `.log`, unless a job is starting a successor that will use them."""
    lock_path = f"{path}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not path.exists():  # no successor has started since: the files are nobody's now
            for leftover in (f"{path}.log", lock_path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)


def settings_differ(theirs: dict) -> "str | None":
    """Which of the job's process settings (`process_settings`) this process does not share, in words; None if none."""
    ours = process_settings()
    for name, value in ours.items():
        if theirs.get(name) != value:
            return f"the job's {name} ({theirs.get(name)}) differs from the server's ({value})"
    return None


def run_child(conn: socket.socket) -> int:
    """In the forked child: take on the job's environment, run it, send the exit code."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    line = conn.makefile("r").readline()
    if not line:
        return 0  # a client that only looked (server_pid) or went away
    request = json.loads(line)
    refused = settings_differ(request["settings"])
    if refused:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(dict(refused=refused)).encode() + b"\n")
        return 0
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    try:
        conn.sendall(json.dumps(dict(started=os.getpid())).encode() + b"\n")
    except OSError:
        return 0  # the job stopped waiting (STARTED_TIMEOUT) and runs in its own process: not here too
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
    if spec.get("runs"):  # one line per start, so that a test can tell a rerun
        with open(spec["runs"], "a") as runs:
            runs.write(f"{os.getpid()}\n")
    if spec.get("fail"):
        raise RuntimeError("probe asked to fail")
    if spec.get("signal"):
        os.kill(os.getpid(), spec["signal"])
    time.sleep(spec.get("sleep", 0))
    Path(spec["out"]).write_text(json.dumps(dict(pid=os.getpid(), cwd=os.getcwd(),
                                                 value=os.environ.get(spec.get("variable", ""), None))))
    print("probe done", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1], *map(float, sys.argv[2:3]))
