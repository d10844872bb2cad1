#!/usr/bin/env bash
# Long fuzzing run (issue 8): 10,000 examples for each fuzz test (CI runs 1,000 or 2,000).
set -euo pipefail
cd "$(dirname "$0")/.."
export MNIST_LIVE_FUZZ_EXAMPLES="${MNIST_LIVE_FUZZ_EXAMPLES:-10000}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/realtime/test_fuzz.py "$@"
