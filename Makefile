# Two commands do everything (see README.md):
#   make run    set up, then serve the dashboard and print its address (offline: the embedded digits dataset)
#   make serve  the same for a classroom: every interface, run folders opened from the runs folder only
#   make test   set up (with the cluster extra), then run every test (unit, notebooks, app, browser, a Ray head, the site)
#   make docs   build the documentation site into site/ (offline; make docs-serve serves it on 127.0.0.1)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup allocator browser run serve train-demo test lab bench docs docs-serve clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[app,notebooks,dev]"
	touch $(STAMP)

# The tests also need the cluster extra (Ray, several hundred MB: they start a real Ray head), the nir extra
# (they run exported students in nirtorch) and the docs extra (they build the site); `make run` needs none.
TEST_STAMP := $(VENV)/.installed-cluster
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[app,notebooks,dev,cluster,nir,docs]"
	touch $(TEST_STAMP)

setup: $(STAMP) allocator

# Training runs under jemalloc when it is installed (tssd_viz.training.allocator; bench/run.py measures it against
# glibc). Installed here when run as root on Debian/Ubuntu; otherwise one line says how, and training runs
# under glibc as before. Linux only: elsewhere the system's malloc runs.
allocator: $(STAMP)
	@[ "$$(uname -s)" != Linux ] || $(PY) -c "import sys, tssd_viz.training.allocator as a; sys.exit(not a.find('jemalloc'))" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq libjemalloc2 >/dev/null; \
	  else echo "Training is faster with jemalloc: sudo apt-get install libjemalloc2 (conda: conda install -c conda-forge jemalloc)" >&2; fi; }

# The browser test drives Debian's Chromium (Playwright's own browser download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "The browser test needs Chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

# The dashboard listens on this machine only (ADDRESS=0.0.0.0 opens it to the network); open the printed address.
ADDRESS ?= 127.0.0.1
PORT    ?= 8501

run: setup
	@echo "Dashboard: http://$(ADDRESS):$(PORT)  (open it in a browser; Ctrl-C stops the server)"
	$(PY) -m streamlit run app/main.py --server.headless true --browser.gatherUsageStats false \
	  --server.address $(ADDRESS) --server.port $(PORT)

# A classroom: every interface, so students reach it over the network (anyone who can reach the port can
# start runs). TSSD_SERVE=classroom limits Inspect's "any run folder" to folders inside the runs folder.
serve: setup
	@echo "Dashboard for the classroom: port $(PORT) on every interface of this machine (Ctrl-C stops the server)"
	TSSD_SERVE=classroom $(PY) -m streamlit run app/main.py --server.headless true --browser.gatherUsageStats false \
	  --server.address 0.0.0.0 --server.port $(PORT)

train-demo: setup
	$(PY) -m tssd_viz train --preset digits --run-dir runs/digits-demo-$$(date +%s)

test: $(TEST_STAMP) browser
	$(PY) -m ruff check . && $(PY) -m ruff format --check .
	TSSD_FAST=1 $(PY) -m pytest

# The lessons train inside the Jupyter kernel: JupyterLab (and so its kernels) starts under the fast allocator.
# `make lab PORT=8890` picks its port (default 8888, not the dashboard's); as root it passes --allow-root,
# which JupyterLab otherwise refuses to start without.
LAB_PORT = $(if $(filter command line environment,$(origin PORT)),$(PORT),8888)
lab: setup
	$(PY) -c "import sys, tssd_viz.training.allocator as a; a.execute(sys.argv[1:])" $(PY) -m jupyter lab notebooks/ \
	  --port $(LAB_PORT) $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# The documentation site (mkdocs.yml, docs/): built offline into site/, the lessons executed in fast mode on the
# way (docs/hooks.py; a rebuild reuses them while nothing they depend on changed). TSSD_DOCS_EXECUTE=0 renders
# the lessons without outputs, for writing the pages. `make docs-serve PORT=8001` picks the port (default 8000,
# not the dashboard's); it rebuilds a page when its file changes.
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[app,notebooks,docs]"
	touch $(DOCS_STAMP)

DOCS_PORT = $(if $(filter command line environment,$(origin PORT)),$(PORT),8000)
docs: $(DOCS_STAMP)
	TSSD_FAST=1 $(PY) -m mkdocs build --strict --site-dir site

docs-serve: $(DOCS_STAMP)
	TSSD_FAST=1 $(PY) -m mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache site
