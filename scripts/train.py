# Thin on purpose: this process imports nothing heavy. The cell runs in a warm
# process that has torch and fastai imported already (epochbench.warm), or here.
import sys

from epochbench import warm
from epochbench.jobs import learner_settings

wildcards = snakemake.wildcards  # noqa: F821  (snakemake is injected by the script directive)
spec = dict(
    cell=dict(
        learner_settings(snakemake),  # noqa: F821
        strategy=wildcards.strategy,
        n=int(wildcards.n),
        from_scratch_lr=(snakemake.params.from_scratch or {}).get("lr"),  # noqa: F821  (from_scratch cells only)
        # Only the longest fine_tune runs' per-epoch test metrics are read (early stopping). Not a
        # param on purpose: scoring changes no number of the cell, and raising N must not rerun
        # the finished fine_tune(old N) cells.
        test_every_epoch=(wildcards.strategy == "fine_tune"
                          and int(wildcards.n) == snakemake.config["max_epochs"]),  # noqa: F821
        # fine_tune's frozen fit, run once for every n of this architecture and seed (rule frozen_fit).
        frozen_state=snakemake.input.frozen or None,  # noqa: F821
    ),
    history=snakemake.output.history,  # noqa: F821
    epoch_seconds=snakemake.output.epoch_seconds,  # noqa: F821
    metrics=snakemake.output.metrics,  # noqa: F821
)
code = warm.run("epochbench.train:train_job", spec, snakemake.log[0], device=snakemake.params.device)  # noqa: F821
# With tracking on, the finished cell's files are logged to MLflow: after training, from the files, within
# tracking.timeout, never failing the job (epochbench.tracking). Not a param: turning it on reruns nothing.
if code == 0 and (snakemake.config.get("tracking") or {}).get("mlflow"):  # noqa: F821
    from epochbench.tracking import track_cell

    track_cell(snakemake.config, ".", (wildcards.strategy, wildcards.arch, int(wildcards.n), int(wildcards.seed)),  # noqa: F821
               snakemake.log[0])  # noqa: F821
sys.exit(code)
