from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

import pandas as pd  # noqa: E402

from epochbench.outputs import draw_figures  # noqa: E402

inputs = snakemake.input
tables = {name: pd.read_csv(getattr(inputs, name)) for name in ("summary", "overfitting", "within_run", "strategies", "cost")}
draw_figures(tables, pd.read_csv(inputs.finals), snakemake.output.accuracy_vs_n_png.removesuffix(".png").rsplit("/", 1)[0],
             strategy_comparison="strategy_comparison_png" in snakemake.output.keys(),
             lr_find_results=inputs.lr_find_results if "lr_find_png" in snakemake.output.keys() else (),
             lr_find_curves=inputs.lr_find_curves)
