"""Shared fixtures: one real pipeline run on config/ci.yaml, reused by the tests that read its outputs.

It also marks the slow tests (`make test-fast` leaves them out): every test that uses a fixture or
helper below that runs the pipeline, the SLURM cluster or a browser, so that a new one cannot forget.
"""

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CI_CONFIG = ROOT / "config" / "ci.yaml"


# What makes a test slow: the fixtures that run the pipeline or start the SLURM cluster, the helpers
# here that run snakemake (a test that calls them by name), and the test modules of cluster and browser.
SLOW_FIXTURES = {"finished_run", "cluster"}
SLOW_HELPERS = {"snakemake", "sweep_only_config"}
MODULE_MARKS = {"test_slurm.py": "slurm", "test_browser.py": "browser"}

_running = None  # the test being run, for the check in snakemake()


def pytest_collection_modifyitems(config, items):
    for item in items:
        module_mark = MODULE_MARKS.get(item.path.name)
        if module_mark:
            item.add_marker(module_mark)
        function = getattr(item, "function", None)
        calls = set(function.__code__.co_names) if function else set()
        if (module_mark == "browser" or SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
                or SLOW_HELPERS & calls):
            item.add_marker("slow")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _running
    _running = item
    try:
        yield
    finally:
        _running = None


def snakemake(workdir, *args, check=True, configfile=CI_CONFIG):
    """Run the real workflow in `workdir` (results, logs and reports land there, not in the checkout)."""
    # Reached through a helper of its own, a test escapes the marking above: stop it here instead.
    if _running is not None and _running.get_closest_marker("slow") is None:
        raise AssertionError(f"{_running.nodeid} runs snakemake but is not marked slow: "
                             "mark it @pytest.mark.slow, or call snakemake() from the test itself")
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


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A prepared three-class digits dataset of 48 training images at 16 px, for training a cell in seconds."""
    from epochbench import data

    folder = tmp_path_factory.mktemp("tiny")
    spec = dict(name="digits", classes=["0", "1", "2"], train_size=48, label_noise=0.0,
                valid_fraction=0.15, test_fraction=0.15, split_seed=0)
    data.prepare_dataset(spec, 16, folder)
    return folder


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """(workdir, dry-run output) of a complete run of config/ci.yaml."""
    workdir = tmp_path_factory.mktemp("pipeline")
    dry = snakemake(workdir, "--dry-run")
    snakemake(workdir)
    return workdir, dry.stdout + dry.stderr
