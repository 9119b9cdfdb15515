"""The chunk store: content addressing, budget, crash and disk-full safety, corruption."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import lz4.block
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from meshcore.content import store as store_mod
from meshcore.content.keys import KeyPair
from meshcore.content.manifest import ChunkRef, Manifest, sign_manifest
from meshcore.content.store import FLAG_LZ4, ChunkStore, decode_chunk_file
from meshcore.errors import DecodeError, IntegrityError, StorageError

HEADER = 24


def b2(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def text_chunk(n: int, seed: int = 0) -> bytes:
    line = b"community mesh news item %d, repeated for compressibility\n" % seed
    return (line * (n // len(line) + 1))[:n]


def random_chunk(n: int, seed: int = 0) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.blake2b(b"%d/%d" % (seed, counter), digest_size=64).digest()
        counter += 1
    return bytes(out[:n])


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in files_under(root))


def temp_files(root: Path) -> list[Path]:
    return [p for p in files_under(root) if p.name.startswith(".tmp-")]


@pytest.fixture
def store(tmp_path) -> ChunkStore:
    return ChunkStore(tmp_path / "store", budget_bytes=1 << 20, fsync=True)


# ---------------------------------------------------------------- basics


def test_put_get_has_delete(store):
    data = random_chunk(5000)
    d = b2(data)
    assert not store.has(d) and d not in store
    assert store.put(d, data) is True
    assert store.has(d)
    assert store.get(d) == data
    assert store.put(d, memoryview(data)) is False  # already there
    path = store.chunk_path(d)
    h = d.hex()
    assert path == store.root / "chunks" / h[:2] / h
    assert store.size_of(d) == path.stat().st_size == HEADER + 5000
    assert list(store) == [d]
    assert store.used_bytes == disk_bytes(store.root)
    assert store.delete(d) == HEADER + 5000
    assert store.delete(d) == 0
    assert not store.has(d) and store.used_bytes == 0
    with pytest.raises(KeyError):
        store.get(d)
    with pytest.raises(KeyError):
        store.size_of(d)


def test_put_verifies_digest_first(store):
    data = random_chunk(100)
    with pytest.raises(IntegrityError, match="does not match"):
        store.put(b2(data + b"x"), data)
    assert files_under(store.root) == [] and store.used_bytes == 0


def test_argument_errors(tmp_path, store):
    with pytest.raises(ValueError, match="digest"):
        store.put(b"short", b"x")
    with pytest.raises(TypeError, match="digest"):
        store.has("ab" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk size"):
        store.put(b2(b""), b"")
    small = ChunkStore(tmp_path / "s", budget_bytes=100, max_chunk_bytes=10)
    with pytest.raises(ValueError, match="chunk size"):
        small.put(b2(b"x" * 11), b"x" * 11)
    with pytest.raises(ValueError, match="budget_bytes"):
        ChunkStore(tmp_path / "t", budget_bytes=-1)
    with pytest.raises(TypeError, match="budget_bytes"):
        ChunkStore(tmp_path / "t", budget_bytes=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_chunk_bytes"):
        ChunkStore(tmp_path / "t", budget_bytes=1, max_chunk_bytes=0)
    with pytest.raises(TypeError, match="max_chunk_bytes"):
        ChunkStore(tmp_path / "t", budget_bytes=1, max_chunk_bytes="1")  # type: ignore[arg-type]
    assert "ChunkStore(" in repr(store)


def test_put_accepts_buffers(store):
    data = random_chunk(300)
    arr = memoryview(bytearray(data)).cast("H")  # a non-byte view of the same bytes
    assert store.put(b2(data), arr)
    assert store.get(b2(data)) == data


def test_compression_where_it_pays(tmp_path):
    s = ChunkStore(tmp_path / "c", budget_bytes=1 << 20)
    text, noise = text_chunk(16384), random_chunk(16384)
    s.put(b2(text), text)
    s.put(b2(noise), noise)
    assert s.size_of(b2(text)) < 16384 // 2
    assert s.size_of(b2(noise)) == HEADER + 16384  # lz4 would not save 1/8
    raw = s.chunk_path(b2(text)).read_bytes()
    flags, raw_size, payload = decode_chunk_file(raw)
    assert flags == FLAG_LZ4 and raw_size == 16384
    assert lz4.block.decompress(bytes(payload), uncompressed_size=raw_size) == text
    assert s.get(b2(text)) == text and s.get(b2(noise)) == noise
    off = ChunkStore(tmp_path / "o", budget_bytes=1 << 20, compress=False)
    off.put(b2(text), text)
    assert off.size_of(b2(text)) == HEADER + 16384
    assert off.get(b2(text)) == text


def test_chunk_file_layout_is_as_documented(store):
    data = random_chunk(1000)
    store.put(b2(data), data)
    raw = store.chunk_path(b2(data)).read_bytes()
    assert raw[:4] == b"MCC1" and raw[4] == 0 and raw[5:8] == b"\0\0\0"
    assert int.from_bytes(raw[8:16], "big") == 1000
    assert int.from_bytes(raw[16:24], "big") == xxhash.xxh3_64_intdigest(raw[:16] + raw[24:])
    assert raw[24:] == data


def test_reopen_counts_and_cleans(tmp_path):
    root = tmp_path / "s"
    s = ChunkStore(root, budget_bytes=1 << 20)
    for i in range(5):
        c = random_chunk(1000 + i, i)
        s.put(b2(c), c)
    used = s.used_bytes
    shard = s.chunk_path(b2(random_chunk(1000, 0))).parent
    (shard / ".tmp-deadbeef-999999999-1").write_bytes(b"partial")  # crashed writer
    (shard / f".tmp-deadbeef-{os.getpid()}-2").write_bytes(b"partial")  # ourselves, earlier
    (shard / "README").write_text("not ours")  # ignored, not counted
    again = ChunkStore(root, budget_bytes=1 << 20)
    assert again.used_bytes == used
    assert again.stale_temp_files == 2
    assert temp_files(root) == []
    assert sorted(again) == sorted(s)


def test_live_writer_temp_file_is_kept(tmp_path):
    root = tmp_path / "s"
    s = ChunkStore(root, budget_bytes=1 << 20)
    c = random_chunk(100)
    s.put(b2(c), c)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = s.chunk_path(b2(c)).parent / f".tmp-0123-{proc.pid}-1"
        live.write_bytes(b"in progress")
        ChunkStore(root, budget_bytes=1 << 20)
        assert live.exists()
    finally:
        proc.kill()
        proc.wait()
    ChunkStore(root, budget_bytes=1 << 20)
    assert not live.exists()


def test_content_name_never_becomes_a_path(tmp_path):
    """A manifest named ../../etc/passwd is stored by digest only, inside the root."""
    kp = KeyPair.generate()
    data = b"root:x:0:0::/root:/bin/sh\n"
    m = Manifest(
        name="../../etc/passwd",
        size=len(data),
        media_type="text/plain",
        chunks=(ChunkRef(b2(data), len(data)),),
        tags=(),
        access="public",
        distribution="on-demand",
        retention=None,
        publisher=kp.public,
        created=1,
        expires=None,
    )
    signed = sign_manifest(m, kp)
    outside = tmp_path / "etc"
    root = tmp_path / "a" / "b" / "store"
    s = ChunkStore(root, budget_bytes=1 << 20)
    s.put(b2(data), data)
    s.write_manifest(signed.content_id, signed.to_bytes())
    assert not outside.exists()
    for p in files_under(tmp_path):
        assert root in p.parents
        assert "passwd" not in str(p)


# ---------------------------------------------------------------- budget


def test_budget_exhaustion_leaves_nothing(tmp_path):
    a, b = random_chunk(600, 1), random_chunk(600, 2)
    s = ChunkStore(tmp_path / "s", budget_bytes=HEADER + 600 + 100)
    assert s.put(b2(a), a)
    with pytest.raises(StorageError, match="budget exhausted") as exc:
        s.put(b2(b), b)
    assert exc.value.path == str(s.chunk_path(b2(b)))
    assert not s.has(b2(b)) and temp_files(s.root) == []
    assert s.used_bytes == HEADER + 600 == disk_bytes(s.root)
    assert s.free_bytes == 100
    s.delete(b2(a))
    assert s.put(b2(b), b)


def test_exact_budget_fits(tmp_path):
    c = random_chunk(1000)
    s = ChunkStore(tmp_path / "s", budget_bytes=HEADER + 1000)
    assert s.put(b2(c), c) and s.free_bytes == 0


class BudgetMachine(RuleBasedStateMachine):
    """Random put/delete/quarantine sequences: the budget is never exceeded, the count is exact."""

    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="mc-store-"))
        self.budget = 40_000
        self.store = ChunkStore(self.dir, budget_bytes=self.budget, fsync=False)
        self.held: dict[bytes, bytes] = {}

    @rule(size=st.integers(1, 9000), seed=st.integers(0, 50), text=st.booleans())
    def put(self, size, seed, text):
        data = text_chunk(size, seed) if text else random_chunk(size, seed)
        d = b2(data)
        try:
            added = self.store.put(d, data)
        except StorageError as exc:
            assert "budget" in str(exc)
            assert d not in self.held
            return
        assert added == (d not in self.held)
        self.held[d] = data

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 100))
    def delete(self, i):
        d = sorted(self.held)[i % len(self.held)]
        assert self.store.delete(d) > 0
        del self.held[d]

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 100))
    def get(self, i):
        d = sorted(self.held)[i % len(self.held)]
        assert self.store.get(d) == self.held[d]

    @rule()
    def purge(self):
        self.store.purge_quarantine()

    @invariant()
    def within_budget(self):
        on_disk = disk_bytes(self.dir)
        assert on_disk == self.store.used_bytes <= self.budget
        assert set(self.store) == set(self.held)

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)


TestBudget = BudgetMachine.TestCase
TestBudget.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)


# ------------------------------------------------------- full disk, I/O errors


@pytest.mark.parametrize(
    ("err", "text"),
    [
        (errno.ENOSPC, "disk full"),
        (errno.EDQUOT, "quota"),
        (errno.EIO, "I/O error"),
        (errno.EROFS, "read-only"),
        (errno.EPERM, "Operation not permitted"),
    ],
)
def test_write_error_leaves_nothing(store, monkeypatch, err, text):
    keep = random_chunk(500, 9)
    store.put(b2(keep), keep)
    before = files_under(store.root)
    used = store.used_bytes

    def failing_write(fd, buffers):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(store_mod.os, "writev", failing_write)
    c = random_chunk(3000)
    with pytest.raises(StorageError, match=text) as exc:
        store.put(b2(c), c)
    assert exc.value.path == str(store.chunk_path(b2(c)))
    assert files_under(store.root) == before
    assert store.used_bytes == used and not store.has(b2(c))
    monkeypatch.undo()
    assert store.put(b2(c), c) and store.get(b2(c)) == c


@pytest.mark.parametrize("step", [7, 24, 30])
def test_short_writes_are_completed(store, monkeypatch, step):
    # header (24 bytes) + payload in one writev; the kernel may take any prefix
    real_writev = os.writev
    asked = []  # bytes offered to each writev call

    def dribble(fd, buffers):
        data = b"".join(bytes(b) for b in buffers)
        asked.append(len(data))
        return real_writev(fd, [data[:step]])

    monkeypatch.setattr(store_mod.os, "writev", dribble)
    c = random_chunk(100)
    store.put(b2(c), c)
    monkeypatch.undo()
    assert store.get(b2(c)) == c
    # The patch fired and the store resumed after every short write, each time
    # offering exactly what was still unwritten, until the whole file was on disk.
    size = store.chunk_path(b2(c)).stat().st_size
    assert asked == list(range(size, 0, -step)) and len(asked) > 1


def test_zero_write_is_an_error(store, monkeypatch):
    monkeypatch.setattr(store_mod.os, "writev", lambda fd, buffers: 0)
    c = random_chunk(100)
    with pytest.raises(StorageError, match="no progress"):
        store.put(b2(c), c)
    assert temp_files(store.root) == []


@pytest.mark.parametrize("where", ["fsync", "rename", "dirsync", "open", "mkdir"])
def test_failure_at_each_step(store, monkeypatch, where):
    c = random_chunk(2000)
    boom = OSError(errno.EIO, "Input/output error")
    real_fsync = os.fsync
    if where == "fsync":
        monkeypatch.setattr(store_mod.os, "fsync", lambda fd: (_ for _ in ()).throw(boom))
    elif where == "rename":
        monkeypatch.setattr(store_mod.os, "rename", lambda a, b: (_ for _ in ()).throw(boom))
    elif where == "dirsync":

        def fsync_files_only(fd):
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                raise boom
            real_fsync(fd)

        monkeypatch.setattr(store_mod.os, "fsync", fsync_files_only)
    elif where == "open":
        monkeypatch.setattr(store_mod.os, "open", lambda *a, **k: (_ for _ in ()).throw(boom))
    else:
        # shard folders are made at open; one removed behind the store's back
        # must be made again on the write path
        shard = str(store.chunk_path(b2(c)).parent)
        os.rmdir(shard)
        store._known_dirs.discard(shard)
        monkeypatch.setattr(store_mod.os, "mkdir", lambda *a, **k: (_ for _ in ()).throw(boom))
    with pytest.raises(StorageError, match="I/O error"):
        store.put(b2(c), c)
    monkeypatch.undo()
    assert files_under(store.root) == [] and store.used_bytes == 0


def test_open_makes_every_shard_folder_once(tmp_path, monkeypatch):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 20)
    assert sorted(p.name for p in s.chunk_dir.iterdir()) == [f"{i:02x}" for i in range(256)]
    made = []
    real_mkdir = os.mkdir
    monkeypatch.setattr(store_mod.os, "mkdir", lambda p, *a: made.append(p) or real_mkdir(p, *a))
    ChunkStore(tmp_path / "s", budget_bytes=1 << 20)  # reopening makes none
    assert made == []
    (s.chunk_dir / "7f").rmdir()
    ChunkStore(tmp_path / "s", budget_bytes=1 << 20)
    assert made == [f"{s.chunk_dir}/7f"]


def test_open_reports_a_folder_it_cannot_make(tmp_path, monkeypatch):
    boom = OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(store_mod.os, "mkdir", lambda *a, **k: (_ for _ in ()).throw(boom))
    with pytest.raises(StorageError, match="cannot open the chunk store: file system is read-only"):
        ChunkStore(tmp_path / "s", budget_bytes=1 << 20)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.skipif(shutil.which("mount") is None, reason="no mount(8)")
def test_real_enospc_on_small_tmpfs(tmp_path):
    """A 1 MiB tmpfs fills up: the error is clear, nothing partial remains (~0.5 s)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {proc.stderr.strip()}")
    try:
        s = ChunkStore(mnt / "store", budget_bytes=64 << 20)  # budget far above the disk
        stored = {}
        with pytest.raises(StorageError, match="disk full") as exc:
            for i in range(400):
                c = random_chunk(16384, i)
                s.put(b2(c), c)
                stored[b2(c)] = c
        assert "ENOSPC" in str(exc.value)
        assert len(stored) > 10
        assert temp_files(mnt) == []
        assert s.used_bytes == disk_bytes(mnt / "store")
        for d, c in stored.items():
            assert s.get(d) == c
        # after freeing space the same store works again
        first = next(iter(stored))
        s.delete(first)
        s.delete(next(iter(list(stored)[1:])))
        c = random_chunk(16384, 10_000)
        assert s.put(b2(c), c)
        # and a batch that hits the wall leaves nothing either
        with pytest.raises(StorageError, match="disk full"), s.batch():
            for i in range(100):
                c = random_chunk(16384, 20_000 + i)
                s.put(b2(c), c)
        assert temp_files(mnt) == []
        assert s.used_bytes == disk_bytes(mnt / "store")
        assert ChunkStore(mnt / "store", budget_bytes=64 << 20).used_bytes == s.used_bytes
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# ---------------------------------------------------------------- batches


def test_batch_defers_visibility(store):
    chunks = [random_chunk(1000, i) for i in range(20)]
    with store.batch():
        for c in chunks:
            assert store.put(b2(c), c)
        assert all(store.has(b2(c)) for c in chunks)  # pending counts as present
        assert not store.put(b2(chunks[0]), chunks[0])
        assert not store.chunk_path(b2(chunks[0])).exists()  # not visible yet
        assert store.size_of(b2(chunks[1])) == HEADER + 1000
        with store.batch():  # nested joins the outer
            c = random_chunk(10, 99)
            store.put(b2(c), c)
        assert store.get(b2(chunks[2])) == chunks[2]  # get flushes first
    for c in chunks:
        assert store.chunk_path(b2(c)).exists()
    assert temp_files(store.root) == []
    assert store.used_bytes == disk_bytes(store.root)


def test_batch_exception_discards(store):
    keep = random_chunk(100, 1)
    store.put(b2(keep), keep)
    with pytest.raises(RuntimeError), store.batch():
        c = random_chunk(1000, 2)
        store.put(b2(c), c)
        raise RuntimeError("publisher gave up")
    assert not store.has(b2(c))
    assert temp_files(store.root) == []
    assert store.used_bytes == disk_bytes(store.root) == HEADER + 100


def test_batch_autoflush(store, monkeypatch):
    monkeypatch.setattr(store_mod, "BATCH_MAX_FILES", 3)
    with store.batch():
        cs = [random_chunk(100, i) for i in range(4)]
        for c in cs:
            store.put(b2(c), c)
        assert store.chunk_path(b2(cs[2])).exists()
        assert not store.chunk_path(b2(cs[3])).exists()
        store.delete(b2(cs[3]))  # deleting a pending chunk flushes it first
        store.quarantine(b2(cs[0]), "test")
    assert not store.has(b2(cs[3]))


@pytest.mark.parametrize("syncfs", [True, False])
def test_batch_flush_failure_leaves_nothing(store, monkeypatch, syncfs):
    if not syncfs:
        monkeypatch.setattr(store_mod, "_syncfs", None)
    keep = random_chunk(100, 1)
    store.put(b2(keep), keep)
    real_rename = os.rename
    calls = []

    def flaky_rename(a, b):
        calls.append(a)
        if len(calls) == 5:
            raise OSError(errno.EIO, "Input/output error")
        real_rename(a, b)

    monkeypatch.setattr(store_mod.os, "rename", flaky_rename)
    with pytest.raises(StorageError, match="batch of 12 files"), store.batch():
        for i in range(12):
            c = random_chunk(500, 100 + i)
            store.put(b2(c), c)
    monkeypatch.undo()
    assert [d for d in store] == [b2(keep)]
    assert temp_files(store.root) == []
    assert store.used_bytes == disk_bytes(store.root)


def test_batch_write_error_inside(store, monkeypatch):
    with pytest.raises(StorageError, match="disk full"), store.batch():
        a = random_chunk(100, 1)
        store.put(b2(a), a)
        monkeypatch.setattr(
            store_mod.os, "writev", lambda fd, d: (_ for _ in ()).throw(OSError(errno.ENOSPC, "x"))
        )
        b = random_chunk(100, 2)
        store.put(b2(b), b)
    monkeypatch.undo()
    assert list(store) == [] and temp_files(store.root) == [] and store.used_bytes == 0


def test_batch_without_fsync_and_small_batches(tmp_path, monkeypatch):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 20, fsync=False)
    with s.batch():
        c = random_chunk(100)
        s.put(b2(c), c)
    assert s.get(b2(c)) == c
    synced = []
    s2 = ChunkStore(tmp_path / "t", budget_bytes=1 << 20)
    monkeypatch.setattr(store_mod, "_syncfs", lambda fd: synced.append(fd))
    with s2.batch():  # few files: per-file fsync, no syncfs
        s2.put(b2(c), c)
    assert synced == []
    with s2.batch():  # many files: one syncfs for data, one for folders
        for i in range(10):
            d = random_chunk(50, i)
            s2.put(b2(d), d)
    assert len(synced) == 2


# ---------------------------------------------------------------- corruption


def corrupt(path: Path, how: str) -> None:
    raw = bytearray(path.read_bytes())
    if how == "flip":
        raw[len(raw) // 2 + 10] ^= 0x10
    elif how == "truncate":
        raw = raw[: len(raw) - 7]
    elif how == "header":
        raw[9] ^= 0x01  # raw size
    elif how == "magic":
        raw[0:4] = b"XXXX"
    elif how == "empty":
        raw = bytearray()
    elif how == "flags":
        raw[4] = 0x80
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["flip", "truncate", "header", "magic", "empty", "flags"])
@pytest.mark.parametrize("kind", ["text", "random"])
def test_corrupt_chunk_quarantined(store, how, kind):
    data = text_chunk(8000) if kind == "text" else random_chunk(8000)
    d = b2(data)
    store.put(d, data)
    used = store.used_bytes
    corrupt(store.chunk_path(d), how)
    assert not store.check_fast(d)
    with pytest.raises(IntegrityError) as exc:
        store.get(d, full=how == "flip")  # the fast read catches all of these too
    assert exc.value.digest == d
    assert "quarantined" in str(exc.value)
    assert not store.has(d)
    [(qpath, reason)] = store.quarantined()
    assert qpath.name == d.hex() + ".0" and reason
    assert Path(str(qpath) + ".reason").read_text().strip() == reason
    # bytes still count until purged; a file truncated behind the store's back
    # is counted at its old size until the next open (an over-count: the budget holds)
    if how not in ("truncate", "empty"):
        assert store.used_bytes == used + len(reason) + 1  # the reason file and its newline
    assert store.used_bytes >= disk_bytes(store.root)
    assert ChunkStore(store.root, budget_bytes=1 << 20).used_bytes == disk_bytes(store.root)
    assert store.purge_quarantine() > 0
    assert disk_bytes(store.root) == 0 <= store.used_bytes
    assert ChunkStore(store.root, budget_bytes=1 << 20).used_bytes == 0


def test_corruption_that_only_blake2b_sees(store):
    """A file with a valid header and checksum but the wrong content (not bit rot)."""
    data = random_chunk(1000)
    d = b2(data)
    store.put(d, data)
    other = random_chunk(1000, 7)
    store.chunk_path(d).write_bytes(store_mod.encode_chunk_header(0, 1000, other) + other)
    assert store.check_fast(d)
    assert store.check(d, full=True) == "content does not match its BLAKE2b-256 digest"
    assert store.get(d, full=False) == other  # the fast read trusts the checksum
    with pytest.raises(IntegrityError, match="BLAKE2b"):
        store.get(d)


def test_bad_lz4_payload(store):
    data = text_chunk(5000)
    d = b2(data)
    store.put(d, data)
    junk = b"\xff" * 40
    store.chunk_path(d).write_bytes(store_mod.encode_chunk_header(FLAG_LZ4, 5000, junk) + junk)
    assert store.check(d, full=True).startswith("chunk file: lz4")
    # lz4 decodes a valid block of a different length
    short = lz4.block.compress(b"a" * 100, store_size=False)
    store.chunk_path(d).write_bytes(store_mod.encode_chunk_header(FLAG_LZ4, 5000, short) + short)
    assert "decompress" in store.check(d, full=True) or "lz4" in store.check(d, full=True)


def test_quarantine_twice_and_missing(store):
    data = random_chunk(100)
    d = b2(data)
    for n in range(2):
        store.put(d, data)
        q = store.quarantine(d, f"round {n}")
        assert q.name == f"{d.hex()}.{n}"
    with pytest.raises(KeyError):
        store.quarantine(d, "gone")
    assert [r for _, r in store.quarantined()] == ["round 0", "round 1"]
    assert store.check(d) == "missing" and not store.check_fast(d)


def test_quarantine_when_budget_full_still_moves(tmp_path):
    data = random_chunk(100)
    s = ChunkStore(tmp_path / "s", budget_bytes=HEADER + 100)
    s.put(b2(data), data)
    q = s.quarantine(b2(data), "a reason that does not fit in the budget")
    assert q.exists() and Path(str(q) + ".reason").read_bytes() == b""
    assert s.used_bytes == HEADER + 100 <= s.budget_bytes


def test_quarantine_failure_reported(store, monkeypatch):
    data = random_chunk(100)
    d = b2(data)
    store.put(d, data)
    corrupt(store.chunk_path(d), "flip")
    monkeypatch.setattr(
        store_mod.os, "rename", lambda a, b: (_ for _ in ()).throw(OSError(errno.EIO, "x"))
    )
    with pytest.raises(IntegrityError, match="could not quarantine"):
        store.get(d)


def test_read_errors(store, monkeypatch):
    data = random_chunk(100)
    d = b2(data)
    store.put(d, data)
    real_open = os.open

    def failing_open(path, *a, **k):
        if str(path).endswith(d.hex()):
            raise OSError(errno.EIO, "Input/output error")
        return real_open(path, *a, **k)

    monkeypatch.setattr(store_mod.os, "open", failing_open)
    with pytest.raises(StorageError, match="cannot read"):
        store.get(d)
    monkeypatch.undo()
    real_read = os.read
    monkeypatch.setattr(store_mod.os, "read", lambda fd, n: real_read(fd, min(n, 10)))
    assert store.get(d) == data  # short reads are completed
    calls = []

    def shrinking(fd, n):  # the file is cut short while we read it
        calls.append(n)
        return real_read(fd, 10) if len(calls) == 1 else b""

    monkeypatch.setattr(store_mod.os, "read", shrinking)
    assert not store.check_fast(d)


def test_delete_error(store, monkeypatch):
    data = random_chunk(100)
    store.put(b2(data), data)
    monkeypatch.setattr(
        store_mod.os, "unlink", lambda p: (_ for _ in ()).throw(OSError(errno.EROFS, "ro"))
    )
    with pytest.raises(StorageError, match="read-only"):
        store.delete(b2(data))


def test_open_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="cannot open the chunk store"):
        ChunkStore(tmp_path / "file" / "store", budget_bytes=10)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_decode_chunk_file_never_crashes(raw):
    for data in (raw, b"MCC1" + raw, b"MCC1\x01\0\0\0" + raw):
        with contextlib.suppress(DecodeError):
            decode_chunk_file(data)


# ---------------------------------------------------------------- manifests


def signed_manifest(kp: KeyPair, name: str = "a.txt"):
    data = b"hello"
    m = Manifest(
        name=name,
        size=5,
        media_type="text/plain",
        chunks=(ChunkRef(b2(data), 5),),
        tags=("x",),
        access="public",
        distribution="on-demand",
        retention=None,
        publisher=kp.public,
        created=10,
        expires=None,
    )
    return sign_manifest(m, kp)


def test_manifest_files(store):
    kp = KeyPair.generate()
    sm = signed_manifest(kp)
    raw = sm.to_bytes()
    cid = sm.content_id
    assert not store.has_manifest(cid)
    assert store.write_manifest(cid, raw) is True
    assert store.write_manifest(cid, bytearray(raw)) is False
    h = cid.hex()
    assert store.manifest_path(cid) == store.root / "manifests" / h[:2] / h
    assert store.read_manifest(cid) == raw
    assert list(store.iter_manifests()) == [cid]
    assert store.used_bytes == len(raw) == disk_bytes(store.root)
    other = signed_manifest(kp, "b.txt")
    with pytest.raises(IntegrityError, match="content id"):
        store.write_manifest(other.content_id, raw)
    with pytest.raises(DecodeError):
        store.write_manifest(cid, b"garbage")
    with pytest.raises(TypeError):
        store.write_manifest(cid, "text")  # type: ignore[arg-type]
    assert store.delete_manifest(cid) == len(raw)
    with pytest.raises(KeyError):
        store.read_manifest(cid)
    assert store.used_bytes == 0


def test_manifest_write_flushes_batch_first(store):
    kp = KeyPair.generate()
    sm = signed_manifest(kp)
    with store.batch():
        store.put(b2(b"hello"), b"hello")
        assert not store.chunk_path(b2(b"hello")).exists()
        store.write_manifest(sm.content_id, sm.to_bytes())
        # the chunk became durable and visible before the manifest
        assert store.chunk_path(b2(b"hello")).exists()
        assert store.manifest_path(sm.content_id).exists()
    assert store.used_bytes == disk_bytes(store.root)


def test_manifest_budget(tmp_path):
    kp = KeyPair.generate()
    sm = signed_manifest(kp)
    s = ChunkStore(tmp_path / "s", budget_bytes=10)
    with pytest.raises(StorageError, match="budget"):
        s.write_manifest(sm.content_id, sm.to_bytes())
    assert files_under(s.root) == []


# ---------------------------------------------------------------- rare paths


def test_dir_fsync_failure_takes_the_file_back(store, monkeypatch):
    c = random_chunk(700)
    folder = str(store.chunk_path(b2(c)).parent)
    store._ensure_dir(folder)  # folders exist: only the final folder sync can fail
    real_fsync = os.fsync

    def fsync_files_only(fd):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(store_mod.os, "fsync", fsync_files_only)
    with pytest.raises(StorageError, match="I/O error"):
        store.put(b2(c), c)
    monkeypatch.undo()
    assert files_under(store.root) == [] and store.used_bytes == 0


def test_interrupt_during_write_leaves_nothing(store, monkeypatch):
    def interrupted(fd, buffers):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_mod.os, "writev", interrupted)
    c = random_chunk(100)
    with pytest.raises(KeyboardInterrupt):
        store.put(b2(c), c)
    monkeypatch.undo()
    assert files_under(store.root) == [] and store.used_bytes == 0


def test_syncfs_reports_errors():
    if store_mod._syncfs is None:
        pytest.skip("syncfs(2) is not reachable through ctypes here")
    with pytest.raises(OSError) as exc:
        store_mod._syncfs(-1)
    assert exc.value.errno == errno.EBADF


def test_quarantine_pending_and_reason_problems(store, monkeypatch):
    a, b = random_chunk(100, 1), random_chunk(100, 2)
    with store.batch():
        store.put(b2(a), a)
        store.quarantine(b2(a), "pending when quarantined")  # flushes first
    assert [r for _, r in store.quarantined()] == ["pending when quarantined"]
    Path(str(store.quarantined()[0][0]) + ".reason").unlink()
    assert store.quarantined()[0][1] == ""
    store.put(b2(b), b)
    real_open = open

    def no_reason_files(path, *args, **kwargs):
        if str(path).endswith(".reason"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_reason_files)
    q = store.quarantine(b2(b), "disk full for the reason")
    monkeypatch.undo()
    assert q.exists() and not Path(str(q) + ".reason").exists()


def test_odd_temp_names_and_missing_folders(tmp_path):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 20)
    c = random_chunk(100)
    s.put(b2(c), c)
    odd = s.chunk_path(b2(c)).parent / ".tmp-garbage"
    odd.write_bytes(b"x")
    huge = s.chunk_path(b2(c)).parent / f".tmp-ab-{10**30}-1"
    huge.write_bytes(b"x")
    ChunkStore(tmp_path / "s", budget_bytes=1 << 20)
    assert not odd.exists() and not huge.exists()
    shutil.rmtree(s.chunk_dir)
    assert list(s) == []


def test_add_hashes_local_data_once(store, monkeypatch):
    calls = []
    real = store_mod.blake2b_256

    def counting(data):
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(store_mod, "blake2b_256", counting)
    data = text_chunk(4000)
    digest, added = store.add(data)
    assert digest == b2(data) and added and calls == [4000]
    assert store.add(bytearray(data)) == (digest, False)
    assert store.get(digest) == data
    with pytest.raises(ValueError, match="chunk size"):
        store.add(b"")


WRITER = r"""
import hashlib, sys
from meshcore.content.store import ChunkStore
root, batch = sys.argv[1], sys.argv[2] == "1"
s = ChunkStore(root, budget_bytes=1 << 30)
print("ready", flush=True)
i = 0
while True:
    with (s.batch() if batch else open("/dev/null")):
        for _ in range(20):
            data = hashlib.shake_256(b"%d" % i).digest(3000 + i % 5000)
            s.put(hashlib.blake2b(data, digest_size=32).digest(), data)
            i += 1
"""


def _finished_chunks(root: Path) -> set[str]:
    """Names of the chunk files in their final place (no temp files)."""
    chunk_dir = root / "chunks"
    if not chunk_dir.is_dir():
        return set()
    return {p.name for p in chunk_dir.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")}


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_sigkill_while_writing_leaves_a_clean_store(tmp_path, batch, delay):
    """SIGKILL at an arbitrary point: the store reopens clean, every chunk complete (~1 s)."""
    import time

    root = tmp_path / "s"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), "1" if batch else "0"],
        stdout=subprocess.PIPE,
        env=env,
    ) as proc:
        try:
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(delay)
            # The kill must land while chunks are being written, not before the first:
            # a store left empty would pass every check below.
            deadline = time.monotonic() + 30
            while not _finished_chunks(root):
                assert time.monotonic() < deadline, "the writer finished no chunk in 30 s"
                time.sleep(0.005)
        finally:
            proc.kill()
            proc.wait()
    before_reopen = _finished_chunks(root)
    s = ChunkStore(root, budget_bytes=1 << 30)
    assert temp_files(root) == []
    assert s.used_bytes == disk_bytes(root)
    digests = list(s)
    # every chunk that reached its final name before the kill survives the reopen
    assert {d.hex() for d in digests} >= before_reopen and before_reopen
    for d in digests:
        assert s.get(d)  # complete and verified, or get() would raise
    assert not s.quarantined()


# ---------------------------------------------------------------- pipelines


@pytest.mark.parametrize("threads", [1, 2])
def test_add_many_keeps_order_and_dedups(tmp_path, threads):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=True)
    old = text_chunk(5000, 99)
    s.put(b2(old), old)
    # duplicates inside the stream land in the same window (staged concurrently)
    chunks = [random_chunk(30_000 + i, i) for i in range(6)]
    stream = [chunks[0], chunks[1], chunks[0], old, chunks[2], chunks[0], *chunks[3:]]
    got = list(s.add_many(stream, threads=threads, window=4))
    assert [d for d, _n, _f in got] == [b2(c) for c in stream]
    assert [n for _d, n, _f in got] == [len(c) for c in stream]
    assert [f for _d, _n, f in got] == [True, True, False, False, True, False, True, True, True]
    assert temp_files(s.root) == []
    assert all(s.get(b2(c)) == c for c in stream)
    # each chunk counted once, exactly what is on disk
    assert s.used_bytes == disk_bytes(s.root)
    assert ChunkStore(tmp_path / "s", budget_bytes=1 << 22).used_bytes == s.used_bytes


def test_add_many_results_match_add(tmp_path):
    chunks = [text_chunk(40_000, 1), random_chunk(40_000, 2), text_chunk(100, 3)]
    a = ChunkStore(tmp_path / "a", budget_bytes=1 << 22, fsync=False)
    b = ChunkStore(tmp_path / "b", budget_bytes=1 << 22, fsync=False)
    many = list(a.add_many(chunks, threads=2))
    one = [b.add(c) for c in chunks]
    assert [(d, f) for d, _n, f in many] == one
    for c in chunks:
        assert a.chunk_path(b2(c)).read_bytes() == b.chunk_path(b2(c)).read_bytes()


def test_add_many_is_invisible_until_the_batch_flushes(tmp_path):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=True)
    with s.batch():
        got = list(s.add_many([random_chunk(20_000, i) for i in range(3)], threads=2))
        assert all(s.has(d) for d, _n, _f in got)  # pending counts as present
        assert not any(s.chunk_path(d).exists() for d, _n, _f in got)
    assert all(s.chunk_path(d).exists() for d, _n, _f in got)


@pytest.mark.parametrize("threads", [1, 2])
def test_add_many_budget_error_mid_stream_leaves_nothing(tmp_path, threads):
    s = ChunkStore(tmp_path / "s", budget_bytes=100_000, fsync=True)
    keep = text_chunk(500, 7)
    s.put(b2(keep), keep)
    before, used = files_under(s.root), s.used_bytes
    stream = [random_chunk(30_000, i) for i in range(8)]  # 240 kB > budget
    with pytest.raises(StorageError, match="budget exhausted"):
        for _ in s.add_many(stream, threads=threads, window=4):
            pass
    assert files_under(s.root) == before and s.used_bytes == used


def test_add_many_closed_early_leaves_nothing(tmp_path):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=True)
    gen = s.add_many((random_chunk(20_000, i) for i in range(20)), threads=2, window=6)
    next(gen)
    gen.close()
    assert files_under(s.root) == [] and s.used_bytes == 0


def test_add_many_write_error_in_a_worker(tmp_path, monkeypatch):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=True)
    real = os.writev
    calls = [0]

    def fail_third(fd, buffers):
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, buffers)

    monkeypatch.setattr(store_mod.os, "writev", fail_third)
    with pytest.raises(StorageError, match="disk full"):
        list(s.add_many([random_chunk(20_000, i) for i in range(10)], threads=2, window=4))
    monkeypatch.undo()
    assert files_under(s.root) == [] and s.used_bytes == 0


def test_add_many_autoflush_inside(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "BATCH_MAX_FILES", 3)
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=True)
    got = list(s.add_many([random_chunk(5000, i) for i in range(10)], threads=2, window=4))
    assert all(f for _d, _n, f in got) and len(files_under(s.root)) == 10
    assert temp_files(s.root) == []


def test_incompressible_chunks_are_probed_not_compressed(tmp_path, monkeypatch):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=False)
    sizes = []
    real = lz4.block.compress
    monkeypatch.setattr(store_mod.lz4.block, "compress",
                        lambda data, **kw: sizes.append(len(data)) or real(data, **kw))
    rnd = random_chunk(200_000, 1)
    s.put(b2(rnd), rnd)
    assert sizes == [4096] * 3  # three samples, no full attempt
    assert decode_chunk_file(s.chunk_path(b2(rnd)).read_bytes())[0] == 0
    sizes.clear()
    txt = text_chunk(200_000, 2)
    s.put(b2(txt), txt)
    assert sizes == [4096] * 3 + [200_000]
    assert decode_chunk_file(s.chunk_path(b2(txt)).read_bytes())[0] == FLAG_LZ4
    sizes.clear()
    small = random_chunk(20_000, 3)  # below the probe size: one full attempt
    s.put(b2(small), small)
    assert sizes == [20_000]
    assert s.get(b2(rnd)) == rnd and s.get(b2(txt)) == txt and s.get(b2(small)) == small


def test_probe_samples_start_middle_and_end(tmp_path):
    # compressible only in the middle third: the middle sample alone saves enough
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=False)
    n = 120_000
    data = random_chunk(n // 3, 1) + bytes(n - 2 * (n // 3)) + random_chunk(n // 3, 2)
    s.put(b2(data), data)
    flags, _raw, payload = decode_chunk_file(s.chunk_path(b2(data)).read_bytes())
    assert flags == FLAG_LZ4 and len(payload) < n * 0.7
    assert s.get(b2(data)) == data


@pytest.mark.parametrize("threads", [1, 2])
def test_get_many_in_order_and_reports_the_bad_one(tmp_path, threads):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=False)
    chunks = [random_chunk(10_000, i) for i in range(6)]
    for c in chunks:
        s.put(b2(c), c)
    bad = s.chunk_path(b2(chunks[2]))
    raw = bytearray(bad.read_bytes())
    raw[-1] ^= 1
    bad.write_bytes(bytes(raw))
    missing = b2(b"never stored")
    out = list(s.get_many([b2(c) for c in chunks] + [missing], threads=threads, window=3))
    assert [d for d, _f in out] == [b2(c) for c in chunks] + [missing]
    for i, (_d, fut) in enumerate(out[:6]):
        if i == 2:
            with pytest.raises(IntegrityError) as exc:
                fut.result()
            assert exc.value.digest == b2(chunks[2])
        else:
            assert fut.result() == chunks[i]
    with pytest.raises(KeyError):
        out[6][1].result()
    assert [p.name for p, _r in s.quarantined()] == [f"{b2(chunks[2]).hex()}.0"]


def test_get_many_abandoned_reports_what_it_read_ahead(tmp_path):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=False)
    chunks = [random_chunk(10_000, i) for i in range(5)]
    for c in chunks:
        s.put(b2(c), c)
    seen = []
    gen = s.get_many([b2(c) for c in chunks], threads=2, window=4,
                     abandoned=lambda d, fut: seen.append((d, fut.result())))
    _d0, f0 = next(gen)
    gen.close()
    assert f0.result() == chunks[0]
    assert seen and all(data == chunks[[b2(c) for c in chunks].index(d)] for d, data in seen)
    with pytest.raises(ValueError, match="digest"):
        list(s.get_many([b"short"]))


def test_add_many_background_flush_failure_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "BATCH_MAX_FILES", 3)
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=True)
    keep = text_chunk(700, 5)
    s.put(b2(keep), keep)
    before, used = files_under(s.root), s.used_bytes
    real = ChunkStore._sync_files

    def failing(self, paths):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(ChunkStore, "_sync_files", failing)
    with pytest.raises(StorageError, match="I/O error"):
        list(s.add_many([random_chunk(5000, i) for i in range(10)], threads=2, window=2))
    monkeypatch.setattr(ChunkStore, "_sync_files", real)
    assert files_under(s.root) == before and s.used_bytes == used


def test_add_many_dedups_across_a_background_flush(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "BATCH_MAX_FILES", 2)
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=True)
    a, b, c = (random_chunk(9000, i) for i in range(3))
    release = __import__("threading").Event()
    real = ChunkStore._flush_items

    def slow_flush(self, items):
        release.wait(5)  # hold the background flush while `a` comes again
        real(self, items)

    monkeypatch.setattr(ChunkStore, "_flush_items", slow_flush)
    gen = s.add_many([a, b, a, c], threads=1)
    got = [next(gen), next(gen)]  # a, b committed: background flush started, held
    assert s._flushing is not None and s.has(b2(a)) and s.size_of(b2(a)) > 0
    got.append(next(gen))  # a again: present while being flushed
    release.set()
    got += list(gen)
    assert [f for _d, _n, f in got] == [True, True, False, True]
    assert s.used_bytes == disk_bytes(s.root) and temp_files(s.root) == []


def test_batch_write_into_a_removed_shard_folder(tmp_path):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 22, fsync=True)
    c = random_chunk(3000, 4)
    shard = s.chunk_path(b2(c)).parent
    shard.rmdir()
    s._known_dirs.discard(str(shard))
    with s.batch():
        s.put(b2(c), c)
    assert s.get(b2(c)) == c and shard.is_dir()
