from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

import pandas as pd  # noqa: E402

from epochbench import plots  # noqa: E402

finals = pd.read_csv(snakemake.input.finals)
summary = pd.read_csv(snakemake.input.summary)
points = pd.read_csv(snakemake.input.overfitting)
curve = pd.read_csv(snakemake.input.within_run)
stem = snakemake.output.accuracy_vs_n_png.removesuffix(".png").rsplit("/", 1)[0]
plots.plot_metric_vs_n(finals, summary, points, "accuracy", f"{stem}/accuracy_vs_n")
plots.plot_metric_vs_n(finals, summary, points, "loss", f"{stem}/loss_vs_n")
plots.plot_within_run(curve, summary, points, f"{stem}/within_run_curve")
