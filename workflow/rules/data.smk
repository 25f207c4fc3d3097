rule prepare_data:
    """Decode, resize, split and label each image once into arrays every training job memory-maps."""
    output:
        multiext(f"{RESULTS}/data/{{task}}/", *DATA_FILES),
    log:
        f"{LOGS}/prepare_data/{{task}}.log",
    benchmark:
        f"{BENCH}/prepare_data/{{task}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        dataset=lambda w: (
            config["dataset"] if w.task == "target" else config["source"]["dataset"]
        ),
        image_size=config["image_size"],
        batch_size=config["batch_size"],
        # The source task is pretrained once per architecture, on one split.
        split=lambda w: config["split"] if w.task == "target" else "fixed",
    script:
        "../../scripts/prepare_data.py"


rule pretrain:
    """Train each architecture on the source task; its body's weights start every fine_tune job."""
    input:
        multiext(f"{RESULTS}/data/source/", *DATA_FILES),
    output:
        weights=f"{RESULTS}/pretrained/{{arch}}.pt",
        metrics=f"{RESULTS}/pretrained/{{arch}}.json",
    log:
        f"{LOGS}/pretrain/{{arch}}.log",
    benchmark:
        f"{BENCH}/pretrain/{{arch}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPUS_PER_JOB,
    params:
        epochs=lambda w: config["source"]["epochs"],
        lr=lambda w: config["source"]["lr"],
        batch_size=config["batch_size"],
        device=config["device"],
        deterministic=config["deterministic"],
        dataset=lambda w: config["source"]["dataset"],
        optimizer=OPTIMIZER,
    script:
        "../../scripts/pretrain.py"
