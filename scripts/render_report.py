from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from epochbench.io import write_text  # noqa: E402
from epochbench.outputs import report_html  # noqa: E402

inputs = snakemake.input
tables = {name: pd.read_csv(getattr(inputs, name))
          for name in ("summary", "overfitting", "comparison", "strategies", "early_stopping", "looks")}
write_text(snakemake.output.html, report_html(
    config=snakemake.params.config, config_hash=snakemake.params.config_hash, tables=tables,
    finals=pd.read_csv(inputs.finals), figures=inputs.figures, benchmark_files=inputs.benchmarks,
    data_meta_path=inputs.data_meta, citation_path=inputs.citation, template_path=inputs.template,
    workdir=Path(snakemake.scriptdir).parent,  # the checkout whose commit made this report
    lr_find_results=inputs.lr_find_results, lr_find_curves=inputs.lr_find_curves,
))
# With tracking on, the summary run carries the report and the tables (never failing the job: see epochbench.tracking).
if (snakemake.config.get("tracking") or {}).get("mlflow"):  # noqa: F821
    from epochbench.tracking import track_summary  # noqa: E402

    track_summary(snakemake.config, Path("."), log)  # noqa: F821
