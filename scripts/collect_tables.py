from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

from epochbench.io import write_csv  # noqa: E402
from epochbench.tables import collect  # noqa: E402

histories, finals = collect(snakemake.input.histories, snakemake.input.epoch_seconds, snakemake.input.metrics)
write_csv(snakemake.output.histories, histories)
write_csv(snakemake.output.finals, finals)
log.info("collected %d cells, %d epochs", len(finals), len(histories))
