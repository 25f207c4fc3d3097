"""The SLURM profile, run for real: config/ci.yaml through sbatch on a one-node cluster started on this machine."""

import re
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import CI_CONFIG, ROOT

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
# Without slurmdbd there is no accounting: follow jobs with squeue, submit without an account.
NO_ACCOUNTING = ["--slurm-status-command", "squeue", "--slurm-no-account"]


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


def test_ci_sweep_through_sbatch_matches_a_local_run(cluster, finished_run, tmp_path):
    command = [
        "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
        "--configfile", str(CI_CONFIG), "--profile", str(ROOT / "workflow" / "profiles" / "slurm"),
        "--jobs", "4", "--latency-wait", "5", *NO_ACCOUNTING,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]

    job_ids = set(re.findall(r"SLURM run ID: [\w-]+|SLURM jobid (\d+)|jobid[= :]+(\d+)", output))
    slurm_logs = list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert job_ids and slurm_logs, "no job went through sbatch"

    local, _ = finished_run
    for table in ("summary.csv", "overfitting.csv"):
        on_slurm = pd.read_csv(tmp_path / "results" / "ci" / "tables" / table)
        pd.testing.assert_frame_equal(on_slurm, pd.read_csv(local / "results" / "ci" / "tables" / table))
    assert (tmp_path / "reports" / "ci" / "index.html").is_file()
