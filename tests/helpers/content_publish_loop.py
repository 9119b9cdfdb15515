"""Publish items forever into one node's state folder (killed by tests/test_content_crash.py).

Usage: python content_publish_loop.py STATE_DIR FIRST_INDEX (or, as the test does,
fork a process that calls :func:`publish_forever`: the fork skips ~1 s of
imports per kill, so ten kills fit in the test budget).

Item ``n`` is named ``item-<n>`` and holds ``crash_payload(n)`` bytes, so the
test can check every listed item against what it must contain. Prints
``ready`` once imported and the node is open, then ``published <n>`` after
each publish returns (flushed, so the parent sees it before killing).
"""

from __future__ import annotations

import io
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _content_util import keypair, payload

from meshcore.config import parse_config
from meshcore.content.node import ContentNode
from meshcore.content.settings import ContentSettings


def crash_payload(n: int) -> bytes:
    """The bytes of item ``n``: 40-300 KiB, half random, half text."""
    size = random.Random(n).randint(40 << 10, 300 << 10)
    return payload(size, seed=n)


def node_settings(state: Path) -> ContentSettings:
    text = (
        f'[content]\nstate_dir = "{state}"\nbudget = "1 GiB"\nfsync = true\n'
        'chunk_min = "2 KiB"\nchunk_avg = "8 KiB"\nchunk_max = "32 KiB"\n'
    )
    return ContentSettings.from_config(parse_config(text, str(state / "node.toml")))


def publish_forever(state: Path, first: int, out) -> None:
    """Open the node in ``state`` and publish ``item-<first>``, ``item-<first+1>``, ...

    Writes ``ready`` and then ``published <n>`` lines to the text stream ``out``.
    """
    node = ContentNode(node_settings(state), now=time.time())
    admin = node.settings.principal("local")
    key = keypair(42)
    out.write("ready\n")
    out.flush()
    n = first
    while True:
        node.publish(admin, io.BytesIO(crash_payload(n)), keypair=key, now=1_700_000_000 + n,
                     name=f"item-{n}", tags=["crash"], access="public")
        out.write(f"published {n}\n")
        out.flush()
        n += 1


def main() -> None:
    publish_forever(Path(sys.argv[1]), int(sys.argv[2]), sys.stdout)


if __name__ == "__main__":
    main()
