# hvbuyer: `make run` (UI + API on the sample data) and `make test`. Everything installs into .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
PIP_VERSION := 26.3
CHROMIUM ?= $(or $(HVBUYER_BROWSER),/usr/bin/chromium)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test lint materialize sample-data bench-pipeline bench-scale bench-serve bench-explain bench-drift bench-engines clean
.PHONY: lock browser screenshots
.PHONY: test-prod prod-install prod-up prod-down prod-status prod-sample prod-measure
.PHONY: spark-up spark-down spark-status

install: $(VENV)/.installed

# Every library at the version in constraints.txt (`make lock` writes it from pyproject.toml), so the same commit
# installs the same libraries next month. pip prints each package as it goes: the first install takes a few minutes.
$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "== [1/3] virtual environment $(VENV)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "== [2/3] pip $(PIP_VERSION)"
	$(PY) -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	@echo "== [3/3] hvbuyer and its dev/prod libraries, pinned by constraints.txt"
	$(PY) -m pip install --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

# Refresh constraints.txt from pyproject.toml (base + every extra; any platform, Python 3.11). Pins already in
# constraints.txt are kept when they still fit; `make lock LOCK_ARGS=--upgrade` moves everything to the newest.
# Needs only uv (not a full install, which a constraint at odds with a new pyproject pin would stop).
lock: $(VENV)/bin/uv
	$(VENV)/bin/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 --quiet \
		--custom-compile-command "make lock" $(LOCK_ARGS) -o constraints.txt
	@echo "== constraints.txt written; \`make install\` (or CI) now installs exactly these versions"

$(VENV)/bin/uv:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt uv

# Debian's chromium for the browser tests (hvbuyer_tests/ui): Playwright drives it, it never downloads a browser.
# Skipped when $(CHROMIUM) exists (HVBUYER_BROWSER points elsewhere, e.g. to google-chrome on GitHub's runners).
browser:
	@test -x "$(CHROMIUM)" || { echo "== installing Debian's chromium (browser tests)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@"$(CHROMIUM)" --version

# docs/images/*.png from the real UIs, with `make run` up in another terminal (same HVBUYER_*_PORT variables).
screenshots: install browser
	$(PY) scripts/screenshots.py

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: install $(DAGSTER_HOME)/dagster.yaml
	bash scripts/run.sh

# `make test` is the suite CI runs, on TEST_WORKERS pytest-xdist workers (most slow tests wait on subprocesses:
# two workers keep a 2-core machine busy; tests sharing a module's fixture stay on one worker). The production-mode
# deployment tests (one stack for the session, several pipeline runs on Celery) run with `make test-prod`
# (see docs/production.md).
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest hvbuyer_tests -m "not prod" -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

test-prod: install
	HVBUYER_REQUIRE_SERVICES=1 $(PY) -m pytest hvbuyer_tests/prod -m prod

lint: install
	$(VENV)/bin/ruff check hvbuyer_assets hvbuyer_serving hvbuyer_tests scripts

sample-data: install
	bash scripts/sample_data.sh

# Every asset for every complete drop of the raw location, one run per drop in arrival order (each drop is a
# partition of the raw/clean assets: a drop's run cleans it alone and rebuilds features, model and scores).
materialize: install $(DAGSTER_HOME)/dagster.yaml
	set -e; for drop in $$($(PY) -m hvbuyer_assets.register_drops); do \
		$(VENV)/bin/dagster asset materialize -m hvbuyer_assets.definitions --select '*' --partition "$$drop"; done

bench-pipeline: install
	$(PY) scripts/bench_pipeline.py

# Each drop processed once: a 4-year base history plus 10 drops of 30 days, each drop's ingest time (its
# ingest_drop run: clean the drop, features, scores, monitoring) and a full rebuild of the history for comparison.
# BENCH_ARGS="--customers 1000000" for the bench-pipeline scale (docs/operations-and-benchmarks.md).
bench-scale: install
	$(PY) scripts/bench_scale.py $(BENCH_ARGS)

# wrk (Debian's package) is the load generator; installed here like `make browser` installs chromium.
bench-serve: install
	@command -v wrk >/dev/null || { echo "== installing Debian's wrk (load generator of bench-serve)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	$(PY) scripts/bench_serve.py
	$(PY) scripts/bench_serve_scale.py $(BENCH_SERVE_ARGS)

# shap 0.51.0 (the last for Python 3.11) for the comparison in `make bench-explain` (one-row TreeSHAP, ours vs its C++
# TreeExplainer): not a dependency (ours is faster, docs/api.md), so it goes to a folder the script alone imports; the
# rest of its dependencies are ours (pip's dry run with constraints.txt adds only these four, 213 MB, llvmlite 173 MB).
SHAP_TARGET ?= .bench/shap
$(SHAP_TARGET)/shap/__init__.py:
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --target $(SHAP_TARGET) \
		shap==0.51.0 slicer==0.0.8 numba==0.68.1 llvmlite==0.50.0

bench-explain: install $(SHAP_TARGET)/shap/__init__.py
	$(PY) scripts/bench_explain.py --shap-path $(SHAP_TARGET)

# Evidently 0.7.23 for the comparison in `make bench-drift` (same frames, through a subprocess) lives in its own
# venv, so its dependency tree never moves our pins; it needs pandas < 3 (it imports a helper pandas 3 removed).
EVIDENTLY_VENV ?= .venv-evidently
$(EVIDENTLY_VENV)/bin/python:
	$(PYTHON) -m venv $(EVIDENTLY_VENV)
	$(EVIDENTLY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "evidently==0.7.23" "pandas<3" pyarrow

# NannyML 0.13.1 for the CBPE cross-check (`scripts/validate_estimation.py --nannyml-python .venv-nannyml/bin/python`)
# lives in its own venv too: it pulls xgboost, lightgbm, gcsfs and plotly, none of which hvbuyer needs (and imports
# statsmodels without declaring it).
NANNYML_VENV ?= .venv-nannyml
$(NANNYML_VENV)/bin/python:
	$(PYTHON) -m venv $(NANNYML_VENV)
	$(NANNYML_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "nannyml==0.13.1" statsmodels==0.15.0 pyarrow

bench-drift: install $(EVIDENTLY_VENV)/bin/python
	$(PY) scripts/bench_drift.py
	$(PY) scripts/drift_sensitivity.py --evidently-python $(EVIDENTLY_VENV)/bin/python

# customer_features and training_set on the embedded engine and on Spark local[2] (docs/engines.md); reuses the
# clean data of `make bench-pipeline`. BENCH_ARGS="--customers 200000" for a quick run.
bench-engines: install
	$(PY) scripts/bench_engines.py $(BENCH_ARGS)

clean:
	rm -rf $(DAGSTER_HOME) data/interim data/processed data/features data/models data/scores data/monitoring data/quarantine data/mlflow.db data/mlartifacts

# Production mode (docs/production.md): deploy/local.env under the environment; state, logs in .prod/.
prod-install: $(VENV)/.prod-installed

$(VENV)/.prod-installed: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[prod]"
	touch $@

prod-up: prod-install
	$(PY) scripts/prod_stack.py up

prod-down:
	$(PY) scripts/prod_stack.py down

prod-status:
	$(PY) scripts/prod_stack.py status

prod-sample: prod-install
	$(PY) scripts/prod_stack.py sample

prod-measure: prod-install
	$(PY) scripts/prod_measure.py

# A standalone Spark cluster from pyspark's own jars (docs/engines.md): a master and two workers, each its own JVM,
# on loopback ports (HVBUYER_SPARK_MASTER_PORT=7077 ...), pid files and logs in .spark/. Nothing is downloaded.
# Then HVBUYER_ENGINE=spark HVBUYER_SPARK_MASTER=spark://127.0.0.1:7077 runs the feature steps on it.
spark-up: install
	$(PY) scripts/spark_cluster.py up

spark-down:
	$(PY) scripts/spark_cluster.py down

spark-status:
	$(PY) scripts/spark_cluster.py status
