#!/usr/bin/env bash
# The SLURM test: start a one-node cluster (start_cluster.sh) and run tests/workflow/test_slurm.py against it.
#
#   tests/slurm/run.sh            # from the repository root, after `make setup`
#
# Where the cluster cannot be set up (not root, no apt-get or no package mirror) it says so and exits 0,
# skipped — unless LATENTSKY_REQUIRE_SLURM=1 (as in .ci/run), where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
state=${LATENTSKY_SLURM_STATE:-$PWD/.slurm-test}
python=${PYTHON:-.venv/bin/python}

set +e
tests/slurm/start_cluster.sh "$state"
status=$?
set -e
if [ "$status" -eq 3 ]; then
    if [ "${LATENTSKY_REQUIRE_SLURM:-0}" = 1 ]; then
        echo "SLURM test FAILED: a cluster is required here (LATENTSKY_REQUIRE_SLURM=1)" >&2
        exit 1
    fi
    echo "SLURM test SKIPPED (see the reason above)"
    exit 0
fi
[ "$status" -eq 0 ] || exit "$status"
LATENTSKY_SLURM_STATE="$state" "$python" -m pytest -m slurm tests/workflow/test_slurm.py -v -p no:cacheprovider
