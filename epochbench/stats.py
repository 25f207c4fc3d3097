"""Aggregate over seeds: summary statistics, the within-run curve, early stopping and cost.

A one-point accuracy drop on ~1,500 validation images is about one standard
error of a single run, so nothing here looks at one seed alone: every number
is a mean over seeds with its spread. The decisions made on them (which n is
worse, the overfitting point) are in `decisions`.
"""

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

METRICS = ["valid_accuracy", "test_accuracy", "valid_loss", "test_loss"]
CONFIDENCE = 0.95


def t_interval(values, confidence: float = CONFIDENCE) -> tuple:
    """(mean, low, high): the t-interval of the mean (the point itself when every value agrees; NaN for one value)."""
    values = np.asarray(values, float)
    mean = values.mean() if len(values) else np.nan
    if len(values) < 2:
        return mean, np.nan, np.nan
    sem = scipy_stats.sem(values)
    if sem == 0:
        return mean, mean, mean
    low, high = scipy_stats.t.interval(confidence, len(values) - 1, loc=mean, scale=sem)
    return mean, low, high


def mean_and_interval(values: pd.Series) -> pd.Series:
    """Seeds counted, mean, standard deviation, standard error and the 95% t-interval of the mean."""
    values = values.dropna().astype(float)
    k = len(values)
    std = values.std(ddof=1) if k > 1 else np.nan
    mean, low, high = t_interval(values)
    return pd.Series({"seeds": k, "mean": mean, "std": std, "sem": std / np.sqrt(k) if k > 1 else np.nan,
                      "ci_low": low, "ci_high": high})


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


# Early stopping on the longest runs. Prechelt, "Early Stopping -- But When?" (1998):
# training runs in strips of k epochs, and the validation error E_va is looked at
# only at the end of each strip; E_opt(t) is the lowest E_va seen at those points,
# and the weights kept are those of the point where it was seen. E_tr is the mean
# training loss over an epoch's batches (not fastai's smoothed train_loss, which
# carries earlier epochs). E_va is the validation loss.


def generalization_loss(observed_valid_loss) -> np.ndarray:
    """GL = 100 (E_va / E_opt - 1) at every observation point, E_opt the lowest E_va observed so far."""
    observed_valid_loss = np.asarray(observed_valid_loss, float)
    return 100 * (observed_valid_loss / np.minimum.accumulate(observed_valid_loss) - 1)


def training_progress(train_loss, t: int, strip: int) -> float:
    """P_k(t) = 1000 (sum of E_tr over the strip ending at t / (k * its minimum) - 1); t is 1-based."""
    window = np.asarray(train_loss, float)[t - strip : t]
    return 1000 * (window.sum() / (strip * window.min()) - 1)


def prechelt_stop(valid_loss, train_loss, criterion: str, threshold: float, strip: int) -> tuple:
    """(stop, kept): the 1-based epoch after which GL_alpha, PQ_alpha or UP_s stops (None if never), and the
    strip end with the lowest validation loss observed up to then, whose weights the procedure keeps."""
    valid_loss = np.asarray(valid_loss, float)
    ends = np.arange(strip, len(valid_loss) + 1, strip)  # the epochs at which E_va is observed
    observed = valid_loss[ends - 1]
    gl = generalization_loss(observed)
    stop, rises = None, 0
    for j, t in enumerate(ends):
        if criterion == "GL":
            fired = gl[j] > threshold
        elif criterion == "PQ":
            progress = training_progress(train_loss, t, strip)
            fired = (gl[j] / progress if progress > 0 else (np.inf if gl[j] > 0 else 0.0)) > threshold
        else:  # UP_s: the validation error rose at the end of s successive strips.
            rises = rises + 1 if j > 0 and observed[j] > observed[j - 1] else 0
            fired = rises >= threshold
        if fired:
            stop = int(t)
            break
    seen = observed[: (j + 1 if stop else len(ends))] if len(ends) else valid_loss
    kept = int(ends[np.argmin(seen)]) if len(ends) else len(valid_loss)
    return stop, kept


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
    rules += [(f"fastai patience={p} + best weights", "patience_restore", p) for p in settings["patience"]]
    return rules


def early_stopping(histories: pd.DataFrame, max_n: int, settings: dict) -> pd.DataFrame:
    """Per architecture, seed and rule: where the rule stops fine_tune(max_n), which weights it keeps, their test accuracy.

    Prechelt's procedure keeps the weights of the strip end with the lowest
    validation loss; fastai's EarlyStoppingCallback alone keeps the weights it
    stopped with, and with SaveModelCallback(monitor='valid_loss') beside it
    the weights of the epoch with the lowest validation loss. A rule that
    never fires trains all max_n epochs.
    """
    rows = []
    runs = longest_runs(histories, max_n)
    # Epochs each run trained before its last fit (fine_tune's frozen epochs) count towards its cost.
    whole_runs = fine_tune_only(histories)
    whole_runs = whole_runs[whole_runs["n"] == max_n].groupby(["architecture", "seed"]).size()
    for (arch, seed), run in runs.groupby(["architecture", "seed"], sort=True):
        run = run.sort_values("epoch")
        earlier_epochs = int(whole_runs[(arch, seed)]) - len(run)
        valid, trained = run["valid_loss"].to_numpy(float), run["train_loss_epoch"].to_numpy(float)
        for label, family, threshold in stopping_rules(settings):
            if family in ("patience", "patience_restore"):
                stop = patience_stop(valid, int(threshold))
                ran = stop or len(run)
                kept = ran if family == "patience" else int(np.argmin(valid[:ran])) + 1
            else:
                stop, kept = prechelt_stop(valid, trained, family, threshold, settings["strip"])
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
