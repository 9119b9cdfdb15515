"""Rollup store: idempotent writes, range queries, retention, corruption recovery, size."""

from __future__ import annotations

import os
import random
import sqlite3
import zlib
from collections import Counter

import pytest

from meshcore.analytics.rollups import (
    COUNTER_FIELDS,
    Rollup,
    RollupStore,
    pack_sketches,
    unpack_sketches,
)
from meshcore.analytics.sketches import HyperLogLog, MisraGries
from meshcore.errors import DecodeError, StorageError

DAY0 = 1_763_942_400


def _sketch(seed: int, users: int = 300, p: int = 12) -> bytes:
    rnd = random.Random(seed)
    u, h, t = HyperLogLog(p), HyperLogLog(p), MisraGries(100)
    for _ in range(users):
        u.add(f"u{rnd.randrange(10**6)}")
        h.add(f"h{rnd.randrange(10**5)}")
    # content ids are BLAKE2b-256 hex digests; Zipf-like popularity
    t.add_counts(Counter(f"{int(rnd.paretovariate(0.8)):064x}" for _ in range(3000)))
    return pack_sketches(u, h, t, top_limit=32)


def test_write_query_and_replace_is_idempotent(tmp_path):
    store = RollupStore(tmp_path / "r.db")
    a = Rollup("n1", "hour", DAY0, {"req_local": 3, "outage_seconds": 1.5}, users=2, jfi=0.5,
               sketch=_sketch(1, 10))
    b = Rollup("n2", "hour", DAY0, {"req_mesh": 4})
    assert store.write([a, b, a]) == 3
    assert store.count() == 2
    got = list(store.query("hour", DAY0, DAY0 + 3600))
    assert [r.node for r in got] == ["n1", "n2"]
    assert got[0] == a  # every field round-trips
    newer = Rollup("n1", "hour", DAY0, {"req_local": 5})
    store.write([newer])
    assert [r.get("req_local") for r in store.query("hour", DAY0, DAY0 + 1, node="n1")] == [5]
    assert list(store.query("hour", DAY0 + 3600, DAY0 + 7200)) == []
    assert [r.sketch for r in store.query("hour", 0, 2e9, sketches=False)] == [None, None]
    assert store.nodes() == ["n1", "n2"]
    assert store.count("day") == 0
    store.close()


def test_query_range_errors_and_bad_records(tmp_path):
    with RollupStore(tmp_path / "r.db") as store:
        with pytest.raises(ValueError, match="before its start"):
            list(store.query("day", 10, 5))
        with pytest.raises(ValueError, match="resolution"):
            list(store.query("week", 0, 5))
        with pytest.raises(TypeError):
            store.write(["row"])
    with pytest.raises(ValueError, match="resolution"):
        Rollup("n", "week", 0)
    with pytest.raises(ValueError, match="unknown counter"):
        Rollup("n", "day", 0, {"bogus": 1})
    with pytest.raises(ValueError, match="retention"):
        RollupStore(tmp_path / "x.db", retention={"week": 1})
    with pytest.raises(ValueError, match="retention"):
        RollupStore(tmp_path / "x.db", retention={"day": 0})


def test_prune_keeps_each_resolution_for_its_retention(tmp_path):
    store = RollupStore(tmp_path / "r.db", retention={"minute": 3600, "hour": 86400})
    now = DAY0 + 10 * 86400
    rows = [Rollup("n", "minute", now - 60 * i, {"req_local": 1}) for i in range(120)]
    rows += [Rollup("n", "hour", now - 3600 * i, {"req_local": 1}) for i in range(48)]
    rows += [Rollup("n", "day", now - 86400 * i, {"req_local": 1}) for i in range(10)]
    store.write(rows)
    deleted = store.prune(now=now)
    assert store.count("minute") == 61  # starts within [now - 3600, now]
    assert store.count("hour") == 25
    assert store.count("day") == 10  # default retention: 366 days
    assert deleted == 120 - 61 + 48 - 25
    store.vacuum()


@pytest.mark.parametrize(
    "damage",
    ["truncated", "foreign-schema", "bad-version"],
)
def test_corrupt_database_is_moved_aside_and_rebuilt(tmp_path, damage):
    path = tmp_path / "rollups.db"
    store = RollupStore(path)
    store.write([Rollup("n", "day", DAY0, {"req_local": 1})])
    store.close()
    if damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[:700])
    elif damage == "foreign-schema":
        path.unlink()
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE rollup(x)")
        db.commit()
        db.close()
    else:
        db = sqlite3.connect(path)
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
        db.commit()
        db.close()
    store = RollupStore(path)
    assert store.recovered is not None
    assert store.recovered.moved_to == f"{path}.corrupt-1"
    assert os.path.exists(store.recovered.moved_to)
    assert store.count() == 0  # rebuilt empty, usable
    store.write([Rollup("n", "day", DAY0, {"req_local": 2})])
    assert store.count() == 1
    store.close()
    assert RollupStore(path).recovered is None


def test_corruption_found_while_writing_recovers_and_retries(tmp_path):
    path = tmp_path / "r.db"
    store = RollupStore(path)

    class Broken:
        def __init__(self, real):
            self.real = real
            self.calls = 0

        def execute(self, *a):
            return self.real.execute(*a)

        def executemany(self, *a):
            raise sqlite3.DatabaseError("database disk image is malformed")

        def close(self):
            self.real.close()

    store._db = Broken(store._db)
    assert store.write([Rollup("n", "day", DAY0, {"req_local": 1})]) == 1
    assert store.recovered is not None and "malformed" in store.recovered.reason
    assert store.count() == 1


def test_disk_full_raises_storage_error(tmp_path):
    store = RollupStore(tmp_path / "r.db")

    class Full:
        def __init__(self, real):
            self.real = real

        def execute(self, *a):
            return self.real.execute(*a)

        def executemany(self, *a):
            raise sqlite3.OperationalError("database or disk is full")

    store._db = Full(store._db)
    with pytest.raises(StorageError, match="disk full"):
        store.write([Rollup("n", "day", DAY0)])


def test_unrebuildable_database_raises_storage_error(tmp_path):
    folder = tmp_path / "gone"
    with pytest.raises(StorageError):
        RollupStore(folder / "r.db")  # the folder does not exist: cannot create


def test_sketch_pack_round_trip_and_truncation_keeps_bounds():
    rnd = random.Random(5)
    u, h, t = HyperLogLog(8), HyperLogLog(8), MisraGries(50)
    stream = [f"c{int(rnd.paretovariate(1.1))}" for _ in range(5000)]
    truth = Counter(stream)
    for i in range(0, len(stream), 500):
        t.add_counts(Counter(stream[i : i + 500]))
    for key in truth:
        u.add(key)
    u2, h2, t2 = unpack_sketches(pack_sketches(u, h, t))
    assert (u2, h2, t2) == (u, h, t)
    _, _, small = unpack_sketches(pack_sketches(u, h, t, top_limit=10))
    assert small.k == 10 and small.n == 5000 and len(small.counts) <= 10
    assert small.error <= small.n / 11
    for key, f in truth.items():
        low = small.counts.get(key, 0)
        assert low <= f <= low + small.error
    for bad in (b"", b"x" * 10, zlib.compress(b"MS2\x00\x00\x00\x09abc"),
                zlib.compress(b"XX2" + bytes(20))):
        with pytest.raises(DecodeError):
            unpack_sketches(bad)


def test_one_node_full_retention_fits_in_a_few_mib(tmp_path):
    """A week of minutes, 31 days of hours and a year of days for one node.

    Recorded in docs/analytics.md: 3.2 MiB for the week of minutes and year of
    days, 6.6 MiB with the hours (64-hex content ids in the top-k).
    """
    path = tmp_path / "one.db"
    store = RollupStore(path)
    counters = {k: 10**6 + i for i, k in enumerate(COUNTER_FIELDS)}
    hour_sketches = [_sketch(i, 400) for i in range(8)]
    day_sketches = [_sketch(100 + i, 2000) for i in range(4)]
    rows = [Rollup("node-a", "minute", DAY0 + 60 * i, counters) for i in range(7 * 1440)]
    rows += [Rollup("node-a", "day", DAY0 + 86400 * i, counters, users=2000, households=700,
                    jfi=0.8, hours=tuple(range(1000, 1024)), sketch=day_sketches[i % 4])
             for i in range(366)]
    store.write(rows)
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    week_and_year = os.path.getsize(path)
    store.write([Rollup("node-a", "hour", DAY0 + 3600 * i, counters, users=400, households=150,
                        jfi=0.8, sketch=hour_sketches[i % 8]) for i in range(31 * 24)])
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    total = os.path.getsize(path)
    store.close()
    print(f"\nrollup size, one node: week of minutes + year of days {week_and_year / 2**20:.2f} "
          f"MiB; with 31 days of hours {total / 2**20:.2f} MiB")
    assert week_and_year < 4 * 2**20
    assert total < 8 * 2**20
