"""The node daemon: discovery on real sockets, fed by the mesh's routing daemon.

Theory of operation
-------------------
``meshcore node run --config node.toml`` builds one
:class:`~meshcore.net.discovery.Discovery` core from ``[net]``
(:meth:`DiscoverySettings.from_config`, which refuses a config without
``net.community_key``), runs it on a :class:`~meshcore.node.udp.UdpDriver`,
and, when ``[net.babeld]`` is configured, a
:class:`~meshcore.node.babeld.BabeldClient` whose neighbour list becomes the
core's unicast targets beyond the segment
(``Discovery.set_daemon_neighbours``) and whose topology is kept (and logged
as diffs) for route costs. Everything runs on one asyncio loop; SIGTERM and
SIGINT stop it cleanly (sockets closed, a last status written).

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

When ``[analytics]`` is present (and not ``enabled = false``) the daemon
keeps a :class:`~meshcore.analytics.events.Collector`: discovery's peer
events become ``NeighborChange`` events (and ETX changes ``LinkChange``),
babeld's cost changes on this router's own links become ``LinkChange``
events, and a few node gauges and counters (peers by state, discovery
datagrams) are added to the same registry. Every ``status_interval`` the
daemon reads the wall clock, calls ``Collector.tick(now=...)`` and, when
``textfile_path`` is set, rewrites that file atomically
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
from meshcore.analytics.events import Collector, NeighborChange
from meshcore.analytics.exporters import write_textfile as _write_prom
from meshcore.analytics.settings import AnalyticsSettings
from meshcore.config import Config, Section
from meshcore.net.discovery import (
    Discovery,
    DiscoverySettings,
    Effect,
    PeerChanged,
    PeerJoined,
    PeerLeft,
)
from meshcore.net.links import LinkChange
from meshcore.net.topology import Topology

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
    """One node: the discovery driver plus, optionally, the babeld adapter and analytics.

    ``rng`` seeds the core and the backoff jitter (default: a fresh
    ``random.Random``). ``wall_clock`` gives Unix seconds for the analytics
    collector (default ``time.time``). :meth:`run` returns when :meth:`stop`
    is called, a signal arrives, or ``duration`` seconds have passed.
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
        """Unix seconds for the analytics collector (read here, passed in as ``now``)."""
        self.analytics: Collector | None = None
        self.textfile_errors = 0
        """Failed textfile writes since start."""
        self._textfile_failing = False
        self._stats_seen: dict[str, int] = {}
        if settings.analytics is not None:
            self._start_analytics(settings.analytics)
        self.core: Discovery | None = None
        self.driver: UdpDriver | None = None
        self.babeld: BabeldClient | None = None
        self.topology: Topology | None = None
        self.started_at = 0.0
        self.core_started: float | None = None
        """The core's clock (``time.monotonic``) when discovery started."""
        self._stop: asyncio.Event | None = None
        self._status_dirty = False

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
        self.core = Discovery(
            s.discovery,
            node_id=s.node_id,
            service_port=s.service_port,
            rng=self.rng,
            now=loop.time(),
            boot_epoch=int(time.time()) & 0xFFFFFFFF,
        )
        self.driver = UdpDriver(self.core, bind_host=s.bind, on_event=self._on_peer_event)
        self.core_started = loop.time()
        await self.driver.start()
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
        if self.analytics is not None:
            tasks.append(asyncio.create_task(self._analytics_loop(), name="analytics"))
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
            if s.status_file:
                self.write_status()
            if self.analytics is not None:
                self.update_analytics()  # the last counts before exit
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

    # -- events ----------------------------------------------------------------

    def _on_peer_event(self, event: Effect) -> None:
        self._status_dirty = True
        if self.analytics is not None:
            self._record_peer_event(event)
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

    def _on_neighbours(self, addrs: list[tuple[str, int]]) -> None:
        if self.driver is not None:
            self.driver.set_daemon_neighbours(addrs)
        self._status_dirty = True

    def _on_topology(self, topology: Topology) -> None:
        old, self.topology = self.topology, topology
        self._status_dirty = True
        if self.analytics is not None:
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

    # -- analytics ---------------------------------------------------------------

    def _start_analytics(self, a: AnalyticsSettings) -> None:
        # With exports off a salt is optional; the daemon records no principals,
        # so a per-process random salt keeps the Collector's contract.
        salt = a.salt or secrets.token_hex(16)
        self.analytics = collector = Collector(
            self.settings.node_id, now=self.wall_clock(), salt=salt,
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

    def _record_peer_event(self, event: Effect) -> None:
        collector, now = self.analytics, self.wall_clock()
        assert collector is not None
        if isinstance(event, PeerJoined):
            collector.record(NeighborChange(event.peer.node_id, up=True), now=now)
            if math.isfinite(event.peer.etx):  # inf = not measured yet, not "lost"
                self._record_etx(event.peer.node_id, event.peer.etx, now)
        elif isinstance(event, PeerLeft):
            collector.record(NeighborChange(event.node_id, up=False), now=now)
        elif isinstance(event, PeerChanged) and "etx" in event.fields:
            self._record_etx(event.peer.node_id, event.peer.etx, now)

    def _record_etx(self, peer: str, etx: float, now: float) -> None:
        # Discovery's ETX is >= 1 by construction (inf when the link is lost);
        # the max() only guards the collector's precondition.
        if not math.isnan(etx):
            assert self.analytics is not None
            link = LinkChange(self.settings.node_id, peer, math.nan, max(1.0, etx))
            self.analytics.record(link, now=now)

    def _record_links(self, old: Topology | None, new: Topology) -> None:
        """babeld costs of this router's own links -> LinkChange (peer = router id)."""
        me = new.router_id
        if me is None:
            return
        before = {lk.target: lk.cost for lk in (old.links() if old else ()) if lk.source == me}
        after = {lk.target: lk.cost for lk in new.links() if lk.source == me}
        now = self.wall_clock()
        assert self.analytics is not None
        for target in sorted(before.keys() | after.keys()):
            cost = after.get(target, math.inf)
            if before.get(target) == cost:
                continue
            # babeld's cost is in 1/256 units, one good hop ~ 1.0 after Topology's
            # scaling; ETX is >= 1, so cheaper-than-ideal costs read as 1.
            old_cost = before.get(target, math.nan)
            self.analytics.record(LinkChange(me, target, old_cost, max(1.0, cost)), now=now)

    def update_analytics(self) -> None:
        """Refresh the node gauges, ``tick`` the collector and write the textfile (if set).

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
        # Closed rollups are not stored by the daemon yet (rollup_path): drop them.
        collector.tick(now=self.wall_clock())
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

    async def _analytics_loop(self) -> None:
        interval = self.settings.status_interval
        while True:
            self.update_analytics()
            await asyncio.sleep(interval)

    # -- status ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What this node knows, as a JSON-ready dict (see ``docs/node.md``)."""
        core, driver = self.core, self.driver
        out: dict[str, Any] = {
            "node_id": self.settings.node_id,
            "time": time.time(),
            "uptime": time.monotonic() - self.started_at if self.started_at else 0.0,
            "started_at": self.core_started,
            "peers": [],
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
