"""Events other modules emit, and the :class:`Collector` that turns them into metrics.

Theory of operation
-------------------
Other cores (cache, net, fairness, the node driver) describe what happened
with small frozen events (:class:`RequestServed`, :class:`PeerServed`,
:class:`LinkChange`, ...) and pass them to :meth:`Collector.record`, or call
the hot-path method :meth:`Collector.request_served` directly with the same
fields (no event object, no dispatch). The collector:

1. increments pre-bound children of its :class:`~.metrics.Registry` (what the
   Prometheus and InfluxDB exporters show), e.g.
   ``meshcore_requests_total{tier="mesh",class="video"}``;
2. feeds the current hour's sketches: a HyperLogLog of user pseudonyms and
   one of household pseudonyms, a Misra-Gries top-k of content ids, and the
   bytes per user (for Jain's fairness index of the hour);
3. closes windows. When an event's ``now`` (or :meth:`tick`) passes the end
   of the current minute, hour or day, the window is closed into a
   :class:`~.rollups.Rollup` whose exact counters are the difference of the
   registry's totals since the window opened. Closed rollups accumulate in a
   queue that :meth:`tick` (or :meth:`drain`) returns: the driver writes them
   to the :class:`~.rollups.RollupStore`. No clock is read: ``now`` is Unix
   seconds (UTC) supplied by the caller.

Hot path
--------
:meth:`Collector.request_served` does only what must be exact at every
moment: two increments of pre-bound registry children (found by one dict
look-up per (tier, class) pair), ``+= nbytes`` on the principal's share in
the hour's table, and a list append of the content id. Everything else is
deferred to rarer events:

* Content ids are counted into the top-k sketch (Misra-Gries, see
  :mod:`.sketches`) with one ``collections.Counter`` per batch of at most
  2048, when the batch is full, when the hour closes or when a summary is
  taken: the bounds are those of item-by-item counting.
* Unique users and households: a HyperLogLog register only ever takes a
  maximum, so adding a principal again within the hour changes nothing.
  A principal missing from the hour's table (its first request of the hour)
  is queued with its household; the queue is pseudonymised
  (:class:`~.privacy.Pseudonymizer`, which caches pseudonyms across hours)
  and hashed into the two sketches together with the content batch, back to
  back, so the hashing code runs warm instead of once between two chunk
  reads that have flushed the CPU caches.
* The per-hour principal table (raw principal -> bytes this hour, for Jain's
  index) is cleared when the hour closes and capped at ``max_principals``;
  requests of principals that no longer fit are counted in
  ``principal_overflow`` (they still reach the HyperLogLog), so memory is
  bounded.

Windows are aligned to multiples of 60 / 3600 / 86400 s. If no event arrives
for a while, the next one closes only the windows that held data: empty
windows produce no rows (reports read a missing row as zero). Uplink outage
time is attributed to windows as they close, so a long silent outage is
counted in full, possibly in a later window than it happened.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from dataclasses import dataclass

from ..clock import Calendar
from ..core import Command, Event
from ..net.links import LinkChange
from ..tiers import Tier
from .metrics import OVERFLOW, Registry
from .privacy import Pseudonymizer
from .rollups import COUNTER_FIELDS, RESOLUTIONS, TIERS, Rollup, pack_sketches
from .sketches import AccessMatrix, HyperLogLog, MisraGries, hour_and_weekday, item_hash

try:  # the fairness engineer's definition, when present
    from meshcore.fairness.metrics import jain_index as _jain_index
except ImportError:  # pragma: no cover - fairness module not installed
    _jain_index = None

__all__ = [
    "CacheLookup",
    "Collector",
    "CongestionEpisode",
    "LinkChange",
    "NeighborChange",
    "PeerServed",
    "QuotaAction",
    "RequestFailed",
    "RequestServed",
    "StoreRollup",
    "UplinkChange",
    "jain",
]


def jain(values: list[float]) -> float | None:
    """Jain's fairness index ``(sum x)**2 / (n * sum x**2)`` (None for no values).

    Uses :func:`meshcore.fairness.metrics.jain_index` when available.
    """
    if not values:
        return None
    if _jain_index is not None:
        return _jain_index(values)
    total = math.fsum(values)  # pragma: no cover - fallback
    squares = math.fsum(v * v for v in values)  # pragma: no cover
    return 1.0 if squares == 0 else total * total / (len(values) * squares)  # pragma: no cover


# -- events ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestServed(Event):
    """A request was answered. ``tier`` is where the bytes came from.

    ``tier`` is a :class:`~meshcore.tiers.Tier` or one of its analytics groups
    (:data:`TIERS`: ``"local"``, ``"segment"``, ``"mesh"``, ``"external"``).

    ``principal``/``household`` are raw identifiers (MAC, IP, user name): the
    collector pseudonymises them and never stores them. ``nbytes`` >= 0;
    ``latency`` in seconds, optional.
    """

    content: str
    principal: str
    tier: str | Tier
    nbytes: int
    content_class: str = "other"
    household: str = ""
    latency: float | None = None


@dataclass(frozen=True, slots=True)
class RequestFailed(Event):
    """A request could not be served (``reason``: e.g. ``"uplink_down"``, ``"no_holder"``)."""

    content: str
    principal: str
    reason: str


@dataclass(frozen=True, slots=True)
class CacheLookup(Event):
    """The node's own cache was looked up: ``hit`` or miss."""

    hit: bool


@dataclass(frozen=True, slots=True)
class PeerServed(Event):
    """This node served ``nbytes`` to another node ``peer`` (its contribution to the mesh)."""

    peer: str
    nbytes: int


@dataclass(frozen=True, slots=True)
class NeighborChange(Event):
    """Discovery saw neighbour ``peer`` appear (``up``) or disappear."""

    peer: str
    up: bool


@dataclass(frozen=True, slots=True)
class QuotaAction(Event):
    """The fairness core acted on ``principal``'s quota (``action``: warn, throttle, block)."""

    principal: str
    action: str


@dataclass(frozen=True, slots=True)
class CongestionEpisode(Event):
    """A congestion episode on ``link`` ended after ``duration`` seconds."""

    link: str
    duration: float


@dataclass(frozen=True, slots=True)
class UplinkChange(Event):
    """The external uplink went down (``up=False``) or came back."""

    up: bool


@dataclass(frozen=True, slots=True)
class StoreRollup(Command):
    """Write one closed window (:class:`~.rollups.Rollup`) to the rollup store."""

    rollup: Rollup


#: Buckets of the request latency histogram (seconds).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Buckets of the congestion episode duration histogram (seconds).
CONGESTION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


#: Content ids are counted into the top-k sketch in batches of this many.
_BATCH = 2048


class Collector:
    """Turns events into metrics, sketches and closed rollup windows (sans-I/O).

    ``node``: this node's id (appears in rollups and summaries).
    ``pseudonymize``: maps a raw principal to its pseudonym; by default a
    :class:`Pseudonymizer` with ``salt``, which is then required.
    ``hll_precision``, ``top_k``: sketch sizes; ``stored_top``: how many top-k
    entries hour and day rollups keep (see :func:`~.rollups.pack_sketches`).
    ``registry``: where metrics live (a new one with ``label_cap`` by default).
    ``now``: start time.

    ``now`` is monotonic seconds in every method; rollup windows (minute,
    hour, day) are calendar windows read on ``calendar`` (:mod:`meshcore.clock`;
    default: calendar time is ``now``). Protocol (:mod:`meshcore.core`):
    ``handle(event, now=...)`` records any event of this module (returns no
    effects); ``handle_timer`` closes due windows and returns one
    :class:`StoreRollup` command per closed window, for the rollup store.
    """

    def __init__(
        self,
        node: str,
        *,
        now: float,
        salt: str | bytes | None = None,
        pseudonymize: Callable[[str], str] | None = None,
        registry: Registry | None = None,
        label_cap: int = 1000,
        hll_precision: int = 12,
        top_k: int = 100,
        stored_top: int = 32,
        max_principals: int = 100_000,
        calendar: Calendar | None = None,
    ) -> None:
        self.calendar = calendar if calendar is not None else Calendar()
        now = self.calendar.wall(now)
        if not isinstance(node, str) or not node:
            raise ValueError(f"node: expected a non-empty string, got {node!r}")
        if pseudonymize is None:
            if salt is None:
                raise ValueError("salt: required unless pseudonymize is given")
            pseudonymize = Pseudonymizer(salt)
        self.node = node
        self.pseudonymize = pseudonymize
        self.registry = registry if registry is not None else Registry(cap=label_cap)
        self.hll_precision = hll_precision
        self.top_k = top_k
        self.stored_top = stored_top
        self.max_principals = max_principals
        self._principal_overflow = 0
        reg = self.registry
        self._requests = reg.counter(
            "meshcore_requests", "Requests served, by source tier and content class",
            ("tier", "class"), cap=max(reg.cap, 2 * len(TIERS)))
        self._bytes = reg.counter(
            "meshcore_served_bytes", "Bytes served to users, by source tier and content class",
            ("tier", "class"), cap=max(reg.cap, 2 * len(TIERS)))
        self._failed = reg.counter(
            "meshcore_requests_failed", "Requests that could not be served, by reason", ("reason",))
        self._lookups = reg.counter(
            "meshcore_cache_lookups", "Lookups in this node's cache, by result", ("result",))
        self._peer_bytes = reg.counter(
            "meshcore_peer_served_bytes", "Bytes this node served to other nodes, by peer",
            ("peer",))
        self._peer_requests = reg.counter(
            "meshcore_peer_served_requests", "Transfers this node served to other nodes, by peer",
            ("peer",))
        self._neighbors = reg.gauge("meshcore_neighbors", "Neighbours currently known")
        self._neighbor_changes = reg.counter(
            "meshcore_neighbor_changes", "Neighbours appearing or disappearing", ("change",))
        self._link_etx = reg.gauge("meshcore_link_etx", "Expected transmission count per link",
                                   ("peer",))
        self._link_changes = reg.counter("meshcore_link_changes", "Link quality changes")
        self._quota = reg.counter("meshcore_quota_actions", "Quota actions, by action",
                                  ("action",))
        self._congestion = reg.counter("meshcore_congestion_episodes", "Congestion episodes")
        self._congestion_seconds = reg.histogram(
            "meshcore_congestion_seconds", "Duration of congestion episodes",
            buckets=CONGESTION_BUCKETS)
        self._latency = reg.histogram(
            "meshcore_request_seconds", "Time to serve a request", buckets=LATENCY_BUCKETS)
        self._uplink = reg.gauge("meshcore_uplink_up", "1 when the external uplink is up")
        self._outage = reg.counter("meshcore_uplink_outage_seconds",
                                   "Time the external uplink was down")
        self._outage_requests = reg.counter(
            "meshcore_outage_requests", "Requests made while the uplink was down, by result",
            ("result",))
        self._uplink.set(1)
        self._served: dict[tuple[str, str], tuple] = {}
        self._by_tier: dict[str, list] = {t: [] for t in TIERS}
        for tier in TIERS:  # reserved before any class can fill the cap
            self._bind(tier, OVERFLOW)
        self._outage_served = self._outage_requests.labels("served")
        self._outage_failed = self._outage_requests.labels("failed")
        self._down_since: float | None = None
        self._known_neighbors: set[str] = set()
        self._principals: dict[str, int] = {}  # raw principal -> bytes this hour
        self._new: list[tuple[str, str]] = []  # (principal, household) to hash
        self._batch: list[str] = []
        self._pending: list[Rollup] = []
        self._version = 0
        self._new_hour_sketches()
        self._day_users = HyperLogLog(hll_precision)
        self._day_households = HyperLogLog(hll_precision)
        self._day_top = MisraGries(top_k)
        self._day_hours = [0] * 24
        self._day_jfis: list[float] = []
        self.matrix = AccessMatrix()
        self._start: dict[str, int] = {}
        self._end: dict[str, int] = {}
        self._mark: dict[str, dict[str, float]] = {}
        self._check_now(now)
        totals = self.totals()
        for res, length in RESOLUTIONS.items():
            start = int(now // length) * length
            self._start[res] = start
            self._end[res] = start + length
            self._mark[res] = totals
        self._minute_end = self._end["minute"]

    # -- hot path -------------------------------------------------------------

    def request_served(
        self,
        content: str,
        principal: str,
        tier: str,
        nbytes: int,
        *,
        now: float,
        content_class: str = "other",
        household: str = "",
        latency: float | None = None,
    ) -> None:
        """Record one served request (see :class:`RequestServed` for the fields).

        Raises ValueError for an unknown ``tier``, a non-string
        ``content_class`` or a negative ``nbytes``; TypeError for a
        non-string ``principal`` or ``household``.
        """
        # The exact counters and this hour's bytes per principal are updated
        # here; content ids are batched for the top-k sketch (module docstring).
        now += self.calendar.offset
        if now >= self._minute_end:
            self._roll(now)
        pair = self._served.get((tier, content_class))
        if pair is None:
            pair = self._bind(tier, content_class)
        if nbytes < 0:
            raise ValueError(f"nbytes: expected >= 0, got {nbytes!r}")
        table = self._principals
        share = table.get(principal)
        if share is not None:
            table[principal] = share + nbytes
        else:  # validates principal and household before anything is counted
            self._first_sight(principal, household, nbytes)
        pair[0].value += 1
        pair[1].value += nbytes
        batch = self._batch
        batch.append(content)
        if len(batch) >= _BATCH:
            self._fold()
        if self._down_since is not None:
            self._outage_served.value += 1
        if latency is not None:
            self._latency.observe(latency)

    def _bind(self, tier: str | Tier, content_class: str) -> tuple:
        if isinstance(tier, Tier):
            # A Tier is counted under its analytics group (meshcore.tiers);
            # the pair is cached under the Tier too, so the hot path stays one lookup.
            pair = self._served.get((tier.served_from, content_class))
            if pair is None:
                pair = self._bind(tier.served_from, content_class)
            if isinstance(content_class, str):
                self._served[(tier, content_class)] = pair
            return pair
        if tier not in TIERS:
            raise ValueError(f"tier: expected one of {', '.join(TIERS)}, got {tier!r}")
        if not isinstance(content_class, str):
            raise ValueError(f"content_class: expected a string, got {content_class!r}")
        if len(self._requests.children) >= self._requests.cap:
            # Beyond the cap a new class is counted under its tier's reserved
            # overflow pair, so per-tier totals stay exact and memory bounded.
            self._requests.dropped += 1
            self._bytes.dropped += 1
            return self._served[(tier, OVERFLOW)]
        pair = (
            self._requests.labels(tier, content_class),
            self._bytes.labels(tier, content_class),
        )
        self._served[(tier, content_class)] = pair
        self._by_tier[tier].append(pair)
        return pair

    def _fold(self) -> None:
        # Content ids go to Misra-Gries as one Counter per batch: the same
        # bounds as item-by-item updates, at C speed. Principals first seen
        # since the last fold are hashed into the HyperLogLogs here, back to
        # back, where the hashing code and the pseudonym cache stay warm.
        batch = self._batch
        if batch:
            self._top.add_counts(collections.Counter(batch))
            batch.clear()
        new = self._new
        if new:
            pseudonymize = self.pseudonymize
            add_user = self._users.add_hash
            add_house = self._households.add_hash
            for principal, household in new:
                add_user(item_hash(pseudonymize(principal)))
                if household:
                    add_house(item_hash(pseudonymize(household)))
            new.clear()

    def _first_sight(self, principal: str, household: str, nbytes: int) -> None:
        # First request of this principal in this hour (or one that did not
        # fit the table): queued for the HyperLogLogs, which are idempotent,
        # so once per hour suffices; a fairness share while the table has room.
        if not isinstance(principal, str) or not isinstance(household, str):
            # checked now: the queue is hashed later, inside another call
            raise TypeError(f"principal, household: expected strings, got "
                            f"{type(principal).__name__}, {type(household).__name__}")
        self._new.append((principal, household))
        if len(self._principals) < self.max_principals:
            self._principals[principal] = nbytes
        else:
            self._principal_overflow += 1

    @property
    def principal_overflow(self) -> int:
        """Requests whose principal did not fit the hour's table (``max_principals``)."""
        return self._principal_overflow

    # -- other events ---------------------------------------------------------

    def record(self, event: object, *, now: float) -> None:
        """Record any event of this module. Raises TypeError for anything else."""
        if type(event) is RequestServed:
            self.request_served(
                event.content, event.principal, event.tier, event.nbytes, now=now,
                content_class=event.content_class, household=event.household,
                latency=event.latency)
            return
        now = self.calendar.wall(now)
        if now >= self._minute_end:
            self._roll(now)
        kind = type(event)
        if kind is RequestFailed:
            self._failed.labels(event.reason).inc()
            if self._down_since is not None:
                self._outage_failed.inc()
        elif kind is CacheLookup:
            self._lookups.labels("hit" if event.hit else "miss").inc()
        elif kind is PeerServed:
            if event.nbytes < 0:
                raise ValueError(f"nbytes: expected >= 0, got {event.nbytes!r}")
            self._peer_bytes.labels(event.peer).inc(event.nbytes)
            self._peer_requests.labels(event.peer).inc()
        elif kind is NeighborChange:
            if event.up and event.peer not in self._known_neighbors:
                self._known_neighbors.add(event.peer)
                self._neighbor_changes.labels("up").inc()
            elif not event.up and event.peer in self._known_neighbors:
                self._known_neighbors.discard(event.peer)
                self._neighbor_changes.labels("down").inc()
            self._neighbors.set(len(self._known_neighbors))
        elif kind is LinkChange:
            # This node's link to event.target; the gauge is its new ETX.
            if not event.new_cost >= 1:
                raise ValueError(f"new_cost: expected an ETX >= 1, got {event.new_cost!r}")
            self._link_etx.labels(event.target).set(event.new_cost)
            self._link_changes.inc()
        elif kind is QuotaAction:
            self._quota.labels(event.action).inc()
        elif kind is CongestionEpisode:
            self._congestion.inc()
            self._congestion_seconds.observe(event.duration)
        elif kind is UplinkChange:
            if not event.up and self._down_since is None:
                self._down_since = now
                self._uplink.set(0)
            elif event.up and self._down_since is not None:
                self._outage.inc(max(0.0, now - self._down_since))
                self._down_since = None
                self._uplink.set(1)
        else:
            raise TypeError(f"event: not an analytics event: {type(event).__name__}")

    # -- windows --------------------------------------------------------------

    def totals(self) -> dict[str, float]:
        """Cumulative exact counters since start, keyed by :data:`COUNTER_FIELDS`."""
        out: dict[str, float] = dict.fromkeys(COUNTER_FIELDS, 0)
        for tier, pairs in self._by_tier.items():
            out[f"req_{tier}"] = sum(p[0].value for p in pairs)
            out[f"bytes_{tier}"] = sum(p[1].value for p in pairs)
        out["req_failed"] = sum(c.value for _, c in self._failed.samples())
        out["req_to_peers"] = sum(c.value for _, c in self._peer_requests.samples())
        out["bytes_to_peers"] = sum(c.value for _, c in self._peer_bytes.samples())
        out["outage_seconds"] = self._outage._default.value
        served = self._outage_served.value
        out["outage_served"] = served
        out["outage_requests"] = served + self._outage_failed.value
        out["quota_actions"] = sum(c.value for _, c in self._quota.samples())
        out["congestion_episodes"] = self._congestion._default.value
        out["link_changes"] = self._link_changes._default.value
        return out

    def _new_hour_sketches(self) -> None:
        self._users = HyperLogLog(self.hll_precision)
        self._households = HyperLogLog(self.hll_precision)
        self._top = MisraGries(self.top_k)

    def _settle_outage(self, boundary: float) -> None:
        if self._down_since is not None and boundary > self._down_since:
            self._outage.inc(boundary - self._down_since)
            self._down_since = boundary

    def _diff(self, res: str, totals: dict[str, float]) -> dict[str, float]:
        mark = self._mark[res]
        self._mark[res] = totals
        return {k: v - mark[k] for k, v in totals.items() if v != mark[k]}

    def _roll(self, now: float) -> None:
        self._check_now(now)
        for res, length in RESOLUTIONS.items():
            end = self._end[res]
            if now < end:
                continue
            self._settle_outage(end)
            totals = self.totals()
            counters = self._diff(res, totals)
            start = self._start[res]
            if res == "minute":
                if counters:
                    self._pending.append(Rollup(self.node, res, start, counters))
            elif res == "hour":
                self._close_hour(start, counters)
            else:
                self._close_day(start, counters)
            self._start[res] = int(now // length) * length
            self._end[res] = self._start[res] + length
        self._minute_end = self._end["minute"]

    def _close_hour(self, start: int, counters: dict[str, float]) -> None:
        self._fold()  # the batch belongs to this hour (checked before every append)
        requests = sum(counters.get(f"req_{t}", 0) for t in TIERS)
        hour, _ = hour_and_weekday(start)
        self._day_hours[hour] += requests
        if requests:
            self.matrix.add(start, requests)
        shares = list(self._principals.values())
        jfi = jain(shares) if shares else None
        if jfi is not None:
            self._day_jfis.append(jfi)
        if counters or self._top.n:
            self._pending.append(
                Rollup(
                    self.node, "hour", start, counters,
                    users=round(self._users.estimate()),
                    households=round(self._households.estimate()),
                    jfi=jfi,
                    sketch=pack_sketches(self._users, self._households, self._top,
                                         top_limit=self.stored_top),
                )
            )
        self._day_users.merge(self._users)
        self._day_households.merge(self._households)
        self._day_top.merge(self._top)
        self._principals.clear()
        self._new_hour_sketches()

    def _close_day(self, start: int, counters: dict[str, float]) -> None:
        if counters or self._day_top.n:
            jfis = self._day_jfis
            self._pending.append(
                Rollup(
                    self.node, "day", start, counters,
                    users=round(self._day_users.estimate()),
                    households=round(self._day_households.estimate()),
                    jfi=math.fsum(jfis) / len(jfis) if jfis else None,
                    hours=tuple(self._day_hours),
                    sketch=pack_sketches(self._day_users, self._day_households, self._day_top,
                                         top_limit=self.stored_top),
                )
            )
        self._day_users = HyperLogLog(self.hll_precision)
        self._day_households = HyperLogLog(self.hll_precision)
        self._day_top = MisraGries(self.top_k)
        self._day_hours = [0] * 24
        self._day_jfis = []

    def _check_now(self, now: float) -> None:
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
            raise ValueError(f"now: expected finite Unix seconds, got {now!r}")

    def tick(self, *, now: float) -> list[Rollup]:
        """Close every window that ended by ``now`` and return all closed rollups queued
        since the last call (minute, hour and day rows, oldest first).

        Raises ValueError for a non-finite ``now``. A ``now`` earlier than the
        current window (a clock step back) closes nothing.
        """
        self._check_now(now)
        now = self.calendar.wall(now)
        if now >= self._minute_end:
            self._roll(now)
        return self.drain()

    def drain(self) -> list[Rollup]:
        """Return and forget the closed rollups queued so far (no window is closed)."""
        out, self._pending = self._pending, []
        return out

    def get_timer(self) -> float:
        """When the current minute window ends (call :meth:`handle_timer` then), monotonic."""
        return self.calendar.monotonic(float(self._minute_end))

    def handle_timer(self, *, now: float) -> list[StoreRollup]:
        """Close the windows that ended; one :class:`StoreRollup` per closed window."""
        return [StoreRollup(r) for r in self.tick(now=now)]

    def handle(self, event: object, *, now: float) -> list:
        """Record one event (see :meth:`record`); analytics returns no effects."""
        self.record(event, now=now)
        return []

    def flush(self, *, now: float) -> list[Rollup]:
        """Close the current windows early (shutdown) and return every pending rollup."""
        self._check_now(now)
        now = self.calendar.wall(now)
        for res in RESOLUTIONS:
            self._end[res] = min(self._end[res], now)
        self._roll(now)
        return self.drain()

    def link_usage(self) -> dict[tuple[str, str], dict[str, float]]:
        """Bytes and transfers this node served to each peer since start, keyed
        ``(this node, peer)``: the ``link_usage`` of :func:`~.exporters.netjson_usage_graph`.
        Peers beyond the label cap are summed under ``"__overflow__"``."""
        requests = dict(self._peer_requests.samples())
        return {
            (self.node, values[0]): {"bytes": child.value,
                                     "transfers": requests[values].value}
            for values, child in self._peer_bytes.samples()
        }

    # -- summaries for the mesh ----------------------------------------------

    def summary(self, *, now: float):
        """This node's :class:`~.aggregate.NodeSummary` of the current day so far.

        Its ``version`` grows with every call (and with ``now``, in ms), so a
        newer summary of the same day replaces an older one in a
        :class:`~.aggregate.MeshAggregate`. Counters and sketches cover the
        day so far; the latency histogram covers the collector's lifetime.
        """
        from .aggregate import NodeSummary

        now = self.calendar.wall(now)
        if now >= self._minute_end:
            self._roll(now)
        self._version = max(self._version + 1, int(now * 1000))
        self._fold()
        users = self._day_users.copy()
        users.merge(self._users)
        households = self._day_households.copy()
        households.merge(self._households)
        top = self._day_top.copy()
        top.merge(self._top)
        totals = self.totals()
        mark = self._mark["day"]
        counters = {k: v - mark[k] for k, v in totals.items() if v != mark[k]}
        latency = self._latency._default
        return NodeSummary(
            node=self.node,
            window_start=self._start["day"],
            window=RESOLUTIONS["day"],
            version=self._version,
            counters=counters,
            users=users,
            households=households,
            top=top,
            histograms={
                "meshcore_request_seconds": (latency.bounds, tuple(latency.counts), latency.sum)
            },
        )
