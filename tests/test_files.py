"""Atomic, durable file replacement: readers see the old file or the new one."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from meshcore import _files
from meshcore._files import fsync_dir, write_atomic


def test_write_atomic_replaces_text_and_bytes(tmp_path):
    target = tmp_path / "status.json"
    write_atomic(target, "old")
    assert write_atomic(target, b"new\x00") == target
    assert target.read_bytes() == b"new\x00"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_mode_is_set_before_the_file_appears(tmp_path):
    target = tmp_path / "secret.key"
    write_atomic(target, "k", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_relative_path_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_atomic("plain.txt", "x", durable=False)
    assert (tmp_path / "plain.txt").read_text() == "x"


def test_a_full_disk_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "map.json"
    write_atomic(target, "old")

    real_fdopen = _files.os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_files.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(OSError) as info:
        write_atomic(target, "new" * 1000)
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["map.json"]


def test_a_failed_rename_removes_the_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "x.prom"

    def refuse(src, dst):
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(_files.os, "replace", refuse)
    with pytest.raises(OSError):
        write_atomic(target, "data")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent" / "file", "x")
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "absent")


def test_fsync_dir_accepts_str_and_path(tmp_path):
    fsync_dir(tmp_path)
    fsync_dir(os.fspath(tmp_path))
