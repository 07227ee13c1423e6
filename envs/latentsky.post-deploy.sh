#!/usr/bin/env bash
# Run by Snakemake inside the freshly created conda environment: install the workflow's own library
# (src/latentsky) from the checkout this file belongs to. Dependencies come from latentsky.yaml.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation "$(dirname "${BASH_SOURCE[0]}")/.."
