"""Link quality of one direct neighbour: two-way delivery ratio, ETX, RTT, throughput.

Theory of operation
-------------------
ETX (De Couto, Aguayo, Bicket, Morris, "A High-Throughput Path Metric for
Multi-Hop Wireless Routing", MobiCom 2003) is the expected number of
transmissions for a packet to cross a link and be acknowledged::

    ETX = 1 / (df * dr)

``dr`` (reverse ratio) is the fraction of the neighbour's probes that reach
us; ``df`` (forward ratio) is the fraction of our probes that reach it, which
only the neighbour can measure, so it reports it back in its beacons (the
echo entry's ratio). As in the paper, a ratio over a window of ``w`` seconds
of probes sent every ``tau`` seconds is::

    r(t) = count(t - w, t) / (w / tau)          (capped at 1; the window is open on the left)

with ``w = window * tau``. Only beacons flagged PROBE (scheduled, one per
interval per channel) are counted; replies and triggered peer-exchange
beacons would inflate the count. ``tau`` is the interval the neighbour
advertises in each probe. During warm-up (less than one full window since
the first probe) the divisor is the number of slots elapsed, so a fresh
perfect link reads 1, not 0.1. A link with ``df`` or ``dr`` of 0 has ETX
``inf``; before any report from the neighbour ``df`` is unknown and ETX is
``inf`` too (a one-way link is useless to a request/response protocol).

Loss is ``1 - df * dr`` (the probability that a packet or its ack is lost).

RTT comes from timestamp echoes: we put our clock (ms) in each beacon; the
neighbour echoes it back with the time it held it, so
``rtt = now - echoed_ts - hold`` on our own clock, with no clock sync. It is
smoothed as TCP does (RFC 6298: ``srtt = 7/8 srtt + 1/8 sample``), and the
minimum is kept (the propagation part without queueing).

Throughput is passive: transfers report ``(bytes, seconds)`` samples, smoothed
with ``ewma = 3/4 ewma + 1/4 sample`` (bytes per second); the best sample is
kept as ``throughput_max``.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["RTT_ALPHA", "THROUGHPUT_ALPHA", "LinkQuality"]

RTT_ALPHA = 1 / 8  # RFC 6298 section 2
THROUGHPUT_ALPHA = 1 / 4
MAX_RTT = 60.0  # seconds: a larger "sample" is a wrapped or bogus echo, not an RTT


class LinkQuality:
    """Measurements for one direct neighbour over a sliding window of ``window`` probe slots.

    All times are seconds on the caller's monotonic clock. Raises ValueError
    for a ``window`` below 1.
    """

    __slots__ = (
        "_first",
        "_probes",
        "df",
        "rtt",
        "rtt_min",
        "throughput",
        "throughput_max",
        "window",
    )

    def __init__(self, window: int = 10) -> None:
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window: expected an integer >= 1, got {window!r}")
        self.window = window
        self._probes: deque[tuple[float, float]] = deque()  # (arrival time, advertised interval)
        self._first: float | None = None
        self.df: float | None = None  # forward ratio as reported by the neighbour
        self.rtt: float | None = None  # smoothed RTT, seconds
        self.rtt_min: float | None = None
        self.throughput: float | None = None  # bytes/s, EWMA
        self.throughput_max: float | None = None

    def add_probe(self, interval: float, *, now: float) -> None:
        """Record one PROBE beacon that arrived at ``now`` (``interval``: its advertised tau)."""
        if interval <= 0:
            raise ValueError(f"interval: expected > 0, got {interval!r}")
        if self._first is None:
            self._first = now
        self._probes.append((now, interval))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._probes and self._probes[0][0] <= now - self.window * self._probes[-1][1]:
            self._probes.popleft()

    def dr(self, *, now: float) -> float:
        """Reverse delivery ratio: fraction of the neighbour's probes we heard (0..1)."""
        if not self._probes or self._first is None:
            return 0.0
        self._trim(now)
        if not self._probes:
            return 0.0
        tau = self._probes[-1][1]
        w = self.window * tau
        # Warm-up: only the slots since the first probe could have been heard.
        slots = min(float(self.window), max(1.0, math.floor((now - self._first) / tau) + 1))
        if now - self._first >= w:
            slots = float(self.window)
        count = sum(1 for t, _ in self._probes if t > now - w)  # the window is (now - w, now]
        return min(1.0, count / slots)

    def set_forward_ratio(self, ratio: float) -> None:
        """The neighbour's report of how many of our probes it hears (0..1)."""
        self.df = min(1.0, max(0.0, float(ratio)))

    def etx(self, *, now: float) -> float:
        """``1 / (df * dr)``; ``inf`` when either ratio is 0 or df is not yet reported."""
        dr = self.dr(now=now)
        if self.df is None or self.df <= 0 or dr <= 0:
            return math.inf
        return 1.0 / (self.df * dr)

    def loss(self, *, now: float) -> float:
        """Round-trip loss probability ``1 - df * dr`` (``1 - dr`` before df is known)."""
        df = 1.0 if self.df is None else self.df
        return 1.0 - df * self.dr(now=now)

    def add_rtt_sample(self, rtt: float) -> bool:
        """Fold one RTT sample (seconds) into srtt/min; returns False if it was rejected.

        Samples below 0 or above 60 s come from clock wrap or a stale echo and
        are ignored.
        """
        if not 0.0 <= rtt <= MAX_RTT:
            return False
        self.rtt = rtt if self.rtt is None else (1 - RTT_ALPHA) * self.rtt + RTT_ALPHA * rtt
        self.rtt_min = rtt if self.rtt_min is None else min(self.rtt_min, rtt)
        return True

    def add_throughput_sample(self, nbytes: int, seconds: float, *, now: float) -> None:
        """A transfer of ``nbytes`` bytes took ``seconds``; update the EWMA in bytes/s.

        Raises ValueError for negative bytes or non-positive seconds. ``now``
        is accepted for symmetry with the other hooks (samples are not aged).
        """
        if nbytes < 0:
            raise ValueError(f"bytes: expected >= 0, got {nbytes!r}")
        if not seconds > 0:
            raise ValueError(f"seconds: expected > 0, got {seconds!r}")
        rate = nbytes / seconds
        if self.throughput is None:
            self.throughput = rate
        else:
            self.throughput = (1 - THROUGHPUT_ALPHA) * self.throughput + THROUGHPUT_ALPHA * rate
        self.throughput_max = (
            rate if self.throughput_max is None else max(self.throughput_max, rate)
        )
