#!/usr/bin/env bash
# Prove that the Quick start set-up works on a fresh machine: copy the
# checkout to a scratch folder, then run ci/_setup.sh there with a PATH that
# holds no uv and an empty HOME, and fail if anything was installed outside
# the scratch copy's own folders (the user's home, the system interpreter).
# Usage: ci/fresh_machine.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/home" "$scratch/src" "$scratch/cache"
tar -C "$ROOT" --exclude=./.venv --exclude='./.venv-*' --exclude=./.git --exclude=./build \
    --exclude='*.so' --exclude='./ext/*.c' --exclude='./ext/*.html' -cf - . \
    | tar -C "$scratch/src" -xf -

# PATH with every folder that holds a uv executable removed.
clean_path=
IFS=: read -r -a dirs <<<"$PATH"
for d in "${dirs[@]}"; do
    [ -n "$d" ] && [ ! -x "$d/uv" ] && clean_path=${clean_path:+$clean_path:}$d
done

system_before=$(python3 -m pip list --format=freeze 2>/dev/null | sort)
user_site=$(python3 -c 'import site; print(site.getusersitepackages())')

echo "-- set-up in a scratch copy, no uv on PATH, empty HOME"
(cd "$scratch/src" && env PATH="$clean_path" HOME="$scratch/home" \
    XDG_CACHE_HOME="$scratch/cache" PIP_CACHE_DIR="$scratch/cache/pip" \
    UV_CACHE_DIR="$scratch/cache/uv" \
    bash -c 'source ci/_setup.sh && meshcore_setup "" && "$PY" -c "
import meshcore, meshcore.kernels as k
assert k.BACKEND == \"compiled\", k.BACKEND
print(\"  scratch venv:\", meshcore.__file__, \"backend\", k.BACKEND)
"' _) 2>&1 | sed 's/^/  /' || { echo "FAILED: set-up on a fresh machine" >&2; exit 1; }
status=0
# Caches are allowed; so is ~/.rustup/settings.toml, which the machine's
# rustup proxy writes when pip probes `rustc --version` for its user agent.
leftovers=$(find "$scratch/home" -mindepth 1 -maxdepth 2 -not -path "$scratch/home/.cache*" \
    -not -path "$scratch/home/.rustup*" | sed "s|$scratch/home|~|")
if [ -n "$leftovers" ]; then
    echo "FAILED: the set-up wrote into HOME:" >&2; echo "$leftovers" >&2; status=1
fi
system_after=$(python3 -m pip list --format=freeze 2>/dev/null | sort)
if [ "$system_before" != "$system_after" ]; then
    echo "FAILED: the set-up changed the system interpreter's packages:" >&2
    diff <(echo "$system_before") <(echo "$system_after") >&2 || true
    status=1
fi
if [ -d "$scratch/home/${user_site#"$HOME"/}" ]; then
    echo "FAILED: the set-up installed into the user site $user_site" >&2; status=1
fi
[ -x "$scratch/src/.venv/bin/python" ] || { echo "FAILED: no .venv in the copy" >&2; status=1; }
[ "$status" -eq 0 ] && echo "  fresh-machine set-up: ok (nothing installed outside the copy)"
exit "$status"
