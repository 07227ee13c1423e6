# Two commands do everything on a fresh machine: `make demo` and `make test` (each sets itself up).
#
# Set-up makes a virtual environment in .venv. PyTorch is installed first and pinned to a CPU-capable
# release unless one is already there, so a GPU user can `pip install torch` for their CUDA first
# (see README) and keep it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
CORES ?= all
SNAKEMAKE := $(BIN)/snakemake

.PHONY: setup demo test test-slurm lint report clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: setup
	$(SNAKEMAKE) --cores $(CORES)
	$(SNAKEMAKE) --cores $(CORES) --report results/report.html
	@echo "demo finished: outputs in results/, report in results/report.html"

lint: setup
	$(BIN)/ruff check src scripts tests
	$(BIN)/ruff format --check src scripts tests
	$(BIN)/snakefmt --check Snakefile rules
	$(SNAKEMAKE) --lint

test: lint
	$(BIN)/python -m pytest

# The workflow on a one-node SLURM cluster through profiles/slurm (installs slurm-wlm with apt-get; needs root).
test-slurm: setup
	PYTHON=$(BIN)/python tests/slurm/run.sh

report: setup
	$(SNAKEMAKE) --cores $(CORES) --report results/report.html

clean:
	rm -rf results .snakemake
