from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

import pandas as pd  # noqa: E402

from epochbench import stats  # noqa: E402
from epochbench.io import write_csv  # noqa: E402

finals = pd.read_csv(snakemake.input.finals)
histories = pd.read_csv(snakemake.input.histories)
summary = stats.summarize(finals)
curve = stats.within_run_curve(histories, snakemake.params.max_n)
points = stats.compare_within_run(stats.overfitting_points(summary), curve)
comparison = stats.bootstrap_comparison(finals)
write_csv(snakemake.output.comparison, comparison)
write_csv(snakemake.output.summary, summary)
write_csv(snakemake.output.within_run, curve)
points["verdict"] = [stats.verdict_sentence(comparison, arch) for arch in points["architecture"]]
write_csv(snakemake.output.overfitting, points)
log.info("overfitting points:\n%s", points.to_string())
