# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo
DEMO_DATASET ?= freesolv
DEMO_EPOCHS ?= 60

THREEDMOL_VERSION ?= 2.5.5
THREEDMOL_JS := node_modules/3dmol/build/3Dmol-min.js

.PHONY: demo test test-all test-gpu lint format scrub lab bench clean assets browser

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[viz,test,dev]"
	touch $@

# 3Dmol.js for offline pages, from the npm registry (never committed). Without npm the
# figures still work; standalone 3D pages then say how to get it.
$(THREEDMOL_JS):
	@command -v npm >/dev/null || { echo "npm not found: 3D viewers in HTML exports need 3Dmol.js (see README)"; exit 0; }
	npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error 3dmol@$(THREEDMOL_VERSION)

assets: $(THREEDMOL_JS)

# Headless Chromium for the browser tests (Debian's package). Installed when running as
# root (CI); otherwise the browser tests are skipped with a note unless CI is set.
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: $(VENV)/.installed assets  ## train MI-MoE on a bundled dataset and write the run folder
	$(VENV)/bin/mimoe train --dataset $(DEMO_DATASET) --epochs $(DEMO_EPOCHS) --out $(DEMO_OUT)
	$(VENV)/bin/mimoe report --run $(DEMO_OUT)

test: $(VENV)/.installed assets browser  ## the default test suite (slow and GPU tests skipped) and lint
	SMOKE_TEST=1 OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile --doctest-modules --nbval-lax --nbval-current-env \
		mimoe_core mimoe_viz tests notebooks
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-all: $(VENV)/.installed assets browser  ## also the slow tests
	SMOKE_TEST=1 OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile --doctest-modules --nbval-lax --nbval-current-env \
		-m "not gpu" mimoe_core mimoe_viz tests notebooks

test-gpu: $(VENV)/.installed  ## the CUDA checks (skipped without a GPU)
	OMP_NUM_THREADS=1 $(PY) -m pytest -m gpu -v tests/models/test_gpu.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

scrub: $(VENV)/.installed  ## strip notebook outputs before commit, keeping the nbval-checked ones
	$(PY) tools/refresh_notebooks.py

lab: $(VENV)/.installed assets  ## open the tutorials in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_featurize.py
	$(PY) benchmarks/bench_topology.py
	$(PY) benchmarks/bench_model.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
