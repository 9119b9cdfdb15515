"""Simulated links, segments and hop-by-hop unicast for the discrete-event engine.

Theory of operation
-------------------
A :class:`SimNetwork` turns a :class:`meshcore.net.topology.Topology` into a
network that moves datagrams between the nodes of one :class:`Simulator`.

**Links.** Every effective, finite-cost link ``u -> v`` of the topology is a
directed simulated link with

* ``latency`` (seconds, propagation plus processing; link property
  ``"latency"``, else the network's ``default_latency``);
* ``bandwidth`` (bytes per second; property ``"bandwidth"``, else
  ``default_bandwidth``);
* ``loss`` (probability in ``[0, 1)`` that one datagram is lost on this hop;
  property ``"loss"``, else ``default_loss``), drawn as a seeded Bernoulli
  trial per datagram per hop;
* ``cost`` (the topology's ETX-like cost, used only for routing).

Each link direction is a FIFO: a datagram of ``len(data) + header_bytes``
bytes starts serialising when the link is free (``busy_until``), takes
``size / bandwidth`` seconds, and arrives ``latency`` seconds after its last
byte left. A datagram that would wait behind more than ``queue_bytes`` bytes
already queued is dropped (drop-tail), so bandwidth and congestion matter.

**Segments.** Node property ``"segment"`` (a str, or a list of str for a
node on several) names the node's L2 broadcast domains. A multicast sent on
a segment is serialised once on the sender's interface (the segment's
``segment_bandwidth``) and reaches every other member of the segment after
``segment_latency``, each copy lost independently with ``segment_loss``
(one broadcast, several receivers: Wi-Fi broadcast is sent once and has no
retries). Two members of a segment can always talk directly: when the
topology has no link between them, an implicit L2 link with the segment's
parameters and cost ``l2_cost`` is added. Multicast never leaves a segment
(TTL 1).

**Unicast** is routed hop by hop: at every node the next hop is read from a
:class:`meshcore.kernels.RouteTable` of shortest paths over the links that
are currently up (link cost as weight), so a datagram in flight follows the
routes of the moment it reaches each router, as in a real mesh. A link or
node that goes down updates the table incrementally (``set_link``), after
``reconverge_delay`` seconds (the routing daemon's detection time; until
then datagrams sent into the dead link are lost, counted as ``link_down``).
A datagram arriving over a link that went down while it was in flight is
lost too.

**Partitions.** :meth:`SimNetwork.schedule_partition` takes every link whose
ends lie in different groups down at a given time (and stops multicast
between members of a segment that the partition splits);
:meth:`SimNetwork.schedule_merge` brings them all back. Links taken down by
hand (:meth:`set_link_up`) stay down across a merge.

**Addresses.** Every node has one address (a str): node property
``"address"``, else the first of ``"local_addresses"``, else a synthetic
``"10.a.b.c"`` from the node's index in sorted id order. Sockets are
``(address, port)`` pairs, as :mod:`meshcore.net.discovery` expects; a
datagram's source address is the sender's.

**Messages.** Besides datagrams, routers exchange *messages*
(:meth:`SimNetwork.send_message`): what a TCP connection between two routers
carries, modelled at message granularity. A message of ``size`` bytes is
routed hop by hop like a datagram and stored and forwarded at each router;
each hop is busy for ``attempts * size / bandwidth`` seconds, where
``attempts`` (1, plus one per lost transmission, drawn with the link's loss)
is the link-layer and transport retransmission of a reliable stream, so a
lossy link costs air time instead of losing data. Messages wait behind each
other and behind datagrams on the same link (one FIFO per direction, no
drop: the sender's fair scheduler paces what enters). A message whose path
breaks (no route, a link or node down on the way) is lost and its sender is
told (``on_failed``, as a reset connection would). ``on_sent`` fires when
the message has left the sender's first hop: the sender's egress is free.

**Counters.** Per node (:class:`NodeCounters`): payload bytes and datagrams
the node sent (a multicast counts once) and received (delivered to a bound
port), and forwarded for others; message bytes sent, received and forwarded.
Network-wide drops by reason in :attr:`SimNetwork.drops`;
:attr:`SimNetwork.message_bytes_hops` sums every message's bytes times the
hops it crossed (transmissions included), the transport cost of a run.

All randomness comes from one ``random.Random`` seeded from the simulator's
rng at construction, so a run is reproducible for a given seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshcore.kernels import CostGraph, RouteTable

from .engine import Simulator

__all__ = ["Addr", "DatagramHandler", "MessageHandler", "NodeCounters", "SimLink", "SimNetwork"]

Addr = tuple[str, int]
# handler(data, source address, interface or None, via_multicast)
DatagramHandler = Callable[[bytes, Addr, "str | None", bool], Any]
# handler(source node id, message)
MessageHandler = Callable[[str, Any], Any]

DROP_REASONS = (
    "loss",
    "queue",
    "link_down",
    "no_route",
    "no_listener",
    "node_down",
    "unknown_address",
    "no_segment",
)


@dataclass(slots=True)
class NodeCounters:
    """Traffic of one node, payload bytes (``header_bytes`` not included)."""

    sent_bytes: int = 0
    sent_datagrams: int = 0
    received_bytes: int = 0
    received_datagrams: int = 0
    forwarded_bytes: int = 0
    forwarded_datagrams: int = 0
    message_sent_bytes: int = 0
    message_received_bytes: int = 0
    message_forwarded_bytes: int = 0

    def copy(self) -> NodeCounters:
        """A snapshot."""
        return NodeCounters(
            self.sent_bytes,
            self.sent_datagrams,
            self.received_bytes,
            self.received_datagrams,
            self.forwarded_bytes,
            self.forwarded_datagrams,
            self.message_sent_bytes,
            self.message_received_bytes,
            self.message_forwarded_bytes,
        )


@dataclass(slots=True)
class SimLink:
    """One direction of a simulated link (see the module docstring for the model)."""

    source: str
    target: str
    cost: float
    latency: float
    bandwidth: float
    loss: float
    implicit: bool = False
    up: bool = True  # set by hand
    partitioned: bool = False  # set by a partition
    busy_until: float = 0.0
    properties: Mapping[str, Any] = field(default_factory=dict)


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name}: expected a number > 0, got {value!r}")
    return float(value)


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
    return float(value)


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {value!r}")
    return float(value)


class SimNetwork:
    """Nodes, links and segments of a simulated mesh (see the module docstring).

    ``default_latency`` (s), ``default_bandwidth`` (bytes/s) and
    ``default_loss`` (probability) apply to links without those properties;
    ``segment_latency``, ``segment_bandwidth``, ``segment_loss`` to segment
    multicast and implicit L2 links. ``header_bytes`` (IPv4 + UDP: 28) is
    added to every datagram's size on the wire; ``queue_bytes`` bounds each
    link direction's queue. ``reconverge_delay`` (s) is how long routes keep
    using a link after it went down. ``interface`` names a node's interface
    on its segment when it has one segment (several: the segment's name).
    Raises ValueError naming a bad argument.
    """

    def __init__(
        self,
        sim: Simulator,
        topology: Any,
        *,
        default_latency: float = 0.002,
        default_bandwidth: float = 1_000_000.0,
        default_loss: float = 0.0,
        segment_latency: float = 0.0005,
        segment_bandwidth: float = 10_000_000.0,
        segment_loss: float = 0.0,
        l2_cost: float = 1.0,
        header_bytes: int = 28,
        queue_bytes: int = 256 * 1024,
        reconverge_delay: float = 0.0,
        interface: str = "lan",
    ) -> None:
        if not isinstance(sim, Simulator):
            raise TypeError(f"sim: expected a Simulator, got {type(sim).__name__}")
        self.sim = sim
        self.topology = topology
        self.default_latency = _non_negative("default_latency", default_latency)
        self.default_bandwidth = _positive("default_bandwidth", default_bandwidth)
        self.default_loss = _probability("default_loss", default_loss)
        self.segment_latency = _non_negative("segment_latency", segment_latency)
        self.segment_bandwidth = _positive("segment_bandwidth", segment_bandwidth)
        self.segment_loss = _probability("segment_loss", segment_loss)
        self.l2_cost = _non_negative("l2_cost", l2_cost)
        self.header_bytes = int(_non_negative("header_bytes", header_bytes))
        self.queue_bytes = int(_positive("queue_bytes", queue_bytes))
        self.reconverge_delay = _non_negative("reconverge_delay", reconverge_delay)
        self.interface = interface
        self.rng = random.Random(sim.rng.getrandbits(64))

        self.ids: list[str] = sorted(topology.nodes)
        self.index: dict[str, int] = {nid: i for i, nid in enumerate(self.ids)}
        self.addresses: dict[str, str] = {}
        self._node_at: dict[str, str] = {}
        for i, nid in enumerate(self.ids):
            props = topology.nodes[nid].properties
            addr = props.get("address")
            if not isinstance(addr, str):
                local = props.get("local_addresses")
                addr = local[0] if isinstance(local, list) and local else None
            if not isinstance(addr, str) or addr in self._node_at:
                k = i + 1
                addr = f"10.{(k >> 16) & 255}.{(k >> 8) & 255}.{k & 255}"
            self.addresses[nid] = addr
            self._node_at[addr] = nid

        self.segments: dict[str, list[str]] = {}
        self._segments_of: dict[str, tuple[str, ...]] = {}
        for nid in self.ids:
            seg = topology.nodes[nid].properties.get("segment")
            segs = (seg,) if isinstance(seg, str) else tuple(seg) if seg else ()
            self._segments_of[nid] = segs
            for s in segs:
                self.segments.setdefault(s, []).append(nid)
        self._tx_free: dict[tuple[str, str], float] = {}  # (node, segment) -> busy until

        self.links: dict[tuple[str, str], SimLink] = {}
        self._out: dict[str, list[SimLink]] = {nid: [] for nid in self.ids}
        for link in topology.links():
            if math.isinf(link.cost):
                continue
            p = link.properties
            self._add(
                SimLink(
                    link.source,
                    link.target,
                    link.cost,
                    _non_negative("latency", p.get("latency", self.default_latency)),
                    _positive("bandwidth", p.get("bandwidth", self.default_bandwidth)),
                    _probability("loss", p.get("loss", self.default_loss)),
                    properties=p,
                )
            )
        for members in self.segments.values():
            for a in members:
                for b in members:
                    if a != b and (a, b) not in self.links:
                        self._add(
                            SimLink(
                                a,
                                b,
                                self.l2_cost,
                                self.segment_latency,
                                self.segment_bandwidth,
                                self.segment_loss,
                                implicit=True,
                            )
                        )

        self.node_up: dict[str, bool] = dict.fromkeys(self.ids, True)
        self.counters: dict[str, NodeCounters] = {nid: NodeCounters() for nid in self.ids}
        self.drops: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._handlers: dict[tuple[str, int], DatagramHandler] = {}
        self._message_handlers: dict[str, MessageHandler] = {}
        #: Sum over messages of bytes x hops crossed (each transmission counted).
        self.message_bytes_hops = 0
        #: Messages lost because their path broke, by reason.
        self.message_failures: dict[str, int] = {}
        self._group: dict[str, int] | None = None
        self._table: RouteTable | None = None
        self._nh = None  # next-hop rows of the table, as nested lists (fast indexing)
        self._routed_cost: dict[tuple[str, str], float] = {}

    def _add(self, link: SimLink) -> None:
        self.links[(link.source, link.target)] = link
        self._out[link.source].append(link)

    # -- addressing and sockets ----------------------------------------------

    def address(self, node_id: str) -> str:
        """The address of ``node_id`` (KeyError for an unknown node)."""
        return self.addresses[node_id]

    def node_at(self, address: str) -> str | None:
        """The node that owns ``address``, or None."""
        return self._node_at.get(address)

    def segments_of(self, node_id: str) -> tuple[str, ...]:
        """The segments ``node_id`` is a member of (maybe none)."""
        return self._segments_of[node_id]

    def interface_name(self, node_id: str, segment: str) -> str:
        """The name of ``node_id``'s interface on ``segment``."""
        return self.interface if len(self._segments_of[node_id]) == 1 else segment

    def bind(self, node_id: str, port: int, handler: DatagramHandler) -> None:
        """Deliver datagrams for ``(node_id, port)`` to ``handler(data, src, iface, mcast)``.

        Multicast to ``port`` on a segment reaches every member bound to it
        (joining the group is implied). Raises KeyError for an unknown node,
        ValueError when the port is taken.
        """
        if node_id not in self.index:
            raise KeyError(f"node_id: no node {node_id!r} in this network")
        if (node_id, port) in self._handlers:
            raise ValueError(f"port: {port} is already bound on node {node_id!r}")
        self._handlers[(node_id, port)] = handler

    def unbind(self, node_id: str, port: int) -> None:
        """Stop delivering to ``(node_id, port)`` (no error when not bound)."""
        self._handlers.pop((node_id, port), None)

    # -- sending ---------------------------------------------------------------

    def send(self, node_id: str, src_port: int, dst: Addr, data: bytes) -> None:
        """Send a unicast datagram from ``(node_id, src_port)`` to ``dst``.

        Never raises for network conditions: an unknown address, a missing
        route, loss or a full queue is counted in :attr:`drops`.
        """
        if not self.node_up[node_id]:
            self.drops["node_down"] += 1
            return
        size = len(data)
        c = self.counters[node_id]
        c.sent_bytes += size
        c.sent_datagrams += 1
        target = self._node_at.get(dst[0])
        if target is None:
            self.drops["unknown_address"] += 1
            return
        src = (self.addresses[node_id], src_port)
        if target == node_id:
            self.sim.schedule(0.0, self._deliver, target, dst[1], data, src, None, False)
            return
        self._forward(node_id, target, dst[1], data, src)

    def multicast(self, node_id: str, interface: str | None, port: int, data: bytes) -> int:
        """Broadcast ``data`` on one segment of ``node_id`` to ``port`` of every other member.

        ``interface`` picks the segment (a segment name or the node's
        interface name; with one segment any name means it). Returns the
        number of copies put on the air (0 when dropped: counted as
        ``no_segment``, ``node_down`` or ``queue``).
        """
        if not self.node_up[node_id]:
            self.drops["node_down"] += 1
            return 0
        segs = self._segments_of[node_id]
        if interface in segs:
            seg = interface
        elif len(segs) == 1:
            seg = segs[0]
        else:
            self.drops["no_segment"] += 1
            return 0
        size = len(data)
        c = self.counters[node_id]
        c.sent_bytes += size
        c.sent_datagrams += 1
        now = self.sim.now
        key = (node_id, seg)
        start = max(now, self._tx_free.get(key, 0.0))
        if (start - now) * self.segment_bandwidth > self.queue_bytes:
            self.drops["queue"] += 1
            return 0
        done = start + (size + self.header_bytes) / self.segment_bandwidth
        self._tx_free[key] = done
        arrive = done + self.segment_latency
        src = (self.addresses[node_id], port)
        group = self._group
        rng = self.rng
        loss = self.segment_loss
        copies = 0
        for member in self.segments[seg]:
            if member == node_id:
                continue
            if group is not None and group.get(member) != group.get(node_id):
                continue
            if loss and rng.random() < loss:
                self.drops["loss"] += 1
                continue
            copies += 1
            iface = self.interface_name(member, seg)
            self.sim.schedule_at(arrive, self._deliver, member, port, data, src, iface, True)
        return copies

    def _forward(self, at: str, target: str, port: int, data: bytes, src: Addr) -> None:
        nh = self._next_hops()
        hop = nh[self.index[at]][self.index[target]]
        if hop < 0:
            self.drops["no_route"] += 1
            return
        link = self.links[(at, self.ids[hop])]
        if not (link.up and not link.partitioned and self.node_up[link.target]):
            self.drops["link_down"] += 1  # routes still point at it (reconverging)
            return
        now = self.sim.now
        size = len(data) + self.header_bytes
        start = max(now, link.busy_until)
        if (start - now) * link.bandwidth > self.queue_bytes:
            self.drops["queue"] += 1
            return
        done = start + size / link.bandwidth
        link.busy_until = done
        if link.loss and self.rng.random() < link.loss:
            self.drops["loss"] += 1
            return
        self.sim.schedule_at(done + link.latency, self._arrive, link, target, port, data, src)

    def _arrive(self, link: SimLink, target: str, port: int, data: bytes, src: Addr) -> None:
        if not (link.up and not link.partitioned):
            self.drops["link_down"] += 1
            return
        at = link.target
        if not self.node_up[at]:
            self.drops["node_down"] += 1
            return
        if at == target:
            self._deliver(at, port, data, src, None, False)
            return
        c = self.counters[at]
        c.forwarded_bytes += len(data)
        c.forwarded_datagrams += 1
        self._forward(at, target, port, data, src)

    def _deliver(
        self, node_id: str, port: int, data: bytes, src: Addr, iface: str | None, mcast: bool
    ) -> None:
        if not self.node_up[node_id]:
            self.drops["node_down"] += 1
            return
        handler = self._handlers.get((node_id, port))
        if handler is None:
            self.drops["no_listener"] += 1
            return
        c = self.counters[node_id]
        c.received_bytes += len(data)
        c.received_datagrams += 1
        handler(data, src, iface, mcast)

    # -- messages ----------------------------------------------------------------

    def bind_messages(self, node_id: str, handler: MessageHandler) -> None:
        """Deliver messages for ``node_id`` to ``handler(source node, message)``."""
        if node_id not in self.index:
            raise KeyError(f"node_id: no node {node_id!r} in this network")
        self._message_handlers[node_id] = handler

    def unbind_messages(self, node_id: str) -> None:
        """Stop delivering messages to ``node_id`` (no error when not bound)."""
        self._message_handlers.pop(node_id, None)

    def send_message(
        self,
        source: str,
        target: str,
        message: Any,
        size: int,
        *,
        on_sent: Callable[[], Any] | None = None,
        on_failed: Callable[[str], Any] | None = None,
    ) -> None:
        """Send ``message`` (``size`` bytes on the wire) reliably from ``source`` to ``target``.

        See the module docstring. ``on_sent()`` when it has left the first
        hop; ``on_failed(reason)`` when its path breaks. Raises KeyError for
        an unknown node.
        """
        if target not in self.index:
            raise KeyError(f"target: no node {target!r} in this network")
        if not self.node_up[source]:
            self._message_failed("node_down", on_failed)
            return
        self.counters[source].message_sent_bytes += size
        if source == target:
            if on_sent is not None:
                self.sim.schedule(0.0, on_sent)
            self.sim.schedule(0.0, self._message_deliver, source, target, message, size,
                              on_failed)
            return
        self._message_hop(source, source, target, message, size, on_sent, on_failed)

    def _message_failed(self, reason: str, on_failed: Callable[[str], Any] | None) -> None:
        self.message_failures[reason] = self.message_failures.get(reason, 0) + 1
        if on_failed is not None:
            self.sim.schedule(0.0, on_failed, reason)

    def _message_hop(self, source: str, at: str, target: str, message: Any, size: int,
                     on_sent: Callable[[], Any] | None,
                     on_failed: Callable[[str], Any] | None) -> None:
        hop = self._next_hops()[self.index[at]][self.index[target]]
        if hop < 0:
            self._message_failed("no_route", on_failed)
            return
        link = self.links[(at, self.ids[hop])]
        if not (link.up and not link.partitioned and self.node_up[link.target]):
            self._message_failed("link_down", on_failed)
            return
        attempts = 1
        if link.loss:
            rng, loss = self.rng, link.loss
            while rng.random() < loss and attempts < 64:
                attempts += 1
        wire = size + self.header_bytes
        start = max(self.sim.now, link.busy_until)
        done = start + attempts * wire / link.bandwidth
        link.busy_until = done
        self.message_bytes_hops += attempts * size
        if on_sent is not None:
            self.sim.schedule_at(done, on_sent)
        self.sim.schedule_at(done + link.latency, self._message_arrive, link, source, target,
                             message, size, on_failed)

    def _message_arrive(self, link: SimLink, source: str, target: str, message: Any, size: int,
                        on_failed: Callable[[str], Any] | None) -> None:
        if not (link.up and not link.partitioned):
            self._message_failed("link_down", on_failed)
            return
        at = link.target
        if not self.node_up[at]:
            self._message_failed("node_down", on_failed)
            return
        if at == target:
            self._message_deliver(source, target, message, size, on_failed)
            return
        self.counters[at].message_forwarded_bytes += size
        self._message_hop(source, at, target, message, size, None, on_failed)

    def _message_deliver(self, source: str, target: str, message: Any, size: int,
                         on_failed: Callable[[str], Any] | None) -> None:
        handler = self._message_handlers.get(target)
        if handler is None or not self.node_up[target]:
            self._message_failed("no_listener", on_failed)
            return
        self.counters[target].message_received_bytes += size
        handler(source, message)

    # -- routes ------------------------------------------------------------------

    def _usable(self, link: SimLink) -> bool:
        return (
            link.up
            and not link.partitioned
            and self.node_up[link.source]
            and self.node_up[link.target]
        )

    def _next_hops(self) -> list[list[int]]:
        if self._nh is None:
            if self._table is None:
                self._build_table()
            self._nh = self._table.next_hop.tolist()
        return self._nh

    def _build_table(self) -> None:
        idx = self.index
        src, dst, cost = [], [], []
        self._routed_cost = {}
        for (a, b), link in self.links.items():
            if self._usable(link):
                src.append(idx[a])
                dst.append(idx[b])
                cost.append(link.cost)
                self._routed_cost[(a, b)] = link.cost
        graph = CostGraph.from_edges(len(self.ids), src, dst, cost)
        self._table = RouteTable(graph)

    def route_cost(self, source: str, target: str) -> float:
        """Least routed cost from ``source`` to ``target`` now (inf when unreachable)."""
        if self._table is None:
            self._build_table()
        return float(self._table.cost[self.index[source], self.index[target]])

    def route_hops(self, source: str, target: str) -> int:
        """Hops of the routed path from ``source`` to ``target`` (-1 when unreachable)."""
        if self._table is None:
            self._build_table()
        return int(self._table.hops[self.index[source], self.index[target]])

    def _links_changed(self, pairs: Iterable[tuple[str, str]]) -> None:
        pairs = list(pairs)
        if self._table is None or not pairs:
            return
        if self.reconverge_delay > 0:
            self.sim.schedule(self.reconverge_delay, self._sync_routes, pairs)
        else:
            self._sync_routes(pairs)

    def _sync_routes(self, pairs: list[tuple[str, str]]) -> None:
        table = self._table
        if table is None:
            return
        idx = self.index
        for pair in pairs:
            link = self.links[pair]
            want = link.cost if self._usable(link) else math.inf
            if self._routed_cost.get(pair, math.inf) != want:
                table.set_link(idx[pair[0]], idx[pair[1]], want)
                if math.isinf(want):
                    self._routed_cost.pop(pair, None)
                else:
                    self._routed_cost[pair] = want
                self._nh = None

    def _node_links(self, node_id: str) -> list[tuple[str, str]]:
        pairs = [(lk.source, lk.target) for lk in self._out[node_id]]
        pairs += [(a, b) for (a, b) in self.links if b == node_id]
        return pairs

    # -- changes -----------------------------------------------------------------

    def set_link_up(self, source: str, target: str, up: bool, *, both: bool = True) -> None:
        """Take the link ``source -> target`` (and back, with ``both``) down or up.

        KeyError when there is no such link.
        """
        pairs = [(source, target), (target, source)] if both else [(source, target)]
        changed = []
        for pair in pairs:
            link = self.links.get(pair)
            if link is None:
                if pair == (source, target) or not both:
                    raise KeyError(f"no link {pair[0]!r} -> {pair[1]!r}")
                continue
            link.up = bool(up)
            changed.append(pair)
        self._links_changed(changed)

    def set_link_cost(self, source: str, target: str, cost: float) -> None:
        """Change the routing cost of one link direction (``inf``: remove from routing)."""
        link = self.links[(source, target)]
        link.cost = float(cost)
        self._links_changed([(source, target)])

    def set_node_up(self, node_id: str, up: bool) -> None:
        """Crash (``up=False``) or restart a node: it neither sends, forwards nor receives."""
        if node_id not in self.node_up:
            raise KeyError(f"node_id: no node {node_id!r} in this network")
        self.node_up[node_id] = bool(up)
        self._links_changed(self._node_links(node_id))

    def schedule_link(self, at: float, source: str, target: str, up: bool, *, both=True):
        """At simulated time ``at``, :meth:`set_link_up`. Returns the engine Timer."""
        return self.sim.schedule_at(at, lambda: self.set_link_up(source, target, up, both=both))

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Split the network now: links between different groups go down.

        Nodes not listed in any group form one more group together. A node
        listed twice raises ValueError.
        """
        group: dict[str, int] = {}
        groups = [list(g) for g in groups]
        for i, members in enumerate(groups):
            for nid in members:
                if nid not in self.index:
                    raise KeyError(f"groups: no node {nid!r} in this network")
                if nid in group:
                    raise ValueError(f"groups: node {nid!r} is listed twice")
                group[nid] = i
        rest = len(groups)
        for nid in self.ids:
            group.setdefault(nid, rest)
        self._group = group
        changed = []
        for pair, link in self.links.items():
            cut = group[pair[0]] != group[pair[1]]
            if link.partitioned != cut:
                link.partitioned = cut
                changed.append(pair)
        self._links_changed(changed)

    def merge(self) -> None:
        """Undo a partition: every link it took down comes back up."""
        self._group = None
        changed = []
        for pair, link in self.links.items():
            if link.partitioned:
                link.partitioned = False
                changed.append(pair)
        self._links_changed(changed)

    def schedule_partition(self, at: float, groups: Iterable[Iterable[str]]):
        """At simulated time ``at``, :meth:`partition` into ``groups``. Returns the Timer."""
        groups = [list(g) for g in groups]
        return self.sim.schedule_at(at, self.partition, groups)

    def schedule_merge(self, at: float):
        """At simulated time ``at``, :meth:`merge`. Returns the Timer."""
        return self.sim.schedule_at(at, self.merge)

    # -- views -------------------------------------------------------------------

    def neighbours(self, node_id: str) -> list[str]:
        """Nodes one usable link away from ``node_id`` (the routing daemon's neighbours)."""
        return sorted(lk.target for lk in self._out[node_id] if self._usable(lk))

    def snapshot(self) -> dict[str, NodeCounters]:
        """A copy of every node's counters (subtract two snapshots for a window)."""
        return {nid: c.copy() for nid, c in self.counters.items()}

    def __repr__(self) -> str:
        return (
            f"SimNetwork(nodes={len(self.ids)}, links={len(self.links)}, "
            f"segments={len(self.segments)})"
        )
