"""The warm start of training jobs (epochbench.warm) and the per-device GPU claims (epochbench.devices)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from epochbench import devices, warm


def run_probe(tmp_path, name, **spec):
    out = tmp_path / f"{name}.json"
    log = tmp_path / f"{name}.log"
    code = warm.run("epochbench.warm:probe", dict(spec, out=str(out), variable="PROBE_VALUE"), log)
    return code, out, log


def test_jobs_run_in_a_forked_warm_process_with_their_own_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROBE_VALUE", "first")
    code, out, log = run_probe(tmp_path, "first")
    assert code == 0 and "probe done" in log.read_text()
    first = json.loads(out.read_text())
    monkeypatch.setenv("PROBE_VALUE", "second")
    code, out, _ = run_probe(tmp_path, "second")
    second = json.loads(out.read_text())
    assert code == 0
    # Another process each time, neither of them this one, each with the caller's directory and variables.
    assert len({first["pid"], second["pid"], os.getpid()}) == 3
    assert (first["value"], second["value"]) == ("first", "second")
    assert first["cwd"] == second["cwd"] == str(tmp_path)
    assert warm.socket_path().exists()


def test_a_failing_job_returns_its_exit_code_and_logs_the_traceback(tmp_path):
    code, out, log = run_probe(tmp_path, "failing", fail=True)
    assert code == 1 and not out.exists()
    assert "RuntimeError: probe asked to fail" in log.read_text()


def test_killing_the_job_process_stops_the_warm_child(tmp_path):
    """What Snakemake does to running jobs when a run is stopped: the cell must not live on."""
    out = tmp_path / "late.json"
    script = (f"from epochbench import warm; warm.run('epochbench.warm:probe', "
              f"dict(out={str(out)!r}, sleep=8), {str(tmp_path / 'late.log')!r})")
    job = subprocess.Popen([sys.executable, "-c", script])
    time.sleep(4)  # connected and running (the server is warm from the tests above, or starting)
    job.send_signal(signal.SIGKILL)
    job.wait()
    time.sleep(10)
    assert not out.exists(), "the warm child finished the job after its caller was killed"


def test_a_stale_socket_is_replaced_by_a_new_server(tmp_path):
    path = warm.socket_path()
    subprocess.run(["pkill", "-f", f"epochbench.warm {path}"], check=False)
    deadline = time.monotonic() + 10
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    path.touch()  # what a killed server can leave behind: a socket file nobody listens on
    code, out, _ = run_probe(tmp_path, "after")
    assert code == 0 and out.exists()


@pytest.mark.parametrize("env, device, expected", [
    ({}, "cpu", True), ({}, "auto", True), ({}, "cuda", False),
    ({"SLURM_JOB_ID": "7"}, "cpu", False), ({"EPOCHBENCH_WARM_START": "0"}, "cpu", False),
])
def test_warm_start_only_where_it_is_safe(monkeypatch, env, device, expected):
    for key in ("SLURM_JOB_ID", "EPOCHBENCH_WARM_START"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert warm.enabled(device) is expected


CLAIM = """
import sys, time
from epochbench import devices
claim = devices.claim_device(sys.argv[2].split(","), lock_dir=sys.argv[1], timeout=float(sys.argv[3]), poll=0.1)
print(claim.key, flush=True)
time.sleep(float(sys.argv[4]))
"""


def claimer(lock_dir, keys, timeout=30, hold=30):
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(lock_dir), ",".join(keys), str(timeout), str(hold)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_each_job_claims_a_device_of_its_own_and_a_dead_job_frees_it(tmp_path):
    keys = ["gpu-a", "gpu-b"]
    first, second = claimer(tmp_path, keys), claimer(tmp_path, keys)
    claimed = {first.stdout.readline().strip(), second.stdout.readline().strip()}
    assert claimed == set(keys)
    third = claimer(tmp_path, keys)  # both devices taken: it waits
    time.sleep(1.5)
    assert third.poll() is None
    first.kill()  # a killed job: the kernel drops its lock
    first.wait()
    assert third.stdout.readline().strip() in keys
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


def test_cpu_is_picked_without_claiming_anything(monkeypatch):
    monkeypatch.setattr(devices, "claim_device", lambda *a, **k: pytest.fail("claimed a device for the CPU"))
    assert devices.pick_device("cpu").type == "cpu"
