"""Sequential designs: the spending boundaries, the race replayed look by look, and its error rate by simulation.

The calibration here simulates whole races as `epochbench.simulation.race_claims`
makes them (checked against `sequential.race`, which the pipeline runs, look by look,
below), on the data shapes of tests/test_decisions.py; benchmarks/calibration.py
measures more reports and settings.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from epochbench import decisions, sequential, simulation
from test_decisions import bound, finals_of

MAX_N = 8


def design(looks=(6, 12), spending="obrien_fleming", futility=True) -> sequential.Design:
    return sequential.Design(looks=tuple(looks), seeds=tuple(range(looks[-1])), spending=spending, futility=futility)


def declining_and_flat() -> np.ndarray:
    """Two architectures: the first falls 1.5 points an epoch after n = 4, the second is flat."""
    truth = np.zeros((2, MAX_N))
    truth[0] = -1.5 * np.maximum(np.arange(1, MAX_N + 1) - 4, 0)
    return truth


@pytest.mark.parametrize("spending", sequential.SPENDING)
@pytest.mark.parametrize("two_sided", [False, True])
def test_nominal_levels_spend_alpha_as_the_spending_function_says(spending, two_sided):
    """Brownian motion at the looks (sums of normal replicates), crossing the nominal levels: alpha(t_j) by look j."""
    looks, alpha = (4, 8, 12), 0.05
    levels = sequential.nominal_levels(looks, alpha, spending, two_sided)
    rng = np.random.default_rng(5)
    sums = rng.normal(size=(400_000, looks[-1])).cumsum(axis=1)
    z = sums[:, np.array(looks) - 1] / np.sqrt(looks)
    p = 2 * scipy_stats.norm.sf(np.abs(z)) if two_sided else scipy_stats.norm.sf(z)
    crossed = np.logical_or.accumulate(p < np.array(levels), axis=1).mean(axis=0)
    for j, k in enumerate(looks):
        expected = sequential.spent(k / looks[-1], alpha, spending)
        assert abs(crossed[j] - expected) < 4 * np.sqrt(expected / 400_000) + 2e-4
    assert levels[-1] < alpha  # the looks cost the last one some of its level


def test_one_look_is_the_fixed_design_and_obrien_fleming_keeps_most_for_the_last():
    assert sequential.nominal_levels((10,), 0.035, "obrien_fleming", False)[0] == pytest.approx(0.035)
    early, last = sequential.nominal_levels((6, 12), 0.035, "obrien_fleming", False)
    pocock_early, pocock_last = sequential.nominal_levels((6, 12), 0.035, "pocock", False)
    assert early < pocock_early and last > pocock_last and last > 0.03


def test_the_pipelines_race_makes_the_decisions_the_batch_simulation_makes():
    """The pipeline's race (sequential.race) and the calibration's (simulation.race_claims) agree."""
    rng = np.random.default_rng(11)
    truth = declining_and_flat()
    plan = design(spending="pocock")
    valid = simulation.accuracies(rng, "whole_images", truth, 8, 12)
    claims = simulation.race_claims(valid, truth, plan)
    for r in range(8):
        finals = finals_of(valid[r][:, None], valid[r][:, None], strategies=("fine_tune",))
        decided = sequential.race(finals, plan, decisions.EQUIVALENCE_MARGIN)
        points = decided["overfitting"]
        assert points["state"].tolist() == [sequential.STATES[s] for s in claims["state"][r]]
        assert points["look"].tolist() == claims["look"][r].tolist()
        assert points["replicates"].tolist() == claims["replicates"][r].tolist()
        assert points["overfits"].tolist() == claims["overfits"][r].tolist()
        assert (points["runs"] == points["replicates"] * MAX_N).all() and (points["runs_fixed"] == 12 * MAX_N).all()
    # Both ways of stopping happen in these eight reports: early for the decline, at the end for the flat one.
    assert (claims["look"][:, 0] == 1).any() and (claims["look"][:, 1] == 2).any()


def test_a_look_plans_the_next_seeds_only_for_open_architectures():
    rng = np.random.default_rng(2)
    truth = declining_and_flat()
    truth[0] *= 4  # six epochs' decline, every replicate agreeing: resolved at the first look
    plan = design(spending="pocock", futility=False)
    valid = simulation.accuracies(rng, "normal", truth, 1, 12)[0]
    finals = finals_of(valid[:, None], valid[:, None], strategies=("fine_tune",))
    first_look = finals[finals["seed"] < 6]
    decided = sequential.look_decisions(first_look, plan, 1, decisions.EQUIVALENCE_MARGIN)
    assert decided["states"] == {"a0": "overfits", "a1": "open"}
    assert decided["seeds"] == {"a0": list(range(6)), "a1": list(range(12))}
    # The second look sees a0's six seeds and a1's twelve: a0 keeps its first look's verdicts.
    second_look = finals[(finals["architecture"] == "a1") | (finals["seed"] < 6)]
    final = sequential.look_decisions(second_look, plan, 2, decisions.EQUIVALENCE_MARGIN)
    assert final["states"]["a0"] == "overfits" and final["states"]["a1"] in ("unresolved", "holds")
    # A look whose cells are not all there is refused, not decided on part of them.
    with pytest.raises(ValueError, match="look 2: the cells given reach look 1"):
        sequential.look_decisions(first_look, plan, 2, decisions.EQUIVALENCE_MARGIN)


def test_the_report_counts_the_runs_the_race_saved():
    from epochbench import report

    rng = np.random.default_rng(2)
    truth = declining_and_flat()
    truth[0] *= 4
    valid = simulation.accuracies(rng, "normal", truth, 1, 12)[0]
    finals = finals_of(valid[:, None], valid[:, None], strategies=("fine_tune",))
    decided = sequential.race(finals, design(spending="pocock", futility=False), decisions.EQUIVALENCE_MARGIN)
    race = report.race_context(decided["overfitting"], decided["looks"])
    # a0 stopped at 6 replicates (48 runs), a1 went on to 12 (96): 144 of the 192 a fixed design trains.
    assert [r["runs"] for r in race["rows"]] == ["48 of 96", "96 of 96"]
    assert race["saved"].startswith("The sequential design trained 144 of the 192 runs")
    assert race["blind"] == ""  # Pocock's first look at 6 replicates, 0.022, is above their floor of 1/64
    assert [(r["architecture"], r["look"]) for r in race["looks"]] == [("a0", 1), ("a1", 1), ("a1", 2)]
    assert "stopped at look 1 of 2 (decline resolved) with 6 replicates" in report.sequential_note(
        decided["overfitting"].iloc[0])


def test_analyze_looks_replays_the_race_on_a_table_the_pipeline_did_not_make(tmp_path):
    """`python -m epochbench analyze --looks 6,12`: the race's tables, as the pipeline's summarize makes them, and
    its looks table; without --looks the same runs are one fixed design of all twelve replicates."""
    import subprocess
    import sys

    rng = np.random.default_rng(2)
    truth = declining_and_flat()
    truth[0] *= 4  # resolved at the first look
    valid = simulation.accuracies(rng, "normal", truth, 1, 12)[0]
    finals = finals_of(valid[:, None], valid[:, None], strategies=("fine_tune",))
    export = tmp_path / "finals.csv"
    finals.sample(frac=1, random_state=0).to_csv(export, index=False)  # in no particular order

    def analyze(*extra):
        return subprocess.run([sys.executable, "-m", "epochbench", "analyze", str(export), "--out",
                               str(tmp_path / "out"), *extra], capture_output=True, text=True)

    result = analyze("--looks", "6,12", "--spending", "pocock")
    assert result.returncode == 0, result.stderr
    expected = sequential.race(finals, design(spending="pocock"), decisions.EQUIVALENCE_MARGIN)
    overfitting = pd.read_csv(tmp_path / "out" / "overfitting.csv").set_index("architecture")
    assert overfitting["look"].to_dict() == expected["overfitting"].set_index("architecture")["look"].to_dict() \
        == {"a0": 1, "a1": 2}
    assert overfitting["replicates"].to_dict() == {"a0": 6, "a1": 12}
    looks = pd.read_csv(tmp_path / "out" / "looks.csv")
    assert sorted(looks[["architecture", "look", "state"]].values.tolist()) == \
        sorted(expected["looks"][["architecture", "look", "state"]].values.tolist())
    assert looks["alpha_overfits"].iloc[0] == pytest.approx(
        sequential.nominal_levels((6, 12), decisions.report_budget(finals)["overfits"], "pocock", False)[0])
    bad = analyze("--looks", "6,24")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (f"epochbench analyze: {export}: --looks 6,24: the last look needs 24 seeds, "
                                  "the table has 12")
    assert analyze("--looks", "8,6").returncode == 2
    (tmp_path / "out" / "looks.csv").unlink()
    assert analyze().returncode == 0 and not (tmp_path / "out" / "looks.csv").exists()
    assert (pd.read_csv(tmp_path / "out" / "overfitting.csv")["replicates"] == 12).all()  # one fixed design


def test_a_look_whose_level_is_below_its_replicates_floor_is_named_in_the_report():
    """O'Brien-Fleming's first look at 6 of 12 replicates cannot resolve a decline; at 8 of 12 it can, and does."""
    from epochbench import report

    assert sequential.decline_floor(6) == 1 / 64 and sequential.decline_floor(8) == 1 / 256
    assert sequential.decline_floor(12) == 1 / 2001  # 2000 drawn sign patterns and bootstrap resamples
    truth = np.zeros((2, MAX_N))
    truth[:, -1] = -20.0  # n = N twenty points below every other n, in every replicate
    valid = simulation.accuracies(np.random.default_rng(4), "normal", truth, 1, 12)[0]
    finals = finals_of(valid[:, None], valid[:, None], strategies=("fine_tune",))
    blind = sequential.race(finals, design(futility=False), decisions.EQUIVALENCE_MARGIN)
    # Both at the floor of six replicates, 1/64, above look 1's level: neither stops there.
    assert (blind["looks"].query("look == 1")["p_decline"] == 1 / 64).all()
    assert (blind["looks"].query("look == 1")["state"] == "open").all()
    assert list(sequential.looks_without_decline(blind["looks"])["look"]) == [1]
    sentence = report.race_context(blind["overfitting"], blind["looks"])["blind"]
    assert sentence.startswith("No decline could be resolved at look 1 (6 replicates: p cannot go below 0.016, "
                               "its level is 0.0029)")
    seeing = sequential.race(finals, design(looks=(8, 12), futility=False), decisions.EQUIVALENCE_MARGIN)
    assert sequential.looks_without_decline(seeing["looks"]).empty
    assert report.race_context(seeing["overfitting"], seeing["looks"])["blind"] == ""
    assert list(seeing["overfitting"]["look"]) == [1, 1] and list(seeing["overfitting"]["state"]) == ["overfits"] * 2


def test_a_first_look_without_its_replicates_is_named():
    valid = simulation.accuracies(np.random.default_rng(0), "normal", np.zeros((1, 3)), 1, 4)[0]
    finals = finals_of(valid[:, None], valid[:, None], strategies=("fine_tune",))
    with pytest.raises(ValueError, match="the first look needs 6 replicates"):
        sequential.race(finals, design(), decisions.EQUIVALENCE_MARGIN)


# --- calibration by simulation ---------------------------------------------------------------------
# 400 races per setting, two architectures of N = 8 in one family, looks at 6 and 12, four noise shapes,
# each with one spending function; benchmarks/calibration.py measures every shape with both.

RACES = 400


def naive_peeking_claims(valid) -> np.ndarray:
    """A plain paired t-test of every n < N against N (Holm) after every replicate from 3 on: any claim, per report.

    Holm rejects something exactly when its first step does, the smallest of the m p-values below alpha / m.
    """
    reports, archs, k, size = valid.shape
    claimed = np.zeros(reports, bool)
    for seen in range(3, k + 1):
        differences = valid[:, :, :seen, :-1] - valid[:, :, :seen, -1:]
        with np.errstate(all="ignore"):
            p = scipy_stats.ttest_1samp(differences, 0.0, axis=2, alternative="greater").pvalue.reshape(reports, -1)
        tested = np.isfinite(p).sum(axis=1)
        claimed |= np.nanmin(np.where(np.isfinite(p), p, np.inf), axis=1) * tested < decisions.ALPHA
    return claimed


def test_naive_peeking_is_holm_after_every_replicate():
    rng = np.random.default_rng(4)
    truth = np.array([[0.0, 0.0, 0.0, -1.5], [0.0, 0.0, 0.0, 0.0]])  # some reports claim, some do not
    valid = simulation.accuracies(rng, "normal", truth, 12, 5)
    expected = np.zeros(12, bool)
    for seen in range(3, 6):
        p = scipy_stats.ttest_1samp(valid[:, :, :seen, :-1] - valid[:, :, :seen, -1:], 0.0, axis=2,
                                    alternative="greater").pvalue.reshape(12, -1)
        expected |= np.array([multipletests(row, decisions.ALPHA, "holm")[0].any() for row in p])
    assert 0 < expected.sum() < 12 and (naive_peeking_claims(valid) == expected).all()


@pytest.mark.slow
@pytest.mark.parametrize("shape,spending", [("skewed", "obrien_fleming"), ("whole_images", "obrien_fleming"),
                                            ("ar1", "pocock"), ("t3", "pocock")])
def test_null_races_rarely_make_any_false_claim_and_naive_peeking_does(shape, spending):
    """Nothing differs: any claim of a race is false. Peeking with t-tests on the same data claims far more often."""
    rng = np.random.default_rng(100 + simulation.SHAPES.index(shape))
    truth = np.zeros((2, MAX_N))
    valid = simulation.accuracies(rng, shape, truth, RACES, 12)
    claims = simulation.race_claims(valid, truth, design(spending=spending))
    assert claims["false_claim"].mean() <= bound(RACES)
    assert naive_peeking_claims(valid).mean() > bound(RACES)


@pytest.mark.slow
def test_a_race_finds_a_real_decline_about_as_often_as_the_fixed_design_with_fewer_runs():
    rng = np.random.default_rng(21)
    truth = declining_and_flat()
    valid = simulation.accuracies(rng, "whole_images", truth, RACES, 12)
    race = simulation.race_claims(valid, truth, design())
    fixed = simulation.report_claims(valid, truth)
    assert race["overfits"][:, 0].mean() >= fixed["overfits"][:, 0].mean() - 0.05
    assert race["runs"].mean() < 2 * 12 * MAX_N
    assert race["false_claim"].mean() <= bound(RACES)


# --- the pipeline: looks as Snakemake checkpoints -------------------------------------------------


@pytest.mark.slow
def test_one_run_makes_every_look_a_kill_mid_look_loses_nothing_and_a_rerun_does_nothing(tmp_path):
    """config/ci.yaml's sweep with looks at 2 and 4 replicates: look 2's cells exist only for the architectures
    look 1 left open; a run killed while look 2 trains resumes without retraining a finished cell; the next run
    has nothing to do."""
    import json
    import os
    import signal
    import subprocess

    import yaml

    from conftest import ROOT, snakemake, sweep_only_config
    from test_trust import cell_files, wait_for

    config = yaml.safe_load(sweep_only_config(tmp_path).read_text())
    # No futility stop: two replicates resolve nothing, so look 1 leaves every architecture open for look 2.
    config.update(seeds=[0, 1, 2, 3], replicates=dict(looks=[2, 4], spending="pocock", futility=False))
    config_path = tmp_path / "sequential.yaml"
    config_path.write_text(yaml.safe_dump(config))
    look_1 = tmp_path / "results" / "ci" / "looks" / "look1.json"
    command = ["snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(config_path), "--cores", "2"]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        logs = tmp_path / "logs" / "ci" / "train"

        def second_look_training():
            return look_1.exists() and (any(logs.rglob("seed2.log")) or any(logs.rglob("seed3.log")))

        killed_mid_look = wait_for(second_look_training)
        os.killpg(run.pid, signal.SIGKILL)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    before = cell_files(tmp_path)
    snakemake(tmp_path, "--unlock", configfile=config_path)
    snakemake(tmp_path, configfile=config_path)
    after = cell_files(tmp_path)
    for path, stamp in before.items():
        assert after[path] == stamp, f"{path} was rewritten although its cell had finished"

    decisions = json.loads(look_1.read_text())
    # After look 1 (where nothing can be resolved yet): every open architecture, and only those, got seeds 2 and 3.
    for arch, seeds in decisions["seeds"].items():
        assert seeds == ([0, 1, 2, 3] if decisions["states"][arch] == "open" else [0, 1])
        trained = {int(p.parent.name.removeprefix("seed"))
                   for p in (tmp_path / "results" / "ci" / "cells" / "fine_tune" / arch).rglob("metrics.json")}
        assert trained == set(seeds), arch
    finals = pd.read_csv(tmp_path / "results" / "ci" / "tables" / "finals.csv")
    assert len(finals) == sum(len(seeds) for seeds in decisions["seeds"].values()) * config["max_epochs"]
    looks = pd.read_csv(tmp_path / "results" / "ci" / "tables" / "looks.csv")
    assert set(decisions["states"].values()) == {"open"} and looks["look"].max() == 2
    page = (tmp_path / "reports" / "ci" / "index.html").read_text()
    assert 'id="race-table"' in page and "Sequential design: this architecture stopped at look" in page
    # Two and four replicates can never give a p below 1/4 and 1/16: the log and the report say the looks are blind.
    assert "look 1 (2 replicates) cannot resolve a decline" in (tmp_path / "logs" / "ci" / "look" / "1.log").read_text()
    assert 'id="race-blind"' in page and "No decline could be resolved at look 1 (2 replicates" in page
    assert killed_mid_look, "the run never reached look 2's training before the kill"
    again = snakemake(tmp_path, configfile=config_path)
    assert "Nothing to be done" in again.stdout + again.stderr
