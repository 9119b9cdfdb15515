"""Download the real request traces that bench/bench_cache.py replays.

Usage: ``python bench/traces/fetch_traces.py [DIR]`` (default: this folder).

The two cache2k web traces are small and committed here (CC BY 4.0); the
others are fetched from the public repositories that redistribute them and
checked against the SHA-256 below. docs/cache_harness.md gives every trace's
source, kind and licence. Files already present with the right digest are
kept; a wrong digest is an error (the benchmark would measure another trace).
"""

from __future__ import annotations

import hashlib
import sys
import urllib.request
from pathlib import Path

CAFFEINE = (
    "https://raw.githubusercontent.com/ben-manes/caffeine/{commit}/simulator/src/main/"
    "resources/com/github/benmanes/caffeine/cache/simulator/parser/{path}"
)
LIBCACHESIM = "https://raw.githubusercontent.com/1a1a11a/libCacheSim/{commit}/data/{path}"

#: file name -> (URL, SHA-256 of the file)
TRACES = {
    "cache2k-web07.trace.xz": (
        CAFFEINE.format(
            commit="ccef95542a9181182a60f5c6c33d2a0642c73574", path="cache2k/web07.trace.xz"
        ),
        "e50bb13aa66d1cc71877c8ea92c577be0d0ab5b2b4f7a16c87046af1097bd46a",
    ),
    "cache2k-web12.trace.xz": (
        CAFFEINE.format(
            commit="ccef95542a9181182a60f5c6c33d2a0642c73574", path="cache2k/web12.trace.xz"
        ),
        "a76c78e129a982fe17055d0a291ebf385e7a0aa7964bd091d006bcde862bcdad",
    ),
    "adaptsize-request.trace.xz": (
        CAFFEINE.format(
            commit="ccef95542a9181182a60f5c6c33d2a0642c73574",
            path="adapt_size/request.trace.xz",
        ),
        "92df6bf9efbc981856c1a4612de9b671d203a090f1f7cb74e94d1f2eee1675b6",
    ),
    "tencent-cloud_photos-sample.bz2": (
        CAFFEINE.format(
            commit="b479ff7d4d91f120771bd0d4fd636f47177e8ed3",
            path="snia_tencent_photo/cloud_photos-sample.bz2",
        ),
        "a26b4e09e4139d16a6839c9a8c9c82d4cd3ca9861a1ef310040c167ed6a4203c",
    ),
    "cloudPhysicsIO.txt": (
        LIBCACHESIM.format(
            commit="aa0fc40914b2b786f4b9f4dafb099f8f332b216a", path="cloudPhysicsIO.txt"
        ),
        "1b48334535801ae862d53e9d7623467186eeb93054462b38021fef273cab0439",
    ),
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(folder: Path) -> int:
    """Fetch every missing trace into ``folder``; return the number of failures."""
    failures = 0
    folder.mkdir(parents=True, exist_ok=True)
    for name, (url, sha) in TRACES.items():
        path = folder / name
        if path.exists() and _digest(path) == sha:
            print(f"{name}: present")
            continue
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = response.read()
        except OSError as exc:
            print(f"{name}: cannot download {url}: {exc}", file=sys.stderr)
            failures += 1
            continue
        if hashlib.sha256(data).hexdigest() != sha:
            print(f"{name}: SHA-256 mismatch for {url}", file=sys.stderr)
            failures += 1
            continue
        path.write_bytes(data)
        print(f"{name}: {len(data):,} bytes")
    return failures


if __name__ == "__main__":
    raise SystemExit(
        1 if fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent) else 0
    )
