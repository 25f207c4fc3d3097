"""`python -m epochbench status`: how far a sweep has got, read from its files alone.

It reads the config, `results/<experiment>/` and the training jobs' logs under
`logs/<experiment>/train/`, and nothing of Snakemake's: it never takes (or waits
for) the workflow's lock, so it can be run at any time beside a running sweep.
Light on purpose (no pandas, torch or fastai): a finished default experiment
reads in well under a second.

A cell is
- finished: its three files (history.csv, epoch_seconds.csv, metrics.json) are there
  (each is written atomically, so one that exists is whole);
- failed: not finished, and its job log holds a traceback or epochbench's own
  one-line error (a job the warm server saw killed by a signal);
- started: not finished, with a log and no error in it: running now, or stopped
  (a killed sweep) where no Snakemake holds the folder's lock;
- waiting: no log yet.

The time left is estimated from what the finished cells measured: seconds per
epoch for each strategy and architecture (their epoch_seconds.csv), plus each
job's start-up (its Snakemake benchmark's wall time less its epochs), times the
epochs and jobs left, divided by how many jobs ran side by side so far.
"""

import csv
import json
import time
from pathlib import Path

CELL_FILES = ("history.csv", "epoch_seconds.csv", "metrics.json")
# What a failed job leaves in its log: Python's traceback (epochbench.warm.run_here), or
# epochbench.warm's one line for a job whose warm process died by a signal.
FAILURE_MARKS = ("Traceback (most recent call last):", "epochbench: ")


def planned_cells(config: dict, results=None) -> list:
    """Every (strategy, architecture, n, seed) of the grid, in the pipeline's order.

    A sequential design plans up to its last look's seeds, except where a look has decided already: with
    `results` (the experiment's results folder) the latest look's decisions (`looks/look<j>.json`, written by
    checkpoint look) give each architecture its seeds, so one that stopped plans no more runs.
    """
    looks = (config.get("replicates") or {}).get("looks")
    seeds = config["seeds"][: looks[-1]] if looks else config["seeds"]
    decided = latest_look(results) if looks and results is not None else {}
    return [(strategy, arch, n, seed) for strategy in config["strategies"] for arch in config["architectures"]
            for n in range(1, config["max_epochs"] + 1) for seed in decided.get(arch, seeds)]


def latest_look(results) -> dict:
    """{architecture: its seeds} from the latest look's decisions in `results`/looks ({} before the first look)."""
    files = {int(path.stem.removeprefix("look")): path for path in Path(results, "looks").glob("look*.json")
             if path.stem.removeprefix("look").isdigit()}
    if not files:
        return {}
    return json.loads(files[max(files)].read_text())["seeds"]


def cell_path(strategy, arch, n, seed) -> str:
    return f"{strategy}/{arch}/n{n}/seed{seed}"


def epochs_computed(config: dict, strategy: str, n: int) -> int:
    """Epochs a cell's own job computes: fine_tune's and head_only's frozen epochs run in rule frozen_fit."""
    freeze = config.get("fine_tune", {}).get("freeze_epochs", 1)
    return n if strategy in ("fine_tune", "head_only") else freeze + n


def failure_line(log: Path) -> "str | None":
    """The line of a job log that says it failed (the exception, or epochbench's one line), or None."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    if not any(mark in text for mark in FAILURE_MARKS):
        return None
    lines = [line for line in text.splitlines() if line.strip()]
    if FAILURE_MARKS[0] in text:
        return lines[-1].strip()  # the exception itself is a traceback's last line
    return next(line for line in reversed(lines) if line.startswith(FAILURE_MARKS[1])).strip()


def seconds_of(cell_dir: Path) -> tuple:
    """(seconds of the epochs this cell's job computed, how many), from its epoch_seconds.csv."""
    with open(cell_dir / "epoch_seconds.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("shared", "False") != "True"]
    return sum(float(row["seconds"]) for row in rows), len(rows)


def benchmark_seconds(path: Path) -> "float | None":
    """A Snakemake benchmark file's wall seconds (column s), or None where there is none yet."""
    try:
        with open(path, newline="") as handle:
            return float(next(csv.DictReader(handle, delimiter="\t"))["s"])
    except (OSError, StopIteration, KeyError, ValueError):
        return None


def sweep_status(config: dict, workdir=".", now: float = None) -> dict:
    """The state of every cell of `config`'s grid in `workdir`, grouped per strategy and architecture, as plain data."""
    workdir = Path(workdir)
    experiment = config["experiment"]
    results, logs = workdir / "results" / experiment, workdir / "logs" / experiment
    bench = results / "benchmarks"
    now = time.time() if now is None else now
    running = any((workdir / ".snakemake" / "locks").glob("*.lock"))
    groups, failures = {}, []
    measured = {}  # (strategy, arch) -> [epoch seconds, epochs]
    overheads, job_seconds, first_start, last_end = [], 0.0, None, None
    counts = dict(finished=0, failed=0, started=0, waiting=0)
    tracked = 0
    epochs_done = epochs_planned = 0
    for strategy, arch, n, seed in planned_cells(config, results):
        path = cell_path(strategy, arch, n, seed)
        cell_dir, log = results / "cells" / path, logs / "train" / f"{path}.log"
        group = groups.setdefault((strategy, arch), dict(
            strategy=strategy, architecture=arch, per_n={m: [0, 0] for m in range(1, config["max_epochs"] + 1)},
            epochs_done=0, epochs_planned=0, failed=0, started=0))
        epochs = epochs_computed(config, strategy, n)
        group["per_n"][n][1] += 1
        group["epochs_planned"] += epochs
        epochs_planned += epochs
        if all((cell_dir / name).is_file() for name in CELL_FILES):
            state = "finished"
            group["per_n"][n][0] += 1
            group["epochs_done"] += epochs
            epochs_done += epochs
            tracked += (results / "tracking" / f"{path}.json").is_file()
            seconds, count = seconds_of(cell_dir)
            total = measured.setdefault((strategy, arch), [0.0, 0])
            total[0], total[1] = total[0] + seconds, total[1] + count
            wall = benchmark_seconds(bench / "train" / f"{path}.tsv")
            if wall is not None:
                overheads.append(max(wall - seconds, 0.0))
                job_seconds += wall
                end = (cell_dir / "metrics.json").stat().st_mtime
                first_start = min(first_start or end - wall, end - wall)
                last_end = max(last_end or end, end)
        elif log.is_file():
            line = failure_line(log)
            state = "failed" if line else "started"
            if line:
                group["failed"] += 1
                failures.append(dict(strategy=strategy, architecture=arch, n=n, seed=seed,
                                     log=str(log.relative_to(workdir)), error=line))
            else:
                group["started"] += 1
        else:
            state = "waiting"
        counts[state] += 1
    left = time_left(config, groups, measured, overheads, job_seconds, first_start, last_end)
    return dict(
        experiment=experiment, results=str(results.relative_to(workdir)), snakemake_running=running,
        cells=sum(counts.values()), **counts, epochs_done=epochs_done, epochs_planned=epochs_planned,
        groups=[dict(g, per_n={str(m): dict(finished=f, planned=p) for m, (f, p) in g["per_n"].items()})
                for g in groups.values()],
        failures=failures, time_left=left,
        # Finished cells with a record of their MLflow run (epochbench.tracking), where tracking is on.
        tracking=bool((config.get("tracking") or {}).get("mlflow")), tracked=tracked,
    )


def time_left(config, groups, measured, overheads, job_seconds, first_start, last_end) -> dict:
    """Seconds left (None where nothing was measured yet), from the finished cells' epochs and start-up."""
    all_seconds = sum(s for s, _ in measured.values())
    all_epochs = sum(e for _, e in measured.values())
    if not all_epochs:
        return dict(seconds=None, basis="no cell has finished yet: nothing measured")
    overhead = sum(overheads) / len(overheads) if overheads else 0.0
    serial, jobs_left, epochs_left = 0.0, 0, 0
    for (strategy, arch), group in groups.items():
        seconds, epochs = measured.get((strategy, arch), (0.0, 0))
        # A pair with nothing finished yet: the mean over every measured epoch stands in.
        per_epoch = seconds / epochs if epochs else all_seconds / all_epochs
        cells_left = sum(planned - done for done, planned in group["per_n"].values())
        own_epochs_left = group["epochs_planned"] - group["epochs_done"]
        serial += own_epochs_left * per_epoch + cells_left * overhead
        jobs_left += cells_left
        epochs_left += own_epochs_left
    # Jobs side by side so far: busy job seconds over the wall time from the first job's start to the last's end.
    span = (last_end - first_start) if first_start is not None and last_end is not None else 0.0
    parallel = max(job_seconds / span, 1.0) if span > 0 else 1.0
    return dict(seconds=serial / parallel, serial_seconds=serial, jobs_left=jobs_left, epochs_left=epochs_left,
                seconds_per_epoch=all_seconds / all_epochs, epochs_measured=all_epochs,
                startup_seconds=overhead, parallel=parallel,
                basis=f"{all_epochs} epochs measured, {all_seconds / all_epochs:.2f} s each on average, "
                      f"{overhead:.1f} s start-up per job, {parallel:.1f} jobs side by side")


def duration(seconds) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def as_text(status: dict) -> str:
    """The status as a plain-text table: one row per strategy and architecture, one column per n."""
    ns = list(status["groups"][0]["per_n"]) if status["groups"] else []
    header = ["strategy", "architecture", *[f"n={n}" for n in ns], "epochs", "failed"]
    rows = [[g["strategy"], g["architecture"], *[f"{g['per_n'][n]['finished']}/{g['per_n'][n]['planned']}" for n in ns],
             f"{g['epochs_done']}/{g['epochs_planned']}", str(g["failed"])] for g in status["groups"]]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = lambda row: "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)  # noqa: E731
                                 for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
    state = "running" if status["snakemake_running"] else "no Snakemake running in this folder"
    out = [f"experiment {status['experiment']} ({status['results']}/): {state}", "", line(header),
           *map(line, rows), "",
           f"runs: {status['finished']} of {status['cells']} finished, {status['started']} started, "
           f"{status['failed']} failed, {status['waiting']} waiting; "
           f"epochs: {status['epochs_done']} of {status['epochs_planned']} (cells' own, frozen fits apart)"]
    for failure in status["failures"]:
        out.append(f"failed: {failure['strategy']} {failure['architecture']} n={failure['n']} "
                   f"seed={failure['seed']}: {failure['log']} ({failure['error'][:100]})")
    if status["tracking"]:
        out.append(f"MLflow: {status['tracked']} of {status['finished']} finished runs logged"
                   + ("" if status["tracked"] == status["finished"] or status["snakemake_running"]
                      else "; `python -m epochbench track` uploads the rest"))
    left = status["time_left"]
    if status["finished"] == status["cells"]:
        out.append("time left: none, every run has finished")
    else:
        out.append(f"time left: about {duration(left['seconds'])} ({left['basis']})")
    return "\n".join(out) + "\n"


def main(args, config: dict) -> int:
    status = sweep_status(config, args.directory)
    print(json.dumps(status, indent=2) if args.json else as_text(status), end="\n" if args.json else "")
    return 0
