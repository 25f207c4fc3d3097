"""One unit for accuracy wherever a person reads it: percent with one decimal in the report, its sentences, the
LaTeX tables and the figures' axes; differences in percentage points; the CSV tables keep fractions."""

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epochbench import decisions, plots, report, stats, tables, units

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "reports" / "templates" / "report.html.j2"
MINUS = "\u2212"
PERCENT = re.compile(r"^\d{1,3}\.\d%$")  # 71.8%
POINTS = re.compile(rf"^[+{MINUS}]?\d+\.\d pts$")  # −7.3 pts, +0.4 pts, 0.0 pts


def test_accuracies_are_percent_with_one_decimal_and_differences_points():
    assert units.percent(0.7176) == "71.8%"
    assert units.percent(1.0) == "100.0%" and units.percent(0.0) == "0.0%"
    assert units.points(-0.0731) == f"{MINUS}7.3 pts" and units.points(0.004) == "+0.4 pts"
    assert units.points(-0.00004) == "0.0 pts"  # rounds to zero: no sign, no "-0.0"
    assert units.points(0.021, signed=False) == "2.1 pts"
    assert units.percent_range(0.75, 0.8149) == "75.0% to 81.5%"
    assert units.points_range(-0.012, 0.034) == f"{MINUS}1.2 to +3.4 pts"
    assert units.percent(np.nan) == units.points(None) == "–"
    assert units.margin(0.01) == "±1.0 pts" and units.margin(0.0025) == "±0.25 pts"
    assert units.accuracy(-0.05, signed=True, unit="", minus="-") == "-5.0"


def finals_table() -> pd.DataFrame:
    """fine_tune and head_only, n = 1..3, 4 replicates: accuracy rises with n, head_only 3 points below."""
    rng = np.random.default_rng(0)
    rows = []
    for strategy, offset in (("fine_tune", 0.0), ("head_only", -0.03)):
        for n in (1, 2, 3):
            for seed in range(4):
                rows.append(dict(strategy=strategy, architecture="netA", n=n, seed=seed,
                                 valid_accuracy=0.70 + 0.02 * n + offset + rng.normal(0, 0.005),
                                 test_accuracy=0.69 + 0.02 * n + offset + rng.normal(0, 0.005),
                                 valid_loss=0.9 - 0.05 * n + rng.normal(0, 0.01),
                                 test_loss=0.95 - 0.05 * n + rng.normal(0, 0.01),
                                 epochs_trained=n + 1, train_seconds=2.0 * n, job_epoch_seconds=2.0 * n,
                                 epochs_shared=0, n_train=10))
    return pd.DataFrame(rows)


def early_stopping_table() -> pd.DataFrame:
    return pd.DataFrame([dict(architecture="netA", rule="GL_2", seeds=4, stopped_early=0.75, stop_epoch=2.0,
                              kept_epoch=1.5, epochs_trained=3.0, test_accuracy=0.7312, test_ci_low=0.7101,
                              test_ci_high=0.7523)])


def table_cells(page: str, table_id: str) -> list:
    body = page.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return [[html.unescape(cell) for cell in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL) if "<td>" in row]


CREDENTIALS_URL = "https://reader:s3cret@mirror.example/data.tgz"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """(page, summary, comparison, strategies, overfitting) of a report rendered from `finals_table`."""
    finals = finals_table()
    decided = decisions.analyze(finals)
    summary = stats.summarize(finals)
    config = dict(experiment="units", max_epochs=3, architectures=["netA"], strategies=["fine_tune", "head_only"],
                  dataset=dict(name="folder", url=CREDENTIALS_URL), pretrained="imagenet", split="per_seed")
    context = report.build_context(
        config=config, config_hash="abc", summary=summary, points=decided["overfitting"], finals=finals, figures=[],
        benchmark_files=[], workdir=tmp_path_factory.mktemp("checkout"),
        data_meta=dict(classes=["a", "b"], counts=dict(train=10, valid=5, test=5), flipped_train_labels=0,
                       image_size=8),
        comparison=decided["comparison"], strategies=decided["strategies"], early_stopping=early_stopping_table(),
        citation={},
    )
    page = report.render(TEMPLATE, context)
    return page, summary, decided["comparison"], decided["strategies"], decided["overfitting"]


def test_summary_table_shows_accuracy_in_percent_and_loss_as_it_is(rendered):
    page, summary, *_ = rendered
    shown = table_cells(page, "summary-table")
    assert len(shown) == len(summary) == 2 * 3 * 4
    for row, (_, expected) in zip(shown, summary.iterrows()):
        assert row[3] == expected["metric"]
        mean, std, low, high = row[5:]
        if expected["metric"].endswith("accuracy"):
            assert [mean, low, high] == [f"{100 * expected[c]:.1f}%" for c in ("mean", "ci_low", "ci_high")], row
            assert std == f"{100 * expected['std']:.1f} pts"
            assert PERCENT.match(mean) and float(mean[:-1]) == pytest.approx(100 * expected["mean"], abs=0.05)
        else:
            assert [mean, std, low, high] == [f"{expected[c]:.4f}" for c in ("mean", "std", "ci_low", "ci_high")]
    assert sum(row[3].endswith("accuracy") for row in shown) == 12


def test_comparison_and_strategy_tables_in_percent_with_differences_in_points(rendered):
    page, _, comparison, strategies, _ = rendered
    shown = table_cells(page, "comparison-table")
    assert len(shown) == len(comparison) == 3
    for row, (_, expected) in zip(shown, comparison.iterrows()):
        assert row[3] == f"{100 * expected['mean']:.1f}%"
        assert row[4] == f"{100 * expected['ci_low']:.1f}% to {100 * expected['ci_high']:.1f}%"
        if expected["verdict"] == "best":
            assert row[5] == "–"
        else:
            assert expected["difference"] < -0.01  # accuracy rises with n: every other n is below the best
            assert row[5] == f"{MINUS}{-100 * expected['difference']:.1f} pts" and POINTS.match(row[5])
    shown = table_cells(page, "strategies-table")
    assert len(shown) == len(strategies) == 3
    for row, (_, expected) in zip(shown, strategies.iterrows()):
        assert PERCENT.match(row[4]) and PERCENT.match(row[5])
        assert row[4] == f"{100 * expected['mean']:.1f}%" and row[5] == f"{100 * expected['fine_tune_mean']:.1f}%"
        assert row[6] == units.points(expected["difference"]) and row[6].startswith(MINUS)  # head_only is 3 below
        assert row[7] == units.points_range(expected["diff_ci_low"], expected["diff_ci_high"])
        assert row[7].endswith(" pts") and " to " in row[7]
    early = table_cells(page, "early-stopping-table")
    assert early == [["netA", "GL_2", "4", "75.0%", "2.0", "1.5", "3.0", "73.1%", "71.0% to 75.2%"]]


def test_answer_and_sentences_in_percent_and_points(rendered):
    page, _, _, _, points = rendered
    point = points.iloc[0]
    assert f"test accuracy {100 * point['chosen_test_accuracy']:.1f}% (" in page
    assert (f"({100 * point['chosen_test_ci_low']:.1f}% to {100 * point['chosen_test_ci_high']:.1f}%)</h3>") in page
    # finals_table has 4 replicates: the cross-fitted optimism is measured over the 6 splits into halves.
    optimism = re.search(r"Selection optimism, cross-fitted: .*? was (\S+ pts) against", html.unescape(page))
    assert optimism and POINTS.match(optimism.group(1))
    assert units.points(point["selection_optimism"]) == optimism.group(1)
    assert "within ±1.0 pts" in html.unescape(page)
    sentence = decisions.decline_clause(pd.Series(dict(
        overfits=True, max_n=10, replicates=8, decline_from_n=6, valid_accuracy_at_decline_from_n=0.7704,
        valid_accuracy_at_max_n=0.6976, decline_at_max_n=-0.0728, decline_ci_low=-0.1012, decline_ci_high=-0.0409,
        p_decline=0.012, decline_test="decline", alpha_overfits=0.035, alpha_worse=0.01,
        replicates_needed_overfits=5)))
    assert sentence == (f"Accuracy falls from 77.0% at n = 6 to 69.8% at n = 10: {MINUS}7.3 pts (simultaneous 95% "
                        f"interval {MINUS}10.1 to {MINUS}4.1 pts; the decline test, step-down max-T over the "
                        "replicates, sign flips and studentized bootstrap, over every n < 10 against 10: adjusted "
                        "p = 0.012 < 0.035)")


def test_no_accuracy_in_the_report_is_a_fraction(rendered):
    """The accuracies of the known tables appear in the page in percent only, never as the CSV's fractions."""
    page, summary, comparison, strategies, _ = rendered
    accuracy = summary[summary["metric"].str.endswith("accuracy")]
    values = list(accuracy["mean"]) + list(comparison["mean"]) + list(strategies["mean"])
    for value in values:
        assert f"{100 * value:.1f}%" in page
        assert f"{value:.4f}" not in page and f"{value:.3f}" not in page and f"{value:.2f}<" not in page


def test_the_csv_tables_keep_fractions():
    """What summarize writes (and what analyze writes) holds accuracies as fractions in [0, 1]."""
    finals = finals_table()
    summary = stats.summarize(finals)
    decided = decisions.analyze(finals)
    accuracy = summary[summary["metric"].str.endswith("accuracy")]
    assert accuracy["mean"].between(0.6, 0.8).all()
    assert decided["comparison"]["mean"].between(0.6, 0.8).all()
    assert decided["overfitting"]["chosen_test_accuracy"].between(0.6, 0.8).all()
    assert decided["strategies"]["difference"].abs().between(0.01, 0.06).all()


def latex_rows(text: str) -> list:
    body = text.split("\\midrule", 1)[1].split("\\bottomrule", 1)[0]
    return [[cell.strip() for cell in line.rstrip().removesuffix("\\\\").split("&")]
            for line in body.splitlines() if line.rstrip().endswith("\\\\")]


def latex_header(text: str) -> list:
    head = text.split("\\toprule", 1)[1].split("\\midrule", 1)[0]
    return [cell.strip() for cell in head.strip().removesuffix("\\\\").split("&")]


def test_latex_tables_show_percent_and_points_and_say_so():
    finals = finals_table()
    decided = decisions.analyze(finals)
    comparison = decided["comparison"]
    text = tables.latex_table(comparison, "comparison", "units", "abc")
    assert "Accuracies in percent (\\%), differences of accuracies in percentage points (pts)" in text
    header = latex_header(text)
    assert header[3:6] == ["mean (\\%)", "ci\\_low (\\%)", "ci\\_high (\\%)"]
    assert "difference (pts)" in header and "p\\_worse" in header
    rows = latex_rows(text)
    p_column = header.index("p\\_worse")
    for row, (_, expected) in zip(rows, comparison.iterrows(), strict=True):
        assert row[3] == f"{100 * expected['mean']:.1f}"
        assert row[header.index("difference (pts)")] == units.accuracy(expected["difference"], signed=True, unit="",
                                                                     minus="-")
        # p-values stay as they were
        assert row[p_column] == ("--" if pd.isna(expected["p_worse"]) else f"{expected['p_worse']:.4f}")
    # cost is long: test_accuracy rows in percent, epochs and seconds as measured.
    cost = tables.latex_table(stats.cost_table(finals), "cost", "units", "abc")
    assert "Rows of test\\_accuracy in percent" in cost
    for row in latex_rows(cost):
        if row[3] == "test\\_accuracy":
            assert re.fullmatch(r"\d{2}\.\d", row[5]) and re.fullmatch(r"\d+\.\d", row[6]), row
        else:
            assert re.fullmatch(r"\d+\.\d{4}", row[5]), row
    # The verdict sentence's typographic minus would stop pdflatex: the LaTeX has none.
    overfitting = tables.latex_table(decided["overfitting"].assign(verdict=f"falls ({MINUS}7.3 pts)"), "overfitting",
                                     "units", "abc")
    assert MINUS not in overfitting and "falls (-7.3 pts)" in overfitting


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save, kept open to read their axes."""
    saved = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out_stem: saved.append(fig) or [])
    return saved


def percent_axis(ax) -> list:
    """The y tick labels after drawing, checked to be the ticks' fractions in percent."""
    ax.figure.canvas.draw()
    labels = [(tick, label.get_text()) for tick, label in zip(ax.get_yticks(), ax.get_yticklabels())
              if ax.get_ylim()[0] <= tick <= ax.get_ylim()[1]]
    assert len(labels) >= 2
    for tick, label in labels:
        assert re.fullmatch(r"\d{1,3}(\.\d{1,3})?%", label), label
        assert float(label[:-1]) == pytest.approx(100 * tick, abs=1e-6)
    return [label for _, label in labels]


def test_figures_label_accuracy_axes_in_percent(figures):
    finals = finals_table()
    sweep = stats.fine_tune_only(finals)
    summary = stats.summarize(finals)
    points = decisions.analyze(finals)["overfitting"]
    plots.plot_metric_vs_n(sweep, stats.fine_tune_only(summary), points, "accuracy", "unused")
    plots.plot_metric_vs_n(sweep, stats.fine_tune_only(summary), points, "loss", "unused")
    plots.plot_strategy_comparison(summary, "unused")
    plots.plot_accuracy_vs_cost(stats.cost_table(finals), "unused")
    accuracy, loss, strategy, cost = (fig.axes[0] for fig in figures)
    assert accuracy.get_ylabel() == "accuracy (%)"
    labels = percent_axis(accuracy)
    assert any(label.startswith("7") for label in labels)  # 70..76%: the data are fractions, shown as percent
    # The points drawn are the seeds' accuracies as they are (fractions); only the axis shows percent.
    seeds = next(c for c in accuracy.collections if c.get_gid() == "seeds-netA-valid")
    assert sorted(seeds.get_offsets()[:, 1]) == pytest.approx(sorted(sweep["valid_accuracy"]))
    assert strategy.get_ylabel() == "test accuracy (%)" and percent_axis(strategy)
    assert cost.get_ylabel() == "test accuracy (%)" and percent_axis(cost)
    # Loss is not an accuracy: no percent.
    assert loss.get_ylabel() == "loss"
    loss.figure.canvas.draw()
    assert not any(label.get_text().endswith("%") for label in loss.get_yticklabels())


def test_within_run_figure_in_percent(figures):
    finals = finals_table()
    sweep = stats.fine_tune_only(finals)
    summary = stats.fine_tune_only(stats.summarize(finals))
    points = decisions.analyze(finals)["overfitting"]
    curve = pd.DataFrame(dict(architecture="netA", epoch=[1, 2, 3], metric="valid_accuracy", seeds=4,
                              mean=[0.71, 0.735, 0.74], ci_low=[0.70, 0.725, 0.73], ci_high=[0.72, 0.745, 0.75]))
    plots.plot_within_run(curve, summary, points.assign(max_n=3), "unused")
    assert len(sweep) and figures[0].axes[0].get_ylabel() == "validation accuracy (%)"
    percent_axis(figures[0].axes[0])


def test_percent_ticks_take_the_decimals_the_spacing_needs():
    ticks = plots.PercentTicks()
    assert ticks.format_ticks([0.70, 0.72, 0.74]) == ["70%", "72%", "74%"]
    assert ticks.format_ticks([0.700, 0.705, 0.710]) == ["70.0%", "70.5%", "71.0%"]
    assert ticks.format_ticks([0.7, 0.7025]) == ["70.00%", "70.25%"]


def test_the_config_dump_shows_no_credentials_of_a_url(rendered):
    page = rendered[0]
    assert "s3cret" not in page and "reader" not in page
    assert "url: https://***@mirror.example/data.tgz" in html.unescape(page)
