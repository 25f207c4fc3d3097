"""From the collected tables to the report: what rules summarize, plot_figures and render_report do.

One set of functions for the pipeline's scripts and for `python -m epochbench
report --partial`, so that a partial report's verdicts come from the very same
rules as the final one's.
"""

import json
from pathlib import Path

import pandas as pd

# The tables rule summarize writes, by the names of its outputs.
SUMMARY_TABLES = ("summary", "overfitting", "within_run", "comparison", "strategies", "early_stopping",
                  "early_stopping_seeds", "cost", "looks")
LOOKS_COLUMNS = ["architecture", "look", "replicates", "state", "decline_from_n", "decline", "p_decline",
                 "alpha_overfits", "alpha_worse", "alpha_equivalent"]


def summary_tables(finals: pd.DataFrame, histories: pd.DataFrame, max_n: int, early_stopping: dict,
                   equivalence_margin: float, design=None) -> dict:
    """{name: table} of `SUMMARY_TABLES`: mean and intervals over seeds, the decisions, curves and costs.

    `design`: a sequential design (`epochbench.sequential.Design`), whose looks the decisions replay; its
    `looks` table is empty for a fixed design.
    """
    from . import decisions, stats

    summary = stats.summarize(finals)
    # The decisions (which n is worse, the overfitting point, the baselines) are the very
    # ones `python -m epochbench analyze` makes on any finals table.
    if design is None:
        tables = decisions.analyze(finals, equivalence_margin)
    else:
        from .sequential import race

        tables = race(finals, design, equivalence_margin)
    curve = stats.within_run_curve(histories, max_n)
    points = stats.compare_within_run(tables["overfitting"], curve)
    early_per_seed = stats.early_stopping(histories, max_n, early_stopping)
    return dict(summary=summary, overfitting=points, within_run=curve, comparison=tables["comparison"],
                strategies=tables["strategies"], early_stopping_seeds=early_per_seed,
                early_stopping=stats.early_stopping_summary(early_per_seed, points, finals),
                cost=stats.cost_table(finals), looks=tables.get("looks", pd.DataFrame(columns=LOOKS_COLUMNS)))


def draw_figures(tables: dict, finals: pd.DataFrame, folder, strategy_comparison: bool,
                 lr_find_results=(), lr_find_curves=()) -> None:
    """The report's figures, each as folder/<name>.svg, .png and .pdf (lr_find's where its files are given)."""
    from . import plots
    from .stats import fine_tune_only

    stem = str(folder)
    # The n-sweep figures show fastai's fine_tune(n); the strategies have a figure of their own.
    sweep_finals, sweep_summary = fine_tune_only(finals), fine_tune_only(tables["summary"])
    points = tables["overfitting"]
    plots.plot_metric_vs_n(sweep_finals, sweep_summary, points, "accuracy", f"{stem}/accuracy_vs_n")
    plots.plot_metric_vs_n(sweep_finals, sweep_summary, points, "loss", f"{stem}/loss_vs_n")
    plots.plot_within_run(tables["within_run"], sweep_summary, points, f"{stem}/within_run_curve")
    plots.plot_accuracy_vs_cost(tables["cost"], f"{stem}/accuracy_vs_cost")
    if strategy_comparison:
        plots.plot_strategy_comparison(tables["summary"], f"{stem}/strategy_comparison")
    if lr_find_results:
        from .lrfind import read_results

        plots.plot_lr_find(*read_results(lr_find_results, lr_find_curves), f"{stem}/lr_find")


def report_html(config: dict, config_hash: str, tables: dict, finals: pd.DataFrame, figures, benchmark_files,
                data_meta_path, citation_path, template_path, workdir, lr_find_results=(), lr_find_curves=(),
                partial: dict = None) -> str:
    """The report's HTML. `partial` ({runs, planned, ...}) puts the banner of a report of unfinished runs on top."""
    import yaml

    from . import report
    from .lrfind import read_results

    context = report.build_context(
        config=config, config_hash=config_hash, summary=tables["summary"], points=tables["overfitting"],
        comparison=tables["comparison"], strategies=tables["strategies"], early_stopping=tables["early_stopping"],
        citation=yaml.safe_load(Path(citation_path).read_text()), finals=finals, figures=figures,
        benchmark_files=benchmark_files, data_meta=json.loads(Path(data_meta_path).read_text()),
        workdir=workdir,  # the checkout whose commit made this report
        partial=partial, looks=tables.get("looks"),
    )
    # fine_tune.base_lr by lr_find: the rates used, stated (no section where base_lr is a number).
    found, _ = read_results(lr_find_results, lr_find_curves)
    context.update(report.lr_find_context(found, config))
    return report.render(template_path, context)
