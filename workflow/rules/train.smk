# The settings a training job's learner is built with: a change to any reruns its jobs.
LEARNER_PARAMS = dict(
    pretrained=config["pretrained"],
    fine_tune=config["fine_tune"],
    batch_size=config["batch_size"],
    device=config["device"],
    deterministic=config["deterministic"],
    precision=config["precision"],
    channels_last=config["channels_last"],
    num_workers=config["num_workers"],
    dataset=config["dataset"],
)


def frozen_checkpoint(wildcards):
    """fine_tune(n) and head_only(n) resume from their architecture's and seed's frozen fit; from_scratch has none."""
    if wildcards.strategy == "from_scratch":
        return []
    return f"{RESULTS}/frozen/{wildcards.arch}/seed{wildcards.seed}.pt"


rule frozen_fit:
    """fine_tune's first fit (body frozen), which is the same for every n and for head_only: run once, saved for them."""
    input:
        data=multiext(f"{RESULTS}/data/target/", *DATA_FILES),
        weights=body_weights,
    output:
        checkpoint=f"{RESULTS}/frozen/{{arch}}/seed{{seed}}.pt",
    log:
        f"{LOGS}/frozen_fit/{{arch}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/frozen_fit/{{arch}}/seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
        gpu=GPUS_PER_JOB,
    params:
        **LEARNER_PARAMS,
    script:
        "../../scripts/frozen_fit.py"


rule train:
    """One cell of the grid: fastai's learn.fine_tune(n) (or a baseline strategy) with one seed, its history and final metrics."""
    input:
        data=multiext(f"{RESULTS}/data/target/", *DATA_FILES),
        weights=body_weights,
        frozen=frozen_checkpoint,
    output:
        history=f"{RESULTS}/cells/{CELL}/history.csv",
        epoch_seconds=f"{RESULTS}/cells/{CELL}/epoch_seconds.csv",
        metrics=f"{RESULTS}/cells/{CELL}/metrics.json",
    log:
        f"{LOGS}/train/{CELL}.log",
    benchmark:
        f"{BENCH}/train/{CELL}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
        gpu=GPUS_PER_JOB,
    params:
        **LEARNER_PARAMS,
        from_scratch=config["from_scratch"],
    script:
        "../../scripts/train.py"
