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
SEEDS = config["seeds"]
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


def cell_files(name):
    """One path per (strategy, architecture, n, seed) cell of the grid."""
    return expand(
        f"{RESULTS}/cells/{CELL}/{name}",
        strategy=STRATEGIES,
        arch=ARCHITECTURES,
        n=EPOCHS,
        seed=SEEDS,
    )


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


def benchmark_files():
    """Every job's Snakemake benchmark file upstream of the report, for the 'where the time went' table."""
    files = expand(f"{BENCH}/prepare_data/{{task}}.tsv", task=DATA_TASKS)
    if config["pretrained"] == "source":
        files += expand(f"{BENCH}/pretrain/{{arch}}.tsv", arch=ARCHITECTURES)
    if LR_FIND:
        files += expand(f"{BENCH}/lr_find/{{arch}}.tsv", arch=ARCHITECTURES)
    if {"fine_tune", "head_only"} & set(STRATEGIES):
        files += expand(
            f"{BENCH}/frozen_fit/{{arch}}/seed{{seed}}.tsv",
            arch=ARCHITECTURES,
            seed=SEEDS,
        )
    files += expand(
        f"{BENCH}/train/{CELL}.tsv",
        strategy=STRATEGIES,
        arch=ARCHITECTURES,
        n=EPOCHS,
        seed=SEEDS,
    )
    files += [
        f"{BENCH}/{rule}/all.tsv"
        for rule in ("collect_tables", "summarize", "plot_figures")
    ]
    return files
