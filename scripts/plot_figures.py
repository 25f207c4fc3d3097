from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

import pandas as pd  # noqa: E402

from epochbench import plots  # noqa: E402
from epochbench.stats import fine_tune_only  # noqa: E402

finals = pd.read_csv(snakemake.input.finals)
summary = pd.read_csv(snakemake.input.summary)
points = pd.read_csv(snakemake.input.overfitting)
curve = pd.read_csv(snakemake.input.within_run)
stem = snakemake.output.accuracy_vs_n_png.removesuffix(".png").rsplit("/", 1)[0]
# The n-sweep figures show fastai's fine_tune(n); the strategies have a figure of their own.
sweep_finals, sweep_summary = fine_tune_only(finals), fine_tune_only(summary)
plots.plot_metric_vs_n(sweep_finals, sweep_summary, points, "accuracy", f"{stem}/accuracy_vs_n")
plots.plot_metric_vs_n(sweep_finals, sweep_summary, points, "loss", f"{stem}/loss_vs_n")
plots.plot_within_run(curve, sweep_summary, points, f"{stem}/within_run_curve")
plots.plot_accuracy_vs_cost(pd.read_csv(snakemake.input.cost), f"{stem}/accuracy_vs_cost")
if "strategy_comparison_png" in snakemake.output.keys():
    plots.plot_strategy_comparison(summary, f"{stem}/strategy_comparison")
if "lr_find_png" in snakemake.output.keys():
    from epochbench.lrfind import read_results  # noqa: E402

    plots.plot_lr_find(*read_results(snakemake.input.lr_find_results, snakemake.input.lr_find_curves),
                       f"{stem}/lr_find")
