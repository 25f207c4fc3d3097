"""MLflow tracking: one MLflow run per training cell, logged from the files its finished job wrote.

With `tracking: {mlflow: URI}` in the config (`true`: an SQLite store under
results/<experiment>/mlflow/), each `train` job, once its cell's files are
written, logs one run into the MLflow experiment named after the epochbench
experiment: params (strategy, architecture, n, seed, config hash, git commit,
fastai/torch versions, a few settings), the history as metrics with step = the
cell's epoch (1 = the first frozen epoch), and the three files as artifacts. The
render_report job logs a summary run with the report and the tables.

The files stay the source of truth, and training never depends on the tracker:
- logging reads the finished files, after training, so no number can change
  (tested: the same cells with and without tracking are byte-identical);
- a job gives the tracker at most `tracking.timeout` seconds in all (a health
  check first, requests without retries, and the whole upload in a thread the
  job stops waiting for), and never fails for it;
- what was uploaded is recorded in results/<experiment>/tracking/<cell>.json,
  and `python -m epochbench track` uploads whatever has no record (a tracker that
  was down, a sweep run without tracking), replacing half-finished runs.
Nothing of the environment is logged, and credentials in URIs are stripped
(`epochbench.redact`). mlflow is an optional dependency (`epochbench[mlflow]`),
imported only here and only when tracking is used.
"""

import contextlib
import csv
import hashlib
import json
import math
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .provenance import git_commit
from .redact import redact_credentials
from .status import CELL_FILES, cell_path, planned_cells

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT = 20.0
# History columns logged per epoch (step = the cell's epoch), and the seconds each epoch took.
EPOCH_METRICS = ("train_loss", "train_loss_epoch", "valid_loss", "valid_accuracy", "test_loss", "test_accuracy", "lr")
# Settings logged as params beside the cell's keys: plain values, none of them a path or an address.
SETTING_PARAMS = ("max_epochs", "image_size", "batch_size", "pretrained", "device", "precision", "split")
BATCH = 1000  # MLflow's most metrics per log_batch


class TrackingError(RuntimeError):
    """The tracker cannot be used (not installed, not reachable, no such experiment): one line saying which."""


def tracking_settings(config: dict) -> dict:
    """{uri, timeout} from the config's `tracking` block; uri None where tracking is off."""
    tracking = config.get("tracking") or {}
    value = tracking.get("mlflow", False)
    return dict(uri=None if value is False or value is None else value,
                timeout=float(tracking.get("timeout", DEFAULT_TIMEOUT)))


def store_folder(config: dict, workdir) -> Path:
    """Where `mlflow: true` keeps its SQLite store and artifacts, and where the upload records go."""
    return Path(workdir).resolve() / "results" / config["experiment"] / "mlflow"


def resolve_uri(config: dict, workdir) -> "str | None":
    """The tracking URI: the config's, or for `true` an SQLite store under the experiment's results folder."""
    uri = tracking_settings(config)["uri"]
    if uri is True:
        return "sqlite:///" + str(store_folder(config, workdir) / "mlflow.db")
    return uri


def bound_requests(timeout: float) -> None:
    """Make every request of MLflow's REST client give up after `timeout` seconds, without retrying; print no URLs.

    MLflow retries a failed request with exponential backoff (by default for
    minutes): a tracker that is down must not hold a job that long. Set before
    mlflow is imported and read again by it per request (mlflow.environment_variables).
    """
    seconds = str(max(1, math.ceil(timeout)))
    # MlflowClient.set_terminated prints each run's address, credentials and all where the URI has them:
    # the jobs' console is no place for either.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = seconds
    os.environ["MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT"] = seconds


def check_reachable(uri: str, timeout: float) -> None:
    """TrackingError unless an http(s) tracking server answers /health within `timeout` (other stores: nothing to ask)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    # Credentials never go into the health check's URL (urllib would not use them there anyway).
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    health = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    try:
        with urllib.request.urlopen(health, timeout=timeout) as answer:  # noqa: S310  (http(s) only, checked above)
            if answer.status != 200:
                raise TrackingError(f"MLflow tracker at {redact_credentials(uri)}: /health answered {answer.status}")
    except (OSError, urllib.error.URLError) as err:
        raise TrackingError(f"MLflow tracker at {redact_credentials(uri)} not reachable ({err})") from None


def client_for(uri: str, timeout: float):
    """An MlflowClient for `uri` whose requests are bounded (`bound_requests`), once the tracker answers."""
    bound_requests(timeout)
    check_reachable(uri, min(timeout, 5.0))
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise TrackingError("tracking.mlflow is set but mlflow is not installed: pip install 'epochbench[mlflow]'") \
            from None
    return MlflowClient(tracking_uri=uri)


def experiment_id(client, name: str, artifact_location: str = None) -> str:
    """The id of the MLflow experiment `name`, created if missing (two jobs creating it at once is fine)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        # MLflow 3's UI opens an experiment of no stated kind on its GenAI (traces) pages: this one holds training runs.
        return client.create_experiment(name, artifact_location=artifact_location,
                                        tags={"mlflow.experimentKind": "custom_model_development"})
    except MlflowException:  # another job created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def files_digest(folder: Path, names) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return digest.hexdigest()[:16]


def run_params(config: dict, strategy: str, arch: str, n: int, seed: int) -> dict:
    """A cell's params: its keys, the config's hash, the code and library versions, a few plain settings."""
    from .config import config_hash

    params = dict(strategy=strategy, architecture=arch, n=n, seed=seed, experiment=config["experiment"],
                  config_hash=config_hash(config), git_commit=git_commit(ROOT).split()[0],
                  fastai_version=package_version("fastai"), torch_version=package_version("torch"),
                  epochbench_version=package_version("epochbench"),
                  dataset=config["dataset"]["name"], base_lr=config.get("fine_tune", {}).get("base_lr"))
    params.update({key: config[key] for key in SETTING_PARAMS if key in config})
    if params.get("pretrained") not in (None, "imagenet", "none", "source"):
        params["pretrained"] = "a weights file"  # its path is the user's own business, not the tracker's
    return {key: str(value) for key, value in redact_credentials(params).items()}


def epoch_metrics(cell_dir: Path) -> list:
    """(key, value, step) of every epoch of the cell's history and epoch seconds; missing (NaN) values left out."""
    with open(cell_dir / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    with open(cell_dir / "epoch_seconds.csv", newline="") as handle:
        seconds = [row["seconds"] for row in csv.DictReader(handle)]
    found = []
    for step, row in enumerate(history, start=1):
        values = {key: row.get(key, "") for key in EPOCH_METRICS}
        values["epoch_seconds"] = seconds[step - 1] if step <= len(seconds) else ""
        for key, text in values.items():
            if text not in ("", "nan", "NaN") and math.isfinite(float(text)):
                found.append((key, float(text), step))
    return found


def record_path(config: dict, workdir, name: str) -> Path:
    return Path(workdir) / "results" / config["experiment"] / "tracking" / f"{name}.json"


def read_record(path: Path) -> "dict | None":
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return None


@contextlib.contextmanager
def store_lock(uri: str, config: dict, workdir):
    """For the SQLite store of `mlflow: true`: one writer at a time (SQLite and its first migration are not for crowds)."""
    if not uri.startswith("sqlite:"):
        yield
        return
    import fcntl

    folder = store_folder(config, workdir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def log_cell(client, experiment: str, config: dict, workdir, cell: tuple, uri: str) -> dict:
    """Log one finished cell as one MLflow run (params, per-epoch metrics, files) and record it; return the record."""
    from mlflow.entities import Metric, Param

    strategy, arch, n, seed = cell
    name = cell_path(*cell)
    cell_dir = Path(workdir) / "results" / config["experiment"] / "cells" / name
    digest = files_digest(cell_dir, CELL_FILES)
    record_file = record_path(config, workdir, name)
    previous = read_record(record_file)
    params = run_params(config, strategy, arch, n, seed)
    tags = {"epochbench.kind": "cell", "epochbench.cell": name, "epochbench.experiment": config["experiment"],
            "epochbench.config_hash": params["config_hash"], "epochbench.files": digest,
            "mlflow.source.git.commit": params["git_commit"], "mlflow.source.name": "epochbench"}
    run = client.create_run(experiment, run_name=name, tags=tags)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, step) for key, value, step in epoch_metrics(cell_dir)]
    final = json.loads((cell_dir / "metrics.json").read_text())
    # How many epochs the cell trained (and how many of them its frozen fit shared), at its last epoch.
    last = int(final.get("epochs_trained", 0))
    metrics += [Metric(key, float(final[key]), now, last) for key in ("epochs_trained", "epochs_shared") if key in final]
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    for start in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start:start + BATCH])
    for file in CELL_FILES:
        client.log_artifact(run_id, str(cell_dir / file), artifact_path="cell")
    client.set_terminated(run_id, "FINISHED")
    # A rerun cell (new files) replaces its earlier run in the same store: one run per cell stays active.
    if previous and previous.get("uri") == redact_credentials(uri) and previous.get("run_id") != run_id:
        with contextlib.suppress(Exception):
            client.delete_run(previous["run_id"])
    record = dict(run_id=run_id, experiment_id=experiment, uri=redact_credentials(uri), files=digest)
    from .io import write_json

    write_json(record_file, record)
    return record


def is_recorded(config: dict, workdir, name: str, uri: str, digest: str = None) -> bool:
    record = read_record(record_path(config, workdir, name))
    return bool(record) and record.get("uri") == redact_credentials(uri) and (digest is None
                                                                             or record.get("files") == digest)


def within(timeout: float, work, *args):
    """Run `work(*args)` in a daemon thread; (True, its result) if it ended within `timeout` s, else (False, None).

    The job stops waiting and exits; the thread dies with it. A run it left half
    logged stays RUNNING, and `track` replaces it.
    """
    outcome = {}

    def target():
        try:
            outcome["result"] = work(*args)
        except BaseException as err:  # noqa: BLE001  (reported by the caller, never raised into the job)
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True, name="epochbench-mlflow")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return False, None
    if "error" in outcome:
        raise outcome["error"]
    return True, outcome.get("result")


def track_cell(config: dict, workdir, cell: tuple, log_path) -> None:
    """The train job's tracking step: log the finished cell, within the bound, never failing the job."""
    settings = tracking_settings(config)
    uri = resolve_uri(config, workdir)
    start = time.monotonic()

    def upload():
        client = client_for(uri, settings["timeout"])
        artifacts = (store_folder(config, workdir) / "artifacts").as_uri() if uri.startswith("sqlite:") else None
        with store_lock(uri, config, workdir):
            experiment = experiment_id(client, config["experiment"], artifacts)
            return log_cell(client, experiment, config, workdir, cell, uri)

    try:
        done, record = within(settings["timeout"], upload)
        message = (f"MLflow: logged run {record['run_id']} at {record['uri']}" if done else
                   f"MLflow: gave up after {settings['timeout']:g} s")
    except Exception as err:  # noqa: BLE001  (a tracker's trouble never fails a finished cell)
        done, message = False, f"MLflow: not logged ({type(err).__name__}: {redact_credentials(str(err))[:300]})"
    if not done:
        message += "; the cell's files are whole, and `python -m epochbench track` uploads it later"
    with open(log_path, "a") as log:
        log.write(f"{message} ({time.monotonic() - start:.2f} s)\n")


def summary_files(config: dict, workdir) -> list:
    experiment = config["experiment"]
    tables = sorted((Path(workdir) / "results" / experiment / "tables").glob("*.csv"))
    return [Path(workdir) / "reports" / experiment / "index.html", *tables]


def log_summary(client, experiment: str, config: dict, workdir, uri: str) -> dict:
    """The summary run: the report and every table as artifacts, the config's hash and the code's commit as params."""
    from .config import config_hash

    files = [path for path in summary_files(config, workdir) if path.is_file()]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()[:16]
    params = {"experiment": config["experiment"], "config_hash": config_hash(config),
              "git_commit": git_commit(ROOT).split()[0], "cells": str(len(planned_cells(config)))}
    run = client.create_run(experiment, run_name="summary", tags={
        "epochbench.kind": "summary", "epochbench.experiment": config["experiment"],
        "epochbench.config_hash": params["config_hash"], "epochbench.files": digest,
        "mlflow.source.git.commit": params["git_commit"], "mlflow.source.name": "epochbench"})
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    for path in files:
        client.log_artifact(run.info.run_id, str(path), artifact_path="report" if path.suffix == ".html" else "tables")
    client.set_terminated(run.info.run_id, "FINISHED")
    previous = read_record(record_path(config, workdir, "summary"))
    if previous and previous.get("uri") == redact_credentials(uri):
        with contextlib.suppress(Exception):
            client.delete_run(previous["run_id"])
    record = dict(run_id=run.info.run_id, experiment_id=experiment, uri=redact_credentials(uri), files=digest)
    from .io import write_json

    write_json(record_path(config, workdir, "summary"), record)
    return record


def track_summary(config: dict, workdir, log) -> None:
    """The render_report job's tracking step: the summary run, within the bound, never failing the job."""
    settings = tracking_settings(config)
    uri = resolve_uri(config, workdir)

    def upload():
        client = client_for(uri, settings["timeout"])
        artifacts = (store_folder(config, workdir) / "artifacts").as_uri() if uri.startswith("sqlite:") else None
        with store_lock(uri, config, workdir):
            return log_summary(client, experiment_id(client, config["experiment"], artifacts), config, workdir, uri)

    try:
        done, record = within(settings["timeout"], upload)
        log.info("MLflow: %s", f"logged summary run {record['run_id']}" if done else
                 f"gave up after {settings['timeout']:g} s; `python -m epochbench track` uploads it later")
    except Exception as err:  # noqa: BLE001
        log.info("MLflow: summary not logged (%s: %s); `python -m epochbench track` uploads it later",
                 type(err).__name__, redact_credentials(str(err))[:300])


def upload_missing(config: dict, workdir, uri: str, timeout: float) -> dict:
    """Upload every finished cell (and the summary) that has no record for `uri`; half-logged runs are replaced.

    Returns counts: uploaded, already (recorded before), adopted (a finished run found without a record,
    e.g. when a job gave up just after the upload), replaced (half-logged runs, or runs of other files of the
    same cell, e.g. another folder's or an earlier run's: deleted, so that each cell has one active run).
    """
    from mlflow.entities import ViewType

    client = client_for(uri, timeout)
    artifacts = (store_folder(config, workdir) / "artifacts").as_uri() if uri.startswith("sqlite:") else None
    counts = dict(uploaded=0, already=0, adopted=0, replaced=0, unfinished=0)
    results = Path(workdir) / "results" / config["experiment"]
    with store_lock(uri, config, workdir):
        experiment = experiment_id(client, config["experiment"], artifacts)
        existing, token = {}, None
        while True:
            page = client.search_runs([experiment], filter_string="tags.`epochbench.kind` = 'cell'",
                                      run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
            for run in page:
                existing.setdefault(run.data.tags.get("epochbench.cell"), []).append(run)
            token = page.token
            if not token:
                break
        for cell in planned_cells(config):
            name = cell_path(*cell)
            cell_dir = results / "cells" / name
            if not all((cell_dir / file).is_file() for file in CELL_FILES):
                counts["unfinished"] += 1
                continue
            digest = files_digest(cell_dir, CELL_FILES)
            if is_recorded(config, workdir, name, uri, digest):
                counts["already"] += 1
                continue
            runs = existing.get(name, [])
            whole = [run for run in runs if run.info.status == "FINISHED" and run.data.tags.get("epochbench.files") == digest]
            kept = whole[0].info.run_id if whole else None
            for run in runs:
                if run.info.run_id != kept:  # half-logged (RUNNING), or of files since rewritten
                    client.delete_run(run.info.run_id)
                    counts["replaced"] += 1
            if whole:
                from .io import write_json

                write_json(record_path(config, workdir, name), dict(
                    run_id=whole[0].info.run_id, experiment_id=experiment, uri=redact_credentials(uri), files=digest))
                counts["adopted"] += 1
                continue
            log_cell(client, experiment, config, workdir, cell, uri)
            counts["uploaded"] += 1
        report = Path(workdir) / "reports" / config["experiment"] / "index.html"
        summary = read_record(record_path(config, workdir, "summary"))
        if report.is_file() and not (summary and summary.get("uri") == redact_credentials(uri)):
            log_summary(client, experiment, config, workdir, uri)
            counts["uploaded"] += 1
    return counts


def runs_as_rows(client, experiment: str, uri: str) -> tuple:
    """(a row per usable run, how many runs were not usable) of the experiment's finished, active runs."""
    from mlflow.entities import ViewType

    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise TrackingError(f"no MLflow experiment {experiment!r} at {redact_credentials(uri)}")
    rows, token, skipped = [], None, 0
    while True:
        page = client.search_runs([found.experiment_id], filter_string="attributes.status = 'FINISHED'",
                                  run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        for run in page:
            params, metrics = run.data.params, run.data.metrics
            if not {"architecture", "n", "seed"} <= params.keys() or not {"valid_accuracy", "test_accuracy"} <= metrics.keys():
                skipped += 1
                continue
            row = dict(architecture=params["architecture"], n=int(float(params["n"])), seed=int(float(params["seed"])),
                       strategy=params.get("strategy", "fine_tune"), start_time=run.info.start_time,
                       valid_accuracy=metrics["valid_accuracy"], test_accuracy=metrics["test_accuracy"])
            row.update({key: metrics[key] for key in ("valid_loss", "test_loss") if key in metrics})
            rows.append(row)
        token = page.token
        if not token:
            break
    return rows, skipped


def finals_from_mlflow(experiment: str, uri: str = None, timeout: float = DEFAULT_TIMEOUT):
    """A finals table (architecture, n, seed, valid_accuracy, test_accuracy [, strategy, losses]) from MLflow runs.

    Every finished, active run of the experiment whose params name architecture,
    n and seed and whose metrics include valid_accuracy and test_accuracy counts
    (epochbench's own cells, or runs logged by anything else); a metric's value is
    its last (highest step). Where one cell was logged more than once, the latest
    run counts, and a line on stderr says so.
    """
    import pandas as pd

    if uri is None:
        import mlflow

        uri = mlflow.get_tracking_uri()
    client = client_for(uri, timeout)
    try:
        rows, skipped = runs_as_rows(client, experiment, uri)
    except TrackingError:
        raise
    except Exception as err:  # noqa: BLE001  (MlflowException, a connection error: one line)
        raise TrackingError(f"MLflow at {redact_credentials(uri)}: "
                            f"{redact_credentials(str(err)).splitlines()[0][:300]}") from None
    if not rows:
        raise TrackingError(f"MLflow experiment {experiment!r} at {redact_credentials(uri)}: no finished run has "
                            f"params architecture, n and seed and metrics valid_accuracy and test_accuracy "
                            f"({skipped} other run{'s' * (skipped != 1)})")
    finals = pd.DataFrame(rows).sort_values("start_time", kind="stable")
    keys = ["strategy", "architecture", "n", "seed"]
    twice = finals.duplicated(keys, keep="last")
    if twice.any():
        print(f"epochbench analyze: {int(twice.sum())} cell(s) logged more than once; the latest run of each counts",
              file=sys.stderr)
    finals = finals[~twice].drop(columns="start_time").sort_values(keys, kind="stable").reset_index(drop=True)
    return finals[[*keys, "valid_accuracy", "test_accuracy",
                   *[c for c in ("valid_loss", "test_loss") if c in finals.columns]]]


def main(args, config: dict) -> int:
    """`python -m epochbench track`: upload what the sweep's jobs could not."""
    settings = tracking_settings(config)
    uri = args.tracking_uri or resolve_uri(config, args.directory)
    if uri is None:
        print(f"epochbench track: {args.configfile}: config key 'tracking.mlflow' is not set (give it, or "
              "--tracking-uri)", file=sys.stderr)
        return 2
    try:
        counts = upload_missing(config, args.directory, uri, settings["timeout"])
    except TrackingError as err:
        print(f"epochbench track: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001  (the tracker failed half-way: say so in one line; rerun to finish)
        print(f"epochbench track: MLflow at {redact_credentials(uri)}: {type(err).__name__}: "
              f"{redact_credentials(str(err)).splitlines()[0][:300]}; run it again to upload the rest", file=sys.stderr)
        return 1
    print(f"MLflow experiment {config['experiment']!r} at {redact_credentials(uri)}: {counts['uploaded']} run(s) "
          f"uploaded, {counts['already']} already there, {counts['adopted']} found without a record, "
          f"{counts['replaced']} earlier run(s) replaced (half-logged, or of files since rewritten); {counts['unfinished']} cell(s) not finished yet")
    return 0
