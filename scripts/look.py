from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

import pandas as pd  # noqa: E402

from epochbench import sequential  # noqa: E402
from epochbench.io import write_json  # noqa: E402
from epochbench.tables import collect  # noqa: E402

params = snakemake.params  # noqa: F821
design = sequential.design_from_config(dict(replicates=params.replicates, seeds=params.seeds))
_, finals = collect(snakemake.input.histories, snakemake.input.epoch_seconds, snakemake.input.metrics)  # noqa: F821
decisions = sequential.look_decisions(finals, design, int(snakemake.wildcards.look), params.equivalence_margin)  # noqa: F821
write_json(snakemake.output.decisions, decisions)  # noqa: F821
log.info("look %s: %s", snakemake.wildcards.look, decisions["states"])  # noqa: F821
blind = sequential.looks_without_decline(pd.DataFrame(decisions["looks"]))
for row in blind[blind["look"] == decisions["look"]].itertuples():
    log.warning("look %d (%d replicates) cannot resolve a decline: its p cannot go below %.2g, its level is %.2g",
                row.look, row.replicates, row.floor, row.alpha_overfits)
