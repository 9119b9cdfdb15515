"""The state-folder lock: one writer per folder, across processes and threads.

Two processes that write one state folder at once lose data: the second
``content publish``'s crash recovery took the first one's fresh chunks for
orphans of a crash and deleted them, and two ``node run`` on one folder both
wrote its status file. A :class:`StateLock` is an exclusive ``flock(2)`` on
``<folder>/<name>.lock``:

* the kernel releases it when the holder exits, however it exits (a crash,
  SIGKILL, a power cut leaves no stale lock to clean up by hand);
* the holder writes its pid and purpose into the file, so whoever finds the
  lock taken can say who holds it (``pid 4242 (content publish)``);
* within one process it is re-entrant (a count per lock file): flock locks
  belong to an open file description, so a second ``open`` in the same
  process would otherwise conflict with the first;
* :meth:`StateLock.idle` tells crash recovery whether any writer, in this
  process or another, may be in the middle of an operation right now.

flock is advisory: only meshcore's own writers take it, which is the point.
It works on local file systems (ext4, f2fs, jffs2, ubifs, tmpfs); on NFS,
Linux emulates it with POSIX record locks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from pathlib import Path

from .errors import StateLockedError, StorageError

__all__ = ["StateLock"]

_POLL = 0.05  # seconds between attempts while waiting with a timeout

_guard = threading.Lock()
_held: dict[str, list[int]] = {}  # lock path -> [fd, count] for locks this process holds


class StateLock:
    """An exclusive lock on ``<folder>/<name>.lock`` (see the module docstring).

    ``purpose`` (``"content publish"``) is written into the file for the
    messages of those who find it taken. Use :meth:`acquire`/:meth:`release`
    or ``with lock:`` (which waits; see :meth:`acquire`).
    """

    def __init__(self, folder: str | Path, name: str = "state", *, purpose: str = "") -> None:
        self.folder = Path(folder)
        self.path = self.folder / f"{name}.lock"
        self.purpose = purpose
        self._key = os.path.abspath(self.path)
        self._count = 0  # acquisitions made through this object

    def acquire(self, *, wait: bool | float = False) -> StateLock:
        """Take the lock; returns ``self``.

        ``wait=False`` fails at once when another process holds it, ``True``
        waits as long as it takes (Ctrl-C interrupts), a number waits at most
        that many seconds. Raises :class:`StateLockedError` naming the holder
        when it is not taken, and :class:`StorageError` when the lock file
        cannot be created.
        """
        with _guard:
            entry = _held.get(self._key)
            if entry is not None:
                entry[1] += 1
                self._count += 1
                return self
        fd = self._open()
        try:
            self._lock(fd, wait)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {self.purpose}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        with _guard:
            _held[self._key] = [fd, 1]
        self._count += 1
        return self

    def release(self) -> None:
        """Give back one acquisition; the lock is free when the last one is given back."""
        if self._count == 0:
            raise RuntimeError(f"{self.path}: released more often than acquired")
        self._count -= 1
        with _guard:
            entry = _held[self._key]
            entry[1] -= 1
            if entry[1]:
                return
            del _held[self._key]
        with contextlib.suppress(OSError):
            os.ftruncate(entry[0], 0)
        os.close(entry[0])  # closing the description releases the flock

    def __enter__(self) -> StateLock:
        return self.acquire(wait=True)

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def held(self) -> bool:
        """True while this process holds the lock (through any StateLock object)."""
        with _guard:
            return self._key in _held

    def holder(self) -> str:
        """Who holds the lock, as the holder wrote it (``"4242 content publish"``), or ``""``."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                return f.read(200).strip()
        except OSError:
            return ""

    @contextlib.contextmanager
    def idle(self):
        """Yield True, holding the lock, when no writer anywhere holds it; else yield False.

        For crash recovery: an operation in progress (in this process or
        another) holds the lock, so its half-written files are not leftovers
        of a crash. Never waits.
        """
        if self.held:
            yield False
            return
        try:
            self.acquire(wait=False)
        except StateLockedError:
            yield False
            return
        try:
            yield True
        finally:
            self.release()

    def _open(self) -> int:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot create the lock file: "
                               f"{exc.strerror or exc}", path=str(self.path)) from exc

    def _lock(self, fd: int, wait: bool | float) -> None:
        if wait is True:
            fcntl.flock(fd, fcntl.LOCK_EX)  # EINTR is retried; Ctrl-C raises from here
            return
        deadline = time.monotonic() + (0.0 if wait is False else float(wait))
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StorageError(f"{self.path}: cannot lock: {exc.strerror or exc}",
                                       path=str(self.path)) from exc
            if time.monotonic() >= deadline:
                raise StateLockedError(str(self.path), self.holder(), str(self.folder))
            time.sleep(_POLL)

    def __repr__(self) -> str:
        return f"StateLock({str(self.path)!r}, held={self.held})"
