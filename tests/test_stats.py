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


def history_table(curves: dict, n: int, arch="netA", valid_loss=None, train_loss=None, test=None,
                  smoothed_loss=None) -> pd.DataFrame:
    """histories.csv rows of fine_tune(n) runs: {seed: [unfrozen accuracy per epoch]}, plus one frozen epoch."""
    rows = []
    for seed, accs in curves.items():
        rows.append(dict(strategy="fine_tune", architecture=arch, n=n, seed=seed, fit=1, phase="frozen", epoch=1,
                         valid_accuracy=0.1, valid_loss=9.0, train_loss=9.0, train_loss_epoch=9.0, test_accuracy=0.1))
        for epoch, acc in enumerate(accs, start=1):
            rows.append(dict(
                strategy="fine_tune", architecture=arch, n=n, seed=seed, fit=2, phase="unfrozen", epoch=epoch,
                valid_accuracy=acc, valid_loss=valid_loss[epoch - 1] if valid_loss else 1 - acc,
                train_loss=smoothed_loss[epoch - 1] if smoothed_loss else 9.0,  # fastai's smoothed loss
                train_loss_epoch=train_loss[epoch - 1] if train_loss else 1.0,
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
    points = pd.DataFrame([dict(architecture="netA", best_n=2)])
    agreeing = stats.within_run_curve(history_table({0: [0.6, 0.8, 0.7], 1: [0.6, 0.8, 0.7]}, n=3), 3)
    disagreeing = stats.within_run_curve(history_table({0: [0.6, 0.7, 0.8], 1: [0.6, 0.7, 0.8]}, n=3), 3)
    assert stats.compare_within_run(points, agreeing).iloc[0]["within_run_agrees"]
    row = stats.compare_within_run(points, disagreeing).iloc[0]
    assert row["within_run_best_epoch"] == 3 and not row["within_run_agrees"]


def test_generalization_loss_and_training_progress_by_hand():
    valid = [1.0, 0.8, 0.88, 0.96, 0.7]
    # E_opt = 1.0, 0.8, 0.8, 0.8, 0.7
    assert stats.generalization_loss(valid) == pytest.approx([0, 0, 10, 20, 0])
    train = [2.0, 1.0, 0.9, 0.9]
    assert stats.training_progress(train, t=2, strip=2) == pytest.approx(1000 * (3.0 / 2.0 - 1))
    assert stats.training_progress(train, t=4, strip=2) == pytest.approx(0.0)


def test_prechelt_criteria_stop_where_the_paper_says():
    valid = [1.0, 0.8, 0.84, 0.9, 0.95, 0.99, 1.1, 1.2]
    train = [2.0, 1.5, 1.2, 1.1, 1.05, 1.04, 1.03, 1.02]
    # Observed at strip ends only: strip 2 -> epochs 2, 4, 6, 8: 0.8, 0.9, 0.99, 1.2; GL 0, 12.5, 23.75, 50.
    assert stats.prechelt_stop(valid, train, "GL", 10, strip=2) == (4, 2)
    assert stats.prechelt_stop(valid, train, "GL", 4, strip=1) == (3, 2)  # GL at epoch 3: 100 (0.84 / 0.8 - 1) = 5
    assert stats.prechelt_stop(valid, train, "GL", 60, strip=2) == (None, 2)
    # PQ at epoch 4: GL 12.5 / P = 1000 (2.3 / 2.2 - 1) = 45.45 -> 0.275; at 6: 23.75 / 4.808 = 4.94.
    assert stats.prechelt_stop(valid, train, "PQ", 0.2, strip=2) == (4, 2)
    assert stats.prechelt_stop(valid, train, "PQ", 1.0, strip=2) == (6, 2)
    # UP_s compares strip ends: rises at 4 (0.9 > 0.8), 6, 8.
    assert stats.prechelt_stop(valid, train, "UP", 1, strip=2) == (4, 2)
    assert stats.prechelt_stop(valid, train, "UP", 3, strip=2) == (8, 2)
    assert stats.prechelt_stop(valid, train, "UP", 4, strip=2) == (None, 2)


def test_prechelt_sees_only_strip_ends():
    # The lowest loss, at epoch 1, is never observed with strips of 2: E_opt is 1.0 (epoch 2), not 0.5,
    # so GL at epoch 4 is 8, not 116, and the weights kept are a strip end's.
    valid, train = [0.5, 1.0, 1.04, 1.08], [1.0] * 4
    assert stats.prechelt_stop(valid, train, "GL", 10, strip=2) == (None, 2)
    assert stats.prechelt_stop(valid, train, "GL", 5, strip=2) == (4, 2)


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
    # Stops after epoch 4, keeps the weights of epoch 2 (lowest validation loss observed).
    assert (gl["stop_epoch"], gl["kept_epoch"], gl["test_accuracy"]) == (4, 2, 0.70)
    assert gl["epochs_trained"] == 4 + 1  # plus fine_tune's frozen epoch
    fastai_rule = table.loc["fastai patience=1"]
    # valid loss first fails to improve at epoch 3; fastai keeps the weights it stopped with.
    assert (fastai_rule["stop_epoch"], fastai_rule["kept_epoch"], fastai_rule["test_accuracy"]) == (3, 3, 0.72)
    # SaveModelCallback beside it restores the lowest validation loss so far: epoch 2.
    restored = table.loc["fastai patience=1 + best weights"]
    assert (restored["stop_epoch"], restored["kept_epoch"], restored["test_accuracy"]) == (3, 2, 0.70)


def test_pq_reads_the_epoch_mean_training_loss_not_fastais_smoothed_one():
    valid = [1.0, 0.8, 0.84, 0.9]
    histories = history_table({0: [0.5] * 4}, n=4, valid_loss=valid, train_loss=[2.0, 1.5, 1.2, 1.1],
                              smoothed_loss=[2.0, 1.0, 0.5, 0.1])
    settings = dict(strip=2, gl_alpha=[], pq_alpha=[0.2], up_strips=[], patience=[])
    # With the epoch means, P(4) = 45.45 and PQ = 0.275 > 0.2; the smoothed column would give
    # P(4) = 1000 (0.6 / 0.2 - 1) = 2000 and PQ = 0.006: no stop.
    row = stats.early_stopping(histories, 4, settings).set_index("rule").loc["PQ_0.2"]
    assert (row["stop_epoch"], row["kept_epoch"]) == (4, 2)


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
