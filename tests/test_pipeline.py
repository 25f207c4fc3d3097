"""End to end: the real Snakemake pipeline on config/ci.yaml, from nothing to the HTML report."""

import html
import json
import re
import subprocess
import zipfile

import pandas as pd
import pytest
import yaml

from conftest import CI_CONFIG, ROOT, snakemake


def planned_jobs(output: str) -> dict:
    """Job counts from Snakemake's 'Job stats' table."""
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def table_rows(page: str, table_id: str) -> list:
    body = page.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return [
        [html.unescape(cell) for cell in re.findall(r"<td>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL)
        if "<td>" in row
    ]


def test_plan_has_one_training_job_per_cell(finished_run):
    _, dry_output = finished_run
    config = yaml.safe_load(CI_CONFIG.read_text())
    jobs = planned_jobs(dry_output)
    assert jobs["train"] == len(config["strategies"]) * len(config["architectures"]) * config["max_epochs"] * len(config["seeds"])
    assert jobs["pretrain"] == len(config["architectures"])
    # fine_tune's frozen fit, once per architecture and replicate, for fine_tune(n) and head_only(n) alike.
    assert jobs["frozen_fit"] == len(config["architectures"]) * len(config["seeds"])
    assert jobs["prepare_data"] == 2
    for rule in ("collect_tables", "summarize", "plot_figures", "latex_tables", "render_report"):
        assert jobs[rule] == 1


def test_raising_n_or_adding_a_seed_plans_only_the_new_cells(finished_run):
    workdir, _ = finished_run
    config = yaml.safe_load(CI_CONFIG.read_text())
    archs = len(config["architectures"]) * len(config["strategies"])  # every (strategy, architecture) pair
    n_max, seeds = config["max_epochs"], config["seeds"]
    raised = planned_jobs(snakemake(workdir, "--dry-run", "--config", f"max_epochs={n_max + 1}").stdout)
    assert raised["train"] == archs * len(seeds)
    assert "prepare_data" not in raised and "pretrain" not in raised and "frozen_fit" not in raised
    more_seeds_config = workdir / "more_seeds.yaml"
    more_seeds_config.write_text(yaml.safe_dump(dict(config, seeds=seeds + [99])))
    more_seeds = planned_jobs(snakemake(workdir, "--dry-run", configfile=more_seeds_config).stdout)
    assert more_seeds["train"] == archs * n_max


def test_a_setting_of_the_frozen_fit_rebuilds_it_and_every_cell_after_it(finished_run):
    workdir, _ = finished_run
    config = yaml.safe_load(CI_CONFIG.read_text())
    cells = len(config["architectures"]) * len(config["seeds"]) * config["max_epochs"]
    changed = dict(config, fine_tune=dict(config.get("fine_tune", {}), base_lr=0.005))
    (workdir / "changed_lr.yaml").write_text(yaml.safe_dump(changed))
    planned = planned_jobs(snakemake(workdir, "--dry-run", configfile=workdir / "changed_lr.yaml").stdout)
    assert planned["frozen_fit"] == len(config["architectures"]) * len(config["seeds"])
    assert planned["train"] == cells * len(config["strategies"])
    # from_scratch's rate is no setting of the frozen fit: only from_scratch's cells rerun.
    other = dict(config, from_scratch=dict(config.get("from_scratch", {}), lr=0.02))
    (workdir / "changed_scratch.yaml").write_text(yaml.safe_dump(other))
    planned = planned_jobs(snakemake(workdir, "--dry-run", configfile=workdir / "changed_scratch.yaml").stdout)
    assert "frozen_fit" not in planned and planned["train"] == cells


def test_report_shows_the_numbers_of_the_tables(finished_run):
    workdir, _ = finished_run
    tables = workdir / "results" / "ci" / "tables"
    summary = pd.read_csv(tables / "summary.csv")
    page = (workdir / "reports" / "ci" / "index.html").read_text()

    assert summary.loc[summary["metric"].str.endswith("accuracy"), "mean"].between(0, 1).all()  # fractions
    shown = table_rows(page, "summary-table")
    assert len(shown) == len(summary)
    for row, (_, expected) in zip(shown, summary.iterrows()):
        assert row[:5] == [expected["strategy"], expected["architecture"], str(expected["n"]), expected["metric"],
                           str(expected["seeds"])]
        # Accuracies in percent with one decimal (their spread in points), losses as they are; the CSV holds fractions.
        accuracy = expected["metric"].endswith("accuracy")
        for cell, column in zip(row[5:], ["mean", "std", "ci_low", "ci_high"]):
            if accuracy:  # (a t-interval over 2 seeds can reach below 0%: its sign is the typographic minus)
                assert cell == (f"{100 * expected[column]:.1f}".replace("-", "\u2212")
                                + (" pts" if column == "std" else "%")), (row, column)
            else:
                assert float(cell) == pytest.approx(expected[column], abs=5e-5), (row, column)

    points = pd.read_csv(tables / "overfitting.csv")
    for _, point in points.iterrows():
        headline = f"{point['architecture']}: fine-tune for n = {point['chosen_n']} epochs; " \
                   f"test accuracy {100 * point['chosen_test_accuracy']:.1f}%"
        assert headline in page
    assert "data:image/png;base64," in page and "http://" not in page.split("<body>", 1)[1].split("Package")[0]
    # Two replicates: the report says what they cannot tell, and how many each claim would need.
    text = html.unescape(page)
    assert f"With {len(yaml.safe_load(CI_CONFIG.read_text())['seeds'])} replicates some claims are out of reach" in text
    assert "no test can resolve one at this report's" in text
    budget = table_rows(page, "budget-table")
    assert [row[3] for row in budget] == ["no"] * len(budget) and len(budget) == 5  # ci.yaml has the baselines


def test_one_replicate_is_a_report_that_says_what_it_cannot_tell(tmp_path):
    """The seed article ran one seed: seeds: [0] (one architecture, N = 3) finishes, shows its numbers, claims nothing."""
    config = yaml.safe_load(CI_CONFIG.read_text())
    config.update(experiment="one-seed", architectures=["test_resnet"], strategies=["fine_tune"], max_epochs=3,
                  seeds=[0])
    config_file = tmp_path / "one_seed.yaml"
    config_file.write_text(yaml.safe_dump(config))
    snakemake(tmp_path, configfile=config_file)
    tables = tmp_path / "results" / "one-seed" / "tables"
    comparison = pd.read_csv(tables / "comparison.csv")
    point = pd.read_csv(tables / "overfitting.csv").iloc[0]
    assert len(comparison) == 3 and set(comparison["verdict"]) == {"best", "unresolved"}
    assert comparison["ci_low"].isna().all() and not point["overfits"]
    page = html.unescape((tmp_path / "reports" / "one-seed" / "index.html").read_text())
    assert "One replicate gives no interval and no verdict" in page and "no interval from one replicate" in page
    assert "with 1 no test can resolve one at this report's 0.035 (it needs at least 5)" in page
    shown = table_rows((tmp_path / "reports" / "one-seed" / "index.html").read_text(), "comparison-table")
    assert [row[3] for row in shown] == [f"{100 * m:.1f}%" for m in comparison["mean"]]
    for name in ("accuracy_vs_n", "loss_vs_n", "within_run_curve", "accuracy_vs_cost"):
        assert (tmp_path / "reports" / "one-seed" / "figures" / f"{name}.png").stat().st_size > 1000


def test_tables_are_tidy_and_complete(finished_run):
    workdir, _ = finished_run
    config = yaml.safe_load(CI_CONFIG.read_text())
    tables = workdir / "results" / "ci" / "tables"
    finals = pd.read_csv(tables / "finals.csv")
    histories = pd.read_csv(tables / "histories.csv")
    runs = len(config["architectures"]) * len(config["seeds"])
    assert len(finals) == len(config["strategies"]) * config["max_epochs"] * runs
    # Every strategy trains fine_tune(n)'s epochs: one frozen epoch plus n more (from_scratch all unfrozen).
    ns = range(1, config["max_epochs"] + 1)
    epochs = histories.groupby("strategy").size()
    assert epochs["fine_tune"] == epochs["head_only"] == epochs["from_scratch"] == sum(1 + n for n in ns) * runs
    assert set(histories.loc[histories["strategy"] == "head_only", "phase"]) == {"frozen"}
    assert set(histories.loc[histories["strategy"] == "from_scratch", "phase"]) == {"unfrozen"}
    assert (histories["seconds"] > 0).all()
    # The test split is scored after every epoch only where that is read (fine_tune(N), for early
    # stopping), else after the last epoch alone.
    cell = ["strategy", "architecture", "n", "seed"]
    last = histories.groupby(cell)["step"].transform("max") == histories["step"]
    longest = (histories["strategy"] == "fine_tune") & (histories["n"] == config["max_epochs"])
    scored = histories["test_accuracy"].notna()
    assert (scored == (last | longest)).all()
    assert histories.loc[scored, "test_accuracy"].between(0, 1).all()
    comparison = pd.read_csv(tables / "comparison.csv")
    assert set(comparison["verdict"]) <= {"best", "worse", "equivalent", "unresolved"}
    assert (comparison.groupby("architecture")["verdict"].apply(lambda v: (v == "best").sum()) == 1).all()
    # Two replicates: too few for the shares of resamples with the highest mean, which stay empty.
    assert len(config["seeds"]) < 5 and comparison["p_best"].isna().all()
    for name in ("summary", "overfitting", "within_run", "strategies", "early_stopping", "cost"):
        assert (tables / f"{name}.csv").is_file()
    strategies = pd.read_csv(tables / "strategies.csv")
    assert len(strategies) == (len(config["strategies"]) - 1) * config["max_epochs"] * len(config["architectures"])


def test_latex_tables_and_citation_in_the_report(finished_run):
    workdir, _ = finished_run
    latex = workdir / "reports" / "ci" / "tables"
    early = (latex / "early_stopping.tex").read_text()
    assert early.startswith("\\begin{table}") and "\\caption{" in early and "config " in early
    assert "GL\\_2" in early and "\\bottomrule" in early
    page = (workdir / "reports" / "ci" / "index.html").read_text()
    assert 'id="bibtex"' in page and "@software{epochbench_" in page
    assert 'id="strategies-table"' in page and 'id="early-stopping-table"' in page


def test_figures_in_every_format_and_nothing_half_written(finished_run):
    workdir, _ = finished_run
    figures = workdir / "reports" / "ci" / "figures"
    for name in ("accuracy_vs_n", "loss_vs_n", "within_run_curve", "accuracy_vs_cost", "strategy_comparison"):
        for fmt in ("svg", "png", "pdf"):
            assert (figures / f"{name}.{fmt}").stat().st_size > 1000
    assert not [p for p in workdir.rglob("*.tmp*") if ".snakemake" not in p.parts]


def test_second_run_has_nothing_to_do(finished_run):
    workdir, _ = finished_run
    result = snakemake(workdir)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_changed_template_rerenders_only_the_report(finished_run):
    workdir, _ = finished_run
    template = ROOT / "reports" / "templates" / "report.html.j2"
    original = template.read_text()
    try:
        # An edit (Snakemake >= 9.18 compares checksums, so a mere touch would not count).
        template.write_text(original + "<!-- edited -->\n")
        planned = planned_jobs(snakemake(workdir, "--dry-run").stdout)
    finally:
        template.write_text(original)
    assert planned == {"render_report": 1, "all": 1, "total": 2}  # `all` is the target rule itself


def test_snakemake_native_report(finished_run):
    workdir, _ = finished_run
    snakemake(workdir, "--report", "report.zip")
    with zipfile.ZipFile(workdir / "report.zip") as archive:
        names = archive.namelist()
    assert any(name.endswith("accuracy_vs_n.png") for name in names)
    assert any(name.endswith("summary.csv") for name in names)


def test_lint_is_clean():
    result = subprocess.run(["snakemake", "--lint", "--configfile", str(CI_CONFIG)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_augmentation_reruns_the_training_jobs_alone_and_off_changes_nothing(finished_run):
    workdir, _ = finished_run
    config = yaml.safe_load(CI_CONFIG.read_text())
    off = workdir / "augment_off.yaml"
    off.write_text(yaml.safe_dump(dict(config, augment=False)))
    assert "Nothing to be done" in snakemake(workdir, "--dry-run", configfile=off).stdout
    on = workdir / "augment_on.yaml"
    on.write_text(yaml.safe_dump(dict(config, augment=dict(max_rotate=5))))
    planned = planned_jobs(snakemake(workdir, "--dry-run", configfile=on).stdout)
    runs = len(config["architectures"]) * len(config["seeds"])
    assert planned["frozen_fit"] == runs and planned["train"] == runs * config["max_epochs"] * len(config["strategies"])
    assert "pretrain" not in planned and "prepare_data" not in planned and "lr_find" not in planned


def test_base_lr_valley_finds_one_rate_per_architecture_that_every_cell_uses(tmp_path):
    """config/ci.yaml, cut to one architecture and fine_tune alone, with base_lr: valley and augmentation."""
    from epochbench import train
    from epochbench.jobs import LearnerSettings

    config = yaml.safe_load(CI_CONFIG.read_text())
    config.update(experiment="ci-lr-find", architectures=["test_resnet"], strategies=["fine_tune"],
                  fine_tune=dict(config["fine_tune"], base_lr="valley"), augment=dict(max_rotate=5))
    config_file = tmp_path / "valley.yaml"
    config_file.write_text(yaml.safe_dump(config))
    planned = planned_jobs(snakemake(tmp_path, "--dry-run", configfile=config_file).stdout)
    assert planned["lr_find"] == 1 and planned["frozen_fit"] == len(config["seeds"])
    snakemake(tmp_path, configfile=config_file)

    results = tmp_path / "results" / "ci-lr-find"
    found = json.loads((results / "lr_find" / "test_resnet.json").read_text())
    curve = pd.read_csv(results / "lr_find" / "test_resnet.csv")
    assert found["suggestion"] == "valley" and 1e-7 < found["lr"] < 10 and found["seed"] == min(config["seeds"])
    assert len(curve) == found["iterations"] and curve["lr"].is_monotonic_increasing
    # Every cell trained at the found rate: its learning rates are those of fine_tune(n) at that base_lr.
    for n in range(1, config["max_epochs"] + 1):
        rows, _, _ = train.train_cell(results / "data" / "target", "test_resnet", n, seed=0, pretrained="none",
                                      fine_tune_args=dict(config["fine_tune"], base_lr=found["lr"]),
                                      settings=LearnerSettings(batch_size=config["batch_size"], device="cpu"))
        for seed in config["seeds"]:
            history = pd.read_csv(results / "cells" / "fine_tune" / "test_resnet" / f"n{n}" / f"seed{seed}" / "history.csv")
            assert history["lr"].to_numpy() == pytest.approx([r["lr"] for r in rows], rel=1e-6)
    page = (tmp_path / "reports" / "ci-lr-find" / "index.html").read_text()
    assert f"base_lr = {found['lr']:.3g}, fastai's valley suggestion" in html.unescape(page)
    assert 'id="figure-lr_find"' in page and (tmp_path / "reports" / "ci-lr-find" / "figures" / "lr_find.svg").is_file()
    assert "lr_find" in [row[0] for row in table_rows(page, "time-table")]
    assert "Nothing to be done" in snakemake(tmp_path, "--dry-run", configfile=config_file).stdout
    # A number again: no lr_find job, and every job that trained at the found rate reruns.
    numeric = tmp_path / "numeric.yaml"
    numeric.write_text(yaml.safe_dump(dict(config, fine_tune=dict(config["fine_tune"], base_lr=found["lr"]))))
    planned = planned_jobs(snakemake(tmp_path, "--dry-run", configfile=numeric).stdout)
    assert "lr_find" not in planned and planned["frozen_fit"] == len(config["seeds"])
