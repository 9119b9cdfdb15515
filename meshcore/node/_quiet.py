"""Warnings for a condition that persists: once, then at a slow backoff.

A router without the configured interface (a laptop running the OpenWrt
example) or without a babeld retries every few seconds, forever; a warning
per retry fills a router's small log and hides everything else. A
:class:`QuietWarning` warns the first time, logs the retries at ``debug``,
warns again after ``first`` seconds, then after twice that, ... up to
``ceiling`` (the "exponential backoff" of log suppression that systemd's
journald rate limit and syslog's "last message repeated N times" also
approximate), and says so at ``info`` when the condition clears.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["QuietWarning"]


class QuietWarning:
    """One persisting condition's warnings (see the module docstring).

    ``clock`` gives monotonic seconds. :meth:`failed` for each failure,
    :meth:`cleared` when it works again.
    """

    def __init__(self, logger: logging.Logger, *, clock: Callable[[], float],
                 first: float = 60.0, ceiling: float = 3600.0) -> None:
        if not 0 < first <= ceiling:
            raise ValueError(f"first/ceiling: need 0 < first <= ceiling, got {first!r}, "
                             f"{ceiling!r}")
        self.log = logger
        self.clock = clock
        self.first = float(first)
        self.ceiling = float(ceiling)
        self.failures = 0
        """Failures since the condition last cleared."""
        self._next = 0.0
        self._gap = self.first

    def failed(self, message: str, *args: object) -> None:
        """One more failure: a warning now and then, ``debug`` otherwise."""
        self.failures += 1
        now = self.clock()
        if self.failures == 1 or now >= self._next:
            suffix = "" if self.failures == 1 else f" ({self.failures} times so far)"
            later = f"; next warning in {self._gap:.0f}s if it persists"
            self.log.warning(message + suffix + later, *args)
            self._next = now + self._gap
            self._gap = min(self.ceiling, self._gap * 2)
        else:
            self.log.debug(message, *args)

    def cleared(self, message: str, *args: object) -> None:
        """The condition is gone: say so (if it had failed) and start over."""
        if self.failures:
            self.log.info(message + f" (after {self.failures} failures)", *args)
        self.failures = 0
        self._gap = self.first
        self._next = 0.0
