# Quick start: `make run` (the whole stack on a demo camera) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: venv models run run-sfapi test bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,bench,memcached]'
	touch $(STAMP)

venv: $(STAMP)

models: $(STAMP)
	$(VENV)/bin/sfapi models fetch --config config/sfapi.yaml

run: models
	$(VENV)/bin/facerouter-stack demo --dir var/demo

run-sfapi: models
	$(VENV)/bin/sfapi demo --config config/sfapi.yaml

test: models
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: models
	$(PY) bench/accuracy.py
	$(PY) bench/detect.py
	$(PY) bench/search.py --milvus
	$(PY) bench/router.py
	$(PY) bench/worker.py
	$(PY) bench/e2e.py

clean:
	rm -rf $(VENV) .pytest_cache
