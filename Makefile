# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo
DEMO_DATASET ?= freesolv
DEMO_EPOCHS ?= 60

.PHONY: demo test test-all lint format scrub lab bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[viz,test,dev]"
	touch $@

demo: $(VENV)/.installed  ## train MI-MoE on a bundled dataset and write the run folder
	$(VENV)/bin/mimoe train --dataset $(DEMO_DATASET) --epochs $(DEMO_EPOCHS) --out $(DEMO_OUT)

test: $(VENV)/.installed  ## the default test suite (slow and GPU tests skipped) and lint
	$(PY) -m pytest -n 2 --doctest-modules mimoe_core tests
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-all: $(VENV)/.installed  ## also the slow tests
	$(PY) -m pytest -n 2 --doctest-modules -m "not gpu" mimoe_core tests

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

scrub: $(VENV)/.installed  ## strip notebook outputs before commit
	$(VENV)/bin/nbstripout notebooks/*.ipynb

lab: $(VENV)/.installed  ## open the tutorials in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_featurize.py
	$(PY) benchmarks/bench_topology.py
	$(PY) benchmarks/bench_model.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
