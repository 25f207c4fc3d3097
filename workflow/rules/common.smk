import json
import sys

from snakemake.utils import validate

from epochbench.config import (
    NOT_HASHED,
    ConfigError,
    canonical,
    check_config,
    config_hash,
    schema_error,
)
from epochbench.jobs import learner_params
from epochbench.sequential import design_from_config

SCHEMA = f"{workflow.basedir}/workflow/schemas/config.schema.yaml"

# A bad config stops here, before any job runs, with one line naming the key.
_problem = schema_error(config, SCHEMA)
if _problem:
    sys.exit(f"epochbench: {_problem}")
# Snakemake's own validation, which also fills in the schema's defaults.
validate(config, SCHEMA)
# Job processes (cluster jobs re-read the workflow) get the config the main
# process has checked; the architecture check alone imports torch.
if workflow.is_main_process:
    try:
        check_config(config, model_cache=".snakemake/epochbench/model_names.json")
    except ConfigError as err:
        sys.exit(f"epochbench: {err}")
_canonical = canonical(config)  # key order in a config file must not rerun jobs
config.clear()
config.update(_canonical)

EXPERIMENT = config["experiment"]
STRATEGIES = config["strategies"]
ARCHITECTURES = config["architectures"]
EPOCHS = list(range(1, config["max_epochs"] + 1))
# A sequential design (replicates.looks) trains its seeds in looks, up to the last look's count.
DESIGN = design_from_config(config)
SEEDS = list(DESIGN.seeds[: DESIGN.looks[-1]]) if DESIGN else config["seeds"]
LOOKS = [str(look) for look in range(1, len(DESIGN.looks) + 1)] if DESIGN else []
CONFIG_HASH = config_hash(config)
# What the report shows and is rerun by: the config less the keys that change no number (tracking).
REPORT_CONFIG = {key: value for key, value in config.items() if key not in NOT_HASHED}
# Training jobs ask the scheduler for a GPU when the config insists on one. 'auto'
# uses one when the job finds it: locally that is whatever the machine has, and
# under the SLURM profile its set-resources ask for a GPU for every training job.
# With jobs_per_gpu K > 1 locally, this 1 is one of a GPU's K slots (Snakemake rounds
# resources to whole numbers, so a job cannot ask for 1/K of a GPU): --resources gpu=G*K.
GPUS_PER_JOB = 1 if config["device"] == "cuda" else 0

RESULTS = f"results/{EXPERIMENT}"
LOGS = f"logs/{EXPERIMENT}"
BENCH = f"{RESULTS}/benchmarks"
TABLES = f"{RESULTS}/tables"
REPORTS = f"reports/{EXPERIMENT}"
REPORT_HTML = f"{REPORTS}/index.html"
FIGURES = ["accuracy_vs_n", "loss_vs_n", "within_run_curve", "accuracy_vs_cost"]
if len(STRATEGIES) > 1:
    FIGURES.append("strategy_comparison")
LATEX_TABLES = ["overfitting", "comparison", "strategies", "early_stopping", "cost"]
FIGURE_FORMATS = ["svg", "png", "pdf"]
DATA_FILES = ["images.npy", "labels.npy", "splits.npy", "meta.json"]
CELL = "{strategy}/{arch}/n{n}/seed{seed}"
DATA_TASKS = ["target", "source"] if config["pretrained"] == "source" else ["target"]
# fine_tune.base_lr may name a fastai lr_find suggestion (valley, ...) rather than give a rate:
# then rule lr_find finds each architecture's rate, once, on the training split of replicate
# LR_FIND_SEED (the lowest seed), and its fine_tune and head_only jobs read it from that file.
LR_FIND = isinstance(config["fine_tune"]["base_lr"], str)
LR_FIND_SEED = min(SEEDS)
if LR_FIND:
    FIGURES.append("lr_find")


wildcard_constraints:
    strategy="fine_tune|head_only|from_scratch",
    arch=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    n=r"\d+",
    seed=r"\d+",
    task=r"target|source",
    look=r"\d+",


def seeds_by_architecture(after_look=None):
    """{architecture: its seeds}: all of them in a fixed design; in a sequential one, those of the look after
    `after_look` (1-based; None: after the last), read from checkpoint look's decisions."""
    if not DESIGN:
        return {arch: SEEDS for arch in ARCHITECTURES}
    if after_look == 0:
        return {arch: DESIGN.seeds_at(0) for arch in ARCHITECTURES}
    look = after_look or len(DESIGN.looks)
    with open(checkpoints.look.get(look=look).output.decisions) as decisions:
        return json.load(decisions)["seeds"]


def cells(name, seeds):
    """One path per (strategy, architecture, n, seed) cell with `seeds` ({architecture: seeds})."""
    return [
        f"{RESULTS}/cells/{strategy}/{arch}/n{n}/seed{seed}/{name}"
        for strategy in STRATEGIES
        for arch in ARCHITECTURES
        for n in EPOCHS
        for seed in seeds[arch]
    ]


def cell_files(name):
    """An input function: one path per cell of the grid (in a sequential design, every look's)."""
    return lambda wildcards: cells(name, seeds_by_architecture())


def body_weights(wildcards):
    """The body weights a training job starts from: the pipeline's own pretraining, a file, or none."""
    if wildcards.get("strategy") == "from_scratch":
        return []
    if config["pretrained"] == "source":
        return f"{RESULTS}/pretrained/{wildcards.arch}.pt"
    if config["pretrained"] in ("imagenet", "none"):
        return []
    return config["pretrained"]


# The optimizer every learner trains with (epochbench.train.OPT_FUNC). A param, so that cells
# finished with another (fastai's own Adam, before FusedAdam) are retrained, not mixed with new ones.
OPTIMIZER = "FusedAdam"

# The settings a training job's learner is built with: a change to any reruns its jobs.
# The job rebuilds epochbench.jobs.LearnerSettings from the params that learner_params gives.
LEARNER_PARAMS = dict(
    optimizer=OPTIMIZER,
    pretrained=config["pretrained"],
    fine_tune=config["fine_tune"],
    **learner_params(config),
)
# lr_find builds its learner as the training jobs do, and needs none of fine_tune's other settings.
LR_FIND_PARAMS = dict(
    {k: v for k, v in LEARNER_PARAMS.items() if k != "fine_tune"},
    suggestion=config["fine_tune"]["base_lr"],
    seed=LR_FIND_SEED,
)


def lr_find_result(wildcards):
    """The rate lr_find found for this architecture, where base_lr names a suggestion; from_scratch has its own rate."""
    if not LR_FIND or wildcards.get("strategy") == "from_scratch":
        return []
    return f"{RESULTS}/lr_find/{wildcards.arch}.json"


def lr_find_files(kind):
    """Every architecture's lr_find result (json) or curve (csv), where base_lr names a suggestion."""
    return (
        expand(f"{RESULTS}/lr_find/{{arch}}.{kind}", arch=ARCHITECTURES)
        if LR_FIND
        else []
    )


def frozen_checkpoint(wildcards):
    """fine_tune(n) and head_only(n) resume from their architecture's and seed's frozen fit; from_scratch has none."""
    if wildcards.strategy == "from_scratch":
        return []
    return f"{RESULTS}/frozen/{wildcards.arch}/seed{wildcards.seed}.pt"


def benchmark_files(wildcards=None):
    """Every job's Snakemake benchmark file upstream of the report, for the 'where the time went' table."""
    seeds = seeds_by_architecture()
    files = expand(f"{BENCH}/prepare_data/{{task}}.tsv", task=DATA_TASKS)
    if config["pretrained"] == "source":
        files += expand(f"{BENCH}/pretrain/{{arch}}.tsv", arch=ARCHITECTURES)
    if LR_FIND:
        files += expand(f"{BENCH}/lr_find/{{arch}}.tsv", arch=ARCHITECTURES)
    if {"fine_tune", "head_only"} & set(STRATEGIES):
        files += [
            f"{BENCH}/frozen_fit/{arch}/seed{seed}.tsv"
            for arch in ARCHITECTURES
            for seed in seeds[arch]
        ]
    files += [
        f"{BENCH}/train/{strategy}/{arch}/n{n}/seed{seed}.tsv"
        for strategy in STRATEGIES
        for arch in ARCHITECTURES
        for n in EPOCHS
        for seed in seeds[arch]
    ]
    files += [
        f"{BENCH}/{rule}/all.tsv"
        for rule in ("collect_tables", "summarize", "plot_figures")
    ]
    files += expand(f"{BENCH}/look/{{look}}.tsv", look=LOOKS)
    return files
