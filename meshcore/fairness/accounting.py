"""Usage accounting: bytes per principal and traffic class, token buckets, mesh-wide merge.

Theory of operation
-------------------
**Principals.** Usage is charged to every principal a transfer belongs to: the
device (client MAC), the user (a portal login), the household (a host in the
scheduler's sense) and, for node-to-node traffic, the peer node. A
:class:`Account` is a ``(kind, name)`` pair.

**Sliding windows.** Each ``(principal, traffic class, direction)`` has one
:class:`RingCounter` per window: a ring of ``n`` buckets of ``span / n``
seconds, each tagged with the absolute bucket number it holds (``floor(now /
width)``). Adding to a bucket whose tag is stale first clears it, so a counter
never needs a timer; a window total sums the buckets whose tags fall in the
last ``n`` bucket numbers. The window therefore slides by whole buckets: the
total covers between ``span - width`` and ``span`` seconds of history (the
resolution is one bucket). Windows (``WINDOWS``):

==========  =======  =========  ============
window      span     buckets    resolution
==========  =======  =========  ============
minute      60 s     12         5 s
hour        3600 s   60         60 s
day         86400 s  24         1 h
month       30 d     30         1 d
==========  =======  =========  ============

**Quota periods.** Volume quotas reset at fixed instants an operator can
announce ("your quota resets at midnight UTC"), so besides sliding windows the
ledger keeps a counter per calendar *period*: the UTC day (``floor(now /
86400)``) and the UTC calendar month. :func:`period_bounds` gives a period's
start and end (the reset time).

**Token buckets** (:class:`TokenBucket`) cap rates: ``rate`` bytes/s refill up
to ``burst`` bytes; a send may take the bucket into debt (it never splits a
chunk), and the debt says how long to wait (``(−tokens) / rate``).

**Mesh-wide merge without double counting.** A principal's traffic may cross
several routers, and every router gossips what it saw. Counts are therefore
kept *per reporting node*: the state is a map from ``(node, principal,
period kind, direction)`` to a register ``(period_start, version, bytes)``.
Only the node named in the key ever writes that register, and its value only
grows (a node's count in a period only grows, a new period has a later start,
and the node bumps ``version`` on every report). :meth:`MeshUsage.merge` keeps,
per key, the register that is largest in the order ``(period_start, version,
bytes)``: a join in a total order, so merging is commutative, associative and
idempotent (a state-based CRDT, a G-counter per node whose period reset is a
last-writer-wins on ``period_start``; Shapiro et al., "Conflict-free
Replicated Data Types", SSS 2011). The mesh-wide usage of a principal in a
period is the *sum over nodes* of the registers for the current period:
gossip that arrives twice, or via several neighbours, is counted once, and a
router that carried the same bytes as another (a relay) must not report them
(only the node that *delivers* to or *accepts from* the principal, its
gateway or access point, charges it; relays charge nobody).

Sources: CAKE's per-host accounting (Høiland-Jørgensen et al., "Piece of
CAKE", IEEE LANMAN 2018); CRDT G-counter (Shapiro et al. 2011).
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..clock import Calendar
from ..identity import ACCOUNT_KINDS, Account

__all__ = [
    "ACCOUNT_KINDS",
    "DOWN",
    "PERIODS",
    "UP",
    "WINDOWS",
    "Account",
    "MeshUsage",
    "RingCounter",
    "TokenBucket",
    "UsageLedger",
    "UsageRecord",
    "Window",
    "period_bounds",
]

#: Directions, from the principal's point of view: UP = the principal sent
#: (upload), DOWN = the principal received (download).
UP = "up"
DOWN = "down"
_DIRECTIONS = (UP, DOWN)

#: Quota periods: the UTC day and the UTC calendar month.
PERIODS = ("day", "month")


@dataclass(frozen=True, slots=True)
class Window:
    """A sliding window: ``span`` seconds in ``buckets`` buckets."""

    name: str
    span: float
    buckets: int

    @property
    def width(self) -> float:
        """Seconds per bucket (the window's resolution)."""
        return self.span / self.buckets


WINDOWS: dict[str, Window] = {
    "minute": Window("minute", 60.0, 12),
    "hour": Window("hour", 3600.0, 60),
    "day": Window("day", 86400.0, 24),
    "month": Window("month", 30 * 86400.0, 30),
}


def _check_now(now: float) -> float:
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise ValueError(f"now: expected a finite number of seconds, got {now!r}")
    return float(now)


def _check_bytes(nbytes: int) -> int:
    if isinstance(nbytes, bool) or not isinstance(nbytes, int):
        raise TypeError(f"nbytes: expected an integer, got {nbytes!r}")
    if nbytes < 0:
        raise ValueError(f"nbytes: expected an integer >= 0, got {nbytes!r}")
    return nbytes


class RingCounter:
    """Bytes over a sliding :class:`Window`, in a ring of tagged buckets (no timers)."""

    __slots__ = ("_counts", "_tags", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self._counts = [0] * window.buckets
        self._tags = [-1] * window.buckets

    def add(self, nbytes: int, *, now: float) -> None:
        """Add ``nbytes`` at time ``now`` (seconds); clears the bucket if it held an old slot."""
        slot = int(now // self.window.width)
        i = slot % self.window.buckets
        if self._tags[i] != slot:
            self._tags[i] = slot
            self._counts[i] = 0
        self._counts[i] += nbytes

    def total(self, *, now: float) -> int:
        """Bytes in the window ending at ``now`` (buckets of the last ``buckets`` slots)."""
        slot = int(now // self.window.width)
        lo = slot - self.window.buckets
        return sum(c for c, t in zip(self._counts, self._tags, strict=True) if lo < t <= slot)


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """``(start, end)`` in seconds since the epoch of the UTC ``period`` holding ``now``.

    ``period`` is ``"day"`` (UTC midnight to midnight) or ``"month"`` (UTC
    calendar month). ``end`` is when a quota of that period resets. Raises
    ValueError for another period name or a non-finite ``now``.
    """
    t = _check_now(now)
    if period == "day":
        start = math.floor(t / 86400.0) * 86400.0
        return start, start + 86400.0
    if period == "month":
        days = math.floor(t / 86400.0)
        # Civil date from a day count (proleptic Gregorian), no clock read.
        year, month = _year_month(days)
        start = calendar.timegm((year, month, 1, 0, 0, 0))
        ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
        end = calendar.timegm((ny, nm, 1, 0, 0, 0))
        return float(start), float(end)
    raise ValueError(f"period: expected one of {', '.join(PERIODS)}, got {period!r}")


def _year_month(days: int) -> tuple[int, int]:
    # H. Hinnant's civil_from_days (days since 1970-01-01 -> y, m).
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m


class TokenBucket:
    """A token bucket: ``rate`` bytes/s, at most ``burst`` bytes saved; sends may go into debt.

    Starts full. ``rate`` must be > 0 and ``burst`` >= 0 (ValueError).
    """

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float, *, now: float) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate: expected a finite number > 0 bytes/s, got {rate!r}")
        if not (burst >= 0 and math.isfinite(burst)):
            raise ValueError(f"burst: expected a finite number >= 0 bytes, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last = _check_now(now)

    def refill(self, *, now: float) -> float:
        """Add the tokens earned since the last call; returns the tokens now (may be < 0)."""
        if now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
        return self.tokens

    def consume(self, nbytes: float, *, now: float) -> float:
        """Take ``nbytes`` (debt allowed); returns seconds until the bucket is out of debt."""
        self.refill(now=now)
        self.tokens -= nbytes
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def try_consume(self, nbytes: float, *, now: float) -> bool:
        """Take ``nbytes`` only if that many tokens are there; whether it did."""
        if self.refill(now=now) >= nbytes:
            self.tokens -= nbytes
            return True
        return False

    def set_rate(self, rate: float, *, now: float) -> None:
        """Change the rate (AIMD, policy change) keeping the tokens earned so far."""
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate: expected a finite number > 0 bytes/s, got {rate!r}")
        self.refill(now=now)
        self.rate = float(rate)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One node's count for one principal, period and direction (the gossip unit).

    ``period_start`` is the period's start (seconds since the epoch, see
    :func:`period_bounds`), ``version`` the reporting node's report counter,
    ``nbytes`` the node's count so far in that period.
    """

    node: str
    principal: Account
    period: str
    direction: str
    period_start: float
    version: int
    nbytes: int


class _Usage:
    """Counters for one (principal, traffic class, direction)."""

    __slots__ = ("periods", "rings")

    def __init__(self) -> None:
        self.rings = {name: RingCounter(w) for name, w in WINDOWS.items()}
        # period name -> [period_start, bytes]
        self.periods: dict[str, list[float]] = {p: [-math.inf, 0] for p in PERIODS}


class UsageLedger:
    """This node's byte counts per principal, traffic class and direction.

    ``record`` charges bytes; ``window_usage`` reads sliding windows,
    ``period_usage`` the calendar periods quotas use; ``export`` turns the
    period counts into :class:`UsageRecord` gossip for :class:`MeshUsage`.
    ``now`` is monotonic seconds everywhere; quota periods are read on
    ``calendar`` (:mod:`meshcore.clock`; default: calendar time is ``now``).
    """

    def __init__(self, calendar: Calendar | None = None) -> None:
        self.calendar = calendar if calendar is not None else Calendar()
        self._usage: dict[tuple[Account, str, str], _Usage] = {}
        self._version = 0

    def carry_periods(self, old_wall: float, new_wall: float) -> int:
        """The wall clock stepped from ``old_wall`` to ``new_wall``: keep the current periods.

        Usage counted in the period current at ``old_wall`` is moved to the
        period current at ``new_wall`` (the clock changed, not the time that
        passed: a router that boots in 1970 and steps to today keeps today's
        usage; a step across midnight neither resets nor doubles a day).
        Returns how many counters moved.
        """
        moved = 0
        for period in PERIODS:
            old_start = period_bounds(period, old_wall)[0]
            new_start = period_bounds(period, new_wall)[0]
            if old_start == new_start:
                continue
            for usage in self._usage.values():
                slot = usage.periods[period]
                if slot[0] == old_start:
                    slot[0] = new_start
                    moved += 1
        return moved

    def record(
        self,
        principal: Account,
        nbytes: int,
        *,
        direction: str,
        traffic_class: str = "default",
        now: float,
    ) -> None:
        """Charge ``nbytes`` moved in ``direction`` (UP/DOWN) to ``principal`` at ``now``.

        Raises ValueError for a bad direction, a negative count or a non-finite ``now``.
        """
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction: expected 'up' or 'down', got {direction!r}")
        n = _check_bytes(nbytes)
        t = _check_now(now)
        key = (principal, traffic_class, direction)
        usage = self._usage.get(key)
        if usage is None:
            usage = self._usage[key] = _Usage()
        for ring in usage.rings.values():
            ring.add(n, now=t)
        wall = self.calendar.wall(t)
        for period, slot in usage.periods.items():
            start = period_bounds(period, wall)[0]
            if slot[0] != start:
                if start < slot[0]:
                    continue  # a late report for a period already closed: not counted
                slot[0] = start
                slot[1] = 0
            slot[1] += n

    def _matching(
        self, principal: Account, direction: str | None, traffic_class: str | None
    ) -> Iterator[_Usage]:
        for (p, cls, d), usage in self._usage.items():
            if (
                p == principal
                and (direction is None or d == direction)
                and (traffic_class is None or cls == traffic_class)
            ):
                yield usage

    def window_usage(
        self,
        principal: Account,
        window: str,
        *,
        now: float,
        direction: str | None = None,
        traffic_class: str | None = None,
    ) -> int:
        """Bytes in the sliding ``window`` ("minute", "hour", "day", "month") ending at ``now``.

        ``direction``/``traffic_class`` None means all. ValueError for an unknown window.
        """
        if window not in WINDOWS:
            raise ValueError(f"window: expected one of {', '.join(WINDOWS)}, got {window!r}")
        t = _check_now(now)
        usages = self._matching(principal, direction, traffic_class)
        return sum(u.rings[window].total(now=t) for u in usages)

    def period_usage(
        self, principal: Account, period: str, *, now: float, direction: str | None = None
    ) -> int:
        """Bytes in the current UTC ``period`` ("day"/"month") holding ``now``."""
        start = period_bounds(period, self.calendar.wall(now))[0]
        return sum(
            int(u.periods[period][1])
            for u in self._matching(principal, direction, None)
            if u.periods[period][0] == start
        )

    def accounts(self) -> list[Account]:
        """Principals with any recorded usage, sorted by (kind, name)."""
        return sorted({p for p, _, _ in self._usage}, key=lambda p: (p.kind, p.name))

    def export(self, node: str, *, now: float) -> list[UsageRecord]:
        """This node's current-period counts as gossip records (one version per call)."""
        self._version += 1
        totals: dict[tuple[Account, str, str], list[float]] = {}
        wall = self.calendar.wall(now)
        for period in PERIODS:
            start = period_bounds(period, wall)[0]
            for (p, _cls, d), usage in self._usage.items():
                slot = usage.periods[period]
                if slot[0] == start:
                    acc = totals.setdefault((p, period, d), [start, 0])
                    acc[1] += slot[1]
        return [
            UsageRecord(node, p, period, d, start, self._version, int(nbytes))
            for (p, period, d), (start, nbytes) in sorted(
                totals.items(), key=lambda kv: (kv[0][0].kind, kv[0][0].name, kv[0][1], kv[0][2])
            )
        ]


class MeshUsage:
    """Mesh-wide usage: the join of every node's :class:`UsageRecord` (a per-node CRDT).

    ``merge`` is commutative, associative and idempotent; ``usage`` sums the
    latest record of each node for the current period.
    """

    def __init__(self) -> None:
        self._state: dict[tuple[str, Account, str, str], UsageRecord] = {}

    def merge(self, records: Iterable[UsageRecord]) -> int:
        """Fold records in; returns how many changed the state (0 for duplicates)."""
        changed = 0
        for rec in records:
            if rec.period not in PERIODS or rec.direction not in _DIRECTIONS or rec.nbytes < 0:
                raise ValueError(f"records: malformed usage record {rec!r}")
            key = (rec.node, rec.principal, rec.period, rec.direction)
            old = self._state.get(key)
            if old is None or (rec.period_start, rec.version, rec.nbytes) > (
                old.period_start,
                old.version,
                old.nbytes,
            ):
                self._state[key] = rec
                changed += 1
        return changed

    def merge_state(self, other: MeshUsage) -> int:
        """Merge another replica's whole state (anti-entropy)."""
        return self.merge(other.records())

    def records(self) -> list[UsageRecord]:
        """The state as records, in a deterministic order (for gossip and tests)."""
        return [self._state[k] for k in sorted(self._state, key=_state_key)]

    def usage(
        self, principal: Account, period: str, *, wall: float, direction: str | None = None
    ) -> int:
        """Mesh-wide bytes of ``principal`` in the ``period`` holding calendar time ``wall``.

        One count per node (see the module docstring).
        """
        start = period_bounds(period, wall)[0]
        return sum(
            rec.nbytes
            for (_node, p, per, d), rec in self._state.items()
            if p == principal
            and per == period
            and (direction is None or d == direction)
            and rec.period_start == start
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeshUsage) and self._state == other._state

    __hash__ = None  # type: ignore[assignment]


def _state_key(key: tuple[str, Account, str, str]) -> tuple[str, str, str, str, str]:
    node, p, period, direction = key
    return node, p.kind, p.name, period, direction
