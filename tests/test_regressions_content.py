"""Regressions of issue 14 in the content commands: nothing lost, nothing silent.

Each test reproduces one defect found by running the commands as a new
operator and as a hostile user would: data lost by concurrent writers or by
a recovery that trusted a bad manifest, wrong results with exit 0, outputs
written over devices, inputs that block forever.
"""

from __future__ import annotations

import os
import select
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from _content_util import SMALL_CHUNKS, payload

from meshcore.cli import main
from meshcore.content.store import encode_chunk_header

REPO = Path(__file__).resolve().parents[1]
ROOT = os.geteuid() == 0


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(
        "[content]\n"
        f'state_dir = "{tmp_path / "state"}"\n'
        'budget = "64 MiB"\n'
        "fsync = false\n" + SMALL_CHUNKS
    )
    return path


def run(capsys, *argv):
    code = main(["content", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def publish(capsys, tmp_path, config, size=60_000, seed=1, name="f.bin"):
    src = tmp_path / name
    src.write_bytes(payload(size, seed=seed))
    code, out, err = run(capsys, "publish", str(src), "--config", str(config))
    assert code == 0, err
    return out.split()[0], src.read_bytes()


def store_dir(tmp_path) -> Path:
    return tmp_path / "state" / "content" / "store"


def chunk_files(tmp_path) -> list[Path]:
    return sorted(p for p in (store_dir(tmp_path) / "chunks").rglob("*") if p.is_file())


def manifest_file(tmp_path) -> Path:
    return next(p for p in (store_dir(tmp_path) / "manifests").rglob("*") if p.is_file())


# -- 2. -o never replaces a device, a FIFO or a link ----------------------------------------


@pytest.mark.skipif(not ROOT, reason="making a device node (mknod) needs root")
def test_get_to_a_character_device_writes_through_it(tmp_path, config, capsys):
    cid, _ = publish(capsys, tmp_path, config)
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null
    full = tmp_path / "full"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # a private /dev/full
    code, _out, err = run(capsys, "get", cid, "-o", str(null), "--config", str(config))
    assert code == 0, err
    assert stat.S_ISCHR(null.lstat().st_mode)  # still the device, not a 60 kB file
    code, _, err = run(capsys, "get", cid, "-o", str(full), "--config", str(config))
    assert code == 1 and "No space left" in err and err.count("\n") == 1
    assert stat.S_ISCHR(full.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _drain_fifo(path: Path, sink: list[bytes], seconds: float = 20.0) -> threading.Thread:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there before the writer

    def read() -> None:
        deadline = time.monotonic() + seconds
        writer_seen = False
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], 0.05)
                if not ready:
                    continue
                piece = os.read(fd, 65536)
                if piece:
                    writer_seen = True
                    sink.append(piece)
                elif writer_seen:
                    return
                else:
                    time.sleep(0.01)  # EOF before any writer opened it
        finally:
            os.close(fd)

    thread = threading.Thread(target=read)
    thread.start()
    return thread


def test_get_to_a_fifo_streams_into_it(tmp_path, config, capsys):
    cid, data = publish(capsys, tmp_path, config)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _drain_fifo(fifo, got)
    code, _, err = run(capsys, "get", cid, "-o", str(fifo), "--config", str(config))
    reader.join(30)
    assert code == 0, err
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert b"".join(got) == data


def test_get_to_a_fifo_without_reader_is_refused_at_once(tmp_path, config, capsys):
    cid, _ = publish(capsys, tmp_path, config)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "get", cid, "-o", str(fifo), "--config", str(config))
    assert code == 1 and str(fifo) in err
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_get_through_a_symlink_writes_its_target_and_keeps_the_link(tmp_path, config, capsys):
    cid, data = publish(capsys, tmp_path, config)
    target = tmp_path / "real.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    code, _, err = run(capsys, "get", cid, "-o", str(link), "--config", str(config))
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the file's mode is kept


def test_get_to_a_folder_is_a_clear_error(tmp_path, config, capsys):
    cid, _ = publish(capsys, tmp_path, config)
    folder = tmp_path / "out"
    folder.mkdir()
    code, _, err = run(capsys, "get", cid, "-o", str(folder), "--config", str(config))
    assert code == 1 and "Is a directory" in err and folder.is_dir()


# -- 3. two writers on one state folder -----------------------------------------------------

_HOLDER = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{repo!r}, {tests!r}]
    from _content_util import payload
    from meshcore.config import load_config
    from meshcore.content.node import ContentNode
    from meshcore.content.settings import ContentSettings
    from meshcore.content.publish import publish_file
    node = ContentNode(ContentSettings.from_config(load_config({config!r})), now=time.time())
    # What a publish does before its manifest: an intent, then chunks on disk
    # that nothing references yet.
    with node.catalog.intent("publish"):
        for i in range(5):
            node.store.add(payload(9000, seed=100 + i))
        print("chunks written", flush=True)
        sys.stdin.readline()
    print("done", flush=True)
""")


def test_a_second_opener_never_deletes_a_live_writers_chunks(tmp_path, config, capsys):
    code = (_HOLDER.format(repo=str(REPO), tests=str(REPO / "tests"), config=str(config)))
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "chunks written"
        before = chunk_files(tmp_path)
        assert len(before) == 5
        # Opening the node (any command) runs crash recovery: the writer's marker
        # and chunks must not be taken for a crash's leftovers.
        code_, _out, err = run(capsys, "list", "--config", str(config), "--all")
        assert code_ == 0, err
        assert chunk_files(tmp_path) == before
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
    finally:
        child.kill()
        child.communicate(timeout=10)  # reaps it and closes the pipes


def test_a_second_publish_waits_for_the_first(tmp_path, config, capsys):
    code = (_HOLDER.format(repo=str(REPO), tests=str(REPO / "tests"), config=str(config)))
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    src = tmp_path / "second.bin"
    src.write_bytes(payload(40_000, seed=9))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    second = None
    try:
        assert holder.stdout.readline().strip() == "chunks written"
        second = subprocess.Popen(
            [sys.executable, "-m", "meshcore", "content", "publish", str(src), "--config",
             str(config)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = second.stderr.readline()
        assert line.startswith("meshcore: waiting:") and "content writer" in line, line
        assert second.poll() is None  # blocked on the lock, not failed
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "done"
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
    finally:
        for p in (holder, second):
            if p is not None:
                if p.poll() is None:
                    p.kill()
                p.communicate(timeout=10)  # reaps it and closes the pipes
    code_, out, _ = run(capsys, "verify", "--config", str(config))
    assert code_ == 0, out
    code_, out, _ = run(capsys, "list", "--config", str(config))
    assert "'second.bin'" in out


# -- 4. a manifest that fails verification costs no data ------------------------------------


def _flip_signature_bit(tmp_path) -> Path:
    m = manifest_file(tmp_path)
    blob = bytearray(m.read_bytes())
    blob[-1] ^= 0x01  # the last byte of the Ed25519 signature
    m.write_bytes(bytes(blob))
    return m


def test_rebuild_keeps_the_chunks_of_a_bad_manifest(tmp_path, config, capsys):
    publish(capsys, tmp_path, config)
    chunks = chunk_files(tmp_path)
    assert len(chunks) > 4
    _flip_signature_bit(tmp_path)
    code, out, _err = run(capsys, "rebuild-catalog", "--config", str(config))
    assert code == 0 and "1 bad manifests" in out
    assert chunk_files(tmp_path) == chunks
    quarantined = list((store_dir(tmp_path) / "quarantine").glob("manifest-*"))
    assert [p.suffix for p in quarantined if not p.name.endswith(".reason")] == [".0"]
    # a second rebuild, with the manifest quarantined, still keeps them
    code, out, _err = run(capsys, "rebuild-catalog", "--config", str(config))
    assert code == 0 and chunk_files(tmp_path) == chunks


def test_automatic_rebuild_of_a_corrupt_catalog_keeps_them_too(tmp_path, config, capsys):
    publish(capsys, tmp_path, config)
    chunks = chunk_files(tmp_path)
    _flip_signature_bit(tmp_path)
    (tmp_path / "state" / "content" / "catalog.sqlite").write_bytes(b"garbage" * 100)
    code, _out, err = run(capsys, "list", "--config", str(config))
    assert code == 0 and "catalog rebuilt" in err and "1 bad manifests" in err
    assert chunk_files(tmp_path) == chunks


def test_scrub_reports_a_bad_manifest_and_exits_1(tmp_path, config, capsys):
    publish(capsys, tmp_path, config)
    chunks = chunk_files(tmp_path)
    _flip_signature_bit(tmp_path)
    code, out, _ = run(capsys, "scrub", "--config", str(config), "--full")
    assert code == 1
    assert "1 bad (quarantined)" in out and "bad manifest" in out and "signature" in out
    assert chunk_files(tmp_path) == chunks


# -- 5. an empty catalog file is a corrupt catalog -------------------------------------------


def test_a_catalog_truncated_to_zero_bytes_is_rebuilt(tmp_path, config, capsys):
    cid, _ = publish(capsys, tmp_path, config)
    (tmp_path / "state" / "content" / "catalog.sqlite").write_bytes(b"")
    code, out, err = run(capsys, "list", "--config", str(config))
    assert code == 0 and cid in out
    assert "catalog rebuilt" in err and "empty database" in err


# -- 6. scrub and rebuild check what get needs -------------------------------------------------


def test_a_folder_in_place_of_a_chunk_is_found_by_scrub_rebuild_and_get(tmp_path, config, capsys):
    cid, _ = publish(capsys, tmp_path, config)
    victim = chunk_files(tmp_path)[0]
    victim.unlink()
    victim.mkdir()
    code, out, _ = run(capsys, "scrub", "--config", str(config), "--full")
    assert code == 1 and "1 corrupt" in out and "not a regular file" in out
    assert not victim.exists()  # quarantined, out of the way of a re-fetch
    victim.mkdir()
    code, out, _ = run(capsys, "rebuild-catalog", "--config", str(config))
    assert code == 0 and "1 incomplete" in out
    code, _, err = run(capsys, "get", cid, "-o", str(tmp_path / "o"), "--config", str(config))
    assert code == 1 and "Is a directory" not in err and "incomplete" in err


def test_scrub_exits_1_while_earlier_damage_is_unrepaired(tmp_path, config, capsys):
    cid, _ = publish(capsys, tmp_path, config)
    victim = chunk_files(tmp_path)[0]
    blob = bytearray(victim.read_bytes())
    blob[-1] ^= 0xFF
    victim.write_bytes(bytes(blob))
    code, _, _ = run(capsys, "get", cid, "-o", str(tmp_path / "o"), "--config", str(config))
    assert code == 1  # the read found it and quarantined it
    code, out, _ = run(capsys, "scrub", "--config", str(config))
    assert code == 1 and "still missing" in out and victim.name in out


def test_verify_checks_blake2b_like_a_read(tmp_path, config, capsys):
    publish(capsys, tmp_path, config)
    victim = chunk_files(tmp_path)[0]
    other = b"x" * 2000  # a well-formed chunk file whose bytes are not its digest's
    victim.write_bytes(encode_chunk_header(0, len(other), other) + other)
    code, _, _ = run(capsys, "scrub", "--config", str(config))
    assert code == 0  # the fast pass checks the file, not the digest
    code, out, _ = run(capsys, "verify", "--config", str(config))
    assert code == 1 and "1 corrupt" in out and "BLAKE2b" in out


# -- 9. a same-size rewrite during a publish ---------------------------------------------------


def test_a_same_size_rewrite_while_publishing_is_refused(tmp_path, config, capsys, monkeypatch):
    src = tmp_path / "doc.bin"
    src.write_bytes(payload(200_000, seed=4))
    old = time.time() - 3600
    os.utime(src, (old, old))
    real = os.posix_fadvise

    def rewrite_then_advise(fd, *args):
        # Another program rewrites the file in place after the publish opened it.
        with open(src, "r+b") as f:
            f.write(payload(200_000, seed=5)[:100_000])
        return real(fd, *args)

    monkeypatch.setattr(os, "posix_fadvise", rewrite_then_advise)
    code, out, err = run(capsys, "publish", str(src), "--config", str(config))
    assert code == 1 and "changed while it was published" in err
    monkeypatch.undo()
    assert chunk_files(tmp_path) == []
    code, out, _ = run(capsys, "list", "--config", str(config), "--all")
    assert out == ""


# -- 15. publishing a FIFO ---------------------------------------------------------------------


def test_publish_of_a_fifo_is_refused_without_blocking(tmp_path, config):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        done = subprocess.run([sys.executable, "-m", "meshcore", "content", "publish", str(fifo),
                               "--config", str(config)], env=env, capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("publish of a FIFO with no writer blocked")
    assert done.returncode == 1
    assert done.stderr.strip() == f"meshcore: {fifo}: not a regular file (a FIFO); only " \
                                  "regular files are published"


# -- 10 and tracebacks: arguments ----------------------------------------------------------------


def test_access_to_an_undefined_group_is_refused(tmp_path, config, capsys):
    src = tmp_path / "f.txt"
    src.write_text("hello")
    code, _, err = run(capsys, "publish", str(src), "--config", str(config),
                       "--access", "group:nobody")
    assert code == 1 and "unknown group 'nobody'" in err
    assert chunk_files(tmp_path) == []


def test_config_with_an_undefined_group_level_is_refused(tmp_path, capsys):
    path = tmp_path / "node.toml"
    path.write_text(f'[content]\nstate_dir = "{tmp_path}"\ndefault_access = "group:ghosts"\n')
    code, _, err = run(capsys, "list", "--config", str(path))
    assert code == 1 and "content.default_access: unknown group 'ghosts'" in err


def test_key_name_with_a_path_is_one_line(tmp_path, config, capsys):
    src = tmp_path / "f.txt"
    src.write_text("hello")
    code, _, err = run(capsys, "publish", str(src), "--config", str(config), "--key", "../evil")
    assert code == 1 and err.startswith("meshcore: --key: ") and err.count("\n") == 1
    assert not (tmp_path / "state" / "evil.key").exists()


# -- docs: what get says about a corrupt chunk --------------------------------------------


def test_get_of_a_corrupt_chunk_says_it_once_and_truthfully(tmp_path, config, capsys):
    cid, _ = publish(capsys, tmp_path, config)
    victim = chunk_files(tmp_path)[0]
    blob = bytearray(victim.read_bytes())
    blob[30] ^= 0xFF
    victim.write_bytes(bytes(blob))
    code, _, err = run(capsys, "get", cid, "-o", str(tmp_path / "o"), "--config", str(config))
    assert code == 1 and err.count(victim.name) == 1 and err.count("\n") == 1, err
    assert "quarantined" in err
    code, _, err = run(capsys, "get", cid, "-o", str(tmp_path / "o"), "--config", str(config))
    assert code == 1 and "still being fetched" not in err
    assert "1 of its chunks are missing or were quarantined" in err


# -- docs: one state folder for the daemon and the content commands --------------------------


def test_content_commands_use_the_node_state_folder(tmp_path, capsys):
    # Before: `[node] state_dir` alone made every content command fail with
    # "content.state_dir: required key is missing" while the daemon ran on it.
    config = tmp_path / "node.toml"
    config.write_text("[node]\nstate_dir = 'state'\n[content]\nbudget = '10 MiB'\n")
    item = tmp_path / "item.bin"
    item.write_bytes(b"x" * 5000)
    assert main(["content", "publish", "--config", str(config), str(item)]) == 0
    assert (tmp_path / "state" / "content" / "catalog.sqlite").is_file()
    assert main(["content", "list", "--config", str(config)]) == 0
    assert "5000 bytes" in capsys.readouterr().out


def test_node_and_content_naming_two_state_folders_is_refused(tmp_path, capsys):
    config = tmp_path / "node.toml"
    config.write_text("[node]\nstate_dir = 'a'\n[content]\nstate_dir = 'b'\n[net]\n"
                      "community_key = 'hex:00112233445566778899aabbccddeeff'\n")
    for command in (["content", "list", "--config"],
                    ["node", "run", "--duration", "0.2", "--config"]):
        assert main([*command, str(config)]) == 1
        err = capsys.readouterr().err
        assert "node.toml: content.state_dir: names " in err and "one state folder" in err
        assert len(err.strip().splitlines()) == 1


# -- docs: rebuild-catalog says what it did, once ----------------------------------------------


def test_rebuild_catalog_prints_one_truthful_summary(tmp_path, config, capsys):
    # Before: "(database missing)" with a database there, and the summary twice
    # (the library's warning and the CLI's note).
    publish(capsys, tmp_path, config)
    code, out, err = run(capsys, "rebuild-catalog", "--config", str(config))
    assert code == 0 and err == ""
    (line,) = out.splitlines()
    assert line.startswith("catalog rebuilt: 1 items, 0 incomplete, 0 bad manifests")
    assert "old database kept at" in line and "missing" not in line
    catalog = tmp_path / "state" / "content" / "catalog.sqlite"
    for leftover in catalog.parent.glob("catalog.sqlite*"):
        if leftover.is_file():
            leftover.unlink()
    code, out, err = run(capsys, "rebuild-catalog", "--config", str(config))
    assert code == 0 and err == "" and len(out.splitlines()) == 1
    assert "(there was no database)" in out
