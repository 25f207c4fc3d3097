# Thin on purpose, as scripts/train.py: lr_find runs in the warm process, or here.
import sys

from epochbench import warm
from epochbench.jobs import lr_find_settings

spec = dict(
    settings=lr_find_settings(snakemake),  # noqa: F821  (snakemake is injected by the script directive)
    result=snakemake.output.result,  # noqa: F821
    curve=snakemake.output.curve,  # noqa: F821
)
sys.exit(warm.run("epochbench.train:lr_find_job", spec, snakemake.log[0], device=snakemake.params.device))  # noqa: F821
