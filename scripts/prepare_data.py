from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

from epochbench.data import prepare_dataset  # noqa: E402

meta = prepare_dataset(
    snakemake.params.dataset,
    snakemake.params.image_size,
    snakemake.output[0].rsplit("/", 1)[0],
    min_train=snakemake.params.batch_size,
    split=snakemake.params.split,
)
log.info("prepared %s: %s", snakemake.wildcards.task, meta)
