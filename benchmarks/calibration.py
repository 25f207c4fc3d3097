"""False-claim rates and power of the report's decision rules, beside the rules they replaced.

    python benchmarks/calibration.py [REPORTS]
    python benchmarks/calibration.py sequential [REPORTS]

The second form measures the sequential design (replicates.looks) alone and
replaces its rows in calibration.csv, leaving the others as they are: its
null rate and power by `simulation.race_claims` (the batch form of the race
that decisions.analyze replays, checked against it in
tests/test_sequential.py), the runs it used, a fixed design with the last
look's replicates on the same simulated data, and naive peeking (paired
t-tests with Holm after every replicate) on them too.

writes benchmarks/results/calibration.csv: for every setting, the share of
simulated reports that makes any false claim (where nothing differs, or at
the equivalence margin) or that finds a real decline (power), with its
Monte-Carlo standard error, on REPORTS (default 2000) reports per setting:
for this report's rules through `epochbench.simulation` (the same step-down
functions as `decisions.analyze`, which tests/test_decisions.py checks
verdict by verdict), and for the paired t-tests with Holm of commit BEFORE,
vectorised here and checked first against BEFORE's own code, read from git
history. The tests assert bounds on fewer reports; this script records the
rates for docs/verdicts.md.
"""

import importlib.util
import itertools
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from epochbench import decisions, sequential, simulation  # noqa: E402
from epochbench.io import write_csv  # noqa: E402

BEFORE = "d97a347"  # paired t-tests, Holm over all pairs of n; "overfits" at 0.025, strategies at 0.05
KS = (3, 5, 8, 12)
MAX_NS = (6, 10)
STRATEGIES = ("fine_tune", "from_scratch", "head_only")  # as decisions.compare_strategies orders them
THIS = "this report's rules"
NULL = "nothing differs"  # (not "null": pandas would read that back as a missing value)
OLD = f"before ({BEFORE}): paired t-tests, Holm"


def decline(max_n: int, per_epoch: float) -> np.ndarray:
    """Flat to n = 4, then down by `per_epoch` points every epoch."""
    return -per_epoch * np.maximum(np.arange(1, max_n + 1) - 4, 0)


def last_drop(max_n: int, size: float = 1.0) -> np.ndarray:
    """Flat, then down by `size` points only from N - 1 to N."""
    return np.r_[np.zeros(max_n - 1), -size]


def old_module():
    """epochbench/decisions.py as it was at BEFORE, loaded inside today's package (its stats and units)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE}:epochbench/decisions.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "decisions_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("epochbench._decisions_before", path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "epochbench"
    spec.loader.exec_module(module)
    return module


def rate(hits, reports) -> dict:
    share = float(np.mean(hits))
    return dict(rate=share, monte_carlo_se=np.sqrt(share * (1 - share) / reports), reports=reports)


def this_rules(valid, truth, test=None, strategy_truth=None) -> dict:
    return simulation.report_claims(valid, truth, test, strategy_truth)


def holm(p) -> np.ndarray:
    """Holm-adjusted p along the last axis (NaN takes no share), as the old rules' decisions.holm."""
    p = np.asarray(p, float)
    finite = np.isfinite(p)
    order = np.argsort(np.where(finite, p, np.inf), axis=-1, kind="stable")
    ranked = np.take_along_axis(np.where(finite, p, np.inf), order, axis=-1)
    steps = finite.sum(axis=-1, keepdims=True) - np.arange(p.shape[-1])
    adjusted = np.minimum(np.maximum.accumulate(ranked * np.maximum(steps, 1), axis=-1), 1.0)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return np.where(finite, out, np.nan)


def t_p(differences, popmean=0.0, alternative="two-sided") -> np.ndarray:
    """The old rules' t_test_p: a one-sample t-test per row, NaN where the spread is exactly zero."""
    with np.errstate(all="ignore"):
        p = stats.ttest_1samp(differences, popmean, axis=-1, alternative=alternative).pvalue
        spread = np.std(differences, axis=-1, ddof=1)
    return np.where(spread > 0, p, np.nan)


def old_rules(valid, truth, test=None, strategy_truth=None, margin=0.01, alpha=0.05) -> dict:
    """The rules of BEFORE on a batch of reports, vectorised (checked against its own code by `check_old_rules`).

    Paired t-tests; "worse": every pair of n of every architecture, Holm, at alpha / 2 (and n = N when the
    best is resolved above it); "overfits": one-sided tests of n < N against N, Holm over every architecture's,
    at alpha / 2; "equivalent": TOST against the best, Holm, at alpha; strategies: t-test and TOST over the
    table, Holm, at alpha each.
    """
    reports, archs, k, size = valid.shape
    truth = np.asarray(truth, float) / 100
    means = valid.mean(axis=2)
    best = means.argmax(axis=2)
    first, second = np.array(list(itertools.combinations(range(size), 2))).T
    pair_holm = holm(t_p(np.swapaxes(valid[..., first] - valid[..., second], -1, -2)).reshape(reports, -1))
    pair_holm = pair_holm.reshape(reports, archs, len(first))
    index = np.full((size, size), 0)
    index[first, second] = index[second, first] = np.arange(len(first))
    p_worse = np.take_along_axis(pair_holm, index[best[..., None], np.arange(size)], axis=2)
    decline = holm(t_p(np.swapaxes(valid[..., :-1] - valid[..., -1:], -1, -2), 0.0, "greater").reshape(reports, -1))
    decline = decline.reshape(reports, archs, size - 1)
    others = np.array([[[i for i in range(size) if i != b] for b in row] for row in best])
    to_best = np.swapaxes(np.take_along_axis(valid, others[:, :, None, :], axis=3)
                          - np.take_along_axis(valid, best[:, :, None, None], axis=3), -1, -2)
    tost = np.maximum(t_p(to_best, -margin, "greater"), t_p(to_best, margin, "less"))
    tost = holm(tost.reshape(reports, -1)).reshape(reports, archs, size - 1)
    p_equivalence = np.full((reports, archs, size), np.nan)
    np.put_along_axis(p_equivalence, others, tost, axis=2)
    is_best = np.arange(size) == best[..., None]
    difference = means - np.take_along_axis(means, best[..., None], axis=2)
    best_above = np.take_along_axis(np.concatenate([decline, np.full((reports, archs, 1), np.nan)], axis=2),
                                    best[..., None], axis=2)[..., 0]
    worse = ~is_best & (p_worse < alpha / 2) & (difference < 0)
    worse[..., -1] |= ~is_best[..., -1] & (best_above < alpha / 2) & (difference[..., -1] < 0)
    equivalent = ~is_best & ~worse & (p_equivalence < alpha)
    overfits = np.nanmin(np.where(np.isnan(decline), np.inf, decline), axis=2) < alpha / 2
    source = np.argmin(np.where(np.isnan(decline), np.inf, decline), axis=2)
    true_means = np.broadcast_to(truth, means.shape)
    true_best = np.take_along_axis(true_means, best[..., None], axis=2)
    false = (worse & (true_means >= true_best - 1e-12)).any(axis=(1, 2))
    false |= (equivalent & (np.abs(true_means - true_best) >= margin - 1e-12)).any(axis=(1, 2))
    source_truth = np.take_along_axis(true_means, source[..., None], axis=2)[..., 0]
    false |= (overfits & (source_truth <= true_means[..., -1] + 1e-12)).any(axis=1)
    if test is not None:
        differences = np.swapaxes(test[:, :, 1:] - test[:, :, :1], -1, -2)  # (reports, archs, strategies-1, N, k)
        differences = np.moveaxis(differences, 1, 2).reshape(reports, -1, k)
        p = holm(t_p(differences))
        tost = holm(np.maximum(t_p(differences, -margin, "greater"), t_p(differences, margin, "less")))
        mean = differences.mean(axis=-1)
        truth_difference = np.moveaxis((np.asarray(strategy_truth) / 100)[:, 1:] - (np.asarray(strategy_truth) / 100)[:, :1],
                                       0, 1).reshape(-1)
        resolved = p < alpha
        strategy_verdict = np.select([resolved & (mean > 0), resolved, tost < alpha], [0, 1, 2], 3)
        false |= (((strategy_verdict == 0) & (truth_difference <= 1e-12))
                  | ((strategy_verdict == 1) & (truth_difference >= -1e-12))
                  | ((strategy_verdict == 2) & (np.abs(truth_difference) >= margin - 1e-12))).any(axis=1)
    return dict(false_claim=false, overfits=overfits, verdict=np.select([is_best, worse, equivalent], [0, 1, 2], 3),
                **({} if test is None else dict(strategy_verdict=strategy_verdict)))


def check_old_rules(old, rng, reports: int = 30) -> int:
    """Reports on which `old_rules` and BEFORE's own compare_epochs / overfits disagree (0 expected)."""
    truth = np.array([[0, 0, 0, 0, -1.0, -2.0], [-2.0, 0, 0, 0, 0, 0]])
    strategy_truth = np.stack([truth, truth - 3, truth + 0.5], axis=1)
    valid = simulation.accuracies(rng, "whole_images", truth, reports, 5)
    test = simulation.accuracies(rng, "whole_images", strategy_truth, reports, 5)
    vectorised = old_rules(valid, truth, test, strategy_truth)
    disagreements = 0
    for r in range(reports):
        finals = pd.DataFrame([dict(architecture=f"a{a}", strategy=strategy, seed=seed, n=n + 1,
                                    test_accuracy=test[r, a, s, seed, n])
                               for a in range(2) for s, strategy in enumerate(STRATEGIES) for seed in range(5)
                               for n in range(6)])
        strategy_verdicts = old.compare_strategies(finals)["verdict"].map(
            {"better": 0, "worse": 1, "equivalent": 2, "unresolved": 3}).to_numpy()
        disagreements += not np.array_equal(strategy_verdicts, vectorised["strategy_verdict"][r])
        tables = {f"a{a}": pd.DataFrame(valid[r, a], columns=range(1, 7)) for a in range(2)}
        compared = old.compare_epochs(tables)
        verdicts = compared["verdict"].map({"best": 0, "worse": 1, "equivalent": 2, "unresolved": 3}).to_numpy()
        found = old.overfits(compared)["overfits"].to_numpy()
        disagreements += not (np.array_equal(verdicts, vectorised["verdict"][r].ravel())
                              and np.array_equal(found, vectorised["overfits"][r]))
    return disagreements


def settings() -> list:
    """Every setting measured, as plain dicts, each with a seed of its own (so they can run in any order)."""
    found = []

    def add(setting, shape, k, max_n, truth, strategy_truth=None, claim="false_claim", old=True):
        found.append(dict(seed=2026 + len(found), setting=setting, shape=shape, replicates=k, max_n=max_n,
                          architectures=len(truth), strategies=strategy_truth is not None, truth=truth,
                          strategy_truth=strategy_truth, claim=claim, old=old))

    for shape in simulation.SHAPES:
        for k in KS:
            for max_n in MAX_NS:
                add(NULL, shape, k, max_n, np.zeros((1, max_n)))
            # Two architectures and both baselines in one report: the whole family.
            add(NULL, shape, k, 6, np.zeros((2, 6)), np.zeros((2, 3, 6)))
    # The two in between, where data are normal or skewed.
    for shape in ("normal", "skewed"):
        for k in (5, 8, 12):
            add(NULL, shape, k, 6, np.zeros((2, 6)), old=False)
            add(NULL, shape, k, 6, np.zeros((1, 6)), np.zeros((1, 3, 6)), old=False)
    # Equivalence at the margin: the best n 1 point (the margin) above every other, first or last.
    for shape in ("normal", "skewed"):
        for k in (8, 12):
            for where_best, truth in (("n = 1", np.r_[0.0, -np.ones(5)]), ("n = N", np.r_[-np.ones(5), 0.0])):
                add(f"every other n 1 point below {where_best}", shape, k, 6, truth[None], claim="false_equivalent",
                    old=False)
    # Power: a real decline, with normal and with skewed noise.
    for shape in ("normal", "skewed"):
        for k in KS:
            for max_n in MAX_NS:
                for label, truth in (("decline 0.5 pts per epoch after n = 4", decline(max_n, 0.5)),
                                     ("decline 1 pt per epoch after n = 4", decline(max_n, 1.0)),
                                     ("1-point drop from N - 1 to N only", last_drop(max_n))):
                    add(f"power: {label}", shape, k, max_n, truth[None], claim="overfits", old=shape == "normal")
    return found


CLAIMS = {"false_claim": "any false claim", "false_equivalent": "some n called equivalent to the best",
          "overfits": "overfits"}


def measure(arguments) -> list:
    """The rows of one setting: this report's rules and, where asked, the old ones, on `reports` simulated reports."""
    spec, reports = arguments
    where = {key: spec[key] for key in ("shape", "replicates", "max_n", "architectures", "strategies")}
    truth, strategy_truth = spec["truth"], spec["strategy_truth"]
    rules = [(THIS, this_rules)] + ([(OLD, old_rules)] if spec["old"] else [])
    rows = []
    for rule, decide in rules:
        rng = np.random.default_rng(spec["seed"])
        if strategy_truth is None:
            valid, test = simulation.accuracies(rng, spec["shape"], truth, reports, spec["replicates"]), None
        else:  # fine_tune's validation accuracies, and every strategy's test accuracies
            valid = simulation.accuracies(rng, spec["shape"], strategy_truth, reports, spec["replicates"])[:, :, 0]
            test = simulation.accuracies(rng, spec["shape"], strategy_truth, reports, spec["replicates"])
        claims = decide(valid, truth, test, strategy_truth)
        hits = claims[spec["claim"]]
        rows.append(dict(rule=rule, setting=spec["setting"], claim=CLAIMS[spec["claim"]], **where,
                         **rate(hits[:, 0] if hits.ndim == 2 else hits, reports)))
    return rows


def percent(value) -> str:
    return "–" if pd.isna(value) else f"{100 * value:.1f}%"


def markdown_tables(table: pd.DataFrame) -> str:
    """The calibration tables of docs/verdicts.md, made from calibration.csv (tests/test_benchmarks.py keeps them equal)."""
    table = table[table["rule"].isin([THIS, OLD])]  # the sequential design's rows have a table of their own
    null = table[table["setting"] == NULL]
    lines = ["Share of simulated reports in which nothing differs that make **any false claim** (limit 5%), "
             f"{int(null['reports'].max())} reports per cell; one architecture: the larger of N = 6 and N = 10; "
             "whole report: two architectures and both baselines, N = 6.", "",
             "| noise | k | one architecture, this | before | whole report, this | before |",
             "|---|---|---|---|---|---|"]
    for shape in simulation.SHAPES:
        for k in KS:
            cells = []
            for architectures, strategies in ((1, False), (2, True)):
                for rule in (THIS, OLD):
                    rows = null[(null["shape"] == shape) & (null["replicates"] == k) & (null["rule"] == rule)
                                & (null["architectures"] == architectures) & (null["strategies"] == strategies)]
                    cells.append(percent(rows["rate"].max() if len(rows) else np.nan))
            lines.append(f"| {shape} | {k} | " + " | ".join(cells) + " |")
    power = table[table["setting"].str.startswith("power")]
    lines += ["", "Share of simulated reports that find a real decline (**power**, 'overfits'), 1 point of noise, "
              "this report's rules / before:", "",
              "| decline | N | noise | " + " | ".join(f"k = {k}" for k in KS) + " |",
              "|---|---|---|" + "---|" * len(KS)]
    for setting in power["setting"].drop_duplicates():
        for max_n in MAX_NS:
            for shape in ("normal", "skewed"):
                cells = []
                for k in KS:
                    rows = power[(power["setting"] == setting) & (power["max_n"] == max_n) & (power["shape"] == shape)
                                 & (power["replicates"] == k)].set_index("rule")["rate"]
                    cells.append(" / ".join(percent(rows[rule]) for rule in (THIS, OLD) if rule in rows.index))
                lines.append(f"| {setting.removeprefix('power: ')} | {max_n} | {shape} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def readme_table(table: pd.DataFrame) -> str:
    """The README's summary of calibration.csv: each noise's worst null rate, old rules beside new, and power."""
    table = table[table["rule"].isin([THIS, OLD])]
    null = table[table["setting"] == NULL]
    worst = null.groupby(["rule", "shape"])["rate"].max()
    lines = ["| any false claim, nothing differs | " + " | ".join(simulation.SHAPES) + " |",
             "|---" * (len(simulation.SHAPES) + 1) + "|"]
    for rule, name in ((THIS, "this report's rules"), (OLD, "before: paired t-tests, Holm")):
        lines.append(f"| {name} | " + " | ".join(percent(worst.get((rule, shape))) for shape in simulation.SHAPES) + " |")
    power = table[(table["setting"] == "power: decline 1 pt per epoch after n = 4") & (table["shape"] == "normal")
                  & (table["max_n"] == 6)].set_index(["replicates", "rule"])["rate"]
    found = ", ".join(f"{percent(power[(k, THIS)])} / {percent(power[(k, OLD)])} at k = {k}" for k in KS)
    lines += ["", f"Worst over k = {', '.join(map(str, KS))} replicates, N = {' and '.join(map(str, MAX_NS))}, one or "
              f"two architectures, with or without baselines, {int(null['reports'].max())} simulated reports each "
              f"(limit 5%). A decline of 1 point per epoch after n = 4 (N = 6) is found in {found} (this / before)."]
    return "\n".join(lines) + "\n"


# The sequential design's settings: config/sequential.yaml's looks and N, two architectures in one family.
SEQUENTIAL_CONFIG = yaml.safe_load((ROOT / "config" / "sequential.yaml").read_text())
SEQUENTIAL_LOOKS = tuple(SEQUENTIAL_CONFIG["replicates"]["looks"])
SEQUENTIAL_N = SEQUENTIAL_CONFIG["max_epochs"]
NAIVE = "naive peeking: paired t-tests, Holm, after every replicate from 3"


def sequential_rule(spending: str) -> str:
    return f"sequential: looks {', '.join(map(str, SEQUENTIAL_LOOKS))}, {spending}"


def naive_peeking(valid) -> np.ndarray:
    """Per report: whether paired t-tests of every n < N against N (Holm over both architectures), looked at after
    every replicate from 3 to the last, ever claim a decline."""
    reports, archs, k, size = valid.shape
    claimed = np.zeros(reports, bool)
    for seen in range(3, k + 1):
        p = t_p(np.swapaxes(valid[:, :, :seen, :-1] - valid[:, :, :seen, -1:], -1, -2), 0.0, "greater")
        claimed |= np.nanmin(holm(p.reshape(reports, -1)), axis=1) < decisions.ALPHA
    return claimed


def sequential_settings() -> list:
    """Null (nothing differs) for every noise shape; power where the first architecture declines, the second is flat."""
    found = []
    for shape in simulation.SHAPES:
        found.append(dict(setting=NULL, shape=shape, truth=np.zeros((2, SEQUENTIAL_N))))
    for shape in ("normal", "skewed", "whole_images"):
        for per_epoch in (0.5, 1.0):
            truth = np.zeros((2, SEQUENTIAL_N))
            truth[0] = decline(SEQUENTIAL_N, per_epoch)
            size = "1 pt" if per_epoch == 1 else f"{per_epoch:g} pts"
            found.append(dict(setting=f"power: decline {size} per epoch after n = 4 in one of two architectures",
                              shape=shape, truth=truth))
    return [dict(spec, seed=4000 + i) for i, spec in enumerate(found)]


def measure_sequential(arguments) -> list:
    """One setting's rows: each spending function's race, the fixed design with the last look's replicates, and
    (where nothing differs) naive peeking, all on the same simulated reports."""
    spec, reports = arguments
    truth, k = spec["truth"], SEQUENTIAL_LOOKS[-1]
    valid = simulation.accuracies(np.random.default_rng(spec["seed"]), spec["shape"], truth, reports, k)
    null = spec["setting"] == NULL
    claim = "false_claim" if null else "overfits"
    where = dict(setting=spec["setting"], claim=CLAIMS[claim], shape=spec["shape"], replicates=k,
                 max_n=SEQUENTIAL_N, architectures=len(truth), strategies=False)
    fixed_runs = len(truth) * SEQUENTIAL_N * k
    rows = []
    for spending in sequential.SPENDING:
        design = sequential.Design(looks=SEQUENTIAL_LOOKS, seeds=tuple(range(k)), spending=spending)
        race = simulation.race_claims(valid, truth, design)
        hits = race[claim] if null else race[claim][:, 0]
        rows.append(dict(rule=sequential_rule(spending), **where, **rate(hits, reports),
                         runs=race["runs"].mean(), runs_fixed=fixed_runs))
    fixed = simulation.report_claims(valid, truth)
    rows.append(dict(rule=f"fixed: {k} replicates", **where,
                     **rate(fixed[claim] if null else fixed[claim][:, 0], reports), runs=fixed_runs,
                     runs_fixed=fixed_runs))
    if null:
        rows.append(dict(rule=NAIVE, **where, **rate(naive_peeking(valid), reports), runs=np.nan,
                         runs_fixed=fixed_runs))
    return rows


def sequential_table(table: pd.DataFrame) -> str:
    """The README's and docs/verdicts.md's table of the sequential design, made from calibration.csv."""
    rows = table[table["rule"].str.startswith(("sequential", "fixed", "naive"), na=False)]
    rules = list(rows["rule"].drop_duplicates())
    lines = ["| setting | noise | " + " | ".join(rules) + " |", "|---|---|" + "---|" * len(rules)]
    for (setting, shape), group in rows.groupby(["setting", "shape"], sort=False):
        cells = []
        for rule in rules:
            row = group[group["rule"] == rule]
            if row.empty:
                cells.append("–")
                continue
            row = row.iloc[0]
            runs = "" if pd.isna(row["runs"]) else f" ({row['runs'] / row['runs_fixed']:.2f} of the runs)"
            cells.append(percent(row["rate"]) + runs)
        name = "any false claim, nothing differs" if setting == NULL else setting.removeprefix("power: ")
        lines.append(f"| {name} | {shape} | " + " | ".join(cells) + " |")
    reports = int(rows["reports"].max())
    return "\n".join(lines) + (f"\n\nTwo architectures, N = {SEQUENTIAL_N}, looks at "
                               f"{' and '.join(map(str, SEQUENTIAL_LOOKS))} replicates, {reports} simulated reports "
                               "each, the same ones for every column; power is the share that finds the decline.\n")


def readme_sequential_table(table: pd.DataFrame) -> str:
    """The README's summary of the sequential design's rows of calibration.csv (tests/test_benchmarks.py keeps them equal)."""
    rows = table[table["rule"].str.startswith(("sequential", "fixed", "naive"), na=False)]
    null = rows[rows["setting"] == NULL]
    power = rows[(rows["setting"].str.startswith("power: decline 0.5 pts")) & (rows["shape"] == "normal")]
    names = {sequential_rule("obrien_fleming"): "O'Brien–Fleming", sequential_rule("pocock"): "Pocock",
             f"fixed: {SEQUENTIAL_LOOKS[-1]} replicates": f"fixed design, {SEQUENTIAL_LOOKS[-1]} replicates", NAIVE:
             "naive: t-tests after every replicate"}
    lines = ["| design | any false claim, nothing differs (worst noise) | finds a 0.5-pt-per-epoch decline | "
             "runs, of a fixed design's |", "|---|---|---|---|"]
    for rule, name in names.items():
        found = power[power["rule"] == rule]
        runs = found["runs"] / found["runs_fixed"]
        lines.append(f"| {name} | {percent(null.loc[null['rule'] == rule, 'rate'].max())} | "
                     f"{percent(found['rate'].iloc[0]) if len(found) else '–'} | "
                     f"{f'{runs.iloc[0]:.2f}' if len(found) else '–'} |")
    return "\n".join(lines) + "\n"


def one_thread() -> None:
    """In each worker: BLAS and OpenMP on one thread, kept until the worker ends (the processes share the cores)."""
    global _thread_limits
    _thread_limits = threadpool_limits(1)


def main(reports: int = 2000, processes: int = os.cpu_count()) -> pd.DataFrame:
    disagreements = check_old_rules(old_module(), np.random.default_rng(1))
    if disagreements:
        raise SystemExit(f"the vectorised old rules disagree with {BEFORE}'s code on {disagreements} of 30 reports")
    rows = []
    # One process per core, one thread each: settings are independent, each seeded by its own number.
    with multiprocessing.Pool(processes, initializer=one_thread) as pool:
        for found in pool.imap(measure, [(spec, reports) for spec in settings()]):
            rows += found
            for row in found:
                print({key: row[key] for key in ("rule", "setting", "shape", "replicates", "max_n", "architectures",
                                                 "strategies", "rate")}, flush=True)
    return pd.DataFrame(rows)


def main_sequential(reports: int = 1000, processes: int = os.cpu_count(), kept: pd.DataFrame = None) -> pd.DataFrame:
    """`kept` (default: calibration.csv's other rows) with the sequential design's rows measured anew."""
    rows = []
    with multiprocessing.Pool(processes, initializer=one_thread) as pool:
        for found in pool.imap(measure_sequential, [(spec, reports) for spec in sequential_settings()]):
            rows += found
            for row in found:
                print({key: row[key] for key in ("rule", "setting", "shape", "rate", "runs")}, flush=True)
    if kept is None:
        kept = pd.read_csv(ROOT / "benchmarks" / "results" / "calibration.csv")
        kept = kept[~kept["rule"].str.startswith(("sequential", "fixed", "naive"))]
    return pd.concat([kept, pd.DataFrame(rows)], ignore_index=True)


if __name__ == "__main__":
    start = time.time()
    if sys.argv[1:2] == ["sequential"]:
        table = main_sequential(*[int(a) for a in sys.argv[2:]])
    else:
        table = main(*[int(a) for a in sys.argv[1:]])
        table = main_sequential(*[max(int(a) // 2, 1) for a in sys.argv[1:2]], kept=table)
    out = ROOT / "benchmarks" / "results" / "calibration.csv"
    write_csv(out, table)
    print(table.to_string(index=False))
    print(markdown_tables(table))
    print(f"{out} ({time.time() - start:.0f} s)")
