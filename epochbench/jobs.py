"""What every rule script does first: send its output to the rule's log file."""

import logging
import sys
import warnings


def log_to(path, mode: str = "w") -> logging.Logger:
    """Send stderr, warnings and the `epochbench` logger to the job's log file, one readable line each."""
    sys.stderr = open(path, mode, buffering=1)  # noqa: SIM115  (lives as long as the job)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
    return logging.getLogger("epochbench")


def learner_settings(snakemake) -> dict:
    """The arguments that build a training job's learner, from its rule (`train` or `frozen_fit`): both build it alike.

    Where fine_tune.base_lr names an lr_find suggestion, the rate is the one in the job's
    `lr_find` input (rule lr_find); the param stays the name.
    """
    from .lrfind import with_found_rate

    return dict(
        _built_alike(snakemake),
        seed=int(snakemake.wildcards.seed),
        fine_tune_args=with_found_rate(dict(snakemake.params.fine_tune), getattr(snakemake.input, "lr_find", None)),
    )


def lr_find_settings(snakemake) -> dict:
    """The arguments of rule lr_find's job: its learner built as the training jobs build theirs."""
    params = snakemake.params
    return dict(_built_alike(snakemake), seed=int(params.seed), suggestion=params.suggestion)


def _built_alike(snakemake) -> dict:
    params = snakemake.params
    return dict(
        data_dir=snakemake.input.data[0].rsplit("/", 1)[0],
        arch=snakemake.wildcards.arch,
        pretrained=snakemake.input.weights or params.pretrained,
        batch_size=params.batch_size,
        threads=snakemake.threads,
        device=params.device,
        deterministic=params.deterministic,
        precision=params.precision,
        channels_last=params.channels_last,
        num_workers=params.num_workers,
        dataset=params.dataset,
        # A param only when on (common.smk's LEARNER_PARAMS).
        augment=getattr(params, "augment", False),
        # Not a param: how many jobs share a GPU changes no number, and a new value must not rerun finished jobs.
        jobs_per_gpu=snakemake.config["jobs_per_gpu"],
    )
