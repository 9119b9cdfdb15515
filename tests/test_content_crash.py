"""Crash safety: SIGKILL a publishing process at random points, then reopen the node.

A child process (forked; its body is tests/helpers/content_publish_loop.py)
publishes items in a loop with fsync on; the test kills it with SIGKILL after a seeded random
delay, ten times over the same state folder. After every kill the node must
open cleanly, every listed item must be complete and hold exactly the bytes
it was published with, every item the child reported as published must be
listed, and no orphan chunk or temp file may remain. Each kill waits until
the child has written a new file into the store, so no round checks an
untouched folder.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sys
import time
from pathlib import Path

HELPERS = Path(__file__).resolve().parent / "helpers"
sys.path.insert(0, str(HELPERS))

from content_publish_loop import crash_payload, node_settings, publish_forever  # noqa: E402

from meshcore.content.access import GUEST  # noqa: E402
from meshcore.content.node import ContentNode  # noqa: E402

ITERATIONS = 10


def _store_files(state: Path) -> set[Path]:
    """Every file under the chunk store (chunks, manifests, temp files)."""
    root = node_settings(state).store_dir
    return {p for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def _run_and_kill(state: Path, first: int, delay: float) -> list[int]:
    """Fork a child that publishes in a loop; SIGKILL it ``delay`` s after it is ready,
    and not before it has written a new file into the store (failing if it never
    does). Returns the indices the child reported as published."""
    before = _store_files(state)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_fd)
            with os.fdopen(write_fd, "w") as out:
                publish_forever(state, first, out)
        finally:
            os._exit(1)
    os.close(write_fd)
    with os.fdopen(read_fd) as lines:
        try:
            assert lines.readline().strip() == "ready"
            time.sleep(delay)
            # A kill before the child wrote anything would test an untouched store.
            deadline = time.monotonic() + 30
            while not _store_files(state) - before:
                assert time.monotonic() < deadline, "the child wrote nothing in 30 s"
                time.sleep(0.002)
        finally:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        rest = lines.read()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    return [int(x.split()[1]) for x in rest.splitlines() if x.startswith("published")]


def test_sigkill_while_publishing_leaves_complete_items_or_nothing(tmp_path):
    rng = random.Random(20261125)
    state = tmp_path / "state"
    acknowledged: set[int] = set()
    next_index = 0
    interrupted = 0
    for _ in range(ITERATIONS):
        delay = rng.uniform(0.02, 0.5)
        done = _run_and_kill(state, next_index, delay)
        acknowledged.update(done)
        with ContentNode(node_settings(state), now=time.time()) as node:
            report = node.open_report
            assert report.rebuilt is None  # the database itself never breaks
            interrupted += bool(report.interrupted)
            listed = node.list(GUEST, include_incomplete=True)
            names = {r.name for r in listed}
            for record in listed:
                assert record.complete, record
                n = int(record.name.split("-")[1])
                data = node.read_bytes(GUEST, record.content_id, now=time.time())
                assert hashlib.blake2b(data).digest() == hashlib.blake2b(crash_payload(n)).digest()
            # every publish the child saw return is durable and listed
            assert {f"item-{n}" for n in acknowledged} <= names
            # nothing left behind by the interrupted publish
            assert set(node.store) == node.catalog.referenced()
            assert not list(node.store.root.rglob(".tmp-*"))
            assert sorted(node.store.iter_manifests()) == sorted(r.content_id for r in listed)
            assert node.scrub(full=True).clean
            indices = [int(name.split("-")[1]) for name in names]
        next_index = max([*indices, *acknowledged, next_index - 1]) + 1
    # the kills must have landed in the middle of publishes at least sometimes
    assert interrupted >= 3, interrupted
    assert len(acknowledged) >= 3
