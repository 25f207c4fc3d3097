"""Measured false-claim rates, power and coverage of the report's decision rules, and of the rule they replaced.

    python benchmarks/calibration.py [SIMULATIONS]

writes benchmarks/results/calibration.csv. The tests (tests/test_decisions.py)
assert bounds on the same simulations; this script records the rates
themselves, for the README and the notes, and the null rate of the percentile
bootstrap verdicts of commit e63b2e0 (read from git history) on the same kind of
experiments.
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

from epochbench import decisions  # noqa: E402
from epochbench.io import write_csv  # noqa: E402

OLD_COMMIT = "e63b2e0"


def simulated_table(rng, k, true_means_points, cell_noise=1.0, replicate_effect=1.0) -> pd.DataFrame:
    """As in tests/test_decisions.py: a replicate effect shared by every n, cell noise, in accuracy points."""
    true_means_points = np.asarray(true_means_points, float)
    points = (70 + true_means_points[None, :] + rng.normal(0, replicate_effect, (k, 1))
              + rng.normal(0, cell_noise, (k, len(true_means_points))))
    return pd.DataFrame(points / 100, columns=range(1, len(true_means_points) + 1))


def old_stats_module():
    """epochbench/stats.py as it was at OLD_COMMIT (bootstrap_comparison, verdict_sentence)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:epochbench/stats.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_stats.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_stats", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rate(hits, simulations) -> dict:
    share = hits / simulations
    return dict(rate=share, monte_carlo_se=np.sqrt(share * (1 - share) / simulations), simulations=simulations)


def main(simulations: int = 500) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(2026)
    for k in (3, 5, 8, 10):
        for max_n in (6, 10):
            worse = overfits = any_claim = 0
            for _ in range(simulations):
                compared = decisions.compare_epochs({"a": simulated_table(rng, k, np.zeros(max_n))})
                overfit = decisions.overfits(compared).loc["a", "overfits"]
                worse += (compared["verdict"] == "worse").any()
                overfits += overfit
                any_claim += (compared["verdict"] == "worse").any() or overfit
            rows.append(dict(rule="this change", setting="null: some n called worse", k=k, max_n=max_n,
                             **rate(worse, simulations)))
            rows.append(dict(rule="this change", setting="null: any false claim (worse or overfits)", k=k,
                             max_n=max_n, **rate(any_claim, simulations)))
            rows.append(dict(rule="this change", setting="null: overfits", k=k, max_n=max_n,
                             **rate(overfits, simulations)))
    claims = 0
    for _ in range(simulations):
        tables = {arch: simulated_table(rng, 8, np.zeros(6)) for arch in ("a", "b")}
        compared = decisions.compare_epochs(tables)
        claims += (compared["verdict"] == "worse").any() or decisions.overfits(compared)["overfits"].any()
    rows.append(dict(rule="this change", setting="null, two architectures in one report: any false claim", k=8,
                     max_n=6, **rate(claims, simulations)))
    for k in (5, 10):
        claims = sum((decisions.compare_epochs({"a": simulated_table(rng, k, np.r_[0.0, -np.ones(5)])})["verdict"]
                      == "equivalent").any() for _ in range(simulations))
        rows.append(dict(rule="this change", setting="every other n 1 point (the margin) below: some n called "
                         "equivalent", k=k, max_n=6, **rate(claims, simulations)))
    for k in (8, 10):
        for max_n in (6, 10):
            decline = np.r_[np.zeros(4), -3 * np.arange(1, max_n - 3) / (max_n - 4)]
            found = sum(decisions.overfits(decisions.compare_epochs({"a": simulated_table(rng, k, decline, cell_noise=1.5)}))
                        .loc["a", "overfits"] for _ in range(simulations))
            rows.append(dict(rule="this change", setting="power: flat to n = 4, 3 points down by N, cell noise 1.5: "
                             "overfits", k=k, max_n=max_n, **rate(found, simulations)))
    for k in (3, 10):
        covered = 0
        for _ in range(simulations):
            _, low, high = decisions.t_interval(rng.normal(0.7, 0.02, k))
            covered += low <= 0.7 <= high
        rows.append(dict(rule="this change", setting="coverage of the 95% t-interval of a mean", k=k, max_n=np.nan,
                         **rate(covered, simulations)))

    old = old_stats_module()
    old_simulations = min(simulations, 200)  # 10,000 bootstrap resamples per comparison: slow
    for k in (3, 5):
        worse = after_best = 0
        for _ in range(old_simulations):
            table = simulated_table(rng, k, np.zeros(6))
            finals = table.rename_axis("seed").reset_index().melt(id_vars="seed", var_name="n",
                                                                  value_name="valid_accuracy")
            comparison = old.bootstrap_comparison(finals.assign(architecture="a"))
            distinguished = ~comparison["indistinguishable"].astype(bool)
            worse += distinguished.any()
            # What its verdict sentence printed as "n = ... worse at 95%": the n after the best.
            after_best += (distinguished & (comparison["n"] > comparison["best_n"])).any()
        rows.append(dict(rule=f"before ({OLD_COMMIT}): percentile bootstrap", setting="null: some n called worse",
                         k=k, max_n=6, **rate(worse, old_simulations)))
        rows.append(dict(rule=f"before ({OLD_COMMIT}): percentile bootstrap",
                         setting="null: an n after the best called worse (overfitting claimed)", k=k, max_n=6,
                         **rate(after_best, old_simulations)))
    return pd.DataFrame(rows)


if __name__ == "__main__":
    start = time.time()
    table = main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
    out = ROOT / "benchmarks" / "results" / "calibration.csv"
    write_csv(out, table)
    print(table.to_string(index=False))
    print(f"{out} ({time.time() - start:.0f} s)")
