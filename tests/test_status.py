"""`python -m epochbench status`: progress read from a sweep's files, fast, without Snakemake's lock."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from epochbench import status

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "numpy", "scipy", "torch", "fastai", "mlflow", "snakemake", "matplotlib")


def make_config(folder: Path, **changes) -> Path:
    config = dict(experiment="watch", architectures=["arch_a"], max_epochs=2, seeds=[0, 1],
                  strategies=["fine_tune", "from_scratch"], dataset=dict(name="digits"))
    config.update(changes)
    path = folder / "watch.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def finish_cell(workdir: Path, experiment: str, cell: str, epoch_seconds: list, shared: int, wall: float) -> None:
    """The three files a finished train job leaves, and its Snakemake benchmark."""
    folder = workdir / "results" / experiment / "cells" / cell
    folder.mkdir(parents=True)
    rows = "".join(f"unfrozen,{i + 1},{s},{i < shared}\n" for i, s in enumerate(epoch_seconds))
    (folder / "epoch_seconds.csv").write_text("phase,epoch,seconds,shared\n" + rows)
    (folder / "history.csv").write_text("fit,phase,epoch\n" + "".join(f"1,unfrozen,{i}\n" for i in range(len(epoch_seconds))))
    (folder / "metrics.json").write_text("{}\n")
    bench = workdir / "results" / experiment / "benchmarks" / "train" / f"{cell}.tsv"
    bench.parent.mkdir(parents=True, exist_ok=True)
    bench.write_text(f"s\th:m:s\tmax_rss\n{wall}\t0:00:01\t100\n")
    (workdir / "logs" / experiment / "train" / cell).parent.mkdir(parents=True, exist_ok=True)
    (workdir / "logs" / experiment / "train" / f"{cell}.log").write_text("fine\n")


def start_cell(workdir: Path, experiment: str, cell: str, log_text: str) -> Path:
    log = workdir / "logs" / experiment / "train" / f"{cell}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(log_text)
    return log


@pytest.fixture
def sweep(tmp_path):
    """A sweep of 8 cells half-way: 3 finished, 1 failed, 1 running, 3 waiting."""
    config = make_config(tmp_path)
    # fine_tune's own epochs are n (its frozen epoch ran in frozen_fit: shared); from_scratch trains 1 + n.
    finish_cell(tmp_path, "watch", "fine_tune/arch_a/n1/seed0", [9.0, 2.0], shared=1, wall=5.0)
    finish_cell(tmp_path, "watch", "fine_tune/arch_a/n1/seed1", [9.0, 4.0], shared=1, wall=7.0)
    finish_cell(tmp_path, "watch", "fine_tune/arch_a/n2/seed0", [9.0, 3.0, 3.0], shared=1, wall=9.0)
    start_cell(tmp_path, "watch", "fine_tune/arch_a/n2/seed1",
               "2026 epoch 1\nTraceback (most recent call last):\n  File \"x\", line 1\nRuntimeError: out of memory\n")
    start_cell(tmp_path, "watch", "from_scratch/arch_a/n1/seed0", "2026 arch_a from_scratch(1) seed 0 | epoch 1/2\n")
    return tmp_path, config


def test_status_counts_runs_epochs_failures_and_time_left(sweep):
    workdir, config_path = sweep
    config = yaml.safe_load(config_path.read_text())
    found = status.sweep_status(dict(config, fine_tune={"freeze_epochs": 1}), workdir)
    assert (found["cells"], found["finished"], found["failed"], found["started"], found["waiting"]) == (8, 3, 1, 1, 3)
    fine_tune, from_scratch = found["groups"]
    assert fine_tune["per_n"] == {"1": {"finished": 2, "planned": 2}, "2": {"finished": 1, "planned": 2}}
    assert from_scratch["per_n"] == {"1": {"finished": 0, "planned": 2}, "2": {"finished": 0, "planned": 2}}
    # fine_tune(n) computes n epochs in its own job, from_scratch 1 + n: 1+1+2+2 and 2+2+3+3.
    assert (fine_tune["epochs_done"], fine_tune["epochs_planned"]) == (4, 6)
    assert (from_scratch["epochs_done"], from_scratch["epochs_planned"]) == (0, 10)
    assert found["failures"] == [dict(strategy="fine_tune", architecture="arch_a", n=2, seed=1,
                                      log="logs/watch/train/fine_tune/arch_a/n2/seed1.log",
                                      error="RuntimeError: out of memory")]
    left = found["time_left"]
    # Measured: 2 + 4 + 3 + 3 = 12 s over 4 own epochs (the shared frozen epochs apart): 3 s each; start-up is
    # the benchmark's wall time less the epochs, (5-2 + 7-4 + 9-6) / 3 = 3 s a job.
    assert left["seconds_per_epoch"] == pytest.approx(3.0) and left["startup_seconds"] == pytest.approx(3.0)
    # Left: fine_tune 2 epochs and 1 job, from_scratch (nothing measured: the mean stands in) 10 epochs and 4 jobs.
    assert left["epochs_left"] == 12 and left["jobs_left"] == 5
    assert left["serial_seconds"] == pytest.approx(12 * 3.0 + 5 * 3.0)
    assert left["seconds"] == pytest.approx(left["serial_seconds"] / left["parallel"])


def test_status_command_prints_a_table_and_json_and_writes_nothing(sweep):
    workdir, config_path = sweep
    before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*")}
    text = subprocess.run([sys.executable, "-m", "epochbench", "status", "--configfile", str(config_path),
                           "--directory", str(workdir)], capture_output=True, text=True, cwd=ROOT)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "experiment watch (results/watch/): no Snakemake running in this folder"
    header = lines[2].split()
    assert header == ["strategy", "architecture", "n=1", "n=2", "epochs", "failed"]
    assert lines[3].split() == ["fine_tune", "arch_a", "2/2", "1/2", "4/6", "1"]
    assert lines[4].split() == ["from_scratch", "arch_a", "0/2", "0/2", "0/10", "0"]
    assert "runs: 3 of 8 finished, 1 started, 1 failed, 3 waiting" in text.stdout
    assert ("failed: fine_tune arch_a n=2 seed=1: logs/watch/train/fine_tune/arch_a/n2/seed1.log "
            "(RuntimeError: out of memory)") in text.stdout
    assert re.search(r"^time left: about \d+ s \(4 epochs measured, 3.00 s each on average, 3.0 s start-up per job, "
                     r"[\d.]+ jobs side by side\)$", text.stdout, re.MULTILINE), text.stdout
    as_json = subprocess.run([sys.executable, "-m", "epochbench", "status", "--configfile", str(config_path),
                              "--directory", str(workdir), "--json"], capture_output=True, text=True, cwd=ROOT)
    found = json.loads(as_json.stdout)
    assert found["finished"] == 3 and found["failures"][0]["log"].endswith("seed1.log")
    # Nothing written or touched: no lock, no cache, no new file.
    assert {p: p.stat().st_mtime_ns for p in workdir.rglob("*")} == before


def test_status_says_snakemake_is_running_from_its_lock_without_taking_it(sweep):
    workdir, config_path = sweep
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("held by a running sweep\n")
    config = dict(yaml.safe_load(config_path.read_text()), fine_tune={})
    assert status.sweep_status(config, workdir)["snakemake_running"] is True
    assert (locks / "0.input.lock").read_text() == "held by a running sweep\n"


def test_status_of_the_default_experiment_is_fast_and_imports_nothing_heavy(tmp_path):
    """config/config.yaml's 80 cells, all finished: under 2 s from a fresh Python, without pandas, torch or mlflow."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for n in range(1, config["max_epochs"] + 1):
        for seed in config["seeds"]:
            finish_cell(tmp_path, config["experiment"], f"fine_tune/resnet18/n{n}/seed{seed}", [1.0] * (n + 1),
                        shared=1, wall=n + 3.0)
    probe = ("import sys, time; start = time.perf_counter(); from epochbench.cli import main; "
             f"code = main(['status', '--configfile', {str(ROOT / 'config' / 'config.yaml')!r}, '--directory', "
             f"{str(tmp_path)!r}]); print('SECONDS', time.perf_counter() - start); "
             f"print('HEAVY', sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert "runs: 80 of 80 finished" in result.stdout and "time left: none" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout
    print(f"status on 80 finished cells: {elapsed:.2f} s from a fresh Python")
    assert elapsed < 2.0


def test_status_names_the_bad_config_key_in_one_line(tmp_path):
    config_path = make_config(tmp_path, max_epochs=0)
    result = subprocess.run([sys.executable, "-m", "epochbench", "status", "--configfile", str(config_path),
                             "--directory", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"epochbench status: {config_path}: config key 'max_epochs': 0 is less than the minimum of 1"]


def test_status_of_a_sequential_design_plans_no_runs_for_an_architecture_a_look_stopped(tmp_path):
    """Looks at 2 and 4 replicates: before look 1 every architecture plans 4; after it, the one it stopped plans 2."""
    config_path = make_config(tmp_path, architectures=["arch_a", "arch_b"], seeds=[0, 1, 2, 3],
                              strategies=["fine_tune"], replicates=dict(looks=[2, 4]))
    config = yaml.safe_load(config_path.read_text())
    for arch in ("arch_a", "arch_b"):
        for n in (1, 2):
            for seed in (0, 1):
                finish_cell(tmp_path, "watch", f"fine_tune/{arch}/n{n}/seed{seed}", [1.0] * (n + 1), shared=1, wall=4.0)
    before = status.sweep_status(config, tmp_path)
    assert (before["finished"], before["cells"]) == (8, 16)
    looks = tmp_path / "results" / "watch" / "looks"
    looks.mkdir()
    # What checkpoint look writes (epochbench.sequential.look_decisions): arch_a resolved, arch_b open.
    (looks / "look1.json").write_text(json.dumps(dict(
        look=1, replicates=2, states=dict(arch_a="overfits", arch_b="open"),
        seeds=dict(arch_a=[0, 1], arch_b=[0, 1, 2, 3]), looks=[])))
    after = status.sweep_status(config, tmp_path)
    assert (after["finished"], after["cells"], after["waiting"]) == (8, 12, 4)
    planned = {g["architecture"]: g["per_n"]["1"]["planned"] for g in after["groups"]}
    assert planned == {"arch_a": 2, "arch_b": 4}
    assert after["time_left"]["jobs_left"] == 4
