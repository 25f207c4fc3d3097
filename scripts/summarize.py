from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

import pandas as pd  # noqa: E402

from epochbench import stats  # noqa: E402
from epochbench.io import write_csv  # noqa: E402

finals = pd.read_csv(snakemake.input.finals)
histories = pd.read_csv(snakemake.input.histories)
max_n = snakemake.params.max_n
summary = stats.summarize(finals)
# The n-sweep proper (overfitting point, bootstrap, within-run view) is fastai's fine_tune(n);
# the other strategies are baselines compared with it below.
sweep = stats.fine_tune_only(finals)
curve = stats.within_run_curve(histories, max_n)
points = stats.compare_within_run(stats.overfitting_points(stats.fine_tune_only(summary)), curve)
comparison = stats.bootstrap_comparison(sweep)
points["verdict"] = [stats.verdict_sentence(comparison, arch) for arch in points["architecture"]]
early_per_seed = stats.early_stopping(histories, max_n, snakemake.params.early_stopping)

write_csv(snakemake.output.summary, summary)
write_csv(snakemake.output.within_run, curve)
write_csv(snakemake.output.comparison, comparison)
write_csv(snakemake.output.overfitting, points)
write_csv(snakemake.output.strategies, stats.compare_strategies(finals))
write_csv(snakemake.output.early_stopping_seeds, early_per_seed)
write_csv(snakemake.output.early_stopping, stats.early_stopping_summary(early_per_seed, points, finals))
write_csv(snakemake.output.cost, stats.cost_table(finals))
log.info("overfitting points:\n%s", points.to_string())
