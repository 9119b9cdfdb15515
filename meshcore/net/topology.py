"""The topology model: one directed cost graph merged from several observers.

Theory of operation
-------------------
A mesh topology is a directed graph: the two directions of a Wi-Fi link have
their own cost. Node ids are strings (an IP address, a MAC, a babeld
router-id, a meshcore node id). Link costs are on one ETX-like scale
(``1.0`` = a perfect link, larger is worse, ``inf`` = broken); the
per-protocol conversions live in :mod:`meshcore.net._costs` and are tabled in
``docs/net/topology.md``.

A link may be *observed* by several sources at once, each an **origin**:

* ``"daemon:<proto>"`` - imported from the mesh's routing daemon (babeld,
  olsrd, batman-adv...). The routing daemon is the authority on reachability
  and path cost, so it wins.
* ``"local"`` - this node's own measurement (beacon ETX of a direct peer).
* ``"gossip:<node_id>"`` - a neighbour list sent by a peer.
* ``"import"`` - a file imported by an operator (the default).
* any other string - ranks after all of the above.

Each ``(source, target)`` keeps one observation per origin. The *effective*
link is the observation of the highest-priority class present (daemon >
local > gossip > import > other). Inside one class: for gossip, the report of
the link's own source node (``gossip:<source>``) wins, since a node is the
authority on its own outgoing links; otherwise the lowest cost wins, and
equal costs are broken by the smaller origin string. The effective cost,
properties and the full origin list are what :meth:`Topology.link` and
:meth:`Topology.links` return. The rule is a total order on observations, so
the effective graph depends only on the set of observations, never on the
order in which they arrived (merge is commutative and idempotent per origin).

Orders are deterministic: :meth:`Topology.links` and :meth:`Topology.neighbours`
are sorted by node id; :meth:`Topology.to_cost_graph` numbers nodes by
sorted id. ``nodes`` keeps insertion order (the order of the source file),
which importers rely on for readable output.

This module is a sans-I/O core: no files, sockets or clocks.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshcore.kernels import CostGraph
from meshcore.net.links import LinkChange

__all__ = [
    "Link",
    "LinkChange",
    "Node",
    "Topology",
    "TopologyDiff",
    "origin_rank",
]

# Priority classes of origins; a smaller rank wins.
_RANK_DAEMON = 0
_RANK_LOCAL = 1
_RANK_GOSSIP = 2
_RANK_IMPORT = 3
_RANK_OTHER = 4


def origin_rank(origin: str) -> int:
    """The priority class of ``origin``: 0 daemon, 1 local, 2 gossip, 3 import, 4 other.

    A smaller rank wins when several origins observe the same link.
    """
    if origin.startswith("daemon:") or origin == "daemon":
        return _RANK_DAEMON
    if origin == "local":
        return _RANK_LOCAL
    if origin.startswith("gossip:"):
        return _RANK_GOSSIP
    if origin == "import":
        return _RANK_IMPORT
    return _RANK_OTHER


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a node id (str), got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name}: expected a non-empty node id")
    return value


def _check_cost(value: object) -> float:
    # numbers.Real covers int, float and numpy scalars; bool is refused on purpose.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"cost: expected a real number, got {type(value).__name__}")
    cost = float(value)
    if not cost >= 0.0:  # NaN too
        raise ValueError(f"cost: expected a number >= 0 (inf for a broken link), got {value!r}")
    return cost + 0.0  # -0.0 -> 0.0


def _check_origin(origin: object) -> str:
    if not isinstance(origin, str):
        raise TypeError(f"origin: expected a str, got {type(origin).__name__}")
    if not origin:
        raise ValueError("origin: expected a non-empty string")
    return origin


@dataclass(slots=True)
class Node:
    """A router (or host) of the mesh.

    ``properties`` is free-form; meshcore reads ``"gateway"`` (bool),
    ``"segment"`` (str, the L2 broadcast domain) and ``"local_addresses"``
    (list of str, other addresses of this node).
    """

    id: str
    label: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Link:
    """The effective link ``source -> target`` (a snapshot, not a live view).

    ``cost`` is on the ETX-like scale (1.0 perfect, ``inf`` broken);
    ``origins`` lists every origin observing the link, the winning one first,
    then in priority order.
    """

    source: str
    target: str
    cost: float
    properties: Mapping[str, Any]
    origins: tuple[str, ...]

    @property
    def broken(self) -> bool:
        """True when the effective cost is infinite."""
        return math.isinf(self.cost)


@dataclass(frozen=True, slots=True)
class TopologyDiff:
    """What changed between two topologies (``old.diff(new)``).

    Nodes and links are sorted by id. A link that became broken (finite to
    ``inf``) or was repaired is a change, not a removal or an addition.
    """

    added_nodes: tuple[str, ...]
    removed_nodes: tuple[str, ...]
    added_links: tuple[Link, ...]
    removed_links: tuple[Link, ...]
    changed_links: tuple[LinkChange, ...]

    def __bool__(self) -> bool:
        return bool(
            self.added_nodes
            or self.removed_nodes
            or self.added_links
            or self.removed_links
            or self.changed_links
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; an infinite cost is written as ``null``."""

        def cost(value: float) -> float | None:
            return None if math.isinf(value) else value

        return {
            "added_nodes": list(self.added_nodes),
            "removed_nodes": list(self.removed_nodes),
            "added_links": [
                {"source": lk.source, "target": lk.target, "cost": cost(lk.cost)}
                for lk in self.added_links
            ],
            "removed_links": [
                {"source": lk.source, "target": lk.target, "cost": cost(lk.cost)}
                for lk in self.removed_links
            ],
            "changed_links": [
                {
                    "source": ch.source,
                    "target": ch.target,
                    "old_cost": cost(ch.old_cost),
                    "new_cost": cost(ch.new_cost),
                }
                for ch in self.changed_links
            ],
        }


@dataclass(slots=True)
class _Observation:
    cost: float
    properties: dict[str, Any]


def _obs_key(origin: str, obs: _Observation, source: str) -> tuple[int, int, float, str]:
    rank = origin_rank(origin)
    own = 0 if (rank == _RANK_GOSSIP and origin == f"gossip:{source}") else 1
    return (rank, own, obs.cost, origin)


class Topology:
    """Directed cost graph with per-origin observations; node ids are str.

    ``protocol``, ``version``, ``metric``, ``router_id`` and ``label``
    describe where the graph came from (they become the NetJSON header on
    export). ``metric`` names the *original* unit; costs held here are
    always on the ETX-like scale.
    """

    def __init__(
        self,
        *,
        protocol: str = "meshcore",
        version: str | None = None,
        metric: str = "etx",
        router_id: str | None = None,
        label: str | None = None,
    ) -> None:
        self.protocol = protocol
        self.version = version
        self.metric = metric
        self.router_id = router_id
        self.label = label
        #: Counters an importer fills in (records read, duplicates, self-loops
        #: and other records skipped), for operators; never used for routing.
        self.stats: dict[str, int] = {}
        self.nodes: dict[str, Node] = {}
        # (source, target) -> {origin: observation}
        self._obs: dict[tuple[str, str], dict[str, _Observation]] = {}
        self._out: dict[str, set[str]] = {}
        self._in: dict[str, set[str]] = {}

    def __repr__(self) -> str:
        return (
            f"Topology(protocol={self.protocol!r}, nodes={len(self.nodes)}, links={len(self._obs)})"
        )

    # -- nodes --------------------------------------------------------------

    def add_node(self, node_id: str, *, label: str | None = None, **properties: Any) -> Node:
        """Add ``node_id`` or merge into it: a given label replaces, properties update.

        Returns the (live) :class:`Node`. Raises TypeError/ValueError for an
        id that is not a non-empty str.
        """
        _check_id("node_id", node_id)
        return self._merge_node(node_id, label, properties)

    def _merge_node(self, node_id: str, label: str | None, properties: dict[str, Any]) -> Node:
        node = self.nodes.get(node_id)
        if node is None:
            node = Node(node_id, label, dict(properties))
            self.nodes[node_id] = node
            self._out[node_id] = set()
            self._in[node_id] = set()
        else:
            if label is not None:
                node.label = label
            node.properties.update(properties)
        return node

    def remove_node(self, node_id: str) -> bool:
        """Remove a node and every link touching it; False when it did not exist."""
        if node_id not in self.nodes:
            return False
        for target in list(self._out[node_id]):
            self._drop_pair(node_id, target)
        for source in list(self._in[node_id]):
            self._drop_pair(source, node_id)
        del self.nodes[node_id], self._out[node_id], self._in[node_id]
        return True

    def rename_node(self, old: str, new: str) -> bool:
        """Give node ``old`` the id ``new``, keeping its label, properties and links.

        Returns False when ``old`` does not exist; raises ValueError when
        ``new`` already exists (merging two routers is never implicit).
        """
        _check_id("new", new)
        if old not in self.nodes:
            return False
        if old == new:
            return True
        if new in self.nodes:
            raise ValueError(f"new: node {new!r} already exists")
        node = self.nodes[old]
        moved = {pair: per for pair, per in self._obs.items() if old in pair}
        self.remove_node(old)
        self._merge_node(new, node.label, node.properties)
        for (s, t), per_origin in moved.items():
            s2 = new if s == old else s
            t2 = new if t == old else t
            for origin, obs in per_origin.items():
                self._observe(s2, t2, obs.cost, origin, obs.properties)
        if self.router_id == old:
            self.router_id = new
        return True

    # -- links --------------------------------------------------------------

    def add_link(
        self,
        source: str,
        target: str,
        cost: float,
        *,
        origin: str = "import",
        symmetric: bool = False,
        **properties: Any,
    ) -> None:
        """Record that ``origin`` sees ``source -> target`` at ``cost`` (ETX-like scale).

        Adds the nodes as needed. A second call with the same origin replaces
        that origin's observation (cost and properties). ``symmetric=True``
        records the reverse direction too, with the same cost and properties.
        ``cost`` is a real number >= 0; ``inf`` records a broken link.
        Self-loops are refused (ValueError), as are empty ids and NaN or
        negative costs.
        """
        self.observe(source, target, cost, origin=origin, properties=properties)
        if symmetric:
            self.observe(target, source, cost, origin=origin, properties=properties)

    def observe(
        self,
        source: str,
        target: str,
        cost: float,
        *,
        origin: str = "import",
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """:meth:`add_link` with the properties as one mapping (any key allowed).

        Importers use it for properties read from files, whose keys may clash
        with the keyword arguments of :meth:`add_link`.
        """
        _check_id("source", source)
        _check_id("target", target)
        if source == target:
            raise ValueError(f"target: a link from {source!r} to itself is not allowed")
        value = _check_cost(cost)
        _check_origin(origin)
        self._observe(source, target, value, origin, dict(properties or {}))

    def update_node(
        self,
        node_id: str,
        *,
        label: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> Node:
        """:meth:`add_node` with the properties as one mapping (any key allowed)."""
        _check_id("node_id", node_id)
        return self._merge_node(node_id, label, dict(properties or {}))

    def _observe(
        self, source: str, target: str, cost: float, origin: str, properties: dict[str, Any]
    ) -> None:
        if source not in self.nodes:
            self._merge_node(source, None, {})
        if target not in self.nodes:
            self._merge_node(target, None, {})
        per_origin = self._obs.get((source, target))
        if per_origin is None:
            per_origin = self._obs[(source, target)] = {}
            self._out[source].add(target)
            self._in[target].add(source)
        per_origin[origin] = _Observation(cost, properties)

    def _drop_pair(self, source: str, target: str) -> None:
        del self._obs[(source, target)]
        self._out[source].discard(target)
        self._in[target].discard(source)

    def remove_link(self, source: str, target: str, *, origin: str | None = None) -> bool:
        """Forget ``source -> target`` (one origin's observation, or all when None).

        The nodes stay. Returns True when something was removed.
        """
        per_origin = self._obs.get((source, target))
        if per_origin is None:
            return False
        if origin is None:
            self._drop_pair(source, target)
            return True
        if per_origin.pop(origin, None) is None:
            return False
        if not per_origin:
            self._drop_pair(source, target)
        return True

    def remove_origin(self, origin: str) -> int:
        """Forget every observation made by ``origin``; returns how many were removed."""
        removed = 0
        for pair in list(self._obs):
            if self.remove_link(*pair, origin=origin):
                removed += 1
        return removed

    def _effective(self, pair: tuple[str, str]) -> Link:
        per_origin = self._obs[pair]
        ranked = sorted(per_origin.items(), key=lambda kv: _obs_key(kv[0], kv[1], pair[0]))
        best = ranked[0][1]
        return Link(
            pair[0],
            pair[1],
            best.cost,
            dict(best.properties),
            tuple(origin for origin, _ in ranked),
        )

    def link(self, source: str, target: str) -> Link | None:
        """The effective link ``source -> target``, or None when nobody observed it."""
        if (source, target) not in self._obs:
            return None
        return self._effective((source, target))

    def observations(self, source: str, target: str) -> dict[str, float]:
        """Every origin's cost for ``source -> target`` (empty when unobserved)."""
        return {o: obs.cost for o, obs in self._obs.get((source, target), {}).items()}

    def links(self) -> Iterator[Link]:
        """Every effective link (broken ones included), sorted by (source, target)."""
        for pair in sorted(self._obs):
            yield self._effective(pair)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def num_links(self) -> int:
        """The number of directed ``(source, target)`` pairs observed (broken included)."""
        return len(self._obs)

    def neighbours(self, node_id: str) -> list[str]:
        """Out-neighbours of ``node_id`` over links with a finite cost, sorted.

        An unknown node has no neighbours.
        """
        return sorted(
            t for t in self._out.get(node_id, ()) if not self._effective((node_id, t)).broken
        )

    # -- whole-graph operations ---------------------------------------------

    def merge(self, other: Topology, *, origin: str) -> None:
        """Add ``other``'s nodes and effective links to this graph as ``origin``'s observations.

        Node labels and properties from ``other`` are merged in (``other`` wins
        on conflicts). Observations from ``origin`` already here are replaced
        link by link but not removed; use :meth:`replace_origin` for a full
        refresh of one origin's view.
        """
        _check_origin(origin)
        for node in other.nodes.values():
            self._merge_node(node.id, node.label, _copy_props(node.properties))
        for link in other.links():
            self._observe(link.source, link.target, link.cost, origin, dict(link.properties))

    def replace_origin(self, other: Topology, *, origin: str) -> None:
        """Make ``origin``'s view exactly ``other``: drop its old observations, then merge."""
        _check_origin(origin)
        self.remove_origin(origin)
        self.merge(other, origin=origin)

    def copy(self) -> Topology:
        """A deep copy (nodes, observations and header); properties dicts are copied."""
        new = Topology(
            protocol=self.protocol,
            version=self.version,
            metric=self.metric,
            router_id=self.router_id,
            label=self.label,
        )
        new.stats = dict(self.stats)
        for node in self.nodes.values():
            new._merge_node(node.id, node.label, _copy_props(node.properties))
        for (source, target), per_origin in self._obs.items():
            for origin, obs in per_origin.items():
                new._observe(source, target, obs.cost, origin, _copy_props(obs.properties))
        return new

    def to_cost_graph(self) -> tuple[CostGraph, list[str]]:
        """The effective graph as a :class:`meshcore.kernels.CostGraph`.

        Returns ``(graph, ids)`` where ``ids[i]`` is the node id of index
        ``i``; ids are sorted. Broken links (cost ``inf``) are left out, as
        the kernel treats ``inf`` as "no link".
        """
        ids = sorted(self.nodes)
        index = {node_id: i for i, node_id in enumerate(ids)}
        src: list[int] = []
        dst: list[int] = []
        cost: list[float] = []
        for pair in sorted(self._obs):
            link = self._effective(pair)
            if link.broken:
                continue
            src.append(index[pair[0]])
            dst.append(index[pair[1]])
            cost.append(link.cost)
        return CostGraph.from_edges(len(ids), src, dst, cost), ids

    def diff(self, newer: Topology, *, rel_tol: float = 0.0) -> TopologyDiff:
        """What changed from this graph to ``newer`` (nodes, links, effective costs).

        A cost counts as changed when it differs by more than ``rel_tol``
        (relative, as :func:`math.isclose`); ``inf`` equals only ``inf``.
        """
        if not rel_tol >= 0.0:
            raise ValueError(f"rel_tol: expected a number >= 0, got {rel_tol!r}")
        old_nodes, new_nodes = set(self.nodes), set(newer.nodes)
        old_pairs, new_pairs = set(self._obs), set(newer._obs)
        changed: list[LinkChange] = []
        for pair in sorted(old_pairs & new_pairs):
            a = self._effective(pair).cost
            b = newer._effective(pair).cost
            if a == b or math.isclose(a, b, rel_tol=rel_tol):
                continue
            changed.append(LinkChange(pair[0], pair[1], a, b))
        return TopologyDiff(
            added_nodes=tuple(sorted(new_nodes - old_nodes)),
            removed_nodes=tuple(sorted(old_nodes - new_nodes)),
            added_links=tuple(newer._effective(p) for p in sorted(new_pairs - old_pairs)),
            removed_links=tuple(self._effective(p) for p in sorted(old_pairs - new_pairs)),
            changed_links=tuple(changed),
        )

    def pairs(self) -> set[frozenset[str]]:
        """Distinct unordered node pairs joined by at least one observed link."""
        return {frozenset(pair) for pair in self._obs}


def _copy_props(props: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(props)
