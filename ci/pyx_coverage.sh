#!/usr/bin/env bash
# Line coverage of compiled kernels: rebuild them with Cython line tracing in
# a scratch copy of the tree (the optimised build in place stays untouched)
# and run their tests under Cython's coverage plugin.
# Usage: ci/pyx_coverage.sh PYTHON KERNEL:MIN_PERCENT [KERNEL:MIN_PERCENT ...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=$1; shift
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tar -C "$ROOT" --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.so' \
    --exclude='./ext/*.c' --exclude='./ext/*.html' -cf - . | tar -C "$scratch" -xf -
cd "$scratch"
kernels=$(printf '%s\n' "$@" | cut -d: -f1 | paste -sd,)
MESHCORE_KERNELS=$kernels MESHCORE_REQUIRE_EXTENSIONS=1 MESHCORE_CYTHON_COVERAGE=1 \
    "$PY" setup.py -q build_ext --inplace -t build/tmp >build.log 2>&1 || { cat build.log; exit 1; }
printf '[run]\nplugins = Cython.Coverage\nsource = ext\n' >.coveragerc-pyx
status=0
for spec in "$@"; do
    kernel=${spec%%:*}; minimum=${spec#*:}
    COVERAGE_FILE=.coverage.$kernel "$PY" -m pytest -q -p no:cacheprovider \
        --cov --cov-config=.coveragerc-pyx --cov-report= "tests/test_$kernel.py" \
        >"pytest-$kernel.log" 2>&1 || { cat "pytest-$kernel.log"; status=1; continue; }
    echo "-- ext/$kernel.pyx (compiled with line tracing), gate $minimum%:"
    COVERAGE_FILE=.coverage.$kernel "$PY" -m coverage report --rcfile=.coveragerc-pyx \
        --show-missing --fail-under="$minimum" || status=1
done
exit "$status"
