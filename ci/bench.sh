#!/usr/bin/env bash
# The main job: build meshcore, run every benchmark in bench/ against
# its named peers and bounds, and print the ratio table.
# Usage: ci/bench.sh [--full] [--save | --compare] [extra pytest args]
#   default:   short workloads (MESHCORE_BENCH_QUICK=1), under a minute once built
#   --full:    the workloads recorded in bench/RESULTS.md (several minutes)
#   --save:    also store the run as bench/history/<version>.json (the version
#              in pyproject.toml): the latency record of a release
#   --compare: also compare each benchmark's ratio to its named peer with the
#              last saved release (bench/report.py --compare); exits non-zero
#              when one fell by more than MESHCORE_BENCH_REGRESSION (default
#              0.20, i.e. 20%: the drift a paired ratio shows on a shared VM)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"

quick=1
mode=
while [ $# -gt 0 ]; do
    case "$1" in
        --full) quick=0; shift ;;
        --save) mode=save; shift ;;
        --compare) mode=compare; shift ;;
        *) break ;;
    esac
done
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

history=$ROOT/bench/history
case "$mode" in
    save)
        version=$("$PY" -c 'import importlib.metadata as m; print(m.version("meshcore"))')
        mkdir -p "$history"
        cp "$json" "$history/$version.json"
        echo "saved bench/history/$version.json"
        ;;
    compare)
        "$PY" "$ROOT/bench/report.py" --compare "$history" "$json" \
            --threshold "${MESHCORE_BENCH_REGRESSION:-0.20}"
        ;;
esac
