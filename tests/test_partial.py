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


def partial_report(folder, *extra):
    return subprocess.run([sys.executable, "-m", "epochbench", "report", "--partial", "--configfile", str(CI_CONFIG),
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
