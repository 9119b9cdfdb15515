"""The chunk store: content-addressed files that survive power cuts and full disks.

Theory of operation (docs/content/format.md has the byte layout).

* **Names.** A chunk lives at ``chunks/ab/<64 hex digits>`` where ``ab`` is
  the first byte of its BLAKE2b-256 digest; a signed manifest at
  ``manifests/ab/<hex content id>``. One level of 256 folders, as git's
  loose objects and IPFS's flatfs: a second level (65,536 folders) would,
  in a router-sized store of some 10^4..10^5 chunks, hold about one chunk per
  folder, cost one mkdir per chunk written and one 4 KiB folder block per
  16 KiB chunk on ext4, outside any budget (docs/content/format.md). Only
  digests ever become paths, so a content name such as ``../../etc/passwd``
  cannot touch the file system.
* **Verified before stored.** :meth:`ChunkStore.put` hashes the bytes once and
  refuses them (:class:`IntegrityError`) unless they match the digest: a peer
  cannot poison the store. :meth:`ChunkStore.get` checks the header's xxh3-64
  and the BLAKE2b digest again, and quarantines a file that fails.
* **Crash safety.** A file is written to ``.tmp-*`` in its final folder,
  fsynced, renamed over its final name (atomic in POSIX), and the folder is
  fsynced. A power cut leaves either no file or a complete one, plus perhaps a
  stale temp file, which :class:`ChunkStore` deletes when it opens. In a
  :meth:`ChunkStore.batch`, the fsyncs of many chunks are grouped (all temp
  files made durable, then all renamed, then the folders made durable) and
  the batch is flushed before any manifest is written, so the order "chunks
  durable, then the manifest that lists them" holds either way.
* **Budget.** ``used_bytes`` is the sum of the sizes of the files the store
  keeps (chunk files with their 24-byte header, manifest files, quarantined
  files); it is computed by a scan at open and kept up to date after. A write
  reserves its exact size first and is refused with :class:`StorageError`
  when the reservation would pass ``budget_bytes``; so the budget is never
  exceeded, even by a write in progress.
* **Full disk.** ENOSPC, EDQUOT, EIO or any other OSError during a write
  removes the temp file, releases the reservation and raises
  :class:`StorageError` naming the file: nothing partial remains.
* **Compression.** With ``compress=True`` a chunk is stored as an lz4 block
  when that saves at least 1/8 of its size (below that, decompressing on
  every read costs routers more CPU than the space is worth). A chunk of
  24 KiB or more is first probed: three 4 KiB samples (start, middle, end)
  are compressed, and when together they save less than 1/16 the chunk is
  stored raw without compressing the rest (compressed media, the common
  case for large files, then cost about 5 % of a full attempt).
* **Pipelines.** :meth:`ChunkStore.add_many` (publishing) hashes, compresses
  and writes the temp files of the next few chunks on worker threads
  (hashlib's BLAKE2b, lz4 and file writes release the GIL) while the caller
  reads and chunks the input; temp files are registered in the batch in input
  order by the calling thread, so the crash-safety rules above are unchanged
  (nothing is renamed before the batch flush makes it durable).
  :meth:`ChunkStore.get_many` reads and verifies a few chunks ahead the same
  way. See :mod:`meshcore.content._pipeline`.

This class does I/O; it is a driver-side object, used by the node daemon and
the catalog, never by a policy core.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import lz4.block
import xxhash

from meshcore._files import fsync_dir
from meshcore.errors import DecodeError, IntegrityError, StorageError
from meshcore.kernels import blake2b_256

from ._pipeline import ordered_map

__all__ = [
    "CHUNK_HEADER",
    "CHUNK_MAGIC",
    "COMPRESS_MIN_SAVING",
    "FLAG_LZ4",
    "ChunkStore",
    "decode_chunk_file",
    "encode_chunk_header",
]

CHUNK_MAGIC = b"MCC1"
FLAG_LZ4 = 0x01
#: magic(4) flags(1) reserved(3, zero) raw_size(u64 BE) xxh3_64(u64 BE) of bytes 0..15 + payload.
CHUNK_HEADER = struct.Struct(">4sB3xQQ")
HEADER_SIZE = CHUNK_HEADER.size  # 24
#: Compression must save at least raw_size >> 3 bytes (12.5 %) to be kept.
COMPRESS_MIN_SAVING = 3
#: Chunks of at least this many bytes are probed with samples before compressing.
COMPRESS_PROBE_MIN = 24 * 1024
#: Bytes per probe sample (three samples: start, middle, end).
COMPRESS_PROBE_SAMPLE = 4096
#: The samples must save at least 1/2**4 (6.25 %) together, or the chunk is stored raw.
COMPRESS_PROBE_SAVING = 4
#: Chunks the publishing pipeline keeps in flight (hashing, compressing, writing).
ADD_WINDOW = 8
#: Chunks a verified read keeps in flight ahead of the consumer.
GET_WINDOW = 4
DIGEST_SIZE = 32
DEFAULT_MAX_CHUNK = 16 * 2**20
TMP_PREFIX = ".tmp-"
#: A batch flushes by itself past this many pending bytes or files.
BATCH_MAX_BYTES = 64 * 2**20
BATCH_MAX_FILES = 4096
_HEX = frozenset("0123456789abcdef")


def encode_chunk_header(flags: int, raw_size: int, payload: bytes | memoryview) -> bytes:
    """The 24-byte header of a chunk file whose stored bytes are ``payload``."""
    head = CHUNK_MAGIC + bytes((flags, 0, 0, 0)) + raw_size.to_bytes(8, "big")
    h = xxhash.xxh3_64(head)
    h.update(payload)
    return head + h.intdigest().to_bytes(8, "big")


def decode_chunk_file(
    data: bytes, *, max_chunk: int = DEFAULT_MAX_CHUNK, check: bool = True
) -> tuple[int, int, memoryview]:
    """Split a chunk file into ``(flags, raw_size, payload)``; DecodeError if malformed.

    With ``check`` the xxh3-64 checksum is verified (the fast scrub). The
    payload is still compressed when ``flags & FLAG_LZ4``.
    """
    if len(data) < HEADER_SIZE:
        raise DecodeError(
            f"chunk file: {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header"
        )
    magic, flags, raw_size, checksum = CHUNK_HEADER.unpack_from(data)
    if magic != CHUNK_MAGIC:
        raise DecodeError(f"chunk file: bad magic {magic!r}")
    if flags & ~FLAG_LZ4 or data[5:8] != b"\0\0\0":
        raise DecodeError(f"chunk file: unknown flags {data[4:8].hex()}")
    payload = memoryview(data)[HEADER_SIZE:]
    if not 1 <= raw_size <= max_chunk:
        raise DecodeError(f"chunk file: raw size {raw_size} outside 1..{max_chunk}")
    if not flags & FLAG_LZ4 and len(payload) != raw_size:
        raise DecodeError(
            f"chunk file: {len(payload)} stored bytes but header says {raw_size} (truncated?)"
        )
    if check:
        h = xxhash.xxh3_64(memoryview(data)[:16])
        h.update(payload)
        if h.intdigest() != checksum:
            raise DecodeError("chunk file: xxh3 checksum mismatch (bit rot or truncation)")
    return flags, raw_size, payload


def _load_syncfs():
    # syncfs(2) makes a whole batch durable with one call; ctypes may be absent
    # (OpenWrt ships it as a separate package), then we fsync file by file.
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (ImportError, OSError, AttributeError):  # pragma: no cover - platform dependent
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


_syncfs = _load_syncfs()


class _NotRegular(DecodeError):
    """Something other than a regular file sits where a chunk or manifest file belongs."""

    def __init__(self, path: str) -> None:
        super().__init__("not a regular file (a folder, link or device where the file belongs)")
        self.path = path


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _store_error(final: str, size: int, exc: OSError) -> StorageError:
    return StorageError(f"{final}: cannot store {size} bytes: {_explain(exc)}", path=final)


def _explain(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "disk full (ENOSPC)"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded (EDQUOT)"
    if exc.errno == errno.EIO:
        detail = exc.strerror if exc.strerror and exc.strerror != os.strerror(errno.EIO) else ""
        return (
            f"I/O error (EIO{': ' + detail if detail else ''}): the storage device may be failing"
        )
    if exc.errno == errno.EROFS:
        return "file system is read-only (EROFS)"
    return exc.strerror or str(exc)


def _check_digest(name: str, digest: object) -> bytes:
    if not isinstance(digest, bytes | bytearray | memoryview):
        raise TypeError(f"{name}: expected bytes, got {type(digest).__name__}")
    digest = bytes(digest)
    if len(digest) != DIGEST_SIZE:
        raise ValueError(f"{name}: expected {DIGEST_SIZE} bytes, got {len(digest)}")
    return digest



class _Pending:
    """A temp file written in a batch, not yet durable nor visible."""

    __slots__ = ("final", "size", "tmp")

    def __init__(self, tmp: str, final: str, size: int) -> None:
        self.tmp = tmp
        self.final = final
        self.size = size


class _Staged:
    """A chunk hashed and written to a temp file by a pipeline worker, not yet registered.

    ``tmp`` is None when the chunk was already present (nothing written).
    """

    __slots__ = ("digest", "final", "raw_size", "size", "tmp")

    def __init__(self, digest: bytes, final: str, raw_size: int, tmp: str | None,
                 size: int) -> None:
        self.digest = digest
        self.final = final
        self.raw_size = raw_size
        self.tmp = tmp
        self.size = size


def _encode(view: memoryview, compress: bool) -> tuple[int, bytes | memoryview]:
    """``(flags, payload)`` of a chunk: an lz4 block when worth it (module doc), else raw."""
    n = view.nbytes
    if not compress or n < 64:
        return 0, view
    if n >= COMPRESS_PROBE_MIN:
        k = COMPRESS_PROBE_SAMPLE
        mid = (n - k) // 2
        packed = sum(
            len(lz4.block.compress(view[a : a + k], store_size=False)) for a in (0, mid, n - k)
        )
        if packed > 3 * k - ((3 * k) >> COMPRESS_PROBE_SAVING):
            return 0, view
    packed_all = lz4.block.compress(view, store_size=False)
    if len(packed_all) <= n - (n >> COMPRESS_MIN_SAVING):
        return FLAG_LZ4, packed_all
    return 0, view


class ChunkStore:
    """Content-addressed chunk and manifest files under ``root`` (see the module doc).

    ``budget_bytes`` caps the bytes kept on disk (>= 0); ``compress`` enables
    lz4 where it saves >= 12.5 %; ``fsync=False`` skips every fsync (tests and
    throwaway caches only: a power cut may then leave empty files, which
    reads and scrubs detect and quarantine). ``max_chunk_bytes`` bounds one
    chunk. Opening creates the folders and deletes stale temp files; raises
    :class:`StorageError` if ``root`` cannot be prepared.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        budget_bytes: int,
        compress: bool = True,
        fsync: bool = True,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK,
    ) -> None:
        if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int):
            raise TypeError(f"budget_bytes: expected an int, got {type(budget_bytes).__name__}")
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes: expected >= 0, got {budget_bytes}")
        if isinstance(max_chunk_bytes, bool) or not isinstance(max_chunk_bytes, int):
            raise TypeError("max_chunk_bytes: expected an int")
        if not 1 <= max_chunk_bytes <= 2**31:
            raise ValueError(f"max_chunk_bytes: expected 1..2**31, got {max_chunk_bytes}")
        self.root = Path(root)
        self.budget_bytes = budget_bytes
        self.compress = bool(compress)
        self.fsync = bool(fsync)
        self.max_chunk_bytes = max_chunk_bytes
        self.chunk_dir = self.root / "chunks"
        self.manifest_dir = self.root / "manifests"
        self.quarantine_dir = self.root / "quarantine"
        self._lock = threading.RLock()
        self._chunk_base = str(self.chunk_dir)
        self._manifest_base = str(self.manifest_dir)
        # Paths are plain strings inside: pathlib costs more than the syscalls
        # on a hot put() path.
        self._known_dirs: set[str] = set()
        self._dirty_dirs: set[str] = set()  # new folders whose parents a batch must sync
        self._pending: dict[str, _Pending] | None = None
        # add_many's background flush: the future, and the files it is renaming
        self._flushing: Future[None] | None = None
        self._flushing_items: dict[str, _Pending] = {}
        self._pending_bytes = 0
        self._tmp_seq = 0
        #: Temp files deleted when the store was opened (left by a crash).
        self.stale_temp_files = 0
        self.used_bytes = 0
        try:
            for d in (self.root, self.chunk_dir, self.manifest_dir, self.quarantine_dir):
                self._ensure_dir(str(d))
            self._make_shards()
            self.used_bytes = self._scan()
        except OSError as exc:
            raise StorageError(
                f"{self.root}: cannot open the chunk store: {_explain(exc)}", path=str(self.root)
            ) from exc

    # ------------------------------------------------------------------ paths

    @staticmethod
    def _shard_path(base: str, digest: bytes) -> str:
        h = digest.hex()
        return f"{base}/{h[0:2]}/{h}"

    def _chunk(self, digest: bytes) -> str:
        return self._shard_path(self._chunk_base, _check_digest("digest", digest))

    def _manifest(self, content_id: bytes) -> str:
        return self._shard_path(self._manifest_base, _check_digest("content_id", content_id))

    def chunk_path(self, digest: bytes) -> Path:
        """Where chunk ``digest`` lives (whether or not it is present)."""
        return Path(self._chunk(digest))

    def manifest_path(self, content_id: bytes) -> Path:
        """Where the signed manifest ``content_id`` lives (whether or not it is present)."""
        return Path(self._manifest(content_id))

    def _ensure_dir(self, d: str) -> None:
        if d in self._known_dirs:
            return
        if not os.path.isdir(d):
            parent = os.path.dirname(d)
            if parent != d and parent not in self._known_dirs and not os.path.isdir(parent):
                self._ensure_dir(parent)
            try:
                os.mkdir(d, 0o755)
            except FileExistsError:
                pass
            else:
                # A new folder entry is durable only once its parent is synced;
                # a batch does that once for all of them at its flush.
                if self._pending is not None:
                    self._dirty_dirs.add(parent)
                elif self.fsync:
                    fsync_dir(parent)
        self._known_dirs.add(d)

    # ------------------------------------------------------------------- scan

    def _make_shards(self) -> None:
        # All 256 chunk folders exist from the first open: no mkdir (nor parent
        # fsync) on the write path, and the pipeline's workers never race to
        # create one. 256 empty folders cost 1 MiB on ext4 (format.md 4.1).
        have = {os.path.basename(d) for d in _subdirs(self.chunk_dir)}
        made = False
        for i in range(256):
            name = f"{i:02x}"
            path = f"{self._chunk_base}/{name}"
            if name not in have:
                try:
                    os.mkdir(path, 0o755)
                    made = True
                except FileExistsError:
                    pass
            self._known_dirs.add(path)
        if made and self.fsync:
            fsync_dir(self._chunk_base)

    def _scan(self) -> int:
        total = 0
        for base in (self.chunk_dir, self.manifest_dir):
            for name, path, size in self._walk(base):
                if name.startswith(TMP_PREFIX):
                    if _writer_alive(name):
                        continue  # another live process is writing it right now
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                    self.stale_temp_files += 1
                elif _is_hex_name(name):
                    total += size
        with os.scandir(self.quarantine_dir) as it:
            for entry in it:
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
        return total

    @staticmethod
    def _walk(base: Path) -> Iterator[tuple[str, str, int]]:
        """(name, path, size) of every regular file in the shard folders of ``base``."""
        for shard in _subdirs(base):
            with os.scandir(shard) as it:
                for entry in it:
                    if entry.is_file(follow_symlinks=False):
                        try:
                            size = entry.stat(follow_symlinks=False).st_size
                        except FileNotFoundError:  # pragma: no cover - raced a delete
                            continue
                        yield entry.name, entry.path, size

    # ----------------------------------------------------------------- budget

    @property
    def free_bytes(self) -> int:
        """Bytes that may still be written before the budget is reached."""
        return max(0, self.budget_bytes - self.used_bytes)

    def _reserve(self, size: int, path: str) -> None:
        with self._lock:
            if self.used_bytes + size > self.budget_bytes:
                raise StorageError(
                    f"{path}: byte budget exhausted: writing {size} bytes would bring the store "
                    f"to {self.used_bytes + size} of its {self.budget_bytes}-byte budget "
                    f"({self.root}); evict something or raise the budget",
                    path=str(path),
                )
            self.used_bytes += size

    def _undo_write(self, tmp: str | None, size: int) -> None:
        # A failed chunk write: no temp file may stay behind, and the bytes
        # reserved against the budget go back.
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._release(size)

    def _release(self, size: int) -> None:
        with self._lock:
            self.used_bytes -= size

    # ----------------------------------------------------------------- writes

    def _tmp_name(self, folder: str, name: str) -> str:
        with self._lock:
            self._tmp_seq += 1
            seq = self._tmp_seq
        return f"{folder}/{TMP_PREFIX}{name[:16]}-{os.getpid()}-{seq}"

    def _write_file(self, final: str, parts: tuple[bytes | memoryview, ...], size: int) -> None:
        """Reserve, write a temp file, and publish it (now, or at the batch flush)."""
        self._reserve(size, final)
        tmp: str | None = None
        folder, name = os.path.split(final)
        deferred = self._pending is not None
        try:
            self._ensure_dir(folder)
            tmp = self._tmp_name(folder, name)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                _write_all(fd, parts)
                if self.fsync and not deferred:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if not deferred:
                os.rename(tmp, final)
                tmp = None
                if self.fsync:
                    try:
                        fsync_dir(folder)
                    except OSError:
                        # Not durable: take the file back so the caller's error is the truth.
                        with contextlib.suppress(OSError):
                            os.unlink(final)
                        raise
        except BaseException as exc:
            self._undo_write(tmp, size)
            if isinstance(exc, OSError):
                raise _store_error(final, size, exc) from exc
            raise
        if deferred:
            assert self._pending is not None and tmp is not None
            self._pending[final] = _Pending(tmp, final, size)
            self._pending_bytes += size
            if self._pending_bytes >= BATCH_MAX_BYTES or len(self._pending) >= BATCH_MAX_FILES:
                self.flush()

    @contextlib.contextmanager
    def batch(self) -> Iterator[ChunkStore]:
        """Group the fsyncs of many :meth:`put` calls; flushed on normal exit.

        Inside, chunks are written to temp files and become visible (renamed)
        only once all of them are durable, at :meth:`flush` (called by itself
        every 64 MiB / 4096 files, before any manifest write, and on exit).
        If the block raises, pending temp files are deleted and their bytes
        released. Nested batches join the outer one. One writer thread at a
        time: a batch is not shared between threads.
        """
        with self._lock:
            nested = self._pending is not None
            if not nested:
                self._pending = {}
                self._pending_bytes = 0
                self._dirty_dirs = set()
        if nested:
            yield self
            return
        try:
            yield self
        except BaseException:
            self._discard_pending()
            raise
        try:
            self.flush()
        except BaseException:
            self._discard_pending()
            raise
        finally:
            with self._lock:
                self._pending = None

    def flush(self) -> None:
        """Make every pending batch write durable and visible; StorageError on I/O failure.

        Waits for a background flush started by :meth:`add_many` first (and
        raises its error, if it failed). On failure every pending temp file is
        deleted (nothing partial remains) and the error names the first file
        concerned.
        """
        self._wait_flushing()
        items = self._take_pending()
        if items:
            self._flush_items(items)

    def _take_pending(self) -> list[_Pending]:
        with self._lock:
            pending = self._pending
            if not pending:
                return []
            items = list(pending.values())
            pending.clear()
            self._pending_bytes = 0
            return items

    def _flush_background(self) -> None:
        """Start flushing the pending files on a helper thread (add_many's auto-flush).

        New temp files may be written meanwhile; none of them is renamed before
        a later flush has made it durable, so the write order is unchanged. At
        most one background flush runs; :meth:`flush` waits for it.
        """
        self._wait_flushing()
        items = self._take_pending()
        if not items:
            return
        with self._lock:
            self._flushing_items = {p.final: p for p in items}
        pool = ThreadPoolExecutor(1, thread_name_prefix="meshcore-flush")
        try:
            self._flushing = pool.submit(self._flush_items, items)
        finally:
            pool.shutdown(wait=False)

    def _wait_flushing(self) -> None:
        fut = self._flushing
        if fut is None:
            return
        try:
            fut.result()
        finally:
            with self._lock:
                self._flushing = None
                self._flushing_items = {}

    def _flush_items(self, items: list[_Pending]) -> None:
        done = 0
        try:
            if self.fsync:
                self._sync_files([p.tmp for p in items])
            for p in items:
                os.rename(p.tmp, p.final)
                done += 1
            if self.fsync:
                with self._lock:
                    dirs = {os.path.dirname(p.final) for p in items} | self._dirty_dirs
                    self._dirty_dirs = set()
                self._sync_dirs(dirs)
        except OSError as exc:
            for i, p in enumerate(items):
                with contextlib.suppress(OSError):
                    os.unlink(p.final if i < done else p.tmp)
            self._release(sum(p.size for p in items))
            raise StorageError(
                f"{items[0].final}: cannot store a batch of {len(items)} files: {_explain(exc)}",
                path=str(items[0].final),
            ) from exc

    def _syncfs_instead(self, n: int) -> bool:
        # Past a handful of files one syncfs(2) of the store's file system is
        # cheaper than an fsync each; True when it was done.
        if _syncfs is None or n <= 8:
            return False
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _syncfs(fd)
        finally:
            os.close(fd)
        return True

    def _sync_files(self, paths: list[str]) -> None:
        if self._syncfs_instead(len(paths)):
            return
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _sync_dirs(self, dirs: set[str]) -> None:
        if self._syncfs_instead(len(dirs)):
            return
        for d in dirs:
            fsync_dir(d)

    def _discard_pending(self) -> None:
        # A failed background flush has already removed its own files.
        with contextlib.suppress(StorageError):
            self._wait_flushing()
        with self._lock:
            items = list(self._pending.values()) if self._pending else []
            self._pending = None
            self._pending_bytes = 0
        for p in items:
            with contextlib.suppress(OSError):
                os.unlink(p.tmp)
        self._release(sum(p.size for p in items))

    # ----------------------------------------------------------------- chunks

    def put(self, digest: bytes, data: bytes | bytearray | memoryview) -> bool:
        """Store chunk ``data`` under ``digest``; False if it was already stored.

        Raises :class:`IntegrityError` when ``blake2b_256(data) != digest``
        (nothing is written), ValueError for an empty chunk or one larger than
        ``max_chunk_bytes``, and :class:`StorageError` when the budget or the
        disk is exhausted (nothing partial remains).
        """
        digest = _check_digest("digest", digest)
        view = self._view(data)
        if blake2b_256(view) != digest:
            raise IntegrityError(
                f"chunk {digest.hex()}: data does not match its BLAKE2b-256 digest; refused"
            )
        return self._store(digest, view)

    def add(self, data: bytes | bytearray | memoryview) -> tuple[bytes, bool]:
        """Store local bytes under their own BLAKE2b-256 digest: ``(digest, newly_stored)``.

        For a publisher's own data, where there is no claimed digest to check:
        the bytes are hashed once (``put`` after ``blake2b_256`` would hash them
        twice). Same errors as :meth:`put`, except IntegrityError.
        """
        view = self._view(data)
        digest = blake2b_256(view)
        return digest, self._store(digest, view)

    def _view(self, data: bytes | bytearray | memoryview) -> memoryview:
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        if not 1 <= view.nbytes <= self.max_chunk_bytes:
            raise ValueError(f"data: chunk size {view.nbytes} outside 1..{self.max_chunk_bytes}")
        return view

    def _store(self, digest: bytes, view: memoryview) -> bool:
        final = self._shard_path(self._chunk_base, digest)
        if self._present(final):
            return False
        n = view.nbytes
        flags, payload = _encode(view, self.compress)
        header = encode_chunk_header(flags, n, payload)
        self._write_file(final, (header, payload), HEADER_SIZE + len(payload))
        return True

    def add_many(
        self,
        chunks: Iterable[bytes | bytearray | memoryview],
        *,
        threads: int | None = None,
        window: int = ADD_WINDOW,
    ) -> Iterator[tuple[bytes, int, bool]]:
        """Store many local chunks: ``(digest, size, newly_stored)`` for each, in input order.

        What :meth:`add` does, pipelined: up to ``window`` chunks are hashed,
        compressed and written to temp files on ``threads`` worker threads
        (default: the usable CPUs, at most 2; 1 = inline) while ``chunks`` is
        consumed on the calling thread. Runs inside a :meth:`batch` (joins the
        caller's), so nothing becomes visible before the batch flush makes it
        durable. Memory: about ``window`` chunks plus their compressed copies.
        ``chunks`` must not be mutated after it is yielded (the chunker's bytes
        objects are fresh). Same errors as :meth:`add`; on any error, or if the
        iterator is closed early, every temp file of this call is removed and
        its reservation released (by the batch, or here for those in flight).
        """
        views = (self._view(c) for c in chunks)
        staged = ordered_map(self._stage, views, threads=threads, window=window,
                             discard=self._discard_staged)
        # closing() runs the pipeline's cleanup before the batch's, even while
        # an exception's traceback keeps this frame alive
        with self.batch(), contextlib.closing(staged):
            for _view, fut in staged:
                st = fut.result()
                yield st.digest, st.raw_size, self._commit(st)

    def _stage(self, view: memoryview) -> _Staged:
        """Hash, encode and write one chunk to a temp file (any thread); not yet registered."""
        digest = blake2b_256(view)
        final = self._shard_path(self._chunk_base, digest)
        n = view.nbytes
        if self._present(final):
            return _Staged(digest, final, n, None, 0)
        flags, payload = _encode(view, self.compress)
        header = encode_chunk_header(flags, n, payload)
        size = HEADER_SIZE + len(payload)
        self._reserve(size, final)
        tmp: str | None = None
        try:
            folder, name = os.path.split(final)
            with self._lock:
                self._ensure_dir(folder)
            tmp = self._tmp_name(folder, name)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                _write_all(fd, (header, payload))
            finally:
                os.close(fd)
        except BaseException as exc:
            self._undo_write(tmp, size)
            if isinstance(exc, OSError):
                raise _store_error(final, size, exc) from exc
            raise
        return _Staged(digest, final, n, tmp, size)

    def _discard_staged(self, _view: memoryview, fut: Future[_Staged]) -> None:
        if fut.exception() is None:
            self._unstage(fut.result())

    def _unstage(self, st: _Staged) -> None:
        if st.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(st.tmp)
            self._release(st.size)
            st.tmp = None

    def _commit(self, st: _Staged) -> bool:
        """Register a staged chunk in the current batch (calling thread, input order)."""
        if st.tmp is None:
            return False
        # Checked again here, on the one thread that registers and flushes: two
        # copies of one chunk may have been staged at once, or a flush may have
        # renamed it between the worker's check and now.
        if self._present(st.final):
            self._unstage(st)
            return False
        assert self._pending is not None  # add_many always runs inside a batch
        self._pending[st.final] = _Pending(st.tmp, st.final, st.size)
        self._pending_bytes += st.size
        st.tmp = None
        if self._pending_bytes >= BATCH_MAX_BYTES or len(self._pending) >= BATCH_MAX_FILES:
            # syncfs waits for the disk: let the workers go on meanwhile
            self._flush_background()
        return True

    def get_many(
        self,
        digests: Iterable[bytes],
        *,
        full: bool = True,
        threads: int | None = None,
        window: int = GET_WINDOW,
        abandoned: Callable[[bytes, Future[bytes]], None] | None = None,
    ) -> Iterator[tuple[bytes, Future[bytes]]]:
        """``(digest, future)`` per digest, in order; ``future.result()`` is what :meth:`get` gives.

        Up to ``window`` chunks are read and verified ahead of the consumer on
        ``threads`` worker threads (default: usable CPUs, at most 2). Errors are
        those of :meth:`get`, raised by ``future.result()`` (a corrupt chunk is
        already quarantined then), so the caller can tell which chunk failed.
        Closing the iterator early waits for the reads in flight and passes
        each one that finished to ``abandoned(digest, future)``, so a chunk
        found corrupt (and quarantined) ahead of the consumer is still
        reported.
        """
        checked = (_check_digest("digest", d) for d in digests)
        return ordered_map(lambda d: self.get(d, full=full), checked, threads=threads,
                           window=window, discard=abandoned)

    def _present(self, final: str) -> bool:
        pending = self._pending
        if pending is not None and final in pending:
            return True
        if final in self._flushing_items:
            return True
        return _is_regular(final)

    def _in_batch(self, final: str) -> bool:
        """True when ``final`` is a batch write not yet visible (pending or being flushed)."""
        pending = self._pending
        return (pending is not None and final in pending) or final in self._flushing_items

    def has(self, digest: bytes) -> bool:
        """True when chunk ``digest`` is stored (or pending in the current batch).

        Only a regular file counts: a folder or a link where the chunk should
        be is not the chunk (:meth:`irregular` lists such entries).
        """
        return self._present(self._chunk(digest))

    __contains__ = has

    def _read(self, final: str, what: str) -> bytes:
        if self._in_batch(final):
            self.flush()
        try:
            # os-level reads: a buffered file object costs more than the read itself.
            # O_NOFOLLOW|O_NONBLOCK: a link or a FIFO planted in the store is
            # refused, never followed nor waited on.
            fd = os.open(final, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise _NotRegular(final)
                size = st.st_size
                data = os.read(fd, size)
                while len(data) < size:  # short read (rare)
                    more = os.read(fd, size - len(data))
                    if not more:
                        break
                    data += more
                return data
            finally:
                os.close(fd)
        except FileNotFoundError:
            raise KeyError(f"{what} not in store") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
                raise _NotRegular(final) from None
            raise StorageError(f"{final}: cannot read: {_explain(exc)}", path=str(final)) from exc

    def get(self, digest: bytes, *, full: bool = True) -> bytes:
        """The verified bytes of chunk ``digest``.

        The header, the xxh3-64 checksum and the lz4 block are always checked;
        ``full`` (the default) also recomputes the BLAKE2b-256 digest, which is
        about 85 % of the cost of a read. ``full=False`` suits data whose
        only threat is bit rot (every chunk was BLAKE2b-verified when stored;
        the disk is not an adversary) or that the receiver verifies anyway:
        a peer fetching a chunk checks its digest before storing it.
        Raises KeyError when absent, and :class:`IntegrityError` (with
        ``.digest``) after quarantining the file when it is corrupt.
        """
        digest = _check_digest("digest", digest)
        final = self._shard_path(self._chunk_base, digest)
        try:
            data = self._read(final, f"chunk {digest.hex()}")
            raw = self._decode(data)
            if full and blake2b_256(raw) != digest:
                raise DecodeError("content does not match its BLAKE2b-256 digest")
        except DecodeError as exc:
            reason = str(exc)
            try:
                self.quarantine(digest, reason)
                fate = "quarantined"
            except (KeyError, StorageError) as qexc:
                fate = f"could not quarantine ({qexc})"
            err = IntegrityError(f"chunk {digest.hex()}: corrupt, {fate}: {reason}")
            err.digest = digest  # type: ignore[attr-defined]
            raise err from None
        return raw

    def _decode(self, data: bytes) -> bytes:
        flags, raw_size, payload = decode_chunk_file(data, max_chunk=self.max_chunk_bytes)
        if not flags & FLAG_LZ4:
            return bytes(payload)
        try:
            raw = lz4.block.decompress(payload, uncompressed_size=raw_size)
        except lz4.block.LZ4BlockError as exc:
            raise DecodeError(f"chunk file: lz4 block does not decompress: {exc}") from None
        if len(raw) != raw_size:
            raise DecodeError(f"chunk file: decompressed to {len(raw)} bytes, expected {raw_size}")
        return raw

    def check_fast(self, digest: bytes) -> bool:
        """True when chunk ``digest`` is present and its header and xxh3-64 checksum are good.

        Neither decompresses nor computes BLAKE2b (see :meth:`check`); never quarantines.
        """
        return self.check(digest, full=False) is None

    def check(self, digest: bytes, *, full: bool = False) -> str | None:
        """None when chunk ``digest`` passes, else why not (``"missing"`` when absent).

        The fast check reads the header and the xxh3-64 checksum; ``full`` also
        decompresses and compares the BLAKE2b-256 digest. Never quarantines.
        """
        final = self._chunk(digest)
        try:
            data = self._read(final, "chunk")
            if not full:
                decode_chunk_file(data, max_chunk=self.max_chunk_bytes)
                return None
            raw = self._decode(data)
        except KeyError:
            return "missing"
        except DecodeError as exc:
            return str(exc)
        if blake2b_256(raw) != digest:
            return "content does not match its BLAKE2b-256 digest"
        return None

    def size_of(self, digest: bytes) -> int:
        """Bytes chunk ``digest`` takes on disk (header included); KeyError when absent."""
        final = self._chunk(digest)
        p = (self._pending or {}).get(final) or self._flushing_items.get(final)
        if p is not None:
            return p.size
        try:
            return os.stat(final).st_size
        except FileNotFoundError:
            raise KeyError(f"chunk {bytes(digest).hex()} not in store") from None

    def delete(self, digest: bytes) -> int:
        """Remove chunk ``digest``; returns the bytes freed (0 when it was absent)."""
        return self._delete(self._chunk(digest))

    def _delete(self, final: str) -> int:
        if self._in_batch(final):
            self.flush()
        # No folder fsync: a deletion undone by a power cut only costs space,
        # and the next open's scan recounts it.
        try:
            size = os.stat(final).st_size
            os.unlink(final)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StorageError(f"{final}: cannot delete: {_explain(exc)}", path=str(final)) from exc
        self._release(size)
        return size

    def __iter__(self) -> Iterator[bytes]:
        """Digests of the chunks present (in no particular order)."""
        for name, _path, _size in self._walk(self.chunk_dir):
            if _is_hex_name(name):
                yield bytes.fromhex(name)

    def irregular(self) -> list[bytes]:
        """Digests whose chunk path holds something other than a regular file.

        A folder, a link or a device node where a chunk belongs is not the
        chunk: :meth:`has` says False, :meth:`get` and :meth:`check` report it
        corrupt, and a scrub quarantines it.
        """
        found = []
        for shard in _subdirs(self.chunk_dir):
            with os.scandir(shard) as it:
                for entry in it:
                    if _is_hex_name(entry.name) and not entry.is_file(follow_symlinks=False):
                        found.append(bytes.fromhex(entry.name))
        return found

    def quarantine(self, digest: bytes, reason: str) -> Path:
        """Move chunk ``digest`` to ``quarantine/`` beside a ``.reason`` file; returns its new path.

        The file keeps counting against the budget until :meth:`purge_quarantine`.
        KeyError when the chunk is absent.
        """
        final = self._chunk(digest)
        if self._in_batch(final):
            self.flush()
        hexname = os.path.basename(final)
        with self._lock:
            if not os.path.lexists(final):
                raise KeyError(f"chunk {hexname} not in store")
            return self._move_to_quarantine(final, hexname, reason)

    def _move_to_quarantine(self, final: str, name: str, reason: str) -> Path:
        """Rename ``final`` to ``quarantine/<name>.<n>`` beside its ``.reason`` file."""
        with self._lock:
            n = 0
            while os.path.lexists(self.quarantine_dir / f"{name}.{n}"):
                n += 1
            dest = self.quarantine_dir / f"{name}.{n}"
            note = (reason.strip() + "\n").encode("utf-8", "replace")
            if self.used_bytes + len(note) > self.budget_bytes:
                note = b""  # the budget holds; the reason is in the caller's error or report
            # Best effort: a full disk must not stop the bad file from being moved.
            reason_path = f"{dest}.reason"
            try:
                with open(reason_path, "wb") as f:
                    f.write(note)
                self.used_bytes += len(note)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(reason_path)
            try:
                os.rename(final, dest)
            except FileNotFoundError:  # pragma: no cover - raced a delete
                raise KeyError(f"{name} not in store") from None
            except OSError as exc:
                raise StorageError(
                    f"{final}: cannot quarantine: {_explain(exc)}", path=final
                ) from exc
        return dest

    def quarantined(self) -> list[tuple[Path, str]]:
        """Every quarantined file and its reason."""
        out = []
        for entry in sorted(os.scandir(self.quarantine_dir), key=lambda e: e.name):
            if entry.name.endswith(".reason"):
                continue
            try:
                reason = Path(entry.path + ".reason").read_text("utf-8").strip()
            except OSError:
                reason = ""
            out.append((Path(entry.path), reason))
        return out

    def purge_quarantine(self) -> int:
        """Delete every quarantined file; returns the bytes freed."""
        freed = 0
        for entry in list(os.scandir(self.quarantine_dir)):
            try:
                if entry.is_dir(follow_symlinks=False):
                    # a folder found where a chunk belonged: never counted
                    shutil.rmtree(entry.path)
                    continue
                size = entry.stat(follow_symlinks=False).st_size
                os.unlink(entry.path)
            except FileNotFoundError:  # pragma: no cover - raced another purge
                continue
            freed += size
        self._release(freed)
        return freed

    # -------------------------------------------------------------- manifests

    def write_manifest(self, content_id: bytes, raw: bytes) -> bool:
        """Store signed manifest ``raw`` as ``content_id``; False if already stored.

        Flushes a pending batch first, so every chunk written before is durable
        before the manifest that lists it. Raises :class:`IntegrityError` when
        ``raw`` does not parse, verify and hash to ``content_id``, and
        :class:`StorageError` on budget or disk exhaustion (nothing partial).
        """
        from .manifest import parse_manifest  # manifest imports keys; keep store import light

        content_id = _check_digest("content_id", content_id)
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise TypeError(f"raw: expected bytes, got {type(raw).__name__}")
        raw = bytes(raw)
        actual = parse_manifest(raw).content_id
        if actual != content_id:
            raise IntegrityError(f"manifest {content_id.hex()}: its content id is {actual.hex()}")
        final = self._shard_path(self._manifest_base, content_id)
        self.flush()
        if os.path.exists(final):
            return False
        pending, self._pending = self._pending, None  # manifests are never deferred
        try:
            self._write_file(final, (raw,), len(raw))
        finally:
            self._pending = pending
        return True

    def quarantine_manifest(self, content_id: bytes, reason: str) -> Path:
        """Move manifest ``content_id`` to ``quarantine/manifest-<hex>.<n>`` (with a reason).

        A manifest that fails verification is set aside, never deleted: its
        chunks may be all the node has of an item, and an operator decides
        (see :meth:`quarantined_manifests`). KeyError when it is absent.
        """
        final = self._manifest(content_id)
        if not os.path.lexists(final):
            raise KeyError(f"manifest {bytes(content_id).hex()} not in store")
        return self._move_to_quarantine(final, f"manifest-{bytes(content_id).hex()}", reason)

    def quarantined_manifests(self) -> list[tuple[bytes, Path, str, float]]:
        """``(content_id, path, reason, quarantined_at)`` of every quarantined manifest.

        ``quarantined_at`` is the Unix time its reason file was written.
        """
        out = []
        for path, reason in self.quarantined():
            name = path.name
            if not name.startswith("manifest-"):
                continue
            hexname = name[len("manifest-"):].split(".", 1)[0]
            if not _is_hex_name(hexname):
                continue
            try:
                when = os.stat(f"{path}.reason").st_mtime
            except OSError:
                when = os.lstat(path).st_mtime
            out.append((bytes.fromhex(hexname), path, reason, when))
        return out

    def read_quarantined(self, path: str | Path) -> bytes:
        """The bytes of a quarantined file (unverified)."""
        return self._read(str(path), str(path))

    def read_manifest(self, content_id: bytes) -> bytes:
        """The raw signed manifest ``content_id`` (unverified; KeyError when absent)."""
        return self._read(self._manifest(content_id), f"manifest {bytes(content_id).hex()}")

    def has_manifest(self, content_id: bytes) -> bool:
        """True when manifest ``content_id`` is stored."""
        return os.path.exists(self._manifest(content_id))

    def delete_manifest(self, content_id: bytes) -> int:
        """Remove manifest ``content_id``; returns the bytes freed (0 when absent)."""
        return self._delete(self._manifest(content_id))

    def iter_manifests(self) -> Iterator[bytes]:
        """Content ids of the stored manifests (in no particular order)."""
        for name, _path, _size in self._walk(self.manifest_dir):
            if _is_hex_name(name):
                yield bytes.fromhex(name)

    def __repr__(self) -> str:
        return f"ChunkStore({str(self.root)!r}, used={self.used_bytes}, budget={self.budget_bytes})"


def _write_all(fd: int, parts: tuple[bytes | memoryview, ...]) -> None:
    # One writev for header + payload (one syscall per chunk); loop on short writes.
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        n = os.writev(fd, views)
        if n <= 0:  # os.writev raises instead; a 0 would loop forever
            raise OSError(errno.EIO, "write made no progress")
        while views and n >= views[0].nbytes:
            n -= views[0].nbytes
            views.pop(0)
        if n:
            views[0] = views[0][n:]


def _writer_alive(tmp_name: str) -> bool:
    """True when the process named in ``.tmp-<hex16>-<pid>-<seq>`` is alive (and not us).

    After a reboot the pid may belong to an unrelated process; the file then
    waits for a later open, which costs disk space but never correctness.
    """
    parts = tmp_name.split("-")
    try:
        pid = int(parts[-2])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # pragma: no cover - alive, owned by another user (not as root)
        return True
    return True


def _is_hex_name(name: str) -> bool:
    return len(name) == 2 * DIGEST_SIZE and all(c in _HEX for c in name)


def _subdirs(base: Path | str) -> Iterator[str]:
    try:
        with os.scandir(base) as it:
            entries = [e.path for e in it if e.is_dir(follow_symlinks=False) and len(e.name) == 2]
    except FileNotFoundError:
        return
    yield from entries
