"""Publishing: stream a file of any size into the store and the catalog.

Theory of operation
-------------------
The file is read in fixed blocks (1 MiB by default) into one reused buffer
and fed to the content-defined :class:`meshcore.kernels.Chunker`; the chunks
it completes stream into :meth:`ChunkStore.add_many`, which hashes each with
BLAKE2b-256 once, compresses it where useful and writes its temp file on
worker threads, a few chunks behind the reader (``threads``, default the
usable CPUs up to 2; ``window`` = 8 chunks in flight). Results come back in
file order, so the chunk list is built exactly as a one-thread loop would.
The publisher holds at most one block, one incomplete chunk
(< ``chunk_max``), the chunks in flight and the list of chunk references
(36 bytes of payload each: 1 GiB at the default 256 KiB average is about
4,000 references). Memory stays a few MiB whatever the file size; the
benchmark (bench/bench_content.py) measures it.

Write order, which is the crash-safety argument (see also
:mod:`meshcore.content.catalog`):

1. an intent marker is made durable (:meth:`Catalog.intent`);
2. chunks are written inside a :meth:`ChunkStore.batch` (temp files, one
   ``syncfs``/fsync round per 64 MiB, renames, folder syncs);
3. the signed manifest file is written (the store flushes the batch first,
   so the chunks it lists are durable before it);
4. the catalog row is committed (one SQLite transaction, ``synchronous=FULL``);
5. the marker is removed.

A crash before 4 leaves no row; the next open sees the marker and removes the
manifest (if its chunks are not all there) and every unreferenced chunk, or
lists the item if they are all there. An error (budget, full disk, access
denied, a file that changes while it is read) deletes the chunks this publish
added and the manifest, leaves no catalog row changed, and re-raises.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import StorageError
from ..kernels import Chunker
from .access import AccessPolicy, Principal
from .catalog import Catalog, ItemRecord
from .classify import Classification, Classifier, ItemFacts
from .keys import KeyPair
from .manifest import ChunkRef, Manifest, SignedManifest, sign_manifest

__all__ = [
    "DEFAULT_BLOCK",
    "DEFAULT_CHUNK_SIZES",
    "PublishResult",
    "guess_media_type",
    "publish_file",
    "publish_stream",
]

#: Bytes read from the file per call.
DEFAULT_BLOCK = 1 << 20
#: Content-defined chunking (min, avg, max) in bytes. Large for a chunk store of
#: one file per chunk: each file costs a create, a rename and its share of the
#: folder syncs, which dominate publishing on flash and in VMs; 256 KiB is also
#: the classic BitTorrent piece size. Dedup across versions is coarser than at
#: 16-64 KiB; ``[content] chunk_*`` changes it per node.
DEFAULT_CHUNK_SIZES = (64 * 1024, 256 * 1024, 1024 * 1024)


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What a publish did: the item's ``content_id``, its ``signed`` manifest and catalog
    ``record``, the ``classification`` applied, and the chunks and bytes (uncompressed)
    it newly stored (the rest were already present: deduplicated)."""

    content_id: bytes
    signed: SignedManifest
    record: ItemRecord
    classification: Classification
    new_chunks: int
    new_bytes: int


def guess_media_type(name: str) -> str:
    """The media type for a file name by extension; ``application/octet-stream`` if unknown."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def _retention_pin(retention: str | None, expires: int | None, now: int) -> tuple[bool, int | None]:
    if retention is None:
        return False, None
    if retention == "pin-until-expiry":
        return True, expires
    return True, now + int(retention[4:-1])  # canonical "ttl:<seconds>s"


def publish_stream(
    store,
    catalog: Catalog,
    stream: BinaryIO,
    *,
    name: str,
    keypair: KeyPair,
    now: float,
    size: int | None = None,
    media_type: str | None = None,
    tags: Iterable[str] = (),
    access: str | None = None,
    distribution: str | None = None,
    retention: str | None = None,
    expires: int | None = None,
    classifier: Classifier | None = None,
    policy: AccessPolicy | None = None,
    principal: Principal | None = None,
    chunk_sizes: tuple[int, int, int] = DEFAULT_CHUNK_SIZES,
    block_size: int = DEFAULT_BLOCK,
    threads: int | None = None,
) -> PublishResult:
    """Publish the bytes of ``stream`` (read to its end) as one item named ``name``.

    ``keypair`` signs the manifest (its public key is the publisher);
    ``now`` (unix s) becomes ``created`` and the catalog's ``stored_at``.
    ``size``, when known, lets classification and access checks run before
    anything is written, and must match what is read. Explicit ``access``,
    ``distribution``, ``retention`` override the ``classifier``'s rules; with
    ``policy`` and ``principal`` the publish and designate decisions and the
    curator-key rule for ``push-all`` are enforced. ``threads`` (>= 1, default
    the usable CPUs up to 2) hash, compress and write chunks in parallel.

    Raises :class:`~meshcore.errors.AccessDeniedError`, :class:`StorageError`
    (budget, disk, changed file), ValueError (bad tag, name or policy string),
    :class:`~meshcore.errors.ConfigError` (conflicting rules); in every case
    nothing this call wrote remains and no catalog row changes.
    """
    if not isinstance(block_size, int) or block_size < 4096:
        raise ValueError(f"block_size: expected an int >= 4096, got {block_size!r}")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(f"threads: expected an int >= 1, got {threads!r}")
    created = int(now)
    classifier = classifier or Classifier()
    media = media_type or guess_media_type(name)

    def decide(total: int) -> Classification:
        facts = ItemFacts(name, media, total, keypair.public)
        result = classifier.classify(
            facts, tags=tags, access=access, distribution=distribution, retention=retention
        )
        if policy is not None and result.access.startswith("group:"):
            group = result.access[len("group:"):]
            if group not in policy.groups:
                known = ", ".join(sorted(policy.groups)) or "none"
                raise ValueError(f"access: unknown group {group!r}: nobody could read the item "
                                 f"(groups in [content.groups]: {known})")
        if policy is not None:
            if principal is not None:
                policy.check(principal, "publish", result.access)
                policy.check(principal, "designate", result.distribution)
            who = principal.name if principal is not None else "publisher"
            policy.check_signer(result.distribution, keypair.public, who=who)
        return result

    early = decide(size) if size is not None else None
    new_digests: list[bytes] = []
    new_bytes = 0
    manifest_written = False
    cid = b""
    with catalog.intent("publish"):
        try:
            refs: list[ChunkRef] = []
            counted = [0]
            chunker = Chunker(*chunk_sizes, fingerprints=False)

            def pieces() -> Iterator[bytes]:
                buf = bytearray(block_size)
                view = memoryview(buf)
                while True:
                    try:
                        n = stream.readinto(buf)
                    except OSError as exc:
                        raise StorageError(f"{name}: cannot read: {exc.strerror or exc}") from exc
                    if not n:
                        for chunk in chunker.finish():
                            yield chunk.data
                        return
                    counted[0] += n
                    # Each chunk's data is a fresh bytes object (not a view of
                    # buf), so workers may hash it while buf is refilled.
                    for chunk in chunker.feed(view[:n]):
                        yield chunk.data

            # add_many hashes once: the data is ours, there is no claimed
            # digest to check (put() would hash twice).
            with store.batch():
                for digest, n, fresh in store.add_many(pieces(), threads=threads):
                    if fresh:
                        new_digests.append(digest)
                        new_bytes += n
                    refs.append(ChunkRef(digest, n))
            total = counted[0]
            if size is not None and total != size:
                raise StorageError(
                    f"{name}: file changed while it was published ({size} bytes expected, "
                    f"{total} read); nothing was published"
                )
            result = early if early is not None else decide(total)
            manifest = Manifest(
                name=name,
                size=total,
                media_type=media,
                chunks=tuple(refs),
                tags=result.tags,
                access=result.access,
                distribution=result.distribution,
                retention=result.retention,
                publisher=keypair.public,
                created=created,
                expires=expires,
            )
            del refs
            signed = sign_manifest(manifest, keypair)
            cid = signed.content_id
            already = catalog.get(cid)
            manifest_written = store.write_manifest(cid, signed.to_bytes())
            record = catalog.add_item(signed, stored_at=created, origin=True, all_present=True)
            pin, until = _retention_pin(manifest.retention, expires, created)
            if pin and already is None:
                catalog.pin(cid, until=until, reason=manifest.retention or "")
        except BaseException:
            _undo(store, catalog, new_digests, cid if manifest_written else None)
            raise
    return PublishResult(cid, signed, record, result, len(new_digests), new_bytes)


def _undo(store, catalog: Catalog, digests: list[bytes], manifest: bytes | None) -> None:
    if manifest is not None and catalog.get(manifest) is None:
        store.delete_manifest(manifest)
    keep = catalog.referenced()
    for digest in digests:
        if digest not in keep:
            store.delete(digest)


def publish_file(
    store,
    catalog: Catalog,
    path: str | Path,
    *,
    name: str | None = None,
    **options,
) -> PublishResult:
    """Publish the file at ``path`` (``name`` defaults to its base name); see
    :func:`publish_stream` for the options. The path itself is never stored.

    Only a regular file is published: a FIFO, a device or a folder is refused
    before anything is read (a FIFO with no writer would otherwise block
    ``open`` forever). A file that changes while it is read (its size, its
    modification or change time, or the file itself) is refused after the
    read, with nothing published: a same-size rewrite in place would
    otherwise publish a torn mix of old and new bytes. The times are compared
    at the file system's resolution (nanoseconds on ext4, f2fs and tmpfs; a
    kernel tick for writes in the same tick as the last write before the
    publish).
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat decides.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror or exc}", path=str(path)) from exc
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise StorageError(f"{path}: not a regular file ({_kind(before.st_mode)}); only "
                               "regular files are published", path=str(path))
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        # A hint only (doubles the kernel's read-ahead); not every platform has it.
        with contextlib.suppress(AttributeError, OSError):
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        return publish_stream(
            store, catalog, _Unchanged(f, path, before), name=name or path.name,
            size=before.st_size, **options
        )


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


class _Unchanged:
    """A file reader that, at end of file, checks the file did not change while read."""

    __slots__ = ("_before", "_f", "_path")

    def __init__(self, f: BinaryIO, path: Path, before: os.stat_result) -> None:
        self._f = f
        self._path = path
        self._before = before

    def readinto(self, buf) -> int:
        n = self._f.readinto(buf)
        if not n:
            self._check()
        return n

    def _check(self) -> None:
        a, b = self._before, os.fstat(self._f.fileno())
        fields = ("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino", "st_dev")
        changed = [k[3:] for k in fields if getattr(a, k) != getattr(b, k)]
        if changed:
            raise StorageError(
                f"{self._path}: file changed while it was published ({', '.join(changed)} "
                "changed); nothing was published", path=str(self._path))
