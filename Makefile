# The two commands: `make run` (the whole workflow on config/config.yaml) and `make test`.
# Both install what they need into .venv first (pinned in requirements.txt).

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed
CORES ?= all

.PHONY: install run test test-fast bench lint docs dag clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

# The tests run in TEST_WORKERS processes (pytest-xdist; 0: in pytest's own). Most of them keep one core busy at a
# time (Snakemake's dry runs, the small workflows' chains of jobs), so two workers use both of CI's cores. Each
# worker runs whole groups, a test module or the modules that read the default run, so that every workflow run a
# fixture makes is made once, and the longest groups start first (tests/conftest.py).
TEST_WORKERS ?= 2

# Every test (CI's command); the 20 slowest are listed at the end, so that CI's log shows where its time goes.
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --durations=20

# For development: the tests that take seconds, without the end-to-end runs (marker slow) and the SLURM cluster (slurm).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow and not slurm"

bench: $(STAMP)
	$(BIN)/python -m pathgeo.tools.bench overhead

# The code (ruff check, its rules in pyproject.toml; ruff format and snakefmt, the one formatting of the Python code and
# of the rules), the workflow (snakemake --lint) and the docs site (--strict: a broken link or anchor fails). CI runs
# this after the tests (.ci/run).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules/
	$(BIN)/snakemake --lint
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The docs site into site/ (mkdocs.yml); --strict fails on a broken link, anchor or page left out of the nav.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

dag: $(STAMP)
	$(BIN)/snakemake --rulegraph

clean:
	rm -rf results logs benchmarks .snakemake site
