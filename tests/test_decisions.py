"""Decision rules: hand-made cases, agreement with statsmodels/scipy, and calibration by simulation.

The calibration tests simulate experiments as the report sees them: k
replicates, N epoch counts, a replicate effect shared by every n (the split and
seed make some replicates easier) and independent noise per cell, in accuracy
points. Each rate is measured on at least 500 seeded experiments and must stay
within Monte-Carlo tolerance of its target.
"""

import itertools
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from epochbench import decisions

SIMULATIONS = 500
ALPHA = 0.05
# A rate measured on 500 experiments has a standard error of about 1 point at 5%: allow 2.5 of them.
TOLERANCE = 2.5 * np.sqrt(ALPHA * (1 - ALPHA) / SIMULATIONS)


def simulated_table(rng, k: int, true_means_points, cell_noise=1.0, replicate_effect=1.0) -> pd.DataFrame:
    """replicates x n validation accuracies (fractions) around `true_means_points` (accuracy points)."""
    true_means_points = np.asarray(true_means_points, float)
    points = (70 + true_means_points[None, :] + rng.normal(0, replicate_effect, (k, 1))
              + rng.normal(0, cell_noise, (k, len(true_means_points))))
    return pd.DataFrame(points / 100, columns=range(1, len(true_means_points) + 1))


def finals_from(table: pd.DataFrame, arch="netA", test_offset=-0.02) -> pd.DataFrame:
    long = table.rename_axis("seed").reset_index().melt(id_vars="seed", var_name="n", value_name="valid_accuracy")
    return long.assign(architecture=arch, test_accuracy=long["valid_accuracy"] + test_offset)


# --- the pieces, against the libraries they stand for ---------------------------------------------


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(0)
    for _ in range(30):  # statsmodels' holm runs gc.collect() on every call: few calls
        p = rng.uniform(0, 0.2, rng.integers(1, 30))
        assert decisions.holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    adjusted = decisions.holm([0.01, np.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_tost_matches_statsmodels_ttost_paired():
    rng = np.random.default_rng(1)
    for _ in range(50):
        a, b = rng.normal(0.7, 0.01, 6), rng.normal(0.7, 0.01, 6)
        expected = ttost_paired(a, b, -0.01, 0.01)[0]
        assert decisions.tost_p(a - b, 0.01)[0] == pytest.approx(expected)


def test_paired_t_matches_scipy_ttest_rel():
    a, b = np.array([0.71, 0.74, 0.69, 0.75]), np.array([0.70, 0.71, 0.70, 0.72])
    p, se = decisions.paired_t(a - b)
    assert p[0] == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    assert se[0] == pytest.approx(scipy_stats.sem(a - b))
    assert np.isnan(decisions.paired_t(np.array([0.01, 0.01, 0.01]))[0][0])  # no spread, nothing resolved


def test_sign_flip_p_is_exact():
    differences = np.array([0.01, 0.02, 0.03, -0.005])
    means = [np.mean(differences * signs) for signs in itertools.product([1, -1], repeat=4)]
    expected = np.mean(np.abs(means) >= abs(differences.mean()) - 1e-12)
    assert decisions.sign_flip_p(differences)[0] == pytest.approx(expected)
    # Three replicates all on one side: the smallest p three can give, 2 / 2**3.
    assert decisions.sign_flip_p(np.array([0.01, 0.02, 0.03]))[0] == pytest.approx(0.25)
    assert decisions.smallest_sign_flip_p(3) == 0.25 and decisions.smallest_sign_flip_p(6) < 0.05


# --- hand-made cases -------------------------------------------------------------------------------


def test_a_clear_decline_is_worse_and_overfits():
    # 8 replicates; n = 3 is best, n = 5 is 4 points lower in every replicate (small spread), n = 4 equal to 3.
    rng = np.random.default_rng(2)
    base = rng.normal(0.70, 0.02, (8, 1))
    table = pd.DataFrame(base + np.array([-0.06, -0.02, 0.0, 0.0, -0.04]) + rng.normal(0, 0.001, (8, 5)),
                         columns=[1, 2, 3, 4, 5])
    compared = decisions.compare_epochs({"a": table}).set_index("n")
    assert compared.loc[5, "verdict"] == "worse" and compared.loc[1, "verdict"] == "worse"
    assert compared.loc[compared["verdict"] == "best"].index[0] in (3, 4)
    assert set(compared.loc[[3, 4], "verdict"]) == {"best", "equivalent"}
    assert compared["p_best"].sum() == pytest.approx(1.0)
    assert compared.loc[[1, 2, 5], "p_best"].max() == 0.0

    finals = finals_from(table)
    tables = decisions.analyze(finals)
    point = tables["overfitting"].iloc[0]
    assert point["overfits"] and point["replicates"] == 8
    source = point["decline_from_n"]
    assert source in (3, 4) and point["p_value_holm_at_max_n"] < 0.025
    assert point["decline_at_max_n"] == pytest.approx(table[5].mean() - table[source].mean())
    assert point["verdict"].startswith(f"Accuracy falls from {100 * table[source].mean():.1f}% at n = {source} to ")
    best = point["best_n"]
    assert f"n = 1..2, 5 are worse than n = {best} (Holm-adjusted p < 0.025)" in point["verdict"]
    assert point["verdict"].endswith(f"is equivalent to n = {best} within ±1.0 pts.")


def test_three_replicates_resolve_nothing_in_a_noisy_curve():
    table = pd.DataFrame({1: [0.70, 0.72, 0.69], 2: [0.72, 0.71, 0.73], 3: [0.705, 0.715, 0.72]})
    compared = decisions.compare_epochs({"a": table})
    assert set(compared["verdict"]) == {"best", "unresolved"}
    point = decisions.analyze(finals_from(table))["overfitting"].iloc[0]
    assert not point["overfits"]
    assert point["verdict"] == ("No resolved decline within N = 3 with 3 replicates; the highest mean is at n = 2; "
                                "n = 1, 3 are not resolved with 3 replicates.")


def test_one_standard_error_choice_uses_the_paired_difference():
    # n = 1 trails n = 2 by exactly 0.01 in every replicate but one: its paired SE is tiny, so although the
    # replicates spread widely (unpaired SEM ~ 0.03), n = 1 is not within one SE of the best.
    table = pd.DataFrame({1: [0.60, 0.70, 0.80, 0.651], 2: [0.61, 0.71, 0.81, 0.66]})
    compared = decisions.compare_epochs({"a": table})
    assert decisions.one_standard_error_choice(compared) == 2
    # Noisier pairing: the difference is within one SE, and the cheaper n wins.
    table = pd.DataFrame({1: [0.60, 0.72, 0.79, 0.66], 2: [0.61, 0.71, 0.81, 0.66]})
    assert decisions.one_standard_error_choice(decisions.compare_epochs({"a": table})) == 1


def test_selection_optimism_removes_the_fixed_valid_test_offset():
    # Test is 3 points below validation at every n (a fixed offset) and 2 more at the best n, n = 2.
    valid = pd.DataFrame({1: [0.70, 0.72], 2: [0.80, 0.82], 3: [0.75, 0.77]})
    test = valid - 0.03
    test[2] -= 0.02
    optimism, low, high = decisions.selection_optimism(valid, test, best_n=2)
    assert optimism == pytest.approx(0.02 - 0.02 / 3)
    assert low == pytest.approx(optimism) and high == pytest.approx(optimism)  # the same in both replicates


def test_strategies_are_paired_and_holm_adjusted_over_the_table():
    rows = []
    for seed, base in enumerate([0.5, 0.7, 0.9, 0.6, 0.8, 0.65]):
        for n in (1, 2):
            rows += [dict(strategy="fine_tune", architecture="a", n=n, seed=seed, test_accuracy=base),
                     # 5 points worse at every replicate, give or take 0.1 point: pairing sees it through the spread.
                     dict(strategy="from_scratch", architecture="a", n=n, seed=seed,
                          test_accuracy=base - 0.05 + 0.001 * (-1) ** seed),
                     dict(strategy="head_only", architecture="a", n=n, seed=seed,
                          test_accuracy=base + 0.0005 * (-1) ** seed)]
    table = decisions.compare_strategies(pd.DataFrame(rows)).set_index(["strategy", "n"])
    assert (table.loc["from_scratch", "verdict"] == "worse").all()
    assert (table.loc["head_only", "verdict"] == "equivalent").all()
    assert table["difference"].loc["from_scratch"].to_numpy() == pytest.approx([-0.05, -0.05], abs=1e-3)
    raw = table["p_value"].to_numpy()
    assert table["p_value_holm"].to_numpy() == pytest.approx(multipletests(raw, method="holm")[1])


# --- calibration by simulation ---------------------------------------------------------------------
# 500 simulated experiments each: those that take seconds (about 2.5 minutes together on 2 cores) are
# marked slow, left out of `make test-fast`.


@pytest.mark.slow
@pytest.mark.parametrize("k", [3, 5, 10])
@pytest.mark.parametrize("max_n", [6, 10])
def test_null_experiments_rarely_claim_worse_or_overfitting(k, max_n):
    """Every n has the same true accuracy: any 'worse' is a false claim, and so is 'overfits'."""
    rng = np.random.default_rng(1000 * k + max_n)
    any_claim = overfits = 0
    for _ in range(SIMULATIONS):
        compared = decisions.compare_epochs({"a": simulated_table(rng, k, np.zeros(max_n))})
        overfit = decisions.overfits(compared).loc["a", "overfits"]
        any_claim += (compared["verdict"] == "worse").any() or overfit
        overfits += overfit
    # 'overfits' spends half the budget (its exact rate, 2.4% at k = 3, N = 10, was measured on 200,000
    # vectorised experiments); 500 experiments can only bound it by the report's whole budget.
    assert any_claim / SIMULATIONS <= ALPHA + TOLERANCE
    assert overfits / SIMULATIONS <= ALPHA + TOLERANCE


@pytest.mark.slow
def test_null_experiments_with_two_architectures_rarely_claim_anything_in_the_whole_table():
    """The report compares every architecture's n at once: one family, one false-claim budget."""
    rng = np.random.default_rng(8)
    claims = 0
    for _ in range(SIMULATIONS):
        tables = {arch: simulated_table(rng, 8, np.zeros(6)) for arch in ("a", "b")}
        compared = decisions.compare_epochs(tables)
        claims += (compared["verdict"] == "worse").any() or decisions.overfits(compared)["overfits"].any()
    assert claims / SIMULATIONS <= ALPHA + TOLERANCE


@pytest.mark.slow
def test_overfits_needs_no_winner_correction_because_n_is_compared_with_a_fixed_n():
    """Accuracy rises to N: no n < N is above N, so 'overfits' would be false however the means fall."""
    rng = np.random.default_rng(9)
    claims = sum(decisions.overfits(decisions.compare_epochs({"a": simulated_table(rng, 8, np.r_[-2, -1, 0, 0, 0, 0])}))
                 .loc["a", "overfits"] for _ in range(SIMULATIONS))
    assert claims / SIMULATIONS <= ALPHA / 2 + TOLERANCE


def test_null_experiments_of_the_old_rule_claimed_too_often():
    """The check above can fail: comparing with the best-by-mean n, Holm over those N-1 only, claims too often."""
    rng = np.random.default_rng(7)
    false_claims = 0
    for _ in range(SIMULATIONS):
        values = simulated_table(rng, 10, np.zeros(10)).to_numpy()
        best = values.mean(axis=0).argmax()
        p, _ = decisions.paired_t((np.delete(values, best, axis=1) - values[:, [best]]).T)
        false_claims += (decisions.holm(p) < ALPHA).any()
    assert false_claims / SIMULATIONS > ALPHA + TOLERANCE


@pytest.mark.slow
def test_equivalence_is_rarely_claimed_for_differences_at_the_margin():
    """Every other n is exactly one margin (1 point) below n = 1: 'equivalent' would be a false claim."""
    rng = np.random.default_rng(11)
    for k in (5, 10):
        claims = sum((decisions.compare_epochs({"a": simulated_table(rng, k, np.r_[0.0, -np.ones(5)])})["verdict"]
                      == "equivalent").any() for _ in range(SIMULATIONS))
        assert claims / SIMULATIONS <= ALPHA + TOLERANCE


@pytest.mark.slow
def test_a_real_decline_is_found_with_ten_replicates():
    """Flat to n = 4, then 3 points down by n = N = 6, cell noise 1.5 points: 'overfits' in at least 80%."""
    rng = np.random.default_rng(12)
    true_means = [0, 0, 0, 0, -1.5, -3.0]
    found = sum(decisions.overfits(decisions.compare_epochs({"a": simulated_table(rng, 10, true_means,
                                                                                     cell_noise=1.5)})).loc["a", "overfits"]
                for _ in range(SIMULATIONS))
    assert found / SIMULATIONS >= 0.80


@pytest.mark.slow
def test_strategy_table_under_the_null_rarely_claims_anything():
    """Two baselines that equal fine_tune in truth, 2 architectures x 6 n: any better/worse is a false claim."""
    rng = np.random.default_rng(13)
    false_claims = 0
    for _ in range(SIMULATIONS):
        rows = []
        for arch in ("a", "b"):
            table = simulated_table(rng, 5, np.zeros(6))
            for strategy in ("fine_tune", "head_only", "from_scratch"):
                noisy = table + rng.normal(0, 0.01, table.shape)
                rows.append(finals_from(noisy, arch).assign(strategy=strategy))
        verdicts = decisions.compare_strategies(pd.concat(rows))["verdict"]
        false_claims += verdicts.isin(["better", "worse"]).any()
    assert false_claims / SIMULATIONS <= ALPHA + TOLERANCE


def test_t_interval_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(14)
    for k in (3, 10):
        covered = 0
        for _ in range(2000):
            _, low, high = decisions.t_interval(rng.normal(0.7, 0.02, k))
            covered += low <= 0.7 <= high
        assert covered / 2000 == pytest.approx(0.95, abs=0.015)


# --- analysis of runs made anywhere -------------------------------------------------------------------


def test_analyze_command_reads_a_finals_table_the_pipeline_did_not_make(tmp_path):
    # As a W&B or MLflow export might come: other column order, extra columns, strategy names, losses.
    rng = np.random.default_rng(15)
    rows = []
    for arch in ("vit_small", "convnext_tiny"):
        for seed in range(6):
            for n in range(1, 5):
                accuracy = 0.8 - (0.03 if (arch == "vit_small" and n == 4) else 0) + rng.normal(0, 0.003)
                for strategy, shift in (("fine_tune", 0.0), ("from_scratch", -0.2)):
                    rows.append({"run_id": f"{arch}-{seed}-{n}-{strategy}", "test_accuracy": accuracy + shift - 0.01,
                                 "valid_accuracy": accuracy + shift, "seed": seed, "n": n, "architecture": arch,
                                 "strategy": strategy, "valid_loss": 1 - accuracy, "test_loss": 1 - accuracy})
    export = tmp_path / "export.csv"
    pd.DataFrame(rows).to_csv(export, index=False)
    result = subprocess.run([sys.executable, "-m", "epochbench", "analyze", str(export), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    comparison = pd.read_csv(tmp_path / "out" / "comparison.csv")
    overfitting = pd.read_csv(tmp_path / "out" / "overfitting.csv").set_index("architecture")
    strategies = pd.read_csv(tmp_path / "out" / "strategies.csv")
    for column in ("architecture", "n", "replicates", "mean", "p_value_holm", "verdict", "p_best"):
        assert column in comparison.columns
    for column in ("best_n", "chosen_n", "overfits", "replicates"):
        assert column in overfitting.columns
    assert len(comparison) == 8 and (comparison["replicates"] == 6).all()
    assert bool(overfitting.loc["vit_small", "overfits"]) and not bool(overfitting.loc["convnext_tiny", "overfits"])
    assert (strategies["verdict"] == "worse").all() and len(strategies) == 8
    # The same function the pipeline's summarize step calls.
    expected = decisions.analyze(pd.read_csv(export))["comparison"]
    assert comparison["verdict"].tolist() == expected["verdict"].tolist()


def test_analyze_command_names_the_missing_column(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"architecture": ["a"], "n": [1], "seed": [0], "valid_accuracy": [0.5]}).to_csv(bad, index=False)
    result = subprocess.run([sys.executable, "-m", "epochbench", "analyze", str(bad), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"epochbench analyze: {bad}: finals table: missing column(s) test_accuracy"
    assert not (tmp_path / "o").exists()
