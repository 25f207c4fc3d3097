"""`python -m epochbench report --partial`: the report of the runs finished so far, with its banner; the final has none."""

import html
import re
import shutil
import subprocess
import sys

from conftest import CI_CONFIG, ROOT
from test_pipeline import table_rows

BANNER = 'id="partial-banner"'


def copy_of_results(workdir, into):
    """A sweep folder holding the finished run's results (the partial report writes only under reports/)."""
    shutil.copytree(workdir / "results", into / "results")
    return into


def partial_report(folder, *extra, configfile=CI_CONFIG):
    return subprocess.run([sys.executable, "-m", "epochbench", "report", "--partial", "--configfile", str(configfile),
                           "--directory", str(folder), *extra], capture_output=True, text=True, cwd=ROOT)


def answers(page: str) -> list:
    """The answer boxes' headings and verdict sentences, as the reader sees them."""
    return [html.unescape(re.sub(r"<[^>]+>", "", box)).split() for box in
            re.findall(r'<div class="answer" id="answer-[^"]+">(.*?)</div>', page, re.DOTALL)]


def test_the_final_report_has_no_banner(finished_run):
    workdir, _ = finished_run
    page = (workdir / "reports" / "ci" / "index.html").read_text()
    assert BANNER not in page and "verdicts may change" not in page


def test_a_partial_report_of_every_run_says_so_and_agrees_with_the_final_one(finished_run, tmp_path):
    workdir, _ = finished_run
    folder = copy_of_results(workdir, tmp_path)
    result = partial_report(folder)
    assert result.returncode == 0, result.stderr
    page = (folder / "reports" / "ci" / "partial" / "index.html").read_text()
    final = (workdir / "reports" / "ci" / "index.html").read_text()
    assert "Partial report: rests on 24 of 24 runs; verdicts may change" in page
    # The same rules on the same runs: the same answers, word for word.
    assert answers(page) == answers(final) and answers(page)
    assert result.stdout.strip().endswith("rests on 24 of 24 runs; verdicts may change")


def test_a_partial_report_rests_on_the_finished_runs_and_names_what_is_missing(finished_run, tmp_path):
    workdir, _ = finished_run
    folder = copy_of_results(workdir, tmp_path)
    cells = folder / "results" / "ci" / "cells"
    # test_resnet's replicate 1 has not finished fine_tune(2); resnet18 has finished no fine_tune(2) at all.
    shutil.rmtree(cells / "fine_tune" / "test_resnet" / "n2" / "seed1")
    for seed in (0, 1):
        (cells / "fine_tune" / "resnet18" / "n2" / f"seed{seed}" / "metrics.json").unlink()  # a job still running
    result = partial_report(folder, "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "out" / "index.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert "Partial report: rests on 21 of 24 runs; verdicts may change" in " ".join(text.split())
    assert "test_resnet rest on 1 replicate that finished every n" in text
    assert "Not yet here: resnet18" in text
    assert re.findall(r'<div class="answer" id="answer-([^"]+)"', page) == ["test_resnet", "strategies"]
    # The summary keeps every finished run: fine_tune(2) of test_resnet shows its one replicate, n = 1 its two.
    seeds = {(row[0], row[1], row[2], row[3]): row[4] for row in table_rows(page, "summary-table")}
    assert seeds[("fine_tune", "test_resnet", "2", "valid_accuracy")] == "1"
    assert seeds[("fine_tune", "test_resnet", "1", "valid_accuracy")] == "2"
    assert (tmp_path / "out" / "figures" / "accuracy_vs_n.png").is_file()
    assert not (folder / "reports" / "ci" / "index.html").exists()  # the final report's place stays Snakemake's


def test_a_partial_report_needs_one_replicate_with_every_n(finished_run, tmp_path):
    workdir, _ = finished_run
    folder = copy_of_results(workdir, tmp_path)
    for cell in (folder / "results" / "ci" / "cells" / "fine_tune").glob("*/n2/*"):
        shutil.rmtree(cell)
    result = partial_report(folder)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"epochbench report: {folder / 'results' / 'ci'}: 20 of 24 runs finished, but no replicate of any "
        "architecture has finished fine_tune(n) for every n = 1..2 yet: the verdicts compare every n on the same "
        "replicates")


def sequential_config(folder, looks=(2, 4)):
    """config/ci.yaml as a sequential design: the finished run's two seeds are its first look, seeds 2 and 3 to come."""
    import yaml

    config = yaml.safe_load(CI_CONFIG.read_text())
    config.update(seeds=[0, 1, 2, 3], replicates=dict(looks=list(looks), spending="pocock"))
    path = folder / "sequential.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_sequential_designs_partial_report_decides_at_its_last_finished_look(finished_run, tmp_path):
    """Look 1 (two replicates) has finished, look 2 not: the claims are look 1's, at look 1's levels, not a fixed
    design's on every finished run (one more look, which the spending function does not pay for)."""
    import pandas as pd

    from epochbench import decisions, sequential

    workdir, _ = finished_run
    folder = copy_of_results(workdir, tmp_path)
    config = sequential_config(tmp_path)
    result = partial_report(folder, configfile=config)
    assert result.returncode == 0, result.stderr
    page = (folder / "reports" / "ci" / "partial" / "index.html").read_text()
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert "Partial report: rests on 24 of 48 runs; verdicts may change" in text
    assert ("A sequential design: the verdicts are those of the last look whose replicates have all finished, at "
            "its levels (resnet18: look 1, 2 replicates, test_resnet: look 1, 2 replicates).") in text
    assert 'id="race-table"' in page
    finals = pd.read_csv(workdir / "results" / "ci" / "tables" / "finals.csv")
    level = sequential.nominal_levels((2, 4), decisions.report_budget(finals)["overfits"], "pocock", False)[0]
    looks = table_rows(page, "looks-table")
    assert {(row[0], row[1], row[2]) for row in looks} == {("resnet18", "1", "2"), ("test_resnet", "1", "2")}
    assert {row[5] for row in looks} == {f"{level:.3g}"} and level < decisions.report_budget(finals)["overfits"]


def test_a_sequential_designs_partial_report_waits_for_its_first_look(finished_run, tmp_path):
    workdir, _ = finished_run
    folder = copy_of_results(workdir, tmp_path)
    for arch in ("resnet18", "test_resnet"):  # one cell of each first look still running
        (folder / "results" / "ci" / "cells" / "head_only" / arch / "n1" / "seed1" / "metrics.json").unlink()
    result = partial_report(folder, configfile=sequential_config(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"epochbench report: {folder / 'results' / 'ci'}: 22 of 48 runs finished, but no architecture has finished "
        "every cell of the first look (2 replicates) yet: a sequential design decides only at its looks")
