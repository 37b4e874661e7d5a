# Two commands do everything (see README.md):
#   make run    set up, then open the dashboard (offline: the embedded digits dataset)
#   make test   set up, then run every test (unit, notebooks, app, browser)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run train-demo test lab bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[app,notebooks,dev]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) -m streamlit run app/main.py

train-demo: setup
	$(PY) -m tssd_viz train --preset digits --run-dir runs/digits-demo-$$(date +%s)

test: setup
	TSSD_FAST=1 $(PY) -m pytest

lab: setup
	$(PY) -m jupyter lab notebooks/

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
