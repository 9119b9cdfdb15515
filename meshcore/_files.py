"""Durable file writes shared by every package: atomic replace and folder fsync.

A router loses power at any moment, so a file that others read (a status
file, a NetJSON map, a Prometheus textfile, a key) is written to a temp file
in the same folder, fsynced, renamed over the old one, and the folder is
fsynced so the rename itself survives: readers see the old file or the new
one, never half of either (rename(2) is atomic within one file system).

A command's ``-o PATH`` is the operator's path, and may name something that
is not a plain file: :func:`output_file` writes a character device
(``/dev/null``, ``/dev/stdout``, a tty) or a FIFO as a stream, never
replaces one (a rename over ``/dev/null`` as root would replace the system's
device node with a regular file); follows a symbolic link and writes its
target (as ``cp`` and shell redirection do; the link stays a link); and
refuses a folder, a block device or a socket.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["fsync_dir", "output_file", "write_atomic", "write_output"]


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
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with _replacing(str(target), mode=mode, durable=durable, suffix=".tmp") as f:
        f.write(payload)
    return target


@contextlib.contextmanager
def _replacing(target: str, *, mode: int | None, durable: bool, suffix: str
               ) -> Iterator[BinaryIO]:
    """A temp file beside ``target``, renamed over it when the block ends cleanly.

    ``mode`` sets its permission bits before it becomes visible; on any error
    (or Ctrl-C) the temp file is removed and ``target`` is untouched.
    """
    folder = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.",
                               suffix=suffix)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(folder)


@contextlib.contextmanager
def output_file(path: str | Path, *, durable: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write a command's output to ``path`` (see the module docstring).

    A regular file (or a new one) gets a temp file in the target's folder,
    renamed over it when the block ends without error (permission bits of a
    file it replaces are kept; ``durable`` fsyncs first), and removed on an
    error: readers never see half an output. A character device or a FIFO is
    opened for writing and written in place; a FIFO with no reader is refused
    at once rather than blocking. A symbolic link is followed. Raises
    OSError (``IsADirectoryError`` for a folder, ``ENXIO`` for a FIFO
    without a reader, ``EINVAL`` for a block device or socket).
    """
    try:
        st = os.stat(path)  # follows links, /proc/self/fd's magic ones included
    except FileNotFoundError:
        st = None
    if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        # Opened by its own name: /dev/stdout -> /proc/self/fd/1 -> "pipe:[N]"
        # has no path to resolve. O_NONBLOCK: open(2) of a FIFO without a
        # reader fails with ENXIO at once instead of blocking; cleared before writing.
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        with os.fdopen(fd, "wb") as f:
            yield f
        return
    target = os.path.realpath(path)  # follows links; the link itself is left alone
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file, character device or FIFO", str(path))
    mode = stat.S_IMODE(st.st_mode) if st is not None else None  # a replaced file keeps it
    with _replacing(target, mode=mode, durable=durable, suffix=".part") as f:
        yield f


def write_output(path: str | Path, data: str | bytes | Iterable[str | bytes], *,
                 durable: bool = True) -> None:
    """Write ``data`` (str as UTF-8) to ``path`` with :func:`output_file`'s rules.

    ``data`` may be an iterable of pieces, written as they come (a large
    export never has to exist as one string); an error while producing them
    leaves the target as it was, as any other error does.
    """
    pieces = [data] if isinstance(data, str | bytes) else data
    with output_file(path, durable=durable) as f:
        for piece in pieces:
            f.write(piece.encode("utf-8") if isinstance(piece, str) else piece)
