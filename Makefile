# The two commands of the README:
#   make report   set up, then run the default experiment: reports/<experiment>/index.html
#   make test     set up, then run the test suite
PYTHON ?= python3
SETUP_STAMP := .setup.done

.PHONY: report test setup

report: $(SETUP_STAMP)
	snakemake --cores all

test: $(SETUP_STAMP)
	$(PYTHON) -m pytest

setup: $(SETUP_STAMP)

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
