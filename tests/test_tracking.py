"""MLflow tracking: a cell's run from its files, a tracker that is down, runs that come back into the analysis.

The quick tests use MLflow's SQLite store in a tmp_path; the slow ones start a real `mlflow server` on
127.0.0.1 (SQLite backend, a free port, stopped by its pid), run a sweep with tracking pointed at it,
look at the runs in headless Chromium, and kill the server in the middle of a sweep.
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import snakemake
from epochbench import decisions, tracking
from test_browser import browser_paths

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-pass"  # in the tracking URI and the environment: must land nowhere


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_cell(results: Path, cell: str, seed: int = 0, n: int = 2) -> Path:
    """A finished cell's three files, as rule train writes them (frozen epoch, then n unfrozen ones)."""
    strategy, arch = cell.split("/")[:2]
    folder = results / "cells" / cell
    folder.mkdir(parents=True)
    rows = [dict(fit=1, phase="frozen", epoch=1, train_loss=1.5, train_loss_epoch=1.6, valid_loss=1.2,
                 valid_accuracy=0.5, test_loss=float("nan"), test_accuracy=float("nan"), lr=0.002)]
    rows += [dict(fit=2, phase="unfrozen", epoch=e, train_loss=1.0 / e, train_loss_epoch=1.1 / e, valid_loss=0.9 / e,
                  valid_accuracy=0.6 + 0.1 * e + 0.01 * seed, test_loss=0.95 / e if e == n else float("nan"),
                  test_accuracy=0.55 + 0.1 * e if e == n else float("nan"), lr=0.001 / e) for e in range(1, n + 1)]
    pd.DataFrame(rows).to_csv(folder / "history.csv", index=False, float_format="%.8g")
    pd.DataFrame(dict(phase=[r["phase"] for r in rows], epoch=[r["epoch"] for r in rows],
                      seconds=[3.0] + [1.5] * n, shared=[True] + [False] * n)).to_csv(folder / "epoch_seconds.csv",
                                                                                      index=False)
    last = rows[-1]
    (folder / "metrics.json").write_text(json.dumps(dict(
        strategy=strategy, architecture=arch, n=n, seed=seed, valid_loss=last["valid_loss"],
        valid_accuracy=last["valid_accuracy"], test_loss=last["test_loss"], test_accuracy=last["test_accuracy"],
        epochs_trained=n + 1, epochs_shared=1)))
    return folder


def tracked_config(uri, **changes) -> dict:
    config = dict(experiment="tracked", architectures=["arch_a"], max_epochs=2, seeds=[0], strategies=["fine_tune"],
                  dataset=dict(name="digits"), fine_tune=dict(base_lr=0.002), tracking=dict(mlflow=uri, timeout=20))
    config.update(changes)
    return config


def runs_of(uri: str, experiment: str, kind: str = "cell") -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id],
                                                       filter_string=f"tags.`epochbench.kind` = '{kind}'")


def test_a_finished_cell_becomes_one_mlflow_run_with_its_history_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv("EPOCHBENCH_TEST_SECRET", SECRET)
    # A new SQLite store is created (its schema migrated) by the first upload: give it time on a busy machine.
    config = tracked_config(True, tracking=dict(mlflow=True, timeout=120))
    folder = write_cell(tmp_path / "results" / "tracked", "fine_tune/arch_a/n2/seed0")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    log = tmp_path / "job.log"
    tracking.track_cell(config, tmp_path, ("fine_tune", "arch_a", 2, 0), log)
    assert "MLflow: logged run" in log.read_text(), log.read_text()
    uri = tracking.resolve_uri(config, tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/results/tracked/mlflow/mlflow.db"
    (run,) = runs_of(uri, "tracked")
    from mlflow.tracking import MlflowClient

    # Made by the first upload, as an experiment of training runs (what MLflow's UI opens it on).
    assert MlflowClient(tracking_uri=uri).get_experiment_by_name("tracked").tags["mlflow.experimentKind"] == \
        "custom_model_development"
    params = run.data.params
    assert {k: params[k] for k in ("strategy", "architecture", "n", "seed")} == dict(
        strategy="fine_tune", architecture="arch_a", n="2", seed="0")
    for key in ("config_hash", "git_commit", "fastai_version", "torch_version"):
        assert params[key] and params[key] != "None", key
    assert run.info.run_name == "fine_tune/arch_a/n2/seed0" and run.info.status == "FINISHED"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    history = pd.read_csv(folder / "history.csv")
    valid = client.get_metric_history(run.info.run_id, "valid_accuracy")
    assert [(m.step, m.value) for m in sorted(valid, key=lambda m: m.step)] == list(
        zip(range(1, len(history) + 1), history["valid_accuracy"]))
    test = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert [(m.step, m.value) for m in test] == [(3, history["test_accuracy"].iloc[-1])]  # the scored epoch alone
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "cell")) == [
        "cell/epoch_seconds.csv", "cell/history.csv", "cell/metrics.json"]
    # Logging read the files and changed none of them; it recorded the run.
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    record = json.loads((tmp_path / "results" / "tracked" / "tracking" / "fine_tune/arch_a/n2/seed0.json").read_text())
    assert record["run_id"] == run.info.run_id
    # Nothing of the environment is logged, and no path: a weights file is named as such.
    logged = json.dumps([run.data.params, run.data.tags])
    assert SECRET not in logged and str(Path.home()) not in logged and str(tmp_path) not in logged
    assert tracking.run_params(dict(config, pretrained=str(tmp_path / "body.pt")), "fine_tune", "a", 1, 0)[
        "pretrained"] == "a weights file"


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_a_tracker_that_is_down_costs_a_job_at_most_its_timeout_and_fails_nothing(tmp_path, kind):
    """Nothing listening (refused at once), or a server that accepts and never answers (waits out the timeout)."""
    with contextlib.ExitStack() as stack:
        port = free_port()
        if kind == "silent":
            listener = stack.enter_context(socket.socket())
            listener.bind(("127.0.0.1", port))
            listener.listen(8)  # connections queue; nobody reads them
        config = tracked_config(f"http://alice:{SECRET}@127.0.0.1:{port}", tracking=dict(
            mlflow=f"http://alice:{SECRET}@127.0.0.1:{port}", timeout=3))
        write_cell(tmp_path / "results" / "tracked", "fine_tune/arch_a/n2/seed0")
        log = tmp_path / "job.log"
        start = time.monotonic()
        tracking.track_cell(config, tmp_path, ("fine_tune", "arch_a", 2, 0), log)
        elapsed = time.monotonic() - start
    text = log.read_text()
    assert elapsed < 3 + 1.5, elapsed
    assert "MLflow: not logged" in text or "MLflow: gave up after 3 s" in text, text
    assert "`python -m epochbench track` uploads it later" in text
    assert SECRET not in text and "alice" not in text  # the URI's credentials are shown as ***
    assert not (tmp_path / "results" / "tracked" / "tracking").exists()


def test_track_uploads_what_is_missing_once(tmp_path):
    config = tracked_config(True, seeds=[0, 1])
    results = tmp_path / "results" / "tracked"
    for seed in (0, 1):
        for n in (1, 2):
            write_cell(results, f"fine_tune/arch_a/n{n}/seed{seed}", seed=seed, n=n)
    config_path = tmp_path / "tracked.yaml"
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "epochbench", "track", "--configfile", str(config_path), "--directory",
               str(tmp_path)]
    first = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert "4 run(s) uploaded, 0 already there" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert "0 run(s) uploaded, 4 already there" in second.stdout, second.stdout
    uri = tracking.resolve_uri(config, tmp_path)
    assert sorted(run.info.run_name for run in runs_of(uri, "tracked")) == [
        f"fine_tune/arch_a/n{n}/seed{s}" for n in (1, 2) for s in (0, 1)]


def test_track_without_tracking_in_the_config_names_the_key(tmp_path):
    config_path = tmp_path / "plain.yaml"
    config = tracked_config(True)
    del config["tracking"]
    config_path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "epochbench", "track", "--configfile", str(config_path)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"epochbench track: {config_path}: config key 'tracking.mlflow' is not set "
                                     "(give it, or --tracking-uri)")


def test_analyze_reads_runs_that_another_tool_logged(tmp_path):
    """Runs with params architecture, n, seed and per-epoch accuracy metrics: the same decisions as their CSV."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/other.db"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("elsewhere", artifact_location=(tmp_path / "artifacts").as_uri())
    rng = np.random.default_rng(3)
    rows = []
    for seed in range(6):
        for n in (1, 2, 3):
            valid = 0.8 - (0.05 if n == 3 else 0.0) + rng.normal(0, 0.004)
            run = client.create_run(experiment, run_name=f"n{n}-s{seed}")
            for key, value in dict(architecture="vit_tiny", n=n, seed=seed, optimizer="adamw").items():
                client.log_param(run.info.run_id, key, value)
            for step in range(1, n + 1):  # a curve: only the last value is the run's final one
                client.log_metric(run.info.run_id, "valid_accuracy", valid - 0.1 * (n - step), step=step)
                client.log_metric(run.info.run_id, "test_accuracy", valid - 0.02 - 0.1 * (n - step), step=step)
            client.set_terminated(run.info.run_id)
            rows.append(dict(architecture="vit_tiny", n=n, seed=seed, valid_accuracy=valid, test_accuracy=valid - 0.02))
    unrelated = client.create_run(experiment, run_name="a notebook")
    client.log_metric(unrelated.info.run_id, "valid_accuracy", 0.1)
    client.set_terminated(unrelated.info.run_id)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "epochbench", "analyze", "--mlflow", "elsewhere", "--tracking-uri",
                             uri, "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    expected = decisions.analyze(pd.DataFrame(rows))
    comparison = pd.read_csv(out / "comparison.csv")
    assert comparison["verdict"].tolist() == expected["comparison"]["verdict"].tolist()
    assert comparison["mean"].to_numpy() == pytest.approx(expected["comparison"]["mean"].to_numpy(), abs=1e-7)
    assert bool(pd.read_csv(out / "overfitting.csv")["overfits"].iloc[0]) is True
    assert len(pd.read_csv(out / "finals.csv")) == 18
    assert mlflow.__version__


def test_analyze_names_a_missing_experiment(tmp_path):
    uri = f"sqlite:///{tmp_path}/empty.db"
    result = subprocess.run([sys.executable, "-m", "epochbench", "analyze", "--mlflow", "nope", "--tracking-uri", uri,
                             "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"epochbench analyze: no MLflow experiment 'nope' at {uri}"
    assert not (tmp_path / "o").exists()


def test_tracking_changes_no_config_hash_and_no_rule_param():
    from epochbench.config import config_hash

    config = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    assert config_hash(dict(config, tracking=dict(mlflow="http://127.0.0.1:5000"))) == config_hash(config)


# --- a real MLflow server --------------------------------------------------------------------------------------


@contextlib.contextmanager
def mlflow_server(folder: Path, port: int = None):
    """`mlflow server` on 127.0.0.1 with an SQLite backend in `folder`; yields (url, pid); stopped by its pid."""
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / f"server-{port}.log", "a")  # noqa: SIM115  (closed below)
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow_cli), "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mlflow server did not start: {(folder / f'server-{port}.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, server
    finally:
        stop(server)
        log.close()


def stop(server) -> None:
    """Stop the server by its pid: its process group (it and its workers), TERM then KILL."""
    if server.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def smallest_config(folder: Path, uri: str) -> Path:
    """config/ci.yaml cut to one architecture and one replicate, with tracking to `uri`."""
    config = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    config.update(architectures=["test_resnet"], seeds=[0], tracking=dict(mlflow=uri, timeout=20))
    path = folder / "tracked.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def pictures():
    """docs/pictures.py as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pictures", ROOT / "docs" / "pictures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_sweep_tracked_by_a_real_server_lands_there_and_comes_back(finished_run, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    workdir, _ = finished_run
    monkeypatch.setenv("EPOCHBENCH_TEST_SECRET", SECRET)
    with mlflow_server(tmp_path / "server") as (url, _):
        authed = url.replace("http://", f"http://alice:{SECRET}@")
        sweep = tmp_path / "sweep"
        sweep.mkdir()
        config_path = smallest_config(sweep, authed)
        result = snakemake(sweep, configfile=config_path)
        assert SECRET not in result.stdout + result.stderr  # MLflow prints run URLs unless told not to
        config = yaml.safe_load(config_path.read_text())
        cells = [f"{s}/test_resnet/n{n}/seed0" for s in config["strategies"] for n in (1, 2)]

        client = MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name("ci")
        runs = {run.info.run_name: run for run in runs_of(url, "ci")}
        assert sorted(runs) == sorted(cells)
        for cell in cells:
            run, folder = runs[cell], sweep / "results" / "ci" / "cells" / cell
            strategy, arch, n, seed = cell.replace("/n", "/").replace("/seed", "/").split("/")
            assert {k: run.data.params[k] for k in ("strategy", "architecture", "n", "seed")} == dict(
                strategy=strategy, architecture=arch, n=n, seed=seed)
            history = pd.read_csv(folder / "history.csv")
            for metric in ("valid_accuracy", "train_loss", "lr"):
                logged = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
                assert [(m.step, m.value) for m in logged] == list(zip(range(1, len(history) + 1), history[metric]))
            # Tracking changed no number: the cell's files are those of the untracked run, byte for byte.
            for name in ("history.csv", "metrics.json"):
                assert digest(folder / name) == digest(workdir / "results" / "ci" / "cells" / cell / name), cell
        (summary,) = runs_of(url, "ci", kind="summary")
        assert "report/index.html" in [a.path for a in client.list_artifacts(summary.info.run_id, "report")]
        logged = json.dumps([[r.data.params, r.data.tags] for r in [*runs.values(), summary]])
        assert SECRET not in logged
        for text in [p.read_text() for p in (sweep / "results" / "ci" / "tracking").rglob("*.json")] + \
                    [p.read_text() for p in (sweep / "logs").rglob("*.log")] + \
                    [(sweep / "reports" / "ci" / "index.html").read_text()]:
            assert SECRET not in text

        # The MLflow UI lists the runs: headless Chromium on the experiment's page, by docs/pictures.py (which
        # makes the README's picture the same way).
        browser_paths()  # fails with one line where Chromium is missing
        shot = pictures().mlflow_picture(url, experiment.experiment_id, tmp_path, expected=cells)
        print(f"MLflow UI screenshot: {shot}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # The whole finished run of config/ci.yaml, uploaded by `track`, comes back into the same verdicts.
        # Its test_resnet seed-0 cells have the sweep's numbers but their own epoch seconds: their runs replace
        # the sweep's, so that each cell of the experiment has one run.
        tracked_run = tmp_path / "finished"  # a copy: track writes its records under results/
        shutil.copytree(workdir / "results", tracked_run / "results")
        full = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
        full_path = tmp_path / "ci_tracked.yaml"
        full_path.write_text(yaml.safe_dump(dict(full, tracking=dict(mlflow=url))))
        track = subprocess.run([sys.executable, "-m", "epochbench", "track", "--configfile", str(full_path),
                                "--directory", str(tracked_run)], capture_output=True, text=True, cwd=ROOT)
        assert track.returncode == 0, track.stderr
        assert track.stdout.splitlines() == [
            f"MLflow experiment 'ci' at {url}: 24 run(s) uploaded, 0 already there, 0 found without a record, "
            "6 earlier run(s) replaced (half-logged, or of files since rewritten); 0 cell(s) not finished yet"]
        assert len(runs_of(url, "ci")) == 24
        out = tmp_path / "from_mlflow"
        analyze = subprocess.run([sys.executable, "-m", "epochbench", "analyze", "--mlflow", "ci", "--tracking-uri",
                                  url, "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
        assert analyze.returncode == 0, analyze.stderr
        tables = workdir / "results" / "ci" / "tables"
        for name in ("comparison", "overfitting", "strategies"):
            analyzed = pd.read_csv(out / f"{name}.csv")
            # The pipeline's overfitting.csv adds the within-run curve's columns to the same decisions.
            pd.testing.assert_frame_equal(analyzed, pd.read_csv(tables / f"{name}.csv")[analyzed.columns])


@pytest.mark.slow
def test_a_sweep_outlives_its_tracker_and_track_uploads_the_rest(tmp_path):
    port = free_port()
    server_folder = tmp_path / "server"
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    url = f"http://127.0.0.1:{port}"
    config_path = smallest_config(sweep, url)
    config = yaml.safe_load(config_path.read_text())
    config["tracking"]["timeout"] = 5
    config_path.write_text(yaml.safe_dump(config))
    records = sweep / "results" / "ci" / "tracking"
    with mlflow_server(server_folder, port) as (_, server):
        command = ["snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(sweep),
                   "--configfile", str(config_path), "--cores", "2"]
        run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
        try:
            deadline = time.monotonic() + 600
            while not (records.exists() and any(records.rglob("seed0.json"))):
                assert run.poll() is None, "the sweep ended before any cell was tracked"
                assert time.monotonic() < deadline
                time.sleep(0.2)
            stop(server)  # the tracker goes down mid-sweep, by its pid
            output, _ = run.communicate(timeout=900)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
    assert run.returncode == 0, output[-3000:]
    cells = [f"{s}/test_resnet/n{n}/seed0" for s in config["strategies"] for n in (1, 2)]
    recorded = {str(p.relative_to(records)).removesuffix(".json") for p in records.rglob("seed*.json")}
    assert recorded and set(cells) - recorded, f"the server went down after every cell was tracked: {recorded}"
    # The jobs that found it down said so in their logs, and waited at most the timeout for it.
    for cell in set(cells) - recorded:
        line = [x for x in (sweep / "logs" / "ci" / "train" / f"{cell}.log").read_text().splitlines()
                if x.startswith("MLflow")][-1]
        assert "`python -m epochbench track` uploads it later" in line
        assert float(line.rsplit("(", 1)[1].removesuffix(" s)")) < 5 + 1.5, line
    assert (sweep / "reports" / "ci" / "index.html").is_file()

    with mlflow_server(server_folder, port):  # the same store, back up
        track = subprocess.run([sys.executable, "-m", "epochbench", "track", "--configfile", str(config_path),
                                "--directory", str(sweep)], capture_output=True, text=True, cwd=ROOT)
        assert track.returncode == 0, track.stderr
        runs = runs_of(url, "ci")
        assert sorted(run.info.run_name for run in runs) == sorted(cells)
        assert all(run.info.status == "FINISHED" for run in runs)
        assert len(runs_of(url, "ci", kind="summary")) == 1
    assert {str(p.relative_to(records)).removesuffix(".json") for p in records.rglob("seed*.json")} == set(cells)
