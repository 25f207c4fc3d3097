"""Decision rules: every word of the report's verdicts ("overfits", "worse", "equivalent", "better") comes from here.

One report is one family. Every claim it can make, over every architecture
and strategy, shares one false-claim budget ALPHA = 5%: the chance that a
report makes any false claim at all stays below it. The budget is split
between the kinds of claim (Bonferroni; `error_budget`), and within each kind
the claims are tested together by step-down max-T over the replicates
(`epochbench.stepdown`: sign flips and the studentized bootstrap of whole
replicates, a claim needs both), which uses how the comparisons go together
rather than paying for each one separately as Holm does. The false-claim
rates are measured by simulation in tests/test_decisions.py and
benchmarks/calibration.py, with every comparison a report makes, on data
shaped as ours are: accuracies in whole images, heavy tails, skew whose size
changes with n, correlation along n.

- Replicates are paired: replicate r used the same training seed, split and
  label-noise draw at every n and every strategy, so every test is on the
  per-replicate differences.
- "overfits" (accuracy at n = N is below some n < N): one-sided tests of every
  n < N against N. N is fixed before the data are seen, so no winner is
  picked; the largest share of the budget goes here, the report's question.
- "n is worse than the best n": the best is picked as the highest mean from
  the very numbers it is compared with, so the family is every pair of n
  (two-sided); a claim that survives it needs no knowledge of how the best
  was picked. Holm over those pairs was valid but blunt; max-T is not.
  Multiple comparisons with the best (Hsu 1984) would compare each n with
  N - 1 others only, but its "not the best" includes ties: where nothing
  differs it calls some n worse in up to 2 alpha of experiments.
- "equivalent" (within +-margin of the best): two one-sided tests per n
  (Schuirmann 1987), every one of them in one step-down family, so a false
  "equivalent" needs a false rejection there.
- Strategies against fine_tune, per architecture and n: a two-sided family
  for "better"/"worse", and an equivalence family as above.
- Anything else is "unresolved". With k replicates no test can go below
  1 / 2**k (one-sided): a kind of claim whose budget is smaller cannot be made
  at all, and the report says how many replicates it would need.
"""

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from . import stepdown
from .stats import fine_tune_only, t_interval
from .units import margin as margin_points
from .units import percent, points, points_range

ALPHA = 0.05
EQUIVALENCE_MARGIN = 0.01  # one accuracy point, as a fraction
# How the one budget is split between the kinds of claim (Bonferroni: the shares add up to ALPHA). The
# n-sweep's own question, "does accuracy fall by N?", gets most: at 0.035 five replicates can answer it
# (1/2**5 = 0.031); "worse" and "equivalent" need eight.
SWEEP_SHARES = {"overfits": 0.7, "worse": 0.2, "equivalent": 0.1}
# With strategies in the report, they take this share of ALPHA (and the n-sweep's kinds the rest).
STRATEGY_SHARE = 0.3
STRATEGY_SHARES = {"strategy_difference": 0.8, "strategy_equivalent": 0.2}
# The fewest replicates (of 3, 5, 8, 12) that find a real decline in 80% of simulated reports, with one
# point of normal noise, under this report's rules (None: not even 12): from benchmarks/results/calibration.csv,
# which tests/test_benchmarks.py checks these against. For the report of a run with too few.
POWER_SETTING = "power: decline {size} per epoch after n = 4"
REPLICATES_FOR_POWER = {("1 pt", 6): 8, ("1 pt", 10): 8, ("0.5 pts", 6): None, ("0.5 pts", 10): 8}
P_BEST_MIN_REPLICATES = 5  # below this the bootstrap has too few distinct resamples (10 with 3 replicates)
OPTIMISM_SPLITS = 200
STRATEGY_VERDICTS = ("better", "worse", "equivalent", "unresolved")
TWO_SIDED = {"overfits": False, "worse": True, "equivalent": False, "strategy_difference": True,
             "strategy_equivalent": False}


def error_budget(with_strategies: bool = False, alpha: float = ALPHA) -> dict:
    """{kind of claim: its share of alpha}; the shares add up to alpha, whatever the report contains."""
    sweep = alpha * (1 - STRATEGY_SHARE) if with_strategies else alpha
    budget = {kind: share * sweep for kind, share in SWEEP_SHARES.items()}
    if with_strategies:
        budget.update({kind: share * alpha * STRATEGY_SHARE for kind, share in STRATEGY_SHARES.items()})
    return budget


def replicates_needed(budget: dict) -> dict:
    """{kind of claim: the fewest replicates with which it can be made at all under `budget`}."""
    return {kind: stepdown.replicates_needed(alpha, TWO_SIDED[kind]) for kind, alpha in budget.items()}


def sign_flip_p(differences) -> np.ndarray:
    """Exact two-sided sign-flip p of each row's mean difference (every one of the 2**k sign patterns).

    The same step-down machinery with a family of one; shown beside the
    verdicts because it needs nothing but symmetry, and because with k
    replicates it can never go below 2 / 2**k.
    """
    differences = np.atleast_2d(np.asarray(differences, float))
    observed, flipped, _ = stepdown.statistics(differences, 0.0, 0)
    return np.array([stepdown.stepdown_p(observed[[i]], flipped[:, [i]])[0] for i in range(len(differences))])


def p_best(table: np.ndarray) -> np.ndarray:
    """Share of bootstrap resamples of the replicates in which each column (n) has the highest mean; ties split.

    Information, not a probability that n is best: where nothing differs the
    observed best gets well over 1/N of it. NaN below P_BEST_MIN_REPLICATES.
    """
    k, columns = table.shape
    if k < P_BEST_MIN_REPLICATES:
        return np.full(columns, np.nan)
    means = stepdown.bootstrap_counts(k) @ table / k
    top = means >= means.max(axis=1, keepdims=True) - stepdown.TOLERANCE
    return (top / top.sum(axis=1, keepdims=True)).mean(axis=0)


def selection_optimism(valid: pd.DataFrame, splits: int = OPTIMISM_SPLITS, seed: int = stepdown.SEED) -> tuple:
    """(optimism, splits): cross-fitted, how much the best n's validation mean overstates that n on new replicates.

    Over splits of the replicates into two halves: pick the best n on one
    half, and compare its mean there with its mean on the other half (all
    splits where there are at most `splits`, else a seeded sample). A pick
    made on half the replicates is noisier than one made on all of them, so
    this tends to overstate the optimism of the report's own pick. NaN below
    four replicates.
    """
    values = valid.to_numpy(float)
    k = len(values)
    if k < 4:
        return np.nan, 0
    half = k // 2
    if math.comb(k, half) <= splits:
        picks = list(itertools.combinations(range(k), half))
    else:
        rng = np.random.default_rng(seed)
        picks = [rng.choice(k, half, replace=False) for _ in range(splits)]
    chosen = np.zeros((len(picks), k))
    for i, pick in enumerate(picks):
        chosen[i, list(pick)] = 1.0
    on_pick = chosen @ values / half
    on_rest = (1 - chosen) @ values / (k - half)
    best = on_pick.argmax(axis=1)
    rows = np.arange(len(picks))
    return float(np.mean(on_pick[rows, best] - on_rest[rows, best])), len(picks)


def aligned(tables: dict) -> tuple:
    """(seeds, {arch: replicates x n array over all seeds, NaN where absent}): replicates share seeds across tables.

    Only replicates present at every n of an architecture count for it; the
    families resample whole replicates (seeds) across architectures at once.
    """
    tables = {arch: table.dropna() for arch, table in tables.items()}
    seeds = sorted(set().union(*[table.index for table in tables.values()])) if tables else []
    return seeds, {arch: table.reindex(seeds).to_numpy(float) for arch, table in tables.items()}


def compare_epochs(tables: dict, margin: float = EQUIVALENCE_MARGIN, budget: dict = None) -> pd.DataFrame:
    """Every n of every architecture against its best-by-mean n and against n = N: one row per (architecture, n).

    `tables` maps each architecture to its replicates x n table of validation
    accuracy (index: seeds). Columns: architecture, n, replicates, mean and its
    95% t-interval, best_n, p_best, difference to the best and its standard
    error, p_worse (adjusted, all pairs), p_sign_flip (exact, unadjusted,
    information), p_equivalence (adjusted), difference_to_max_n with its
    simultaneous 95% interval, p_above_max_n (adjusted, the decline test),
    t_above_max_n, verdict ("best", "worse", "equivalent", "unresolved"),
    worse_than_n and decided_by (which test made the verdict).
    """
    budget = budget or error_budget()
    seeds, values = aligned(tables)
    rows, declines, pairs, equivalences = [], [], [], []
    for arch, table in tables.items():
        matrix = values[arch]
        present = matrix[np.isfinite(matrix).all(axis=1)]
        k, size = present.shape
        means = present.mean(axis=0) if k else np.full(size, np.nan)
        best = int(np.nanargmax(means)) if k else 0  # the first, i.e. smallest, n on ties
        ns = np.asarray(table.columns, int)
        others = [i for i in range(size) if i != best]
        to_best = (matrix[:, others] - matrix[:, [best]]).T
        to_max_n = (matrix[:, :-1] - matrix[:, [-1]]).T
        frame = pd.DataFrame(dict(
            architecture=arch, n=ns, replicates=k, mean=means, best_n=int(ns[best]), p_best=p_best(present),
            difference=means - means[best], difference_se=np.nan, p_worse=np.nan, p_sign_flip=np.nan,
            p_equivalence=np.nan, difference_to_max_n=means - means[-1], difference_to_max_n_ci_low=np.nan,
            difference_to_max_n_ci_high=np.nan, p_above_max_n=np.nan, t_above_max_n=np.nan))
        intervals = np.array([t_interval(present[:, i])[1:] for i in range(size)]).reshape(size, 2)
        frame["ci_low"], frame["ci_high"] = intervals[:, 0], intervals[:, 1]
        frame.loc[others, "difference_se"] = stepdown.paired_se(to_best) if others else []
        if others and k > 1:
            frame.loc[others, "p_sign_flip"] = sign_flip_p(to_best)
        if size > 1 and k > 1:
            below = frame.index[:-1]
            half_width = stepdown.simultaneous_half_width(to_max_n)
            frame.loc[below, "difference_to_max_n_ci_low"] = frame.loc[below, "difference_to_max_n"] - half_width
            frame.loc[below, "difference_to_max_n_ci_high"] = frame.loc[below, "difference_to_max_n"] + half_width
            frame.loc[below, "t_above_max_n"] = stepdown.statistics(to_max_n, 0.0, 1)[0]
        rows.append(frame)
        declines.append(to_max_n)
        pairs.append(np.reshape([matrix[:, i] - matrix[:, j] for i, j in itertools.combinations(range(size), 2)],
                                (-1, len(seeds))))
        equivalences.append((others, to_best))
    if not rows:
        return pd.DataFrame()
    # Each kind of claim is one family over every architecture (replicates resampled together, by seed).
    decline_p = iter(stepdown.family_p(np.vstack(declines), 0.0, 1))
    pair_p = iter(stepdown.family_p(np.vstack(pairs), 0.0, 0))
    equivalent_p = iter(stepdown.equivalence_p(np.vstack([d for _, d in equivalences]), margin))
    for frame, (others, _) in zip(rows, equivalences):
        size, best = len(frame), int(np.flatnonzero(frame["n"] == frame["best_n"].iloc[0])[0])
        frame.loc[frame.index[:-1], "p_above_max_n"] = [next(decline_p) for _ in range(size - 1)]
        for i, j in itertools.combinations(range(size), 2):
            p = next(pair_p)
            if best in (i, j):
                frame.loc[j if i == best else i, "p_worse"] = p
        frame.loc[others, "p_equivalence"] = [next(equivalent_p) for _ in others]
        decide(frame, budget)
    columns = ["architecture", "n", "replicates", "mean", "ci_low", "ci_high", "best_n", "p_best", "difference",
               "difference_se", "p_worse", "p_sign_flip", "p_equivalence", "verdict", "worse_than_n", "decided_by",
               "difference_to_max_n", "difference_to_max_n_ci_low", "difference_to_max_n_ci_high", "p_above_max_n",
               "t_above_max_n"]
    return pd.concat(rows, ignore_index=True)[columns]


def decide(frame: pd.DataFrame, budget: dict) -> None:
    """One architecture's verdicts, in place: best, then worse (all pairs, then the decline test for N), equivalent."""
    is_best = frame["n"] == frame["best_n"]
    worse = (frame["p_worse"] < budget["worse"]) & (frame["difference"] < 0)
    frame["verdict"] = np.select([is_best, worse, frame["p_equivalence"] < budget["equivalent"]],
                                 ["best", "worse", "equivalent"], "unresolved")
    frame["worse_than_n"] = np.where(worse, frame["best_n"], np.nan)
    frame["decided_by"] = np.select([worse, frame["verdict"] == "equivalent"], ["all pairs", "equivalence"], "")
    # n = N is worse than the n the decline test resolves above it, where the pairs did not already say so.
    source = decline_source(frame)
    at_max_n = frame.index[-1]
    if (source is not None and frame.loc[source, "p_above_max_n"] < budget["overfits"]
            and frame.loc[at_max_n, "verdict"] != "worse" and not is_best[at_max_n]):
        frame.loc[at_max_n, ["verdict", "worse_than_n", "decided_by"]] = ["worse", frame.loc[source, "n"], "decline"]


def decline_source(frame: pd.DataFrame):
    """Index of the n < N with the strongest evidence of accuracy above N: smallest adjusted p, then largest t."""
    candidates = frame.iloc[:-1].dropna(subset=["p_above_max_n"])
    if candidates.empty:
        return None
    return candidates.sort_values(["p_above_max_n", "t_above_max_n"], ascending=[True, False]).index[0]


def one_standard_error_choice(comparison: pd.DataFrame) -> int:
    """The smallest n whose mean is within one standard error of the paired difference to the best.

    Breiman et al. (1984), Hastie et al. (ESL 7.10): prefer the cheaper
    schedule when the data cannot tell them apart. The standard error is that
    of the paired difference to the best (none with one replicate).
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


def compare_all_epochs(finals: pd.DataFrame, margin: float = EQUIVALENCE_MARGIN, budget: dict = None) -> pd.DataFrame:
    """`compare_epochs` on validation accuracy for every architecture of the sweep, as one family."""
    sweep = fine_tune_only(finals)
    return compare_epochs({arch: paired_matrix(sweep, "valid_accuracy", {"architecture": arch})
                           for arch in sweep["architecture"].unique()}, margin, budget)


def overfits(comparison: pd.DataFrame, budget: dict = None) -> pd.DataFrame:
    """Per architecture: overfits (n = N resolved as worse than some n < N), from which n, the test and its p."""
    budget = budget or error_budget()
    rows = []
    for arch, compared in comparison.groupby("architecture", sort=False):
        compared = compared.reset_index(drop=True)
        at_max_n = compared.iloc[-1]
        if at_max_n["verdict"] == "worse":
            source = int(compared.index[compared["n"] == at_max_n["worse_than_n"]][0])
            test = at_max_n["decided_by"]
        else:
            source, test = decline_source(compared), ""
        if source is None:
            source = int(compared.index[compared["n"] == compared["best_n"]][0])
        p = at_max_n["p_worse"] if test == "all pairs" else compared.loc[source, "p_above_max_n"]
        rows.append(dict(architecture=arch, overfits=at_max_n["verdict"] == "worse",
                         decline_from_n=int(compared.loc[source, "n"]), p_decline=p, decline_test=test))
    return pd.DataFrame(rows).set_index("architecture")


def overfitting_points(finals: pd.DataFrame, comparison: pd.DataFrame, budget: dict = None) -> pd.DataFrame:
    """Per architecture: best n, the one-SE choice and its test accuracy, and whether accuracy falls by N.

    `overfits` is true only when accuracy at n = N is resolved as lower than at
    some n < N; `decline_from_n` is that n (or, where nothing is resolved, the
    n with the strongest evidence), with the decline, its simultaneous 95%
    interval and the adjusted p of the test that decided it.
    """
    budget = budget or error_budget()
    sweep = fine_tune_only(finals)
    decisions_of_overfitting = overfits(comparison, budget)
    needed = replicates_needed(budget)
    rows = []
    for arch, compared in comparison.groupby("architecture", sort=False):
        compared = compared.set_index("n").sort_index()
        valid = paired_matrix(sweep, "valid_accuracy", {"architecture": arch})
        test = paired_matrix(sweep, "test_accuracy", {"architecture": arch}).reindex(valid.index)
        best_n, max_n = int(compared["best_n"].iloc[0]), int(compared.index.max())
        chosen_n = one_standard_error_choice(compared.reset_index())
        chosen_test, chosen_low, chosen_high = t_interval(test[chosen_n].dropna())
        optimism, splits = selection_optimism(valid)
        decline = decisions_of_overfitting.loc[arch]
        source = int(decline["decline_from_n"])
        rows.append(dict(
            architecture=arch, max_n=max_n, replicates=int(compared["replicates"].iloc[0]), best_n=best_n,
            best_valid_accuracy=compared.loc[best_n, "mean"], chosen_n=chosen_n,
            chosen_valid_accuracy=compared.loc[chosen_n, "mean"], chosen_test_accuracy=chosen_test,
            chosen_test_ci_low=chosen_low, chosen_test_ci_high=chosen_high,
            valid_accuracy_at_max_n=compared.loc[max_n, "mean"], decline_from_n=source,
            valid_accuracy_at_decline_from_n=compared.loc[source, "mean"],
            decline_at_max_n=-compared.loc[source, "difference_to_max_n"] if source != max_n else 0.0,
            decline_ci_low=-compared.loc[source, "difference_to_max_n_ci_high"],
            decline_ci_high=-compared.loc[source, "difference_to_max_n_ci_low"],
            p_decline=decline["p_decline"], decline_test=decline["decline_test"], overfits=bool(decline["overfits"]),
            alpha_overfits=budget["overfits"], replicates_needed_overfits=needed["overfits"],
            alpha_worse=budget["worse"], replicates_needed_worse=needed["worse"],
            selection_optimism=optimism, selection_optimism_splits=splits,
        ))
    return pd.DataFrame(rows)


def compare_strategies(finals: pd.DataFrame, margin: float = EQUIVALENCE_MARGIN, budget: dict = None,
                       metric: str = "test_accuracy") -> pd.DataFrame:
    """Every other strategy against fine_tune at the same architecture, n and replicates; one family over the table.

    Verdicts: `better` or `worse` (the two-sided family's adjusted p below its
    budget, by the sign of the difference), `equivalent` (the equivalence
    family's) or `unresolved`. diff_ci_low/high is each cell's own 95%
    t-interval of the paired difference, not adjusted.
    """
    columns = ["strategy", "architecture", "n", "replicates", "metric", "mean", "fine_tune_mean", "difference",
               "diff_ci_low", "diff_ci_high", "p_value", "p_equivalence", "verdict"]
    if "strategy" not in finals.columns:
        return pd.DataFrame(columns=columns)
    budget = budget or error_budget(with_strategies=True)
    # seeds x cells (architecture, n, strategy): every comparison is paired by seed.
    wide = finals.pivot_table(index="seed", columns=["architecture", "n", "strategy"], values=metric, sort=True)
    cells = wide.columns.to_frame(index=False)
    position = {tuple(cell): i for i, cell in enumerate(wide.columns)}
    pairs = [(i, position[(arch, n, "fine_tune")]) for strategy in sorted(set(cells["strategy"]) - {"fine_tune"})
             for i, (arch, n, s) in enumerate(wide.columns) if s == strategy and (arch, n, "fine_tune") in position]
    if not pairs:
        return pd.DataFrame(columns=columns)
    values = wide.to_numpy(float)
    differences = np.array([values[:, i] - values[:, j] for i, j in pairs])
    both = np.isfinite(differences)
    k = both.sum(axis=1)
    se = stepdown.paired_se(differences)
    with np.errstate(invalid="ignore"):
        difference = np.nanmean(differences, axis=1)
        half = scipy_stats.t.ppf(0.975, np.maximum(k - 1, 1)) * se
    table = pd.DataFrame(dict(
        strategy=[wide.columns[i][2] for i, _ in pairs], architecture=[wide.columns[i][0] for i, _ in pairs],
        n=[int(wide.columns[i][1]) for i, _ in pairs], replicates=k, metric=metric,
        mean=[np.nanmean(np.where(ok, values[:, i], np.nan)) for (i, _), ok in zip(pairs, both)],
        fine_tune_mean=[np.nanmean(np.where(ok, values[:, j], np.nan)) for (_, j), ok in zip(pairs, both)],
        difference=difference, diff_ci_low=difference - half, diff_ci_high=difference + half,
        p_value=stepdown.family_p(differences, 0.0, 0),
        p_equivalence=stepdown.equivalence_p(differences, margin)))
    resolved = table["p_value"] < budget["strategy_difference"]
    table["verdict"] = np.select([resolved & (table["difference"] > 0), resolved,
                                  table["p_equivalence"] < budget["strategy_equivalent"]],
                                 ["better", "worse", "equivalent"], "unresolved")
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


METHOD = "step-down max-T over the replicates, sign flips and studentized bootstrap"


def per_n_clauses(point: pd.Series, comparison: pd.DataFrame, margin: float = EQUIVALENCE_MARGIN,
                  budget: dict = None) -> list:
    """'n = 1..2 are worse than n = 6 (...)', ... : the verdict of every n, grouped, from the verdict columns alone."""
    budget = budget or error_budget()
    rows = comparison[comparison["architecture"] == point["architecture"]].set_index("n").sort_index()
    k = int(point["replicates"])
    clauses = []
    worse = rows[rows["verdict"] == "worse"]
    for (reference, test), group in worse.groupby(["worse_than_n", "decided_by"], sort=False):
        verb = "is" if len(group) == 1 else "are"
        if test == "decline":
            why = "the decline test above"
        else:
            why = f"{METHOD} over every pair of n, adjusted p ≤ {group['p_worse'].max():.3g} < {budget['worse']:.3g}"
        clauses.append(f"n = {ranges(group.index)} {verb} worse than n = {int(reference)} ({why})")
    equivalent = rows[rows["verdict"] == "equivalent"]
    if len(equivalent):
        verb = "is" if len(equivalent) == 1 else "are"
        clauses.append(f"n = {ranges(equivalent.index)} {verb} equivalent to n = {int(point['best_n'])} within "
                       f"{margin_points(margin)} (two one-sided tests, adjusted p ≤ "
                       f"{equivalent['p_equivalence'].max():.3g} < {budget['equivalent']:.3g})")
    unresolved = rows[rows["verdict"] == "unresolved"]
    if len(unresolved):
        verb = "is" if len(unresolved) == 1 else "are"
        clauses.append(f"n = {ranges(unresolved.index)} {verb} not resolved with {k} replicate{'s' * (k != 1)}")
    return clauses


def decline_clause(point: pd.Series) -> str:
    """'Accuracy falls from X at n = a to Y at n = N (...)' or 'No resolved decline within N = ... with k replicates'."""
    k, max_n = int(point["replicates"]), int(point["max_n"])
    if not point["overfits"]:
        text = f"No resolved decline within N = {max_n} with {k} replicate{'s' * (k != 1)}"
        if pd.isna(point["replicates_needed_overfits"]):
            return text + f": no test over {k} replicates can resolve one at this look's {point['alpha_overfits']:.3g}"
        if k < point["replicates_needed_overfits"]:
            return text + (f": with {k} no test can resolve one at this report's {point['alpha_overfits']:.3g} "
                           f"(it needs at least {int(point['replicates_needed_overfits'])})")
        if pd.notna(point["p_decline"]):
            text += (f" (strongest evidence: n = {int(point['decline_from_n'])} above n = {max_n}, adjusted p = "
                     f"{point['p_decline']:.3g}, needs < {point['alpha_overfits']:.3g})")
        return text
    test = ("the decline test, " + METHOD + f", over every n < {max_n} against {max_n}"
            if point["decline_test"] == "decline" else METHOD + " over every pair of n")
    alpha = point["alpha_overfits"] if point["decline_test"] == "decline" else point["alpha_worse"]
    return (f"Accuracy falls from {percent(point['valid_accuracy_at_decline_from_n'])} at "
            f"n = {int(point['decline_from_n'])} to {percent(point['valid_accuracy_at_max_n'])} at n = {max_n}: "
            f"{points(point['decline_at_max_n'])} (simultaneous 95% interval "
            f"{points_range(point['decline_ci_low'], point['decline_ci_high'])}; {test}: adjusted p = "
            f"{point['p_decline']:.3g} < {alpha:.3g})")


def verdict_sentence(point: pd.Series, comparison: pd.DataFrame, margin: float = EQUIVALENCE_MARGIN,
                     budget: dict = None) -> str:
    """The plain-language verdict for one architecture, built from the verdict columns alone."""
    text = decline_clause(point)
    if not point["overfits"]:
        text += f"; the highest mean is at n = {int(point['best_n'])}"
    return "; ".join([text] + per_n_clauses(point, comparison, margin, budget)) + "."


def analyze(finals: pd.DataFrame, margin: float = EQUIVALENCE_MARGIN) -> dict:
    """{'comparison', 'overfitting', 'strategies', 'budget'}: the decisions of a finals table, as the pipeline makes them.

    `finals` needs columns architecture, n, seed, valid_accuracy and
    test_accuracy (optional: strategy; only fine_tune rows make the n-sweep,
    and other strategies take their share of the report's one budget). A
    fixed design: every replicate at once (`epochbench.sequential.race`
    replays a sequential design's looks).
    """
    check_columns(finals)
    return analyze_fixed(finals, margin, report_budget(finals))


def report_budget(finals: pd.DataFrame) -> dict:
    """The report's split of its budget for a finals table: the strategies take a share where it has any."""
    return error_budget("strategy" in finals.columns and bool((finals["strategy"] != "fine_tune").any()))


def check_columns(finals: pd.DataFrame) -> None:
    missing = [c for c in ("architecture", "n", "seed", "valid_accuracy", "test_accuracy") if c not in finals.columns]
    if missing:
        raise ValueError(f"finals table: missing column(s) {', '.join(missing)}")


def analyze_fixed(finals: pd.DataFrame, margin: float, budget: dict) -> dict:
    """`analyze` of a fixed design, every kind of claim at its level in `budget`."""
    comparison = compare_all_epochs(finals, margin, budget)
    found = overfitting_points(finals, comparison, budget)
    found["verdict"] = [verdict_sentence(p, comparison, margin, budget) for _, p in found.iterrows()]
    return dict(comparison=comparison, overfitting=found, strategies=compare_strategies(finals, margin, budget),
                budget=budget)
