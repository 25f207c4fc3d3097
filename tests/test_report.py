"""The report template: numbers in, HTML out, and nothing from a user reaches the page unescaped."""

from pathlib import Path

import pandas as pd

from epochbench import report

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "reports" / "templates" / "report.html.j2"


def test_verdict_text_for_overfitting_and_for_none():
    point = pd.Series(dict(max_n=8, chosen_n=3, best_n=4, seeds=3, best_valid_accuracy=0.8, valid_accuracy_at_max_n=0.7,
                           chosen_test_accuracy=0.78, chosen_test_ci_low=0.75, chosen_test_ci_high=0.81,
                           overfits_within_max_n=True, within_run_best_epoch=6, within_run_agrees=False))
    text = report.verdict(point)
    assert "peaks at n = 4 (80.0% mean over seeds) and is 70.0% at n = 8" in text
    assert "one-standard-error rule picks it" in text and "n = 3" in text
    assert "78.0% (95% CI 75.0% to 81.0%, 3 seeds)" in text
    assert "peaks at epoch 6: not the n-sweep's best n = 4" in text
    rising = point.copy()
    rising.update(dict(best_n=8, chosen_n=8, overfits_within_max_n=False, within_run_best_epoch=8, within_run_agrees=True))
    assert "No overfitting within N = 8" in report.verdict(rising)


def minimal_context(evil: str) -> dict:
    return dict(
        experiment=evil, config_hash="abc", cells=1, seeds=[0], max_n=1, architectures=[evil], dataset="folder",
        pretrained=evil, answers=[dict(architecture=evil, verdict=evil, statistical_verdict=evil, selection_gap=evil,
                                       chosen_n=1, best_n=1, test="1%", test_ci="",
                                       best_valid="1%", within_run_epoch="1")],
        figures=[dict(name=evil, src="data:image/png;base64,AAAA", caption=evil)],
        strategy_names=[evil], strategy_answers=[evil],
        strategies=[dict(strategy=evil, architecture=evil, n=1, seeds=1, mean="1", fine_tune="1", diff="0", diff_ci=evil,
                         p="0", verdict=evil)],
        early_stopping=[dict(architecture=evil, rule=evil, seeds=1, stopped="0%", stop="1", kept="1", epochs="1",
                             test="1%", test_ci=evil)],
        cite=dict(text=evil, bibtex=evil),
        summary=[dict(strategy=evil, architecture=evil, n=1, metric="valid_accuracy", seeds=1, mean="1", std="–", ci_low="–",
                      ci_high="–")],
        comparison=[dict(architecture=evil, n=1, seeds=1, mean="1", boot=evil, p_beats_best="best", diff="", same="yes")],
        data=dict(classes=[evil, "b"], counts=dict(train=1, valid=1, test=1), flipped=0, image_size=8),
        training_time=dict(summary=evil, cells=[dict(strategy=evil, architecture=evil, n=1, seed=0, wall="1", epochs="1",
                                                     overhead="0", share="0%", ips="1")]),
        times=[dict(rule=evil, jobs=1, total="1", mean="1", max="1", share="100%")],
        commit=evil, hardware={"cpu": evil}, versions={"x": evil}, config_yaml=evil, reproducibility=evil,
    )


def test_user_strings_are_escaped():
    evil = "<script>alert('x')</script>"
    page = report.render(TEMPLATE, minimal_context(evil))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page



def test_strategy_sentences_count_the_verdicts():
    table = pd.DataFrame(dict(strategy=["head_only"] * 3, architecture=["netA"] * 3, n=[1, 2, 3],
                              verdict=["worse than fine_tune", "worse than fine_tune", "indistinguishable"]))
    assert report.strategy_answers(table) == [
        "netA, head_only: indistinguishable at 1 of 3 n, worse than fine_tune at 2 of 3 n "
        "(test accuracy, paired bootstrap 95%)."]


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
    finals = pd.DataFrame(dict(strategy="fine_tune", architecture="netA", n=[1, 2], seed=0, train_seconds=[4.0, 12.0],
                               epochs_trained=[2, 3], n_train=100))
    cells = cell_times(files, finals).set_index("n")
    assert cells.loc[1, "overhead_seconds"] == 6.0 and cells.loc[2, "overhead_share"] == 0.25
    assert cells.loc[2, "images_per_second"] == 100 * 3 / 12.0
    assert report.training_time(files, finals)["summary"].startswith("2 training jobs took 26 s")
