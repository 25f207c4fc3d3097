"""What MLflow tracking adds to a training job: the smallest sweep with and without it, side by side.

    python benchmarks/tracking.py [REPEATS]

config/ci.yaml cut to one architecture and one replicate (6 training jobs), run REPEATS times
(default 2) in fresh folders, alternately without tracking and with tracking to a real `mlflow
server` on 127.0.0.1 (SQLite backend, a free port, stopped by its pid). Per training job: its wall
time (Snakemake's benchmark file), and for the tracked jobs the seconds the upload took (the line
epochbench.tracking writes to the job's log). Writes benchmarks/results/tracking.csv (one row per
job) and prints the median overhead per job (`--report`: the same from the results file).
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from epochbench.io import write_csv  # noqa: E402


@contextlib.contextmanager
def mlflow_server(folder: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(folder / "server.log", "a") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
             f"sqlite:///{folder}/mlflow.db", "--artifacts-destination", str(folder / "artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"{url}/health", timeout=2):
                        break
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"mlflow server did not start; see {folder / 'server.log'}")
                time.sleep(0.5)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)  # its process group: the server and its workers, by pid
            server.wait(timeout=30)


def sweep(folder: Path, uri=None) -> pd.DataFrame:
    config = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    config.update(architectures=["test_resnet"], seeds=[0])
    if uri:
        config["tracking"] = dict(mlflow=uri)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    subprocess.run(["snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(folder), "--configfile",
                    str(folder / "config.yaml"), "--cores", "2", "--quiet", "all"], check=True,
                   stdout=subprocess.DEVNULL)
    rows = []
    for bench in sorted((folder / "results" / "ci" / "benchmarks" / "train").rglob("*.tsv")):
        cell = str(bench.relative_to(folder / "results" / "ci" / "benchmarks" / "train")).removesuffix(".tsv")
        log = (folder / "logs" / "ci" / "train" / f"{cell}.log").read_text().splitlines()
        upload = [line for line in log if line.startswith("MLflow")]
        rows.append(dict(cell=cell, tracked=bool(uri), wall_seconds=float(pd.read_csv(bench, sep="\t")["s"].iloc[0]),
                         upload_seconds=float(upload[-1].rsplit("(", 1)[1].removesuffix(" s)")) if upload else 0.0,
                         logged="logged run" in upload[-1] if upload else False))
    return pd.DataFrame(rows)


def main(repeats: int) -> None:
    parts = []
    with tempfile.TemporaryDirectory(prefix="epochbench-tracking-") as work:
        work = Path(work)
        (work / "server").mkdir()
        with mlflow_server(work / "server") as url:
            for repeat in range(repeats):
                parts.append(sweep(work / f"plain{repeat}").assign(repeat=repeat))
                parts.append(sweep(work / f"tracked{repeat}", url).assign(repeat=repeat))
    table = pd.concat(parts, ignore_index=True)
    write_csv(ROOT / "benchmarks" / "results" / "tracking.csv", table)
    report(table)


def report(table: pd.DataFrame) -> None:
    """Medians, not means: the first job of a run may start the warm server (seconds), which says nothing of tracking."""
    plain, tracked = table[~table["tracked"]], table[table["tracked"]]
    print(f"training jobs: {len(plain)} untracked, {len(tracked)} tracked ({int(tracked['logged'].sum())} logged)")
    print(f"median wall time per job: {plain['wall_seconds'].median():.2f} s untracked, "
          f"{tracked['wall_seconds'].median():.2f} s tracked: "
          f"+{tracked['wall_seconds'].median() - plain['wall_seconds'].median():.2f} s")
    print(f"median upload (mlflow import, health check, run, metrics, 3 files): {tracked['upload_seconds'].median():.2f} s "
          f"(max {tracked['upload_seconds'].max():.2f} s)")

if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"]:  # the numbers of the results file, without running anything
        report(pd.read_csv(ROOT / "benchmarks" / "results" / "tracking.csv"))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
