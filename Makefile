# hvbuyer: `make run` (UI + API on the sample data) and `make test`. Everything installs into .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install run test lint materialize sample-data bench-pipeline bench-serve bench-drift clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: install $(DAGSTER_HOME)/dagster.yaml
	bash scripts/run.sh

test: install
	$(PY) -m pytest hvbuyer_tests

lint: install
	$(VENV)/bin/ruff check hvbuyer_assets hvbuyer_serving hvbuyer_tests scripts

sample-data: install
	bash scripts/sample_data.sh

materialize: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster asset materialize -m hvbuyer_assets.definitions --select '*'

bench-pipeline: install
	$(PY) scripts/bench_pipeline.py

bench-serve: install
	$(PY) scripts/bench_serve.py

bench-drift: install
	$(PY) scripts/bench_drift.py

clean:
	rm -rf $(DAGSTER_HOME) data/interim data/processed data/features data/models data/scores data/monitoring data/quarantine data/mlflow.db data/mlartifacts
