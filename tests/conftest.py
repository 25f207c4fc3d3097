"""Shared fixtures: one real pipeline run on config/ci.yaml, reused by the tests that read its outputs."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI_CONFIG = ROOT / "config" / "ci.yaml"


def snakemake(workdir, *args, check=True, configfile=CI_CONFIG):
    """Run the real workflow in `workdir` (results, logs and reports land there, not in the checkout)."""
    command = ["snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """(workdir, dry-run output) of a complete run of config/ci.yaml."""
    workdir = tmp_path_factory.mktemp("pipeline")
    dry = snakemake(workdir, "--dry-run")
    snakemake(workdir)
    return workdir, dry.stdout + dry.stderr
