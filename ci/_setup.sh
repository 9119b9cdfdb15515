# Sourced by ci/test.sh, ci/bench.sh and ci/simulate.sh: make a uv virtual
# environment and install meshcore into it (editable, with the compiled
# kernels built in place).
# Usage: meshcore_setup EXTRAS   e.g. meshcore_setup "test,dev"
#
# uv is found in this order: `uv` on the PATH; `python3 -m uv` (installed as
# a module only); otherwise it is bootstrapped into $ROOT/.venv-uv, inside the
# project, so that nothing is installed into the user's home or the system
# interpreter. Every install names the project venv's interpreter explicitly
# (`uv pip install --python $PY`): `uv pip install` with only VIRTUAL_ENV set
# installs into whichever interpreter runs uv when uv is a module.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MESHCORE_VENV:-$ROOT/.venv}
PY=$VENV/bin/python
# uv must never fetch an interpreter: this machine reaches PyPI only.
export UV_PYTHON_DOWNLOADS=never

meshcore_find_uv() {
    # Sets the array UV to a working uv command, bootstrapping it if needed.
    if command -v uv >/dev/null 2>&1; then UV=(uv); return; fi
    if python3 -m uv --version >/dev/null 2>&1; then UV=(python3 -m uv); return; fi
    local boot=$ROOT/.venv-uv
    if [ ! -x "$boot/bin/uv" ]; then
        echo "meshcore: uv not found; installing it into $boot" >&2
        rm -rf "$boot"
        if python3 -m venv "$boot" >/dev/null 2>&1 && [ -x "$boot/bin/pip" ]; then
            "$boot/bin/pip" install --quiet --disable-pip-version-check uv
        else
            # No venv module (Debian without python3-venv): a plain target folder.
            python3 -m pip install --quiet --disable-pip-version-check --target "$boot" uv
        fi
    fi
    if [ ! -x "$boot/bin/uv" ]; then
        echo "meshcore: could not install uv into $boot" >&2
        return 1
    fi
    UV=("$boot/bin/uv")
}

meshcore_setup() {
    local extras=$1
    cd "$ROOT"
    meshcore_find_uv
    if [ ! -x "$PY" ]; then
        "${UV[@]}" venv --quiet --python python3 "$VENV"
    fi
    local spec=.
    if [ -n "$extras" ]; then spec=".[$extras]"; fi
    # Compiled kernels are required unless the caller says otherwise: a
    # silent fallback to the pure twins would make a benchmark or CI lie.
    MESHCORE_REQUIRE_EXTENSIONS=${MESHCORE_REQUIRE_EXTENSIONS:-1} \
        "${UV[@]}" pip install --quiet --python "$PY" --reinstall-package meshcore -e "$spec"
}
