rule lr_find:
    """fastai's lr_find for one architecture (body frozen, as fine_tune's first fit): the base_lr of its cells."""
    input:
        data=multiext(f"{RESULTS}/data/target/", *DATA_FILES),
        weights=body_weights,
    output:
        result=f"{RESULTS}/lr_find/{{arch}}.json",
        curve=f"{RESULTS}/lr_find/{{arch}}.csv",
    log:
        f"{LOGS}/lr_find/{{arch}}.log",
    benchmark:
        f"{BENCH}/lr_find/{{arch}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
        gpu=GPUS_PER_JOB,
    params:
        **LR_FIND_PARAMS,
    script:
        "../../scripts/lr_find.py"
