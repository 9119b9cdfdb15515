"""Routes from this node and local-first source selection.

Theory of operation
-------------------
:class:`Routes` holds one row of the route-cost kernel
(:class:`meshcore.kernels.RouteTable`, source = this node) over the
topology's effective cost graph (the graph and node numbering of
:meth:`Topology.to_cost_graph`, read in one pass): least path cost, next
hop and hop count to every node. Two members of one segment (node property
``"segment"``) can always reach each other over L2, so when the topology has
no observation of a link between them an implicit link of cost ``l2_cost``
is added (the simulator does the same). When links change, :meth:`update`
compares the new topology's wanted links with the ones in the table and
applies each difference with ``RouteTable.set_link`` (incremental, exact:
the same result as a full rebuild); only added or removed nodes, or a
changed segment membership, force a rebuild. ``docs/net/routing.md`` is the
full contract.

**Locality tiers** (:class:`Tier`), decided from the route and from the
``"segment"``/``"gateway"`` node properties and link flags, never from
addresses (a multi-hop ``10.x`` mesh is all private and still not local):

1. ``LOCAL``: this node itself;
2. ``UNREACHABLE``: no path (cost ``inf``) or an unknown node;
3. ``SAME_SEGMENT``: a node sharing a segment with this one, or a direct
   neighbour over a link flagged ``l2``;
4. ``BEYOND_GATEWAY``: the path passes through a node whose ``gateway``
   property is true (not counting the two ends), or over a link flagged
   ``vpn``/``uplink``/``tunnel`` (property ``type`` of that name, or the
   flag set true) - traffic that leaves the local mesh;
5. ``ONE_HOP``: one link away;
6. ``MULTI_HOP``: everything else.

Tiers order as ``LOCAL < SAME_SEGMENT < ONE_HOP < MULTI_HOP < BEYOND_GATEWAY <
UNREACHABLE`` (:class:`meshcore.tiers.Tier`, the one vocabulary of locality
shared with the distribution policies and analytics).

**Source selection.** For an item of ``size`` bytes held by several peers,
:meth:`Routes.select_sources` ranks the reachable holders by the key
``(saturated, tier, expected_seconds, hops, node_id)``, where::

    utilisation u = load / capacity            (0 when unknown)
    slowdown      = 1 / (1 - min(u, 0.95))     (an M/M/1 queue's stretch)
    expected_seconds = size * path_cost / rate * slowdown + hops * per_hop_delay

``path_cost`` is the route's ETX-like cost (expected transmissions summed
over the hops; 0 for this node itself), ``rate`` the holder's advertised
rate in bytes/s (else ``default_rate``); each transmission of the item over
one link takes ``size / rate``. ``per_hop_delay`` (s) charges the latency
of each hop. A holder with ``u >= 1`` is *saturated* and ranks after every
holder that is not, whatever its tier. So the lowest tier always wins among
holders that can serve; inside a tier, the cheapest expected transfer wins.
Unreachable holders are left out.

**Failover.** :meth:`Routes.failover` returns a :class:`Failover` iterator:
each ``next()`` re-ranks the untried holders if the routes changed since the
last ranking (``Routes.version``), skips the unreachable ones, and yields the
best; the caller calls ``next()`` again when a transfer's path breaks, and
:meth:`Failover.retry` puts a holder back.

Sources: De Couto et al., "A high-throughput path metric for multi-hop
wireless routing" (ETX), MobiCom 2003; Kleinrock, "Queueing Systems" vol. 1
(the M/M/1 stretch 1/(1-u)). This module is a sans-I/O core.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from meshcore.core import Event, Fact, dispatches, handler
from meshcore.kernels import CostGraph, RouteTable
from meshcore.net.links import LinkChange
from meshcore.net.topology import Topology
from meshcore.tiers import Tier

__all__ = [
    "Failover",
    "Holder",
    "RankedHolder",
    "Routes",
    "RoutesChanged",
    "Tier",
    "TopologyChanged",
]


@dataclass(frozen=True, slots=True)
class Holder:
    """A peer that holds an item: ``load`` and ``capacity`` as it advertises them
    (any unit, same for both; ``capacity`` 0 or None: unknown) and its ``rate``
    (bytes/s, None: unknown)."""

    node_id: str
    load: float = 0.0
    capacity: float | None = None
    rate: float | None = None


@dataclass(frozen=True, slots=True)
class RankedHolder:
    """A holder with its route: ``expected_seconds`` is the selection formula's value."""

    node_id: str
    tier: Tier
    cost: float
    hops: int
    next_hop: str | None
    utilisation: float
    expected_seconds: float


_TUNNEL = ("vpn", "uplink", "tunnel")
_FLAG_KEYS = frozenset(("l2", "type", *_TUNNEL))
_L2 = 1  # link flag bits kept per link for the tier decision
_TUN = 2


def _tunnel(props: Mapping[str, Any]) -> bool:
    if str(props.get("type", "")).lower() in _TUNNEL:
        return True
    return any(bool(props.get(k)) for k in _TUNNEL)


def _segments(props: Mapping[str, Any]) -> frozenset[str]:
    seg = props.get("segment")
    if isinstance(seg, str):
        return frozenset((seg,))
    if isinstance(seg, (list, tuple, set, frozenset)):
        return frozenset(s for s in seg if isinstance(s, str))
    return frozenset()


@dataclass(frozen=True, slots=True)
class TopologyChanged(Event):
    """The node's view of the mesh is now ``topology`` (routing daemon, import, gossip)."""

    topology: Topology


@dataclass(frozen=True, slots=True)
class RoutesChanged(Fact):
    """Routes moved to ``version``; ``links`` changed (-1: rebuilt from scratch)."""

    version: int
    links: int


@dispatches
class Routes:
    """Routes from ``self_id`` over ``topology`` (see the module docstring).

    Protocol (:mod:`meshcore.core`): ``handle`` takes :class:`TopologyChanged`
    and :class:`~meshcore.net.links.LinkChange` (a link from this view's
    topology changed cost) and returns a :class:`RoutesChanged` fact when the
    routes moved; routes have no timer. Queries (``tier``, ``select_sources``,
    ``failover``...) are plain methods.

    ``default_rate`` (bytes/s) and ``per_hop_delay`` (s) feed the selection
    formula; ``l2_cost`` is the cost of an implicit same-segment link.
    Raises KeyError when ``self_id`` is not a node of the topology and
    ValueError for bad numbers. Nothing refers to ``topology`` afterwards
    (what the routes need is read out of it).
    """

    def __init__(
        self,
        topology: Topology,
        *,
        self_id: str,
        default_rate: float = 1_000_000.0,
        per_hop_delay: float = 0.002,
        l2_cost: float = 1.0,
    ) -> None:
        if not isinstance(topology, Topology):
            raise TypeError(f"topology: expected a Topology, got {type(topology).__name__}")
        if self_id not in topology.nodes:
            raise KeyError(f"self_id: {self_id!r} is not a node of the topology")
        for name, value in (("default_rate", default_rate),):
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{name}: expected a number > 0, got {value!r}")
        for name, value in (("per_hop_delay", per_hop_delay), ("l2_cost", l2_cost)):
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
        self.self_id = self_id
        self.default_rate = float(default_rate)
        self.per_hop_delay = float(per_hop_delay)
        self.l2_cost = float(l2_cost)
        self.version = 0
        self.rebuilds = 0
        self._build(topology)

    # -- building --------------------------------------------------------------

    def _read(self, topology: Topology) -> None:
        """One pass over the topology: wanted links (effective finite ones plus
        implicit same-segment links), link flags, gateways and segments."""
        want: dict[tuple[str, str], float] = {}
        flags: dict[tuple[str, str], int] = {}
        observed: set[tuple[str, str]] = set()
        for link in topology.links():
            pair = (link.source, link.target)
            observed.add(pair)
            if not math.isinf(link.cost):
                want[pair] = link.cost
            props = link.properties
            if props and not _FLAG_KEYS.isdisjoint(props):
                f = (_L2 if props.get("l2") else 0) | (_TUN if _tunnel(props) else 0)
                if f:
                    flags[pair] = f
        segs = {nid: _segments(n.properties) for nid, n in topology.nodes.items()}
        members: dict[str, list[str]] = {}
        for nid, ss in segs.items():
            for seg in ss:
                members.setdefault(seg, []).append(nid)
        for group in members.values():
            for a in group:
                for b in group:
                    if a != b and (a, b) not in observed:
                        want[(a, b)] = self.l2_cost
        self._want_next = want
        self._flags = flags
        self._gateways = frozenset(
            nid for nid, n in topology.nodes.items() if n.properties.get("gateway")
        )
        self._segs = segs

    def _build(self, topology: Topology) -> None:
        self._read(topology)
        ids = sorted(topology.nodes)  # the index of Topology.to_cost_graph
        self._ids = ids
        index = self._index = {nid: i for i, nid in enumerate(ids)}
        self._links = self._want_next
        pairs = list(self._links.items())
        graph = CostGraph.from_edges(
            len(ids),
            [index[a] for (a, _), _ in pairs],
            [index[b] for (_, b), _ in pairs],
            [c for _, c in pairs],
        )
        self._table = RouteTable(graph, [index[self.self_id]])
        self._refresh_views()
        self.rebuilds += 1
        self.version += 1

    def _refresh_views(self) -> None:
        t = self._table
        self._cost = t.cost[0].tolist()
        self._nh = t.next_hop[0].tolist()
        self._hops = t.hops[0].tolist()
        self._pred = t.pred[0].tolist()

    def get_timer(self) -> float | None:
        """Routes have no deadline of their own."""
        return None

    def handle_timer(self, *, now: float) -> list:
        """Nothing is ever due."""
        return []

    @handler(TopologyChanged)
    def _on_topology(self, event: TopologyChanged, *, now: float) -> list[RoutesChanged]:
        version = self.version
        links = self.update(event.topology)
        return [RoutesChanged(self.version, links)] if self.version != version else []

    @handler(LinkChange)
    def _on_link(self, event: LinkChange, *, now: float) -> list[RoutesChanged]:
        if self.set_link(event.source, event.target, event.new_cost):
            return [RoutesChanged(self.version, 1)]
        return []

    def update(self, topology: Topology) -> int:
        """Bring the routes up to ``topology``; returns the links changed.

        Incremental (``set_link`` per changed link) unless nodes or segment
        memberships changed, which rebuilds (and returns -1).
        """
        if not isinstance(topology, Topology):
            raise TypeError(f"topology: expected a Topology, got {type(topology).__name__}")
        if self.self_id not in topology.nodes:
            raise KeyError(f"self_id: {self.self_id!r} is not a node of the topology")
        if set(topology.nodes) != set(self._index):
            self._build(topology)
            return -1
        old_segs = self._segs
        self._read(topology)
        if self._segs != old_segs:
            self._build(topology)
            return -1
        want = self._want_next
        changed = 0
        idx = self._index
        links = self._links
        for pair in links.keys() | want.keys():
            old = links.get(pair, math.inf)
            new = want.get(pair, math.inf)
            if old != new:
                self._table.set_link(idx[pair[0]], idx[pair[1]], new)
                changed += 1
        self._links = want
        if changed:
            self._refresh_views()
            self.version += 1
        return changed

    def set_link(self, source: str, target: str, cost: float) -> bool:
        """Change one link's cost (``inf`` removes it), as a link-quality update does.

        Returns True when any route changed. KeyError for unknown nodes.
        """
        idx = self._index
        for name, nid in (("source", source), ("target", target)):
            if nid not in idx:
                raise KeyError(f"{name}: {nid!r} is not a node of the routes")
        cost = float(cost)
        if math.isinf(cost):
            self._links.pop((source, target), None)
        else:
            self._links[(source, target)] = cost
        changed = self._table.set_link(idx[source], idx[target], cost)
        if changed:
            self._refresh_views()
            self.version += 1
        return bool(changed)

    # -- queries ---------------------------------------------------------------

    def _i(self, node_id: str) -> int | None:
        return self._index.get(node_id)

    def cost(self, node_id: str) -> float:
        """Least path cost to ``node_id`` (0 for this node; ``inf``: unreachable or unknown)."""
        i = self._i(node_id)
        return math.inf if i is None else self._cost[i]

    def hops(self, node_id: str) -> int | None:
        """Links on the least-cost path; None when unreachable or unknown."""
        i = self._i(node_id)
        if i is None or self._hops[i] < 0:
            return None
        return self._hops[i]

    def next_hop(self, node_id: str) -> str | None:
        """The neighbour to send through (``node_id`` itself when adjacent); None if unreachable."""
        i = self._i(node_id)
        if i is None or self._nh[i] < 0:
            return None
        return self._ids[self._nh[i]]

    def path(self, node_id: str) -> list[str]:
        """This node, ..., ``node_id`` along the least-cost path; ``[]`` when unreachable."""
        i = self._i(node_id)
        if i is None or self._hops[i] < 0:
            return []
        out = []
        while i >= 0:
            out.append(self._ids[i])
            i = self._pred[i]
        out.reverse()
        return out

    def tier(self, node_id: str) -> Tier:
        """The locality tier of ``node_id`` (see the module docstring)."""
        if node_id == self.self_id:
            return Tier.LOCAL
        path = self.path(node_id)
        if not path:
            return Tier.UNREACHABLE
        if self._segs[self.self_id] & self._segs[node_id]:
            return Tier.SAME_SEGMENT
        flags = self._flags
        if len(path) == 2 and flags.get((path[0], path[1]), 0) & _L2:
            return Tier.SAME_SEGMENT
        if self._gateways and not self._gateways.isdisjoint(path[1:-1]):
            return Tier.BEYOND_GATEWAY
        if flags and any(flags.get(pair, 0) & _TUN for pair in itertools.pairwise(path)):
            return Tier.BEYOND_GATEWAY
        return Tier.ONE_HOP if len(path) == 2 else Tier.MULTI_HOP

    # -- selection -------------------------------------------------------------

    def rank(
        self, holder: Holder | str, size: int, *, loads: Mapping[str, Any] | None = None
    ) -> RankedHolder:
        """The :class:`RankedHolder` of one holder (its tier, cost and expected time)."""
        h = holder if isinstance(holder, Holder) else Holder(str(holder))
        load, capacity = h.load, h.capacity
        if loads is not None and h.node_id in loads:
            value = loads[h.node_id]
            if isinstance(value, tuple):
                load, capacity = value
            else:
                load, capacity = float(value), 1.0
        u = load / capacity if capacity else 0.0
        u = max(0.0, u)
        tier = self.tier(h.node_id)
        cost = self.cost(h.node_id)
        hops = self.hops(h.node_id)
        rate = h.rate if h.rate else self.default_rate
        if math.isinf(cost):
            seconds = math.inf
        else:
            slowdown = 1.0 / (1.0 - min(u, 0.95))
            seconds = size * cost / rate * slowdown + (hops or 0) * self.per_hop_delay
        return RankedHolder(
            h.node_id,
            tier,
            cost,
            -1 if hops is None else hops,
            self.next_hop(h.node_id),
            u,
            seconds,
        )

    def select_sources(
        self,
        holders: Iterable[Holder | str],
        size: int,
        *,
        loads: Mapping[str, Any] | None = None,
    ) -> list[RankedHolder]:
        """Reachable holders, best first (see the module docstring for the key).

        ``holders``: :class:`Holder` objects or node ids; ``size``: bytes
        (>= 0); ``loads`` overrides a holder's load: ``{node_id: utilisation}``
        or ``{node_id: (load, capacity)}``. Raises ValueError for a negative size.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size: expected an integer >= 0, got {size!r}")
        ranked = [self.rank(h, size, loads=loads) for h in holders]
        ranked = [r for r in ranked if r.tier is not Tier.UNREACHABLE]
        ranked.sort(
            key=lambda r: (r.utilisation >= 1.0, r.tier, r.expected_seconds, r.hops, r.node_id)
        )
        return ranked

    def failover(
        self,
        holders: Iterable[Holder | str],
        size: int,
        *,
        loads: Mapping[str, Any] | None = None,
    ) -> Failover:
        """An iterator over holders, best first, re-ranked after route changes."""
        return Failover(self, holders, size, loads=loads)

    def __repr__(self) -> str:
        return f"Routes(self_id={self.self_id!r}, nodes={len(self._ids)})"


class Failover(Iterator[RankedHolder]):
    """Yields the best untried reachable holder on each ``next()``.

    Ranking is redone whenever ``routes.version`` moved since the last one,
    so a holder whose path broke drops behind, and one that became
    reachable again comes back. StopIteration when no untried holder is
    reachable (a later ``next()`` may succeed once routes recover).
    """

    def __init__(
        self,
        routes: Routes,
        holders: Iterable[Holder | str],
        size: int,
        *,
        loads: Mapping[str, Any] | None = None,
    ) -> None:
        self.routes = routes
        self._holders = {(h.node_id if isinstance(h, Holder) else str(h)): h for h in holders}
        self.size = size
        self.loads = loads
        self.tried: list[str] = []
        self._version = -1
        self._order: list[RankedHolder] = []
        self.current: RankedHolder | None = None

    def _rerank(self) -> None:
        left = [h for nid, h in self._holders.items() if nid not in self.tried]
        self._order = self.routes.select_sources(left, self.size, loads=self.loads)
        self._version = self.routes.version

    def __next__(self) -> RankedHolder:
        if self._version != self.routes.version:
            self._rerank()
        while self._order:
            best = self._order.pop(0)
            if best.node_id in self.tried:
                continue
            self.tried.append(best.node_id)
            self.current = best
            return best
        self.current = None
        raise StopIteration

    def retry(self, node_id: str) -> None:
        """Make ``node_id`` eligible again (e.g. its path came back)."""
        if node_id in self.tried:
            self.tried.remove(node_id)
            self._version = -1
