# Sourced by ci/test.sh and ci/bench.sh: make a uv virtual environment and
# install meshcore into it (editable, with the compiled kernels built in place).
# Usage: meshcore_setup EXTRAS   e.g. meshcore_setup "test,dev"
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MESHCORE_VENV:-$ROOT/.venv}
PY=$VENV/bin/python

meshcore_setup() {
    local extras=$1
    cd "$ROOT"
    if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
        echo "meshcore: installing uv with pip" >&2
        python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
    fi
    if command -v uv >/dev/null 2>&1; then UV=(uv); else UV=(python3 -m uv); fi
    if [ ! -x "$PY" ]; then
        "${UV[@]}" venv --quiet --python python3 "$VENV"
    fi
    # Compiled kernels are required unless the caller says otherwise: a
    # silent fallback to the pure twins would make a benchmark or CI lie.
    MESHCORE_REQUIRE_EXTENSIONS=${MESHCORE_REQUIRE_EXTENSIONS:-1} \
        VIRTUAL_ENV=$VENV "${UV[@]}" pip install --quiet --reinstall-package meshcore \
        -e ".[$extras]"
}
