"""epochbench: does fine-tuning longer really help? A reproducible answer, with error bars.

Submodules are imported on use, so that `import epochbench` (and the Snakefile's
config check) never pays for importing torch or fastai.
"""

__version__ = "0.1.0"
