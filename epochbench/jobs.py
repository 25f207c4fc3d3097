"""What a rule's job is built from: its log file, and the settings its learner is built with.

Light on purpose (no torch): the thin job scripts and the Snakefile import it.
"""

import logging
import sys
import warnings
from dataclasses import asdict, dataclass, fields


def log_to(path, mode: str = "w") -> logging.Logger:
    """Send stderr, warnings and the `epochbench` logger to the job's log file, one readable line each."""
    sys.stderr = open(path, mode, buffering=1)  # noqa: SIM115  (lives as long as the job)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
    return logging.getLogger("epochbench")


@dataclass(frozen=True)
class LearnerSettings:
    """How every training and lr_find job of an experiment builds its learner and batches (`train.seeded_learner`).

    Each field but the last two is the config key of its name, and a param of the rules
    `train`, `frozen_fit` and `lr_find` (`learner_params`), so that changing it reruns them.
    A new setting is a field here, a key in the schema, and the code that reads it.
    """

    batch_size: int = 64
    device: str = "auto"
    deterministic: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    num_workers: int = 0
    # The config's dataset block: with a job's seed, it picks the replicate's split and label noise.
    dataset: dict = None
    # False, True (fastai's aug_transforms defaults) or aug_transforms' keyword arguments (`train.augmentations`).
    augment: "bool | dict" = False
    # Not params: how many jobs share a GPU, and a job's threads (the rule's), change no number,
    # and a new value must not rerun finished jobs.
    jobs_per_gpu: int = 1
    threads: int = 1


# The settings that are params: all but the config's jobs_per_gpu and the rule's threads.
PARAM_SETTINGS = tuple(field.name for field in fields(LearnerSettings) if field.name not in ("jobs_per_gpu", "threads"))


def learner_params(config: dict) -> dict:
    """The learner settings as the rules' params, from the (schema-filled) config."""
    params = {name: config[name] for name in PARAM_SETTINGS}
    # Only when on: an experiment without augmentation keeps the params its finished jobs ran with.
    if params["augment"] is False:
        del params["augment"]
    return params


def learner_settings(snakemake) -> dict:
    """The arguments that build a training job's learner, from its rule (`train` or `frozen_fit`): both build it alike.

    Its LearnerSettings are under `settings`, as plain data. Where fine_tune.base_lr names an lr_find suggestion, the rate is the one in the job's
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
    # A param absent (augment, when off) is its default.
    settings = LearnerSettings(
        **{name: getattr(params, name) for name in PARAM_SETTINGS if hasattr(params, name)},
        jobs_per_gpu=snakemake.config["jobs_per_gpu"],
        threads=snakemake.threads,
    )
    return dict(
        data_dir=snakemake.input.data[0].rsplit("/", 1)[0],
        arch=snakemake.wildcards.arch,
        pretrained=snakemake.input.weights or params.pretrained,
        # As plain data: a job's spec reaches the warm server as JSON (`train.with_settings` rebuilds it).
        settings=asdict(settings),
    )
