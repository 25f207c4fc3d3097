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


def history_table(curves: dict, n: int, arch="netA", valid_loss=None, train_loss=None, test=None) -> pd.DataFrame:
    """histories.csv rows of fine_tune(n) runs: {seed: [unfrozen accuracy per epoch]}, plus one frozen epoch."""
    rows = []
    for seed, accs in curves.items():
        rows.append(dict(strategy="fine_tune", architecture=arch, n=n, seed=seed, fit=1, phase="frozen", epoch=1,
                         valid_accuracy=0.1, valid_loss=9.0, train_loss=9.0, test_accuracy=0.1))
        for epoch, acc in enumerate(accs, start=1):
            rows.append(dict(
                strategy="fine_tune", architecture=arch, n=n, seed=seed, fit=2, phase="unfrozen", epoch=epoch,
                valid_accuracy=acc, valid_loss=valid_loss[epoch - 1] if valid_loss else 1 - acc,
                train_loss=train_loss[epoch - 1] if train_loss else 1.0,
                test_accuracy=test[epoch - 1] if test else acc,
            ))
    return pd.DataFrame(rows)


def test_within_run_curve_uses_only_the_longest_runs_unfrozen_epochs():
    histories = pd.concat([
        history_table({0: [0.6, 0.8, 0.7], 1: [0.62, 0.82, 0.72]}, n=3),
        history_table({0: [0.99], 1: [0.99]}, n=1),  # a shorter run: not part of the within-run curve
    ])
    curve = stats.within_run_curve(histories, max_n=3)
    accuracy = curve[curve["metric"] == "valid_accuracy"].set_index("epoch")
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


def strategy_finals(by_strategy: dict, n=1, arch="netA") -> pd.DataFrame:
    rows = []
    for strategy, values in by_strategy.items():
        for seed, v in enumerate(values):
            rows.append(dict(strategy=strategy, architecture=arch, n=n, seed=seed, test_accuracy=v))
    return pd.DataFrame(rows)


def test_strategy_comparison_is_paired_over_seeds():
    # head_only trails fine_tune by 0.1 at every seed, though its seeds spread more than that: pairing sees it.
    finals = strategy_finals({"fine_tune": [0.5, 0.7, 0.9], "head_only": [0.4, 0.6, 0.8],
                              "from_scratch": [0.6, 0.5, 0.95]})
    table = stats.compare_strategies(finals).set_index("strategy")
    head = table.loc["head_only"]
    assert head["difference"] == pytest.approx(-0.1)
    assert (head["diff_ci_low"], head["diff_ci_high"]) == pytest.approx((-0.1, -0.1))
    assert head["p_beats_fine_tune"] == 0.0 and head["verdict"] == "worse than fine_tune"
    scratch = table.loc["from_scratch"]
    differences = np.array([0.1, -0.2, 0.05])
    expected = scipy_stats.bootstrap((differences,), np.mean, n_resamples=stats.BOOTSTRAP_RESAMPLES,
                                     method="percentile", random_state=0).confidence_interval
    assert (scratch["diff_ci_low"], scratch["diff_ci_high"]) == pytest.approx((expected.low, expected.high), abs=0.02)
    assert scratch["p_beats_fine_tune"] == pytest.approx(
        exact_bootstrap_probability([0.6, 0.5, 0.95], [0.5, 0.7, 0.9]), abs=0.02)
    assert scratch["verdict"] == "indistinguishable"


def test_generalization_loss_and_training_progress_by_hand():
    valid = [1.0, 0.8, 0.88, 0.96, 0.7]
    # E_opt = 1.0, 0.8, 0.8, 0.8, 0.7
    assert stats.generalization_loss(valid) == pytest.approx([0, 0, 10, 20, 0])
    train = [2.0, 1.0, 0.9, 0.9]
    assert stats.training_progress(train, t=2, strip=2) == pytest.approx(1000 * (3.0 / 2.0 - 1))
    assert stats.training_progress(train, t=4, strip=2) == pytest.approx(0.0)


def test_prechelt_criteria_stop_where_the_paper_says():
    valid = [1.0, 0.8, 0.84, 0.9, 0.95, 0.99, 1.1, 1.2]  # GL at epochs 1..8: 0, 0, 5, 12.5, 18.75, 23.75, 37.5, 50
    train = [2.0, 1.5, 1.2, 1.1, 1.05, 1.04, 1.03, 1.02]
    # Checked at strip ends only: strip 2 -> epochs 2, 4, 6, 8.
    assert stats.prechelt_stop(valid, train, "GL", 10, strip=2) == 4
    assert stats.prechelt_stop(valid, train, "GL", 4, strip=1) == 3
    assert stats.prechelt_stop(valid, train, "GL", 60, strip=2) is None
    # PQ at epoch 4: GL 12.5 / P = 1000 (2.3 / 2.2 - 1) = 45.45 -> 0.275; at 6: 23.75 / 4.808 = 4.94.
    assert stats.prechelt_stop(valid, train, "PQ", 0.2, strip=2) == 4
    assert stats.prechelt_stop(valid, train, "PQ", 1.0, strip=2) == 6
    # UP_s compares strip ends: rises at 4 (0.9 > 0.8), 6, 8.
    assert stats.prechelt_stop(valid, train, "UP", 1, strip=2) == 4
    assert stats.prechelt_stop(valid, train, "UP", 3, strip=2) == 8
    assert stats.prechelt_stop(valid, train, "UP", 4, strip=2) is None


def fastai_stop_epoch(valid_losses, patience: int):
    """Where fastai's own EarlyStoppingCallback stops, fed these validation losses through a stand-in recorder."""
    from types import SimpleNamespace

    from fastai.callback.core import CancelFitException
    from fastai.callback.tracker import EarlyStoppingCallback

    callback = EarlyStoppingCallback(monitor="valid_loss", patience=patience)
    recorder = SimpleNamespace(metric_names=["epoch", "train_loss", "valid_loss"], values=[])
    callback.learn = SimpleNamespace(recorder=recorder, epoch=0)
    callback.before_fit()
    for epoch, loss in enumerate(valid_losses, start=1):
        recorder.values.append([1.0, loss])
        callback.learn.epoch = epoch - 1
        try:
            callback.after_epoch()
        except CancelFitException:
            return epoch
    return None


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_patience_rule_stops_where_fastais_early_stopping_callback_does(patience):
    rng = np.random.default_rng(patience)
    for _ in range(50):
        losses = list(np.round(rng.uniform(0.5, 1.0, size=8), 2))  # rounding makes ties, which count as no improvement
        assert stats.patience_stop(losses, patience) == fastai_stop_epoch(losses, patience), losses


def test_early_stopping_keeps_the_right_weights_and_reads_their_test_accuracy():
    valid = [1.0, 0.8, 0.84, 0.9, 0.95, 0.99]
    test = [0.50, 0.70, 0.72, 0.66, 0.64, 0.60]
    histories = pd.concat([
        history_table({0: [0.5] * 6}, n=6, valid_loss=valid, test=test),
        history_table({0: [0.9] * 3}, n=3),  # a shorter run: not looked at
    ])
    settings = dict(strip=2, gl_alpha=[10], pq_alpha=[], up_strips=[], patience=[1])
    table = stats.early_stopping(histories, 6, settings).set_index("rule")
    gl = table.loc["GL_10"]
    # Stops after epoch 4, keeps the weights of epoch 2 (lowest validation loss so far).
    assert (gl["stop_epoch"], gl["kept_epoch"], gl["test_accuracy"]) == (4, 2, 0.70)
    assert gl["epochs_trained"] == 4 + 1  # plus fine_tune's frozen epoch
    fastai_rule = table.loc["fastai patience=1"]
    # valid loss first fails to improve at epoch 3; fastai keeps the weights it stopped with.
    assert (fastai_rule["stop_epoch"], fastai_rule["kept_epoch"], fastai_rule["test_accuracy"]) == (3, 3, 0.72)


def test_cost_table_pairs_accuracy_with_epochs_and_seconds():
    finals = pd.DataFrame([
        dict(strategy="fine_tune", architecture="a", n=n, seed=s, test_accuracy=0.5 + 0.1 * n, epochs_trained=n + 1,
             train_seconds=2.0 * (n + 1) + s)
        for n in (1, 2) for s in (0, 1)
    ])
    cost = stats.cost_table(finals).set_index(["n", "metric"])
    assert cost.loc[(2, "epochs_trained"), "mean"] == 3
    assert cost.loc[(2, "train_seconds"), "mean"] == pytest.approx(6.5)
    assert cost.loc[(1, "test_accuracy"), "mean"] == pytest.approx(0.6)
