"""Decision rules: the step-down pieces against direct computations, hand-made cases, and calibration by simulation.

The calibration tests simulate whole reports as `epochbench.simulation` makes
them (the batch form of decisions.analyze, checked against it verdict by
verdict below): accuracies around a true curve, a replicate effect shared by
every n, and cell noise that is normal, correlated along n, heavy-tailed,
skewed with a spread that falls with n, or rounded to whole images. Each
rate here rests on a few hundred reports, so its bound is the report's
budget, 5%, widened by two Monte-Carlo standard errors of a 5% rate (stated
with each test); benchmarks/calibration.py measures every setting on 2,000
reports and docs/verdicts.md's tables come from there.
"""

import itertools
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from epochbench import decisions, simulation, stepdown

ALPHA = decisions.ALPHA


def bound(reports: int) -> float:
    """The report's budget widened by two Monte-Carlo standard errors of a 5% rate over `reports` reports."""
    return ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / reports)


def finals_from(table: pd.DataFrame, arch="netA", test_offset=-0.02) -> pd.DataFrame:
    long = table.rename_axis("seed").reset_index().melt(id_vars="seed", var_name="n", value_name="valid_accuracy")
    return long.assign(architecture=arch, test_accuracy=long["valid_accuracy"] + test_offset)


def finals_of(valid, test, strategies=("fine_tune", "from_scratch", "head_only")) -> pd.DataFrame:
    """A finals table from one simulated report: valid/test (architectures, strategies, replicates, N)."""
    archs, count, k, size = test.shape
    index = pd.MultiIndex.from_product([range(archs), range(count), range(k), range(size)],
                                       names=["arch", "strategy", "seed", "n"]).to_frame(index=False)
    return pd.DataFrame(dict(architecture=[f"a{a}" for a in index["arch"]],
                             strategy=[strategies[s] for s in index["strategy"]], seed=index["seed"],
                             n=index["n"] + 1, valid_accuracy=valid.ravel(), test_accuracy=test.ravel()))


# --- the pieces, against direct computations -------------------------------------------------------


def test_t_from_sums_is_the_one_sample_t():
    rng = np.random.default_rng(0)
    values = rng.normal(0.01, 0.02, (20, 6))
    t = stepdown.t_from_sums(values.sum(axis=1), (values**2).sum(axis=1), np.full(20, 6.0))
    assert t == pytest.approx(scipy_stats.ttest_1samp(values, 0.0, axis=1).statistic)


def test_sign_flips_of_a_family_of_one_are_the_exact_test():
    differences = np.array([[0.01, 0.02, 0.03, -0.005, 0.012]])
    observed, flipped, _ = stepdown.statistics(differences, 0.0, 1)
    every = [scipy_stats.ttest_1samp(differences[0] * np.array(signs), 0.0).statistic
             for signs in itertools.product([1, -1], repeat=5)]
    assert stepdown.stepdown_p(observed, flipped)[0] == pytest.approx(np.mean(np.array(every) >= observed[0] - 1e-12))
    # scipy's exact permutation test agrees on the two-sided p shown in the report.
    expected = scipy_stats.permutation_test((differences[0],), np.mean, permutation_type="samples",
                                            n_resamples=np.inf).pvalue
    assert decisions.sign_flip_p(differences)[0] == pytest.approx(expected)
    # Three replicates all on one side: the smallest p three can give.
    assert stepdown.family_p(np.array([[0.01, 0.02, 0.03]]), 0.0, 1)[0] == pytest.approx(1 / 8)
    assert stepdown.smallest_p(3, two_sided=True) == 0.25 and stepdown.replicates_needed(0.05, False) == 5


def test_stepdown_is_westfall_and_young_algorithm():
    rng = np.random.default_rng(1)
    observed, draws = rng.normal(0, 1, 6), rng.normal(0, 1, (200, 6))
    order = np.argsort(-observed)
    direct, previous = np.empty(6), 0.0
    for rank, row in enumerate(order):
        later = order[rank:]
        p = (1 + np.sum(draws[:, later].max(axis=1) >= observed[row])) / 201
        previous = direct[row] = max(previous, p)
    assert stepdown.stepdown_p(observed, draws) == pytest.approx(direct)


def test_bootstrap_resamples_and_sign_patterns_are_seeded_and_complete():
    counts = stepdown.bootstrap_counts(8)
    assert counts.shape == (stepdown.RESAMPLES, 8) and (counts.sum(axis=1) == 8).all()
    assert np.array_equal(counts, stepdown.bootstrap_counts(8))
    patterns = stepdown.sign_patterns(5)
    assert len(patterns) == 2**5 - 1 and len({tuple(p) for p in patterns}) == 31 and not (patterns == 1).all(1).any()


def test_identical_differences_are_decided_by_the_exact_test_not_a_rounding_error():
    # Issue 17, finding 1: 360 validation images, three replicates, n = N exactly one image below every n < N.
    # The differences agree in exact arithmetic and differ by ~1e-17 in floats; a t-test said p = 2.7e-28.
    base = np.array([[250, 262, 241]]).T / 360
    table = pd.DataFrame(np.hstack([base, base, base - 1 / 360]), columns=[1, 2, 3])
    decided = decisions.analyze(finals_from(table))
    point = decided["overfitting"].iloc[0]
    assert not point["overfits"] and point["p_decline"] == pytest.approx(1 / 8)
    assert set(decided["comparison"]["verdict"]) <= {"best", "unresolved", "equivalent"}
    assert "with 3 no test can resolve one" in point["verdict"]


def test_a_replicate_missing_from_one_architecture_leaves_the_other_whole():
    rng = np.random.default_rng(3)
    full = pd.DataFrame(0.7 + rng.normal(0, 0.003, (10, 4)) + [0, 0.05, 0.05, 0.05], columns=[1, 2, 3, 4])
    compared = decisions.compare_epochs({"a": full, "b": full.drop(index=[8, 9])}).set_index(["architecture", "n"])
    assert compared.loc["a", "replicates"].eq(10).all() and compared.loc["b", "replicates"].eq(8).all()
    # Seeds are flipped together across architectures: b's rows do not change where only seeds 8 and 9 flip,
    # so a's floor is 2 * 4 / 2**10, not 2 / 2**10 (exact, and the price of the joint family).
    assert compared.loc[("a", 1), "p_worse"] == pytest.approx(8 / 2**10)
    assert compared.loc[("a", 1), "verdict"] == compared.loc[("b", 1), "verdict"] == "worse"


def test_the_budget_is_one_five_percent_split_between_the_kinds_of_claim():
    assert sum(decisions.error_budget().values()) == pytest.approx(ALPHA)
    with_strategies = decisions.error_budget(with_strategies=True)
    assert sum(with_strategies.values()) == pytest.approx(ALPHA)
    assert with_strategies["overfits"] < decisions.error_budget()["overfits"]
    # One-sided 1/2**5 = 0.031 < 0.035; two-sided 2/2**8 = 0.0078 < 0.01.
    assert decisions.replicates_needed(decisions.error_budget()) == dict(overfits=5, worse=8, equivalent=8)


# --- hand-made cases -------------------------------------------------------------------------------


def clear_table(k: int) -> pd.DataFrame:
    """n = 3 best, n = 4 equal to it, n = 5 four points lower, in every replicate with a 0.2-point spread."""
    rng = np.random.default_rng(2)
    base = rng.normal(0.70, 0.02, (k, 1))
    return pd.DataFrame(base + np.array([-0.06, -0.02, 0.0, 0.0, -0.04]) + rng.normal(0, 0.002, (k, 5)),
                        columns=[1, 2, 3, 4, 5])


def test_a_clear_decline_overfits_and_every_sentence_matches_its_table():
    table = clear_table(10)
    decided = decisions.analyze(finals_from(table))
    compared = decided["comparison"].set_index("n")
    point = decided["overfitting"].iloc[0]
    assert compared.loc[[1, 2, 5], "verdict"].eq("worse").all() and compared.loc[5, "decided_by"] == "all pairs"
    assert {compared.loc[3, "verdict"], compared.loc[4, "verdict"]} == {"best", "equivalent"}
    assert point["overfits"] and point["decline_test"] == "all pairs" and point["replicates"] == 10
    source = point["decline_from_n"]
    assert source == point["best_n"] and point["p_decline"] == compared.loc[5, "p_worse"] < point["alpha_worse"]
    decline = table[5].mean() - table[source].mean()
    assert point["decline_at_max_n"] == pytest.approx(decline)
    assert point["decline_ci_low"] < decline < point["decline_ci_high"] < 0
    sentence = point["verdict"]
    assert sentence.startswith(f"Accuracy falls from {100 * table[source].mean():.1f}% at n = {source} to ")
    assert "over every pair of n: adjusted p = " in sentence
    best = int(point["best_n"])
    worse_p = compared.loc[[1, 2, 5], "p_worse"].max()
    assert f"n = 1..2, 5 are worse than n = {best} (step-down max-T" in sentence
    assert f"adjusted p ≤ {worse_p:.3g} < {point['alpha_worse']:.3g})" in sentence
    assert "equivalent to n = " in sentence and "not resolved" not in sentence


def test_the_decline_test_makes_n_equal_to_N_worse_than_the_n_it_resolves():
    # Six replicates: no pair can be resolved (2 / 2**6 > 0.01), the decline test (one-sided, the larger
    # budget) can (1 / 2**6 < 0.035), and resolves N below n = 2.
    rng = np.random.default_rng(4)
    base = rng.normal(0.7, 0.02, (6, 1))
    table = pd.DataFrame(base + np.array([0.0, 0.01, 0.0, -0.008]) + rng.normal(0, 0.002, (6, 4)),
                         columns=[1, 2, 3, 4])
    decided = decisions.analyze(finals_from(table))
    compared, point = decided["comparison"].set_index("n"), decided["overfitting"].iloc[0]
    assert compared.loc[4, "verdict"] == "worse" and compared.loc[4, "decided_by"] == "decline"
    assert point["overfits"] and point["decline_test"] == "decline"
    assert compared.loc[4, "worse_than_n"] == point["decline_from_n"]
    assert f"n = 4 is worse than n = {point['decline_from_n']} (the decline test above)" in point["verdict"]
    assert "the decline test, step-down max-T" in point["verdict"]


def test_three_replicates_resolve_nothing_and_say_how_many_would():
    table = pd.DataFrame({1: [0.70, 0.72, 0.69], 2: [0.72, 0.71, 0.73], 3: [0.705, 0.715, 0.72]})
    point = decisions.analyze(finals_from(table))["overfitting"].iloc[0]
    assert not point["overfits"]
    assert point["verdict"] == ("No resolved decline within N = 3 with 3 replicates: with 3 no test can resolve one at "
                                "this report's 0.035 (it needs at least 5); the highest mean is at n = 2; "
                                "n = 1, 3 are not resolved with 3 replicates.")


@pytest.mark.parametrize("k", [1, 2])
def test_one_or_two_replicates_give_numbers_and_no_verdict(k):
    table = clear_table(k)
    decided = decisions.analyze(finals_from(table))
    compared, point = decided["comparison"], decided["overfitting"].iloc[0]
    assert set(compared["verdict"]) == {"best", "unresolved"} and not point["overfits"]
    assert compared["mean"].to_numpy() == pytest.approx(table.mean().to_numpy())
    assert compared["p_best"].isna().all() and np.isnan(point["selection_optimism"])
    if k == 1:
        assert compared["ci_low"].isna().all() and np.isnan(point["chosen_test_ci_low"])
        assert point["chosen_n"] == point["best_n"] == compared["mean"].idxmax() + 1
    assert f"with {k} no test can resolve one" in point["verdict"]


def test_one_standard_error_choice_uses_the_paired_difference():
    # n = 1 trails n = 2 by exactly 0.01 in every replicate but one: its paired SE is tiny, so although the
    # replicates spread widely (unpaired SEM ~ 0.03), n = 1 is not within one SE of the best.
    table = pd.DataFrame({1: [0.60, 0.70, 0.80, 0.651], 2: [0.61, 0.71, 0.81, 0.66]})
    compared = decisions.compare_epochs({"a": table})
    assert decisions.one_standard_error_choice(compared) == 2
    # Noisier pairing: the difference is within one SE, and the cheaper n wins.
    table = pd.DataFrame({1: [0.60, 0.72, 0.79, 0.66], 2: [0.61, 0.71, 0.81, 0.66]})
    assert decisions.one_standard_error_choice(decisions.compare_epochs({"a": table})) == 1


def test_share_of_resamples_with_the_highest_mean_splits_ties_and_needs_five_replicates():
    tied = np.tile([0.7, 0.7, 0.6], (6, 1))
    assert decisions.p_best(tied) == pytest.approx([0.5, 0.5, 0.0])
    assert np.isnan(decisions.p_best(tied[:4])).all()
    rng = np.random.default_rng(5)
    shares = decisions.p_best(0.7 + rng.normal(0, 0.01, (8, 5)))
    assert shares.sum() == pytest.approx(1.0)


def test_selection_optimism_is_cross_fitted_on_halves_of_the_replicates():
    rng = np.random.default_rng(6)
    # Nothing differs: the n picked on one half looks better there than on the other half.
    same = pd.DataFrame(0.7 + rng.normal(0, 0.01, (8, 6)))
    optimism, splits = decisions.selection_optimism(same)
    assert splits == 70 and optimism > 0.005  # E[max of 6 means of 4] is about 1.3 SD of a mean of 4 above
    # One n far ahead: it is picked on every half and is as good on the other: no optimism.
    ahead = same.copy()
    ahead[2] += 0.2
    optimism, _ = decisions.selection_optimism(ahead)
    assert optimism == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(decisions.selection_optimism(same.iloc[:3])[0])


def test_strategies_are_paired_and_decided_as_one_family():
    rows = []
    for seed, base in enumerate([0.5, 0.7, 0.9, 0.6, 0.8, 0.65, 0.75, 0.55, 0.85, 0.72]):
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
    # Ten replicates all agreeing: no lower than the sign flips' floor 2/2**10, and within the budget.
    p = table.loc["from_scratch", "p_value"].to_numpy()
    assert (p >= 2 / 2**10).all() and (p < decisions.error_budget(with_strategies=True)["strategy_difference"]).all()


def test_batch_simulation_makes_the_verdicts_analyze_makes():
    """benchmarks/calibration.py and the tests below measure `simulation`: it must decide as analyze does."""
    rng = np.random.default_rng(3)
    truth = np.zeros((2, 3, 6))
    truth[0, 0] = [0, 0, 0, 0, -2, -4]
    truth[1, 0] = [-3, -1, 0, 0, 0, 0]
    truth[:, 1] -= 3
    valid, test = (simulation.accuracies(rng, "whole_images", truth, 10, 8) for _ in range(2))
    claims = simulation.report_claims(valid[:, :, 0], truth[:, 0], test, truth)
    for r in range(10):
        decided = decisions.analyze(finals_of(valid[r], test[r]))
        verdicts = [simulation.VERDICTS.index(v) for v in decided["comparison"]["verdict"]]
        assert verdicts == claims["verdict"][r].ravel().tolist()
        assert decided["overfitting"]["overfits"].tolist() == claims["overfits"][r].tolist()
        strategy_verdicts = [simulation.STRATEGY_CODES.index(v) for v in decided["strategies"]["verdict"]]
        assert strategy_verdicts == claims["strategy_verdict"][r].tolist()
    assert claims["overfits"][:, 0].mean() > 0.5 and not claims["overfits"][:, 1].any()


# --- calibration by simulation ---------------------------------------------------------------------
# A few hundred reports per setting (about 2 minutes in all on 2 cores): marked slow, left out of
# `make test-fast`. Each bound is 5% plus two Monte-Carlo standard errors (`bound`).

NULL_REPORTS = 400


@pytest.mark.slow
@pytest.mark.parametrize("shape", simulation.SHAPES)
@pytest.mark.parametrize("k,max_n", [(3, 10), (5, 6), (8, 10), (12, 6)])
def test_null_reports_rarely_make_any_false_claim(shape, k, max_n):
    """Every n has the same true accuracy: any 'overfits', 'worse' is false ('equivalent' is true)."""
    rng = np.random.default_rng(1000 * k + max_n + simulation.SHAPES.index(shape))
    truth = np.zeros((1, max_n))
    claims = simulation.report_claims(simulation.accuracies(rng, shape, truth, NULL_REPORTS, k), truth)
    assert claims["false_claim"].mean() <= bound(NULL_REPORTS)


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["normal", "skewed", "whole_images"])
def test_a_whole_report_of_two_architectures_and_both_baselines_shares_one_budget(shape):
    rng = np.random.default_rng(8)
    truth = np.zeros((2, 3, 6))
    valid, test = (simulation.accuracies(rng, shape, truth, 250, 8) for _ in range(2))
    claims = simulation.report_claims(valid[:, :, 0], truth[:, 0], test, truth)
    assert claims["false_claim"].mean() <= bound(250)


@pytest.mark.slow
def test_the_check_can_fail_sign_flips_alone_and_t_tests_claim_too_often_on_skewed_data():
    """Without the bootstrap the same step-down, or paired t-tests with Holm, claim 'overfits' too often."""
    rng = np.random.default_rng(9)
    valid = simulation.accuracies(rng, "skewed", np.zeros((1, 10)), NULL_REPORTS, 8)[:, 0]
    declines = np.swapaxes(valid[..., :-1] - valid[..., -1:], -1, -2)
    observed, flipped, _ = stepdown.statistics(declines, 0.0, 1)
    budget = decisions.error_budget()["overfits"]
    assert (stepdown.stepdown_p(observed, flipped) < budget).any(axis=1).mean() > bound(NULL_REPORTS)
    t_p = scipy_stats.ttest_1samp(declines, 0.0, axis=2, alternative="greater").pvalue
    # Holm, vectorised over the reports (statsmodels' multipletests, one report at a time, takes half a minute).
    order = np.argsort(t_p, axis=1)
    steps = np.maximum.accumulate(np.take_along_axis(t_p, order, axis=1) * np.arange(9, 0, -1), axis=1)
    holm = np.empty_like(t_p)
    np.put_along_axis(holm, order, np.minimum(steps, 1.0), axis=1)
    assert holm[0] == pytest.approx(multipletests(t_p[0], method="holm")[1])
    assert (holm < budget).any(axis=1).mean() > bound(NULL_REPORTS)
    # The rule itself, on the same reports:
    assert simulation.report_claims(valid[:, None], np.zeros((1, 10)))["false_claim"].mean() <= bound(NULL_REPORTS)


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["normal", "skewed"])
def test_equivalence_is_rarely_claimed_for_differences_at_the_margin(shape):
    """The best n is one margin (1 point) above every other: 'equivalent' would be a false claim."""
    rng = np.random.default_rng(11)
    for truth in (np.r_[0.0, -np.ones(5)], np.r_[-np.ones(5), 0.0]):
        valid = simulation.accuracies(rng, shape, truth[None], 300, 12)
        assert simulation.report_claims(valid, truth[None])["false_equivalent"].mean() <= bound(300)


@pytest.mark.slow
def test_a_real_decline_is_found_with_twelve_replicates():
    """Flat to n = 4, then down 1 point per epoch (N = 6), normal noise: 'overfits' in at least 80%."""
    rng = np.random.default_rng(12)
    truth = np.r_[0, 0, 0, 0, -1.0, -2.0][None]
    claims = simulation.report_claims(simulation.accuracies(rng, "normal", truth, 200, 12), truth)
    assert claims["overfits"][:, 0].mean() >= 0.8 and claims["false_claim"].mean() <= bound(200)


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
        for seed in range(10):
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
    # The columns existing users' scripts read keep their names.
    for column in ("architecture", "n", "replicates", "mean", "verdict", "p_best", "p_worse"):
        assert column in comparison.columns
    for column in ("best_n", "chosen_n", "overfits", "replicates"):
        assert column in overfitting.columns
    assert len(comparison) == 8 and (comparison["replicates"] == 10).all()
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
