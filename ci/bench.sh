#!/usr/bin/env bash
# The main job: build meshcore, run every benchmark in bench/ against
# its named peers and bounds, and print the ratio table.
# Usage: ci/bench.sh [--full] [extra pytest args]
#   default: short workloads (MESHCORE_BENCH_QUICK=1), under a minute once built
#   --full:  the workloads recorded in bench/RESULTS.md (several minutes)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"

quick=1
if [ "${1:-}" = "--full" ]; then quick=0; shift; fi
meshcore_setup "bench"

out=$ROOT/bench/.out
mkdir -p "$out"
json=$out/$(date -u +%Y%m%dT%H%M%SZ).json
extra=()
if [ "$quick" = 1 ]; then extra=(--benchmark-max-time=0.2 --benchmark-min-rounds=3); fi
MESHCORE_BENCH_QUICK=$quick "$PY" -m pytest "$ROOT"/bench/bench_*.py -q -p no:cacheprovider \
    --benchmark-only --benchmark-json="$json" --benchmark-disable-gc \
    --benchmark-columns=median,ops,rounds "${extra[@]}" "$@" >"$out/pytest.log" 2>&1 || {
    cat "$out/pytest.log"; exit 1; }
"$PY" "$ROOT/bench/report.py" "$json"
