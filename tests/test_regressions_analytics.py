"""Regressions of issue 14 in ``meshcore analytics report`` and the rollup store.

A report must never create a database, nor move aside or alter whatever the
operator's ``--db`` names; only an SQLite file of ours that is corrupt may be
moved aside, and only by the writer (the daemon).
"""

from __future__ import annotations

import os
import sqlite3

import pytest

from meshcore.analytics.rollups import Rollup, RollupStore
from meshcore.cli import main
from meshcore.errors import StorageError

DAY0 = 1_763_942_400  # 2025-11-24


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\nstate_dir = "{tmp_path / "state"}"\n'
                    '[analytics]\nsalt = "0123456789abcdef"\n')
    return path


def report(cfg, tmp_path, *extra):
    return main(["analytics", "report", "--config", str(cfg), "--from", "2025-11-24",
                 "--to", "2025-11-27", "--out", str(tmp_path / "out"), *extra])


def _catalog(tmp_path):
    """A content catalog, the database most likely to be named by mistake."""
    from meshcore.content.catalog import open_catalog
    from meshcore.content.store import ChunkStore

    store = ChunkStore(tmp_path / "store", budget_bytes=1 << 20, fsync=False)
    path = tmp_path / "catalog.sqlite"
    catalog, _ = open_catalog(path, store, now=DAY0)
    catalog.close()
    return path


def _tables(path):
    db = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master"))
    finally:
        db.close()


# -- 1. a report moves nothing aside and creates nothing ---------------------------------------


def test_report_refuses_a_folder_and_leaves_it_alone(cfg, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    assert report(cfg, tmp_path, "--db", str(folder)) == 1
    err = capsys.readouterr().err
    assert f"meshcore: {folder}: is a folder" in err and err.count("\n") == 1
    assert (folder / "precious.txt").read_text() == "keep me"
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_report_refuses_a_text_file(cfg, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 50)
    assert report(cfg, tmp_path, "--db", str(text)) == 1
    assert "is not an SQLite database" in capsys.readouterr().err
    assert text.read_text() == "not a database\n" * 50
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_report_refuses_the_content_catalog_without_touching_it(cfg, tmp_path, capsys):
    catalog = _catalog(tmp_path)
    before = _tables(catalog)
    assert report(cfg, tmp_path, "--db", str(catalog)) == 1
    assert "is the database of something else" in capsys.readouterr().err
    assert _tables(catalog) == before  # no meta, no rollup table added


def test_report_without_a_database_is_an_error_not_an_empty_report(cfg, tmp_path, capsys):
    missing = tmp_path / "nothing.sqlite"
    assert report(cfg, tmp_path, "--db", str(missing)) == 1
    assert "no rollup database" in capsys.readouterr().err
    assert not missing.exists() and not (tmp_path / "out").exists()
    # the default path (in the state folder) is not created either
    assert report(cfg, tmp_path) == 1
    assert "no rollup database" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


def test_report_never_moves_a_corrupt_database_aside(cfg, tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    with RollupStore(db) as store:
        store.write([Rollup("n", "day", DAY0, {"req_local": 1})])
    data = db.read_bytes()
    db.write_bytes(data[:700])
    assert report(cfg, tmp_path, "--db", str(db)) == 1
    assert "unusable" in capsys.readouterr().err
    assert db.read_bytes() == data[:700] and not list(tmp_path.glob("*.corrupt-*"))


@pytest.mark.parametrize("kind", ["folder", "text", "catalog"])
def test_the_writer_refuses_what_is_not_ours_too(tmp_path, kind):
    if kind == "folder":
        path = tmp_path / "d"
        path.mkdir()
    elif kind == "text":
        path = tmp_path / "t"
        path.write_text("hello")
    else:
        path = _catalog(tmp_path)
    before = _tables(path) if kind == "catalog" else None
    with pytest.raises(StorageError, match="refusing to use it as the rollup database"):
        RollupStore(path)
    assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))
    if before is not None:
        assert _tables(path) == before


# -- tracebacks: --out and --from/--to ----------------------------------------------------------


def _rollups(tmp_path):
    db = tmp_path / "r.sqlite"
    with RollupStore(db) as store:
        store.write([Rollup("n", "day", DAY0, {"req_local": 1})])
    return db


def test_out_on_an_existing_file_is_one_line(cfg, tmp_path, capsys):
    db = _rollups(tmp_path)
    (tmp_path / "out").write_text("x")
    assert report(cfg, tmp_path, "--db", str(db)) == 1
    err = capsys.readouterr().err
    assert "exists and is not a folder" in err and err.count("\n") == 1


def test_out_on_a_read_only_folder_is_one_line(cfg, tmp_path, capsys):
    db = _rollups(tmp_path)
    if os.geteuid() == 0:
        out = "/sys/kernel"  # a folder even root cannot write files into
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        out = str(ro)
    code = main(["analytics", "report", "--config", str(cfg), "--db", str(db), "--from", "0",
                 "--to", "1", "--out", out])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"meshcore: --out {out}: cannot write")
    assert err.count("\n") == 1


@pytest.mark.parametrize("to", ["99999999999999999999", "nan", "inf", "-5"])
def test_out_of_range_times_are_usage_errors(cfg, tmp_path, capsys, to):
    db = _rollups(tmp_path)
    code = main(["analytics", "report", "--config", str(cfg), "--db", str(db), "--from", "0",
                 "--to", to, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--to: expected Unix seconds from 0" in err and err.count("\n") == 1


# -- 8. numbers in [analytics] -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "1e308"])
def test_price_per_gb_must_be_a_finite_number_in_range(tmp_path, capsys, value):
    path = tmp_path / "node.toml"
    path.write_text(f'[analytics]\nsalt = "0123456789abcdef"\nprice_per_gb = {value}\n')
    code = main(["analytics", "report", "--config", str(path), "--from", "0", "--to", "1",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and f"meshcore: {path}: analytics.price_per_gb: " in err
