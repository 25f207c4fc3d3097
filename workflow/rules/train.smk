rule frozen_fit:
    """fine_tune's first fit (body frozen), which is the same for every n and for head_only: run once, saved for them."""
    input:
        data=multiext(f"{RESULTS}/data/target/", *DATA_FILES),
        weights=body_weights,
        lr_find=lr_find_result,
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
        lr_find=lr_find_result,
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
        # Only from_scratch cells read it: a new rate must not rerun the others.
        from_scratch=lambda wildcards: (
            config["from_scratch"] if wildcards.strategy == "from_scratch" else None
        ),
    script:
        "../../scripts/train.py"
