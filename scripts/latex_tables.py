from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from epochbench.io import write_text  # noqa: E402
from epochbench.tables import latex_table  # noqa: E402

for csv, tex in zip(snakemake.input, snakemake.output, strict=True):
    name = Path(csv).stem
    write_text(tex, latex_table(pd.read_csv(csv), name, snakemake.params.experiment, snakemake.params.config_hash))
    log.info("wrote %s", tex)
