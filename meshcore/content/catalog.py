"""The node's content catalog: SQLite over the chunk store, rebuildable from disk.

Theory of operation
-------------------
The chunk store (:mod:`meshcore.content.store`) holds the truth: chunk files
and signed manifest files, each written temp file + fsync + rename. The
catalog is an index over them (items, tags, ordered chunk lists, chunk
presence, pins, expiry, access counts) so that listing and serving do not
scan folders. It can always be rebuilt from the manifests and chunks on disk.

* **WAL, synchronous=FULL.** WAL lets readers run while a publish commits and
  makes a commit one sequential append. ``FULL`` fsyncs the WAL at every
  commit: the catalog row is the commit point of a publish (the user is told
  "published" after it), and the crash-recovery marker below is removed right
  after it, so a commit that a power cut could roll back (``NORMAL`` in WAL
  mode) would leave a published item unlisted with nothing telling the next
  open to look for it. The cost is one fsync per publish, against the
  hundreds of chunk fsyncs the publish already made. Access counts, the one
  frequent write, are buffered in memory and flushed in batches
  (:meth:`Catalog.flush_counts`): they are popularity hints, and losing the
  last few to a power cut is harmless.
* **Intent markers.** A mutating operation that touches the store and the
  catalog (publish, import, delete) first writes an fsynced marker file in
  ``<catalog>.journal/`` and removes it after the catalog commit
  (:meth:`Catalog.intent`). Write order for a publish: chunks, then the
  manifest file, then the catalog row in one transaction. On open, a marker
  left behind means a crash in the middle: the catalog is reconciled with the
  manifest files (a manifest file without a row whose chunks are all present
  is listed; a row whose manifest file is gone is dropped) and every chunk no
  item references is deleted (orphans of the interrupted publish). So a crash
  leaves either a complete listed item or nothing listed.
* **Corruption.** On open, ``PRAGMA integrity_check`` must say ``ok``. A
  database that fails it, cannot be opened, or is missing while the store
  holds manifests is moved aside (``catalog.sqlite.corrupt-N``) and rebuilt
  from the manifest files, each verified (signature and encoding) before it
  is indexed; chunk presence comes from the store. The rebuild is reported
  as a :class:`CatalogRebuilt` effect and a warning log line.
* **Schema versions** live in ``PRAGMA user_version``; :mod:`._schema` has
  the forward migrations. A database newer than this code is refused with a
  :class:`~meshcore.errors.StorageError` (never downgraded).

Sources: SQLite documentation, "Write-Ahead Logging" and "PRAGMA synchronous"
(https://sqlite.org/wal.html, https://sqlite.org/pragma.html#pragma_synchronous);
"How To Corrupt An SQLite Database File" (https://sqlite.org/howtocorrupt.html).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from meshcore._files import fsync_dir
from meshcore._lock import StateLock

from ..errors import DecodeError, StorageError
from ._encoding import Reader
from ._schema import MIGRATIONS, SCHEMA_VERSION
from .manifest import SIGNED_MAGIC, Manifest, SignedManifest, parse_manifest

__all__ = [
    "Catalog",
    "CatalogRebuilt",
    "ItemRecord",
    "OpenReport",
    "open_catalog",
    "writer_lock",
]

log = logging.getLogger("meshcore.content.catalog")

_ITEM_COLUMNS = (
    "content_id, name, size, media_type, access, distribution, retention, publisher, "
    "created, expires, stored_at, origin, complete"
)


@dataclass(frozen=True, slots=True)
class CatalogRebuilt:
    """Effect: the catalog was rebuilt from the store (``reason``: missing or corrupt).

    ``items`` rows were indexed, ``incomplete`` of them lack chunks,
    ``bad_manifests`` manifest files failed verification and were skipped,
    ``moved_to`` is where the broken database went (None when it was missing).
    """

    reason: str
    items: int
    incomplete: int
    bad_manifests: int
    moved_to: str | None = None


@dataclass(slots=True)
class OpenReport:
    """What :func:`open_catalog` found and did.

    ``rebuilt`` is set when the database was rebuilt; ``recovered`` counts
    items listed from manifest files after a crash, ``dropped`` rows whose
    manifest file was gone, ``orphans_removed`` unreferenced chunks deleted,
    ``migrated_from`` the schema version before migration (None if current),
    ``bad_manifests`` manifests that failed verification and were quarantined,
    ``deferred`` True when recovery was left for later because a writer held
    the lock (its files are not a crash's leftovers).
    """

    rebuilt: CatalogRebuilt | None = None
    recovered: int = 0
    dropped: int = 0
    orphans_removed: int = 0
    orphan_bytes: int = 0
    migrated_from: int | None = None
    interrupted: list[str] = field(default_factory=list)
    bad_manifests: int = 0
    deferred: bool = False


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """One catalog row: the manifest's fields plus this node's bookkeeping.

    ``stored_at`` is unix seconds; ``origin`` True when published here;
    ``complete`` True when every chunk is present. ``name`` is display text
    only and never used as a path.
    """

    content_id: bytes
    name: str
    size: int
    media_type: str
    access: str
    distribution: str
    retention: str | None
    publisher: bytes
    created: int
    expires: int | None
    stored_at: int
    origin: bool
    complete: bool
    tags: tuple[str, ...] = ()


def writer_lock(catalog_path: str | Path) -> StateLock:
    """The lock every writer of the catalog at ``catalog_path`` (and its store) holds."""
    path = Path(catalog_path)
    return StateLock(path.parent, path.name + ".writer", purpose="content writer")


def _manifests_on_disk(store) -> Iterator[tuple[bytes, bytes]]:
    for cid in store.iter_manifests():
        try:
            yield cid, store.read_manifest(cid)
        except KeyError:  # deleted since it was listed
            continue


class Catalog:
    """An open catalog database (use :func:`open_catalog`).

    Not thread-safe: one node process owns it. Methods raise
    :class:`StorageError` when SQLite reports an I/O error or a full disk.
    """

    def __init__(self, db: sqlite3.Connection, path: Path, store) -> None:
        self._db = db
        self.path = path
        self.store = store
        self._journal = path.with_name(path.name + ".journal")
        self._counts: dict[bytes, list[int]] = {}
        self.writer_lock = writer_lock(path)
        """Held by every store+catalog operation in progress (:meth:`intent`)."""

    # -- lifecycle ------------------------------------------------------------

    def close(self) -> None:
        """Flush buffered access counts and close the database."""
        if self._db is None:
            return
        with contextlib.suppress(StorageError):
            self.flush_counts()
        self._db.close()
        self._db = None  # type: ignore[assignment]

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def intent(self, what: str) -> Iterator[None]:
        """Mark a store+catalog operation in progress (see module doc: intent markers).

        The marker is fsynced before the body runs and removed when it ends,
        whether it succeeds or raises (a raise means nothing was committed and
        the caller cleaned up; only a crash leaves the marker). The folder's
        :attr:`writer_lock` is held throughout (waiting for another writer to
        finish), so recovery in another process never takes this operation's
        fresh chunks for a crash's orphans, and writers go one at a time.
        """
        with self.writer_lock, self._marker(what):
            yield

    @contextlib.contextmanager
    def _marker(self, what: str) -> Iterator[None]:
        marker = self._journal / f"{what}-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            self._journal.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_dir(self._journal)
        except OSError as exc:
            raise StorageError(f"{marker}: cannot write the intent marker: {exc.strerror}",
                               path=str(marker)) from exc
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()

    def _markers(self) -> list[Path]:
        if not self._journal.is_dir():
            return []
        return sorted(p for p in self._journal.iterdir() if p.is_file())

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise _storage_error(exc, self.path) from exc
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    # -- writing ----------------------------------------------------------------

    def add_item(
        self,
        signed: SignedManifest,
        *,
        stored_at: int,
        origin: bool = False,
        all_present: bool = False,
    ) -> ItemRecord:
        """Index one manifest in one transaction; returns its row.

        ``all_present`` says the caller just stored every chunk (publish); else
        presence is asked of the store chunk by chunk. Re-adding an indexed
        item changes nothing and returns the existing row.
        """
        m = signed.manifest
        cid = signed.content_id
        existing = self.get(cid)
        if existing is not None:
            return existing
        present: dict[bytes, bool] = {}
        for ref in m.chunks:
            if ref.digest not in present:
                present[ref.digest] = all_present or self.store.has(ref.digest)
        complete = all(present.values())
        with self._tx() as db:
            db.execute(
                f"INSERT INTO items ({_ITEM_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (cid, m.name, m.size, m.media_type, m.access, m.distribution, m.retention,
                 m.publisher, m.created, m.expires, int(stored_at), int(origin), int(complete)),
            )
            db.executemany("INSERT INTO item_tags VALUES (?,?)", ((cid, t) for t in m.tags))
            db.executemany(
                "INSERT INTO item_chunks VALUES (?,?,?,?)",
                ((cid, i, ref.digest, ref.size) for i, ref in enumerate(m.chunks)),
            )
            sizes = {ref.digest: ref.size for ref in m.chunks}
            db.executemany(
                "INSERT INTO chunks (digest, size, present) VALUES (?,?,?) "
                "ON CONFLICT(digest) DO UPDATE SET present = excluded.present, "
                "note = CASE WHEN excluded.present THEN NULL ELSE note END",
                ((d, sizes[d], int(p)) for d, p in present.items()),
            )
        record = self.get(cid)
        assert record is not None
        return record

    def remove_item(self, content_id: bytes) -> list[bytes]:
        """Drop an item's rows; return the digests no other item references (to delete)."""
        with self._tx() as db:
            digests = [r[0] for r in db.execute(
                "SELECT DISTINCT digest FROM item_chunks WHERE content_id = ?", (content_id,))]
            db.execute("DELETE FROM items WHERE content_id = ?", (content_id,))
            unreferenced = [
                d for d in digests
                if db.execute("SELECT 1 FROM item_chunks WHERE digest = ? LIMIT 1",
                              (d,)).fetchone() is None
            ]
            db.executemany("DELETE FROM chunks WHERE digest = ?", ((d,) for d in unreferenced))
        self._counts.pop(content_id, None)
        return unreferenced

    def mark_missing(self, digest: bytes, note: str) -> list[bytes]:
        """Record that chunk ``digest`` is gone (corrupt, quarantined); return affected items."""
        with self._tx() as db:
            db.execute("UPDATE chunks SET present = 0, note = ? WHERE digest = ?", (note, digest))
            items = [r[0] for r in db.execute(
                "SELECT DISTINCT content_id FROM item_chunks WHERE digest = ?", (digest,))]
            db.executemany("UPDATE items SET complete = 0 WHERE content_id = ?",
                           ((c,) for c in items))
        return items

    def mark_present(self, digest: bytes) -> list[bytes]:
        """Record that chunk ``digest`` is stored; return the items that became complete."""
        with self._tx() as db:
            db.execute("UPDATE chunks SET present = 1, note = NULL WHERE digest = ?", (digest,))
            items = [r[0] for r in db.execute(
                "SELECT DISTINCT content_id FROM item_chunks WHERE digest = ?", (digest,))]
            done = []
            for cid in items:
                gap = db.execute(
                    "SELECT 1 FROM item_chunks ic JOIN chunks c ON c.digest = ic.digest "
                    "WHERE ic.content_id = ? AND c.present = 0 LIMIT 1", (cid,)).fetchone()
                if gap is None:
                    cur = db.execute("UPDATE items SET complete = 1 WHERE content_id = ? "
                                     "AND complete = 0", (cid,))
                    if cur.rowcount:
                        done.append(cid)
        return done

    def pin(self, content_id: bytes, *, until: int | None, reason: str) -> None:
        """Pin an item (retention) until ``until`` (unix s, None = no end)."""
        with self._tx() as db:
            db.execute("INSERT INTO pins VALUES (?,?,?) ON CONFLICT(content_id) DO UPDATE "
                       "SET until = excluded.until, reason = excluded.reason",
                       (content_id, until, reason))

    def unpin(self, content_id: bytes) -> bool:
        """Remove a pin; True if there was one."""
        with self._tx() as db:
            return db.execute("DELETE FROM pins WHERE content_id = ?", (content_id,)).rowcount > 0

    def pinned(self, *, now: float) -> list[tuple[bytes, int | None]]:
        """Items pinned at ``now`` (unix s), with their end time."""
        rows = self._db.execute(
            "SELECT content_id, until FROM pins WHERE until IS NULL OR until > ? "
            "ORDER BY content_id", (now,))
        return [(r[0], r[1]) for r in rows]

    def record_access(self, content_id: bytes, nbytes: int, *, now: float) -> None:
        """Count one read of ``nbytes`` (buffered; see :meth:`flush_counts`)."""
        entry = self._counts.setdefault(content_id, [0, 0, 0])
        entry[0] += 1
        entry[1] += nbytes
        entry[2] = int(now)
        if len(self._counts) >= 256:
            self.flush_counts()

    def flush_counts(self) -> None:
        """Write buffered access counts in one transaction."""
        if not self._counts:
            return
        counts, self._counts = self._counts, {}
        with self._tx() as db:
            db.executemany(
                "INSERT INTO access_counts SELECT ?,?,?,? WHERE EXISTS "
                "(SELECT 1 FROM items WHERE content_id = ?1) "
                "ON CONFLICT(content_id) DO UPDATE SET reads = reads + excluded.reads, "
                "bytes = bytes + excluded.bytes, last_read = excluded.last_read",
                ((cid, r, b, t) for cid, (r, b, t) in counts.items()),
            )

    # -- reading -------------------------------------------------------------------

    def _record(self, row: tuple) -> ItemRecord:
        tags = tuple(r[0] for r in self._db.execute(
            "SELECT tag FROM item_tags WHERE content_id = ? ORDER BY tag", (row[0],)))
        return ItemRecord(*row[:11], bool(row[11]), bool(row[12]), tags)

    def get(self, content_id: bytes) -> ItemRecord | None:
        """The row of ``content_id``, or None."""
        row = self._db.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE content_id = ?", (bytes(content_id),)
        ).fetchone()
        return None if row is None else self._record(row)

    def items(self, *, tag: str | None = None, complete_only: bool = False) -> list[ItemRecord]:
        """Every row (or those tagged ``tag``), ordered by name then id."""
        where = []
        args: list = []
        if tag is not None:
            where.append("content_id IN (SELECT content_id FROM item_tags WHERE tag = ?)")
            args.append(tag)
        if complete_only:
            where.append("complete = 1")
        sql = f"SELECT {_ITEM_COLUMNS} FROM items"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY name, content_id"
        return [self._record(r) for r in self._db.execute(sql, args).fetchall()]

    def chunks_of(self, content_id: bytes) -> list[tuple[bytes, int]]:
        """``(digest, size)`` of each chunk of an item, in file order."""
        return [(r[0], r[1]) for r in self._db.execute(
            "SELECT digest, size FROM item_chunks WHERE content_id = ? ORDER BY seq",
            (content_id,))]

    def items_with_chunk(self, digest: bytes) -> list[bytes]:
        """Content ids of the items that contain chunk ``digest``."""
        return [r[0] for r in self._db.execute(
            "SELECT DISTINCT content_id FROM item_chunks WHERE digest = ?", (digest,))]

    def chunk_state(self, digest: bytes) -> tuple[bool, str | None] | None:
        """``(present, note)`` of a referenced chunk, or None if no item references it."""
        row = self._db.execute("SELECT present, note FROM chunks WHERE digest = ?",
                               (digest,)).fetchone()
        return None if row is None else (bool(row[0]), row[1])

    def missing_chunks(self) -> list[tuple[bytes, str | None]]:
        """``(digest, note)`` of every referenced chunk marked missing (corrupt, quarantined,
        not yet received), by digest."""
        return [(r[0], r[1]) for r in self._db.execute(
            "SELECT digest, note FROM chunks WHERE present = 0 ORDER BY digest")]

    def referenced(self) -> set[bytes]:
        """Every digest some item references."""
        return {r[0] for r in self._db.execute("SELECT digest FROM chunks")}

    def expired(self, *, now: float) -> list[bytes]:
        """Content ids whose ``expires`` is at or before ``now`` (unix s)."""
        return [r[0] for r in self._db.execute(
            "SELECT content_id FROM items WHERE expires IS NOT NULL AND expires <= ? "
            "ORDER BY expires", (now,))]

    def access_count(self, content_id: bytes) -> tuple[int, int]:
        """``(reads, bytes)`` served for an item, buffered counts included."""
        row = self._db.execute("SELECT reads, bytes FROM access_counts WHERE content_id = ?",
                               (content_id,)).fetchone()
        reads, nbytes = (0, 0) if row is None else row
        extra = self._counts.get(content_id)
        if extra:
            reads += extra[0]
            nbytes += extra[1]
        return reads, nbytes

    def schema_version(self) -> int:
        """``PRAGMA user_version`` of the open database."""
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM items").fetchone()[0]


# -- opening, migrating, rebuilding ---------------------------------------------------------



def _storage_error(exc: sqlite3.Error, path: Path) -> StorageError:
    text = str(exc)
    if "full" in text.lower():
        text = f"disk full: {text}"
    return StorageError(f"{path}: catalog write failed: {text}", path=str(path))


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in _tx),
    # so a failed statement can never leave an implicit transaction open.
    db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    db.execute("PRAGMA foreign_keys = ON")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":  # pragma: no cover - only on filesystems without shared memory
        log.warning("%s: WAL mode unavailable (journal_mode=%s)", path, mode)
    db.execute("PRAGMA synchronous = FULL")
    return db


def _check(db: sqlite3.Connection) -> str:
    rows = db.execute("PRAGMA integrity_check").fetchall()
    text = "; ".join(str(r[0]) for r in rows)
    return "ok" if text == "ok" else text


def _schema_problem(db: sqlite3.Connection) -> str | None:
    """Why an existing catalog file is not a catalog (None when it is one).

    SQLite opens a 0-byte file as an empty database, so a catalog truncated
    by a crash or an operator's ``> catalog.sqlite`` would pass the integrity
    check and list nothing: it is corrupt, and rebuilt like any other.
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version == 0:
        if not tables:
            return "empty database (no catalog schema)"
        return f"not a catalog (tables {', '.join(sorted(tables))}, no schema version)"
    return None


def _migrate(db: sqlite3.Connection, path: Path) -> int | None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"{path}: catalog schema version {version} is newer than this meshcore "
            f"supports ({SCHEMA_VERSION}); upgrade meshcore or run rebuild-catalog",
            path=str(path),
        )
    if version == SCHEMA_VERSION:
        return None
    for target in range(version + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[target - 1]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return version


def _statements(script: str) -> Iterator[str]:
    # executescript() would COMMIT the enclosing transaction; split instead.
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line.split("--", 1)[0] if "--" in line else line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf.strip()
            buf = ""


def _move_aside(path: Path, kind: str = "corrupt") -> Path:
    n = 1
    while True:
        target = path.with_name(f"{path.name}.{kind}-{n}")
        if not target.exists():
            break
        n += 1
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


def _rebuild(db_path: Path, store, *, now: float, reason: str,
             moved_to: Path | None) -> tuple[Catalog, CatalogRebuilt]:
    db = _connect(db_path)
    _migrate(db, db_path)
    catalog = Catalog(db, db_path, store)
    items = incomplete = 0
    bad = 0
    for cid, raw in _manifests_on_disk(store):
        signed = _verified_or_quarantined(store, cid, raw, db_path)
        if signed is None:
            bad += 1
            continue
        record = catalog.add_item(signed, stored_at=int(now), origin=False)
        items += 1
        incomplete += not record.complete
    report = CatalogRebuilt(reason, items, incomplete, bad,
                            None if moved_to is None else str(moved_to))
    log.warning(
        "%s: catalog rebuilt from the store (%s): %d items, %d incomplete, %d bad manifests",
        db_path, reason, items, incomplete, bad,
    )
    return catalog, report


def _verified_or_quarantined(store, cid: bytes, raw: bytes, where: Path) -> SignedManifest | None:
    """The verified manifest, or None after moving a bad one to the quarantine.

    A manifest that fails verification is never deleted, and its chunks are
    kept (see :func:`_protected`): a flipped bit in a signature must not cost
    the node the item's data.
    """
    try:
        signed = parse_manifest(raw)
        if signed.content_id != cid:
            raise DecodeError("manifest file name does not match its content id")
        return signed
    except DecodeError as exc:
        log.warning("%s: manifest %s fails verification (%s); quarantined, its chunks kept",
                    where, bytes(cid).hex(), exc)
        with contextlib.suppress(KeyError):
            store.quarantine_manifest(cid, f"fails verification: {exc}")
        return None


def unverified_chunks(raw: bytes) -> list[bytes] | None:
    """The chunk digests a manifest lists, read without checking its signature.

    For a quarantined manifest: its signature is bad, but the chunk list of a
    body that still decodes says which chunks to keep. None when the body
    does not decode either.
    """
    try:
        r = Reader(bytes(raw), "manifest")
        if r.take(len(SIGNED_MAGIC), "magic") != SIGNED_MAGIC:
            return None
        n = r.varint("body length")
        body = bytes(raw)[r.pos : r.pos + n]
        if len(body) != n:
            return None
        return [ref.digest for ref in Manifest.decode(body).chunks]
    except (DecodeError, ValueError, TypeError):
        return None


#: How long a quarantined manifest protects the chunks it lists (seconds, from the
#: time it was quarantined): long enough for an operator to look (docs/content/operations.md).
QUARANTINE_GRACE = 30 * 86400.0


def _protected(store, *, now: float) -> tuple[set[bytes], bool]:
    """Chunks listed by quarantined manifests still within their grace period.

    The flag is True when a manifest in its grace period does not decode at
    all: nobody can tell which chunks it needs, so no orphan may be deleted.
    """
    keep: set[bytes] = set()
    unknown = False
    for _cid, path, _reason, when in store.quarantined_manifests():
        if now - when > QUARANTINE_GRACE:
            continue
        try:
            digests = unverified_chunks(store.read_quarantined(path))
        except (KeyError, DecodeError, StorageError):
            digests = None
        if digests is None:
            unknown = True
        else:
            keep.update(digests)
    return keep, unknown


def open_catalog(path: str | Path, store, *, now: float,
                 rebuild: str | None = None) -> tuple[Catalog, OpenReport]:
    """Open (create, migrate, check, recover or rebuild) the catalog at ``path`` over ``store``.

    ``store`` is the node's :class:`~meshcore.content.store.ChunkStore`;
    ``now`` (unix s) stamps rows created by a rebuild. With ``rebuild`` (the
    reason, e.g. ``"requested"``) an existing database is moved to
    ``<name>.old-N`` and the catalog rebuilt from the store whatever its
    state. Returns the catalog and an :class:`OpenReport`. Raises
    :class:`StorageError` when the database cannot be created, or is newer
    than this code.
    """
    db_path = Path(path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    report = OpenReport()
    if rebuild is not None:
        moved = None
        if db_path.exists() or db_path.is_symlink():
            try:
                moved = _move_aside(db_path, "old")
            except OSError as exc:
                raise StorageError(f"{db_path}: cannot move aside: {exc.strerror}",
                                   path=str(db_path)) from exc
        catalog, report.rebuilt = _rebuild(db_path, store, now=now, reason=rebuild,
                                           moved_to=moved)
        _recover(catalog, report, now=now, force_gc=True)
        return catalog, report
    has_manifests = next(iter(store.iter_manifests()), None) is not None
    if not db_path.exists():
        if has_manifests:
            catalog, report.rebuilt = _rebuild(db_path, store, now=now,
                                               reason="database missing", moved_to=None)
            _recover(catalog, report, now=now, force_gc=True)
            return catalog, report
        try:
            db = _connect(db_path)
            _migrate(db, db_path)
        except sqlite3.Error as exc:
            raise _storage_error(exc, db_path) from exc
        catalog = Catalog(db, db_path, store)
        _recover(catalog, report, now=now, force_gc=False)
        return catalog, report
    problem = None
    db = None
    try:
        db = _connect(db_path)
        problem = _check(db)
        if problem == "ok":
            problem = _schema_problem(db)
        if problem is None:
            report.migrated_from = _migrate(db, db_path)
    except sqlite3.DatabaseError as exc:
        problem = f"cannot read: {exc}"
    if problem is not None:
        if db is not None:
            db.close()
        moved = _move_aside(db_path)
        catalog, report.rebuilt = _rebuild(db_path, store, now=now,
                                           reason=f"integrity check failed: {problem}",
                                           moved_to=moved)
        _recover(catalog, report, now=now, force_gc=True)
        return catalog, report
    assert db is not None
    catalog = Catalog(db, db_path, store)
    _recover(catalog, report, now=now, force_gc=False)
    return catalog, report


def _recover(catalog: Catalog, report: OpenReport, *, now: float, force_gc: bool) -> None:
    markers = catalog._markers()
    if not markers and not force_gc:
        return
    with catalog.writer_lock.idle() as idle:
        if not idle:
            # A writer is at work (here or in another process): its markers
            # are not a crash, and its fresh chunks are not orphans yet.
            report.deferred = True
            log.info("%s: a writer holds %s; crash recovery left for a later open",
                     catalog.path, catalog.writer_lock.path)
            return
        _reconcile(catalog, report, markers, now=now)


def _reconcile(catalog: Catalog, report: OpenReport, markers: list[Path], *, now: float) -> None:
    report.interrupted = [m.name for m in markers]
    if markers:
        log.warning("%s: %d interrupted operation(s) found; reconciling with the store",
                    catalog.path, len(markers))
    store = catalog.store
    on_disk: set[bytes] = set()
    for cid, raw in _manifests_on_disk(store):
        if catalog.get(cid) is not None:
            on_disk.add(bytes(cid))
            continue
        signed = _verified_or_quarantined(store, cid, raw, catalog.path)
        if signed is None:
            report.bad_manifests += 1
            continue
        on_disk.add(bytes(cid))
        if all(store.has(ref.digest) for ref in signed.manifest.chunks):
            catalog.add_item(signed, stored_at=int(now), origin=False, all_present=True)
            report.recovered += 1
        else:
            # A manifest whose chunks never all landed: an interrupted publish
            # or import. Nothing listed it yet, so remove it.
            store.delete_manifest(cid)
    for record in catalog.items():
        if record.content_id not in on_disk:
            catalog.remove_item(record.content_id)
            report.dropped += 1
    keep = catalog.referenced()
    quarantined, unknown = _protected(store, now=now)
    if unknown:
        log.warning("%s: a quarantined manifest does not decode; no unreferenced chunk is "
                    "deleted while it is kept (docs/content/operations.md)", catalog.path)
    else:
        keep |= quarantined
        for digest in list(store):
            if digest not in keep:
                report.orphan_bytes += store.delete(digest)
                report.orphans_removed += 1
    for marker in markers:
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
