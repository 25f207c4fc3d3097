"""The SLURM profile, run for real: config/ci.yaml through sbatch on a one-node cluster started on this machine."""

import re
import shutil
import subprocess
import time

import pandas as pd
import pytest
import yaml

from conftest import ROOT, sweep_only_config

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
# Without slurmdbd there is no accounting: follow jobs with squeue, submit without an account.
NO_ACCOUNTING = ["--slurm-status-command", "squeue", "--slurm-no-account"]
# A test cluster answers at once: poll it often, and keep the job logs to look at.
QUICK_POLLING = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "2",
                 "--slurm-keep-successful-logs"]


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("sbatch") is None:
        install = subprocess.run(["bash", str(CLUSTER), "install"], capture_output=True, text=True)
        if install.returncode != 0 or shutil.which("sbatch") is None:
            pytest.skip(f"SLURM cannot be installed here: {install.stderr.strip()[-300:]}")
    start = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True)
    assert start.returncode == 0, start.stdout + start.stderr
    yield
    subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, text=True)


def slurm_command(workdir, *extra):
    """The README's `snakemake --profile workflow/profiles/slurm`, on config/ci.yaml's sweep, in `workdir`."""
    return [
        "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(sweep_only_config(workdir)), "--profile", str(ROOT / "workflow" / "profiles" / "slurm"),
        "--jobs", "2", "--latency-wait", "5", *NO_ACCOUNTING, *QUICK_POLLING, *extra,
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
    for table in ("summary.csv", "overfitting.csv"):
        on_slurm = pd.read_csv(tmp_path / "results" / "ci" / "tables" / table)
        here = pd.read_csv(local / "results" / "ci" / "tables" / table)
        if "strategy" in here.columns:  # the local run also has the baseline strategies
            here = here[here["strategy"] == "fine_tune"].reset_index(drop=True)
        pd.testing.assert_frame_equal(on_slurm, here)
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
            if "train" in comment or "pretrain" in comment:
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
