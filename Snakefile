# epochbench: does fine-tuning longer really help?
# For every architecture, every n = 1..max_epochs and every seed, one job runs
# fastai's fine_tune(n); the tables, figures and report aggregate over seeds.
from snakemake.utils import min_version

min_version("8.20")


# A --configfile replaces the default experiment rather than being merged into
# it: Snakemake merges nested keys, which would leak the default's settings
# (its label noise, say) into another experiment.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/lr_find.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/looks.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/report.smk"


# The tables, figures and report take seconds and need no GPU: under a cluster profile they run where
# snakemake runs instead of queueing for a node, one after the other (Snakemake's localrules).
localrules:
    all,
    look,
    collect_tables,
    summarize,
    plot_figures,
    latex_tables,
    render_report,


rule all:
    default_target: True
    input:
        REPORT_HTML,
