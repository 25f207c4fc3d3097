from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

import pandas as pd  # noqa: E402

from epochbench.io import write_csv  # noqa: E402
from epochbench.outputs import SUMMARY_TABLES, summary_tables  # noqa: E402
from epochbench.sequential import design_from_config  # noqa: E402

params = snakemake.params  # noqa: F821
design = design_from_config(dict(replicates=params.replicates, seeds=params.seeds))

tables = summary_tables(pd.read_csv(snakemake.input.finals), pd.read_csv(snakemake.input.histories),
                        params.max_n, params.early_stopping, params.equivalence_margin, design)
for name in SUMMARY_TABLES:
    write_csv(getattr(snakemake.output, name), tables[name])
log.info("overfitting points:\n%s", tables["overfitting"].to_string())
