"""Collect the per-cell files of a sweep into tidy tables."""

import json
from pathlib import Path

import pandas as pd

CELL_KEYS = ["architecture", "n", "seed"]


def read_cell(history_csv, epoch_seconds_csv, metrics_json) -> tuple:
    """One cell's history rows (with seconds and the cell keys) and its final-metrics row."""
    final = json.loads(Path(metrics_json).read_text())
    history = pd.read_csv(history_csv)
    history["seconds"] = pd.read_csv(epoch_seconds_csv)["seconds"].to_numpy()
    history.insert(0, "step", range(1, len(history) + 1))
    for position, key in enumerate(CELL_KEYS):
        history.insert(position, key, final[key])
    final["train_seconds"] = float(history["seconds"].sum())
    return history, final


def collect(histories, epoch_seconds, metrics) -> tuple:
    """(histories, finals) DataFrames of every cell, sorted by architecture, n, seed."""
    parts = [read_cell(*files) for files in zip(histories, epoch_seconds, metrics, strict=True)]
    history = pd.concat([h for h, _ in parts], ignore_index=True)
    finals = pd.DataFrame([f for _, f in parts])
    return (
        history.sort_values(CELL_KEYS + ["step"], kind="stable").reset_index(drop=True),
        finals.sort_values(CELL_KEYS, kind="stable").reset_index(drop=True),
    )


def rule_times(benchmark_files) -> pd.DataFrame:
    """Wall time per job from Snakemake `benchmark:` files, named by the rule folder they sit in."""
    rows = []
    for path in benchmark_files:
        path = Path(path)
        bench = pd.read_csv(path, sep="\t")
        parts = path.parts
        rule = parts[parts.index("benchmarks") + 1]
        job = "/".join(parts[parts.index("benchmarks") + 2 :]).removesuffix(".tsv")
        rows.append(dict(rule=rule, job=job, seconds=float(bench["s"].iloc[0]), max_rss_mb=float(bench["max_rss"].iloc[0])))
    return pd.DataFrame(rows, columns=["rule", "job", "seconds", "max_rss_mb"])
