"""Publishing: streaming, bounded memory, budget and full-disk behaviour, retention pins."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from _content_util import keypair, payload, settings

from meshcore.content.catalog import open_catalog
from meshcore.content.node import ContentNode
from meshcore.content.publish import guess_media_type, publish_file, publish_stream
from meshcore.content.store import ChunkStore
from meshcore.errors import StorageError
from meshcore.kernels import BACKEND

KEY = keypair(21)
SIZES = (1024, 4096, 16384)


def state(store_root: Path, db: Path, budget: int, *, fsync=False):
    store = ChunkStore(store_root, budget_bytes=budget, fsync=fsync)
    catalog, _ = open_catalog(db, store, now=1.0)
    return store, catalog


def snapshot(store: ChunkStore, catalog) -> tuple:
    """Everything a failed publish must leave untouched."""
    files = sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    rows = [(r.content_id, r.complete) for r in catalog.items()]
    return files, rows, store.used_bytes


def test_round_trip_and_media_type(tmp_path):
    store, catalog = state(tmp_path / "s", tmp_path / "c.sqlite", 1 << 26)
    with catalog:
        src = tmp_path / "lesson.html"
        data = payload(100_000, seed=4)
        src.write_bytes(data)
        r = publish_file(store, catalog, src, keypair=KEY, now=77.0, chunk_sizes=SIZES)
        m = r.signed.manifest
        assert (m.name, m.media_type, m.size, m.created) == ("lesson.html", "text/html",
                                                             100_000, 77)
        assert m.publisher == KEY.public and r.signed.verify()
        assert b"".join(store.get(c.digest) for c in m.chunks) == data
        assert store.read_manifest(r.content_id) == r.signed.to_bytes()
        assert r.new_bytes == 100_000 and r.new_chunks == len({c.digest for c in m.chunks})
    assert guess_media_type("x.unknown-ext") == "application/octet-stream"


def test_empty_file(tmp_path):
    store, catalog = state(tmp_path / "s", tmp_path / "c.sqlite", 1 << 20)
    with catalog:
        r = publish_stream(store, catalog, io.BytesIO(b""), name="empty", keypair=KEY, now=1.0)
        assert r.record.size == 0 and r.record.complete and r.signed.manifest.chunks == ()


def test_piecewise_stream_gives_same_manifest(tmp_path):
    data = payload(80_000, seed=5)

    class Trickle(io.RawIOBase):
        """Returns at most 777 bytes per read, like a pipe."""

        def __init__(self):
            self.pos = 0

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), 777, len(data) - self.pos)
            b[:n] = data[self.pos : self.pos + n]
            self.pos += n
            return n

    store, catalog = state(tmp_path / "s", tmp_path / "c.sqlite", 1 << 26)
    with catalog:
        a = publish_stream(store, catalog, io.BytesIO(data), name="a", keypair=KEY, now=1.0,
                           chunk_sizes=SIZES)
        b = publish_stream(store, catalog, Trickle(), name="a", keypair=KEY, now=1.0,
                           chunk_sizes=SIZES, block_size=4096)
        assert a.content_id == b.content_id and b.new_chunks == 0


def test_budget_exhaustion_leaves_nothing(tmp_path):
    store, catalog = state(tmp_path / "s", tmp_path / "c.sqlite", 200_000)
    with catalog:
        first = publish_stream(store, catalog, io.BytesIO(payload(60_000, 1)), name="ok",
                               keypair=KEY, now=1.0, chunk_sizes=SIZES)
        before = snapshot(store, catalog)
        with pytest.raises(StorageError, match="budget"):
            publish_stream(store, catalog, io.BytesIO(payload(400_000, 2)), name="big",
                           keypair=KEY, now=2.0, chunk_sizes=SIZES)
        assert snapshot(store, catalog) == before
        assert [r.content_id for r in catalog.items()] == [first.content_id]
        assert not list(catalog._markers())


def test_budget_exhaustion_at_the_manifest(tmp_path):
    data = payload(30_000, 3)
    probe_store, probe_cat = state(tmp_path / "p", tmp_path / "p.sqlite", 1 << 26)
    with probe_cat:
        publish_stream(probe_store, probe_cat, io.BytesIO(data), name="m", keypair=KEY,
                       now=1.0, chunk_sizes=SIZES)
        manifest_bytes = sum(p.stat().st_size for p in probe_store.manifest_dir.rglob("*")
                             if p.is_file())
        chunk_bytes = probe_store.used_bytes - manifest_bytes
    # room for every chunk but not for the manifest file
    store, catalog = state(tmp_path / "s", tmp_path / "c.sqlite", chunk_bytes + 10)
    with catalog:
        with pytest.raises(StorageError, match="budget"):
            publish_stream(store, catalog, io.BytesIO(data), name="m", keypair=KEY, now=1.0,
                           chunk_sizes=SIZES)
        assert store.used_bytes == 0 and list(store) == [] and len(catalog) == 0


def test_file_changing_under_the_publisher(tmp_path):
    store, catalog = state(tmp_path / "s", tmp_path / "c.sqlite", 1 << 26)
    with catalog:
        with pytest.raises(StorageError, match="changed while"):
            publish_stream(store, catalog, io.BytesIO(b"x" * 5000), name="f", size=4000,
                           keypair=KEY, now=1.0, chunk_sizes=SIZES)
        assert list(store) == [] and len(catalog) == 0


def test_read_error_and_bad_arguments(tmp_path):
    store, catalog = state(tmp_path / "s", tmp_path / "c.sqlite", 1 << 26)

    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            raise OSError(5, "Input/output error")

    with catalog:
        with pytest.raises(StorageError, match="cannot read"):
            publish_stream(store, catalog, Broken(), name="f", keypair=KEY, now=1.0)
        with pytest.raises(StorageError, match="cannot read"):
            publish_file(store, catalog, tmp_path / "absent", keypair=KEY, now=1.0)
        with pytest.raises(ValueError, match="block_size"):
            publish_stream(store, catalog, io.BytesIO(b"x"), name="f", keypair=KEY, now=1.0,
                           block_size=10)
        with pytest.raises(ValueError, match="tag"):
            publish_stream(store, catalog, io.BytesIO(b"x"), name="f", keypair=KEY, now=1.0,
                           tags=["bad;tag"])
        assert list(store) == [] and len(catalog) == 0


def test_node_publish_stream_needs_a_name(tmp_path):
    with ContentNode(settings(tmp_path), now=1.0) as node, pytest.raises(ValueError,
                                                                         match="name"):
        node.publish(node.settings.principal("local"), io.BytesIO(b"x"), keypair=KEY, now=1.0)


def test_retention_pins(tmp_path):
    with ContentNode(settings(tmp_path), now=1.0) as node:
        admin = node.settings.principal("local")
        a = node.publish(admin, io.BytesIO(b"a" * 3000), keypair=KEY, now=100.0, name="a",
                         retention="pin-until-expiry", expires=500)
        b = node.publish(admin, io.BytesIO(b"b" * 3000), keypair=KEY, now=100.0, name="b",
                         retention="ttl:1m")
        assert node.catalog.pinned(now=120.0) == sorted([(a.content_id, 500),
                                                         (b.content_id, 160)])
        assert node.catalog.pinned(now=200.0) == [(a.content_id, 500)]


class _Zeros(io.RawIOBase):
    """``size`` bytes of a repeating pseudo-random pattern, generated on the fly."""

    def __init__(self, size: int):
        self.left = size
        self.block = payload(1 << 16, seed=99)
        self.counter = 0

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.left, len(self.block))
        self.counter += 1
        # vary each block so chunks do not deduplicate into nothing
        b[:n] = self.block[:n]
        b[0:8] = self.counter.to_bytes(8, "little")
        self.left -= n
        return n


def test_memory_is_bounded_by_blocks_not_file_size(tmp_path):
    """Python-level allocations stay ~constant when the file grows 4x."""
    peaks = []
    # The pure chunker runs at ~10 MB/s (slower under tracemalloc): smaller files there.
    sizes = (128 << 10, 512 << 10) if BACKEND == "pure" else (2 << 20, 8 << 20)
    for size in sizes:
        store, catalog = state(tmp_path / f"s{size}", tmp_path / f"c{size}.sqlite", 1 << 30)
        with catalog:
            tracemalloc.start()
            publish_stream(store, catalog, _Zeros(size), name="big", keypair=KEY, now=1.0,
                           chunk_sizes=(16384, 65536, 262144), block_size=1 << 16)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        shutil.rmtree(tmp_path / f"s{size}")
    # chunk references grow with the file (~150 bytes each); buffers do not
    assert peaks[1] < peaks[0] + (1 << 20), peaks
    assert peaks[1] < 4 << 20, peaks


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.skipif(shutil.which("mount") is None, reason="mount(8) is not installed")
def test_full_disk_on_a_real_small_filesystem(tmp_path):
    """ENOSPC from a 1 MiB tmpfs (budget far larger): clear error, nothing partial."""
    mnt = tmp_path / "mnt"
    try:
        cm = small_tmpfs(mnt, "1m")
        cm.__enter__()
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot mount tmpfs here: {exc}")
    try:
        # The catalog lives on the big disk; the store fills the tmpfs.
        store, catalog = state(mnt / "store", tmp_path / "c.sqlite", 1 << 30, fsync=True)
        with catalog:
            ok = publish_stream(store, catalog, io.BytesIO(payload(100_000, 1)), name="fits",
                                keypair=KEY, now=1.0, chunk_sizes=SIZES)
            before = snapshot(store, catalog)
            with pytest.raises(StorageError) as info:
                publish_stream(store, catalog, io.BytesIO(payload(3 << 20, 2)), name="huge",
                               keypair=KEY, now=2.0, chunk_sizes=SIZES)
            assert "No space left" in str(info.value) or "disk full" in str(info.value).lower()
            assert snapshot(store, catalog) == before
            leftovers = [p for p in (mnt / "store").rglob(".tmp-*")]
            assert leftovers == []
            assert [r.content_id for r in catalog.items()] == [ok.content_id]
            assert b"".join(store.get(c.digest) for c in ok.signed.manifest.chunks) == payload(
                100_000, 1)
    finally:
        cm.__exit__(None, None, None)


def test_threads_do_not_change_what_is_published(tmp_path):
    data = payload(300_000, seed=8)
    out = []
    for threads in (1, 2):
        store, catalog = state(tmp_path / f"s{threads}", tmp_path / f"c{threads}.sqlite", 1 << 26)
        with catalog:
            r = publish_stream(store, catalog, io.BytesIO(data), name="same", keypair=KEY,
                               now=5.0, chunk_sizes=SIZES, threads=threads)
            files = sorted((p.relative_to(store.root), p.read_bytes())
                           for p in store.root.rglob("*") if p.is_file())
            out.append((r.content_id, r.new_chunks, r.new_bytes, files, store.used_bytes))
    assert out[0] == out[1]
    store, catalog = state(tmp_path / "s0", tmp_path / "c0.sqlite", 1 << 26)
    with catalog, pytest.raises(ValueError, match="threads"):
        publish_stream(store, catalog, io.BytesIO(data), name="x", keypair=KEY, now=5.0,
                       threads=0)


def test_read_ahead_reports_corrupt_chunks_it_did_not_deliver(tmp_path):
    """A reader that stops early still gets corrupt chunks found ahead marked missing."""
    with ContentNode(settings(tmp_path), now=1.0) as node:
        admin = node.settings.principal("local")
        r = node.publish(admin, io.BytesIO(payload(200_000, seed=9)), keypair=KEY, now=2.0,
                         name="doc")
        chunks = node.catalog.chunks_of(r.content_id)
        assert len(chunks) >= 4
        digest = chunks[1][0]
        f = node.store.chunk_path(digest)
        blob = bytearray(f.read_bytes())
        blob[-1] ^= 0x01
        f.write_bytes(bytes(blob))
        it = node.read(admin, r.content_id, now=3.0)
        next(it)  # chunk 0 only; chunk 1 was read (and found corrupt) ahead
        it.close()
        effects = node.drain_effects()
        assert [e.digest for e in effects] == [digest]
        assert node.catalog.chunk_state(digest)[0] is False
        assert len(node.store.quarantined()) == 1
