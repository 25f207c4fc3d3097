# Thin on purpose: this process imports nothing heavy. The cell runs in a warm
# process that has torch and fastai imported already (epochbench.warm), or here.
import sys

from epochbench import warm

params = snakemake.params  # noqa: F821  (snakemake is injected by the script directive)
spec = dict(
    cell=dict(
        data_dir=snakemake.input.data[0].rsplit("/", 1)[0],  # noqa: F821
        arch=snakemake.wildcards.arch,  # noqa: F821
        strategy=snakemake.wildcards.strategy,  # noqa: F821
        n=int(snakemake.wildcards.n),  # noqa: F821
        seed=int(snakemake.wildcards.seed),  # noqa: F821
        pretrained=snakemake.input.weights or params.pretrained,  # noqa: F821
        fine_tune_args=dict(params.fine_tune),
        batch_size=params.batch_size,
        threads=snakemake.threads,  # noqa: F821
        device=params.device,
        deterministic=params.deterministic,
        precision=params.precision,
        channels_last=params.channels_last,
        num_workers=params.num_workers,
        dataset=params.dataset,
        from_scratch_lr=params.from_scratch["lr"],
        # Only the longest fine_tune runs' per-epoch test metrics are read (early stopping). Not a
        # param on purpose: scoring changes no number of the cell, and raising N must not rerun
        # the finished fine_tune(old N) cells.
        test_every_epoch=(snakemake.wildcards.strategy == "fine_tune"  # noqa: F821
                          and int(snakemake.wildcards.n) == snakemake.config["max_epochs"]),  # noqa: F821
        # Not a param either: how many jobs share a GPU changes no number of the cell, and a
        # new value must not rerun finished cells.
        jobs_per_gpu=snakemake.config["jobs_per_gpu"],  # noqa: F821
    ),
    history=snakemake.output.history,  # noqa: F821
    epoch_seconds=snakemake.output.epoch_seconds,  # noqa: F821
    metrics=snakemake.output.metrics,  # noqa: F821
)
sys.exit(warm.run("epochbench.train:train_job", spec, snakemake.log[0], device=params.device))  # noqa: F821
