rule train:
    """One cell of the grid: fastai's learn.fine_tune(n) (or a baseline strategy) with one seed, its history and final metrics."""
    input:
        data=multiext(f"{RESULTS}/data/target/", *DATA_FILES),
        weights=body_weights,
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
        pretrained=config["pretrained"],
        fine_tune=config["fine_tune"],
        batch_size=config["batch_size"],
        device=config["device"],
        deterministic=config["deterministic"],
        precision=config["precision"],
        channels_last=config["channels_last"],
        num_workers=config["num_workers"],
        dataset=config["dataset"],
        from_scratch=config["from_scratch"],
    script:
        "../../scripts/train.py"
