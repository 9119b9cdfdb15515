"""Local history: per-minute, per-hour and per-day rollups in SQLite, bounded in size.

Theory of operation
-------------------
The :class:`~meshcore.analytics.events.Collector` closes windows and returns
:class:`Rollup` records (sans-I/O); the node driver hands them to
:meth:`RollupStore.write`. One table holds all three resolutions::

    rollup(node TEXT, res TEXT, start INTEGER, <counter columns>, users INTEGER,
           households INTEGER, jfi REAL, h00 INTEGER, ..., h23 INTEGER, sketch BLOB,
           PRIMARY KEY (res, start, node)) WITHOUT ROWID

``start`` is the window's start in Unix seconds (UTC, aligned to 60, 3600 or
86400). Writing a record whose key exists *replaces* it, so a window that is
delivered or written twice is stored once (idempotent). The key starts with
``(res, start)`` so that a report's time range is one sequential run of the
table's b-tree (no secondary index, no per-row look-ups). ``sketch`` (hour and
day rows only, optional) is the zlib-compressed window's HyperLogLog
registers and Misra-Gries top-k (:func:`pack_sketches`), so that unique users and top
content can be merged over any range; ``h00`` ... ``h23`` (day rows; NULL
otherwise) hold the requests by hour of day, for peak-hour tables without
hour rows, summed by SQLite itself in reports.

**Bounded size.** :meth:`RollupStore.prune` deletes rows older than each
resolution's retention (defaults: 7 days of minutes, 31 days of hours, 366
days of days). Measured sizes (``tests/test_analytics_rollups.py`` prints
them; see docs/analytics.md): one node, full retention, ~3 MiB; 200 nodes'
hour and day rows without sketches plus the mesh's own rows with sketches,
a few tens of MiB.

**Corruption.** Opening runs ``PRAGMA quick_check``; a file that is not a
database, fails the check, or has a foreign schema is renamed to
``<name>.corrupt-<n>`` (with its ``-wal``/``-shm`` files), a new empty
database is created, and :attr:`RollupStore.recovered` describes what
happened so the driver can log it. The node keeps running; history is lost
but nothing else is. A write that hits corruption later does the same and
retries once. A full disk raises :class:`~meshcore.errors.StorageError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from ..errors import DecodeError, StorageError
from ..tiers import SERVED_FROM
from .sketches import HyperLogLog, MisraGries

__all__ = [
    "COUNTER_FIELDS",
    "MESH_NODE",
    "RESOLUTIONS",
    "TIERS",
    "RangeTotals",
    "Recovery",
    "Rollup",
    "RollupStore",
    "pack_sketches",
    "totals_of",
    "unpack_sketches",
]

#: Where a request was served from: this node's store, a node on the same
#: segment, a node elsewhere in the mesh, or the external uplink (the
#: analytics groups of :class:`meshcore.tiers.Tier`).
TIERS = SERVED_FROM
#: Window lengths in seconds by resolution name.
RESOLUTIONS = {"minute": 60, "hour": 3600, "day": 86400}
#: Exact counters of a window, in column order.
COUNTER_FIELDS = (
    *(f"req_{t}" for t in TIERS),
    *(f"bytes_{t}" for t in TIERS),
    "req_failed",
    "req_to_peers",
    "bytes_to_peers",
    "outage_seconds",
    "outage_requests",
    "outage_served",
    "quota_actions",
    "congestion_episodes",
    "link_changes",
)
_FIELD_SET = frozenset(COUNTER_FIELDS)
_SCHEMA_VERSION = 1
_HOUR_COLUMNS = tuple(f"h{h:02d}" for h in range(24))
_COLUMNS = (
    "node", "res", "start", *COUNTER_FIELDS, "users", "households", "jfi", *_HOUR_COLUMNS,
    "sketch",
)


@dataclass(frozen=True, slots=True)
class Rollup:
    """One closed window of one node (or ``node="*"`` for mesh-wide figures).

    ``counters`` maps names from :data:`COUNTER_FIELDS` to numbers (missing =
    0; ``outage_seconds`` may be fractional). ``users``/``households`` are
    distinct-count estimates, ``jfi`` Jain's index of per-user bytes (None
    without traffic), ``hours`` 24 request counts by hour (day rows), and
    ``sketch`` the serialised sketches (see module doc) or None.
    """

    node: str
    resolution: str
    start: int
    counters: Mapping[str, float] = field(default_factory=dict)
    users: int = 0
    households: int = 0
    jfi: float | None = None
    hours: tuple[int, ...] | None = None
    sketch: bytes | None = None

    def __post_init__(self) -> None:
        if self.resolution not in RESOLUTIONS:
            raise ValueError(
                f"resolution: expected one of {', '.join(RESOLUTIONS)}, got {self.resolution!r}"
            )
        if self.hours is not None and len(self.hours) != 24:
            raise ValueError(f"hours: expected 24 counts, got {len(self.hours)}")
        if not self.counters.keys() <= _FIELD_SET:
            unknown = sorted(set(self.counters) - _FIELD_SET)
            raise ValueError(f"counters: unknown counter(s) {unknown}")

    @property
    def end(self) -> int:
        """End of the window (exclusive), Unix seconds."""
        return self.start + RESOLUTIONS[self.resolution]

    def get(self, name: str) -> float:
        """A counter's value (0 when absent)."""
        return self.counters.get(name, 0)


_SKETCH_MAGIC = b"MS2"


def pack_sketches(
    users: HyperLogLog, households: HyperLogLog, top: MisraGries, *, top_limit: int | None = None
) -> bytes:
    """Serialise a window's sketches for the ``sketch`` column.

    Layout before zlib compression: ``b"MS2"``, then for users and households
    a 4-byte big-endian length and :meth:`HyperLogLog.to_bytes`, then UTF-8
    JSON of :meth:`MisraGries.to_dict`. ``top_limit`` keeps at most that many
    counters (:meth:`MisraGries.truncated`: a valid summary with
    ``k = top_limit``), so storage shrinks without breaking the guarantees.
    """
    if top_limit is not None and top_limit < top.k:
        top = top.truncated(top_limit)
    u = users.to_bytes()
    h = households.to_bytes()
    body = json.dumps(top.to_dict(), separators=(",", ":")).encode()
    raw = _SKETCH_MAGIC + struct.pack(">I", len(u)) + u + struct.pack(">I", len(h)) + h + body
    return zlib.compress(raw, 6)  # level 9 cost 18x the time for 7% less space


def unpack_sketches(blob: bytes) -> tuple[HyperLogLog, HyperLogLog, MisraGries]:
    """Inverse of :func:`pack_sketches`; raises DecodeError on corrupt data."""
    try:
        raw = zlib.decompress(blob)
        if raw[:3] != _SKETCH_MAGIC:
            raise DecodeError("rollup sketch: bad magic")
        (n,) = struct.unpack_from(">I", raw, 3)
        users = HyperLogLog.from_bytes(raw[7 : 7 + n])
        pos = 7 + n
        (m,) = struct.unpack_from(">I", raw, pos)
        households = HyperLogLog.from_bytes(raw[pos + 4 : pos + 4 + m])
        top = MisraGries.from_dict(json.loads(raw[pos + 4 + m :]))
    except DecodeError:
        raise
    except (KeyError, TypeError, ValueError, struct.error, zlib.error) as exc:
        raise DecodeError(f"rollup sketch: malformed: {exc}") from None
    return users, households, top


#: Node id of mesh-wide rows (written by the aggregating node).
MESH_NODE = "*"
_TIER_FIELDS = tuple(f for f in COUNTER_FIELDS if f.startswith(("req_", "bytes_"))
                     and f.split("_", 1)[1] in TIERS)


@dataclass(frozen=True, slots=True)
class RangeTotals:
    """Sums of the rollups of one resolution over a time range (what reports need).

    Which rows count (the same rule in SQL and in Python): counters come from
    per-node rows when the range has any, else from :data:`MESH_NODE` rows;
    Jain's index from mesh rows when the range has any, else averaged over
    nodes. ``per_node``: counter sums per node; ``series``: tier counters
    (``req_<tier>``, ``bytes_<tier>``) per window start; ``hours``: summed
    24-hour request profiles of day rows per start; ``jfi``: per start,
    ``(mean, rows)``; ``max_users``/``max_households``: the largest
    per-window estimate (a lower bound on the range's unique count).
    """

    per_node: dict[str, dict[str, float]]
    series: dict[int, dict[str, float]]
    hours: dict[int, list[int]]
    jfi: dict[int, tuple[float, int]]
    max_users: int
    max_households: int
    has_mesh_rows: bool


def totals_of(rows: Iterable[Rollup], resolution: str, start: float, end: float) -> RangeTotals:
    """:class:`RangeTotals` of in-memory rollups (same rules as :meth:`RollupStore.totals`)."""
    chosen = [r for r in rows if r.resolution == resolution and start <= r.start < end]
    has_nodes = any(r.node != MESH_NODE for r in chosen)
    has_mesh = any(r.node == MESH_NODE for r in chosen)
    counted = [r for r in chosen if (r.node != MESH_NODE) == has_nodes]
    per_node: dict[str, dict[str, float]] = {}
    series: dict[int, dict[str, float]] = {}
    hours: dict[int, list[int]] = {}
    for r in counted:
        mine = per_node.setdefault(r.node, {})
        for k, v in r.counters.items():
            mine[k] = mine.get(k, 0) + v
        slot = series.setdefault(r.start, {})
        for k in _TIER_FIELDS:
            v = r.counters.get(k)
            if v:
                slot[k] = slot.get(k, 0) + v
        if r.hours is not None:
            acc = hours.get(r.start)
            hours[r.start] = list(r.hours) if acc is None else [
                a + b for a, b in zip(acc, r.hours, strict=True)]
    jfis: dict[int, list[float]] = {}
    for r in chosen:
        if r.jfi is not None and (r.node == MESH_NODE) == has_mesh:
            jfis.setdefault(r.start, []).append(r.jfi)
    return RangeTotals(
        per_node, series, hours,
        {s: (sum(v) / len(v), len(v)) for s, v in jfis.items()},
        max((r.users for r in counted), default=0),
        max((r.households for r in counted), default=0),
        has_mesh,
    )


@dataclass(frozen=True, slots=True)
class Recovery:
    """A rollup database that could not be used was moved aside and rebuilt empty."""

    path: str
    moved_to: str
    reason: str


_CREATE = f"""
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rollup(
    node TEXT NOT NULL, res TEXT NOT NULL, start INTEGER NOT NULL,
    {", ".join(f"{c} {'REAL' if c == 'outage_seconds' else 'INTEGER'} NOT NULL DEFAULT 0"
               for c in COUNTER_FIELDS)},
    users INTEGER NOT NULL DEFAULT 0, households INTEGER NOT NULL DEFAULT 0,
    jfi REAL, {", ".join(f"{c} INTEGER" for c in _HOUR_COLUMNS)}, sketch BLOB,
    PRIMARY KEY (res, start, node)
) WITHOUT ROWID;
"""


class RollupStore:
    """SQLite (WAL) history of rollups at ``path`` (``":memory:"`` for tests).

    ``retention``: seconds kept per resolution (defaults 7 d / 31 d / 366 d).
    Opening never fails on a corrupt file (see module doc); it raises
    :class:`StorageError` only when a fresh database cannot be created either.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        retention: Mapping[str, float] | None = None,
    ) -> None:
        self.path = str(path)
        self.retention = {"minute": 7 * 86400.0, "hour": 31 * 86400.0, "day": 366 * 86400.0}
        if retention:
            for res, seconds in retention.items():
                if res not in RESOLUTIONS:
                    raise ValueError(f"retention: unknown resolution {res!r}")
                if not isinstance(seconds, int | float) or seconds <= 0:
                    raise ValueError(f"retention[{res!r}]: expected seconds > 0, got {seconds!r}")
                self.retention[res] = float(seconds)
        self.recovered: Recovery | None = None
        self._db = self._open_checked()

    # -- opening and recovery ----------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {row[0] if row else 'no result'}")
            db.executescript(_CREATE)
            version = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(_SCHEMA_VERSION),))
            elif version[0] != str(_SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"schema version {version[0]!r} is not supported")
            cols = [r[1] for r in db.execute("PRAGMA table_info(rollup)")]
            if tuple(cols) != _COLUMNS:
                raise sqlite3.DatabaseError("rollup table has unexpected columns")
        except BaseException:
            db.close()
            raise
        return db

    def _open_checked(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if _is_full(exc):
                raise StorageError(f"rollup database: disk full: {exc}", path=self.path) from None
            return self._recover(str(exc))

    def _recover(self, reason: str) -> sqlite3.Connection:
        if self.path == ":memory:":  # pragma: no cover - memory databases cannot be corrupt
            raise StorageError(f"rollup database: {reason}", path=self.path)
        n = 1
        while os.path.exists(f"{self.path}.corrupt-{n}"):
            n += 1
        moved = f"{self.path}.corrupt-{n}"
        try:
            if os.path.exists(self.path):
                os.replace(self.path, moved)
            for suffix in ("-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.replace(self.path + suffix, moved + suffix)
            db = self._connect()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StorageError(
                f"rollup database {self.path} is unusable ({reason}) and could not be "
                f"rebuilt: {exc}",
                path=self.path,
            ) from None
        self.recovered = Recovery(self.path, moved, reason)
        return db

    def close(self) -> None:
        """Close the database (further calls raise sqlite3.ProgrammingError)."""
        self._db.close()

    def __enter__(self) -> RollupStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------

    def write(self, rollups: Iterable[Rollup]) -> int:
        """Store rollups (replacing rows with the same node, resolution and start).

        Returns the number written. A corrupt database is recovered (see
        :attr:`recovered`) and the write retried once; a full disk raises
        :class:`StorageError`.
        """
        rows = [_row(r) for r in rollups]
        placeholders = ", ".join("?" * len(_COLUMNS))
        sql = f"INSERT OR REPLACE INTO rollup ({', '.join(_COLUMNS)}) VALUES ({placeholders})"
        for attempt in (0, 1):
            try:
                with _transaction(self._db):
                    self._db.executemany(sql, rows)
                return len(rows)
            except sqlite3.DatabaseError as exc:
                if _is_full(exc):
                    raise StorageError(
                        f"rollup database: disk full: {exc}", path=self.path
                    ) from None
                if attempt or (isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)):
                    raise StorageError(f"rollup database: {exc}", path=self.path) from None
                self._db.close()
                self._db = self._recover(str(exc))
        raise AssertionError("unreachable")  # pragma: no cover

    def prune(self, *, now: float) -> int:
        """Delete rows older than their resolution's retention; returns rows deleted."""
        deleted = 0
        with _transaction(self._db):
            for res, keep in self.retention.items():
                cur = self._db.execute(
                    "DELETE FROM rollup WHERE res = ? AND start < ?", (res, int(now - keep))
                )
                deleted += cur.rowcount
        return deleted

    def vacuum(self) -> None:
        """Give freed pages back to the file system (after a large prune)."""
        self._db.execute("VACUUM")

    # -- reading ------------------------------------------------------------

    def query(
        self,
        resolution: str,
        start: float,
        end: float,
        *,
        node: str | None = None,
        sketches: bool = True,
    ) -> Iterator[Rollup]:
        """Rollups of ``resolution`` whose window starts in ``[start, end)``, by start, node.

        ``node`` restricts to one node; ``sketches=False`` skips the sketch
        column (faster for counter-only reports).
        """
        if resolution not in RESOLUTIONS:
            raise ValueError(
                f"resolution: expected one of {', '.join(RESOLUTIONS)}, got {resolution!r}"
            )
        if end < start:
            raise ValueError(f"end: range end {end!r} is before its start {start!r}")
        cols = list(_COLUMNS) if sketches else list(_COLUMNS[:-1])
        sql = f"SELECT {', '.join(cols)} FROM rollup WHERE res = ? AND start >= ? AND start < ?"
        args: list = [resolution, int(start), int(end) if end == int(end) else int(end) + 1]
        if node is not None:
            sql += " AND node = ?"
            args.append(node)
        sql += " ORDER BY start, node"
        n = len(COUNTER_FIELDS)
        for row in self._db.execute(sql, args):
            counters = {name: v for name, v in zip(COUNTER_FIELDS, row[3 : 3 + n], strict=True)
                        if v}
            profile = row[6 + n : 30 + n]
            hours = tuple(profile) if profile[0] is not None else None
            yield Rollup(
                node=row[0],
                resolution=row[1],
                start=row[2],
                counters=counters,
                users=row[3 + n],
                households=row[4 + n],
                jfi=row[5 + n],
                hours=hours,
                sketch=row[30 + n] if sketches else None,
            )

    def nodes(self) -> list[str]:
        """Node ids present in the store, sorted."""
        return [r[0] for r in self._db.execute("SELECT DISTINCT node FROM rollup ORDER BY node")]

    def count(self, resolution: str | None = None) -> int:
        """Number of rows (of one resolution, or all)."""
        if resolution is None:
            return self._db.execute("SELECT COUNT(*) FROM rollup").fetchone()[0]
        return self._db.execute(
            "SELECT COUNT(*) FROM rollup WHERE res = ?", (resolution,)
        ).fetchone()[0]


    def totals(self, resolution: str, start: float, end: float) -> RangeTotals:
        """:class:`RangeTotals` of ``[start, end)``, summed by SQLite (no row objects)."""
        if resolution not in RESOLUTIONS:
            raise ValueError(
                f"resolution: expected one of {', '.join(RESOLUTIONS)}, got {resolution!r}"
            )
        if end < start:
            raise ValueError(f"end: range end {end!r} is before its start {start!r}")
        lo, hi = int(start), int(end) if end == int(end) else int(end) + 1
        where = "res = ? AND start >= ? AND start < ?"
        args = (resolution, lo, hi)
        db = self._db
        has_nodes = db.execute(
            f"SELECT EXISTS(SELECT 1 FROM rollup WHERE {where} AND node != ?)", (*args, MESH_NODE)
        ).fetchone()[0]
        has_mesh = db.execute(
            f"SELECT EXISTS(SELECT 1 FROM rollup WHERE {where} AND node = ?)", (*args, MESH_NODE)
        ).fetchone()[0]
        node_op = "!=" if has_nodes else "="
        counted = f"{where} AND node {node_op} ?"
        cargs = (*args, MESH_NODE)
        sums = ", ".join(f"SUM({c})" for c in COUNTER_FIELDS)
        per_node = {}
        max_users = max_households = 0
        for row in db.execute(
            f"SELECT node, {sums}, MAX(users), MAX(households) FROM rollup WHERE {counted} "
            "GROUP BY node", cargs
        ):
            per_node[row[0]] = {
                c: v for c, v in zip(COUNTER_FIELDS, row[1:-2], strict=True) if v
            }
            max_users = max(max_users, row[-2] or 0)
            max_households = max(max_households, row[-1] or 0)
        tier_sums = ", ".join(f"SUM({c})" for c in (*_TIER_FIELDS, *_HOUR_COLUMNS))
        series = {}
        hours: dict[int, list[int]] = {}
        nt = len(_TIER_FIELDS)
        for row in db.execute(
            f"SELECT start, {tier_sums} FROM rollup WHERE {counted} GROUP BY start", cargs
        ):
            series[row[0]] = {
                c: v for c, v in zip(_TIER_FIELDS, row[1 : 1 + nt], strict=True) if v
            }
            if row[1 + nt] is not None:  # SUM of an all-NULL column is NULL: no profiles
                hours[row[0]] = [v or 0 for v in row[1 + nt :]]
        jfi_where = f"{where} AND node {'=' if has_mesh else '!='} ? AND jfi IS NOT NULL"
        jfi = {
            row[0]: (row[1], row[2])
            for row in db.execute(
                f"SELECT start, AVG(jfi), COUNT(jfi) FROM rollup WHERE {jfi_where} "
                "GROUP BY start", cargs
            )
        }
        return RangeTotals(per_node, series, hours, jfi, max_users, max_households,
                           bool(has_mesh))


_NO_HOURS = (None,) * 24


def _row(r: Rollup) -> tuple:
    if not isinstance(r, Rollup):
        raise TypeError(f"rollups: expected Rollup records, got {type(r).__name__}")
    return (
        r.node,
        r.resolution,
        int(r.start),
        *(r.counters.get(c, 0) for c in COUNTER_FIELDS),
        int(r.users),
        int(r.households),
        r.jfi,
        *(r.hours if r.hours is not None else _NO_HOURS),
        r.sketch,
    )


def _is_full(exc: Exception) -> bool:
    text = str(exc).lower()
    return "disk is full" in text or "database or disk is full" in text


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")

