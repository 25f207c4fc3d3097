"""The SLURM profile: what it asks SLURM for (a dry run), and config/ci.yaml through sbatch for real on a one-node
cluster started on this machine (as root, or through passwordless sudo, as on GitHub's runners)."""

import os
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, snakemake, sweep_only_config
from epochbench.config import load_config
from epochbench.io import write_csv
from epochbench.outputs import summary_tables

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
# The one-node test cluster has no GPU: its jobs ask for none (this replaces the profile's set-resources).
NO_GPUS = ["--set-resources", "train:gpu=0", "frozen_fit:gpu=0", "pretrain:gpu=0"]
# Without slurmdbd there is no accounting: follow jobs with squeue, submit without an account.
NO_ACCOUNTING = ["--slurm-status-command", "squeue", "--slurm-no-account"]
# The SLURM plugin (2.8) checks its jobs `init` seconds after a change, then adds 10 s to the wait after every check
# that finds none finished: with init = 1, a job of this sweep (about 12 s from sbatch to its end) is seen at 1, 12 and
# 33 s, two jobs at a time. With 15 it is seen at 15 s, which halves the test. Keep the job logs to look at.
QUICK_POLLING = ["--slurm-init-seconds-before-status-checks", "15", "--seconds-between-status-checks", "2",
                 "--slurm-keep-successful-logs"]


def as_root() -> list:
    """How to run cluster.sh as root here: directly, through passwordless sudo, or not at all (None)."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def cluster_script(*args, env=None, root=(), timeout=120):
    return subprocess.run([*root, "bash", str(CLUSTER), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def cluster():
    """The environment for a one-node cluster started for these tests, stopped after them whatever happened."""
    # As the test's own user and in its environment (sudo would drop SLURM_CONF): a host that runs or is
    # configured for SLURM is left alone, before anything is installed or written.
    check = cluster_script("check")
    if check.returncode == 4:
        pytest.skip(check.stderr.strip())
    assert check.returncode == 0, check.stderr
    root = as_root()
    if root is None:
        pytest.skip("starting a SLURM cluster needs root or passwordless sudo")
    if shutil.which("sbatch") is None:
        install = cluster_script("install", root=root, timeout=900)
        if install.returncode != 0 or shutil.which("sbatch") is None:
            pytest.skip(f"SLURM cannot be installed here: {install.stderr.strip()[-300:]}")
    start = cluster_script("start", root=root)
    state = re.search(r"^state: (.+)$", start.stdout, re.MULTILINE)
    try:
        if start.returncode == 4:  # SLURM appeared since the check: still not ours to touch
            pytest.skip(start.stderr.strip())
        assert start.returncode == 0, start.stdout + start.stderr
        started = dict(re.findall(r"^(bin|conf): (.+)$", start.stdout, re.MULTILINE))
        # An explicit SLURM_CONF, never the caller's; the cluster's srun first on the jobs' PATH (see cluster.sh).
        yield dict(os.environ, SLURM_CONF=started["conf"], PATH=f"{started['bin']}{os.pathsep}{os.environ['PATH']}")
    finally:
        if state:  # start stops what it started when it fails; this covers a failure after it
            stop = cluster_script("stop", state.group(1), root=root)
            assert stop.returncode == 0, stop.stderr


def slurm_command(workdir, *extra, configfile=None):
    """The README's `snakemake --profile workflow/profiles/slurm`, on config/ci.yaml's sweep (or `configfile`)."""
    return [
        "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(configfile or sweep_only_config(workdir)), "--profile", str(PROFILE),
        "--jobs", "2", "--latency-wait", "5", *NO_GPUS, *NO_ACCOUNTING, *QUICK_POLLING, *extra,
    ]


# --- cluster.sh itself: quick, no SLURM needed (stand-ins play the daemons) --------------------------------------

MARKER = "# Written by epochbench tests/slurm/cluster.sh: a one-node test cluster."
# Stand-ins for the daemons and tools `start` runs: each daemon notes its pid and runs until SIGTERM,
# or exits at once when FAKE_CRASH names it; sinfo reports the node FAKE_NODE (idle by default).
FAKE_DAEMON = """#!/bin/bash
echo $$ >> "$FAKE_PIDS"
[ "${FAKE_CRASH:-}" = "$(basename "$0")" ] && exit 1
trap 'exit 0' TERM
while :; do sleep 0.1; done
"""
FAKE_TOOLS = {"munged": FAKE_DAEMON, "slurmctld": FAKE_DAEMON, "slurmd": FAKE_DAEMON,
              "mungekey": "#!/bin/sh\n", "scontrol": "#!/bin/sh\n", "srun": "#!/bin/sh\n", "sinfo": "#!/bin/sh\necho idle\n"}


def script_env(tmp_path, **extra) -> dict:
    """cluster.sh's environment here: its temp folder (where `start` makes its own) in tmp_path, no SLURM_CONF."""
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key != "SLURM_CONF"}
    return dict(env, TMPDIR=str(scratch), **extra)


def clean_host_or_skip(tmp_path):
    check = cluster_script("check", env=script_env(tmp_path))
    if check.returncode != 0:  # these tests stage a SLURM host themselves: on a real one, the reason would differ
        pytest.skip(check.stderr.strip())


def stand_in(tmp_path, name) -> subprocess.Popen:
    """A process named like a daemon (a copy of sleep) that no cluster.sh started."""
    shutil.copy(shutil.which("sleep"), tmp_path / name)
    return subprocess.Popen([str(tmp_path / name), "300"])


def end(*processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def start_time(pid) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def state_folder(tmp_path) -> Path:
    """A state folder as `start` leaves it (mode 0711, ours, its config), without the cluster."""
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o711)
    (state / "slurm.conf").write_text(MARKER + "\n")
    return state


def alive(pid) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("sign", ["slurmd", "slurmctld", "slurmdbd", "config", "SLURM_CONF"])
def test_cluster_script_leaves_a_slurm_host_alone_and_writes_nothing(tmp_path, sign):
    clean_host_or_skip(tmp_path)
    env, daemon = script_env(tmp_path), None
    if sign == "config":  # as /etc/slurm-llnl/slurm.conf or a configless node's cache would be
        conf = tmp_path / "slurm-llnl" / "slurm.conf"
        conf.parent.mkdir()
        conf.write_text("ClusterName=production\n")
        env["EPOCHBENCH_SLURM_EXTRA_CONFS"] = str(conf)
        why = f"has a SLURM configuration ({conf})"
    elif sign == "SLURM_CONF":
        env["SLURM_CONF"] = "/etc/slurm/production.conf"
        why = "has SLURM_CONF set (/etc/slurm/production.conf)"
    else:
        daemon = stand_in(tmp_path, sign)
        why = f"runs {sign} (pid {daemon.pid})"
    try:
        for command in ("check", "start"):
            result = cluster_script(command, env=env)
            if command == "start" and result.returncode == 0:  # it started after all: stop it
                cluster_script("stop", re.search(r"^state: (.+)$", result.stdout, re.MULTILINE).group(1))
            assert (result.returncode, result.stdout, result.stderr) == (
                4, "", f"cluster.sh: this host {why}; not starting a test cluster beside it\n")
        assert not list((tmp_path / "tmp").iterdir()), "start wrote a state folder"
        assert daemon is None or daemon.poll() is None
    finally:
        end(*filter(None, [daemon]))


def fake_cluster(tmp_path, **extra) -> dict:
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    for name, text in FAKE_TOOLS.items():
        (fakes / name).write_text(text)
        (fakes / name).chmod(0o755)
    return script_env(tmp_path, PATH=f"{fakes}{os.pathsep}{os.environ['PATH']}", FAKE_PIDS=str(tmp_path / "pids"),
                      **extra)


def fake_pids(tmp_path) -> list:
    return [int(pid) for pid in (tmp_path / "pids").read_text().split()] if (tmp_path / "pids").exists() else []


def test_cluster_script_starts_in_a_fresh_private_folder_and_stop_removes_it(tmp_path):
    clean_host_or_skip(tmp_path)
    env = fake_cluster(tmp_path)
    start = cluster_script("start", env=env)
    pids = fake_pids(tmp_path)
    try:
        assert start.returncode == 0, start.stderr
        state = Path(re.search(r"^state: (.+)$", start.stdout, re.MULTILINE).group(1))
        assert state.parent == tmp_path / "tmp" and state.name.startswith("epochbench-slurm.")  # mktemp -d's
        folder = os.lstat(state)
        assert stat.S_ISDIR(folder.st_mode) and folder.st_uid == os.getuid() and stat.S_IMODE(folder.st_mode) == 0o711
        assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in state.iterdir() if path.is_dir()} == {
            "spool": 0o755, "run": 0o755, "bin": 0o755, "state": 0o700, "log": 0o700, "munge": 0o700}
        conf = (state / "slurm.conf").read_text()
        assert conf.startswith(MARKER + "\n") and f"AuthInfo=socket={state}/run/munge.socket" in conf
        assert start.stdout.splitlines()[-2:] == [f"bin: {state}/bin", f"conf: {state}/slurm.conf"]
        assert (state / "bin" / "srun").read_text() == (f"#!/bin/sh\nSLURM_CONF={state}/slurm.conf exec "
                                                        f"{tmp_path / 'fakes' / 'srun'} \"$@\"\n")
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
        stop = cluster_script("stop", str(state), env=env)
        assert stop.returncode == 0, stop.stderr
        assert not any(alive(pid) for pid in pids)
        assert not state.exists()
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_failing_start_stops_what_it_started_and_removes_its_folder(tmp_path):
    clean_host_or_skip(tmp_path)
    start = cluster_script("start", env=fake_cluster(tmp_path, FAKE_CRASH="slurmd", FAKE_NODE="down"))
    pids = fake_pids(tmp_path)
    try:
        assert start.returncode == 1
        assert "cluster.sh: slurmd exited" in start.stderr
        assert len(pids) == 3, "munged, slurmctld and the crashing slurmd were not all started"
        assert not any(alive(pid) for pid in pids), "start left a daemon running"
        assert not list((tmp_path / "tmp").iterdir()), "start left its state folder"
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_cluster_script_stops_only_the_processes_it_started(tmp_path):
    """A name and a pid are not enough: the process must also have started when the record says (pids are reused)."""
    state = state_folder(tmp_path)
    ours, reused, unrecorded = stand_in(tmp_path, "slurmctld"), stand_in(tmp_path, "slurmd"), stand_in(tmp_path, "munged")
    try:
        (state / "slurmctld.started").write_text(f"{ours.pid} {start_time(ours.pid)}\n")
        (state / "slurmd.started").write_text(f"{reused.pid} {int(start_time(reused.pid)) - 1}\n")
        (state / "munged.started").write_text(f"{unrecorded.pid}\n")
        result = cluster_script("stop", str(state), env=script_env(tmp_path))
        assert result.returncode == 0, result.stderr
        assert ours.wait(timeout=10) == -signal.SIGTERM
        assert reused.poll() is None, "stop killed a slurmd whose start time was not the recorded one"
        assert unrecorded.poll() is None, "stop killed a munged with no start time recorded"
        assert not state.exists()
    finally:
        end(ours, reused, unrecorded)


@pytest.mark.parametrize("flaw", ["symlink", "writable by others", "another owner", "not its config"])
def test_cluster_script_stop_touches_no_folder_start_did_not_make(tmp_path, flaw):
    """What another user could have prepared, or a mistyped path: nothing in it is stopped or removed."""
    if flaw == "another owner" and os.geteuid() != 0:
        pytest.skip("needs root to give the folder to another user")
    state = state_folder(tmp_path)
    daemon = stand_in(tmp_path, "slurmctld")
    (state / "slurmctld.started").write_text(f"{daemon.pid} {start_time(daemon.pid)}\n")
    named = state
    if flaw == "symlink":
        named = tmp_path / "link"
        named.symlink_to(state)
    elif flaw == "writable by others":
        state.chmod(0o777)
    elif flaw == "another owner":
        os.chown(state, 65534, 65534)
    else:
        (state / "slurm.conf").write_text("ClusterName=production\n")
    try:
        result = cluster_script("stop", str(named), env=script_env(tmp_path))
        assert result.returncode == 3
        assert len(result.stderr.splitlines()) == 1 and f"cluster.sh: {named} " in result.stderr
        assert daemon.poll() is None and (state / "slurmctld.started").exists()
    finally:
        end(daemon)


def test_ci_sweep_through_sbatch_matches_a_local_run(cluster, finished_run, tmp_path):
    start = time.monotonic()
    result = subprocess.run(slurm_command(tmp_path), env=cluster, capture_output=True, text=True,
                            timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", output)
    print(f"SLURM job ids: {', '.join(job_ids)}; wall time {time.monotonic() - start:.0f} s")
    config = yaml.safe_load(sweep_only_config(tmp_path).read_text())
    cells = len(config["architectures"]) * config["max_epochs"] * len(config["seeds"])
    assert len(set(job_ids)) >= cells, output[-3000:]
    assert list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log")), "no SLURM job logs"
    # The analysis after the sweep runs beside snakemake (the Snakefile's localrules), not queued through sbatch.
    local = set(re.findall(r"^localrule (\w+):", output, re.MULTILINE))
    assert local == {"all", "collect_tables", "summarize", "plot_figures", "latex_tables", "render_report"}, local
    submitted = set(re.findall(r"^rule (\w+):", output, re.MULTILINE))
    assert submitted == {"prepare_data", "pretrain", "frozen_fit", "train"}, submitted

    local, _ = finished_run
    # Equal, not close: the same cells on the same data give the same bytes wherever they run.
    cells = sorted((tmp_path / "results" / "ci" / "cells").rglob("*"))
    assert cells
    for cell_file in cells:
        if cell_file.name in ("history.csv", "metrics.json"):
            relative = cell_file.relative_to(tmp_path)
            assert cell_file.read_bytes() == (local / relative).read_bytes(), relative
    tables = tmp_path / "results" / "ci" / "tables"
    summary = pd.read_csv(local / "results" / "ci" / "tables" / "summary.csv")
    summary = summary[summary["strategy"] == "fine_tune"].reset_index(drop=True)  # the local run has the baselines too
    pd.testing.assert_frame_equal(pd.read_csv(tables / "summary.csv"), summary, check_exact=True)
    # The verdicts share one error budget with the baselines' claims, so the local run's own overfitting table was
    # decided at other levels: compare with what the summarize rule's function makes of its fine_tune cells.
    finals, histories = (pd.read_csv(local / "results" / "ci" / "tables" / name) for name in ("finals.csv", "histories.csv"))
    finals, histories = (frame[frame["strategy"] == "fine_tune"].reset_index(drop=True) for frame in (finals, histories))
    settings = load_config(sweep_only_config(tmp_path))
    points = summary_tables(finals, histories, settings["max_epochs"], settings["early_stopping"],
                            settings["equivalence_margin"])["overfitting"]
    write_csv(tmp_path / "expected_overfitting.csv", points)
    pd.testing.assert_frame_equal(pd.read_csv(tables / "overfitting.csv"),
                                  pd.read_csv(tmp_path / "expected_overfitting.csv"), check_exact=True)
    assert (tmp_path / "reports" / "ci" / "index.html").is_file()


def smallest_sweep_config(folder):
    """config/ci.yaml's sweep cut to one architecture and one replicate: a kill and a rerun need no more jobs."""
    config = yaml.safe_load(sweep_only_config(folder).read_text())
    path = folder / "smallest.yaml"
    path.write_text(yaml.safe_dump(dict(config, architectures=["test_resnet"], seeds=[0])))
    return path


def test_a_job_slurm_kills_is_reported_and_a_rerun_completes_it(cluster, tmp_path):
    smallest = smallest_sweep_config(tmp_path)
    run = subprocess.Popen(slurm_command(tmp_path, "--retries", "0", configfile=smallest), env=cluster,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []  # snakemake's output so far: which jobs are this run's
    reader = threading.Thread(target=lambda: lines.extend(run.stdout), daemon=True)
    reader.start()
    killed = None
    deadline = time.monotonic() + 600
    while killed is None and time.monotonic() < deadline and run.poll() is None:
        ours = set(re.findall(r"submitted with SLURM jobid (\d+)", "".join(lines)))
        running = subprocess.run(["squeue", "--me", "-h", "-t", "RUNNING", "-o", "%i %k"], env=cluster,
                                 capture_output=True, text=True)
        for line in running.stdout.splitlines():
            job_id, comment = line.split(" ", 1)
            if job_id in ours and "train" in comment:  # train or pretrain
                # What SLURM does to a job past its time limit; this run's job, by its id, and no other.
                subprocess.run(["scancel", job_id], env=cluster, check=True)
                killed = job_id
                break
        time.sleep(1)
    run.wait(timeout=900)
    reader.join(timeout=60)
    output = "".join(lines)
    assert killed, "no training job was seen running"
    assert run.returncode != 0
    assert killed in output and re.search(r"Error in rule (pretrain|train)", output), output[-4000:]

    rerun = subprocess.run(slurm_command(tmp_path, configfile=smallest), env=cluster, capture_output=True, text=True)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-4000:]
    assert (tmp_path / "reports" / "ci" / "index.html").is_file()


def test_looks_through_sbatch_decide_beside_snakemake_and_a_rerun_does_nothing(cluster, tmp_path):
    """A sequential design (looks at 2 and 3 replicates) through the SLURM profile: the look checkpoint runs
    beside snakemake, look 2's cells are queued only for what look 1 left open, and a rerun has nothing to do."""
    import json

    config = yaml.safe_load(smallest_sweep_config(tmp_path).read_text())
    # No futility stop: two replicates resolve nothing, so look 1 leaves the architecture open for look 2.
    config.update(seeds=[0, 1, 2], replicates=dict(looks=[2, 3], spending="pocock", futility=False))
    sequential_config = tmp_path / "sequential.yaml"
    sequential_config.write_text(yaml.safe_dump(config))
    result = subprocess.run(slurm_command(tmp_path, configfile=sequential_config), env=cluster, capture_output=True,
                            text=True, timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    # A checkpoint is announced as "localcheckpoint look:" where it runs beside snakemake, "checkpoint look:" if queued.
    assert re.search(r"^localcheckpoint look:", output, re.MULTILINE), output[-3000:]
    assert not re.search(r"^checkpoint look:", output, re.MULTILINE)
    decisions = {look: json.loads((tmp_path / "results" / "ci" / "looks" / f"look{look}.json").read_text())
                 for look in (1, 2)}
    assert decisions[1]["states"] == {"test_resnet": "open"}
    assert decisions[1]["seeds"] == {"test_resnet": [0, 1, 2]}
    trained = {int(path.parent.name.removeprefix("seed"))
               for path in (tmp_path / "results" / "ci" / "cells").rglob("metrics.json")}
    assert trained == {0, 1, 2}
    # Every training job went through sbatch, look 2's (seed 2) too: a job id per cell, and SLURM's log of each.
    job_ids = set(re.findall(r"submitted with SLURM jobid (\d+)", output))
    assert len(job_ids) >= 3 * config["max_epochs"], output[-3000:]
    slurm_logs = tmp_path / ".snakemake" / "slurm_logs" / "rule_train"
    for n in range(1, config["max_epochs"] + 1):
        assert list((slurm_logs / f"fine_tune_test_resnet_{n}_2").glob("*.log")), f"no SLURM log of n = {n}, seed 2"
    page = (tmp_path / "reports" / "ci" / "index.html").read_text()
    assert 'id="race-table"' in page
    again = subprocess.run(slurm_command(tmp_path, configfile=sequential_config), env=cluster, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stderr[-3000:]


def planned_resources(output: str) -> list:
    """(rule, {resource: value}) for every job of a dry run's output."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\nrule )", output):
        rule = re.search(r"^rule (\w+):", block, re.MULTILINE)
        resources = re.search(r"^\s+resources: (.*)$", block, re.MULTILINE)
        if rule and resources:
            jobs.append((rule.group(1), dict(item.split("=", 1) for item in resources.group(1).split(", "))))
    return jobs


def profile_resources() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())["set-resources"]


def test_every_rule_the_profile_sizes_exists():
    result = subprocess.run(["snakemake", "--list-rules", "--configfile", str(ROOT / "config" / "ci.yaml")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    rules = set(result.stdout.split())
    assert {"train", "pretrain", "prepare_data"} <= rules
    assert set(profile_resources()) <= rules, set(profile_resources()) - rules


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_pets_through_the_profile_asks_a_gpu_for_every_training_job(tmp_path, device):
    """The README's `snakemake --profile workflow/profiles/slurm --configfile config/pets.yaml`, as a dry run."""
    config = yaml.safe_load((ROOT / "config" / "pets.yaml").read_text())
    assert config["device"] == "cuda"  # config/pets.yaml asks for a GPU itself
    config_file = tmp_path / "pets.yaml"
    config_file.write_text(yaml.safe_dump(dict(config, device=device)))
    result = snakemake(tmp_path, "--dry-run", "--profile", str(PROFILE), configfile=config_file)
    jobs = planned_resources(result.stdout + result.stderr)
    training = [(rule, resources) for rule, resources in jobs if rule in ("train", "frozen_fit", "pretrain")]
    cells = len(config["architectures"]) * config["max_epochs"] * len(config["seeds"])
    frozen_fits = len(config["architectures"]) * len(config["seeds"])
    assert len(training) == cells * len(config.get("strategies", ["fine_tune"])) + frozen_fits
    for rule, resources in training:
        sized = profile_resources()[rule]
        assert resources["gpu"] == "1"
        assert (resources["mem_mb"], resources["runtime"]) == (str(sized["mem_mb"]), str(sized["runtime"]))


def test_locally_only_device_cuda_asks_for_gpus(tmp_path):
    """Without the SLURM profile, 'auto' takes a GPU when the job finds one and asks the scheduler for none."""
    config = yaml.safe_load((ROOT / "config" / "pets.yaml").read_text())
    config_file = tmp_path / "pets.yaml"
    config_file.write_text(yaml.safe_dump(dict(config, device="auto")))
    jobs = planned_resources(snakemake(tmp_path, "--dry-run", configfile=config_file).stdout)
    assert jobs and {resources["gpu"] for rule, resources in jobs if rule == "train"} == {"0"}


def test_nothing_kills_processes_by_name():
    """Killing by name hits every matching process of the machine: a concurrent run, a real cluster's daemons."""
    by_name = re.compile(r"\b(p" + r"kill|kill" + r"all)\b")  # spelt apart so that this file does not match
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = [name for name in tracked if (ROOT / name).is_file() and (ROOT / name).suffix not in (".png", ".pdf")
                 and by_name.search((ROOT / name).read_text(errors="replace"))]
    assert offenders == []
