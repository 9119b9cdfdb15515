"""``ContentNode``: the one serve path, tying the store, the catalog and access control.

Every way content leaves this node (listing, tag search, item info, reading
an item, handing a manifest or a chunk to a peer) goes through a method here
that asks :class:`~meshcore.content.access.AccessPolicy` first, so an access
level cannot be bypassed by picking another API. Every way content enters
(publishing a local file, importing a manifest from a peer, receiving a
chunk) verifies it first: the manifest's signature and canonical encoding,
the curator-key rule for ``push-all``, each chunk's BLAKE2b digest.

This is a driver-side object (it owns files and a database); policy decisions
are delegated to the sans-I/O modules (:mod:`.access`, :mod:`.classify`,
:mod:`.distribution`). Time comes in as ``now`` (unix seconds). Effects for
the cache layer (:class:`~meshcore.content.effects.RefetchChunk`) and reports
(:class:`~meshcore.content.catalog.CatalogRebuilt`) accumulate and are taken
with :meth:`ContentNode.drain_effects`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import BinaryIO

from ..errors import (
    AccessDeniedError,
    DecodeError,
    IntegrityError,
    StorageError,
    UnknownContentError,
)
from ._policy_names import normalize_tag
from .access import Principal
from .catalog import Catalog, CatalogRebuilt, ItemRecord, OpenReport, open_catalog
from .distribution import DistributionContext, Placement, evaluate
from .effects import RefetchChunk
from .integrity import ScrubReport, scrub
from .keys import KeyPair
from .manifest import SignedManifest, parse_manifest
from .publish import PublishResult, publish_file, publish_stream
from .settings import ContentSettings
from .store import ChunkStore

__all__ = ["ContentNode", "UnknownContentError"]

log = logging.getLogger("meshcore.content.node")


class ContentNode:
    """The content side of one node (see the module docstring).

    Opens (or creates) the store under ``settings.store_dir`` and the catalog
    at ``settings.catalog_path``, recovering from a crash or rebuilding a
    corrupt or missing database; ``open_report`` says what happened. Raises
    :class:`StorageError` when the state folder cannot be used.
    """

    def __init__(self, settings: ContentSettings, *, now: float) -> None:
        self.settings = settings
        self.access = settings.access
        self.store = ChunkStore(
            settings.store_dir,
            budget_bytes=settings.budget_bytes,
            compress=settings.compress,
            fsync=settings.fsync,
        )
        self.catalog: Catalog
        self.open_report: OpenReport
        self.catalog, self.open_report = open_catalog(settings.catalog_path, self.store, now=now)
        self._effects: list[object] = []
        if self.open_report.rebuilt is not None:
            self._effects.append(self.open_report.rebuilt)

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Flush counters and close the catalog."""
        self.catalog.close()

    def __enter__(self) -> ContentNode:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def drain_effects(self) -> list[RefetchChunk | CatalogRebuilt]:
        """Effects produced since the last call (RefetchChunk, CatalogRebuilt), oldest first."""
        out, self._effects = self._effects, []
        return out  # type: ignore[return-value]

    # -- publishing and receiving ---------------------------------------------------

    def publish(
        self,
        principal: Principal,
        source: str | Path | BinaryIO,
        *,
        keypair: KeyPair,
        now: float,
        **options,
    ) -> PublishResult:
        """Publish a file (path) or a binary stream as ``principal``, signed by ``keypair``.

        Options as :func:`~meshcore.content.publish.publish_stream` (``name``,
        ``media_type``, ``tags``, ``access``, ``distribution``, ``retention``,
        ``expires``). Raises :class:`AccessDeniedError` when ``principal`` may
        not publish at the chosen level or designate the chosen policy, or the
        key is not a curator key for ``push-all``.
        """
        s = self.settings
        common = dict(
            keypair=keypair,
            now=now,
            classifier=s.classifier,
            policy=self.access,
            principal=principal,
            chunk_sizes=(s.chunk_min, s.chunk_avg, s.chunk_max),
        )
        if isinstance(source, str | Path):
            return publish_file(self.store, self.catalog, source, **common, **options)
        if "name" not in options:
            raise ValueError("name: required when publishing a stream")
        return publish_stream(self.store, self.catalog, source, **common, **options)

    def import_manifest(self, raw: bytes, *, now: float) -> ItemRecord:
        """Accept a signed manifest from a peer: verify, check the curator rule, index it.

        The item is listed as incomplete until its chunks arrive
        (:meth:`receive_chunk`). Raises :class:`DecodeError` /
        :class:`IntegrityError` for malformed, forged or re-signed manifests and
        :class:`AccessDeniedError` for ``push-all`` signed by a non-curator key.
        """
        signed = parse_manifest(raw)
        m = signed.manifest
        self.access.check_signer(m.distribution, m.publisher,
                                 who=f"key {m.publisher.hex()[:16]}")
        existing = self.catalog.get(signed.content_id)
        if existing is not None:
            return existing
        with self.catalog.intent("import"):
            written = self.store.write_manifest(signed.content_id, signed.to_bytes())
            try:
                return self.catalog.add_item(signed, stored_at=int(now), origin=False)
            except BaseException:
                if written:
                    self.store.delete_manifest(signed.content_id)
                raise

    def receive_chunk(self, digest: bytes, data: bytes | memoryview) -> list[bytes]:
        """Store a chunk a peer sent for an item in the catalog; return items now complete.

        Raises :class:`IntegrityError` when ``data`` does not match ``digest``
        (nothing stored), :class:`DecodeError` for a chunk no item lists
        (unsolicited data is not stored), :class:`StorageError` when full.
        """
        digest = bytes(digest)
        if self.catalog.chunk_state(digest) is None:
            raise DecodeError(f"chunk {digest.hex()}: no item in the catalog lists it; refused")
        self.store.put(digest, data)
        return self.catalog.mark_present(digest)

    # -- the serve path ---------------------------------------------------------------

    def _readable(self, principal: Principal, record: ItemRecord) -> bool:
        return self.access.may_read(principal, record.access, record.publisher)

    def list(
        self, principal: Principal, *, tag: str | None = None, include_incomplete: bool = False
    ) -> list[ItemRecord]:
        """Items ``principal`` may read (optionally only those tagged ``tag``), by name.

        Incomplete items (chunks still missing) are left out unless asked for.
        """
        norm = None if tag is None else normalize_tag(tag)
        rows = self.catalog.items(tag=norm, complete_only=not include_incomplete)
        return [r for r in rows if self._readable(principal, r)]

    def search(self, principal: Principal, tag: str) -> list[ItemRecord]:
        """Items with tag ``tag`` (normalised) that ``principal`` may read."""
        return self.list(principal, tag=tag)

    def info(self, principal: Principal, content_id: bytes) -> ItemRecord:
        """The catalog row of ``content_id``; :class:`UnknownContentError` or
        :class:`AccessDeniedError` (same for a hidden item as for a denied one)."""
        record = self.catalog.get(bytes(content_id))
        if record is None:
            raise UnknownContentError(bytes(content_id))
        decision = self.access.decide(principal, "read", record.access, publisher=record.publisher)
        if not decision.allowed:
            raise AccessDeniedError(principal.name, f"read {bytes(content_id).hex()[:16]}",
                                    decision.reason)
        return record

    def read(self, principal: Principal, content_id: bytes, *, now: float,
             full: bool = True) -> Iterator[bytes]:
        """The item's bytes, chunk by chunk, verified; access is checked before this returns.

        Each chunk's header and xxh3-64 checksum are checked; with ``full`` (the
        default) its BLAKE2b-256 digest too (about 85 % of the cost of a read).
        Up to 4 chunks are read and verified ahead on worker threads
        (:meth:`ChunkStore.get_many`); results and errors arrive in order.

        A corrupt chunk is quarantined, marked missing and a
        :class:`RefetchChunk` is queued; the iterator then raises
        :class:`IntegrityError`. A missing chunk raises :class:`StorageError`
        (with a RefetchChunk queued too).
        """
        record = self.info(principal, content_id)
        if not record.complete:
            raise StorageError(f"item {record.content_id.hex()} is incomplete: chunks are "
                               "still being fetched")
        chunks = self.catalog.chunks_of(record.content_id)
        self.catalog.record_access(record.content_id, record.size, now=now)
        return self._iter_chunks(record.content_id, chunks, full)

    def _iter_chunks(self, cid: bytes, chunks: list[tuple[bytes, int]],
                     full: bool) -> Iterator[bytes]:
        # A few chunks are read and verified ahead on worker threads (BLAKE2b,
        # lz4 and reads release the GIL); errors are handled here, in order, on
        # the caller's thread, exactly as the one-at-a-time loop did.
        ahead = self.store.get_many((d for d, _size in chunks), full=full,
                                    abandoned=self._abandoned)
        with contextlib.closing(ahead):
            for digest, fut in ahead:
                yield self._settle(cid, digest, fut.result)

    def _chunk(self, cid: bytes, digest: bytes, *, full: bool = True) -> bytes:
        return self._settle(cid, digest, lambda: self.store.get(digest, full=full))

    def _abandoned(self, digest: bytes, fut: Future[bytes]) -> None:
        # Read ahead, never consumed: only a corrupt chunk (already quarantined
        # by the store) needs reporting; a missing one is found when next read.
        exc = fut.exception()
        if isinstance(exc, IntegrityError):
            self._lost(digest, f"corrupt: {exc}")

    def _settle(self, cid: bytes, digest: bytes, get: Callable[[], bytes]) -> bytes:
        try:
            return get()
        except IntegrityError as exc:
            self._lost(digest, f"corrupt: {exc}")
            raise
        except KeyError:
            self._lost(digest, "missing from the store")
            raise StorageError(f"item {cid.hex()}: chunk {digest.hex()} is missing; a "
                               "re-fetch was requested") from None

    def _lost(self, digest: bytes, reason: str) -> None:
        self.catalog.mark_missing(digest, reason)
        self._effects.append(RefetchChunk(digest, reason))
        log.warning("chunk %s: %s; marked missing, re-fetch requested", digest.hex(), reason)

    def read_bytes(self, principal: Principal, content_id: bytes, *, now: float) -> bytes:
        """The whole item as one bytes object (small items; see :meth:`read`)."""
        return b"".join(self.read(principal, content_id, now=now))

    def export(self, principal: Principal, content_id: bytes, dest: str | Path, *,
               now: float) -> int:
        """Write the item to ``dest`` (temp file + rename; never a partial file); returns bytes.

        ``dest`` is the caller's path: the item's name is never used as one.
        """
        dest = Path(dest)
        chunks = self.read(principal, content_id, now=now)
        tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
        written = 0
        try:
            with open(tmp, "wb") as f:
                for data in chunks:
                    f.write(data)
                    written += len(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StorageError(f"{dest}: cannot write: {exc.strerror or exc}",
                               path=str(dest)) from exc
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return written

    def manifest_for(self, principal: Principal, content_id: bytes) -> bytes:
        """The signed manifest bytes to send to a peer asking as ``principal``."""
        record = self.info(principal, content_id)
        return self.store.read_manifest(record.content_id)

    def serve_chunk(self, principal: Principal, digest: bytes) -> bytes:
        """A chunk for a peer: only if ``principal`` may read some item that lists it.

        Raises :class:`AccessDeniedError` otherwise (also for chunks no item
        lists, so probing digests reveals nothing), and as :meth:`read` on a
        corrupt or missing chunk.
        """
        digest = bytes(digest)
        for cid in self.catalog.items_with_chunk(digest):
            record = self.catalog.get(cid)
            if record is not None and self._readable(principal, record):
                # The receiving peer verifies the BLAKE2b digest before it stores
                # anything, so the xxh3 check against bit rot is enough here.
                return self._chunk(cid, digest, full=False)
        raise AccessDeniedError(principal.name, f"read chunk {digest.hex()[:16]}",
                                "no item it may read lists this chunk")

    # -- maintenance ---------------------------------------------------------------

    def delete(self, principal: Principal, content_id: bytes) -> int:
        """Remove an item (its publisher or an admin only); returns the chunk bytes freed.

        Order: manifest file, catalog row, then chunks no other item lists,
        under an intent marker, so a crash never resurrects a deleted item.
        """
        record = self.catalog.get(bytes(content_id))
        if record is None:
            raise UnknownContentError(bytes(content_id))
        own = principal.key is not None and principal.key == record.publisher
        if not own and principal.role != "admin":
            raise AccessDeniedError(principal.name, f"delete {record.content_id.hex()[:16]}",
                                    "only its publisher or an admin may delete an item")
        return self._remove(record.content_id)

    def _remove(self, cid: bytes) -> int:
        freed = 0
        with self.catalog.intent("delete"):
            self.store.delete_manifest(cid)
            for digest in self.catalog.remove_item(cid):
                freed += self.store.delete(digest)
        return freed

    def expire(self, *, now: float) -> list[bytes]:
        """Remove every item whose ``expires`` has passed; returns their content ids."""
        gone = self.catalog.expired(now=now)
        for cid in gone:
            self._remove(cid)
        return gone

    def scrub(self, *, full: bool = False, started: float | None = None,
              finished: float | None = None) -> ScrubReport:
        """Check the store (fast xxh3, or BLAKE2b with ``full``); mark what failed missing.

        Each corrupt or missing chunk the catalog lists gets a
        :class:`RefetchChunk` effect (also in the report).
        """
        expected = [d for d in self.catalog.referenced()
                    if (self.catalog.chunk_state(d) or (False, None))[0]]
        report = scrub(self.store, full=full, expected=expected, started=started,
                       finished=finished)
        for digest in [*report.corrupt, *report.missing]:
            if self.catalog.chunk_state(digest) is not None:
                reason = report.reasons.get(digest, "missing from the store")
                self.catalog.mark_missing(digest, reason)
        self._effects.extend(report.repaired_effects)
        return report

    def placement(self, content_id: bytes, *, now: float, node_id: str,
                  **context) -> Placement:
        """:func:`~meshcore.content.distribution.evaluate` for a catalog item.

        ``context`` holds the other :class:`DistributionContext` fields
        (``tier``, ``known_nodes``, ...); ``free_bytes``, ``held``, ``origin``
        and ``stored_at`` default to this node's own state.
        """
        record = self.catalog.get(bytes(content_id))
        if record is None:
            raise UnknownContentError(bytes(content_id))
        signed = parse_manifest(self.store.read_manifest(record.content_id))
        context.setdefault("free_bytes", self.store.free_bytes)
        context.setdefault("held", self.store)
        context.setdefault("origin", record.origin)
        context.setdefault("stored_at", record.stored_at)
        context.setdefault("push_tier_scope", self.settings.push_tier_scope)
        return evaluate(signed.manifest, DistributionContext(node_id=node_id, **context), now=now)

    def signed_manifest(self, content_id: bytes) -> SignedManifest:
        """The verified signed manifest of a catalog item (no access check: node-internal)."""
        return parse_manifest(self.store.read_manifest(bytes(content_id)))
