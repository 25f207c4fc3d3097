"""The SLURM profile: what it asks SLURM for (a dry run), and config/ci.yaml through sbatch for real on a one-node
cluster started on this machine (as root, or through passwordless sudo, as on GitHub's runners)."""

import os
import re
import shutil
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml

from conftest import ROOT, snakemake, sweep_only_config

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
# The one-node test cluster has no GPU: its jobs ask for none (this replaces the profile's set-resources).
NO_GPUS = ["--set-resources", "train:gpu=0", "frozen_fit:gpu=0", "pretrain:gpu=0"]
# Without slurmdbd there is no accounting: follow jobs with squeue, submit without an account.
NO_ACCOUNTING = ["--slurm-status-command", "squeue", "--slurm-no-account"]
# A test cluster answers at once: poll it often, and keep the job logs to look at.
QUICK_POLLING = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "2",
                 "--slurm-keep-successful-logs"]


def as_root() -> list:
    """How to run cluster.sh as root here: directly, through passwordless sudo, or not at all (None)."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


@pytest.fixture(scope="module")
def cluster():
    root = as_root()
    if root is None:
        pytest.skip("starting a SLURM cluster needs root or passwordless sudo")
    if shutil.which("sbatch") is None:
        install = subprocess.run([*root, "bash", str(CLUSTER), "install"], capture_output=True, text=True)
        if install.returncode != 0 or shutil.which("sbatch") is None:
            pytest.skip(f"SLURM cannot be installed here: {install.stderr.strip()[-300:]}")
    start = subprocess.run([*root, "bash", str(CLUSTER), "start"], capture_output=True, text=True)
    assert start.returncode == 0, start.stdout + start.stderr
    yield
    subprocess.run([*root, "bash", str(CLUSTER), "stop"], capture_output=True, text=True)


def slurm_command(workdir, *extra):
    """The README's `snakemake --profile workflow/profiles/slurm`, on config/ci.yaml's sweep, in `workdir`."""
    return [
        "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(sweep_only_config(workdir)), "--profile", str(PROFILE),
        "--jobs", "2", "--latency-wait", "5", *NO_GPUS, *NO_ACCOUNTING, *QUICK_POLLING, *extra,
    ]


def test_ci_sweep_through_sbatch_matches_a_local_run(cluster, finished_run, tmp_path):
    start = time.monotonic()
    result = subprocess.run(slurm_command(tmp_path), capture_output=True, text=True, timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", output)
    print(f"SLURM job ids: {', '.join(job_ids)}; wall time {time.monotonic() - start:.0f} s")
    config = yaml.safe_load(sweep_only_config(tmp_path).read_text())
    cells = len(config["architectures"]) * config["max_epochs"] * len(config["seeds"])
    assert len(set(job_ids)) >= cells, output[-3000:]
    assert list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log")), "no SLURM job logs"

    local, _ = finished_run
    # Equal, not close: the same cells on the same data give the same bytes wherever they run.
    cells = sorted((tmp_path / "results" / "ci" / "cells").rglob("*"))
    assert cells
    for cell_file in cells:
        if cell_file.name in ("history.csv", "metrics.json"):
            relative = cell_file.relative_to(tmp_path)
            assert cell_file.read_bytes() == (local / relative).read_bytes(), relative
    for table in ("summary.csv", "overfitting.csv"):
        on_slurm = pd.read_csv(tmp_path / "results" / "ci" / "tables" / table)
        here = pd.read_csv(local / "results" / "ci" / "tables" / table)
        if "strategy" in here.columns:  # the local run also has the baseline strategies
            here = here[here["strategy"] == "fine_tune"].reset_index(drop=True)
        pd.testing.assert_frame_equal(on_slurm, here, check_exact=True)
    assert (tmp_path / "reports" / "ci" / "index.html").is_file()


def test_a_job_slurm_kills_is_reported_and_a_rerun_completes_it(cluster, tmp_path):
    run = subprocess.Popen(slurm_command(tmp_path, "--retries", "0"), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    killed = None
    deadline = time.monotonic() + 600
    while killed is None and time.monotonic() < deadline and run.poll() is None:
        running = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], capture_output=True, text=True)
        for line in running.stdout.splitlines():
            job_id, comment = line.split(" ", 1)
            if "train" in comment:  # train or pretrain
                subprocess.run(["scancel", job_id], check=True)  # what SLURM does to a job past its time limit
                killed = job_id
                break
        time.sleep(1)
    output, _ = run.communicate(timeout=900)
    assert killed, "no training job was seen running"
    assert run.returncode != 0
    assert killed in output and re.search(r"Error in rule (pretrain|train)", output), output[-4000:]

    rerun = subprocess.run(slurm_command(tmp_path), capture_output=True, text=True)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-4000:]
    assert (tmp_path / "reports" / "ci" / "index.html").is_file()


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


FOREIGN_CONF = "ClusterName=production\nSlurmctldHost=head01\n"


def cluster_script(tmp_path, command):
    env = dict(os.environ, SLURM_CONF=str(tmp_path / "slurm.conf"), EPOCHBENCH_SLURM_STATE=str(tmp_path / "state"))
    return subprocess.run(["bash", str(CLUSTER), command], env=env, capture_output=True, text=True, timeout=60)


def test_cluster_script_refuses_a_slurm_conf_it_did_not_write(tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text(FOREIGN_CONF)
    start = cluster_script(tmp_path, "start")
    assert start.returncode != 0
    assert start.stderr.strip() == (f"cluster.sh: {conf} was not written by this script (no marker line); "
                                    f"refusing to touch this host's SLURM")
    cluster_script(tmp_path, "stop")
    assert conf.read_text() == FOREIGN_CONF
    assert not (tmp_path / "state").exists()


def test_cluster_script_stops_only_the_daemons_it_started(tmp_path):
    """A daemon named slurmd that another party runs survives `stop`; the one in our pid file does not."""
    (tmp_path / "state").mkdir()
    stand_ins = {}
    for name in ("slurmd", "slurmctld"):
        shutil.copy(shutil.which("sleep"), tmp_path / name)  # a process whose name is the daemon's
        stand_ins[name] = subprocess.Popen([str(tmp_path / name), "300"])
    (tmp_path / "state" / "slurmctld.pid").write_text(f"{stand_ins['slurmctld'].pid}\n")
    try:
        result = cluster_script(tmp_path, "stop")
        assert result.returncode == 0, result.stderr
        assert stand_ins["slurmctld"].wait(timeout=10) == -signal.SIGTERM
        assert stand_ins["slurmd"].poll() is None, "stop killed a slurmd it had not started"
    finally:
        for process in stand_ins.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def test_nothing_kills_processes_by_name():
    """Killing by name hits every matching process of the machine: a concurrent run, a real cluster's daemons."""
    by_name = re.compile(r"\b(p" + r"kill|kill" + r"all)\b")  # spelt apart so that this file does not match
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = [name for name in tracked if (ROOT / name).is_file() and (ROOT / name).suffix not in (".png", ".pdf")
                 and by_name.search((ROOT / name).read_text(errors="replace"))]
    assert offenders == []
