"""The report template: numbers in, HTML out, and nothing from a user reaches the page unescaped."""

from pathlib import Path

import numpy as np
import pandas as pd

from epochbench import decisions, report

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "reports" / "templates" / "report.html.j2"


def comparison_rows(arch="netA"):
    return pd.DataFrame(dict(architecture=arch, n=[1, 2, 3, 4], p_best=[0.0, 0.6, 0.3, 0.1],
                             verdict=["worse", "best", "equivalent", "worse"], worse_than_n=[2, None, None, 2],
                             decided_by=["all pairs", "", "equivalence", "decline"], p_worse=[0.0039, None, 0.5, 0.2],
                             p_equivalence=[1.0, None, 0.004, 1.0]))


def overfitting_point(**overrides):
    point = dict(architecture="netA", max_n=4, chosen_n=2, best_n=2, replicates=8, best_valid_accuracy=0.8,
                 valid_accuracy_at_max_n=0.77, decline_at_max_n=-0.03, decline_ci_low=-0.05, decline_ci_high=-0.01,
                 decline_from_n=2, valid_accuracy_at_decline_from_n=0.8, p_decline=0.0123, decline_test="decline",
                 overfits=True, alpha_overfits=0.035, alpha_worse=0.01, replicates_needed_overfits=5,
                 chosen_test_accuracy=0.78, chosen_test_ci_low=0.75, chosen_test_ci_high=0.81, selection_optimism=0.004,
                 selection_optimism_splits=70, within_run_best_epoch=3, verdict="from decisions")
    point.update(overrides)
    return pd.Series(point)


def test_answer_states_the_decline_with_its_test_and_what_varied():
    box = report.answer(overfitting_point(), comparison_rows(), {"split": "per_seed"})
    assert box["decline"] == ("Accuracy falls from 80.0% at n = 2 to 77.0% at n = 4: \u22123.0 pts (simultaneous 95% "
                              "interval \u22125.0 to \u22121.0 pts; the decline test, step-down max-T over the replicates, "
                              "sign flips and studentized bootstrap, over every n < 4 against 4: adjusted p = 0.0123 "
                              "< 0.035).")
    assert box["test"] == "78.0%" and box["test_ci"] == "75.0% to 81.0%"
    assert box["varied"] == ("95% t-interval over replicates: each drew its own training seed, split and label noise, "
                             "8 replicates")
    assert [b["p"] for b in box["p_best"]] == ["0.00", "0.60", "0.30", "0.10"]
    assert [b["height"] for b in box["p_best"]] == ["0.00", "1.50", "0.75", "0.25"]
    assert box["per_n"] == ("n = 1 is worse than n = 2 (step-down max-T over the replicates, sign flips and studentized "
                            "bootstrap over every pair of n, adjusted p ≤ 0.0039 < 0.01); n = 4 is worse than n = 2 "
                            "(the decline test above); n = 3 is equivalent to n = 2 within ±1.0 pts (two one-sided "
                            "tests, adjusted p ≤ 0.004 < 0.005).")
    assert box["exact"] == ""  # 8 replicates can make every kind of claim under this budget
    assert "epoch 3" in box["within"]
    assert "was +0.4 pts against the same n on the other half (mean over 70 splits" in box["optimism"]
    fixed = report.answer(overfitting_point(overfits=False, replicates=3, p_decline=0.125),
                          comparison_rows().assign(p_best=np.nan), {"split": "fixed"})
    assert fixed["decline"] == ("No resolved decline within N = 4 with 3 replicates: with 3 no test can resolve one at "
                                "this report's 0.035 (it needs at least 5).")
    assert "over training seeds, on one split" in fixed["varied"]
    assert "a decline by N at least 5, 'worse' at least 8, 'equivalent' at least 8 replicates" in fixed["exact"]
    assert fixed["p_best"] == [] and "from 5 replicates" in fixed["p_best_note"]
    single = report.answer(overfitting_point(overfits=False, replicates=1), comparison_rows(), {"split": "per_seed"})
    assert single["varied"] == "one replicate, no interval" and "One replicate gives no interval" in single["exact"]


def minimal_context(evil: str) -> dict:
    return dict(
        experiment=evil, config_hash="abc", cells=1, seeds=[0], max_n=1, architectures=[evil], dataset="folder",
        pretrained=evil, answers=[dict(architecture=evil, per_n=evil, decline=evil, varied=evil, rule=evil,
                                       optimism=evil, within=evil, exact=evil, sequential=evil, chosen_n=1, best_n=1,
                                       test="1%",
                                       test_ci="", p_best=[dict(n=1, p="1.00", height="2.50")], p_best_note=evil)],
        margin="1", varied=evil, budget=dict(alpha="0.05", rows=[dict(claim=evil, alpha="0.05", needed=5,
                                                                       possible="no")]),
        figures=[dict(name=evil, src="data:image/png;base64,AAAA", caption=evil)],
        strategy_names=[evil], strategy_answers=[evil],
        strategies=[dict(strategy=evil, architecture=evil, n=1, replicates=1, mean="1", fine_tune="1", diff="0",
                         diff_ci=evil, p="0", p_equivalence="1", verdict=evil)],
        early_stopping=[dict(architecture=evil, rule=evil, seeds=1, stopped="0%", stop="1", kept="1", epochs="1",
                             test="1%", test_ci=evil)],
        cite=dict(text=evil, bibtex=evil),
        summary=[dict(strategy=evil, architecture=evil, n=1, metric="valid_accuracy", seeds=1, mean="1", std="–", ci_low="–",
                      ci_high="–")],
        comparison=[dict(architecture=evil, n=1, replicates=1, mean="1", ci=evil, diff="", p="–", p_decline="–",
                         p_flip="–", p_equivalence="–", p_best="1.00", verdict=evil)],
        data=dict(classes=[evil, "b"], counts=dict(train=1, valid=1, test=1), flipped=0, image_size=8, images=3,
                  split=evil, notes=[evil]),
        training_time=dict(summary=evil, cells=[dict(strategy=evil, architecture=evil, n=1, seed=0, wall="1", epochs="1",
                                                     overhead="0", share="0%", ips="1")]),
        times=[dict(rule=evil, jobs=1, total="1", mean="1", max="1", share="100%")],
        commit=evil, hardware={"cpu": evil}, versions={"x": evil}, config_yaml=evil, reproducibility=evil,
        race=dict(rows=[dict(architecture=evil, look="1 of 2", state=evil, replicates=6, runs="1 of 2", epochs="")],
                  looks=[dict(architecture=evil, look=1, replicates=6, state=evil, p="1", alpha="0.02", worse="0.01",
                              equivalent="0.001")], saved=evil, spending=evil, replicates=evil),
    )


def test_user_strings_are_escaped():
    evil = "<script>alert('x')</script>"
    page = report.render(TEMPLATE, minimal_context(evil))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page



def test_strategy_sentences_count_the_verdicts():
    table = pd.DataFrame(dict(strategy=["head_only"] * 3, architecture=["netA"] * 3, n=[1, 2, 3],
                              verdict=["worse", "worse", "unresolved"]))
    budget = decisions.error_budget(with_strategies=True)
    assert report.strategy_answers(table, 0.01, budget) == [
        "netA, head_only (does unfreezing the body help?): worse than fine_tune at 2 of 3 n, not resolved at 1 of 3 n "
        "(test accuracy; step-down max-T over the replicates, sign flips and studentized bootstrap over the whole "
        "table, adjusted p < 0.012; equivalent means within ±1.0 pts by two one-sided tests, adjusted p < 0.003)."]


def test_data_notes_disclose_overlaps():
    digits = {"dataset": {"name": "digits"}, "pretrained": "source",
              "source": {"dataset": {"name": "digits", "classes": ["4", "5"]}}}
    notes = report.data_notes(digits)
    assert any("13 people" in note for note in notes)
    assert any("pretrained on other classes of the same digits data (4, 5)" in note for note in notes)
    pets = report.data_notes({"dataset": {"name": "pets"}, "pretrained": "imagenet"})
    assert len(pets) == 1 and "ImageNet-1k" in pets[0]
    assert report.data_notes({"dataset": {"name": "folder"}, "pretrained": "imagenet"}) == []


def test_citation_block_names_experiment_config_and_commit():
    import yaml

    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    block = report.citation_block(citation, "digits", "abc123", "0123456789abcdef (with uncommitted changes)")
    assert "experiment digits, config abc123, commit 0123456789ab" in block["text"]
    assert block["bibtex"].startswith("@software{epochbench_abc123,")
    assert f"version = {{{citation['version']}}}" in block["bibtex"] and block["bibtex"].endswith("}")


def test_cell_times_split_job_time_into_epochs_and_start_up(tmp_path):
    from epochbench.tables import cell_times

    files = []
    for n, wall in ((1, 10.0), (2, 16.0)):
        path = tmp_path / "benchmarks" / "train" / "fine_tune" / "netA" / f"n{n}" / "seed0.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{wall}\t0:00:10\t100\n")
        files.append(path)
    # Each job resumed from the shared frozen fit (1 epoch of 2 s): its own epochs are the rest.
    finals = pd.DataFrame(dict(strategy="fine_tune", architecture="netA", n=[1, 2], seed=0, train_seconds=[6.0, 14.0],
                               job_epoch_seconds=[4.0, 12.0], epochs_trained=[2, 3], epochs_shared=1, n_train=100))
    cells = cell_times(files, finals).set_index("n")
    assert cells.loc[1, "overhead_seconds"] == 6.0 and cells.loc[2, "overhead_share"] == 0.25
    assert cells.loc[2, "images_per_second"] == 100 * 2 / 12.0
    summary = report.training_time(files, finals)["summary"]
    assert summary.startswith("2 training jobs took 26 s")
    # The frozen epoch once, then 1 and 2 epochs of the cells: 4, where fine_tune(1) and fine_tune(2) make 2 + 3.
    assert "Epochs computed: 4, against 5 for a naive grid" in summary


def test_data_section_and_intervals_say_which_split_and_where_it_came_from(tmp_path):
    """The words come from meta.json as prepare_dataset writes it, for each kind of split."""
    from test_data import folder_spec, write_tree

    from epochbench import data

    carved = tmp_path / "carved"
    write_tree(carved, {"train": {"a": 10, "b": 10}, "val": {"a": 2, "b": 2}})
    spec = folder_spec(carved, label_noise=0.2)
    meta = data.prepare_dataset(spec, 8, tmp_path / "carved_out", split="per_seed")
    per_seed = {"split": "per_seed", "dataset": spec}
    text = report.split_sentences(per_seed, meta)
    assert text.startswith(f"The split is the dataset's own folders (dataset.split: folders; the default: {carved} has "
                           "train/ and val/ subfolders): training images come from train/ (20 images), the validation "
                           "images are val/ (4) as given, the same in every replicate.")
    assert ("the test split is carved from train/, stratified by class (test_fraction 0.2 of its images), by each "
            "replicate for itself") in text
    varied = ("over replicates: each drew its own training seed, test split carved from train/ and label noise, "
              "on the dataset's fixed val/ folder")
    assert report.what_varied(per_seed, meta) == varied and varied in text
    box = report.answer(overfitting_point(), comparison_rows(), per_seed, meta)
    assert box["varied"] == f"95% t-interval {varied}, 8 replicates"
    fixed = {"split": "fixed", "dataset": spec}
    meta_fixed = data.prepare_dataset(spec, 8, tmp_path / "carved_fixed", split="fixed")
    assert report.what_varied(fixed, meta_fixed) == ("over training seeds, on one split (the dataset's val/ folder, "
                                                     "with a test split carved once from train/)")
    assert "carved from train/, stratified by class (test_fraction 0.2 of its images), once (split_seed)" in \
        report.split_sentences(fixed, meta_fixed)

    given = tmp_path / "given"
    write_tree(given, {"train": {"a": 4, "b": 4}, "valid": {"a": 2, "b": 2}, "test": {"a": 2, "b": 2}})
    spec = folder_spec(given, split="folders")
    meta = data.prepare_dataset(spec, 8, tmp_path / "given_out", split="per_seed")
    per_seed = {"split": "per_seed", "dataset": spec}
    assert report.what_varied(per_seed, meta) == ("over replicates: each drew its own training seed, on the dataset's "
                                                  "fixed valid/ and test/ folders")
    assert ("(dataset.split: folders; set in the config (dataset.split)): training images come from train/ (8 images), "
            "the validation images are valid/ (4) as given, and the test images are test/ (4) as given, the same in "
            "every replicate.") in report.split_sentences(per_seed, meta)

    digits = dict(name="digits", classes=["0", "1"], train_size=None, label_noise=0.0, valid_fraction=0.2,
                  test_fraction=0.2, split_seed=0)
    meta = data.prepare_dataset(digits, 8, tmp_path / "digits", split="per_seed")
    per_seed = {"split": "per_seed", "dataset": digits}
    assert report.split_sentences(per_seed, meta).startswith(
        "The split is drawn at random, stratified by class (dataset.split: random; the default for digits, which has "
        "no split folders). Each replicate draws its own stratified split")
    assert report.what_varied(per_seed, meta) == report.what_varied(per_seed) == (
        "over replicates: each drew its own training seed, split and label noise")

    context = minimal_context("x")
    context["data"]["split"] = report.split_sentences(per_seed, meta)
    assert f'<p id="data-split">{context["data"]["split"]}</p>' in report.render(TEMPLATE, context)
