"""Figures with seaborn: every seed as a point, the mean as a line, the 95% interval as a band.

The bands are drawn from summary.csv (t-intervals over seeds), so a figure
shows exactly the numbers that the tables and the report print.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display in jobs or CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_path  # noqa: E402

FORMATS = ("svg", "png", "pdf")
SPLIT_COLORS = {"valid": "#1f77b4", "test": "#d62728"}
# Fixed metadata and hash salt so that the same tables give byte-identical SVG/PDF files.
SAVE_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}, "png": {}}

CAPTIONS = {
    "accuracy_vs_n": (
        "Accuracy after fine_tune(n) against n, per architecture. Each small point is one seed's final "
        "accuracy; the line is the mean over seeds and the band its 95% t-interval. Blue: validation "
        "(used to choose n), red: held-out test. The dashed line marks the n chosen by the "
        "one-standard-error rule on validation accuracy."
    ),
    "loss_vs_n": (
        "Cross-entropy loss after fine_tune(n) against n, per architecture, with each seed's point, "
        "the mean over seeds and its 95% t-interval. Validation loss usually turns up before accuracy "
        "falls: the network grows confident on what it gets wrong."
    ),
    "within_run_curve": (
        "Two different views of the same question. Line with band: validation accuracy epoch by epoch "
        "within the longest runs, fine_tune(N), mean over seeds and 95% t-interval. Dots: validation "
        "accuracy at the end of fine_tune(n), n = 1..N. Epoch e of fine_tune(N) sits at another point "
        "of the one-cycle schedule than the end of fine_tune(e), so the two curves need not agree."
    ),
}


def caption(name: str, experiment: str, config_hash: str) -> str:
    return f"{CAPTIONS[name]} Experiment {experiment}, config {config_hash}."


def save_figure(fig, out_stem) -> list:
    """Write `fig` as SVG, PNG and PDF (atomically); return the paths."""
    paths = []
    for fmt in FORMATS:
        path = Path(f"{out_stem}.{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=SAVE_METADATA[fmt])
        paths.append(path)
    plt.close(fig)
    return paths


def _style():
    sns.set_theme(style="whitegrid", context="paper")
    plt.rcParams["svg.hashsalt"] = "epochbench"


def _jitter(values: pd.Series, width=0.12, seed=0) -> np.ndarray:
    # Seeds that land on the same accuracy would hide each other; a fixed, small jitter spreads them.
    return values.to_numpy(float) + np.random.default_rng(seed).uniform(-width, width, size=len(values))


def _metric_vs_n(ax, finals, summary, metric, arch):
    for split, color in SPLIT_COLORS.items():
        column = f"{split}_{metric}"
        rows = summary[(summary["architecture"] == arch) & (summary["metric"] == column)].sort_values("n")
        seeds = finals[finals["architecture"] == arch]
        sns.lineplot(data=rows, x="n", y="mean", color=color, marker="o", label=split, ax=ax)
        ax.fill_between(rows["n"], rows["ci_low"], rows["ci_high"], color=color, alpha=0.2, linewidth=0)
        ax.scatter(_jitter(seeds["n"]), seeds[column], s=10, color=color, alpha=0.5, linewidths=0)
    ax.set_title(arch)
    ax.set_xlabel("n (epochs of fine_tune(n))")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def _panels(architectures):
    fig, axes = plt.subplots(1, len(architectures), figsize=(4.2 * len(architectures), 3.4), squeeze=False, sharey=True)
    return fig, axes[0]


def plot_metric_vs_n(finals, summary, points, metric: str, out_stem) -> list:
    """accuracy_vs_n or loss_vs_n: per architecture, every seed, mean and 95% band for valid and test."""
    _style()
    architectures = list(points["architecture"])
    fig, axes = _panels(architectures)
    for ax, arch in zip(axes, architectures):
        _metric_vs_n(ax, finals, summary, metric, arch)
        chosen = points.loc[points["architecture"] == arch, "chosen_n"].iloc[0]
        ax.axvline(chosen, color="grey", linestyle="--", linewidth=1)
        ax.set_ylabel(metric)
    return save_figure(fig, out_stem)


def plot_within_run(curve, summary, points, out_stem) -> list:
    """Within-run validation accuracy of fine_tune(N), beside the n-sweep's end-of-run accuracy."""
    _style()
    architectures = list(points["architecture"])
    fig, axes = _panels(architectures)
    for ax, arch in zip(axes, architectures):
        rows = curve[(curve["architecture"] == arch) & (curve["metric"] == "accuracy")].sort_values("epoch")
        max_n = int(points.loc[points["architecture"] == arch, "max_n"].iloc[0])
        sns.lineplot(data=rows, x="epoch", y="mean", marker="o", color="#2ca02c", label=f"within fine_tune({max_n})", ax=ax)
        ax.fill_between(rows["epoch"], rows["ci_low"], rows["ci_high"], color="#2ca02c", alpha=0.2, linewidth=0)
        sweep = summary[(summary["architecture"] == arch) & (summary["metric"] == "valid_accuracy")]
        ax.scatter(sweep["n"], sweep["mean"], color=SPLIT_COLORS["valid"], s=18, zorder=3, label="end of fine_tune(n)")
        ax.set_title(arch)
        ax.set_xlabel("epoch e of fine_tune(N)  /  n of fine_tune(n)")
        ax.set_ylabel("validation accuracy")
        ax.legend(loc="lower right")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    return save_figure(fig, out_stem)
