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
# The demo's training jobs one thread each: the rules ask for 2 (what a cluster node should give them), but
# the demo's small models gain little from a second thread, so on a 2-core machine two one-thread jobs side
# by side finish the workflow sooner than two-thread jobs in turn (measured on 2 cores: 16:22 → 11:28).
DEMO_THREADS ?= --set-threads train_bgs_autoencoder=1 train_bgs_flow=1 bgs_catalog=1 train_cmd_flow=1 \
	pelsvae_regression=1

.PHONY: setup demo test test-slurm lint report clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: setup
	$(SNAKEMAKE) --cores $(CORES) $(DEMO_THREADS)
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
