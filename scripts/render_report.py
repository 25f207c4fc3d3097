from epochbench.jobs import log_to

log = log_to(snakemake.log[0])  # noqa: F821  (snakemake is injected by the script directive)

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from epochbench import report  # noqa: E402
from epochbench.io import write_text  # noqa: E402
from epochbench.lrfind import read_results  # noqa: E402

context = report.build_context(
    config=snakemake.params.config,
    config_hash=snakemake.params.config_hash,
    summary=pd.read_csv(snakemake.input.summary),
    points=pd.read_csv(snakemake.input.overfitting),
    comparison=pd.read_csv(snakemake.input.comparison),
    strategies=pd.read_csv(snakemake.input.strategies),
    early_stopping=pd.read_csv(snakemake.input.early_stopping),
    citation=yaml.safe_load(Path(snakemake.input.citation).read_text()),
    finals=pd.read_csv(snakemake.input.finals),
    figures=snakemake.input.figures,
    benchmark_files=snakemake.input.benchmarks,
    data_meta=json.loads(Path(snakemake.input.data_meta).read_text()),
    workdir=Path(snakemake.scriptdir).parent,  # the checkout whose commit made this report
)
# fine_tune.base_lr by lr_find: the rates used, stated (no section where base_lr is a number).
lr_find_results, _ = read_results(snakemake.input.lr_find_results, snakemake.input.lr_find_curves)
context.update(report.lr_find_context(lr_find_results, snakemake.params.config))
write_text(snakemake.output.html, report.render(snakemake.input.template, context))
