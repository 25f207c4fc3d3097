rule prepare_data:
    """Decode, resize, split and label each image once into arrays every training job memory-maps."""
    output:
        multiext(f"{RESULTS}/data/{{task}}/", *DATA_FILES),
    params:
        dataset=lambda w: config["dataset"] if w.task == "target" else config["source"]["dataset"],
        image_size=config["image_size"],
    log:
        f"{LOGS}/prepare_data/{{task}}.log",
    benchmark:
        f"{BENCH}/prepare_data/{{task}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../../scripts/prepare_data.py"


rule pretrain:
    """Train each architecture on the source task; its body's weights start every fine_tune job."""
    input:
        multiext(f"{RESULTS}/data/source/", *DATA_FILES),
    output:
        weights=f"{RESULTS}/pretrained/{{arch}}.pt",
        metrics=f"{RESULTS}/pretrained/{{arch}}.json",
    params:
        epochs=lambda w: config["source"]["epochs"],
        lr=lambda w: config["source"]["lr"],
        batch_size=config["batch_size"],
        device=config["device"],
    log:
        f"{LOGS}/pretrain/{{arch}}.log",
    benchmark:
        f"{BENCH}/pretrain/{{arch}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPUS_PER_JOB,
    script:
        "../../scripts/pretrain.py"
