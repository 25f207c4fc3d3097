"""Decision rules: every word of the report's verdicts ("worse", "overfits", "equivalent") comes from here.

Each rule's false-claim rate is measured by simulation in tests/test_decisions.py
(null experiments in which nothing differs, with all the comparisons a report
makes at once). Their design, and why:

- Replicates are paired: replicate r used the same training seed, split and
  label-noise draw at every n and every strategy, so every comparison is a
  paired t-test on the per-replicate differences (scipy.stats.ttest_1samp).
- "n is worse than the best n": the best n is picked as the highest mean
  from the very numbers it is then compared with (the winner's curse), and
  there are N-1 such comparisons. Holm over those N-1 alone lets 7-13% of
  null experiments claim some n is worse (measured; the selection biases every
  difference against the others). So the family is all N(N-1)/2 pairs of n,
  Holm-adjusted (Holm, Scand. J. Stat. 1979, which controls the family-wise
  error in the strong sense): a claim "n is worse than n'" that survives it
  needs no knowledge of how n' was picked.
- "equivalent": paired TOST (Schuirmann, J. Pharmacokinet. Biopharm. 1987)
  with margin `equivalence_margin`, the larger of the two one-sided p-values,
  Holm-adjusted over the same comparisons as "worse" (statsmodels'
  ttost_paired computes the same p; a test checks it).
- "overfits": does accuracy at n = N fall below that at some n < N? N is
  fixed before the data are seen, so the N-1 one-sided paired t-tests of n
  against N need no correction for a picked winner: Holm over them (and over
  every architecture's) decides. This answers the report's headline question
  with far more power than the pairwise family above.
- The two claim families split the false-claim budget (Bonferroni): "worse"
  and "overfits" are each decided at alpha / 2, so that a report in which
  nothing differs makes any false claim with probability below alpha.
- Anything else is "unresolved": with few replicates that is the honest answer.
- The exact sign-flip p (scipy.stats.permutation_test on the paired
  differences, every sign pattern) is shown beside the t-test's: it assumes no
  normality, and with k replicates it can never go below 2 / 2**k.
- P(n is best) is information only, no claim: the share of replicate
  bootstrap resamples (the same replicates at every n) in which n has the
  highest mean (Bouthillier et al., "Accounting for variance in machine
  learning benchmarks", MLSys 2021).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from .stats import fine_tune_only, t_interval
from .units import margin as margin_points
from .units import percent, points

ALPHA = 0.05
EQUIVALENCE_MARGIN = 0.01  # one accuracy point, as a fraction
P_BEST_RESAMPLES = 2000
STRATEGY_VERDICTS = ("better", "worse", "equivalent", "unresolved")


def t_test_p(differences: np.ndarray, popmean: float = 0.0, alternative: str = "two-sided") -> np.ndarray:
    """p of a one-sample t-test of each row of `differences` (comparisons x replicates) against `popmean`.

    NaN (a replicate missing from a row) is left out of that row. A row
    whose differences all agree has no spread to test against: its p is
    NaN, which no rule below reads as a resolved difference.
    """
    differences = np.atleast_2d(np.asarray(differences, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = scipy_stats.ttest_1samp(differences, popmean, axis=1, alternative=alternative, nan_policy="omit").pvalue
        spread = np.nanstd(differences, axis=1, ddof=1)
    return np.where(spread > 0, p, np.nan)


def paired_t(differences: np.ndarray) -> tuple:
    """(p, se) of a two-sided paired t-test of each row of `differences` against 0."""
    differences = np.atleast_2d(np.asarray(differences, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.nanstd(differences, axis=1, ddof=1) / np.sqrt(np.sum(np.isfinite(differences), axis=1))
    return t_test_p(differences), se


def tost_p(differences: np.ndarray, margin: float) -> np.ndarray:
    """Paired TOST p per row: max of the one-sided t-tests of mean > -margin and mean < +margin (Schuirmann 1987)."""
    return np.maximum(t_test_p(differences, -margin, "greater"), t_test_p(differences, margin, "less"))


def one_sided_p(differences: np.ndarray) -> np.ndarray:
    """p of a one-sided paired t-test that each row's mean difference is above 0."""
    return t_test_p(differences, 0.0, "greater")


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values; NaN stays NaN and takes no share of the correction.

    The same numbers as statsmodels' multipletests(method="holm") (a test
    checks it), written out because that function runs gc.collect() on every
    call: 35 ms here, and 0.4 s once torch is imported, in every one of the
    thousands of calls the calibration simulations make.
    """
    p_values = np.asarray(p_values, float)
    adjusted = np.full_like(p_values, np.nan)
    finite = np.flatnonzero(np.isfinite(p_values))
    order = finite[np.argsort(p_values[finite], kind="stable")]
    steps = np.arange(len(order), 0, -1)  # m, m-1, ..., 1
    adjusted[order] = np.minimum(np.maximum.accumulate(p_values[order] * steps), 1.0)
    return adjusted


def sign_flip_p(differences: np.ndarray) -> np.ndarray:
    """Exact two-sided sign-flip p of the mean paired difference, per row (every one of the 2**k sign patterns)."""
    differences = np.atleast_2d(np.asarray(differences, float))
    k = differences.shape[1]
    result = scipy_stats.permutation_test(
        (differences,), np.mean, permutation_type="samples", vectorized=True, n_resamples=np.inf if k <= 16 else 9999,
        alternative="two-sided", axis=1, random_state=0,
    )
    return np.asarray(result.pvalue, float)


def smallest_sign_flip_p(k: int) -> float:
    """The smallest two-sided p an exact sign-flip test over k replicates can give: 2 / 2**k."""
    return 2.0 ** (1 - k)


def p_best(table: np.ndarray, resamples: int = P_BEST_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Share of replicate bootstrap resamples in which each column (n) has the highest mean; ties go to the first."""
    rng = np.random.default_rng(seed)
    k = table.shape[0]
    picks = rng.integers(0, k, size=(resamples, k))
    winners = table[picks].mean(axis=1).argmax(axis=1)
    return np.bincount(winners, minlength=table.shape[1]) / resamples


def compare_epochs(tables: dict, margin: float = EQUIVALENCE_MARGIN, alpha: float = ALPHA) -> pd.DataFrame:
    """Every n against the best-by-mean n of its architecture, paired over replicates: one row per (architecture, n).

    `tables` maps each architecture to its replicates x n table of one
    metric (validation accuracy); only replicates present at every n count.
    The report's comparisons are one family: Holm runs over every pair of n
    of every architecture at once, and over every TOST, so that the chance
    of any false "worse" or "equivalent" in the whole table stays below alpha.
    Columns: architecture, n, replicates, mean and its t-interval, best_n,
    p_best, difference to the best and its standard error, p_value (paired t,
    unadjusted), p_value_holm, p_sign_flip (exact), p_equivalence_holm, verdict.
    """
    parts = []
    for arch, table in tables.items():
        table = table.dropna()
        values = table.to_numpy(float)
        k, size = values.shape
        means = values.mean(axis=0)
        best = int(np.argmax(means))  # the first, i.e. smallest, n on ties
        pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
        pair_p, _ = paired_t(np.array([values[:, i] - values[:, j] for i, j in pairs]) if pairs else np.zeros((0, k)))
        earlier = list(range(size - 1))
        decline_p = one_sided_p((values[:, earlier] - values[:, [size - 1]]).T) if earlier else np.array([])
        others = [i for i in range(size) if i != best]
        differences = (values[:, others] - values[:, [best]]).T if others else np.zeros((0, k))
        p_raw, se = paired_t(differences)
        rows = pd.DataFrame(dict(architecture=arch, n=np.asarray(table.columns, int), replicates=k, mean=means,
                                 best_n=int(table.columns[best]), p_best=p_best(values),
                                 difference=means - means[best], difference_se=0.0, p_value=np.nan,
                                 p_sign_flip=np.nan, p_equivalence=np.nan, is_best=np.arange(size) == best,
                                 p_above_max_n=np.r_[decline_p, np.nan]))
        intervals = np.array([t_interval(values[:, i])[1:] for i in range(size)]).reshape(size, 2)
        rows["ci_low"], rows["ci_high"] = intervals[:, 0], intervals[:, 1]
        rows.loc[others, "difference_se"] = se
        rows.loc[others, "p_value"] = p_raw
        rows.loc[others, "p_equivalence"] = tost_p(differences, margin)
        if others and k > 1:
            rows.loc[others, "p_sign_flip"] = sign_flip_p(differences)
        parts.append((rows, best, pairs, pair_p))
    adjusted = iter(holm(np.concatenate([pair_p for *_, pair_p in parts])))
    comparison = []
    for rows, best, pairs, _ in parts:
        pair_holm = {pair: next(adjusted) for pair in pairs}
        rows["p_value_holm"] = [np.nan if i == best else pair_holm[(min(i, best), max(i, best))]
                                for i in range(len(rows))]
        comparison.append(rows)
    comparison = pd.concat(comparison, ignore_index=True)
    comparison["p_equivalence_holm"] = holm(comparison.pop("p_equivalence"))
    comparison["p_above_max_n_holm"] = holm(comparison["p_above_max_n"])
    # n = N is also worse than the best when the overfitting family resolves the best above N.
    best_above_max_n = comparison[comparison["is_best"]].set_index("architecture")["p_above_max_n_holm"]
    at_max_n = comparison["n"] == comparison.groupby("architecture")["n"].transform("max")
    resolved_at_max_n = at_max_n & (comparison["architecture"].map(best_above_max_n) < alpha / 2)
    comparison["verdict"] = np.select(
        [comparison.pop("is_best"),
         ((comparison["p_value_holm"] < alpha / 2) | resolved_at_max_n) & (comparison["difference"] < 0),
         comparison["p_equivalence_holm"] < alpha],
        ["best", "worse", "equivalent"], "unresolved")
    columns = ["architecture", "n", "replicates", "mean", "ci_low", "ci_high", "best_n", "p_best", "difference",
               "difference_se", "p_value", "p_value_holm", "p_sign_flip", "p_equivalence_holm", "verdict",
               "p_above_max_n", "p_above_max_n_holm"]
    return comparison[columns]


def one_standard_error_choice(comparison: pd.DataFrame) -> int:
    """The smallest n whose mean is within one standard error of the paired difference to the best.

    Breiman et al. (1984), Hastie et al. (ESL 7.10): prefer the cheaper
    schedule when the data cannot tell them apart. The standard error is that
    of the paired difference, the same one the verdicts test.
    """
    best = comparison[comparison["verdict"] == "best"].iloc[0]
    se = comparison["difference_se"].fillna(0.0)
    within = comparison[comparison["mean"] >= best["mean"] - se]
    return int(within["n"].min())


def paired_matrix(finals: pd.DataFrame, metric: str, where: dict) -> pd.DataFrame:
    """replicates x n table of one metric for the rows matching `where` (column -> value)."""
    rows = finals
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return rows.pivot(index="seed", columns="n", values=metric).dropna()


def compare_all_epochs(finals: pd.DataFrame, margin: float = EQUIVALENCE_MARGIN) -> pd.DataFrame:
    """`compare_epochs` on validation accuracy for every architecture of the sweep, as one family."""
    sweep = fine_tune_only(finals)
    return compare_epochs({arch: paired_matrix(sweep, "valid_accuracy", {"architecture": arch})
                           for arch in sweep["architecture"].unique()}, margin)


def selection_optimism(valid: pd.DataFrame, test: pd.DataFrame, best_n: int) -> tuple:
    """(mean, low, high) over replicates of [V(best) - T(best)] - mean over n of [V(n) - T(n)].

    V - T alone mixes two things: a fixed offset between the validation and
    test splits, which every n shares, and the optimism of reading the best n
    off the numbers it was picked on. Subtracting the mean offset over n
    leaves the optimism.
    """
    gap = valid - test
    return t_interval((gap[best_n] - gap.mean(axis=1)).to_numpy(float))


def overfits(comparison: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per architecture: overfits, the n < N with the strongest evidence of accuracy above N, and its adjusted p."""
    rows = []
    for arch, compared in comparison.groupby("architecture", sort=False):
        above = compared.set_index("n")["p_above_max_n_holm"].dropna()
        source = int(above.idxmin()) if len(above) else int(compared["best_n"].iloc[0])
        p = float(above.min()) if len(above) else np.nan
        rows.append(dict(architecture=arch, overfits=bool(p < alpha / 2), decline_from_n=source, p_decline=p))
    return pd.DataFrame(rows).set_index("architecture")


def overfitting_points(finals: pd.DataFrame, comparison: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per architecture: best n, the one-SE choice and its test accuracy, and whether accuracy falls by N.

    `overfits` is true only when accuracy at n = N is resolved as lower than
    at some n < N (one-sided paired t-tests against N, Holm over every
    architecture's, at alpha / 2); `decline_from_n` is the n with the
    strongest evidence. A best n below N on the means alone is no evidence.
    """
    sweep = fine_tune_only(finals)
    decisions_of_overfitting = overfits(comparison, alpha)
    rows = []
    for arch, compared in comparison.groupby("architecture", sort=False):
        compared = compared.set_index("n").sort_index()
        valid = paired_matrix(sweep, "valid_accuracy", {"architecture": arch})
        test = paired_matrix(sweep, "test_accuracy", {"architecture": arch}).loc[valid.index]
        best_n, max_n = int(compared["best_n"].iloc[0]), int(compared.index.max())
        chosen_n = one_standard_error_choice(compared.reset_index())
        chosen_test, chosen_low, chosen_high = t_interval(test[chosen_n])
        optimism, optimism_low, optimism_high = selection_optimism(valid, test, best_n)
        decline = decisions_of_overfitting.loc[arch]
        source = int(decline["decline_from_n"])
        rows.append(dict(
            architecture=arch, max_n=max_n, replicates=int(compared["replicates"].iloc[0]), best_n=best_n,
            best_valid_accuracy=compared.loc[best_n, "mean"], chosen_n=chosen_n,
            chosen_valid_accuracy=compared.loc[chosen_n, "mean"], chosen_test_accuracy=chosen_test,
            chosen_test_ci_low=chosen_low, chosen_test_ci_high=chosen_high,
            valid_accuracy_at_max_n=compared.loc[max_n, "mean"], decline_from_n=source,
            valid_accuracy_at_decline_from_n=compared.loc[source, "mean"],
            decline_at_max_n=compared.loc[max_n, "mean"] - compared.loc[source, "mean"],
            p_value_holm_at_max_n=decline["p_decline"], overfits=bool(decline["overfits"]),
            selection_optimism=optimism, selection_optimism_ci_low=optimism_low,
            selection_optimism_ci_high=optimism_high,
        ))
    return pd.DataFrame(rows)


def compare_strategies(finals: pd.DataFrame, margin: float = EQUIVALENCE_MARGIN, alpha: float = ALPHA,
                       metric: str = "test_accuracy") -> pd.DataFrame:
    """Every other strategy against fine_tune at the same architecture, n and replicates; Holm over the whole table.

    Verdicts: `better`, `worse` (Holm-adjusted paired t p < alpha, by the sign
    of the difference), `equivalent` (Holm-adjusted TOST p < alpha) or
    `unresolved`.
    """
    columns = ["strategy", "architecture", "n", "replicates", "metric", "mean", "fine_tune_mean", "difference",
               "diff_ci_low", "diff_ci_high", "p_value", "p_value_holm", "p_equivalence_holm", "verdict"]
    if "strategy" not in finals.columns:
        return pd.DataFrame(columns=columns)
    wide = finals.pivot_table(index=["architecture", "n", "seed"], columns="strategy", values=metric)
    parts = []
    for strategy in [s for s in wide.columns if s != "fine_tune"]:
        pair = wide[[strategy, "fine_tune"]].dropna()
        # cells (architecture, n) x replicates; a replicate missing from a cell leaves a NaN its tests skip.
        differences = (pair[strategy] - pair["fine_tune"]).unstack("seed")
        means = pair.groupby(level=["architecture", "n"]).mean()
        p, se = paired_t(differences.to_numpy(float))
        k = differences.notna().sum(axis=1).to_numpy()
        half = scipy_stats.t.ppf(1 - alpha / 2, np.maximum(k - 1, 1)) * se
        difference = differences.mean(axis=1)
        parts.append(pd.DataFrame(dict(
            strategy=strategy, replicates=k, metric=metric, mean=means[strategy], fine_tune_mean=means["fine_tune"],
            difference=difference, diff_ci_low=difference - half, diff_ci_high=difference + half, p_value=p,
            p_equivalence=tost_p(differences.to_numpy(float), margin),
        )).reset_index())
    if not parts:
        return pd.DataFrame(columns=columns)
    table = pd.concat(parts, ignore_index=True)
    table["p_value_holm"], table["p_equivalence_holm"] = holm(table["p_value"]), holm(table["p_equivalence"])
    resolved = table["p_value_holm"] < alpha
    table["verdict"] = np.where(resolved & (table["difference"] > 0), "better",
                                np.where(resolved, "worse",
                                         np.where(table["p_equivalence_holm"] < alpha, "equivalent", "unresolved")))
    return table[columns]


def ranges(ns) -> str:
    """[4, 5, 6, 9] -> '4..6, 9'."""
    ns, parts, start = sorted(int(n) for n in ns), [], None
    for i, n in enumerate(ns):
        if start is None:
            start = n
        if i + 1 == len(ns) or ns[i + 1] != n + 1:
            parts.append(f"{start}" if start == n else f"{start}..{n}")
            start = None
    return ", ".join(parts)


def per_n_clauses(point: pd.Series, comparison: pd.DataFrame, margin: float = EQUIVALENCE_MARGIN) -> list:
    """'n = 1..2 are worse than n = 6 (...)', ... : the verdict of every n, grouped, from the categories alone."""
    rows = comparison[comparison["architecture"] == point["architecture"]].set_index("n").sort_index()
    k, best_n = int(point["replicates"]), int(point["best_n"])
    clauses = []
    for verdict, words in (("worse", "worse than n = {best} (Holm-adjusted p < 0.025)"),
                           ("equivalent", "equivalent to n = {best} within {margin}"),
                           ("unresolved", "not resolved with {k} replicates")):
        ns = [n for n in rows.index if rows.loc[n, "verdict"] == verdict]
        if ns:
            verb = "is" if len(ns) == 1 else "are"
            clauses.append(f"n = {ranges(ns)} {verb} " + words.format(best=best_n, margin=margin_points(margin), k=k))
    return clauses


def decline_clause(point: pd.Series) -> str:
    """'Accuracy falls from X at n = a to Y at n = N (...)' or 'No resolved decline within N = ... with k replicates'."""
    if not point["overfits"]:
        return f"No resolved decline within N = {int(point['max_n'])} with {int(point['replicates'])} replicates"
    return (f"Accuracy falls from {percent(point['valid_accuracy_at_decline_from_n'])} at "
            f"n = {int(point['decline_from_n'])} to {percent(point['valid_accuracy_at_max_n'])} at "
            f"n = {int(point['max_n'])} ({points(point['decline_at_max_n'])}, Holm-adjusted one-sided p = "
            f"{point['p_value_holm_at_max_n']:.3g})")


def verdict_sentence(point: pd.Series, comparison: pd.DataFrame, margin: float = EQUIVALENCE_MARGIN) -> str:
    """The plain-language verdict for one architecture, built from the verdict categories alone."""
    text = decline_clause(point)
    if not point["overfits"]:
        text += f"; the highest mean is at n = {int(point['best_n'])}"
    return "; ".join([text] + per_n_clauses(point, comparison, margin)) + "."


def analyze(finals: pd.DataFrame, margin: float = EQUIVALENCE_MARGIN) -> dict:
    """{'comparison', 'overfitting', 'strategies'}: the decisions of a finals table, as the pipeline makes them.

    `finals` needs columns architecture, n, seed, valid_accuracy and
    test_accuracy (optional: strategy; only fine_tune rows make the n-sweep).
    """
    missing = [c for c in ("architecture", "n", "seed", "valid_accuracy", "test_accuracy") if c not in finals.columns]
    if missing:
        raise ValueError(f"finals table: missing column(s) {', '.join(missing)}")
    comparison = compare_all_epochs(finals, margin)
    points = overfitting_points(finals, comparison)
    points["verdict"] = [verdict_sentence(p, comparison, margin) for _, p in points.iterrows()]
    return dict(comparison=comparison, overfitting=points, strategies=compare_strategies(finals, margin))


def main(argv=None) -> int:
    """`python -m epochbench analyze FINALS.csv --out DIR`: the report's decisions for runs made anywhere."""
    from .io import write_csv

    parser = argparse.ArgumentParser(prog="python -m epochbench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("analyze", help="decisions for a finals table (e.g. a W&B or MLflow export)")
    command.add_argument("finals", type=Path, help="CSV: architecture, n, seed, valid_accuracy, test_accuracy "
                                                   "[, strategy, valid_loss, test_loss]")
    command.add_argument("--out", type=Path, required=True, help="folder for comparison.csv, overfitting.csv "
                                                                "(and strategies.csv with a strategy column)")
    command.add_argument("--equivalence-margin", type=float, default=EQUIVALENCE_MARGIN,
                         help="equivalence margin as a fraction of accuracy (default 0.01, one point)")
    args = parser.parse_args(argv)
    try:
        finals = pd.read_csv(args.finals)
        tables = analyze(finals, args.equivalence_margin)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        print(f"epochbench analyze: {args.finals}: {err}", file=sys.stderr)
        return 2
    names = ["comparison", "overfitting"] + (["strategies"] if "strategy" in finals.columns else [])
    for name in names:
        write_csv(args.out / f"{name}.csv", tables[name])
        print(args.out / f"{name}.csv")
    return 0
