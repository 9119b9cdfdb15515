#!/usr/bin/env bash
# Install what the network-namespace emulation tests need (issue 4): babeld
# from the distribution's packages, and iproute2. Only as root and only when
# missing; otherwise say why nothing was done. Never fails the build: the
# tests skip with a clear reason when a tool is still missing.
# Usage: bash ci/emulation_deps.sh
set -uo pipefail

missing=()
command -v babeld >/dev/null 2>&1 || missing+=(babeld)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ "${#missing[@]}" -eq 0 ]; then
    echo "emulation deps: babeld $(babeld -V 2>&1 | head -n1), $(ip -V 2>&1)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "emulation deps: not root, not installing ${missing[*]} (emulation tests will skip)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "emulation deps: no apt-get here; install ${missing[*]} by hand" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
# policy-rc.d-less containers may try to start the babeld service: the
# package's own unit is not wanted, the tests start babeld themselves.
if apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "emulation deps: installed ${missing[*]}"
else
    echo "emulation deps: apt-get install ${missing[*]} failed (emulation tests will skip)" >&2
fi
exit 0
