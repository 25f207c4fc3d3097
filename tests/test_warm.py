"""The warm start of training jobs (epochbench.warm) and the per-device GPU claims (epochbench.devices).

Every test here runs against a warm server of its own: XDG_RUNTIME_DIR points at a
private folder made for this module, so no test can stop or use the server of a
`make report` running beside it, and servers are stopped by their pid only.
"""

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from epochbench import devices, userdir, warm

NOBODY = 65534  # another user, for the tests of what a second uid can and cannot do
as_root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user (setuid)")


@pytest.fixture(scope="module", autouse=True)
def private_runtime_dir(tmp_path_factory):
    runtime = tmp_path_factory.mktemp("xdg")
    runtime.chmod(0o700)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_RUNTIME_DIR", str(runtime))
        patch.delenv("EPOCHBENCH_WARM_START", raising=False)
        patch.delenv("EPOCHBENCH_GPU_LOCK_DIR", raising=False)
        patch.setattr(warm, "GPU_DEVICE_FILES", ())  # the warm path even on a GPU machine: it is what is tested
        yield runtime
        stop_server()


def stop_server(timeout=30):
    """SIGTERM this module's warm server, by its pid, and wait until its socket is gone."""
    path = warm.socket_path()
    pid = warm.server_pid(path)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not path.exists(), f"{path}: the warm server did not stop"
    return pid


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def run_probe(tmp_path, name, **spec):
    out = tmp_path / f"{name}.json"
    log = tmp_path / f"{name}.log"
    code = warm.run("epochbench.warm:probe", dict(spec, out=str(out), variable="PROBE_VALUE"), log)
    return code, out, log


def as_user(uid, action) -> tuple:
    """Run `action()` in a forked child switched to `uid`; return (its exit code, what it wrote to the pipe)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        code = 99
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            code, message = action()
            os.write(write_end, message.encode())
        except BaseException as err:  # reported to the test, which sees exit code 99
            os.write(write_end, f"{type(err).__name__}: {err}".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), message


def world_writable_dir() -> Path:
    """A scratch folder another user can enter (pytest's own folders are private to us)."""
    folder = Path(tempfile.mkdtemp(prefix="warm-test-"))
    folder.chmod(0o777)
    return folder


def test_jobs_run_in_a_forked_warm_process_with_their_own_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROBE_VALUE", "first")
    code, out, log = run_probe(tmp_path, "first")
    assert code == 0 and "probe done" in log.read_text()
    assert "warm start unavailable" not in log.read_text()
    first = json.loads(out.read_text())
    monkeypatch.setenv("PROBE_VALUE", "second")
    code, out, _ = run_probe(tmp_path, "second")
    second = json.loads(out.read_text())
    assert code == 0
    # Another process each time, neither of them this one, each with the caller's directory and variables.
    assert len({first["pid"], second["pid"], os.getpid()}) == 3
    assert (first["value"], second["value"]) == ("first", "second")
    assert first["cwd"] == second["cwd"] == str(tmp_path)
    assert warm.server_pid() not in (None, os.getpid())


def test_the_socket_lives_in_a_folder_only_its_user_can_enter(private_runtime_dir):
    path = warm.socket_path()
    assert path.parent == private_runtime_dir / "epochbench"
    folder = os.lstat(path.parent)
    assert stat.S_ISDIR(folder.st_mode) and folder.st_uid == os.getuid()
    assert stat.S_IMODE(folder.st_mode) == 0o700


@pytest.fixture
def no_runtime_dir(tmp_path, monkeypatch):
    """No XDG_RUNTIME_DIR (cron, sudo, a container), a home in tmp_path and a temp folder of its own."""
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir(mode=0o1777)
    temp.chmod(0o1777)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return home, temp


def test_without_xdg_runtime_dir_the_folder_is_the_users_own_and_checked(tmp_path, no_runtime_dir, monkeypatch):
    home, temp = no_runtime_dir
    assert userdir.user_dir() == home / ".cache" / "epochbench-run"
    assert stat.S_IMODE((home / ".cache" / "epochbench-run").stat().st_mode) == 0o700
    assert not list(temp.iterdir()), "a file in the shared temp folder"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert userdir.user_dir() == tmp_path / "cache" / "epochbench-run"
    # What is there already must be a private folder of ours: never used otherwise, and the error names it.
    folder = tmp_path / "cache" / "epochbench-run"
    shutil.rmtree(folder)
    (tmp_path / "elsewhere").mkdir()
    folder.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PermissionError, match="symlink") as err:
        userdir.user_dir()
    assert str(folder) in str(err.value) and "\n" not in str(err.value)
    folder.unlink()
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with pytest.raises(PermissionError, match="mode 0755"):
        userdir.user_dir()
    # Unreachable in that case, so the job runs in its own process and says why.
    code, out, log = run_probe(tmp_path, "unsafe")
    assert code == 0 and out.exists()
    assert "warm start unavailable" in log.read_text() and "mode 0755" in log.read_text()


@as_root_only
def test_a_folder_another_user_made_first_in_the_temp_folder_is_not_in_the_way(tmp_path, no_runtime_dir):
    """Where /tmp/epochbench-<uid> was taken by someone else, the user's own cache folder serves instead."""
    home, temp = no_runtime_dir
    taken = temp / f"epochbench-{os.getuid()}"
    taken.mkdir(mode=0o700)
    os.chown(taken, NOBODY, NOBODY)
    assert userdir.user_dir() == home / ".cache" / "epochbench-run"
    claim = devices.claim_device(["gpu-x"], timeout=0)
    claim.release()
    assert (home / ".cache" / "epochbench-run" / "gpu-locks" / "gpu-x.lock").is_file()


def test_without_a_home_of_its_own_the_folder_is_per_user_in_the_temp_folder(tmp_path, no_runtime_dir, monkeypatch):
    """The last resort (a home that is missing, or another user's as under sudo): checked like any other."""
    _, temp = no_runtime_dir
    monkeypatch.setenv("HOME", "/nonexistent")
    assert userdir.user_dir() == temp / f"epochbench-{os.getuid()}"
    assert stat.S_IMODE((temp / f"epochbench-{os.getuid()}").stat().st_mode) == 0o700
    (temp / f"epochbench-{os.getuid()}").chmod(0o777)
    with pytest.raises(PermissionError, match="mode 0777"):
        userdir.user_dir()


def test_a_failing_job_returns_its_exit_code_and_logs_the_traceback(tmp_path):
    code, out, log = run_probe(tmp_path, "failing", fail=True)
    assert code == 1 and not out.exists()
    assert "RuntimeError: probe asked to fail" in log.read_text()


def test_a_cell_killed_by_a_signal_fails_its_job_with_one_line_and_is_not_rerun(tmp_path):
    """What the OOM killer does to a cell: the job fails and says so; the cell does not run again."""
    runs, log = tmp_path / "runs.txt", tmp_path / "killed.log"
    spec = dict(out=str(tmp_path / "killed.json"), runs=str(runs), signal=int(signal.SIGKILL))
    # In a process of its own: had the job been rerun here, the probe would kill that process.
    script = f"import sys; from epochbench import warm; sys.exit(warm.run('epochbench.warm:probe', {spec!r}, {str(log)!r}))"
    job = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert job.returncode == 128 + signal.SIGKILL, job.stderr
    assert len(runs.read_text().splitlines()) == 1, "the cell was run again"
    message = "epochbench: epochbench.warm:probe: killed by signal 9 (SIGKILL) in its warm process; not rerun"
    assert job.stderr.strip().splitlines() == [message]
    assert log.read_text().splitlines()[-1] == message
    assert not (tmp_path / "killed.json").exists()


def test_killing_the_job_process_stops_the_warm_child(tmp_path):
    """What Snakemake does to running jobs when a run is stopped: the cell must not live on."""
    out, started = tmp_path / "late.json", tmp_path / "started.txt"
    spec = dict(out=str(out), runs=str(started), sleep=8)
    script = f"from epochbench import warm; warm.run('epochbench.warm:probe', {spec!r}, {str(tmp_path / 'late.log')!r})"
    job = subprocess.Popen([sys.executable, "-c", script])
    assert wait_until(started.exists, timeout=60), "the job never started"
    job.send_signal(signal.SIGKILL)
    job.wait()
    time.sleep(10)
    assert not out.exists(), "the warm child finished the job after its caller was killed"


def test_the_server_stops_on_sigterm_and_removes_its_files(tmp_path, private_runtime_dir):
    assert run_probe(tmp_path, "before")[0] == 0
    path = warm.socket_path()
    files = [path, Path(f"{path}.lock"), Path(f"{path}.log")]
    assert all(f.exists() for f in files)
    stop_server()
    assert wait_until(lambda: not any(f.exists() for f in files), timeout=10), [f for f in files if f.exists()]
    assert not (private_runtime_dir / "epochbench").exists(), "the emptied folder was left behind"


def test_an_idle_server_exits_and_removes_its_files(tmp_path):
    stop_server()
    path = warm.socket_path()
    # What a starting job leaves beside the socket: the starters' lock and the server's log.
    Path(f"{path}.lock").touch()
    with open(f"{path}.log", "a") as server_log:
        server = subprocess.Popen([sys.executable, "-m", "epochbench.warm", str(path), "2"],
                                  stdout=server_log, stderr=server_log)
    assert server.wait(timeout=120) == 0
    assert not [f for f in path.parent.parent.rglob("*")], "files left after the server exited idle"


def test_a_stale_socket_is_replaced_by_a_new_server(tmp_path):
    stop_server()
    path = warm.socket_path()
    path.touch()  # what a killed server can leave behind: a socket file nobody listens on
    code, out, log = run_probe(tmp_path, "after")
    assert code == 0 and out.exists()
    assert "warm start unavailable" not in log.read_text()


def test_a_job_writes_its_files_with_its_own_umask(tmp_path):
    """A server started under umask 022 must not make a job run under 077 (private data) write 0644 files."""
    stop_server()
    previous = os.umask(0o022)
    try:
        assert run_probe(tmp_path, "opener")[0] == 0  # the server starts under 022
        os.umask(0o077)
        code, out, log = run_probe(tmp_path, "private")
    finally:
        os.umask(previous)
    assert code == 0 and "warm start unavailable" not in log.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def run_probe_elsewhere(tmp_path, name, setup="pass", started_timeout=None) -> tuple:
    """(exit code, where the probe ran, log text, the job's pid) of a job run by a process of its own after `setup`."""
    spec = dict(out=str(tmp_path / f"{name}.json"), runs=str(tmp_path / f"{name}.runs"))
    log = tmp_path / f"{name}.log"
    timeout = "" if started_timeout is None else f"warm.STARTED_TIMEOUT = {started_timeout}; "
    script = (f"import os, resource, sys; {setup}; from epochbench import warm; {timeout}"
              f"sys.exit(warm.run('epochbench.warm:probe', {spec!r}, {str(log)!r}, device='cpu'))")
    job = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode == 0, stderr
    ran = json.loads(Path(spec["out"]).read_text())
    return job.returncode, ran["pid"], log.read_text(), job.pid


def test_a_job_with_other_resource_limits_runs_in_its_own_process(tmp_path):
    assert run_probe(tmp_path, "up")[0] == 0  # a server with this process's limits
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    setup = f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft - 1}, {hard}))"
    _, ran_in, log, job = run_probe_elsewhere(tmp_path, "limited", setup)
    assert ran_in == job, "the job ran in the warm server, under the server's resource limits"
    assert (f"warm start unavailable (the warm server refused the job: the job's resource limit RLIMIT_NOFILE "
            f"([{soft - 1}, {hard}]) differs from the server's ([{soft}, {hard}])); running in this process") in log
    # The same job with the server's limits is served warm.
    _, ran_in, log, job = run_probe_elsewhere(tmp_path, "unlimited")
    assert ran_in != job and "warm start unavailable" not in log


@as_root_only
@pytest.mark.parametrize("setting, setup", [("group", f"os.setgid({NOBODY})"),
                                             ("supplementary groups", f"os.setgroups(os.getgroups() + [{NOBODY}])")])
def test_a_job_of_other_groups_runs_in_its_own_process(tmp_path, setting, setup):
    assert run_probe(tmp_path, "up")[0] == 0
    _, ran_in, log, job = run_probe_elsewhere(tmp_path, "grouped", setup)
    assert ran_in == job, f"the job ran in the warm server, with the server's {setting}"
    assert f"the warm server refused the job: the job's {setting} (" in log


def test_a_stopped_server_sends_the_job_to_its_own_process_after_a_bounded_wait(tmp_path):
    assert run_probe(tmp_path, "up")[0] == 0
    server = warm.server_pid()
    os.kill(server, signal.SIGSTOP)  # what a hung server looks like to its clients
    try:
        _, ran_in, log, job = run_probe_elsewhere(tmp_path, "waited", started_timeout=2)
    finally:
        os.kill(server, signal.SIGCONT)
    assert ran_in == job
    assert "warm start unavailable (the warm server did not take the job within 2 s); running in this process" in log
    # The server, running again, finds the abandoned request: it must not run the job a second time.
    assert run_probe(tmp_path, "after")[0] == 0  # served after the abandoned request
    assert wait_until(lambda: warm.server_pid() == server)
    time.sleep(1)
    assert (tmp_path / "waited.runs").read_text().split() == [str(job)], "the job ran twice"


def test_a_job_with_another_pythonpath_gets_a_server_of_its_own(monkeypatch):
    """The server's sys.path is the one it started with: jobs that search elsewhere must not share it."""
    monkeypatch.setenv("PYTHONPATH", "/one")
    one = warm.socket_path()
    monkeypatch.setenv("PYTHONPATH", "/other")
    assert warm.socket_path() != one
    monkeypatch.setenv("PYTHONPATH", "/one")
    assert warm.socket_path() == one


def test_the_server_imports_nothing_from_the_jobs_folder(tmp_path, monkeypatch):
    """A module in the job's folder named like one the server imports must not run inside the server."""
    stop_server()
    imported = tmp_path / "imported"
    (tmp_path / "selectors.py").write_text(f"open({str(imported)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    code, _, log = run_probe(tmp_path, "here")
    assert code == 0 and "warm start unavailable" not in log.read_text(), log.read_text()
    assert not imported.exists(), "the server imported selectors.py from the job's folder"


@contextlib.contextmanager
def passable_by_others(*folders):
    """Let other users pass through `folders` (mode 0711) and reach the first by `/proc/self/fd/N`.

    pytest's own folders above them are private to us; a descriptor opened here
    and inherited by a forked child lets it start its path lookup at the first
    folder instead, so that what is tested is only what lies below.
    """
    modes = [stat.S_IMODE(folder.stat().st_mode) for folder in folders]
    fd = os.open(folders[0], os.O_RDONLY | os.O_DIRECTORY)
    try:
        for folder in folders:
            folder.chmod(0o711)
        yield Path(f"/proc/self/fd/{fd}")
    finally:
        for folder, mode in zip(folders, modes):
            folder.chmod(mode)
        os.close(fd)


@as_root_only
def test_another_uid_can_neither_reach_the_socket_nor_take_its_place(tmp_path, private_runtime_dir):
    assert run_probe(tmp_path, "up")[0] == 0
    path = warm.socket_path()
    assert path.parent.parent == private_runtime_dir

    def intrude(via):
        os.lstat(via / path.parent.name)  # got as far as the socket's folder: what stops it is that folder
        results = []
        for attempt, target in (("connect", path.name), ("bind", "warm-intruder.sock")):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                getattr(sock, attempt)(str(via / path.parent.name / target))
                results.append(f"{attempt}: allowed")
            except PermissionError:
                results.append(f"{attempt}: refused")
            finally:
                sock.close()
        return 0, ", ".join(results)

    with passable_by_others(private_runtime_dir) as via:
        code, message = as_user(NOBODY, lambda: intrude(via))
    assert (code, message) == (0, "connect: refused, bind: refused")


@as_root_only
def test_the_server_serves_no_client_of_another_uid(tmp_path, private_runtime_dir):
    """Even where the folder lets another user through, the server itself turns them away (SO_PEERCRED)."""
    assert run_probe(tmp_path, "up")[0] == 0
    path, scratch = warm.socket_path(), world_writable_dir()
    out = scratch / "intruder.json"
    request = dict(target="epochbench.warm:probe", spec=dict(out=str(out)), log=str(scratch / "intruder.log"),
                   cwd=str(scratch), env={})

    def intrude(via):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(via / path.parent.name / path.name))  # the socket itself lets anyone connect
            try:
                sock.sendall(json.dumps(request).encode() + b"\n")
                reply = sock.makefile("r").readline()
            except (ConnectionResetError, BrokenPipeError):  # closed unread: what a refusal looks like
                reply = ""
        return 0, reply

    socket_mode = stat.S_IMODE(path.stat().st_mode)
    try:
        path.chmod(0o777)
        with passable_by_others(private_runtime_dir, path.parent) as via:
            code, reply = as_user(NOBODY, lambda: intrude(via))
    finally:
        path.chmod(socket_mode)
        shutil.rmtree(scratch, ignore_errors=True)
    assert code == 0 and reply == "", f"the server answered another uid: {reply}"
    assert not out.exists()
    assert f"refused a connection from uid {NOBODY}" in Path(f"{path}.log").read_text()


@as_root_only
def test_the_client_sends_nothing_to_a_server_of_another_uid(tmp_path, monkeypatch):
    """Whoever answers at the socket must be this user: else the job's environment (tokens) would leak."""
    scratch = world_writable_dir()
    path = scratch / "warm.sock"
    ready_read, ready_write = os.pipe()

    def fake_server():
        os.close(ready_read)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(path))
            server.listen(1)
            os.write(ready_write, b"ready")
            server.settimeout(60)
            conn, _ = server.accept()
            conn.settimeout(5)
            received = b""
            try:
                while chunk := conn.recv(65536):
                    received += chunk
            except TimeoutError:
                pass
        return 0, f"received {len(received)} bytes"

    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code, message = fake_server()
            print(message, flush=True)
        finally:
            os._exit(code)
    os.close(ready_write)
    try:
        assert os.read(ready_read, 5) == b"ready"
        monkeypatch.setattr(warm, "socket_path", lambda: path)
        monkeypatch.setenv("SECRET_TOKEN", "not for other users")
        code, out, log = run_probe(tmp_path, "foreign")
    finally:
        _, status = os.waitpid(pid, 0)
        shutil.rmtree(scratch, ignore_errors=True)
    assert code == 1 and not out.exists(), "the job ran, or fell back, despite a foreign server"
    assert f"answered by a process of uid {NOBODY}" in log.read_text()
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("env, device, gpu, expected", [
    ({}, "cpu", False, True), ({}, "auto", False, True), ({}, "cuda", False, False),
    ({}, "cpu", True, True), ({}, "auto", True, False),
    ({"CUDA_VISIBLE_DEVICES": ""}, "auto", True, True), ({"CUDA_VISIBLE_DEVICES": "0"}, "auto", True, False),
    ({"SLURM_JOB_ID": "7"}, "cpu", False, False), ({"EPOCHBENCH_WARM_START": "0"}, "cpu", False, False),
])
def test_warm_start_only_where_no_cuda_device_can_be_used(monkeypatch, tmp_path, env, device, gpu, expected):
    for key in ("SLURM_JOB_ID", "EPOCHBENCH_WARM_START", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    node = tmp_path / "nvidia0"  # stands in for the driver's /dev/nvidia0
    if gpu:
        node.touch()
    monkeypatch.setattr(warm, "GPU_DEVICE_FILES", (str(tmp_path / "nvidia[0-9]*"),))
    assert warm.enabled(device) is expected


def test_deciding_on_warm_start_imports_no_torch():
    """The job process stays thin, and creates no CUDA context, while it decides."""
    probe = "import sys; from epochbench import warm; warm.enabled('auto'); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.split() == ["False"], result.stderr[-2000:]


def test_warm_and_cold_runs_of_a_cell_give_identical_bytes(tmp_path):
    """The README's claim: a cell's history.csv and metrics.json do not depend on where it ran."""
    from epochbench.data import prepare_dataset

    data_dir = tmp_path / "data"
    prepare_dataset(dict(name="digits", classes=["0", "1", "2", "3"], train_size=64, label_noise=0.2, split_seed=0,
                         valid_fraction=0.2, test_fraction=0.2), 16, data_dir, min_train=32)
    cell = dict(data_dir=str(data_dir), arch="test_resnet", strategy="fine_tune", n=1, seed=0, pretrained="none",
                fine_tune_args=dict(base_lr=0.002), settings=dict(batch_size=32, threads=1, device="cpu"))

    def spec(where):
        folder = tmp_path / where
        folder.mkdir()
        return dict(cell=cell, history=str(folder / "history.csv"), epoch_seconds=str(folder / "epoch_seconds.csv"),
                    metrics=str(folder / "metrics.json"))

    warm_log = tmp_path / "warm.log"
    assert warm.run("epochbench.train:train_job", spec("warm"), warm_log, device="cpu") == 0, warm_log.read_text()
    assert "warm start unavailable" not in warm_log.read_text()
    script = (f"import sys; from epochbench import warm; "
              f"sys.exit(warm.run('epochbench.train:train_job', {spec('cold')!r}, {str(tmp_path / 'cold.log')!r}, "
              f"device='cpu'))")
    cold = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, EPOCHBENCH_WARM_START="0"),
                          capture_output=True, text=True, timeout=300)
    assert cold.returncode == 0, (tmp_path / "cold.log").read_text()[-3000:]
    for name in ("history.csv", "metrics.json"):
        assert (tmp_path / "warm" / name).read_bytes() == (tmp_path / "cold" / name).read_bytes(), name


CLAIM = """
import sys, time
from epochbench import devices
claim = devices.claim_device(sys.argv[2].split(","), lock_dir=sys.argv[1], timeout=float(sys.argv[3]), poll=0.1,
                             slots=int(sys.argv[5]))
print(claim.key, claim.slot, flush=True)
time.sleep(float(sys.argv[4]))
"""


def claimer(lock_dir, keys, timeout=30, hold=30, slots=1):
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(lock_dir), ",".join(keys), str(timeout), str(hold),
                             str(slots)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def claimed_key(job) -> str:
    return job.stdout.readline().split()[0]


def test_each_job_claims_a_device_of_its_own_and_a_dead_job_frees_it(tmp_path):
    keys = ["gpu-a", "gpu-b"]
    first, second = claimer(tmp_path, keys), claimer(tmp_path, keys)
    claimed = {claimed_key(first), claimed_key(second)}
    assert claimed == set(keys)
    third = claimer(tmp_path, keys)  # both devices taken: it waits
    time.sleep(1.5)
    assert third.poll() is None
    first.kill()  # a killed job: the kernel drops its lock
    first.wait()
    assert claimed_key(third) in keys
    for job in (second, third):
        job.kill()
        job.wait()


def test_a_claim_times_out_with_the_lock_folder_named(tmp_path):
    held = devices.claim_device(["gpu-x"], lock_dir=tmp_path)
    try:
        with pytest.raises(TimeoutError, match=str(tmp_path)):
            devices.claim_device(["gpu-x"], lock_dir=tmp_path, timeout=0.3, poll=0.1)
    finally:
        held.release()
    again = devices.claim_device(["gpu-x"], lock_dir=tmp_path, timeout=1)
    assert again.key == "gpu-x"
    again.release()


def claim_slots(lock_dir, keys, slots, count) -> list:
    return [devices.claim_device(keys, lock_dir=lock_dir, timeout=0, slots=slots) for _ in range(count)]


def release_all(claims) -> None:
    for claim in claims:
        claim.release()


def test_a_device_offers_jobs_per_gpu_slots_and_a_freed_slot_is_claimed_again(tmp_path):
    claims = claim_slots(tmp_path, ["gpu-x"], slots=3, count=3)
    try:
        assert sorted(claim.slot for claim in claims) == [0, 1, 2]
        assert sorted(path.name for path in tmp_path.iterdir()) == ["gpu-x.lock", "gpu-x.slot1.lock",
                                                                    "gpu-x.slot2.lock"]
        with pytest.raises(TimeoutError, match="3 per device"):
            devices.claim_device(["gpu-x"], lock_dir=tmp_path, timeout=0, slots=3)
        claims[1].release()
        claims[1] = devices.claim_device(["gpu-x"], lock_dir=tmp_path, timeout=0, slots=3)
        assert claims[1].slot == 1
    finally:
        release_all(claims)


def test_a_job_waits_for_a_slot_and_gets_the_one_freed(tmp_path):
    claims = claim_slots(tmp_path, ["gpu-x"], slots=2, count=2)
    try:
        waiting = claimer(tmp_path, ["gpu-x"], slots=2)
        time.sleep(1.5)
        assert waiting.poll() is None  # both slots taken: it waits
        claims[0].release()
        assert waiting.stdout.readline().split() == ["gpu-x", "0"]
        waiting.kill()
        waiting.wait()
    finally:
        release_all(claims)


def test_jobs_spread_over_the_devices_before_they_share_one(tmp_path):
    keys = ["gpu-a", "gpu-b"]
    claims = claim_slots(tmp_path, keys, slots=2, count=4)
    try:
        assert [(claim.key, claim.slot) for claim in claims] == [("gpu-a", 0), ("gpu-b", 0), ("gpu-a", 1),
                                                                 ("gpu-b", 1)]
        assert [claim.index for claim in claims] == [0, 1, 0, 1]
        with pytest.raises(TimeoutError, match="gpu-a, gpu-b"):
            devices.claim_device(keys, lock_dir=tmp_path, timeout=0, slots=2)
    finally:
        release_all(claims)


@pytest.mark.parametrize("slots", [0, -1, 1.5, 2.0, True, "2"])
def test_slots_per_device_must_be_a_whole_number(tmp_path, slots):
    with pytest.raises(ValueError, match="whole number"):
        devices.claim_device(["gpu-x"], lock_dir=tmp_path, timeout=0, slots=slots)
    assert not any(tmp_path.iterdir())  # refused before any lock was taken


def test_pick_device_claims_one_of_jobs_per_gpu_slots(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("EPOCHBENCH_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)
    monkeypatch.setattr(devices, "cuda_device_keys", lambda: ["gpu-fake"])
    monkeypatch.setattr(devices, "_claim", None)
    other_job = devices.claim_device(["gpu-fake"], lock_dir=tmp_path, timeout=0)  # slot 0
    try:
        assert devices.pick_device("cuda", jobs_per_gpu=2) == torch.device("cuda", 0)
        assert (devices._claim.key, devices._claim.slot) == ("gpu-fake", 1)
    finally:
        other_job.release()
        if devices._claim is not None:
            devices._claim.release()


def test_claims_live_in_the_users_private_folder(private_runtime_dir):
    claim = devices.claim_device(["gpu-x"], timeout=0)
    try:
        assert (private_runtime_dir / "epochbench" / "gpu-locks" / "gpu-x.lock").is_file()
    finally:
        claim.release()


HOLDER = """
import sys, time, torch
from epochbench import devices
claim = devices.claim_device(["gpu-w"], lock_dir=sys.argv[1], timeout=0)
loader = torch.utils.data.DataLoader(list(range(64)), batch_size=4, num_workers=2, persistent_workers=True,
                                     multiprocessing_context="fork")
batches = iter(loader)
next(batches)  # the workers are up: forks of this process
print(*[worker.pid for worker in batches._workers], flush=True)
time.sleep(120)
"""


def state(pid) -> str:
    """The process's state letter from /proc (R, S, T, Z...), or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def alive(pid) -> bool:
    return state(pid) not in ("", "Z")


def test_a_killed_jobs_claim_is_free_while_its_dataloader_workers_live_on(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in holder.stdout.readline().split()]
    try:
        assert len(workers) == 2
        # Stopped workers cannot run their parent-death watchdog (it polls every 5 s), so they
        # outlive the holder for as long as the test needs, still holding every inherited fd.
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        assert wait_until(lambda: all(state(pid) == "T" for pid in workers))
        holder.kill()
        holder.wait()
        assert all(alive(pid) for pid in workers)
        claim = devices.claim_device(["gpu-w"], lock_dir=tmp_path, timeout=0)
        assert all(alive(pid) for pid in workers)
        claim.release()
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@as_root_only
def test_two_users_claim_without_getting_in_each_others_way(tmp_path):
    mine = devices.claim_device(["gpu-a"], timeout=0)
    scratch = world_writable_dir()

    def claim_as_other_user():
        os.environ.pop("XDG_RUNTIME_DIR", None)  # root's; the other user's folder goes under the scratch folder
        tempfile.tempdir = str(scratch)
        try:
            claim = devices.claim_device(["gpu-a"], timeout=0)
        except Exception as err:  # noqa: BLE001  (reported to the test)
            return 1, f"{type(err).__name__}: {err}"
        return 0, claim.key

    try:
        code, message = as_user(NOBODY, claim_as_other_user)
    finally:
        mine.release()
        shutil.rmtree(scratch, ignore_errors=True)
    assert (code, message) == (0, "gpu-a")


@as_root_only
def test_a_lock_folder_the_user_cannot_write_is_a_one_line_error(tmp_path):
    scratch = world_writable_dir()
    locks = scratch / "locks"
    locks.mkdir(mode=0o755)  # root's, as a first user's umask left the old shared folder

    def claim_as_other_user():
        try:
            devices.claim_device(["gpu-a"], lock_dir=locks, timeout=0)
        except PermissionError as err:
            return 0, str(err)
        return 1, "claimed"

    try:
        code, message = as_user(NOBODY, claim_as_other_user)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert code == 0, message
    assert "\n" not in message and message.startswith(f"{locks}: ") and "EPOCHBENCH_GPU_LOCK_DIR" in message


@pytest.mark.parametrize("flaw", ["open to others", "a symlink", "another user's"])
def test_a_lock_folder_override_must_be_private(tmp_path, monkeypatch, flaw):
    locks = tmp_path / "locks"
    if flaw == "a symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        locks.symlink_to(tmp_path / "elsewhere")
    else:
        locks.mkdir(mode=0o700)
        if flaw == "open to others":
            locks.chmod(0o777)
        elif os.geteuid() == 0:
            os.chown(locks, NOBODY, NOBODY)
        else:
            pytest.skip("needs root to give the folder to another user")
    monkeypatch.setenv("EPOCHBENCH_GPU_LOCK_DIR", str(locks))
    with pytest.raises(PermissionError) as err:
        devices.claim_device(["gpu-x"], timeout=0)
    assert str(err.value).startswith(f"{locks}: is ") and "\n" not in str(err.value)
    assert str(err.value).endswith("; set EPOCHBENCH_GPU_LOCK_DIR to a folder of your own")
    assert not (locks / "gpu-x.lock").exists(), "a claim was taken in it"


def test_a_symlinked_lock_file_is_not_followed(tmp_path):
    """What a planted link would do: the pid written into the claim file would overwrite its target."""
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o700)
    (locks / "gpu-x.lock").symlink_to(target)
    with pytest.raises(PermissionError) as err:
        devices.claim_device(["gpu-x"], lock_dir=locks, timeout=0)
    assert str(err.value) == (f"{locks / 'gpu-x.lock'}: cannot open the GPU claim file (a symlink, not followed); "
                              f"set EPOCHBENCH_GPU_LOCK_DIR to a folder of your own")
    assert target.read_text() == "keep me\n"


def test_cpu_is_picked_without_claiming_anything(monkeypatch):
    monkeypatch.setattr(devices, "claim_device", lambda *a, **k: pytest.fail("claimed a device for the CPU"))
    assert devices.pick_device("cpu").type == "cpu"
