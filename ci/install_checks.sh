#!/usr/bin/env bash
# Prove the packaging promises on this machine:
#  1. the wheel carries the five compiled kernels, py.typed and the stubs, and
#     no .pyx/.c sources,
#     and the sdist carries ext/;
#  2. MESHCORE_NO_EXTENSIONS=1 builds a wheel that installs and runs pure;
#  3. with no working C compiler the build still succeeds, pure, with a message.
# Usage: ci/install_checks.sh  (finds or bootstraps uv like ci/_setup.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
meshcore_find_uv
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Build from a clean copy so in-place .so files of the dev tree cannot leak in.
tar -C "$ROOT" --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.so' \
    --exclude='./ext/*.c' --exclude='./ext/*.html' -cf - . | (mkdir "$work/src" && tar -C "$work/src" -xf -)

expect_backend() {  # wheel-dir expected-backend
    local venv=$work/venv-$(basename "$1")
    "${UV[@]}" venv --quiet --python python3 "$venv"
    "${UV[@]}" pip install --quiet --python "$venv/bin/python" "$1"/*.whl
    (cd "$work" && "$venv/bin/python" - "$2" <<'PY'
import sys
from meshcore import kernels
assert kernels.BACKEND == sys.argv[1], (kernels.BACKEND, sys.argv[1])
bf = kernels.BloomFilter(1000, 0.01)
bf.add(b"x")
assert b"x" in bf
cache = kernels.AdaptiveTinyLFU(10)
assert cache.request("a", 1) is False and cache.request("a", 1) is True
print(f"  installed wheel runs with BACKEND={kernels.BACKEND}")
PY
)
}

echo "-- compiled wheel and sdist"
MESHCORE_REQUIRE_EXTENSIONS=1 "${UV[@]}" build --quiet --out-dir "$work/dist" "$work/src"
python3 - "$work/dist" <<'PY'
import pathlib, sys, tarfile, zipfile
dist = pathlib.Path(sys.argv[1])
names = zipfile.ZipFile(next(dist.glob("*.whl"))).namelist()
kernels = sorted(n for n in names if "/kernels/_" in n and (n.endswith(".so") or n.endswith(".pyd")))
assert len(kernels) == 5, kernels
assert "meshcore/py.typed" in names, "py.typed missing"
stubs = sorted(n for n in names if n.startswith("meshcore/kernels/_") and n.endswith("_c.pyi"))
assert len(stubs) == 5, stubs
leaked = [n for n in names if n.endswith((".pyx", ".pxd", ".c", ".h"))]
assert not leaked, leaked
sdist = tarfile.open(next(dist.glob("*.tar.gz"))).getnames()
assert sum(n.endswith(".pyx") for n in sdist) == 5, sdist
print(f"  wheel: {len(kernels)} compiled kernels, no sources; sdist carries ext/*.pyx")
PY
mkdir "$work/wheel-compiled" && mv "$work"/dist/*.whl "$work/wheel-compiled/"
expect_backend "$work/wheel-compiled" compiled

echo "-- MESHCORE_NO_EXTENSIONS=1"
MESHCORE_NO_EXTENSIONS=1 "${UV[@]}" build --quiet --wheel --out-dir "$work/wheel-pure" "$work/src"
expect_backend "$work/wheel-pure" pure

echo "-- no working C compiler"
CC=false LDSHARED=false "${UV[@]}" build --wheel --out-dir "$work/wheel-nocc" \
    "$work/src" 2>"$work/nocc.log"
grep -q "installing the pure-Python twins instead" "$work/nocc.log" || {
    cat "$work/nocc.log"; echo "expected the fallback message" >&2; exit 1; }
expect_backend "$work/wheel-nocc" pure
