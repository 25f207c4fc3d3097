"""Trustworthy runs: same inputs give the same bytes, a crash loses nothing, two runs never mix."""

import hashlib
import json
import os
import signal
import subprocess
import time

import pandas as pd
import yaml

from conftest import ROOT, snakemake, sweep_only_config

CELL = "results/ci/cells/fine_tune/test_resnet/n2/seed1"


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_cell_rerun_from_scratch_gives_identical_bytes(finished_run, tmp_path):
    """Data preparation, pretraining and training again in a fresh folder: the same history and metrics files."""
    workdir, _ = finished_run
    snakemake(tmp_path, f"{CELL}/metrics.json")
    for name in ("history.csv", "metrics.json"):
        assert digest(tmp_path / CELL / name) == digest(workdir / CELL / name), name
    assert digest(tmp_path / "results/ci/pretrained/test_resnet.pt") == digest(workdir / "results/ci/pretrained/test_resnet.pt")


def cell_files(workdir) -> dict:
    """{path: (mtime_ns, sha256)} of every finished cell's outputs."""
    files = {}
    for metrics in (workdir / "results" / "ci" / "cells").rglob("metrics.json"):
        for path in metrics.parent.iterdir():
            files[path] = (path.stat().st_mtime_ns, digest(path))
    return files


def wait_for(condition, timeout=300, step=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def test_kill_mid_sweep_then_resume_retrains_only_the_unfinished(tmp_path):
    config_path = sweep_only_config(tmp_path)
    command = ["snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(config_path), "--cores", "2"]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        cells = tmp_path / "results" / "ci" / "cells"
        logs = tmp_path / "logs" / "ci" / "train"

        def training_in_flight():
            done = {p.parent for p in cells.rglob("metrics.json")} if cells.exists() else set()
            started = list(logs.rglob("*.log")) if logs.exists() else []
            return len(done) >= 1 and len(started) > len(done)

        assert wait_for(training_in_flight), "the sweep never got to training"

        # A second run on the same folder stops at Snakemake's lock and touches nothing.
        before = cell_files(tmp_path)
        second = subprocess.run(command, capture_output=True, text=True)
        assert second.returncode != 0
        assert "LockException" in second.stdout + second.stderr or "cannot be locked" in second.stdout + second.stderr
        os.killpg(run.pid, signal.SIGKILL)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    finished = {path: stamp for path, stamp in cell_files(tmp_path).items() if path in before}
    assert finished, "no cell had finished before the kill"

    snakemake(tmp_path, "--unlock", configfile=config_path)
    snakemake(tmp_path, configfile=config_path)  # the default profile reruns incomplete jobs

    after = cell_files(tmp_path)
    for path, stamp in finished.items():
        assert after[path] == stamp, f"{path} was rewritten although its cell had finished"
    config = yaml.safe_load(config_path.read_text())
    finals = pd.read_csv(tmp_path / "results" / "ci" / "tables" / "finals.csv")
    assert len(finals) == len(config["architectures"]) * config["max_epochs"] * len(config["seeds"])
    for metrics in (tmp_path / "results" / "ci" / "cells").rglob("metrics.json"):
        final = json.loads(metrics.read_text())
        history = pd.read_csv(metrics.parent / "history.csv")
        assert len(history) == 1 + final["n"], metrics
    assert (tmp_path / "reports" / "ci" / "index.html").is_file()
    assert not [p for p in tmp_path.rglob("*.tmp*") if ".snakemake" not in p.parts]
