"""Statistics on hand-made tables whose right answer is known, checked against numpy/scipy."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from epochbench import stats


def finals_table(valid_by_n: dict, test_by_n: dict = None, arch="netA") -> pd.DataFrame:
    """finals.csv rows from {n: [valid accuracy per seed]}."""
    rows = []
    for n, values in valid_by_n.items():
        tests = (test_by_n or {}).get(n, values)
        for seed, (v, t) in enumerate(zip(values, tests)):
            rows.append(dict(architecture=arch, n=n, seed=seed, valid_accuracy=v, test_accuracy=t,
                             valid_loss=1 - v, test_loss=1 - t))
    return pd.DataFrame(rows)


def test_summary_matches_scipy_t_interval():
    values = [0.80, 0.84, 0.83, 0.79, 0.85]
    summary = stats.summarize(finals_table({1: values}))
    row = summary[summary["metric"] == "valid_accuracy"].iloc[0]
    sem = np.std(values, ddof=1) / np.sqrt(len(values))
    low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sem)
    assert row["seeds"] == 5
    assert row["mean"] == pytest.approx(np.mean(values))
    assert row["std"] == pytest.approx(np.std(values, ddof=1))
    assert row["sem"] == pytest.approx(scipy_stats.sem(values))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))


def test_summary_has_one_row_per_architecture_n_and_metric():
    finals = pd.concat([finals_table({1: [0.5, 0.6], 2: [0.7, 0.8]}, arch=a) for a in ("netA", "netB")])
    summary = stats.summarize(finals)
    assert len(summary) == 2 * 2 * len(stats.METRICS)
    assert set(summary["metric"]) == set(stats.METRICS)


def test_single_seed_has_no_spread_and_no_interval():
    row = stats.summarize(finals_table({1: [0.9]})).iloc[0]
    assert row["seeds"] == 1
    assert np.isnan(row["std"]) and np.isnan(row["ci_low"]) and np.isnan(row["ci_high"])


def test_overfitting_point_and_one_standard_error_rule():
    # Best mean at n=4 (0.90, sem 0.01); n=3 has mean 0.895 >= 0.89 so the rule picks 3; n=2 (0.85) is out.
    valid = {1: [0.70, 0.72, 0.71], 2: [0.84, 0.85, 0.86], 3: [0.885, 0.895, 0.905],
             4: [0.89, 0.90, 0.91], 5: [0.86, 0.87, 0.88]}
    test = {n: [v - 0.02 for v in values] for n, values in valid.items()}
    point = stats.overfitting_points(stats.summarize(finals_table(valid, test))).iloc[0]
    sem4 = scipy_stats.sem(valid[4])
    assert point["best_n"] == 4
    assert point["best_valid_accuracy"] == pytest.approx(0.90)
    assert point["best_valid_accuracy_sem"] == pytest.approx(sem4)
    assert point["one_se_threshold"] == pytest.approx(0.90 - sem4)
    assert point["chosen_n"] == 3
    assert point["chosen_test_accuracy"] == pytest.approx(np.mean(test[3]))
    low, high = scipy_stats.t.interval(0.95, 2, loc=np.mean(test[3]), scale=scipy_stats.sem(test[3]))
    assert (point["chosen_test_ci_low"], point["chosen_test_ci_high"]) == pytest.approx((low, high))
    assert point["overfits_within_max_n"]
    assert point["valid_accuracy_at_max_n"] == pytest.approx(0.87)


def test_no_overfitting_when_accuracy_keeps_rising():
    valid = {1: [0.5, 0.52], 2: [0.6, 0.62], 3: [0.7, 0.72]}
    point = stats.overfitting_points(stats.summarize(finals_table(valid))).iloc[0]
    assert point["best_n"] == 3 and point["chosen_n"] == 3
    assert not point["overfits_within_max_n"]


def test_ties_go_to_the_smaller_n():
    valid = {1: [0.5, 0.5], 2: [0.8, 0.8], 3: [0.8, 0.8]}
    point = stats.overfitting_points(stats.summarize(finals_table(valid))).iloc[0]
    assert point["best_n"] == 2 and point["chosen_n"] == 2


def history_table(curves: dict, n: int, arch="netA") -> pd.DataFrame:
    """histories.csv rows of fine_tune(n) runs: {seed: [unfrozen accuracy per epoch]}, plus one frozen epoch."""
    rows = []
    for seed, accs in curves.items():
        rows.append(dict(architecture=arch, n=n, seed=seed, phase="frozen", epoch=1, accuracy=0.1, valid_loss=2.0))
        for epoch, acc in enumerate(accs, start=1):
            rows.append(dict(architecture=arch, n=n, seed=seed, phase="unfrozen", epoch=epoch, accuracy=acc,
                             valid_loss=1 - acc))
    return pd.DataFrame(rows)


def test_within_run_curve_uses_only_the_longest_runs_unfrozen_epochs():
    histories = pd.concat([
        history_table({0: [0.6, 0.8, 0.7], 1: [0.62, 0.82, 0.72]}, n=3),
        history_table({0: [0.99], 1: [0.99]}, n=1),  # a shorter run: not part of the within-run curve
    ])
    curve = stats.within_run_curve(histories, max_n=3)
    accuracy = curve[curve["metric"] == "accuracy"].set_index("epoch")
    assert list(accuracy.index) == [1, 2, 3]
    assert accuracy.loc[2, "mean"] == pytest.approx(0.81)
    assert (accuracy["seeds"] == 2).all()


def test_compare_within_run_reports_agreement():
    valid = {1: [0.6, 0.62], 2: [0.85, 0.86], 3: [0.7, 0.71]}
    points = stats.overfitting_points(stats.summarize(finals_table(valid)))
    agreeing = stats.within_run_curve(history_table({0: [0.6, 0.8, 0.7], 1: [0.6, 0.8, 0.7]}, n=3), 3)
    disagreeing = stats.within_run_curve(history_table({0: [0.6, 0.7, 0.8], 1: [0.6, 0.7, 0.8]}, n=3), 3)
    assert stats.compare_within_run(points, agreeing).iloc[0]["within_run_agrees"]
    row = stats.compare_within_run(points, disagreeing).iloc[0]
    assert row["within_run_best_epoch"] == 3 and not row["within_run_agrees"]


def exact_bootstrap_probability(a, b) -> float:
    """P(mean(a*) > mean(b*)) over all k**k equally likely paired resamples of k seeds: the bootstrap's exact value."""
    import itertools

    a, b, k = np.asarray(a), np.asarray(b), len(a)
    wins = [a[list(idx)].mean() > b[list(idx)].mean() for idx in itertools.product(range(k), repeat=k)]
    return float(np.mean(wins))


def test_bootstrap_probability_and_intervals_match_exact_enumeration():
    valid = {1: [0.70, 0.72, 0.71], 2: [0.86, 0.84, 0.88], 3: [0.87, 0.83, 0.86], 4: [0.80, 0.81, 0.79]}
    comparison = stats.bootstrap_comparison(finals_table(valid)).set_index("n")
    assert (comparison["best_n"] == 2).all()
    assert comparison.loc[3, "p_beats_best"] == pytest.approx(exact_bootstrap_probability(valid[3], valid[2]), abs=0.02)
    assert comparison.loc[1, "p_beats_best"] == 0.0
    assert np.isnan(comparison.loc[2, "p_beats_best"])
    # Percentile interval of the mean lies within the range of the seeds' values.
    for n, values in valid.items():
        low, high = comparison.loc[n, "boot_ci_low"], comparison.loc[n, "boot_ci_high"]
        assert min(values) - 1e-9 <= low <= np.mean(values) <= high <= max(values) + 1e-9
    assert bool(comparison.loc[3, "indistinguishable"]) and not bool(comparison.loc[4, "indistinguishable"])


def test_verdict_sentences():
    peaked = {1: [0.70, 0.72, 0.71], 2: [0.86, 0.84, 0.88], 3: [0.87, 0.83, 0.86], 4: [0.80, 0.81, 0.79]}
    text = stats.verdict_sentence(stats.bootstrap_comparison(finals_table(peaked)), "netA")
    assert text == "Accuracy stops improving after n = 2; n = 3 is indistinguishable from it at 95%; n = 4 is worse at 95%."
    rising = {1: [0.5, 0.52, 0.51], 2: [0.6, 0.62, 0.61], 3: [0.7, 0.72, 0.71]}
    text = stats.verdict_sentence(stats.bootstrap_comparison(finals_table(rising)), "netA")
    assert text == "No overfitting within N = 3: mean validation accuracy is highest at n = 3."


def test_curve_shape_flags_a_dip_that_recovers():
    assert stats.curve_shape(pd.Series([0.5, 0.7, 0.8])) == "rising"
    assert stats.curve_shape(pd.Series([0.5, 0.8, 0.7, 0.6])) == "peaked"
    assert stats.curve_shape(pd.Series([0.5, 0.7, 0.6, 0.8])) == "dip then recovery"


def test_selection_gap_is_best_valid_minus_test_at_best_n():
    valid = {1: [0.6, 0.62], 2: [0.9, 0.92], 3: [0.8, 0.82]}
    test = {1: [0.6, 0.6], 2: [0.85, 0.85], 3: [0.8, 0.8]}
    point = stats.overfitting_points(stats.summarize(finals_table(valid, test))).iloc[0]
    assert point["test_accuracy_at_best_n"] == pytest.approx(0.85)
    assert point["selection_gap"] == pytest.approx(0.91 - 0.85)
