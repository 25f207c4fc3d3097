"""What the finished run of config/ci.yaml holds, checked against its own inputs: tables recomputed from the
per-cell files, one point per seed in the figures, the figures inlined as saved, and readable file modes."""

import base64
import json
import os
import stat
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
import yaml

from conftest import CI_CONFIG

CELL_KEYS = ["strategy", "architecture", "n", "seed"]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def run(finished_run):
    workdir, _ = finished_run
    config = yaml.safe_load(CI_CONFIG.read_text())
    tables = workdir / "results" / "ci" / "tables"
    return workdir, config, tables


def cell_dir(workdir, row):
    return workdir / "results" / "ci" / "cells" / row["strategy"] / row["architecture"] / f"n{row['n']}" / f"seed{row['seed']}"


def test_finals_has_one_row_per_cell_with_that_cells_metrics(run):
    workdir, config, tables = run
    finals = pd.read_csv(tables / "finals.csv")
    grid = len(config["strategies"]) * len(config["architectures"]) * config["max_epochs"] * len(config["seeds"])
    assert len(finals) == grid and not finals.duplicated(CELL_KEYS).any()
    for _, row in finals.iterrows():
        metrics = json.loads((cell_dir(workdir, row) / "metrics.json").read_text())
        for key, value in metrics.items():
            if isinstance(value, str):
                assert row[key] == value, key
            else:
                assert row[key] == pytest.approx(value, rel=1e-7), (key, dict(row[CELL_KEYS]))


def test_histories_is_every_cells_history_in_order(run):
    workdir, _, tables = run
    histories = pd.read_csv(tables / "histories.csv")
    finals = pd.read_csv(tables / "finals.csv")
    for _, row in finals.iterrows():
        cell = pd.read_csv(cell_dir(workdir, row) / "history.csv")
        rows = histories[(histories[CELL_KEYS] == row[CELL_KEYS]).all(axis=1)].reset_index(drop=True)
        assert list(rows["step"]) == list(range(1, len(cell) + 1))
        pd.testing.assert_frame_equal(rows[cell.columns], cell, check_exact=False, rtol=1e-7, check_dtype=False)


def test_within_run_is_the_longest_runs_epoch_by_epoch_over_seeds(run):
    _, config, tables = run
    histories = pd.read_csv(tables / "histories.csv")
    within_run = pd.read_csv(tables / "within_run.csv")
    longest = histories[(histories["strategy"] == "fine_tune") & (histories["n"] == config["max_epochs"])]
    # fine_tune(N)'s one-cycle fit over N epochs: the last fit of each run.
    longest = longest[longest["fit"] == longest.groupby(["architecture", "seed"])["fit"].transform("max")]
    expected = (longest.melt(id_vars=["architecture", "epoch", "seed"], value_vars=["valid_accuracy", "valid_loss"],
                             var_name="metric")
                .groupby(["architecture", "epoch", "metric"])["value"].agg(["count", "mean"]).reset_index())
    assert len(expected) == len(config["architectures"]) * config["max_epochs"] * 2
    merged = expected.merge(within_run, on=["architecture", "epoch", "metric"], how="outer", indicator=True,
                            suffixes=("_expected", ""))
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    assert (merged["count"] == len(config["seeds"])).all() and (merged["seeds"] == merged["count"]).all()
    assert merged["mean"].to_numpy() == pytest.approx(merged["mean_expected"].to_numpy(), rel=1e-7)


def test_summary_and_cost_are_means_over_seeds_of_finals(run):
    _, config, tables = run
    finals = pd.read_csv(tables / "finals.csv")
    for name in ("summary", "cost"):
        table = pd.read_csv(tables / f"{name}.csv")
        for (strategy, arch, n, metric), rows in table.groupby(["strategy", "architecture", "n", "metric"]):
            seeds = finals[(finals["strategy"] == strategy) & (finals["architecture"] == arch) & (finals["n"] == n)]
            assert len(rows) == 1 and rows["seeds"].iloc[0] == len(seeds) == len(config["seeds"])
            assert rows["mean"].iloc[0] == pytest.approx(seeds[metric].mean(), rel=1e-7), (name, strategy, arch, n)
        assert len(table) == len(finals) // len(config["seeds"]) * table["metric"].nunique()


def drawn_points(svg_path, gid) -> int:
    """How many markers the SVG draws in the group that matplotlib wrote for the artist with this gid."""
    group = next((g for g in ET.parse(svg_path).iter(f"{SVG}g") if g.get("id") == gid), None)
    assert group is not None, f"{svg_path.name}: no group {gid!r}"
    for defs in group.iter(f"{SVG}defs"):  # the marker's shape, defined once
        defs.clear()
    return sum(1 for element in group.iter() if element.tag in (f"{SVG}use", f"{SVG}path"))


@pytest.mark.parametrize("figure", ["accuracy_vs_n", "loss_vs_n"])
def test_sweep_figures_draw_one_point_per_seed_and_n(run, figure):
    workdir, config, _ = run
    svg = workdir / "reports" / "ci" / "figures" / f"{figure}.svg"
    for arch in config["architectures"]:
        for split in ("valid", "test"):
            assert drawn_points(svg, f"seeds-{arch}-{split}") == len(config["seeds"]) * config["max_epochs"]


def test_within_run_figure_draws_the_sweep_once_per_n(run):
    workdir, config, _ = run
    svg = workdir / "reports" / "ci" / "figures" / "within_run_curve.svg"
    for arch in config["architectures"]:
        assert drawn_points(svg, f"sweep-{arch}") == config["max_epochs"]


def test_report_inlines_each_figure_as_saved(run):
    workdir, _, _ = run
    page = (workdir / "reports" / "ci" / "index.html").read_text()
    figures = sorted((workdir / "reports" / "ci" / "figures").glob("*.png"))
    assert len(figures) == 5
    for png in figures:
        assert base64.b64encode(png.read_bytes()).decode() in page, png.name


def test_latex_tables_have_one_row_per_csv_row(run):
    workdir, _, tables = run
    for tex in sorted((workdir / "reports" / "ci" / "tables").glob("*.tex")):
        text = tex.read_text()
        if "longtable" in text:
            body = text.split("\\endlastfoot", 1)[1].split("\\end{longtable}", 1)[0]
        else:
            body = text.split("\\midrule", 1)[1].split("\\bottomrule", 1)[0]
        rows = [line for line in body.splitlines() if line.rstrip().endswith("\\\\")]
        assert len(rows) == len(pd.read_csv(tables / f"{tex.stem}.csv")), tex.name


def test_latex_tables_show_percent_where_the_csv_keeps_fractions(run):
    workdir, _, tables = run
    comparison = pd.read_csv(tables / "comparison.csv")
    assert comparison["mean"].between(0, 1).all() and comparison["ci_high"].between(0, 1).all()
    text = (workdir / "reports" / "ci" / "tables" / "comparison.tex").read_text()
    assert "Accuracies in percent" in text and "holds them as fractions" in text
    header = [cell.strip() for cell in text.split("\\toprule", 1)[1].split("\\midrule", 1)[0].strip()
              .removesuffix("\\\\").split("&")]
    body = text.split("\\midrule", 1)[1].split("\\bottomrule", 1)[0]
    rows = [[cell.strip() for cell in line.rstrip().removesuffix("\\\\").split("&")]
            for line in body.splitlines() if line.rstrip().endswith("\\\\")]
    mean = header.index("mean (\\%)")
    assert [row[mean] for row in rows] == [f"{100 * value:.1f}" for value in comparison["mean"]]


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_outputs_are_readable_as_a_plain_open_would_leave_them(run):
    """0644 under umask 022: a web server or a colleague can read the report."""
    workdir, _, _ = run
    expected = 0o666 & ~current_umask()  # the pipeline ran in a child of this process, under this umask
    outputs = [
        "reports/ci/index.html", "reports/ci/figures/accuracy_vs_n.svg", "reports/ci/figures/accuracy_vs_n.png",
        "reports/ci/tables/overfitting.tex", "results/ci/tables/summary.csv",
        "results/ci/cells/fine_tune/resnet18/n1/seed0/metrics.json", "results/ci/pretrained/resnet18.pt",
        "results/ci/data/target/images.npy",
    ]
    modes = {name: stat.S_IMODE((workdir / name).stat().st_mode) for name in outputs}
    assert modes == dict.fromkeys(outputs, expected), {name: oct(mode) for name, mode in modes.items()}
