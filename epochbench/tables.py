"""Collect the per-cell files of a sweep into tidy tables."""

import json
from pathlib import Path

import pandas as pd

from .units import MINUS, accuracy

CELL_KEYS = ["strategy", "architecture", "n", "seed"]


def read_cell(history_csv, epoch_seconds_csv, metrics_json) -> tuple:
    """One cell's history rows (with seconds and the cell keys) and its final-metrics row."""
    final = json.loads(Path(metrics_json).read_text())
    history = pd.read_csv(history_csv)
    history["seconds"] = pd.read_csv(epoch_seconds_csv)["seconds"].to_numpy()
    history.insert(0, "step", range(1, len(history) + 1))
    for position, key in enumerate(CELL_KEYS):
        history.insert(position, key, final[key])
    # What fine_tune(n) costs a user who runs it alone, the shared frozen fit's epochs included.
    final["train_seconds"] = float(history["seconds"].sum())
    final["job_epoch_seconds"] = float(history["seconds"].iloc[final.get("epochs_shared", 0):].sum())
    return history, final


def collect(histories, epoch_seconds, metrics) -> tuple:
    """(histories, finals) DataFrames of every cell, sorted by strategy, architecture, n, seed."""
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
        # The last "benchmarks" folder of the path: the checkout itself may sit under one.
        base = len(parts) - 1 - parts[::-1].index("benchmarks")
        rule = parts[base + 1]
        job = "/".join(parts[base + 2 :]).removesuffix(".tsv")
        rows.append(dict(rule=rule, job=job, seconds=float(bench["s"].iloc[0]), max_rss_mb=float(bench["max_rss"].iloc[0])))
    return pd.DataFrame(rows, columns=["rule", "job", "seconds", "max_rss_mb"])


LATEX_CAPTIONS = {
    "overfitting": "Overfitting point per architecture: best n and one-standard-error choice on validation accuracy, "
                   "held-out test accuracy at the chosen n, the decline to N with its simultaneous 95% interval and "
                   "the adjusted p of the test that decided it (step-down max-T over replicates), whether it "
                   "overfits (n = N resolved as worse), and the cross-fitted selection optimism.",
    "comparison": "Validation accuracy per n, paired over replicates: mean and 95% t-interval, difference to the "
                  "highest-mean n, adjusted p of worse (every pair of n), of equivalence and of n above N (step-down "
                  "max-T over replicates), exact sign-flip p, share of resamples with the highest mean, and the "
                  "verdict.",
    "strategies": "Each strategy against fine_tune at the same n and replicates: mean test accuracy, the paired "
                  "difference with its 95% t-interval, adjusted p over the table (step-down max-T over replicates) "
                  "and the verdict.",
    "early_stopping": "Early stopping on the longest runs against the n-sweep: stop and kept epoch, epochs trained "
                      "and held-out test accuracy (mean and 95% t-interval over replicates).",
    "cost": "Test accuracy, epochs trained and training seconds per strategy, architecture and n (mean and 95% "
            "t-interval over replicates).",
}
# The columns of each LaTeX table in the report's one unit, one decimal (the CSVs keep fractions): accuracies in
# percent, differences of accuracies in signed points, spreads of accuracy (std, standard errors) in points.
LATEX_COLUMNS = {
    "overfitting": dict(
        percent=["best_valid_accuracy", "chosen_valid_accuracy", "chosen_test_accuracy", "chosen_test_ci_low",
                 "chosen_test_ci_high", "valid_accuracy_at_max_n", "valid_accuracy_at_decline_from_n",
                 "within_run_best_accuracy"],
        points=["decline_at_max_n", "decline_ci_low", "decline_ci_high", "selection_optimism"]),
    "comparison": dict(percent=["mean", "ci_low", "ci_high"],
                       points=["difference", "difference_to_max_n", "difference_to_max_n_ci_low",
                               "difference_to_max_n_ci_high"], spread=["difference_se"]),
    "strategies": dict(percent=["mean", "fine_tune_mean"], points=["difference", "diff_ci_low", "diff_ci_high"]),
    "early_stopping": dict(percent=["stopped_early", "test_accuracy", "test_ci_low", "test_ci_high"]),
    # Long: only its rows of an accuracy metric are converted.
    "cost": dict(percent=["mean", "ci_low", "ci_high"], spread=["std", "sem"]),
}
LATEX_KINDS = {"percent": (dict(), " (%)"), "points": (dict(signed=True), " (pts)"), "spread": (dict(), " (pts)")}
# What the caption says of the units (escaped for LaTeX with the rest of the caption).
LATEX_UNITS = {
    "cost": "Rows of test_accuracy in percent (std and sem in percentage points), the others as measured; "
            "tables/cost.csv holds accuracies as fractions.",
}
LATEX_UNITS_DEFAULT = "Accuracies in percent (%), differences of accuracies in percentage points (pts); " \
                      "tables/{name}.csv holds them as fractions."


def in_percent(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """`table` with its accuracies in percent and their differences in points, one decimal, as text for LaTeX.

    The column header names the unit, where every row is an accuracy's; a
    table with a `metric` column of other metrics too (cost) converts only the
    rows of an accuracy metric and keeps its headers. Every other column is
    left as it is.
    """
    table = table.copy()
    rows = (table["metric"].astype(str).str.endswith("accuracy") if "metric" in table.columns
            else pd.Series(True, index=table.index))
    long = not rows.all()
    renames = {}
    for kind, columns in LATEX_COLUMNS.get(name, {}).items():
        options, unit = LATEX_KINDS[kind]
        for column in [c for c in columns if c in table.columns]:
            as_text = table[column].map(lambda v: accuracy(v, unit="", minus="-", missing="--", **options))
            if long:
                table[column] = as_text.where(rows, table[column].map(lambda v: "--" if pd.isna(v) else f"{v:.4f}"))
            else:
                table[column], renames[column] = as_text, column + unit
    return table.rename(columns=renames)


def latex_table(table: pd.DataFrame, name: str, experiment: str, config_hash: str) -> str:
    """A LaTeX table (pandas `to_latex`) whose caption names the experiment and config hash, as the figures do.

    Accuracies in percent and their differences in points, one decimal (`in_percent`), as the HTML report
    shows them; the caption says so. p-values, losses, epochs and seconds as they are.
    """
    units = LATEX_UNITS.get(name, LATEX_UNITS_DEFAULT.format(name=name))
    caption = f"{LATEX_CAPTIONS[name]} {units} Experiment {experiment}, config {config_hash}."
    # Numbers to the right, text to the left, as to_latex aligns them, also where a number is now text.
    align = "".join("r" if pd.api.types.is_numeric_dtype(table[c]) else "l" for c in table.columns)
    latex = in_percent(table, name).to_latex(
        index=False, float_format="%.4f", na_rep="--", escape=True, longtable=len(table) > 40, column_format=align,
        caption=caption.replace("%", r"\%").replace("_", r"\_"), label=f"tab:epochbench-{name}",
    )
    # The verdict sentences print a typographic minus, which pdflatex's default input encoding lacks.
    return latex.replace(MINUS, "-")


def cell_times(benchmark_files, finals: pd.DataFrame) -> pd.DataFrame:
    """Per training cell: its job's wall time, the seconds its epochs took, the rest (start-up) and throughput.

    Epoch seconds cover the training, validation and test passes of the
    epochs the job computed (not the shared frozen fit's, see `frozen_fit`);
    everything else in the job's wall time (starting Python, imports,
    loading data, weights and the frozen fit, building the learner, writing
    results) is overhead.
    """
    times = rule_times(benchmark_files)
    times = times[times["rule"] == "train"].copy()
    keys = times["job"].str.extract(r"^(?P<strategy>[^/]+)/(?P<architecture>[^/]+)/n(?P<n>\d+)/seed(?P<seed>\d+)$")
    times = pd.concat([times, keys], axis=1).astype({"n": int, "seed": int})
    cells = finals.merge(times, on=CELL_KEYS, how="inner")
    return pd.DataFrame({
        **{key: cells[key] for key in CELL_KEYS},
        "wall_seconds": cells["seconds"],
        "epoch_seconds": cells["job_epoch_seconds"],
        "overhead_seconds": cells["seconds"] - cells["job_epoch_seconds"],
        "overhead_share": (cells["seconds"] - cells["job_epoch_seconds"]) / cells["seconds"],
        "images_per_second": cells["n_train"] * (cells["epochs_trained"] - cells["epochs_shared"])
        / cells["job_epoch_seconds"],
    })


def epochs_computed(finals: pd.DataFrame) -> tuple:
    """(epochs the pipeline computed, epochs a naive grid of fine_tune(n) calls computes) for these cells.

    A naive grid trains every epoch of every cell; the pipeline computes each
    (architecture, seed)'s frozen fit once, and every cell's own epochs after it.
    """
    shared = finals.get("epochs_shared", pd.Series(0, index=finals.index))
    frozen_fits = shared[shared > 0].groupby([finals["architecture"], finals["seed"]]).max().sum()
    return int((finals["epochs_trained"] - shared).sum() + frozen_fits), int(finals["epochs_trained"].sum())
