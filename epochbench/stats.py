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


def grid_keys(table: pd.DataFrame) -> list:
    """The keys of a cell other than the seed: (strategy,) architecture, n."""
    return [key for key in ("strategy", "architecture", "n") if key in table.columns]


def fine_tune_only(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the n-sweep proper: fastai's fine_tune(n) (the other strategies are baselines)."""
    if "strategy" not in table.columns:
        return table
    return table[table["strategy"] == "fine_tune"].drop(columns="strategy").reset_index(drop=True)


def summarize(finals: pd.DataFrame) -> pd.DataFrame:
    """Tidy summary: one row per ((strategy,) architecture, n, metric) with seeds, mean, std, sem and 95% CI."""
    return aggregate_over_seeds(finals, grid_keys(finals), METRICS)


def cost_table(finals: pd.DataFrame) -> pd.DataFrame:
    """What each n costs and buys: epochs trained and measured training seconds beside test accuracy, over seeds."""
    return aggregate_over_seeds(finals, grid_keys(finals), ["test_accuracy", "epochs_trained", "train_seconds"])


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
    return aggregate_over_seeds(longest_runs(histories, max_n), ["architecture", "epoch"], ["valid_accuracy", "valid_loss"])


def longest_runs(histories: pd.DataFrame, max_n: int) -> pd.DataFrame:
    """The n-epoch one-cycle fit of every fine_tune(max_n) run (its last fit), one row per epoch and seed."""
    runs = fine_tune_only(histories)
    runs = runs[runs["n"] == max_n]
    return runs[runs["fit"] == runs.groupby(["architecture", "seed"])["fit"].transform("max")]


def compare_within_run(points: pd.DataFrame, curve: pd.DataFrame) -> pd.DataFrame:
    """Add the epoch a single long run would pick to each architecture's overfitting point."""
    accuracy = curve[curve["metric"] == "valid_accuracy"]
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


def _mean_difference(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def paired_difference(values, reference, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple:
    """(low, high, p): paired bootstrap 95% interval of mean(values) - mean(reference), and P(difference > 0).

    Seeds are resampled with replacement, the same seeds for both arms.
    """
    values, reference = np.asarray(values, float), np.asarray(reference, float)
    if len(values) > 1 and np.ptp(values - reference) > 0:
        result = scipy_stats.bootstrap((values, reference), _mean_difference, paired=True, confidence_level=CONFIDENCE,
                                       n_resamples=resamples, method="percentile", random_state=seed)
        low, high = result.confidence_interval
        return float(low), float(high), float(np.mean(result.bootstrap_distribution > 0))
    # One seed, or the same difference at every seed: nothing to resample.
    difference = float(np.mean(values - reference))
    return difference, difference, float(difference > 0)


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
                low, high, p = paired_difference(values, table[best_n], resamples, seed)
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


def compare_strategies(finals: pd.DataFrame, metric: str = "test_accuracy", resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> pd.DataFrame:
    """Every other strategy against fine_tune at the same architecture, n and seeds: does fine-tuning help at all?

    Paired over seeds (same seed, same split and data at every strategy): the
    mean of each, the bootstrap 95% interval of the difference
    (strategy - fine_tune) and the share of resamples where the strategy wins.
    """
    rows = []
    wide = finals.pivot_table(index=["architecture", "n", "seed"], columns="strategy", values=metric)
    for strategy in [s for s in wide.columns if s != "fine_tune"]:
        for (arch, n), cell in wide[[strategy, "fine_tune"]].dropna().groupby(level=["architecture", "n"]):
            low, high, p = paired_difference(cell[strategy], cell["fine_tune"], resamples, seed)
            rows.append(dict(
                strategy=strategy, architecture=arch, n=int(n), seeds=len(cell), metric=metric,
                mean=cell[strategy].mean(), fine_tune_mean=cell["fine_tune"].mean(),
                difference=cell[strategy].mean() - cell["fine_tune"].mean(), diff_ci_low=low, diff_ci_high=high,
                p_beats_fine_tune=p, verdict=_versus(low, high),
            ))
    columns = ["strategy", "architecture", "n", "seeds", "metric", "mean", "fine_tune_mean", "difference",
               "diff_ci_low", "diff_ci_high", "p_beats_fine_tune", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def _versus(low: float, high: float) -> str:
    if low > 0:
        return "better than fine_tune"
    if high < 0:
        return "worse than fine_tune"
    return "indistinguishable"


# Early stopping on the longest runs. Prechelt, "Early Stopping -- But When?" (1998):
# criteria are checked at the end of each training strip of k epochs; E_va is the
# validation error (here the validation loss), E_opt(t) the lowest E_va up to t.


def generalization_loss(valid_loss) -> np.ndarray:
    """GL(t) = 100 (E_va(t) / E_opt(t) - 1) for every epoch t."""
    valid_loss = np.asarray(valid_loss, float)
    return 100 * (valid_loss / np.minimum.accumulate(valid_loss) - 1)


def training_progress(train_loss, t: int, strip: int) -> float:
    """P_k(t) = 1000 (sum of E_tr over the strip ending at t / (k * its minimum) - 1); t is 1-based."""
    window = np.asarray(train_loss, float)[t - strip : t]
    return 1000 * (window.sum() / (strip * window.min()) - 1)


def prechelt_stop(valid_loss, train_loss, criterion: str, threshold: float, strip: int):
    """The 1-based epoch after which GL_alpha, PQ_alpha or UP_s stops training, or None if it never does."""
    gl = generalization_loss(valid_loss)
    valid_loss = np.asarray(valid_loss, float)
    rises = 0
    for t in range(strip, len(valid_loss) + 1, strip):
        if criterion == "GL" and gl[t - 1] > threshold:
            return t
        if criterion == "PQ":
            progress = training_progress(train_loss, t, strip)
            quotient = gl[t - 1] / progress if progress > 0 else (np.inf if gl[t - 1] > 0 else 0.0)
            if quotient > threshold:
                return t
        if criterion == "UP":
            # UP_s: the validation error rose at the end of s successive strips.
            rises = rises + 1 if t > strip and valid_loss[t - 1] > valid_loss[t - strip - 1] else 0
            if rises >= threshold:
                return t
    return None


def patience_stop(valid_loss, patience: int, min_delta: float = 0.0):
    """The epoch after which fastai's EarlyStoppingCallback(monitor='valid_loss', patience) stops, or None."""
    best, wait = np.inf, 0
    for t, loss in enumerate(valid_loss, start=1):
        if loss + min_delta < best:  # fastai: comp(val - min_delta, best) with min_delta negated for losses
            best, wait = loss, 0
        else:
            wait += 1
            if wait >= patience:
                return t
    return None


def stopping_rules(settings: dict) -> list:
    """(label, family, threshold) for every configured rule."""
    rules = [(f"GL_{a:g}", "GL", a) for a in settings["gl_alpha"]]
    rules += [(f"PQ_{a:g}", "PQ", a) for a in settings["pq_alpha"]]
    rules += [(f"UP_{s}", "UP", s) for s in settings["up_strips"]]
    rules += [(f"fastai patience={p}", "patience", p) for p in settings["patience"]]
    return rules


def early_stopping(histories: pd.DataFrame, max_n: int, settings: dict) -> pd.DataFrame:
    """Per architecture, seed and rule: where the rule stops fine_tune(max_n), which weights it keeps, their test accuracy.

    Prechelt's procedure keeps the weights of the epoch with the lowest
    validation loss up to the stop; fastai's EarlyStoppingCallback alone keeps
    the weights it stopped with. A rule that never fires trains all max_n epochs.
    """
    rows = []
    runs = longest_runs(histories, max_n)
    # Epochs each run trained before its last fit (fine_tune's frozen epochs) count towards its cost.
    whole_runs = fine_tune_only(histories)
    whole_runs = whole_runs[whole_runs["n"] == max_n].groupby(["architecture", "seed"]).size()
    for (arch, seed), run in runs.groupby(["architecture", "seed"], sort=True):
        run = run.sort_values("epoch")
        earlier_epochs = int(whole_runs[(arch, seed)]) - len(run)
        valid, trained = run["valid_loss"].to_numpy(float), run["train_loss"].to_numpy(float)
        for label, family, threshold in stopping_rules(settings):
            if family == "patience":
                stop = patience_stop(valid, int(threshold))
                kept = stop or len(run)
            else:
                stop = prechelt_stop(valid, trained, family, threshold, settings["strip"])
                kept = int(np.argmin(valid[: stop or len(run)])) + 1
            rows.append(dict(
                architecture=arch, seed=int(seed), rule=label, stopped=stop is not None and stop < len(run),
                stop_epoch=stop or len(run), kept_epoch=kept, epochs_trained=(stop or len(run)) + earlier_epochs,
                test_accuracy=float(run["test_accuracy"].iloc[kept - 1]),
            ))
    return pd.DataFrame(rows)


def early_stopping_summary(per_seed: pd.DataFrame, points: pd.DataFrame, finals: pd.DataFrame) -> pd.DataFrame:
    """Per architecture and rule, over seeds; beside them fine_tune(N) run to the end and the n-sweep's choice."""
    rows = []
    sweep = fine_tune_only(finals)
    for arch, rules in per_seed.groupby("architecture", sort=False):
        point = points[points["architecture"] == arch].iloc[0]
        max_n, chosen = int(point["max_n"]), int(point["chosen_n"])
        runs = sweep[sweep["architecture"] == arch]
        full, picked = runs[runs["n"] == max_n], runs[runs["n"] == chosen]
        # Choosing n needs every fine_tune(n) run, n = 1..N: that is the sweep's cost per seed.
        sweep_cost = runs.groupby("seed")["epochs_trained"].sum().mean()
        for label, cells, epoch, cost in [
            (f"fine_tune({max_n}) to the end", full, max_n, full["epochs_trained"].mean()),
            (f"n-sweep, one-SE choice n = {chosen}", picked, chosen, sweep_cost),
        ]:
            rows.append(dict(architecture=arch, rule=label, seeds=len(cells), stopped_early=0.0, stop_epoch=float(epoch),
                             kept_epoch=float(epoch), epochs_trained=float(cost), **_interval(cells["test_accuracy"])))
        for label, group in rules.groupby("rule", sort=False):
            rows.append(dict(architecture=arch, rule=label, seeds=len(group), stopped_early=group["stopped"].mean(),
                             stop_epoch=group["stop_epoch"].mean(), kept_epoch=group["kept_epoch"].mean(),
                             epochs_trained=group["epochs_trained"].mean(), **_interval(group["test_accuracy"])))
    return pd.DataFrame(rows)


def _interval(values: pd.Series) -> dict:
    stats_row = mean_and_interval(values)
    return dict(test_accuracy=stats_row["mean"], test_ci_low=stats_row["ci_low"], test_ci_high=stats_row["ci_high"])
