# A sequential design (config key replicates.looks): after each look, checkpoint look decides which
# architectures' overfitting verdicts are resolved; the next look's cells are planned only for the
# others (Snakemake re-evaluates the jobs after a checkpoint). Every look's file stays, so a rerun
# retrains nothing and replays the same decisions.


def look_cells(name):
    """An input function: the cells a look analyses (its seeds for open architectures, the earlier ones' for the rest)."""
    return lambda wildcards: cells(name, seeds_by_architecture(int(wildcards.look) - 1))


checkpoint look:
    """After one look: each architecture's state (overfits, holds, futile, open) and the seeds of the next look."""
    input:
        histories=look_cells("history.csv"),
        epoch_seconds=look_cells("epoch_seconds.csv"),
        metrics=look_cells("metrics.json"),
    output:
        decisions=f"{RESULTS}/looks/look{{look}}.json",
    log:
        f"{LOGS}/look/{{look}}.log",
    benchmark:
        f"{BENCH}/look/{{look}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        replicates=config.get("replicates"),
        seeds=config["seeds"],
        equivalence_margin=config["equivalence_margin"],
    script:
        "../../scripts/look.py"
