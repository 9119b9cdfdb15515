"""The SQLite catalog: schema and migrations, rebuild on corruption, recovery, bookkeeping."""

from __future__ import annotations

import io
import sqlite3

import pytest
from _content_util import keypair, payload, settings

from meshcore.content import _schema
from meshcore.content.catalog import CatalogRebuilt, open_catalog
from meshcore.content.effects import RefetchChunk
from meshcore.content.node import ContentNode
from meshcore.content.publish import publish_stream
from meshcore.content.store import ChunkStore
from meshcore.errors import IntegrityError, StorageError

KEY = keypair(11)
SIZES = (1024, 4096, 16384)


@pytest.fixture
def store(tmp_path):
    return ChunkStore(tmp_path / "store", budget_bytes=1 << 26, fsync=False)


def put(store, catalog, data, name="f", **kw):
    return publish_stream(store, catalog, io.BytesIO(data), name=name, keypair=KEY, now=50.0,
                          chunk_sizes=SIZES, **kw)


def test_fresh_catalog_is_wal_with_current_schema(tmp_path, store):
    catalog, report = open_catalog(tmp_path / "c.sqlite", store, now=1.0)
    with catalog:
        assert report.rebuilt is None and report.migrated_from is None
        assert catalog.schema_version() == _schema.SCHEMA_VERSION == 2
        assert catalog._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert catalog._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert len(catalog) == 0


def test_migration_from_version_1_keeps_rows(tmp_path, store):
    path = tmp_path / "c.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_schema.MIGRATIONS[0])
    db.execute("INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (b"\x01" * 32, "old", 0, "text/plain", "public", "on-demand", None,
                b"\x02" * 32, 1, None, 1, 0, 1))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    catalog, report = open_catalog(path, store, now=1.0)
    with catalog:
        assert report.migrated_from == 1
        assert catalog.schema_version() == 2
        assert catalog.get(b"\x01" * 32).name == "old"
        catalog.pin(b"\x01" * 32, until=None, reason="test")  # v2 table exists
        assert catalog.pinned(now=5.0) == [(b"\x01" * 32, None)]
        assert catalog.unpin(b"\x01" * 32) and not catalog.unpin(b"\x01" * 32)


def test_newer_schema_refused(tmp_path, store):
    path = tmp_path / "c.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="newer than this meshcore"):
        open_catalog(path, store, now=1.0)


def test_rows_tags_chunks_and_counts(tmp_path, store):
    catalog, _ = open_catalog(tmp_path / "c.sqlite", store, now=1.0)
    with catalog:
        data = payload(40_000, seed=1)
        r = put(store, catalog, data, tags=["News", "local"], expires=5000)
        rec = catalog.get(r.content_id)
        assert rec.tags == ("local", "news") and rec.complete and rec.origin
        assert rec.stored_at == 50 and rec.size == 40_000
        chunks = catalog.chunks_of(r.content_id)
        assert sum(s for _, s in chunks) == 40_000
        assert b"".join(store.get(d) for d, _ in chunks) == data
        assert [x.content_id for x in catalog.items(tag="news")] == [r.content_id]
        assert catalog.items(tag="sport") == []
        assert catalog.expired(now=4999) == [] and catalog.expired(now=5000) == [r.content_id]
        assert catalog.items_with_chunk(chunks[0][0]) == [r.content_id]
        assert catalog.chunk_state(chunks[0][0]) == (True, None)
        assert catalog.chunk_state(bytes(32)) is None
        for _ in range(3):
            catalog.record_access(r.content_id, 100, now=60.0)
        assert catalog.access_count(r.content_id) == (3, 300)  # buffered
        catalog.flush_counts()
        catalog.record_access(r.content_id, 1, now=61.0)
        assert catalog.access_count(r.content_id) == (4, 301)
        catalog.record_access(bytes(32), 1, now=61.0)  # unknown item: ignored on flush
    catalog, _ = open_catalog(tmp_path / "c.sqlite", store, now=2.0)
    with catalog:
        assert catalog.access_count(r.content_id) == (4, 301)  # flushed at close
        assert catalog.access_count(bytes(32)) == (0, 0)


def test_mark_missing_and_present(tmp_path, store):
    catalog, _ = open_catalog(tmp_path / "c.sqlite", store, now=1.0)
    with catalog:
        r = put(store, catalog, payload(30_000, seed=2))
        digest = catalog.chunks_of(r.content_id)[1][0]
        assert catalog.mark_missing(digest, "corrupt") == [r.content_id]
        assert not catalog.get(r.content_id).complete
        assert catalog.chunk_state(digest) == (False, "corrupt")
        assert catalog.items(complete_only=True) == []
        assert catalog.mark_present(digest) == [r.content_id]
        assert catalog.get(r.content_id).complete
        assert catalog.mark_present(digest) == []  # already complete


def test_dedup_and_remove_keeps_shared_chunks(tmp_path, store):
    catalog, _ = open_catalog(tmp_path / "c.sqlite", store, now=1.0)
    with catalog:
        base = payload(60_000, seed=3)
        a = put(store, catalog, base, name="a")
        b = put(store, catalog, base + b"tail" * 100, name="b")
        assert b.new_chunks < len(b.signed.manifest.chunks)  # most chunks deduplicated
        again = put(store, catalog, base, name="a")  # same bytes, same name, same time
        assert again.content_id == a.content_id and again.new_chunks == 0
        freed = catalog.remove_item(a.content_id)
        shared = set(catalog.referenced())
        assert not shared & set(freed)
        assert all(store.has(d) for d in shared)


def _published_node(tmp_path, n=3):
    s = settings(tmp_path)
    node = ContentNode(s, now=10.0)
    admin = s.principal("local")
    ids = [
        node.publish(admin, io.BytesIO(payload(25_000, seed=i)), keypair=KEY, now=10.0,
                     name=f"item-{i}", access="public").content_id
        for i in range(n)
    ]
    node.close()
    return s, ids


def test_corrupt_database_rebuilt_and_reported(tmp_path, caplog):
    s, ids = _published_node(tmp_path)
    db = s.catalog_path
    raw = bytearray(db.read_bytes())
    raw[0:16] = b"not sqlite at al"  # header destroyed
    db.write_bytes(bytes(raw))
    with caplog.at_level("WARNING"), ContentNode(s, now=20.0) as node:
        effects = node.drain_effects()
        assert len(effects) == 1 and isinstance(effects[0], CatalogRebuilt)
        assert "integrity" in effects[0].reason and effects[0].items == 3
        assert effects[0].moved_to.endswith(".corrupt-1")
        assert sorted(r.content_id for r in node.list(s.principal("guest"))) == sorted(ids)
        for cid in ids:
            assert len(node.read_bytes(s.principal("guest"), cid, now=21.0)) == 25_000
    assert "catalog rebuilt" in caplog.text


def test_database_failing_integrity_check_rebuilt(tmp_path):
    s, _ids = _published_node(tmp_path)
    db = sqlite3.connect(s.catalog_path)
    db.execute("PRAGMA writable_schema = ON")
    # Point an index at the wrong root page: the file opens but integrity_check fails.
    db.execute("UPDATE sqlite_master SET rootpage = rootpage + 1 WHERE name = 'item_tags_tag'")
    db.commit()
    db.close()
    with ContentNode(s, now=20.0) as node:
        effect = node.open_report.rebuilt
        assert effect is not None and effect.items == 3
        assert len(node.catalog) == 3


def test_missing_database_rebuilt_and_reported(tmp_path):
    s, ids = _published_node(tmp_path)
    for suffix in ("", "-wal", "-shm"):
        p = s.catalog_path.with_name(s.catalog_path.name + suffix)
        if p.exists():
            p.unlink()
    with ContentNode(s, now=20.0) as node:
        effect = node.drain_effects()[0]
        assert effect.reason == "database missing" and effect.moved_to is None
        assert sorted(r.content_id for r in node.list(s.principal("local"))) == sorted(ids)


def test_rebuild_skips_bad_manifests_and_marks_incomplete(tmp_path):
    s, ids = _published_node(tmp_path)
    node = ContentNode(s, now=20.0)
    # one manifest file corrupted, one chunk of another item deleted
    path = node.store.manifest_path(ids[0])
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0x40
    path.write_bytes(bytes(blob))
    node.store.delete(node.catalog.chunks_of(ids[1])[0][0])
    node.close()
    s.catalog_path.unlink()
    with ContentNode(s, now=30.0) as node:
        effect = node.open_report.rebuilt
        assert (effect.items, effect.bad_manifests, effect.incomplete) == (2, 1, 1)
        assert [r.content_id for r in node.list(s.principal("local"))] == [ids[2]]


def test_corrupt_chunk_quarantined_marked_missing_refetch_effect(tmp_path):
    s, ids = _published_node(tmp_path, n=1)
    with ContentNode(s, now=20.0) as node:
        digest = node.catalog.chunks_of(ids[0])[2][0]
        f = node.store.chunk_path(digest)
        blob = bytearray(f.read_bytes())
        blob[-3] ^= 0x01
        f.write_bytes(bytes(blob))
        with pytest.raises(IntegrityError):
            node.read_bytes(s.principal("local"), ids[0], now=21.0)
        assert node.drain_effects() == [RefetchChunk(digest, node.catalog.chunk_state(digest)[1])]
        assert node.catalog.chunk_state(digest)[0] is False
        assert not node.catalog.get(ids[0]).complete
        assert len(node.store.quarantined()) == 1
        with pytest.raises(StorageError, match="incomplete"):
            node.read(s.principal("local"), ids[0], now=22.0)


def test_scrub_marks_corrupt_and_missing(tmp_path):
    s, ids = _published_node(tmp_path, n=2)
    with ContentNode(s, now=20.0) as node:
        d_bad = node.catalog.chunks_of(ids[0])[0][0]
        d_gone = node.catalog.chunks_of(ids[1])[0][0]
        f = node.store.chunk_path(d_bad)
        f.write_bytes(f.read_bytes()[:-5])  # truncated
        node.store.delete(d_gone)
        report = node.scrub(full=True)
        assert report.corrupt == [d_bad] and report.missing == [d_gone]
        effects = node.drain_effects()
        assert {e.digest for e in effects} == {d_bad, d_gone}
        assert node.list(s.principal("local")) == []
        assert node.scrub().clean  # nothing more to find; missing chunks not expected twice


def test_missing_chunk_on_read(tmp_path):
    s, ids = _published_node(tmp_path, n=1)
    with ContentNode(s, now=20.0) as node:
        digest = node.catalog.chunks_of(ids[0])[0][0]
        node.store.delete(digest)
        with pytest.raises(StorageError, match="missing"):
            node.read_bytes(s.principal("local"), ids[0], now=21.0)
        assert [e.digest for e in node.drain_effects()] == [digest]


def test_interrupted_publish_recovered_on_open(tmp_path):
    """A marker left by a crash triggers reconciliation: orphans go, complete items are listed."""
    s, ids = _published_node(tmp_path, n=2)
    node = ContentNode(s, now=20.0)
    store, catalog = node.store, node.catalog
    # 1) a complete item whose catalog row never committed
    row_lost = ids[0]
    catalog.remove_item(row_lost)
    # 2) orphan chunks of a publish that never wrote its manifest
    from meshcore.kernels import blake2b_256

    orphan = b"orphan chunk" * 100
    store.put(blake2b_256(orphan), orphan)
    # 3) a row whose manifest file was deleted (interrupted delete)
    store.delete_manifest(ids[1])
    dropped = {d for d, _ in catalog.chunks_of(ids[1])} - {d for d, _ in catalog.chunks_of(ids[0])}
    # and a crash: the marker stays
    catalog._journal.mkdir(exist_ok=True)
    (catalog._journal / "publish-1-dead").write_bytes(b"")
    node.close()
    with ContentNode(s, now=30.0) as node:
        rep = node.open_report
        assert rep.interrupted == ["publish-1-dead"]
        assert (rep.recovered, rep.dropped, rep.orphans_removed) == (1, 1, 1 + len(dropped))
        assert [r.content_id for r in node.list(s.principal("local"))] == [row_lost]
        assert not node.store.has(blake2b_256(orphan))
        assert set(node.store) == node.catalog.referenced()
    with ContentNode(s, now=40.0) as node:
        assert node.open_report.interrupted == []  # marker cleared


def test_incomplete_manifest_without_row_removed_on_recovery(tmp_path):
    s, ids = _published_node(tmp_path, n=1)
    node = ContentNode(s, now=20.0)
    digest = node.catalog.chunks_of(ids[0])[0][0]
    node.catalog.remove_item(ids[0])
    node.store.delete(digest)
    node.catalog._journal.mkdir(exist_ok=True)
    (node.catalog._journal / "import-1-dead").write_bytes(b"")
    node.close()
    with ContentNode(s, now=30.0) as node:
        assert len(node.catalog) == 0
        assert list(node.store.iter_manifests()) == [] and list(node.store) == []


def test_expire_removes_items(tmp_path):
    s = settings(tmp_path)
    with ContentNode(s, now=0.0) as node:
        admin = s.principal("local")
        r = node.publish(admin, io.BytesIO(payload(9_000)), keypair=KEY, now=10.0, name="x",
                         expires=100)
        keep = node.publish(admin, io.BytesIO(payload(9_000, 5)), keypair=KEY, now=10.0,
                            name="y")
        assert node.expire(now=99.0) == []
        assert node.expire(now=100.0) == [r.content_id]
        assert [x.content_id for x in node.list(admin)] == [keep.content_id]
        assert set(node.store) == node.catalog.referenced()


def test_catalog_write_failure_is_storage_error(tmp_path, store):
    catalog, _ = open_catalog(tmp_path / "c.sqlite", store, now=1.0)
    with catalog:
        catalog._db.execute("PRAGMA query_only = ON")
        with pytest.raises(StorageError, match="catalog write failed"):
            catalog.pin(b"\x01" * 32, until=None, reason="x")
        catalog._db.execute("PRAGMA query_only = OFF")
    catalog.close()  # idempotent


def test_storage_error_wording_for_a_full_disk(tmp_path):
    from meshcore.content.catalog import _storage_error

    err = _storage_error(sqlite3.OperationalError("database or disk is full"), tmp_path / "c")
    assert "disk full" in str(err) and err.path == str(tmp_path / "c")


def test_intent_marker_that_cannot_be_written(tmp_path, store):
    catalog, _ = open_catalog(tmp_path / "c.sqlite", store, now=1.0)
    with catalog:
        catalog._journal.write_bytes(b"")  # a file where the marker folder should be
        with pytest.raises(StorageError, match="intent marker"), catalog.intent("publish"):
            pass


def test_corrupt_database_with_side_files_and_misnamed_manifest(tmp_path):
    s, ids = _published_node(tmp_path, n=2)
    # a manifest copied under another content id's name must not be indexed
    with ContentNode(s, now=15.0) as node:
        src = node.store.manifest_path(ids[0])
        fake = node.store.manifest_path(b"\xab" * 32)
        fake.parent.mkdir(parents=True, exist_ok=True)
        fake.write_bytes(src.read_bytes())
    s.catalog_path.write_bytes(b"\x00" * 4096)
    for suffix in ("-wal", "-shm"):
        s.catalog_path.with_name(s.catalog_path.name + suffix).write_bytes(b"junk")
    with ContentNode(s, now=20.0) as node:
        effect = node.open_report.rebuilt
        assert (effect.items, effect.bad_manifests) == (2, 1)
        moved = s.catalog_path.with_name(s.catalog_path.name + ".corrupt-1")
        assert moved.exists() and moved.with_name(moved.name + "-wal").exists()
        assert node.signed_manifest(ids[1]).content_id == ids[1]
        assert node.manifest_for(s.principal("guest"), ids[1]) == node.store.read_manifest(ids[1])
    s.catalog_path.write_bytes(b"\x00" * 4096)
    with ContentNode(s, now=30.0) as node:  # a second corruption gets the next number
        assert node.open_report.rebuilt.moved_to.endswith(".corrupt-2")


def test_import_rolls_back_the_manifest_when_the_catalog_fails(tmp_path, monkeypatch):
    s, ids = _published_node(tmp_path, n=1)
    with ContentNode(s, now=15.0) as node:
        raw = node.store.read_manifest(ids[0])
        node.delete(s.principal("local"), ids[0])

        def boom(*a, **k):
            raise StorageError("catalog write failed: disk full")

        monkeypatch.setattr(node.catalog, "add_item", boom)
        with pytest.raises(StorageError):
            node.import_manifest(raw, now=16.0)
        assert list(node.store.iter_manifests()) == []


def test_export_to_a_missing_folder_leaves_nothing(tmp_path):
    s, ids = _published_node(tmp_path, n=1)
    with ContentNode(s, now=15.0) as node:
        with pytest.raises(StorageError, match="cannot write"):
            node.export(s.principal("local"), ids[0], tmp_path / "nope" / "f", now=16.0)
        out = tmp_path / "out"
        out.mkdir()
        # a corrupt chunk mid-export: no partial destination file
        digest = node.catalog.chunks_of(ids[0])[-1][0]
        path = node.store.chunk_path(digest)
        path.write_bytes(path.read_bytes()[:-1])
        with pytest.raises(IntegrityError):
            node.export(s.principal("local"), ids[0], out / "f", now=16.0)
        assert list(out.iterdir()) == []


def test_fast_read_and_serve_detect_bit_rot(tmp_path):
    s, ids = _published_node(tmp_path, n=1)
    with ContentNode(s, now=15.0) as node:
        guest = s.principal("guest")
        assert len(node.read_bytes(guest, ids[0], now=16.0)) == 25_000
        assert sum(map(len, node.read(guest, ids[0], now=16.0, full=False))) == 25_000
        digest = node.catalog.chunks_of(ids[0])[0][0]
        path = node.store.chunk_path(digest)
        blob = bytearray(path.read_bytes())
        blob[-1] ^= 0x10
        path.write_bytes(bytes(blob))
        with pytest.raises(IntegrityError):
            node.serve_chunk(guest, digest)
        assert [e.digest for e in node.drain_effects()] == [digest]
        assert node.catalog.chunk_state(digest)[0] is False
