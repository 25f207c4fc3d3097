# The two commands of the README, and a quicker test tier:
#   make report     set up, then run the default experiment: reports/<experiment>/index.html
#   make test       set up, then run every test (what CI runs)
#   make test-fast  set up, then run the tests not marked slow (no pipeline run, SLURM cluster or browser)
SETUP_STAMP := .setup.done
# The Python that makes the project's .venv (make BASE_PYTHON=python3.12 for another).
BASE_PYTHON := python3

# Install into and run from an environment the user has activated (venv, virtualenv, conda) as it
# is; otherwise from the project's own .venv. pip never writes into a system Python, which PEP 668
# makes refuse anyway (Debian 12+, Ubuntu 23.04+: "externally-managed-environment").
ifneq ($(VIRTUAL_ENV),)
ENV_DIR := $(VIRTUAL_ENV)
else ifneq ($(CONDA_PREFIX),)
ENV_DIR := $(CONDA_PREFIX)
else
VENV := .venv
ENV_DIR := $(CURDIR)/$(VENV)
# Recipes run as if .venv were activated, so that what they start (snakemake's jobs, the tests'
# `snakemake` and `python` subprocesses) finds its programs first.
export VIRTUAL_ENV := $(ENV_DIR)
export PATH := $(ENV_DIR)/bin:$(PATH)
endif
PYTHON := $(ENV_DIR)/bin/python

.PHONY: report test test-fast setup

report: $(SETUP_STAMP)
	$(PYTHON) -m snakemake --cores all

test: $(SETUP_STAMP)
	$(PYTHON) -m pytest

# The markers are set in tests/conftest.py: `slow` covers every pipeline, SLURM and browser test.
test-fast: $(SETUP_STAMP)
	$(PYTHON) -m pytest -m "not slow"

setup: $(SETUP_STAMP)

ifdef VENV
# A new .venv (pyvenv.cfg is written first) is newer than the stamp, so everything is installed into it.
$(SETUP_STAMP): $(VENV)/pyvenv.cfg

# A venv that failed half-way (Debian's python3 without python3-venv has no ensurepip) is removed,
# so that the next make tries again rather than using it.
$(VENV)/pyvenv.cfg:
	$(BASE_PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "could not create $(VENV): on Debian or Ubuntu, apt-get install python3-venv; or activate an environment of your own"; exit 1; }
endif

# torch/torchvision are pinned here, not in pyproject.toml: these are the builds
# this project is tested with (on a GPU machine, install your CUDA build first).
$(SETUP_STAMP): pyproject.toml
	$(PYTHON) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PYTHON) -m pip install --quiet -e '.[test]'
	@# The default experiment pretrains on Fashion-MNIST: Debian ships it; elsewhere the loader downloads it.
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null \
		|| echo "note: dataset-fashion-mnist not installed; Fashion-MNIST will be downloaded on first use"; \
	fi
	@# tests/test_browser.py opens the report in headless Chromium through the system chromedriver.
	@if [ ! -x /usr/bin/chromedriver ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq chromium chromium-driver || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)) >/dev/null \
		|| echo "note: chromium/chromium-driver not installed; tests/test_browser.py will fail until they are"; \
	fi
	touch $@
