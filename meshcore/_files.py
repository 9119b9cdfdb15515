"""Durable file writes shared by every package: atomic replace and folder fsync.

A router loses power at any moment, so a file that others read (a status
file, a NetJSON map, a Prometheus textfile, a key) is written to a temp file
in the same folder, fsynced, renamed over the old one, and the folder is
fsynced so the rename itself survives: readers see the old file or the new
one, never half of either (rename(2) is atomic within one file system).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["fsync_dir", "write_atomic"]


def fsync_dir(path: str | Path) -> None:
    """fsync the folder ``path`` so renames and creations in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: str | bytes, *, mode: int | None = None,
                 durable: bool = True) -> Path:
    """Replace ``path`` with ``data`` atomically (temp file in the same folder + rename).

    ``mode`` sets the file's permission bits before it becomes visible (e.g.
    ``0o600`` for secrets); ``durable`` fsyncs the file and the folder. Raises
    OSError (the temp file is removed) when the folder is not writable or the
    disk is full; the old file is then untouched.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(folder)
    return target
