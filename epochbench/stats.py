"""Aggregate over seeds: summary statistics, the overfitting point, and the within-run curve.

A one-point accuracy drop on ~1,500 validation images is about one standard
error of a single run, so nothing here looks at one seed alone: every number
is a mean over seeds with its spread, and n is chosen by the one-standard-error
rule on validation accuracy, then reported on the held-out test split.
"""

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

METRICS = ["valid_accuracy", "test_accuracy", "valid_loss", "test_loss"]
CONFIDENCE = 0.95


def mean_and_interval(values: pd.Series) -> pd.Series:
    """Seeds counted, mean, standard deviation, standard error and the 95% t-interval of the mean."""
    values = values.dropna().astype(float)
    k = len(values)
    mean = values.mean() if k else np.nan
    std = values.std(ddof=1) if k > 1 else np.nan
    sem = std / np.sqrt(k) if k > 1 else np.nan
    if k > 1 and sem > 0:
        low, high = scipy_stats.t.interval(CONFIDENCE, df=k - 1, loc=mean, scale=sem)
    elif k > 1:  # every seed agrees: the interval is the point
        low = high = mean
    else:
        low = high = np.nan
    return pd.Series({"seeds": k, "mean": mean, "std": std, "sem": sem, "ci_low": low, "ci_high": high})


def aggregate_over_seeds(table: pd.DataFrame, keys: list, metrics: list) -> pd.DataFrame:
    """One row per (keys..., metric) with `mean_and_interval` of the metric's values over seeds."""
    long = table.melt(id_vars=keys + ["seed"], value_vars=metrics, var_name="metric")
    aggregated = long.groupby(keys + ["metric"], sort=True)["value"].apply(mean_and_interval).unstack()
    aggregated = aggregated.reset_index()
    aggregated["seeds"] = aggregated["seeds"].astype(int)
    return aggregated


def summarize(finals: pd.DataFrame, by=("architecture", "n")) -> pd.DataFrame:
    """Tidy summary: one row per (architecture, n, metric) with seeds, mean, std, sem and 95% CI."""
    return aggregate_over_seeds(finals, list(by), METRICS)


def _metric(summary: pd.DataFrame, arch: str, metric: str) -> pd.DataFrame:
    rows = summary[(summary["architecture"] == arch) & (summary["metric"] == metric)]
    return rows.set_index("n").sort_index()


def overfitting_points(summary: pd.DataFrame) -> pd.DataFrame:
    """Per architecture: the best n by mean validation accuracy, the one-standard-error choice, and its test accuracy.

    One-standard-error rule (Breiman et al., 1984; Hastie et al., ESL 7.10):
    the smallest n whose mean validation accuracy is within one standard error
    of the best mean. It prefers the cheaper schedule when the data cannot
    tell them apart. Test accuracy at the chosen n is the figure to report:
    the validation accuracy at the n chosen on it is optimistically biased.
    """
    rows = []
    for arch in summary["architecture"].unique():
        valid = _metric(summary, arch, "valid_accuracy")
        test = _metric(summary, arch, "test_accuracy")
        best_n = int(valid["mean"].idxmax())  # idxmax returns the first, i.e. smallest, n on ties
        best = valid.loc[best_n]
        threshold = best["mean"] - (best["sem"] if np.isfinite(best["sem"]) else 0.0)
        chosen_n = int(valid.index[valid["mean"] >= threshold].min())
        max_n = int(valid.index.max())
        rows.append(
            dict(
                architecture=arch,
                max_n=max_n,
                seeds=int(best["seeds"]),
                best_n=best_n,
                best_valid_accuracy=best["mean"],
                best_valid_accuracy_sem=best["sem"],
                one_se_threshold=threshold,
                chosen_n=chosen_n,
                chosen_valid_accuracy=valid.loc[chosen_n, "mean"],
                chosen_test_accuracy=test.loc[chosen_n, "mean"],
                chosen_test_ci_low=test.loc[chosen_n, "ci_low"],
                chosen_test_ci_high=test.loc[chosen_n, "ci_high"],
                test_accuracy_at_best_n=test.loc[best_n, "mean"],
                # Reporting the best validation accuracy as the result would be optimistic:
                # n was chosen on the very numbers it is read from.
                selection_gap=best["mean"] - test.loc[best_n, "mean"],
                valid_accuracy_at_max_n=valid.loc[max_n, "mean"],
                overfits_within_max_n=best_n < max_n,
            )
        )
    return pd.DataFrame(rows)


def within_run_curve(histories: pd.DataFrame, max_n: int) -> pd.DataFrame:
    """The epoch-by-epoch validation curve of the longest runs, fine_tune(max_n), over seeds.

    This is what one would read off a single long run. It is a different
    view from the n-sweep: epoch e of fine_tune(N) sits at another point of
    the one-cycle schedule than the end of fine_tune(e).
    """
    longest = histories[(histories["n"] == max_n) & (histories["phase"] == "unfrozen")]
    return aggregate_over_seeds(longest, ["architecture", "epoch"], ["accuracy", "valid_loss"])


def compare_within_run(points: pd.DataFrame, curve: pd.DataFrame) -> pd.DataFrame:
    """Add the epoch a single long run would pick to each architecture's overfitting point."""
    accuracy = curve[curve["metric"] == "accuracy"]
    best_epoch = accuracy.loc[accuracy.groupby("architecture")["mean"].idxmax(), ["architecture", "epoch", "mean"]]
    best_epoch = best_epoch.rename(columns={"epoch": "within_run_best_epoch", "mean": "within_run_best_accuracy"})
    merged = points.merge(best_epoch, on="architecture", how="left")
    merged["within_run_agrees"] = merged["within_run_best_epoch"] == merged["best_n"]
    return merged


BOOTSTRAP_RESAMPLES = 10_000


def paired_matrix(finals: pd.DataFrame, arch: str, metric: str = "valid_accuracy") -> pd.DataFrame:
    """seeds x n table of one metric for one architecture, keeping only seeds present at every n (pairing)."""
    table = finals[finals["architecture"] == arch].pivot(index="seed", columns="n", values=metric)
    return table.dropna()


def bootstrap_comparison(finals: pd.DataFrame, metric: str = "valid_accuracy", resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = 0) -> pd.DataFrame:
    """Per architecture x n, paired over seeds: bootstrap 95% interval of the mean, and how n compares with the best n.

    Seeds are resampled with replacement, the same resample at every n (the
    seeds are paired: seed s saw the same split and initial head at every n).
    `p_beats_best` is the share of resamples in which n's mean exceeds that of
    the best-by-mean n (Bouthillier et al., "Accounting for variance in machine
    learning benchmarks", MLSys 2021); `diff_ci_low/high` is the bootstrap
    interval of mean(n) - mean(best), and n is `indistinguishable` from the
    best when that interval contains 0.
    """
    def mean_difference(a, b, axis=-1):
        return np.mean(a, axis=axis) - np.mean(b, axis=axis)

    rows = []
    for arch in finals["architecture"].unique():
        table = paired_matrix(finals, arch, metric)
        means = table.mean()
        best_n = int(means.idxmax())
        for n in table.columns:
            values = table[n].to_numpy(float)
            row = dict(architecture=arch, n=int(n), seeds=len(values), mean=values.mean(), best_n=best_n)
            if len(values) > 1 and np.ptp(values) > 0:
                ci = scipy_stats.bootstrap((values,), np.mean, confidence_level=CONFIDENCE, n_resamples=resamples,
                               method="percentile", random_state=seed).confidence_interval
                row.update(boot_ci_low=ci.low, boot_ci_high=ci.high)
            else:
                row.update(boot_ci_low=values.mean(), boot_ci_high=values.mean())
            if n == best_n:
                row.update(p_beats_best=np.nan, diff_ci_low=0.0, diff_ci_high=0.0, indistinguishable=True)
            else:
                best = table[best_n].to_numpy(float)
                if len(values) > 1 and np.ptp(values - best) > 0:
                    result = scipy_stats.bootstrap((values, best), mean_difference, paired=True, confidence_level=CONFIDENCE,
                                       n_resamples=resamples, method="percentile", random_state=seed)
                    low, high = result.confidence_interval
                    p = float(np.mean(result.bootstrap_distribution > 0))
                else:  # one seed, or the same difference at every seed: nothing to resample
                    low = high = float(np.mean(values - best))
                    p = float(low > 0)
                row.update(p_beats_best=p, diff_ci_low=low, diff_ci_high=high, indistinguishable=bool(low <= 0 <= high))
            rows.append(row)
    return pd.DataFrame(rows)


def _ranges(ns) -> str:
    """[4, 5, 6, 9] -> '4..6, 9'."""
    ns, parts, start = sorted(int(n) for n in ns), [], None
    for i, n in enumerate(ns):
        if start is None:
            start = n
        if i + 1 == len(ns) or ns[i + 1] != n + 1:
            parts.append(f"{start}" if start == n else f"{start}..{n}")
            start = None
    return ", ".join(parts)


def curve_shape(means: pd.Series) -> str:
    """'rising', 'peaked' or 'dip then recovery' for mean validation accuracy against n.

    A curve that dips and then climbs above its first peak (as in epoch-wise
    double descent, Nakkiran et al., ICLR 2020) has no overfitting point at
    its first dip; calling one there would mislead.
    """
    values = means.sort_index().to_numpy(float)
    falls = np.flatnonzero(np.diff(values) < 0)
    if len(falls) == 0:
        return "rising"
    first_peak = falls[0]
    if values[first_peak + 1 :].max() > values[first_peak]:
        return "dip then recovery"
    return "peaked"


def verdict_sentence(comparison: pd.DataFrame, arch: str) -> str:
    """The plain-language verdict for one architecture from `bootstrap_comparison`."""
    rows = comparison[comparison["architecture"] == arch].set_index("n").sort_index()
    best_n, max_n = int(rows["best_n"].iloc[0]), int(rows.index.max())
    same = [n for n in rows.index if n != best_n and rows.loc[n, "indistinguishable"]]
    worse_after = [n for n in rows.index if n > best_n and not rows.loc[n, "indistinguishable"]]
    shape = curve_shape(rows["mean"])
    if best_n == max_n:
        text = f"No overfitting within N = {max_n}: mean validation accuracy is highest at n = {max_n}"
    elif shape == "dip then recovery":
        text = f"Validation accuracy dips and then recovers; it is highest at n = {best_n}"
    else:
        text = f"Accuracy stops improving after n = {best_n}"
    if same:
        text += f"; n = {_ranges(same)} {'is' if len(same) == 1 else 'are'} indistinguishable from it at 95%"
    if worse_after:
        text += f"; n = {_ranges(worse_after)} {'is' if len(worse_after) == 1 else 'are'} worse at 95%"
    return text + "."
