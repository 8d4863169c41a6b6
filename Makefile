# napari-heartbox developer commands. Two that matter for a newcomer:
#   make demo   - install into .venv and open napari on the built-in synthetic chest CT
#   make test   - install into .venv and run the whole test suite (GL tests under Xvfb)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# xvfb-run is looked up when a target runs (system-packages may just have installed it)
XVFB = $(shell command -v xvfb-run >/dev/null 2>&1 && echo "xvfb-run -a -s '-screen 0 1280x1024x24'")

.PHONY: system-packages install web-vendor demo test lint bench train clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Xvfb, Mesa, Qt's xcb libraries, Chromium, Node.js/npm: installed when missing (as root or
# with sudo), otherwise the apt-get command is printed and the tests needing them skip
system-packages:
	@scripts/system-packages.sh

install: system-packages $(BIN)/python
	$(BIN)/pip install -q -e ".[testing]"
	$(MAKE) web-vendor
	@echo "installed into $(VENV): run the CLI as $(BIN)/napari-heartbox (or 'source $(BIN)/activate' first)"

# onnxruntime-web + dicom-parser from the npm registry (pinned by web_export/package-lock.json)
web-vendor:
	@if command -v npm >/dev/null 2>&1 && [ -f web_export/package.json ]; then \
		cd web_export && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && \
		node build.mjs; \
	else echo "npm not found: skipping the browser runtime (web export tests will skip)"; fi

# With a real display napari opens normally; on a headless machine it runs under Xvfb,
# saves a screenshot and exits (see docs/napari.md#demo).
demo: install
	$(if $(DISPLAY),,$(XVFB)) $(BIN)/napari-heartbox demo

test: install
	$(XVFB) $(BIN)/python -m pytest

lint: $(BIN)/python
	$(BIN)/ruff check napari_heartbox tests models benchmarks
	$(BIN)/npe2 validate napari-heartbox

bench: install
	$(BIN)/python -m benchmarks

# reproduces the bundled model (its torch seed was picked on validation phantoms: models/EXPERIMENTS.md)
train: $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/python -m models.train --torch-seed 2

clean:
	rm -rf $(VENV) build dist *.egg-info web_export/node_modules napari_heartbox/web/vendor
