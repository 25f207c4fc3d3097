"""Shared fixtures: one real pipeline run on config/ci.yaml, reused by the tests that read its outputs."""

import subprocess
from pathlib import Path

import pytest
import yaml

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


def sweep_only_config(folder) -> Path:
    """config/ci.yaml with fastai's fine_tune alone: for tests of orchestration, where the baselines add only time."""
    config = yaml.safe_load(CI_CONFIG.read_text())
    path = Path(folder) / "ci_sweep_only.yaml"
    path.write_text(yaml.safe_dump(dict(config, strategies=["fine_tune"])))
    return path


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """(workdir, dry-run output) of a complete run of config/ci.yaml."""
    workdir = tmp_path_factory.mktemp("pipeline")
    dry = snakemake(workdir, "--dry-run")
    snakemake(workdir)
    return workdir, dry.stdout + dry.stderr
