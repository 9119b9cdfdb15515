"""The one clock convention: monotonic time for everything, calendar time derived from it.

Theory of operation
-------------------
Every core takes ``now`` as **monotonic seconds** (the host's
``time.monotonic()``, or the simulator's clock). Timers, rates, token buckets,
sliding windows, peer timeouts and RTTs use it and nothing else, so a wall
clock that steps cannot stretch or shrink any of them.

Some decisions are about the **calendar**: a quota day or month, an HTTP date
(``Expires``, ``Last-Modified``), a manifest's expiry, an analytics hour. They
need wall-clock (Unix) seconds. A :class:`Calendar` turns ``now`` into wall
time as ``now + offset``; the host tells it the wall clock now and then
(:meth:`Calendar.observe`, at start and every few seconds). Cores that need
the calendar hold the node's one Calendar and call :meth:`Calendar.wall`;
they never read a clock themselves.

**Steps.** Routers without a real-time clock boot in the past (1970, or the
firmware's build date) and step their wall clock by years when NTP first
answers; an operator may also set the clock by an hour. When an observation
disagrees with ``now + offset`` by more than :data:`STEP_TOLERANCE`, the
calendar records a :class:`ClockStep` and adopts the new offset. What that
means, system-wide (tested in ``tests/test_clock.py`` and the cores' tests):

* elapsed time is what the monotonic clock says: no timer fires early or
  late, no peer times out, no token bucket refills, because of a step;
* **quotas**: usage counted in the quota period that was current before the
  step is carried into the period current after it (a boot in 1970 followed
  by NTP does not hand every household a fresh quota, and a step across
  midnight neither resets nor doubles a day);
* **expiry and pins** are kept in calendar time and compared with
  :meth:`Calendar.wall`, so an item that expires on 2027-01-01 expires then,
  whatever the clock said when it was stored; deadlines are converted back to
  monotonic (:meth:`Calendar.monotonic`) for ``get_timer``, so a step simply
  moves them;
* while the wall clock is **untrusted** (before :data:`TRUSTED_AFTER`, the
  signature of an unset clock), calendar-based *removal* (expiry) is
  suspended: nothing is expired because the clock claims a date decades
  away, in either direction. Analytics windows still close (on monotonic
  time) and are labelled with the calendar time the node believed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .core import Fact

__all__ = ["STEP_TOLERANCE", "TRUSTED_AFTER", "Calendar", "ClockStep"]

#: Disagreement (seconds) between an observation and ``now + offset`` that
#: counts as a step rather than drift (NTP slews below 128 ms; 2 s leaves room
#: for a slow host loop).
STEP_TOLERANCE = 2.0
#: Wall-clock seconds before which the clock is taken as unset (2024-01-01
#: UTC): no meshcore release existed before it.
TRUSTED_AFTER = 1_704_067_200.0


@dataclass(frozen=True, slots=True)
class ClockStep(Fact):
    """The wall clock stepped by ``delta`` seconds at monotonic ``at``."""

    at: float
    delta: float
    was_trusted: bool
    is_trusted: bool


class Calendar:
    """Calendar (wall-clock) time as ``monotonic + offset``; see the module docstring.

    ``offset`` defaults to 0, which makes calendar time equal ``now``: tests and
    simulations that pass Unix seconds as ``now`` need nothing else.
    ``trusted_after`` (Unix seconds, e.g. :data:`TRUSTED_AFTER`) marks readings
    before it as an unset clock; None (the default) trusts every reading.
    """

    __slots__ = ("_last_wall", "offset", "steps", "trusted_after")

    def __init__(self, offset: float = 0.0, *, trusted_after: float | None = None) -> None:
        self.offset = _finite("offset", offset)
        self.trusted_after = None if trusted_after is None else _finite("trusted_after",
                                                                         trusted_after)
        self.steps = 0
        self._last_wall = self.offset  # the reading at monotonic 0, until observed

    @classmethod
    def at(cls, wall: float, *, now: float, trusted_after: float | None = TRUSTED_AFTER
           ) -> Calendar:
        """A calendar that reads ``wall`` at monotonic ``now`` (a host's calendar)."""
        cal = cls(_finite("wall", wall) - _finite("now", now), trusted_after=trusted_after)
        cal._last_wall = wall
        return cal

    def wall(self, now: float) -> float:
        """Calendar (Unix) seconds at monotonic ``now``."""
        return now + self.offset

    def monotonic(self, wall: float) -> float:
        """The monotonic time at which the calendar will read ``wall``."""
        return wall - self.offset

    @property
    def trusted(self) -> bool:
        """False while the last reading was before ``trusted_after`` (an unset clock)."""
        return self.trusted_after is None or self._last_wall >= self.trusted_after

    def observe(self, wall: float, *, now: float) -> ClockStep | None:
        """The host read ``wall`` (Unix seconds) at monotonic ``now``.

        Returns a :class:`ClockStep` (and counts it in ``steps``) when
        the reading moved by more than :data:`STEP_TOLERANCE`; drift below it
        is absorbed without a step. Raises ValueError for a non-finite reading.
        """
        wall = _finite("wall", wall)
        now = _finite("now", now)
        delta = wall - (now + self.offset)
        was = self.trusted
        self._last_wall = wall
        if abs(delta) <= STEP_TOLERANCE:
            return None
        self.offset += delta
        step = ClockStep(now, delta, was, self.trusted)
        self.steps += 1
        return step

    def __repr__(self) -> str:
        return f"Calendar(offset={self.offset!r})"


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number of seconds, got {value!r}")
    return float(value)
