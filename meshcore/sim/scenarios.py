"""Scenario helpers: build a simulated network, host cores on it, schedule events, measure.

A :class:`Scenario` bundles one :class:`Simulator`, one :class:`SimNetwork`
and the :class:`CoreHost` of every node that runs a core. It is the common
ground for every simulation in meshcore (discovery now; cache, fairness and
distribution later), so it knows nothing about any one core: a *factory*
``factory(node_id, rng, now) -> core`` makes the cores, and predicates over
the hosts say when something happened.

Reproducibility: every random choice (start jitter, each core's
``random.Random``, link loss) is drawn from the simulator's seeded rng in a
fixed order (hosts are added in the order given, node ids sorted by
default), so the same seed, topology and calls give the same run, event for
event. :meth:`Scenario.fingerprint` summarises a run for comparisons.

Discovery helpers (:func:`start_discovery`, :func:`knows`,
:func:`all_know`, :func:`converged`) import :mod:`meshcore.net.discovery`
lazily. The routing daemon's view (which Discovery gets through
``DaemonNeighbours``) is played by :meth:`Scenario.feed_neighbours`:
every ``interval`` seconds each host is told the addresses of its current
one-hop neighbours over up links, when they changed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from typing import Any

from .engine import Simulator
from .hosts import CoreHost
from .network import NodeCounters, SimNetwork

__all__ = [
    "Scenario",
    "all_know",
    "converged",
    "discovery_factory",
    "knows",
    "start_discovery",
]

CoreFactory = Callable[[str, random.Random, float], Any]


class Scenario:
    """One simulated run: ``sim``, ``network`` (built from ``topology``) and ``hosts``.

    ``network_options`` go to :class:`SimNetwork`. Effects that are not sends
    are recorded in :attr:`events` as ``(time, node_id, effect)`` when
    ``record_events`` is true.
    """

    def __init__(
        self,
        topology: Any,
        *,
        seed: int = 0,
        record_events: bool = False,
        **network_options: Any,
    ) -> None:
        self.sim = Simulator(seed=seed)
        self.network = SimNetwork(self.sim, topology, **network_options)
        self.hosts: dict[str, CoreHost] = {}
        self.record_events = record_events
        self.events: list[tuple[float, str, Any]] = []
        self._fed: dict[str, tuple] = {}
        self._feeding = False

    # -- hosts -------------------------------------------------------------------

    def _on_effect(self, host: CoreHost, effect: Any) -> None:
        if self.record_events:
            self.events.append((self.sim.now, host.node_id, effect))

    def add_host(self, node_id: str, core: Any, *, port: int, start_at: float | None = 0.0
                 ) -> CoreHost:
        """Host ``core`` on ``node_id``; start it at ``start_at`` (None: leave it idle)."""
        host = CoreHost(self.network, node_id, core, port=port, on_effect=self._on_effect)
        self.hosts[node_id] = host
        if start_at is not None:
            host.start_at(max(start_at, self.sim.now))
        return host

    def add_hosts(
        self,
        factory: CoreFactory,
        *,
        port: int,
        nodes: Iterable[str] | None = None,
        start: float = 0.0,
        jitter: float = 1.0,
    ) -> dict[str, CoreHost]:
        """A core from ``factory(node_id, rng, now)`` on each of ``nodes`` (all, sorted).

        Each core gets its own ``random.Random`` seeded from the simulator's
        rng; each starts at ``start + uniform(0, jitter)`` seconds.
        """
        rng = self.sim.rng
        out = {}
        for nid in sorted(self.network.ids) if nodes is None else list(nodes):
            core_rng = random.Random(rng.getrandbits(64))
            at = start + rng.uniform(0.0, jitter) if jitter > 0 else start
            core = factory(nid, core_rng, max(self.sim.now, at))
            out[nid] = self.add_host(nid, core, port=port, start_at=at)
        return out

    # -- running -------------------------------------------------------------------

    def run(self, until: float) -> int:
        """Run the simulation to simulated time ``until``; returns the events run."""
        return self.sim.run(until=until)

    def run_until(
        self, predicate: Callable[[], bool], *, timeout: float, poll: float = 0.05
    ) -> float | None:
        """Run until ``predicate()`` holds, checking every ``poll`` simulated seconds.

        Returns the simulated time it first held (to within ``poll``), or None
        when ``timeout`` seconds passed first. The clock stops there.
        """
        if poll <= 0:
            raise ValueError(f"poll: expected a number > 0, got {poll!r}")
        end = self.sim.now + timeout
        while True:
            if predicate():
                return self.sim.now
            if self.sim.now >= end:
                return None
            self.sim.run(until=min(end, self.sim.now + poll))

    def every(self, interval: float, callback: Callable[[], Any], *, first: float | None = None
              ) -> None:
        """Call ``callback()`` every ``interval`` simulated seconds, forever."""
        if not interval > 0:
            raise ValueError(f"interval: expected a number > 0, got {interval!r}")

        def tick() -> None:
            callback()
            self.sim.schedule(interval, tick)

        self.sim.schedule_at(self.sim.now if first is None else first, tick)

    def feed_neighbours(self, *, interval: float = 5.0, port: int | None = None) -> None:
        """Play the routing daemon: tell each running host its one-hop neighbours.

        Feeds ``DaemonNeighbours(((address, port), ...))`` now and every
        ``interval`` seconds, to hosts whose neighbour list changed (links
        going down or up, partitions, merges). ``port`` defaults to each
        neighbour's own host port.
        """
        from meshcore.net.discovery import DaemonNeighbours

        def feed() -> None:
            net = self.network
            for nid, host in self.hosts.items():
                if not host.running:
                    continue
                addrs = []
                for nb in net.neighbours(nid):
                    other = self.hosts.get(nb)
                    p = port if port is not None else (other.port if other else host.port)
                    addrs.append((net.address(nb), p))
                key = tuple(addrs)
                if self._fed.get(nid) != key:
                    self._fed[nid] = key
                    host.feed(DaemonNeighbours(key))

        self.every(interval, feed)

    # -- measuring -------------------------------------------------------------------

    def snapshot(self) -> dict[str, NodeCounters]:
        """Every node's traffic counters now (see :meth:`SimNetwork.snapshot`)."""
        return self.network.snapshot()

    @staticmethod
    def rates(before: dict[str, NodeCounters], after: dict[str, NodeCounters],
              seconds: float, *, nodes: Iterable[str] | None = None) -> dict[str, float]:
        """Mean per-node rates between two snapshots: bytes/s and datagrams/s sent and received.

        Keys: ``sent_bytes``, ``received_bytes``, ``sent_datagrams``,
        ``received_datagrams``, ``forwarded_bytes`` (means over ``nodes``, all
        by default) and ``max_sent_bytes`` (the busiest node).
        """
        if not seconds > 0:
            raise ValueError(f"seconds: expected a number > 0, got {seconds!r}")
        ids = list(after) if nodes is None else list(nodes)
        out: dict[str, float] = {}
        for key in ("sent_bytes", "received_bytes", "sent_datagrams", "received_datagrams",
                    "forwarded_bytes"):
            total = sum(getattr(after[n], key) - getattr(before[n], key) for n in ids)
            out[key] = total / len(ids) / seconds if ids else 0.0
        out["max_sent_bytes"] = max(
            ((after[n].sent_bytes - before[n].sent_bytes) / seconds for n in ids), default=0.0
        )
        return out

    def fingerprint(self) -> str:
        """A digest of the run so far: clock, events run, every counter and drop."""
        h = hashlib.blake2b(digest_size=16)
        h.update(repr((self.sim.now, self.sim.events_run)).encode())
        for nid in sorted(self.network.counters):
            h.update(repr((nid, self.network.counters[nid])).encode())
        h.update(repr(sorted(self.network.drops.items())).encode())
        return h.hexdigest()


# -- discovery ------------------------------------------------------------------------


def discovery_factory(settings: Any, *, service_port: int = 8080) -> CoreFactory:
    """A factory making one :class:`meshcore.net.discovery.Discovery` per node."""
    from meshcore.net.discovery import Discovery

    def make(node_id: str, rng: random.Random, now: float) -> Any:
        return Discovery(settings, node_id=node_id, service_port=service_port, rng=rng, now=now)

    return make


def start_discovery(
    scenario: Scenario,
    settings: Any,
    *,
    nodes: Iterable[str] | None = None,
    start: float = 0.0,
    jitter: float = 1.0,
    neighbours_every: float | None = 5.0,
    service_port: int = 8080,
) -> dict[str, CoreHost]:
    """Discovery on ``nodes`` (all by default), started at jittered times, on ``settings.port``.

    With ``neighbours_every`` set, :meth:`Scenario.feed_neighbours` plays
    the routing daemon at that interval (only once per scenario).
    """
    hosts = scenario.add_hosts(
        discovery_factory(settings, service_port=service_port),
        port=settings.port,
        nodes=nodes,
        start=start,
        jitter=jitter,
    )
    if neighbours_every is not None and not scenario._feeding:
        scenario._feeding = True
        scenario.feed_neighbours(interval=neighbours_every, port=settings.port)
    return hosts


def knows(host: CoreHost, node_id: str) -> bool:
    """True when ``host``'s Discovery has ``node_id`` in its peer table as alive."""
    peer = host.core.peers.get(node_id)
    return peer is not None and peer.state == "alive"


def all_know(scenario: Scenario, node_id: str, *, among: Iterable[str] | None = None) -> bool:
    """True when every running host (of ``among``) but ``node_id`` itself knows ``node_id``."""
    ids = scenario.hosts if among is None else among
    return all(
        knows(scenario.hosts[n], node_id)
        for n in ids
        if n != node_id and scenario.hosts[n].running
    )


def converged(scenario: Scenario, *, among: Iterable[str] | None = None) -> bool:
    """True when every host of ``among`` (all hosts by default) is running and knows
    every other one as alive."""
    ids = list(scenario.hosts if among is None else among)
    hosts = [scenario.hosts[n] for n in ids]
    if not all(h.running for h in hosts):
        return False
    need = len(ids) - 1
    if any(len(h.core.peers) < need for h in hosts):  # cheap necessary condition first
        return False
    return all(knows(h, b) for h in hosts for b in ids if b != h.node_id)
