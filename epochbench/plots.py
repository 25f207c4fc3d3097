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
from .units import accuracy  # noqa: E402

FORMATS = ("svg", "png", "pdf")
SPLIT_COLORS = {"valid": "#1f77b4", "test": "#d62728"}
# Fixed metadata and hash salt so that the same tables give byte-identical SVG/PDF files.
SAVE_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}, "png": {}}

STRATEGY_MARKERS = {"fine_tune": "o", "head_only": "s", "from_scratch": "^"}
STRATEGY_LINES = {"fine_tune": "-", "head_only": "--", "from_scratch": ":"}


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
        # The id names the points in the SVG, for readers' tools and tests/test_outputs.py.
        ax.scatter(_jitter(seeds["n"]), seeds[column], s=10, color=color, alpha=0.5, linewidths=0,
                   gid=f"seeds-{arch}-{split}")
    ax.set_title(arch)
    ax.set_xlabel("n (epochs of fine_tune(n))")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


class PercentTicks(matplotlib.ticker.Formatter):
    """Accuracy ticks in percent (the data stay fractions): '70%', or '70.5%' where the spacing needs a decimal.

    The report's one unit (epochbench.units), with as few decimals (at most
    three) as show every tick exactly: 0.7 and 0.72 read 70% and 72%.
    """

    decimals = 0

    def set_locs(self, locs):
        super().set_locs(locs)
        values = 100 * np.asarray(locs, float)
        self.decimals = next((d for d in range(4) if np.allclose(values, np.round(values, d), rtol=0, atol=1e-6)), 3)

    def __call__(self, x, pos=None):
        return accuracy(x, decimals=self.decimals)


def _percent_axis(ax, label: str) -> None:
    """Label an accuracy axis 'label (%)' and show its ticks in percent."""
    ax.set_ylabel(f"{label} (%)")
    ax.yaxis.set_major_formatter(PercentTicks())


def _label_panel(ax, title: str, xlabel: str, ylabel: str, percent: bool = False) -> None:
    """Title, axis labels, legend and whole-number ticks of one architecture's panel; `percent`: an accuracy axis."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if percent:
        _percent_axis(ax, ylabel)
    else:
        ax.set_ylabel(ylabel)
    ax.legend(loc="lower right")
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
        if metric == "accuracy":
            _percent_axis(ax, metric)
        else:
            ax.set_ylabel(metric)
    return save_figure(fig, out_stem)


def plot_within_run(curve, summary, points, out_stem) -> list:
    """Within-run validation accuracy of fine_tune(N), beside the n-sweep's end-of-run accuracy."""
    _style()
    architectures = list(points["architecture"])
    fig, axes = _panels(architectures)
    for ax, arch in zip(axes, architectures):
        rows = curve[(curve["architecture"] == arch) & (curve["metric"] == "valid_accuracy")].sort_values("epoch")
        max_n = int(points.loc[points["architecture"] == arch, "max_n"].iloc[0])
        sns.lineplot(data=rows, x="epoch", y="mean", marker="o", color="#2ca02c", label=f"within fine_tune({max_n})", ax=ax)
        ax.fill_between(rows["epoch"], rows["ci_low"], rows["ci_high"], color="#2ca02c", alpha=0.2, linewidth=0)
        sweep = summary[(summary["architecture"] == arch) & (summary["metric"] == "valid_accuracy")]
        ax.scatter(sweep["n"], sweep["mean"], color=SPLIT_COLORS["valid"], s=18, zorder=3, label="end of fine_tune(n)",
                   gid=f"sweep-{arch}")
        _label_panel(ax, arch, "epoch e of fine_tune(N)  /  n of fine_tune(n)", "validation accuracy", percent=True)
    return save_figure(fig, out_stem)


def plot_accuracy_vs_cost(cost, out_stem) -> list:
    """Test accuracy against epochs trained and against training seconds, per architecture and strategy."""
    _style()
    # dropna=False: with one replicate the intervals are all NaN, and the figure shows the means alone.
    wide = cost.pivot_table(index=["strategy", "architecture", "n"], columns="metric", values=["mean", "ci_low", "ci_high"],
                            dropna=False)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    colors = dict(zip(sorted(cost["architecture"].unique()), sns.color_palette()))
    for (strategy, arch), rows in wide.groupby(level=["strategy", "architecture"]):
        accuracy = rows["mean"]["test_accuracy"]
        error = [accuracy - rows["ci_low"]["test_accuracy"], rows["ci_high"]["test_accuracy"] - accuracy]
        for ax, x in zip(axes, ("epochs_trained", "train_seconds")):
            ax.errorbar(rows["mean"][x], accuracy, yerr=error, color=colors[arch], marker=STRATEGY_MARKERS[strategy],
                        linestyle=STRATEGY_LINES[strategy], markersize=4, linewidth=1, capsize=2,
                        label=f"{arch}, {strategy}")
    axes[0].set_xlabel("epochs trained (frozen + n)")
    axes[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[1].set_xlabel("training seconds (measured)")
    _percent_axis(axes[0], "test accuracy")
    # Below the panels: inside them the legend would cover the low-accuracy points of from_scratch.
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3)
    return save_figure(fig, out_stem)


def plot_strategy_comparison(summary, out_stem) -> list:
    """Test accuracy against n, one line per strategy with its 95% band, one panel per architecture."""
    _style()
    rows = summary[summary["metric"] == "test_accuracy"]
    architectures = list(dict.fromkeys(rows["architecture"]))
    fig, axes = _panels(architectures)
    for ax, arch in zip(axes, architectures):
        for strategy, color in zip(STRATEGY_MARKERS, sns.color_palette("colorblind")):
            line = rows[(rows["architecture"] == arch) & (rows["strategy"] == strategy)].sort_values("n")
            if line.empty:
                continue
            ax.plot(line["n"], line["mean"], marker=STRATEGY_MARKERS[strategy], color=color, label=strategy)
            ax.fill_between(line["n"], line["ci_low"], line["ci_high"], color=color, alpha=0.2, linewidth=0)
        _label_panel(ax, arch, "n (epochs)", "test accuracy", percent=True)
    return save_figure(fig, out_stem)


def plot_lr_find(results, curves, out_stem, skip_end: int = 5) -> list:
    """The LR-finder curve per architecture (`lrfind.read_results`), with the chosen suggestion's rate marked."""
    _style()
    architectures = list(results["architecture"])
    fig, axes = plt.subplots(1, len(architectures), figsize=(4.2 * len(architectures), 3.4), squeeze=False)
    for ax, (_, found) in zip(axes[0], results.iterrows()):
        arch = found["architecture"]
        curve = curves[curves["architecture"] == arch]
        curve = curve.iloc[:-skip_end] if len(curve) > skip_end else curve
        ax.plot(curve["lr"], curve["loss"], color=SPLIT_COLORS["valid"], linewidth=1.2, label="smoothed training loss",
                gid=f"lr-find-curve-{arch}")
        # The loss where the curve passes the chosen rate, read off the curve (rates rise evenly in log scale).
        at = float(np.interp(np.log(found["lr"]), np.log(curve["lr"].to_numpy(float)), curve["loss"].to_numpy(float)))
        ax.axvline(found["lr"], color=SPLIT_COLORS["test"], linestyle="--", linewidth=1)
        ax.scatter([found["lr"]], [at], color=SPLIT_COLORS["test"], s=30, zorder=3,
                   label=f"{found['suggestion']}: {found['lr']:.2g}", gid=f"lr-find-chosen-{arch}")
        ax.set_xscale("log")
        ax.set_title(arch)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss (smoothed)")
        ax.legend(loc="upper left", fontsize="small")
    return save_figure(fig, out_stem)
