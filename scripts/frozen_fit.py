# Thin on purpose, as scripts/train.py: the frozen fit runs in the warm process, or here.
import sys

from epochbench import warm
from epochbench.jobs import learner_settings

spec = dict(cell=learner_settings(snakemake), checkpoint=snakemake.output.checkpoint)  # noqa: F821
sys.exit(warm.run("epochbench.train:frozen_job", spec, snakemake.log[0], device=snakemake.params.device))  # noqa: F821
