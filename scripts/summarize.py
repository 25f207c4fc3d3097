from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

import pandas as pd  # noqa: E402

from epochbench.io import write_csv  # noqa: E402
from epochbench.outputs import SUMMARY_TABLES, summary_tables  # noqa: E402

tables = summary_tables(pd.read_csv(snakemake.input.finals), pd.read_csv(snakemake.input.histories),
                        snakemake.params.max_n, snakemake.params.early_stopping, snakemake.params.equivalence_margin)
for name in SUMMARY_TABLES:
    write_csv(getattr(snakemake.output, name), tables[name])
log.info("overfitting points:\n%s", tables["overfitting"].to_string())
