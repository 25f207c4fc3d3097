from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

import pandas as pd  # noqa: E402

from epochbench import decisions, stats  # noqa: E402
from epochbench.io import write_csv  # noqa: E402

finals = pd.read_csv(snakemake.input.finals)
histories = pd.read_csv(snakemake.input.histories)
max_n = snakemake.params.max_n
summary = stats.summarize(finals)
# The decisions (which n is worse, the overfitting point, the baselines) are the very
# ones `python -m epochbench analyze` makes on any finals table.
tables = decisions.analyze(finals, snakemake.params.equivalence_margin)
curve = stats.within_run_curve(histories, max_n)
points = stats.compare_within_run(tables["overfitting"], curve)
early_per_seed = stats.early_stopping(histories, max_n, snakemake.params.early_stopping)

write_csv(snakemake.output.summary, summary)
write_csv(snakemake.output.within_run, curve)
write_csv(snakemake.output.comparison, tables["comparison"])
write_csv(snakemake.output.overfitting, points)
write_csv(snakemake.output.strategies, tables["strategies"])
write_csv(snakemake.output.early_stopping_seeds, early_per_seed)
write_csv(snakemake.output.early_stopping, stats.early_stopping_summary(early_per_seed, points, finals))
write_csv(snakemake.output.cost, stats.cost_table(finals))
log.info("overfitting points:\n%s", points.to_string())
