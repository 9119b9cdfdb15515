"""The Router: one router's policy cores wired together (sans-I/O).

Theory of operation (hyper-h2's ``H2Connection`` under many servers)
-------------------------------------------------------------------
A :class:`Router` is what runs on one mesh router: discovery, routes, the
cache, the fair scheduler, the congestion controller and the analytics
collector. The host (the asyncio daemon, or the simulator) gives it events
and carries out the commands it returns; the router hands each event to the
core that owns it and routes the effects each core returns either to another
core (a cache miss becomes a holder query, a congestion decision caps a
scheduler class, every fact reaches the collector) or to the host (a
datagram, a message to a peer, a chunk to keep or free, bytes for a client).
The cores never import each other; the router is the only place that knows
them all. It follows the same protocol as each core (:mod:`meshcore.core`).

**One request** (``docs/architecture.md`` draws it):

1. :class:`~.events.ClientRequest` → the cache: a hit is answered at once
   (:class:`~.events.Deliver`, tier LOCAL).
2. A miss joins the fetch already running for that key, if any (so the
   router asks the mesh once however many of its clients want the item);
   otherwise the directory names the holders and
   :meth:`~meshcore.net.routing.Routes.select_sources` ranks them (tier
   first, then expected transfer time).
3. The best holder is asked which chunks make up the item
   (:class:`~.messages.ItemQuery`), then for up to ``fetch_window`` chunks at
   a time (:class:`~.messages.ChunkRequest`). Chunks the router already
   holds (shared with another item) are not fetched again.
4. On the holder, each request becomes a transfer in its
   :class:`~meshcore.fairness.scheduler.FairScheduler` (charged to the asking
   node) and leaves, slice by slice, whenever the holder's egress is idle
   (:class:`~.events.SendSlice`).
5. The asking router's host puts each chunk together, verifies it against
   its digest, stages it in storage and reports
   :class:`~.events.ChunkArrived`. A chunk that failed verification, a
   holder that says it no longer has the item, a lost connection or a
   request that timed out fail that holder over to the next
   (:meth:`Routes.failover <meshcore.net.routing.Routes.failover>`), which
   resumes at the chunks still missing.
6. With every chunk in, the item is offered to the cache, which decides
   what is kept (:class:`~meshcore.cache.StoreChunk` /
   :class:`~meshcore.cache.FreeChunk` for the storage driver), and every
   waiting client is answered (:class:`~.events.Deliver`), with a
   :class:`~.events.RequestCompleted` fact and a ``RequestServed`` record
   by tier in the collector. A second client asking later is a local hit.

Time: ``now`` is monotonic seconds; :class:`~.events.WallClock` feeds the
node's :class:`~meshcore.clock.Calendar`, shared by the cache (expiry), the
scheduler (quota periods) and the collector (rollup windows). A step is
applied once, here (quota periods are carried over).

What is not here yet, and where it plugs in: peers' Bloom summaries instead
of the plain :class:`~.directory.Directory` (cache coordination), the
gateway's fetch-once for external resources (the ``"no-holder"`` refusal is
where it goes), several holders in parallel for one item and the HTTP
transport (node transfers), client-facing delivery through a scheduler of
its own (serving households), and the designated-content swarm.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..analytics.events import (
    CacheLookup,
    Collector,
    CongestionEpisode,
    NeighborChange,
    PeerServed,
    QuotaAction,
    RequestFailed,
)
from ..cache import (
    POLICIES,
    ContentCache,
    Evicted,
    FreeChunk,
    ItemStored,
    LookupResult,
    Offer,
    cache_budget,
)
from ..clock import Calendar
from ..config import Config
from ..core import dispatches, handler
from ..fairness.congestion import (
    CongestionCleared,
    CongestionController,
    CongestionParams,
    DeferReplication,
    SetClassRate,
)
from ..fairness.policy import Policy
from ..fairness.scheduler import FairScheduler, Refused, Transfer
from ..fairness.settings import ClassSpec, FairnessSettings, parse_fairness
from ..identity import Principal
from ..kernels import BACKGROUND, ON_DEMAND
from ..net.discovery import (
    Advertise,
    DaemonNeighbours,
    Datagram,
    Discovery,
    DiscoverySettings,
    PeerChanged,
    PeerJoined,
    PeerLeft,
    Start,
)
from ..net.links import LinkChange
from ..net.routing import RankedHolder, Routes, TopologyChanged
from ..net.topology import Topology
from ..tiers import Tier
from .directory import Directory
from .events import (
    ChunkArrived,
    ClientRequest,
    Deliver,
    EgressIdle,
    Holding,
    ItemPublished,
    MessageFailed,
    MessageReceived,
    RequestCompleted,
    RequestRefused,
    SendMessage,
    SendSlice,
    WallClock,
)
from .messages import ChunkRequest, ChunkSlice, ChunkUnavailable, ItemInfo, ItemQuery

__all__ = ["Router", "RouterSettings", "RouterStats"]


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """How one router's cores are set up; build in code or with :meth:`from_config`.

    ``cache_bytes``/``cache_policy``: the cache core's budget and policy;
    ``fairness``: classes and quotas (one ``default`` class when None);
    ``egress_rate`` (bytes/s): the outgoing link's capacity estimate the
    congestion controller starts from; ``fetch_window``: chunk requests in
    flight per item; ``query_timeout``/``request_timeout`` (s): when an
    unanswered holder is given up; ``max_holders``: holders tried per item;
    ``discovery``: discovery settings (None: no discovery core, e.g. in large
    simulations that give the routes directly); ``analytics_salt``: turns
    the collector on (pseudonyms need a salt).
    """

    cache_bytes: int = 64 * 1024 * 1024
    cache_policy: str = "default"
    fairness: FairnessSettings | None = None
    egress_rate: float = 2_500_000.0
    fetch_window: int = 4
    query_timeout: float = 10.0
    request_timeout: float = 30.0
    max_holders: int = 8
    discovery: DiscoverySettings | None = None
    analytics_salt: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.cache_bytes, bool) or not isinstance(self.cache_bytes, int) or (
                self.cache_bytes < 0):
            raise ValueError(f"cache_bytes: expected an integer >= 0, got {self.cache_bytes!r}")
        for name in ("egress_rate", "query_timeout", "request_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
        for name in ("fetch_window", "max_holders"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")

    @classmethod
    def from_config(cls, config: Config) -> RouterSettings:
        """From a node's TOML config: ``[cache]``, ``[content]``, ``[fairness]``, ``[net]``,
        ``[analytics]`` and ``[node]``.

        The cache's budget is the one byte budget of the node, ``[content]
        budget``, less the staging reserve (:func:`~meshcore.cache.cache_budget`);
        ``[cache] policy`` picks the eviction policy; ``[node] egress_rate``,
        ``fetch_window``, ``query_timeout``, ``request_timeout`` tune
        fetching. Raises :class:`~meshcore.errors.ConfigError` naming file and key.
        """
        cache = config.section("cache")
        cache.check_known(("policy",))
        node = config.section("node")
        policy = cache.get_str("policy", "default")
        if policy not in POLICIES:
            raise cache.error("policy", f"expected one of {', '.join(sorted(POLICIES))}; "
                                        f"got {policy!r}")
        discovery = None
        if "net" in config:
            discovery = DiscoverySettings.from_config(config)
        analytics = config.section("analytics")
        salt = analytics.get_str("salt", "") or None
        d = cls()  # the defaults
        return cls(
            cache_bytes=cache_budget(config.section("content").get_bytes("budget", 1 << 30)),
            cache_policy=policy,
            fairness=parse_fairness(config),
            egress_rate=node.get_rate("egress_rate", d.egress_rate, min=1),
            fetch_window=node.get_int("fetch_window", d.fetch_window, min=1, max=64),
            query_timeout=node.get_duration("query_timeout", d.query_timeout, min=0.001),
            request_timeout=node.get_duration("request_timeout", d.request_timeout,
                                              min=0.001),
            discovery=discovery,
            analytics_salt=salt,
        )


@dataclass(slots=True)
class RouterStats:
    """Counters of one router (exported in its status)."""

    requests: int = 0
    hits: int = 0
    fetches: int = 0
    joined: int = 0
    refused: int = 0
    completed: int = 0
    chunks_fetched: int = 0
    chunks_deduplicated: int = 0
    bytes_fetched: int = 0
    failovers: int = 0
    corrupt_chunks: int = 0
    timeouts: int = 0
    chunks_served: int = 0
    bytes_served: int = 0
    unsolicited: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


@dataclass(slots=True)
class _Waiter:
    request_id: int
    principal: Principal
    since: float


@dataclass(slots=True)
class _Fetch:
    """One item being fetched for this router's clients."""

    key: Hashable
    size_hint: int
    failover: Iterator[RankedHolder]
    waiters: list[_Waiter]
    holder: RankedHolder | None = None
    chunks: tuple[tuple[bytes, int], ...] | None = None
    expires_at: float | None = None
    missing: deque[tuple[bytes, int]] = field(default_factory=deque)
    outstanding: dict[int, tuple[bytes, int]] = field(default_factory=dict)  # rid -> chunk
    have: set[bytes] = field(default_factory=set)
    staged: set[bytes] = field(default_factory=set)
    received: int = 0
    tried: int = 0


@dataclass(slots=True)
class _Pending:
    """An outgoing request waiting for its answer."""

    key: Hashable
    holder: str
    deadline: float


@dataclass(slots=True)
class _Send:
    """A chunk this router is sending to a peer."""

    peer: str
    request_id: int
    digest: bytes
    size: int
    sent: int = 0


def _default_fairness() -> FairnessSettings:
    return FairnessSettings({"default": ClassSpec("default")}, "default", chunk=16384)


@dispatches
class Router:
    """One router's cores wired together (see the module docstring).

    ``node_id`` names this router; ``rng`` is the one source of randomness;
    ``now`` (monotonic) is the start time. ``routes`` (or a ``topology`` to
    build them from) rank holders; without either, holders are tried in
    directory order. ``directory`` names holders (a new empty one by
    default); ``calendar`` is the node's calendar (:mod:`meshcore.clock`).
    ``service_port`` and ``boot_epoch`` go to discovery; ``collector`` is a
    ready-made analytics collector (one is made from ``analytics_salt`` otherwise).
    """

    def __init__(
        self,
        settings: RouterSettings,
        *,
        node_id: str,
        rng: random.Random,
        now: float,
        routes: Routes | None = None,
        topology: Topology | None = None,
        directory: Directory | None = None,
        calendar: Calendar | None = None,
        service_port: int = 8470,
        boot_epoch: int | None = None,
        collector: Collector | None = None,
    ) -> None:
        if not isinstance(settings, RouterSettings):
            raise TypeError(f"settings: expected RouterSettings, got {type(settings).__name__}")
        self.settings = settings
        self.node_id = node_id
        self.rng = rng
        self.calendar = calendar if calendar is not None else Calendar()
        if routes is None and topology is not None:
            routes = Routes(topology, self_id=node_id)
        self.routes = routes
        self.directory = directory if directory is not None else Directory()
        self.discovery = (
            Discovery(settings.discovery, node_id=node_id, service_port=service_port, rng=rng,
                      now=now, boot_epoch=boot_epoch)
            if settings.discovery is not None else None
        )
        self.cache = ContentCache(settings.cache_bytes, policy=settings.cache_policy,
                                  calendar=self.calendar)
        fairness = settings.fairness or _default_fairness()
        self.scheduler = FairScheduler(Policy(fairness), now=now, calendar=self.calendar)
        self.congestion = CongestionController(
            settings.egress_rate, chunk=fairness.chunk,
            params=CongestionParams.from_settings(fairness.congestion), now=now)
        if collector is None and settings.analytics_salt:
            collector = Collector(node_id, now=now, salt=settings.analytics_salt,
                                  calendar=self.calendar)
        self.collector = collector
        self.stats = RouterStats()
        self.deferring = False
        self._ids = itertools.count(1)
        self._fetches: dict[Hashable, _Fetch] = {}
        self._pending: dict[int, _Pending] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._sends: dict[int, _Send] = {}  # scheduler transfer id -> what is being sent
        self._egress_idle = True

    # -- the protocol ----------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline of any core, or of a request waiting for its answer."""
        times = []
        for t in (
            self.discovery.get_timer() if self.discovery is not None else None,
            self.cache.get_timer(),
            self.scheduler.get_timer(),
            self.congestion.get_timer() if self._congestion_active() else None,
            self.collector.get_timer() if self.collector is not None else None,
        ):
            if t is not None:
                times.append(t)
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._pending:
            heapq.heappop(deadlines)
        if deadlines:
            times.append(deadlines[0][0])
        return min(times) if times else None

    def handle_timer(self, *, now: float) -> list[Any]:
        """Run every core whose deadline has come; give up on unanswered requests."""
        out: list[Any] = []
        if self.discovery is not None:
            t = self.discovery.get_timer()
            if t is not None and t <= now:
                self._route(self.discovery.handle_timer(now=now), now, out)
        t = self.cache.get_timer()
        if t is not None and t <= now:
            self._route(self.cache.handle_timer(now=now), now, out)
        t = self.scheduler.get_timer()
        if t is not None and t <= now:
            self._route(self.scheduler.handle_timer(now=now), now, out)
        if self._congestion_active() and self.congestion.get_timer() <= now:
            self._route(self.congestion.handle_timer(now=now), now, out)
        if self.collector is not None and self.collector.get_timer() <= now:
            out.extend(self.collector.handle_timer(now=now))
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, rid = heapq.heappop(deadlines)
            pending = self._pending.get(rid)
            if pending is not None and pending.deadline <= now:
                self.stats.timeouts += 1
                self.congestion.on_timeout(now=now)
                self._holder_failed(pending.key, pending.holder, "timeout", now, out)
        self._pull(now, out)
        return out

    def _congestion_active(self) -> bool:
        # The controller ticks every interval (0.1 s): only while this router
        # is sending, or still mitigating, so an idle router costs no timer.
        c = self.congestion
        return bool(len(self.scheduler)) or c.congested or c.bg_rate is not None or (
            c.od_rate is not None) or c.deferring

    # -- pass-through to the cores ---------------------------------------------------------

    @handler(Start, Datagram, DaemonNeighbours, Advertise)
    def _on_discovery(self, event: Any, *, now: float) -> list[Any]:
        out: list[Any] = []
        if self.discovery is not None:
            self._route(self.discovery.handle(event, now=now), now, out)
        return out

    @handler(TopologyChanged)
    def _on_topology(self, event: TopologyChanged, *, now: float) -> list[Any]:
        if self.routes is None:
            self.routes = Routes(event.topology, self_id=self.node_id)
            return []
        return self.routes.handle(event, now=now)

    @handler(LinkChange)
    def _on_link_change(self, event: LinkChange, *, now: float) -> list[Any]:
        out: list[Any] = []
        if self.routes is not None:
            out.extend(self.routes.handle(event, now=now))
        if self.collector is not None and event.source == self.node_id and (
                event.new_cost >= 1):
            self.collector.record(event, now=now)
        return out

    @handler(WallClock)
    def _on_wall_clock(self, event: WallClock, *, now: float) -> list[Any]:
        step = self.calendar.observe(event.wall, now=now)
        if step is None:
            return []
        new_wall = self.calendar.wall(now)
        self.scheduler.clock_stepped(new_wall - step.delta, new_wall)
        return [step]

    @handler(ItemPublished)
    def _on_published(self, event: ItemPublished, *, now: float) -> list[Any]:
        out: list[Any] = []
        offer = Offer(event.key, tuple(event.chunks), expires_at=event.expires_at,
                      pin=event.pin, pin_until=event.pin_until)
        effects = self.cache.handle(offer, now=now)
        self._route(effects, now, out)
        return out

    # -- a client's request ----------------------------------------------------------------

    @handler(ClientRequest)
    def _on_client_request(self, event: ClientRequest, *, now: float) -> list[Any]:
        self.stats.requests += 1
        out: list[Any] = []
        key = event.key
        hit, effects = self.cache.request(key, now=now)
        effects.append(LookupResult(key, hit))
        self._route(effects, now, out)
        if hit:
            self.stats.hits += 1
            size = self.cache.size_of(key)
            self._answer(_Waiter(event.request_id, event.principal, now), key, size, Tier.LOCAL,
                         self.node_id, now, out)
            return out
        waiter = _Waiter(event.request_id, event.principal, now)
        fetch = self._fetches.get(key)
        if fetch is not None:
            self.stats.joined += 1
            fetch.waiters.append(waiter)
            return out
        self._start_fetch(key, waiter, now, out)
        return out

    def _start_fetch(self, key: Hashable, waiter: _Waiter, now: float, out: list) -> None:
        holders = [h for h in self.directory.holders(key) if h != self.node_id]
        size = self.directory.size(key) or 0
        if self.routes is not None:
            ranked: Iterator[RankedHolder] = self.routes.failover(holders, size)
        else:
            ranked = iter([RankedHolder(h, Tier.MULTI_HOP, math.inf, -1, None, 0.0, math.inf)
                           for h in holders])
        fetch = _Fetch(key, size, ranked, [waiter])
        self.stats.fetches += 1
        self._fetches[key] = fetch
        self._next_holder(fetch, now, out)

    def _next_holder(self, fetch: _Fetch, now: float, out: list) -> None:
        """Move ``fetch`` to its next holder, or refuse its waiters when none is left."""
        holder = None
        if fetch.tried < self.settings.max_holders:
            holder = next(fetch.failover, None)
        if holder is None:
            self._give_up(fetch, "no-holder", now, out)
            return
        fetch.tried += 1
        if fetch.holder is not None:
            self.stats.failovers += 1
        fetch.holder = holder
        if fetch.chunks is None:
            rid = self._expect(fetch.key, holder.node_id, now + self.settings.query_timeout)
            out.append(SendMessage(holder.node_id, ItemQuery(rid, fetch.key)))
        else:
            self._request_chunks(fetch, now, out)

    def _expect(self, key: Hashable, holder: str, deadline: float) -> int:
        rid = next(self._ids)
        self._pending[rid] = _Pending(key, holder, deadline)
        heapq.heappush(self._deadlines, (deadline, rid))
        return rid

    def _request_chunks(self, fetch: _Fetch, now: float, out: list) -> None:
        assert fetch.holder is not None
        holder = fetch.holder.node_id
        deadline = now + self.settings.request_timeout
        while fetch.missing and len(fetch.outstanding) < self.settings.fetch_window:
            digest, size = fetch.missing.popleft()
            rid = self._expect(fetch.key, holder, deadline)
            fetch.outstanding[rid] = (digest, size)
            out.append(SendMessage(holder, ChunkRequest(rid, digest, size, ON_DEMAND)))
        if not fetch.missing and not fetch.outstanding:
            self._complete(fetch, now, out)

    def _on_item_info(self, peer: str, info: ItemInfo, now: float, out: list) -> None:
        pending = self._pending.pop(info.request_id, None)
        if pending is None or pending.holder != peer:
            return
        fetch = self._fetches.get(pending.key)
        if fetch is None or fetch.chunks is not None:
            return
        if not info.found:
            self._holder_failed(pending.key, peer, "not-held", now, out)
            return
        fetch.chunks = tuple((bytes(d), int(s)) for d, s in info.chunks)
        fetch.expires_at = info.expires_at
        for digest, size in dict(fetch.chunks).items():
            if self.cache.chunk_refcount(digest):
                self.stats.chunks_deduplicated += 1
                fetch.have.add(digest)
            else:
                fetch.missing.append((digest, size))
        self._request_chunks(fetch, now, out)

    @handler(ChunkArrived)
    def _on_chunk(self, event: ChunkArrived, *, now: float) -> list[Any]:
        out: list[Any] = []
        pending = self._pending.pop(event.request_id, None)
        fetch = None if pending is None else self._fetches.get(pending.key)
        chunk = None if fetch is None else fetch.outstanding.pop(event.request_id, None)
        if fetch is None or chunk is None or chunk[0] != bytes(event.digest):
            # Late (its holder was failed over) or unsolicited: not needed. The
            # host staged it if it verified; free it unless something keeps it.
            self.stats.unsolicited += 1
            if event.intact and not self.cache.chunk_refcount(event.digest) and not (
                    self._staged_anywhere(event.digest)):
                out.append(FreeChunk(bytes(event.digest), event.size))
            return out
        if not event.intact:
            self.stats.corrupt_chunks += 1
            fetch.missing.appendleft(chunk)
            self._holder_failed(fetch.key, event.peer, "corrupt", now, out)
            return out
        self.stats.chunks_fetched += 1
        self.stats.bytes_fetched += event.size
        fetch.have.add(chunk[0])
        fetch.staged.add(chunk[0])
        fetch.received += event.size
        self._request_chunks(fetch, now, out)
        return out

    def _staged_anywhere(self, digest: bytes) -> bool:
        return any(digest in f.staged for f in self._fetches.values())

    def _holder_failed(self, key: Hashable, holder: str, reason: str, now: float,
                       out: list) -> None:
        """``holder`` cannot serve ``key`` (``reason``): resume from the next holder."""
        fetch = self._fetches.get(key)
        if fetch is None or fetch.holder is None or fetch.holder.node_id != holder:
            return
        for rid in [r for r, p in self._pending.items() if p.key == key and p.holder == holder]:
            del self._pending[rid]
            chunk = fetch.outstanding.pop(rid, None)
            if chunk is not None:
                fetch.missing.appendleft(chunk)
        self._next_holder(fetch, now, out)

    def _complete(self, fetch: _Fetch, now: float, out: list) -> None:
        del self._fetches[fetch.key]
        assert fetch.chunks is not None and fetch.holder is not None
        size = sum(dict(fetch.chunks).values())
        effects = self.cache.handle(Offer(fetch.key, fetch.chunks, fetch.expires_at), now=now)
        kept = any(isinstance(e, ItemStored) and e.key == fetch.key for e in effects)
        source = fetch.holder
        for waiter in fetch.waiters:
            self._answer(waiter, fetch.key, size, source.tier, source.node_id, now, out)
        self.stats.completed += 1
        self._route(effects, now, out)
        if not kept:
            # The cache did not keep it: the chunks staged for it go, after the
            # clients were answered (the driver frees a chunk once no read needs it).
            for digest in sorted(fetch.staged):
                if not self.cache.chunk_refcount(digest) and not self._staged_anywhere(digest):
                    out.append(FreeChunk(digest, dict(fetch.chunks)[digest]))

    def _answer(self, waiter: _Waiter, key: Hashable, size: int, tier: Tier, source: str,
                now: float, out: list) -> None:
        seconds = now - waiter.since
        out.append(Deliver(waiter.request_id, key, size, tier))
        out.append(RequestCompleted(waiter.request_id, key, tier, source, size, seconds))
        if self.collector is not None:
            p = waiter.principal
            self.collector.request_served(
                str(key), p.device or p.user or p.name, tier, size, now=now,
                household=p.household or "", latency=seconds)

    def _give_up(self, fetch: _Fetch, reason: str, now: float, out: list) -> None:
        self._fetches.pop(fetch.key, None)
        for rid in [r for r, p in self._pending.items() if p.key == fetch.key]:
            del self._pending[rid]
        for waiter in fetch.waiters:
            self.stats.refused += 1
            out.append(RequestRefused(waiter.request_id, fetch.key, reason))
            if self.collector is not None:
                p = waiter.principal
                self.collector.record(
                    RequestFailed(str(fetch.key), p.device or p.user or p.name, reason), now=now)
        for digest in sorted(fetch.staged):
            if not self.cache.chunk_refcount(digest) and not self._staged_anywhere(digest):
                out.append(FreeChunk(digest, dict(fetch.chunks or ())[digest]))

    # -- messages from peers ---------------------------------------------------------------

    @handler(MessageReceived)
    def _on_message(self, event: MessageReceived, *, now: float) -> list[Any]:
        out: list[Any] = []
        msg, peer = event.message, event.peer
        if isinstance(msg, ChunkRequest):
            self._serve_chunk(peer, msg, now, out)
        elif isinstance(msg, ItemQuery):
            chunks = self.cache.chunks_of(msg.key)
            found = chunks is not None
            out.append(SendMessage(peer, ItemInfo(
                msg.request_id, msg.key, chunks or (), found,
                self.cache.expires_at(msg.key) if found else None)))
        elif isinstance(msg, ItemInfo):
            self._on_item_info(peer, msg, now, out)
        elif isinstance(msg, ChunkUnavailable):
            pending = self._pending.get(msg.request_id)
            if pending is not None and pending.holder == peer:
                self._holder_failed(pending.key, peer, msg.reason, now, out)
        return out

    @handler(MessageFailed)
    def _on_message_failed(self, event: MessageFailed, *, now: float) -> list[Any]:
        out: list[Any] = []
        msg = event.message
        if isinstance(msg, ChunkSlice):
            # The peer cannot be reached: stop sending it this chunk.
            for tid, send in list(self._sends.items()):
                if send.peer == event.peer and send.request_id == msg.request_id:
                    del self._sends[tid]
                    self.scheduler.complete(tid, now=now)
            return out
        rid = getattr(msg, "request_id", None)
        pending = self._pending.get(rid) if isinstance(rid, int) else None
        if pending is not None and pending.holder == event.peer:
            self._holder_failed(pending.key, event.peer, "unreachable", now, out)
        return out

    def _serve_chunk(self, peer: str, req: ChunkRequest, now: float, out: list) -> None:
        digest = bytes(req.digest)
        if not self.cache.chunk_refcount(digest):
            out.append(SendMessage(peer, ChunkUnavailable(req.request_id, digest, "not-held")))
            return
        tid = next(self._ids)
        priority = req.priority if req.priority in (ON_DEMAND, BACKGROUND) else ON_DEMAND
        transfer = Transfer(tid, req.size, Principal(node=peer), priority=priority,
                            kind="chunk")
        decision = self.scheduler.submit(transfer, now=now)
        if not decision.accepted:
            out.append(SendMessage(peer, ChunkUnavailable(req.request_id, digest,
                                                          f"refused: {decision.reason}")))
            return
        self._sends[tid] = _Send(peer, req.request_id, digest, req.size)
        if req.size == 0:
            self._sends.pop(tid)
            out.append(SendSlice(peer, ChunkSlice(req.request_id, digest, 0, 0, 0)))
            return
        self._pull(now, out)

    @handler(EgressIdle)
    def _on_egress_idle(self, event: EgressIdle, *, now: float) -> list[Any]:
        self._egress_idle = True
        out: list[Any] = []
        self._pull(now, out)
        return out

    def _pull(self, now: float, out: list) -> None:
        """Hand the next slice to the egress when it is idle (the scheduler picks it)."""
        if not self._egress_idle or not self._sends:
            return
        got = self.scheduler.next_send(now=now)
        if got is None:
            return
        transfer, nbytes = got
        send = self._sends[transfer.transfer_id]
        piece = ChunkSlice(send.request_id, send.digest, send.sent, nbytes, send.size)
        send.sent += nbytes
        self.congestion.on_sojourn(self.scheduler.last_sojourn, priority=transfer.priority,
                                   now=now)
        if send.sent >= send.size:
            del self._sends[transfer.transfer_id]
            self.stats.chunks_served += 1
            self.stats.bytes_served += send.size
            if self.collector is not None:
                self.collector.record(PeerServed(send.peer, send.size), now=now)
        self._egress_idle = False
        out.append(SendSlice(send.peer, piece))

    # -- effects between cores ----------------------------------------------------------------

    def _route(self, effects: list[Any], now: float, out: list[Any]) -> None:
        """Send each core's effect to the core that acts on it, or out to the host."""
        collector = self.collector
        for e in effects:
            kind = type(e)
            if kind is SetClassRate:
                self.scheduler.set_class_rate(e.priority, e.rate, now=now)
                continue
            if kind is DeferReplication:
                self.deferring = e.defer
                continue
            if kind is ItemStored:
                out.append(Holding(self.node_id, e.key, True, self.cache.size_of(e.key)))
            elif kind is Evicted:
                out.append(Holding(self.node_id, e.key, False))
            elif kind is Refused:
                send = self._sends.pop(e.transfer_id, None)
                if send is not None:
                    out.append(SendMessage(send.peer, ChunkUnavailable(
                        send.request_id, send.digest, f"quota: {e.reason}")))
                if collector is not None:
                    collector.record(QuotaAction(send.peer if send else "?", "block"), now=now)
            if collector is not None:
                if kind is LookupResult:
                    collector.record(CacheLookup(e.hit), now=now)
                elif kind is PeerJoined:
                    collector.record(NeighborChange(e.peer.node_id, up=True), now=now)
                    if math.isfinite(e.peer.etx):  # inf here: not measured yet
                        self._record_etx(e.peer.node_id, e.peer.etx, now)
                elif kind is PeerChanged and "etx" in e.fields:
                    self._record_etx(e.peer.node_id, e.peer.etx, now)  # inf: the link is lost
                elif kind is PeerLeft:
                    collector.record(NeighborChange(e.node_id, up=False), now=now)
                elif kind is CongestionCleared:
                    collector.record(CongestionEpisode(self.node_id, e.duration), now=now)
            out.append(e)

    def _record_etx(self, peer: str, etx: float, now: float) -> None:
        # Discovery's ETX is >= 1 by construction; nan means no measurement.
        if self.collector is not None and not math.isnan(etx):
            self.collector.record(LinkChange(self.node_id, peer, math.nan, max(1.0, etx)),
                                  now=now)

    # -- views ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A JSON-able summary: counters, cache and scheduler state."""
        return {
            "node_id": self.node_id,
            "stats": self.stats.as_dict(),
            "cache": {"items": len(self.cache), "used_bytes": self.cache.used_bytes,
                      "budget_bytes": self.cache.budget_bytes},
            "fetches": len(self._fetches),
            "sending": len(self._sends),
            "congested": self.congestion.congested,
        }
