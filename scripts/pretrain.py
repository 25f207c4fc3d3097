from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

from epochbench.io import write_json  # noqa: E402
from epochbench.train import pretrain_body  # noqa: E402

result = pretrain_body(
    data_dir=snakemake.input[0].rsplit("/", 1)[0],
    arch=snakemake.wildcards.arch,
    out_path=snakemake.output.weights,
    epochs=snakemake.params.epochs,
    lr=snakemake.params.lr,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
    device=snakemake.params.device,
    deterministic=snakemake.params.deterministic,
    dataset=snakemake.params.dataset,
    # Not a param: how many jobs share a GPU changes no weight, and a new value must not rerun this job.
    jobs_per_gpu=snakemake.config["jobs_per_gpu"],
)
write_json(snakemake.output.metrics, result)
