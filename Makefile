# Two commands do everything on a fresh machine with Python >= 3.11:
#   make demo   set up .venv (pinned), then run the whole workflow on the synthetic demo data
#   make test   set up .venv (pinned), then run the test suite
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= cpu,serve,dev
CORES ?= 2
TEST_WORKERS ?= 2
BIN := $(VENV)/bin
comma := ,
# One stamp per set of extras: `make install EXTRAS=gpu,serve,dev` on an existing .venv installs.
STAMP := $(VENV)/.genreflow-installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: all install demo test lint format clean-results

all: demo

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "genreflow needs Python >= 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)

# Re-installs only when the project metadata or the pins change.
$(STAMP): $(BIN)/python pyproject.toml requirements/constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[$(EXTRAS)]"
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py --cores $(CORES)

# Two pytest-xdist workers: many tests wait on subprocesses (MPI ranks, Snakemake, SLURM jobs);
# tests/conftest.py keeps each module's fixtures on one worker and the SLURM tests on one.
# TEST_WORKERS=0 runs everything in this process.
test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --lint

format: $(STAMP)
	$(BIN)/ruff format src tests scripts benchmarks
	$(BIN)/ruff check --fix src tests scripts benchmarks

clean-results:
	rm -rf results
