"""Seeded topology generators for the simulator: grid, random geometric, chain,
clusters joined by a bridge, and any imported topology.

Every generator returns a :class:`meshcore.net.topology.Topology` (origin
``"sim"``) whose links carry the simulator's link properties: ``latency``
(s), ``bandwidth`` (bytes/s), ``loss`` (per-datagram probability) and, for
LAN links, ``l2: True``. Costs are on the ETX-like scale.

Node ids are readable and sort in generation order: routers ``r0000``,
``r0001``, ...; the clients of router ``r0007`` are ``r0007.c0``,
``r0007.c1``, ... (ids are never derived from addresses).

Segments (the L2 broadcast domains; node property ``"segment"``): **each
router has its own LAN segment** ``lan-<router id>`` and its ``clients``
client nodes (role ``"client"``) sit on it, joined to the router and to each
other by ``l2`` links (cost 1.0, 0.5 ms, 10 MB/s, no loss: a wired or AP
LAN). Router-to-router links are routed mesh links, not a broadcast domain
(as on a Babel/OLSR mesh, where each router is its own subnet), so with
``clients=0`` every segment holds one router and discovery beyond it must
use unicast. Routers carry ``role: "router"`` and positions ``x``, ``y``
(unit square) where the generator has them.

Random geometric graphs (Penrose, "Random Geometric Graphs", 2003; the usual
model of a wireless mesh): ``n`` routers uniform in the unit square, linked
when closer than ``radius``; from a target mean ``degree`` the radius is
``sqrt(degree / (pi n))``. A link at distance ``d`` loses
``loss = edge_loss * (d / radius)**2`` of its datagrams each way, and its cost
is the ETX of that loss both ways, ``1 / (1 - loss)**2`` (De Couto et al.,
"A high-throughput path metric for multi-hop wireless routing", MobiCom
2003). ``connected=True`` joins the components with the shortest extra links
(each component but the largest gets one link to its nearest outside node),
so the node count is exactly ``n``.

All randomness comes from ``random.Random(seed)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from meshcore.net.topology import Topology

__all__ = [
    "add_clients",
    "chain",
    "clusters_with_bridge",
    "from_topology",
    "grid",
    "random_geometric",
    "router_id",
]

ORIGIN = "sim"
LAN = {"latency": 0.0005, "bandwidth": 10_000_000.0, "loss": 0.0, "l2": True}


def router_id(i: int) -> str:
    """The id of the ``i``-th router of a generated topology (``r0000``...)."""
    return f"r{i:04d}"


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def _number(name: str, value: Any, *, positive: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if not ok or not (value > 0 if positive else value >= 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}: expected a number {bound}, got {value!r}")
    return float(value)


def add_clients(topology: Topology, clients: int, *, routers: Sequence[str] | None = None) -> None:
    """Give each router (all nodes when ``routers`` is None) a LAN segment with ``clients`` clients.

    A node that already has a ``"segment"`` keeps it (its clients join it).
    Changes ``topology`` in place.
    """
    _count("clients", clients, 0)
    for rid in list(routers if routers is not None else topology.nodes):
        node = topology.nodes[rid]
        seg = node.properties.setdefault("segment", f"lan-{rid}")
        node.properties.setdefault("role", "router")
        members = [rid]
        for j in range(clients):
            cid = f"{rid}.c{j}"
            props: dict[str, Any] = {"segment": seg, "role": "client", "router": rid}
            if "x" in node.properties:
                props["x"] = node.properties["x"]
                props["y"] = node.properties["y"]
            topology.add_node(cid, **props)
            members.append(cid)
        for a in members:
            for b in members:
                if a < b:
                    topology.add_link(a, b, 1.0, origin=ORIGIN, symmetric=True, **LAN)


def _uniform_link(
    latency: Any, bandwidth: Any, loss: Any, cost: Any
) -> tuple[dict[str, float], float]:
    """Checked properties and cost shared by every link of a regular topology."""
    props = {
        "latency": _number("latency", latency),
        "bandwidth": _number("bandwidth", bandwidth, positive=True),
        "loss": _number("loss", loss),
    }
    return props, _number("cost", cost)


def _topology(label: str) -> Topology:
    return Topology(protocol="sim", metric="etx", label=label)


def grid(
    w: int,
    h: int,
    *,
    clients: int = 0,
    latency: float = 0.002,
    bandwidth: float = 1_000_000.0,
    loss: float = 0.0,
    cost: float = 1.0,
) -> Topology:
    """A ``w`` x ``h`` grid of routers, each linked to its 4 neighbours (both ways).

    Router ``r(y*w + x)`` sits at ``(x, y)``. Deterministic (no seed needed).
    Raises ValueError for sizes < 1 or bad link parameters.
    """
    _count("w", w, 1)
    _count("h", h, 1)
    props, c = _uniform_link(latency, bandwidth, loss, cost)
    topo = _topology(f"grid {w}x{h}")
    for y in range(h):
        for x in range(w):
            topo.add_node(router_id(y * w + x), role="router", x=float(x), y=float(y))
    for y in range(h):
        for x in range(w):
            a = router_id(y * w + x)
            if x + 1 < w:
                topo.add_link(a, router_id(y * w + x + 1), c, origin=ORIGIN, symmetric=True,
                              **props)
            if y + 1 < h:
                topo.add_link(a, router_id((y + 1) * w + x), c, origin=ORIGIN, symmetric=True,
                              **props)
    add_clients(topo, clients)
    return topo


def chain(
    n: int,
    *,
    latency: float = 0.05,
    bandwidth: float = 1_000_000.0,
    loss: float = 0.0,
    cost: float = 1.0,
    clients: int = 0,
) -> Topology:
    """``n`` routers in a line, ``r0000 - r0001 - ...``: the worst diameter for its size.

    Default ``latency`` 50 ms per hop (long point-to-point links, or a
    congested radio). Deterministic.
    """
    _count("n", n, 1)
    props, c = _uniform_link(latency, bandwidth, loss, cost)
    topo = _topology(f"chain {n}")
    for i in range(n):
        topo.add_node(router_id(i), role="router", x=float(i), y=0.0)
    for i in range(n - 1):
        topo.add_link(router_id(i), router_id(i + 1), c, origin=ORIGIN, symmetric=True, **props)
    add_clients(topo, clients)
    return topo


def _geometric_links(
    pts: list[tuple[float, float]], radius: float
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, distance)``, ``i < j``, closer than ``radius`` (grid buckets)."""
    cell = max(radius, 1e-9)
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(pts):
        buckets.setdefault((int(x / cell), int(y / cell)), []).append(i)
    out = []
    for i, (x, y) in enumerate(pts):
        cx, cy = int(x / cell), int(y / cell)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for j in buckets.get((cx + dx, cy + dy), ()):
                    if j > i:
                        d = math.hypot(pts[j][0] - x, pts[j][1] - y)
                        if d < radius:
                            out.append((i, j, d))
    out.sort()
    return out


def _components(n: int, pairs: list[tuple[int, int, float]]) -> list[int]:
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j, _ in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(n)]


def random_geometric(
    n: int,
    *,
    radius: float | None = None,
    degree: float | None = 7.0,
    connected: bool = True,
    seed: int = 0,
    edge_loss: float = 0.1,
    latency: float = 0.002,
    bandwidth: float = 1_000_000.0,
    clients: int = 0,
    first: int = 0,
    rng: random.Random | None = None,
) -> Topology:
    """``n`` routers uniform in the unit square, linked within ``radius`` (see module doc).

    Give ``radius`` or a target mean ``degree`` (radius wins when both are
    given). ``edge_loss`` is the loss of a link at exactly ``radius``.
    ``first`` offsets router numbering (for building clusters). Raises
    ValueError for bad arguments.
    """
    _count("n", n, 1)
    if radius is None:
        if degree is None:
            raise ValueError("radius: give radius or degree")
        radius = math.sqrt(_number("degree", degree, positive=True) / (math.pi * n))
    r = _number("radius", radius, positive=True)
    if not 0 <= edge_loss < 1:
        raise ValueError(f"edge_loss: expected a probability in [0, 1), got {edge_loss!r}")
    lat = _number("latency", latency)
    bw = _number("bandwidth", bandwidth, positive=True)
    rng = rng if rng is not None else random.Random(seed)
    pts = [(rng.random(), rng.random()) for _ in range(n)]
    pairs = _geometric_links(pts, r)
    if connected:
        comp = _components(n, pairs)
        while len(set(comp)) > 1:
            sizes: dict[int, int] = {}
            for c in comp:
                sizes[c] = sizes.get(c, 0) + 1
            small = min(sizes, key=lambda c: (sizes[c], c))
            inside = [i for i in range(n) if comp[i] == small]
            best = min(
                (math.hypot(pts[i][0] - pts[j][0], pts[i][1] - pts[j][1]), min(i, j), max(i, j))
                for i in inside
                for j in range(n)
                if comp[j] != small
            )
            pairs.append((best[1], best[2], best[0]))
            comp = _components(n, pairs)
    topo = _topology(f"random geometric {n}, radius {r:.4f}")
    for i, (x, y) in enumerate(pts):
        topo.add_node(router_id(first + i), role="router", x=x, y=y)
    for i, j, d in sorted(pairs):
        # A joining link longer than the radius is capped at the edge loss.
        loss = edge_loss * min(1.0, (d / r) ** 2)
        topo.add_link(router_id(first + i), router_id(first + j), 1.0 / (1.0 - loss) ** 2,
                      origin=ORIGIN, symmetric=True, latency=lat, bandwidth=bw, loss=loss)
    add_clients(topo, clients)
    return topo


def clusters_with_bridge(
    sizes: Sequence[int],
    *,
    degree: float = 7.0,
    bridge_latency: float = 0.05,
    bridge_bandwidth: float = 125_000.0,
    bridge_cost: float = 2.0,
    seed: int = 0,
    clients: int = 0,
    **link_options: Any,
) -> Topology:
    """Random geometric clusters of the given ``sizes``, cluster ``k`` joined to ``k+1``
    by one thin bridge link (slow, high latency: a long-distance point-to-point link).

    Routers carry ``cluster: k``; bridge links carry ``bridge: True``. The
    bridge joins the router of cluster ``k`` nearest its right edge to the
    router of cluster ``k+1`` nearest its left edge. Cluster ``k`` occupies
    ``[k, k+1] x [0, 1]``. ``link_options`` go to :func:`random_geometric`.
    """
    sizes = list(sizes)
    if not sizes:
        raise ValueError("sizes: expected at least one cluster")
    bl = _number("bridge_latency", bridge_latency)
    bb = _number("bridge_bandwidth", bridge_bandwidth, positive=True)
    bc = _number("bridge_cost", bridge_cost)
    rng = random.Random(seed)
    topo = _topology(f"clusters {sizes} with bridges")
    first = 0
    ends: list[tuple[str, str]] = []
    for k, size in enumerate(sizes):
        _count(f"sizes[{k}]", size, 1)
        part = random_geometric(size, degree=degree, first=first, rng=rng, **link_options)
        for node in part.nodes.values():
            node.properties["x"] += k
            node.properties["cluster"] = k
        topo.merge(part, origin=ORIGIN)
        ids = list(part.nodes)
        left = min(ids, key=lambda i: (part.nodes[i].properties["x"], i))
        right = max(ids, key=lambda i: (part.nodes[i].properties["x"], i))
        ends.append((left, right))
        first += size
    for k in range(len(sizes) - 1):
        topo.add_link(ends[k][1], ends[k + 1][0], bc, origin=ORIGIN, symmetric=True,
                      latency=bl, bandwidth=bb, loss=0.0, bridge=True)
    add_clients(topo, clients)
    return topo


def _is_vpn(props: Any) -> bool:
    kind = str(props.get("type", "")).lower()
    return kind in ("vpn", "uplink", "tunnel") or bool(props.get("vpn") or props.get("uplink"))


def from_topology(
    topology: Topology,
    *,
    clients: int = 0,
    latency: float = 0.002,
    vpn_latency: float = 0.03,
    bandwidth: float = 1_000_000.0,
    loss_from_cost: bool = True,
) -> Topology:
    """A simulation-ready copy of any (imported) topology.

    Links without a ``latency`` get ``latency``, or ``vpn_latency`` for
    tunnel links (property ``type`` ``"vpn"``/``"uplink"``/``"tunnel"``, or
    ``vpn``/``uplink`` true, as Freifunk meshviewer marks them); without
    ``bandwidth``, ``bandwidth``; without ``loss`` and with
    ``loss_from_cost``, the loss whose two-way ETX is the link's cost,
    ``1 - 1/sqrt(cost)`` (0 for costs <= 1; capped at 0.5). Every node
    without a segment gets its own LAN segment (``lan-<id>``) with
    ``clients`` clients. Broken (``inf``) links are kept; the simulator
    ignores them. The original is not changed.
    """
    lat = _number("latency", latency)
    vlat = _number("vpn_latency", vpn_latency)
    bw = _number("bandwidth", bandwidth, positive=True)
    topo = topology.copy()
    for link in list(topo.links()):
        props = dict(link.properties)
        props.setdefault("latency", vlat if _is_vpn(props) else lat)
        props.setdefault("bandwidth", bw)
        if loss_from_cost and "loss" not in props:
            c = link.cost
            props["loss"] = 0.0 if not c > 1 or math.isinf(c) else min(0.5, 1 - 1 / math.sqrt(c))
        topo.add_link(link.source, link.target, link.cost, origin=link.origins[0], **props)
    routers = [nid for nid, node in topo.nodes.items() if node.properties.get("role") != "client"]
    add_clients(topo, clients, routers=routers)
    return topo
