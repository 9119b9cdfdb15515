"""``meshcore content ...`` run in-process through meshcore.cli.main."""

from __future__ import annotations

import json

import pytest
from _content_util import SMALL_CHUNKS, keypair, payload, pub

from meshcore.cli import main

CURATOR = keypair(31)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(
        "[content]\n"
        'state_dir = "state"\n'
        'budget = "32 MiB"\n'
        "fsync = false\n"
        + SMALL_CHUNKS
        + '\n[content.principals.alice]\nrole = "member"\n'
        + '\n[[content.rules]]\nname = "text"\nmatch = { media_type = "text/*" }\n'
        + 'tags = ["reading"]\n'
    )
    return path


def run(capsys, *argv):
    code = main(["content", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_publish_list_get_round_trip(tmp_path, config, capsys):
    src = tmp_path / "story.txt"
    data = payload(50_000, seed=8)
    src.write_bytes(data)
    code, out, _ = run(capsys, "publish", str(src), "--config", str(config), "--tag", "Kids",
                       "--access", "public", "--retention", "ttl:7d", "--expires", "30d",
                       "--json")
    assert code == 0
    row = json.loads(out)
    assert row["tags"] == ["kids", "reading"] and row["access"] == "public"
    assert row["retention"] == "ttl:604800s" and row["size"] == 50_000
    assert row["expires"] - row["created"] in (30 * 86400, 30 * 86400 - 1)
    key_file = tmp_path / "state" / "keys" / "publisher.key"
    assert key_file.stat().st_mode & 0o077 == 0
    cid = row["content_id"]

    code, out, _ = run(capsys, "list", "--config", str(config), "--as", "guest")
    assert code == 0 and cid in out and "'story.txt'" in out
    code, out, _ = run(capsys, "list", "--config", str(config), "--tag", "KIDS", "--json")
    assert [json.loads(x)["content_id"] for x in out.splitlines()] == [cid]
    code, out, _ = run(capsys, "list", "--config", str(config), "--tag", "none", "--all")
    assert code == 0 and out == ""

    dest = tmp_path / "copy.txt"
    code, out, _ = run(capsys, "get", cid, "-o", str(dest), "--config", str(config))
    assert code == 0 and dest.read_bytes() == data and "wrote 50000 bytes" in out

    code, out, _ = run(capsys, "verify", "--config", str(config), "--full")
    assert code == 0 and "0 corrupt" in out


def test_plain_publish_output_and_guest_denied(tmp_path, config, capsys):
    src = tmp_path / "notes.bin"
    src.write_bytes(payload(9_000, seed=1))
    code, out, _ = run(capsys, "publish", str(src), "--config", str(config))
    assert code == 0 and "community" in out and "new chunks" in out
    cid = out.split()[0]
    code, out, _ = run(capsys, "list", "--config", str(config), "--as", "guest")
    assert code == 0 and out == ""
    code, _, err = run(capsys, "get", cid, "-o", str(tmp_path / "x"), "--config", str(config),
                       "--as", "guest")
    assert code == 1 and "guest may not read" in err
    assert not (tmp_path / "x").exists()


def test_publish_errors(tmp_path, config, capsys):
    src = tmp_path / "f.txt"
    src.write_text("hello")
    cases = [
        (["--tag", "no;pe"], "tag"),
        (["--access", "everyone"], "access"),
        (["--expires", "soon"], "--expires"),
        (["--distribution", "push-all"], "curator"),
        (["--as", "nobody"], "no such principal"),
    ]
    for extra, needle in cases:
        code, _, err = run(capsys, "publish", str(src), "--config", str(config), *extra)
        assert code == 1 and needle in err and err.startswith("meshcore: "), (extra, err)
    code, _, err = run(capsys, "publish", str(tmp_path / "missing"), "--config", str(config))
    assert code == 1 and "cannot read" in err
    code, _, err = run(capsys, "list", "--config", str(tmp_path / "nope.toml"))
    assert code == 1 and "cannot read" in err


def test_curator_can_push_all(tmp_path, capsys):
    state = tmp_path / "state"
    # the curator's key must be the one the CLI signs with: create it first
    from meshcore.content.keys import load_or_create_keypair

    kp = load_or_create_keypair(state, "curator")
    config = tmp_path / "node.toml"
    config.write_text(f'[content]\nstate_dir = "{state}"\nfsync = false\n'
                      f'curators = ["{pub(kp)}"]\n'
                      f'[content.principals.carol]\nrole = "curator"\n')
    src = tmp_path / "update.bin"
    src.write_bytes(b"firmware" * 1000)
    code, out, err = run(capsys, "publish", str(src), "--config", str(config), "--as", "carol",
                         "--key", "curator", "--distribution", "push-all")
    assert code == 0, err
    assert "push-all" in out


def test_get_errors(tmp_path, config, capsys):
    code, _, err = run(capsys, "get", "xyz", "-o", str(tmp_path / "o"), "--config", str(config))
    assert code == 1 and "64 hex digits" in err
    code, _, err = run(capsys, "get", "ab" * 32, "-o", str(tmp_path / "o"), "--config",
                       str(config))
    assert code == 1 and "no item" in err


def test_scrub_finds_corruption_and_rebuild_catalog(tmp_path, config, capsys):
    src = tmp_path / "f.bin"
    src.write_bytes(payload(30_000, seed=2))
    run(capsys, "publish", str(src), "--config", str(config))
    chunk = next(p for p in (tmp_path / "state" / "content" / "store" / "chunks").rglob("*")
                 if p.is_file())
    blob = bytearray(chunk.read_bytes())
    blob[-1] ^= 0xFF
    chunk.write_bytes(bytes(blob))
    code, out, _ = run(capsys, "scrub", "--config", str(config))
    assert code == 1 and "1 corrupt" in out and "re-fetch chunk" in out

    code, out, err = run(capsys, "rebuild-catalog", "--config", str(config))
    # one summary, with the true reason: the operator asked for it
    assert code == 0 and out.startswith("catalog rebuilt: 1 items, 1 incomplete")
    assert "database missing" not in out + err and (out + err).count("rebuilt") == 1
    assert list((tmp_path / "state" / "content").glob("catalog.sqlite.old-1"))
    code, out, err = run(capsys, "rebuild-catalog", "--config", str(config))
    assert code == 0 and list((tmp_path / "state" / "content").glob("catalog.sqlite.old-2"))


def test_bare_content_command_prints_usage(config, capsys):
    code, _, err = run(capsys)
    assert code == 2 and "publish" in err
