from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

import pandas as pd  # noqa: E402

from epochbench.io import write_csv, write_json  # noqa: E402
from epochbench.train import HISTORY_COLUMNS, train_cell  # noqa: E402

rows, seconds, final = train_cell(
    data_dir=snakemake.input.data[0].rsplit("/", 1)[0],
    arch=snakemake.wildcards.arch,
    strategy=snakemake.wildcards.strategy,
    n=int(snakemake.wildcards.n),
    seed=int(snakemake.wildcards.seed),
    pretrained=snakemake.input.weights or snakemake.params.pretrained,
    fine_tune_args=snakemake.params.fine_tune,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
    device=snakemake.params.device,
    deterministic=snakemake.params.deterministic,
)
history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
# Seconds vary from run to run; keeping them apart keeps history.csv and
# metrics.json byte-identical across reruns of the same cell.
write_csv(snakemake.output.epoch_seconds, history[["phase", "epoch"]].assign(seconds=seconds))
write_csv(snakemake.output.history, history)
write_json(snakemake.output.metrics, final)
