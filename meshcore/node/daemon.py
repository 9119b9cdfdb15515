"""The node daemon: the composed Router on real sockets, disk and clock.

Theory of operation
-------------------
``meshcore node run --config node.toml`` builds one
:class:`~meshcore.router.Router` from the config (discovery from ``[net]``,
which refuses a config without ``net.community_key``; the cache, the fair
scheduler and the congestion controller from ``[cache]``, ``[content]`` and
``[fairness]``; the analytics collector from ``[analytics]``) and hosts it
with the one host loop (:class:`~meshcore.host.HostLoop`) on a
:class:`~meshcore.node.udp.UdpDriver`: ``now`` is ``loop.time()``, the
node's :class:`~meshcore.clock.Calendar` is fed the wall clock every
``status_interval`` (a step is logged and handled once, see
``docs/architecture.md``). When ``[content]`` is configured the content store
and catalog are the cache core's storage driver
(:class:`~meshcore.content.driver.ContentStorage`): what is on disk is offered
to the cache at start, and the cache's decisions are carried out on disk.
When ``[net.babeld]`` is configured, a
:class:`~meshcore.node.babeld.BabeldClient`'s neighbour list becomes
discovery's unicast targets beyond the segment (``DaemonNeighbours``) and
its costs on this router's own links become ``LinkChange`` events; its
topology is kept (and logged as diffs). Everything runs on one asyncio loop;
SIGTERM and SIGINT stop it cleanly (sockets closed, the analytics windows
flushed to the rollup store, a last status written).

Routers do not yet move content between them over the network: messages
the router addresses to peers (``SendMessage``/``SendSlice``) are counted as
``undeliverable`` and handed back as ``MessageFailed``, so a request for an
item this node does not hold is refused (``no-holder`` or ``unreachable``)
rather than left waiting.

Peer events are logged (``peer joined``, ``peer left``, state changes), and
a JSON status file (``[node] status_file``) is rewritten atomically every
``status_interval`` seconds and after peer events, so operators and tests
can see what the node knows without a control socket (``meshcore node
peers`` prints it).

Config keys (``docs/node.md`` has the full table)::

    [node]
    id = "0123456789abcdef"     # default: from /etc/machine-id and the host name
    service_port = 0            # advertised in beacons
    bind = "0.0.0.0"            # unicast socket address
    status_file = ""            # JSON status, "" = none
    status_interval = "2s"
    log_level = "info"

    [net]                       # discovery (meshcore.net.discovery)
    community_key = "..."       # required

    [net.babeld]                # optional: follow a babeld
    address = "[::1]:33123"     # or a Unix socket path
    reconnect_initial = "0.5s"
    reconnect_max = "30s"
    connect_timeout = "5s"

    [analytics]                 # optional: usage analytics (meshcore.analytics)
    salt = "..."                # see docs/analytics.md
    textfile_path = ""          # node_exporter textfile (*.prom), "" = none

When ``[analytics]`` is present (and not ``enabled = false``) the router
keeps a :class:`~meshcore.analytics.events.Collector`: discovery's peer
events become ``NeighborChange`` events (and ETX changes ``LinkChange``),
babeld's cost changes on this router's own links become ``LinkChange``
events, and a few node gauges and counters (peers by state, discovery
datagrams) are added to the same registry. Closed windows come back from the
router as ``StoreRollup`` commands and are written to the rollup store
(``rollup_path``), pruned once an hour. Every ``status_interval``, when
``textfile_path`` is set, the daemon rewrites that file atomically
(:func:`~meshcore.analytics.exporters.write_textfile`). A write that fails
is logged once per failure streak and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import random
import secrets
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshcore._files import write_atomic
from meshcore.analytics.events import Collector, StoreRollup
from meshcore.analytics.exporters import write_textfile as _write_prom
from meshcore.analytics.rollups import RollupStore
from meshcore.analytics.settings import AnalyticsSettings
from meshcore.cache import Evicted, FreeChunk, ItemRejected, StoreChunk
from meshcore.clock import Calendar, ClockStep
from meshcore.config import Config, Section
from meshcore.content.driver import ContentStorage
from meshcore.content.node import ContentNode
from meshcore.content.settings import ContentSettings
from meshcore.errors import StorageError
from meshcore.net.discovery import (
    Discovery,
    DiscoverySettings,
    PeerChanged,
    PeerJoined,
    PeerLeft,
)
from meshcore.net.links import LinkChange
from meshcore.net.topology import Topology
from meshcore.router.events import MessageFailed, SendMessage, SendSlice, WallClock
from meshcore.router.router import Router, RouterSettings

from .babeld import BabeldAddress, BabeldClient, parse_babeld_address
from .udp import UdpDriver

__all__ = ["BabeldSettings", "NodeDaemon", "NodeSettings", "default_node_id"]

log = logging.getLogger("meshcore.node")

NODE_KEYS = ("id", "service_port", "bind", "status_file", "status_interval", "log_level")
BABELD_KEYS = ("address", "reconnect_initial", "reconnect_max", "connect_timeout")
LOG_LEVELS = ("debug", "info", "warning", "error")
_DROP_REASONS = ("malformed", "auth", "replay", "oversize", "version", "self")


@dataclass(frozen=True, slots=True)
class BabeldSettings:
    """``[net.babeld]``: where babeld's local interface is and how to retry (seconds)."""

    address: BabeldAddress
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    connect_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Everything ``meshcore node run`` reads from the config file."""

    discovery: DiscoverySettings
    node_id: str
    service_port: int = 0
    bind: str = "0.0.0.0"
    status_file: str = ""
    status_interval: float = 2.0
    log_level: str = "info"
    babeld: BabeldSettings | None = None
    analytics: AnalyticsSettings | None = None
    """``[analytics]`` when present and enabled; None = analytics off."""
    router: RouterSettings | None = None
    """The router's cores (cache, fairness, fetching); defaults when None."""
    content: ContentSettings | None = None
    """``[content]`` when present: the store and catalog under the cache core."""

    @classmethod
    def from_config(cls, config: Config) -> NodeSettings:
        """Validate ``[node]``, ``[net]``, ``[net.babeld]`` and ``[analytics]``.

        Raises :class:`~meshcore.errors.ConfigError` naming the key: a
        missing ``net.community_key``, an unknown key in ``[node]`` or
        ``[net.babeld]``, a bad address or value, an ``[analytics]`` table
        that :meth:`AnalyticsSettings.from_config` refuses, or an
        ``analytics.textfile_path`` not ending in ``.prom``.
        """
        node = config.section("node")
        node.check_known(NODE_KEYS)
        net = config.section("net")
        discovery = DiscoverySettings.from_config(net)
        node_id = node.get_str("id", "") or default_node_id()
        if not 1 <= len(node_id.encode("utf-8")) <= 64 or any(c.isspace() for c in node_id):
            raise node.error("id", f"expected 1..64 bytes without spaces, got {node_id!r}")
        bind = node.get_str("bind", "0.0.0.0")
        try:
            socket.inet_aton(bind)
        except OSError:
            raise node.error("bind", f"expected an IPv4 address, got {bind!r}") from None
        status_interval = node.get_duration("status_interval", 2.0)
        if status_interval <= 0:
            raise node.error("status_interval", "expected a duration > 0")
        return cls(
            discovery=discovery,
            node_id=node_id,
            service_port=node.get_int("service_port", 0, min=0, max=65535),
            bind=bind,
            status_file=node.get_str("status_file", ""),
            status_interval=status_interval,
            log_level=node.get_str("log_level", "info", choices=LOG_LEVELS),
            babeld=_babeld_settings(net),
            analytics=_analytics_settings(config),
            router=RouterSettings.from_config(config),
            content=ContentSettings.from_config(config) if "content" in config else None,
        )


def _analytics_settings(config: Config) -> AnalyticsSettings | None:
    if "analytics" not in config:
        return None
    settings = AnalyticsSettings.from_config(config)
    if not settings.enabled:
        return None
    path = settings.textfile_path
    if path and Path(path).suffix != ".prom":
        # node_exporter reads only *.prom: refuse at startup, not at every write.
        raise config.section("analytics").error(
            "textfile_path", f"expected a path ending in .prom, got {path!r}")
    return settings


def _babeld_settings(net: Section) -> BabeldSettings | None:
    if "babeld" not in net:
        return None
    section = net.section("babeld")
    section.check_known(BABELD_KEYS)
    try:
        address = parse_babeld_address(section.get_str("address"))
    except ValueError as exc:
        raise section.error("address", str(exc)) from None
    initial = section.get_duration("reconnect_initial", 0.5)
    maximum = section.get_duration("reconnect_max", 30.0)
    if initial <= 0:
        raise section.error("reconnect_initial", "expected a duration > 0")
    if maximum < initial:
        raise section.error("reconnect_max", f"expected >= reconnect_initial ({initial}s)")
    timeout = section.get_duration("connect_timeout", 5.0)
    if timeout <= 0:
        raise section.error("connect_timeout", "expected a duration > 0")
    return BabeldSettings(address, initial, maximum, timeout)


def default_node_id() -> str:
    """16 hex digits from ``/etc/machine-id`` and the host name (stable across reboots).

    Clones of one image share a machine id: give them ``[node] id`` explicitly.
    """
    seed = socket.gethostname()
    with contextlib.suppress(OSError):
        seed = Path("/etc/machine-id").read_text().strip() + "/" + seed
    return hashlib.blake2b(seed.encode(), digest_size=8).hexdigest()


class NodeDaemon:
    """One node: the Router on the UDP driver, with its storage, babeld and analytics.

    ``rng`` seeds the cores and the backoff jitter (default: a fresh
    ``random.Random``). ``wall_clock`` gives Unix seconds (default
    ``time.time``): read here and fed to the node's calendar, never read by a
    core. :meth:`run` returns when :meth:`stop` is called, a signal arrives,
    or ``duration`` seconds have passed.
    """

    def __init__(
        self,
        settings: NodeSettings,
        *,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.rng = rng if rng is not None else random.Random()
        self.wall_clock = wall_clock
        """Unix seconds, read by the daemon and fed to the calendar."""
        now = time.monotonic()  # asyncio's default loop.time()
        self.calendar = Calendar.at(wall_clock(), now=now)
        self.textfile_errors = 0
        """Failed textfile writes since start."""
        self.undeliverable = 0
        """Messages to other routers dropped: there is no transport between routers yet."""
        self._textfile_failing = False
        self._stats_seen: dict[str, int] = {}
        collector = None
        if settings.analytics is not None:
            collector = self._start_analytics(settings.analytics, now)
        router_settings = dataclasses.replace(settings.router or RouterSettings(),
                                              discovery=settings.discovery)
        self.router = Router(
            router_settings,
            node_id=settings.node_id,
            rng=self.rng,
            now=now,
            calendar=self.calendar,
            service_port=settings.service_port,
            boot_epoch=int(wall_clock()) & 0xFFFFFFFF,
            collector=collector,
        )
        self.core: Discovery | None = self.router.discovery
        self.driver: UdpDriver | None = None
        self.babeld: BabeldClient | None = None
        self.topology: Topology | None = None
        self.content: ContentNode | None = None
        self.storage: ContentStorage | None = None
        self.rollups: RollupStore | None = None
        self.started_at = 0.0
        self.core_started: float | None = None
        """The core's clock (``time.monotonic``) when discovery started."""
        self._stop: asyncio.Event | None = None
        self._status_dirty = False
        self._next_prune = 0.0

    @property
    def analytics(self) -> Collector | None:
        """The router's analytics collector (None without ``[analytics]``)."""
        return self.router.collector

    def stop(self) -> None:
        """Ask :meth:`run` to return (safe from a signal handler)."""
        if self._stop is not None:
            self._stop.set()

    async def run(self, *, duration: float | None = None) -> int:
        """Run until stopped; returns 0. Raises OSError when the UDP port cannot be bound."""
        s = self.settings
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.started_at = time.monotonic()
        self._open_storage()
        self.driver = UdpDriver(self.router, settings=s.discovery, bind_host=s.bind,
                                on_event=self._on_effect)
        self.core_started = loop.time()
        try:
            await self.driver.start()
        except BaseException:
            self._close_storage()
            raise
        self.driver.feed(WallClock(self.wall_clock()))
        if self.storage is not None:
            for event in self.storage.items(wall=self.calendar.wall(loop.time())):
                self.driver.feed(event)
        log.info("node %s listening on %s:%d (multicast %s on %s)", s.node_id, s.bind,
                 s.discovery.port, s.discovery.multicast_group,
                 ", ".join(self.driver.interfaces) or
                 ("default interface" if s.discovery.multicast else "off"))
        tasks: list[asyncio.Task] = []
        if s.babeld is not None:
            b = s.babeld
            self.babeld = BabeldClient(
                b.address,
                discovery_port=s.discovery.port,
                on_topology=self._on_topology,
                on_neighbours=self._on_neighbours,
                rng=random.Random(self.rng.getrandbits(64)),
                backoff_initial=b.reconnect_initial,
                backoff_max=b.reconnect_max,
                connect_timeout=b.connect_timeout,
            )
            tasks.append(asyncio.create_task(self.babeld.run(), name="babeld"))
        if s.status_file:
            tasks.append(asyncio.create_task(self._status_loop(), name="status"))
        tasks.append(asyncio.create_task(self._clock_loop(), name="clock"))
        installed = self._install_signals(loop)
        try:
            if duration is None:
                await self._stop.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), duration)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            if self.babeld is not None:
                self.babeld.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.driver.close()
            if self.analytics is not None:
                self.update_analytics()  # the last counts before exit
                self._store_rollups(self.analytics.flush(now=loop.time()))
            if s.status_file:
                self.write_status()
            self._close_storage()
            log.info("node %s stopped", s.node_id)
        return 0

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
                continue
            installed.append(sig)
        return installed

    # -- storage -----------------------------------------------------------------

    def _open_storage(self) -> None:
        s = self.settings
        if s.content is not None:
            self.content = ContentNode(s.content, now=self.wall_clock())
            self.storage = ContentStorage(self.content, node_id=s.node_id)
        a = s.analytics
        if a is not None and a.rollup_path:
            self.rollups = RollupStore(a.rollup_path, retention={
                "minute": a.retention_minutes, "hour": a.retention_hours,
                "day": a.retention_days})

    def _close_storage(self) -> None:
        if self.content is not None:
            self.content.close()
        if self.rollups is not None:
            self.rollups.close()

    def _store_rollups(self, rollups: list) -> None:
        if self.rollups is None or not rollups:
            return
        try:
            self.rollups.write(rollups)
            wall = self.wall_clock()
            if wall >= self._next_prune:
                self._next_prune = wall + 3600.0
                self.rollups.prune(now=wall)
        except (OSError, StorageError) as exc:
            log.warning("cannot write analytics rollups to %s: %s", self.rollups.path, exc)

    # -- effects -------------------------------------------------------------------

    def _on_effect(self, effect: object) -> None:
        """Carry out what the router asks beyond datagrams (the UDP driver sends those)."""
        kind = type(effect)
        if kind in (PeerJoined, PeerLeft, PeerChanged):
            self._on_peer_event(effect)
        elif kind in (StoreChunk, FreeChunk, Evicted, ItemRejected):
            if self.storage is not None:
                self.storage.apply([effect])
        elif kind is StoreRollup:
            self._store_rollups([effect.rollup])
        elif kind in (SendMessage, SendSlice):
            # No transport between routers yet: the request fails over at once.
            self.undeliverable += 1
            if self.driver is not None:
                loop = asyncio.get_running_loop()
                loop.call_soon(self.driver.feed, MessageFailed(effect.peer, effect.message))
        elif kind is ClockStep:
            log.warning("wall clock stepped by %+.0f s (quota periods carried over)",
                        effect.delta)

    def _on_peer_event(self, event: object) -> None:
        self._status_dirty = True
        if isinstance(event, PeerJoined):
            p = event.peer
            how = (f"multicast on {p.interface or 'default interface'}" if p.via_multicast
                   else f"via {p.via}" if p.via else "unicast")
            addr = f"{p.addr[0]}:{p.addr[1]}" if p.addr else "?"
            log.info("peer joined %s at %s (%s, %d hop%s)", p.node_id, addr, how, p.hops,
                     "" if p.hops == 1 else "s")
        elif isinstance(event, PeerLeft):
            log.info("peer left %s (%s)", event.node_id, event.reason)
        elif isinstance(event, PeerChanged):
            level = logging.INFO if "state" in event.fields else logging.DEBUG
            log.log(level, "peer %s changed %s (state %s)", event.peer.node_id,
                    ", ".join(event.fields), event.peer.state)

    def _feed(self, event: object) -> None:
        """Into the router: through the host loop once running, directly before."""
        if self.driver is not None and self.driver.host is not None:
            self.driver.feed(event)
        else:
            for effect in self.router.handle(event, now=time.monotonic()):
                self._on_effect(effect)

    def _on_neighbours(self, addrs: list[tuple[str, int]]) -> None:
        if self.driver is not None:
            self.driver.set_daemon_neighbours(addrs)
        self._status_dirty = True

    def _on_topology(self, topology: Topology) -> None:
        old, self.topology = self.topology, topology
        self._status_dirty = True
        self._record_links(old, topology)
        if old is None:
            log.info("babeld topology: %d routers, %d links", len(topology),
                     topology.num_links)
            return
        diff = old.diff(topology)
        for change in diff.changed_links:
            log.info("babeld link %s -> %s: cost %s -> %s", change.source, change.target,
                     _cost(change.old_cost), _cost(change.new_cost))
        if diff.added_nodes or diff.removed_nodes:
            log.info("babeld routers added %s, removed %s", list(diff.added_nodes),
                     list(diff.removed_nodes))

    def _record_links(self, old: Topology | None, new: Topology) -> None:
        """babeld costs of this router's own links -> LinkChange events for the router."""
        me = new.router_id
        if me is None:
            return
        before = {lk.target: lk.cost for lk in (old.links() if old else ()) if lk.source == me}
        after = {lk.target: lk.cost for lk in new.links() if lk.source == me}
        for target in sorted(before.keys() | after.keys()):
            cost = after.get(target, math.inf)
            if before.get(target) == cost:
                continue
            # babeld's cost is in 1/256 units, one good hop ~ 1.0 after Topology's
            # scaling; ETX is >= 1, so cheaper-than-ideal costs read as 1. babeld
            # names routers by its own router ids: the link is this node's.
            old_cost = before.get(target, math.nan)
            self._feed(LinkChange(self.settings.node_id, target, old_cost, max(1.0, cost)))

    # -- analytics ---------------------------------------------------------------

    def _start_analytics(self, a: AnalyticsSettings, now: float) -> Collector:
        # With exports off a salt is optional; the daemon records no principals,
        # so a per-process random salt keeps the Collector's contract.
        salt = a.salt or secrets.token_hex(16)
        collector = Collector(
            self.settings.node_id, now=now, salt=salt, calendar=self.calendar,
            label_cap=a.label_cardinality_cap, hll_precision=a.hll_precision,
            top_k=a.top_k, stored_top=a.stored_top)
        reg = collector.registry
        self._m_peers = reg.gauge("meshcore_node_peers", "Peers in the discovery table, by state",
                                  ("state",))
        self._m_datagrams = reg.counter(
            "meshcore_node_discovery_datagrams", "Discovery datagrams, by direction",
            ("direction",))
        self._m_dropped = reg.counter(
            "meshcore_node_discovery_dropped", "Discovery datagrams dropped, by reason",
            ("reason",))
        self._m_textfile_errors = reg.counter(
            "meshcore_node_textfile_errors", "Failed writes of the Prometheus textfile")
        for state in ("alive", "suspect"):
            self._m_peers.labels(state).set(0)
        for direction in ("sent", "received"):
            self._m_datagrams.labels(direction).inc(0)
        for reason in _DROP_REASONS:
            self._m_dropped.labels(reason).inc(0)
        return collector

    def update_analytics(self) -> None:
        """Refresh the node gauges and write the textfile (if set).

        A failed write is logged (once until a write succeeds again) and counted
        in ``meshcore_node_textfile_errors_total``; it never raises.
        """
        collector = self.analytics
        if collector is None:
            return
        if self.core is not None:
            counts: dict[str, int] = {"alive": 0, "suspect": 0}
            for p in self.core.peers:
                counts[p.state] = counts.get(p.state, 0) + 1
            for state, n in counts.items():
                self._m_peers.labels(state).set(n)
            stats = self.core.stats
            self._sync_counter(self._m_datagrams.labels("sent"), "sent", stats.sent_datagrams)
            self._sync_counter(self._m_datagrams.labels("received"), "received", stats.received)
            for reason in _DROP_REASONS:
                self._sync_counter(self._m_dropped.labels(reason), reason,
                                   getattr(stats, "dropped_" + reason))
        path = self.settings.analytics.textfile_path if self.settings.analytics else ""
        if path:
            self.write_textfile(path)

    def _sync_counter(self, child: Any, key: str, value: int) -> None:
        # Discovery's stats are monotonic totals: add what is new since last time.
        seen = self._stats_seen.get(key, 0)
        if value > seen:
            child.inc(value - seen)
            self._stats_seen[key] = value

    def write_textfile(self, path: str) -> None:
        """Write the collector's registry to ``path`` atomically; errors are logged, not raised."""
        assert self.analytics is not None
        try:
            # Rewritten every status_interval: not fsynced (flash wear).
            _write_prom(self.analytics.registry, path, durable=False)
        except OSError as exc:
            self.textfile_errors += 1
            self._m_textfile_errors.inc()
            if not self._textfile_failing:
                log.warning("cannot write Prometheus textfile %s: %s", path,
                            exc.strerror or exc)
            self._textfile_failing = True
        else:
            if self._textfile_failing:
                log.info("Prometheus textfile %s written again", path)
            self._textfile_failing = False

    async def _clock_loop(self) -> None:
        # The wall clock reaches the cores only here, as a WallClock event;
        # the analytics gauges and textfile are refreshed on the same beat.
        interval = self.settings.status_interval
        while True:
            await asyncio.sleep(interval)
            self._feed(WallClock(self.wall_clock()))
            self.update_analytics()

    # -- status ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What this node knows, as a JSON-ready dict (see ``docs/node.md``)."""
        core, driver = self.core, self.driver
        out: dict[str, Any] = {
            "node_id": self.settings.node_id,
            "time": self.wall_clock(),
            "uptime": time.monotonic() - self.started_at if self.started_at else 0.0,
            "started_at": self.core_started,
            "peers": [],
            "router": self.router.status(),
            "undeliverable_messages": self.undeliverable,
        }
        if core is not None:
            out["peers"] = [
                {
                    "node_id": p.node_id,
                    "addr": list(p.addr) if p.addr else None,
                    "state": p.state,
                    "hops": p.hops,
                    "via": p.via,
                    "interface": p.interface,
                    "via_multicast": p.via_multicast,
                    "service_port": p.service_port,
                    "etx": _number(p.etx),
                    "rtt": _number(p.rtt),
                    "loss": _number(p.loss),
                    "joined_at": p.joined_at,
                }
                for p in sorted(core.peers, key=lambda p: p.node_id)
            ]
            out["discovery"] = core.stats.as_dict()
        if driver is not None:
            out["udp"] = driver.stats.as_dict()
        if self.analytics is not None:
            out["analytics"] = {"textfile_errors": self.textfile_errors}
        if self.babeld is not None:
            b = self.babeld
            out["babeld"] = {
                "address": str(b.address),
                "connected": b.connected,
                "stats": dataclasses.asdict(b.stats),
                "neighbours": [list(a) for a in b.neighbours],
                "router_id": self.topology.router_id if self.topology else None,
                "links": [
                    {"source": lk.source, "target": lk.target, "cost": _number(lk.cost)}
                    for lk in (self.topology.links() if self.topology else ())
                ],
            }
        return out

    def write_status(self) -> None:
        """Write :meth:`status` to ``status_file`` atomically (temp file + rename).

        An unwritable path is logged, not raised: status is a convenience.
        """
        path = Path(self.settings.status_file)
        try:
            data = json.dumps(self.status(), indent=1, sort_keys=True)
            # Not fsynced: rewritten every few seconds, and flash wears out.
            write_atomic(path, data, durable=False)
        except OSError as exc:
            log.warning("cannot write status file %s: %s", path, exc.strerror or exc)
        self._status_dirty = False

    async def _status_loop(self) -> None:
        # Rewrite soon after a change (peer events come in bursts), and at
        # least every status_interval.
        interval = self.settings.status_interval
        since = math.inf
        while True:
            if self._status_dirty or since >= interval:
                self.write_status()
                since = 0.0
            await asyncio.sleep(min(0.1, interval))
            since += min(0.1, interval)


def _number(value: float | None) -> float | None:
    if value is None or math.isinf(value) or math.isnan(value):
        return None
    return value


def _cost(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3f}"
