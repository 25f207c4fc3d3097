"""False-claim rates and power of the report's decision rules, beside the rules they replaced.

    python benchmarks/calibration.py [REPORTS] [OLD_REPORTS]

writes benchmarks/results/calibration.csv: for every setting, the share of
simulated reports that makes any false claim (where nothing differs, or at
the equivalence margin) or that finds a real decline (power), with its
Monte-Carlo standard error. REPORTS (default 2000) per setting for this
report's rules, through `epochbench.simulation` (the same step-down
functions as `decisions.analyze`, which tests/test_decisions.py checks
verdict by verdict); OLD_REPORTS (default 1000) for the paired t-tests with
Holm of commit BEFORE, read from git history and run through its own
compare_epochs / overfits / compare_strategies. The tests assert bounds on
fewer reports; this script records the rates for the README. About 90
minutes on 2 CPU cores.
"""

import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from epochbench import simulation  # noqa: E402
from epochbench.io import write_csv  # noqa: E402

BEFORE = "d97a347"  # paired t-tests, Holm over all pairs of n; "overfits" at 0.025, strategies at 0.05
KS = (3, 5, 8, 12)
MAX_NS = (6, 10)
STRATEGIES = ("fine_tune", "from_scratch", "head_only")  # as decisions.compare_strategies orders them
THIS = "this report's rules"
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


def simulate(seed, shape, truth, reports, k, strategy_truth=None):
    rng = np.random.default_rng(seed)
    valid = simulation.accuracies(rng, shape, truth, reports, k)
    test = None if strategy_truth is None else simulation.accuracies(rng, shape, strategy_truth, reports, k)
    return valid, test


def this_rules(valid, truth, test=None, strategy_truth=None) -> dict:
    return simulation.report_claims(valid, truth, test, strategy_truth)


def old_rules(old, valid, truth, test=None, strategy_truth=None, margin=0.01) -> dict:
    """The same counts for the old rules, report by report through its own functions."""
    truth = np.asarray(truth, float) / 100
    false_claim, overfits = [], []
    for r in range(len(valid)):
        tables = {f"a{a}": pd.DataFrame(valid[r, a], columns=range(1, valid.shape[-1] + 1))
                  for a in range(valid.shape[1])}
        compared = old.compare_epochs(tables, margin)
        found = old.overfits(compared)
        false = False
        for a, (arch, rows) in enumerate(compared.groupby("architecture", sort=False)):
            rows = rows.reset_index(drop=True)
            best = int(np.flatnonzero(rows["verdict"] == "best")[0])
            worse = rows.index[rows["verdict"] == "worse"]
            false |= bool((truth[a, worse] >= truth[a, best] - 1e-12).any())
            equivalent = rows.index[rows["verdict"] == "equivalent"]
            false |= bool((np.abs(truth[a, equivalent] - truth[a, best]) >= margin * 100 - 1e-9).any())
            source = int(found.loc[arch, "decline_from_n"]) - 1
            false |= bool(found.loc[arch, "overfits"]) and truth[a, source] <= truth[a, -1] + 1e-12
        overfits.append(found["overfits"].to_numpy())
        if test is not None:
            rows = []
            for a in range(test.shape[1]):
                for s, strategy in enumerate(STRATEGIES):
                    for seed in range(test.shape[3]):
                        for n in range(test.shape[4]):
                            rows.append(dict(architecture=f"a{a}", strategy=strategy, seed=seed, n=n + 1,
                                             test_accuracy=test[r, a, s, seed, n]))
            table = old.compare_strategies(pd.DataFrame(rows), margin)
            for row in table.itertuples():
                a, s = int(row.architecture[1:]), STRATEGIES.index(row.strategy)
                difference = (strategy_truth[a, s, row.n - 1] - strategy_truth[a, 0, row.n - 1]) / 100
                false |= ((row.verdict == "better" and difference <= 0) or (row.verdict == "worse" and difference >= 0)
                          or (row.verdict == "equivalent" and abs(difference) >= margin - 1e-12))
        false_claim.append(false)
    return dict(false_claim=np.array(false_claim), overfits=np.array(overfits))


def main(reports: int = 2000, old_reports: int = 1000) -> pd.DataFrame:
    old = old_module()
    rows = []

    def record(rule, setting, claim, hits, count, **where):
        rows.append(dict(rule=rule, setting=setting, claim=claim, **where, **rate(hits, count)))
        print(rows[-1], flush=True)

    seed = 2026
    for shape in simulation.SHAPES:
        for k in KS:
            for max_n in MAX_NS:
                seed += 1
                where = dict(shape=shape, replicates=k, max_n=max_n, architectures=1, strategies=False)
                truth = np.zeros((1, max_n))
                valid, _ = simulate(seed, shape, truth, reports, k)
                record(THIS, "null", "any false claim", this_rules(valid, truth)["false_claim"], reports, **where)
                valid, _ = simulate(seed, shape, truth, old_reports, k)
                record(OLD, "null", "any false claim", old_rules(old, valid, truth)["false_claim"], old_reports,
                       **where)
            # Two architectures and both baselines in one report, N = 6: the whole family.
            seed += 1
            where = dict(shape=shape, replicates=k, max_n=6, architectures=2, strategies=True)
            truth, strategy_truth = np.zeros((2, 6)), np.zeros((2, 3, 6))
            valid, test = simulate(seed, shape, strategy_truth, reports, k, strategy_truth)
            record(THIS, "null", "any false claim", this_rules(valid[:, :, 0], truth, test, strategy_truth)["false_claim"],
                   reports, **where)
            if k in (5, 8):
                valid, test = simulate(seed, shape, strategy_truth, old_reports // 4, k, strategy_truth)
                record(OLD, "null", "any false claim",
                       old_rules(old, valid[:, :, 0], truth, test, strategy_truth)["false_claim"], old_reports // 4,
                       **where)
    # The two families in between, where data are normal or skewed.
    for shape in ("normal", "skewed"):
        for k in (5, 8, 12):
            seed += 1
            truth, strategy_truth = np.zeros((2, 6)), np.zeros((1, 3, 6))
            valid, _ = simulate(seed, shape, truth, reports, k)
            record(THIS, "null", "any false claim", this_rules(valid, truth)["false_claim"], reports, shape=shape,
                   replicates=k, max_n=6, architectures=2, strategies=False)
            valid, test = simulate(seed + 500, shape, strategy_truth, reports, k, strategy_truth)
            record(THIS, "null", "any false claim",
                   this_rules(valid[:, :, 0], strategy_truth[:, 0], test, strategy_truth)["false_claim"], reports,
                   shape=shape, replicates=k, max_n=6, architectures=1, strategies=True)
    # Equivalence at the margin: the best n 1 point (the margin) above every other, first or last.
    for shape in ("normal", "skewed"):
        for k in (8, 12):
            for where_best, truth in (("n = 1", np.r_[0.0, -np.ones(5)]), ("n = N", np.r_[-np.ones(5), 0.0])):
                seed += 1
                valid, _ = simulate(seed, shape, truth[None], reports, k)
                record(THIS, f"every other n 1 point below {where_best}", "some n called equivalent to the best",
                       this_rules(valid, truth[None])["false_equivalent"], reports, shape=shape, replicates=k, max_n=6,
                       architectures=1, strategies=False)
    # Power: a real decline, with normal and with skewed noise.
    for shape in ("normal", "skewed"):
        for k in KS:
            for max_n in MAX_NS:
                for label, truth in (("decline 0.5 pts per epoch after n = 4", decline(max_n, 0.5)),
                                     ("decline 1 pt per epoch after n = 4", decline(max_n, 1.0)),
                                     ("1-point drop from N - 1 to N only", last_drop(max_n))):
                    seed += 1
                    where = dict(shape=shape, replicates=k, max_n=max_n, architectures=1, strategies=False)
                    valid, _ = simulate(seed, shape, truth[None], reports, k)
                    record(THIS, f"power: {label}", "overfits", this_rules(valid, truth[None])["overfits"][:, 0], reports,
                           **where)
                    if shape == "normal":
                        valid, _ = simulate(seed, shape, truth[None], old_reports, k)
                        record(OLD, f"power: {label}", "overfits", old_rules(old, valid, truth[None])["overfits"][:, 0],
                               old_reports, **where)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    start = time.time()
    arguments = [int(a) for a in sys.argv[1:]]
    table = main(*arguments)
    out = ROOT / "benchmarks" / "results" / "calibration.csv"
    write_csv(out, table)
    print(table.to_string(index=False))
    print(f"{out} ({time.time() - start:.0f} s)")
