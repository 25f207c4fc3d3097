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
    """The arguments that build a training job's learner, from its rule (`train` or `frozen_fit`): both build it alike."""
    params = snakemake.params
    return dict(
        data_dir=snakemake.input.data[0].rsplit("/", 1)[0],
        arch=snakemake.wildcards.arch,
        seed=int(snakemake.wildcards.seed),
        pretrained=snakemake.input.weights or params.pretrained,
        fine_tune_args=dict(params.fine_tune),
        batch_size=params.batch_size,
        threads=snakemake.threads,
        device=params.device,
        deterministic=params.deterministic,
        precision=params.precision,
        channels_last=params.channels_last,
        num_workers=params.num_workers,
        dataset=params.dataset,
        # Not a param: how many jobs share a GPU changes no number, and a new value must not rerun finished jobs.
        jobs_per_gpu=snakemake.config["jobs_per_gpu"],
    )
