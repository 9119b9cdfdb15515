"""NetJSON importer: NetworkGraph, NetworkCollection, and olsrd2 NetworkRoutes.

NetJSON (https://netjson.org/rfc.html, section 4 NetworkGraph, section 3
NetworkRoutes) is the common export of olsrd's netjson plugin, olsrd2's
``netjsoninfo``, openwisp/netdiff and meshcore itself.

NetworkGraph
    Nodes are ``nodes[].id`` (``label``, ``local_addresses`` and
    ``properties`` kept; a string ``"true"``/``"false"`` ``gateway`` becomes
    a bool). Links are ``links[]``; ends missing from ``nodes`` are added.
    ``cost`` is converted by the graph's ``metric``
    (:func:`cost_converter`). Direction: if the document has a boolean
    ``directed`` member it is obeyed; otherwise the graph is directed when
    more than half of its (non-loop) records have their reverse listed too
    (olsrd lists both directions with their own cost), and undirected
    otherwise (each record then also gives the reverse direction, unless the
    reverse is listed itself). Duplicate records of one direction keep the
    lowest cost (olsrd's plugin lists an edge from its link set and from TC);
    self-loops are skipped. Both are counted in ``Topology.stats``.
NetworkCollection
    ``collection[]`` of NetworkGraphs, merged.
NetworkRoutes (olsrd2 ``netjsoninfo route``)
    One router's routing table; olsrd2 0.14 writes the list as ``route``
    (the RFC says ``routes``; both are read). Nodes are router addresses:
    the dump's own ``properties.router_addr`` (or ``router_id`` without its
    ``id_`` prefix) and every ``next_router_addr``/``last_router_addr``/
    ``destination_id`` in the routes. A route with ``properties.hops == 1``
    whose destination is the next router itself gives the link
    ``router -> next router`` at the route's cost (the lowest of several).
    Other destinations (HNA prefixes) are listed in the originating router's
    ``prefixes`` property; ``0.0.0.0/0`` or ``::/0`` marks it a gateway.
    :func:`load_many` merges the views of several routers into the network
    graph (the olsrd2 sample: 14 files, one per router).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from meshcore.errors import TopologyFormatError
from meshcore.net import _costs
from meshcore.net.importers._common import JsonReader, count, join, parse_json
from meshcore.net.topology import Topology

__all__ = ["FORMAT", "cost_converter", "detect", "load", "load_many"]

FORMAT = "netjson"

_TYPE = re.compile(r'"type"\s*:\s*"(NetworkGraph|NetworkCollection|NetworkRoutes)"')


def detect(head: str) -> bool:
    """True for a JSON document whose ``type`` is a NetJSON graph, collection or routes."""
    return head.lstrip().startswith("{") and _TYPE.search(head) is not None


def _etx(value: float) -> float:
    return _costs.olsr1_etx_cost(value)


def _as_is(value: float) -> float:
    if value < 0:
        raise ValueError(f"cost: expected a value >= 0, got {value!r}")
    return value


_METRICS: dict[str, Callable[[float], float]] = {
    "etx": _etx,
    "etx_ff": _etx,
    "etx_ffeth": _etx,
    "etx_fpu": _etx,
    "etx_float": _etx,
    "etx_lq": _etx,
    "etx_lq_fpu": _etx,
    "ff_dat_metric": _costs.olsr2_dat_cost,
    "dat": _costs.olsr2_dat_cost,
    "airtime": _costs.airtime_cost,
    "babel": _costs.babel_cost,
    # netdiff's batman-adv NetJSON carries batadv-vis' 255/TQ text as the cost.
    "tq": _as_is,
    "cost": _as_is,
}


def cost_converter(metric: str | None) -> tuple[Callable[[float], float], bool]:
    """The conversion for a NetJSON ``metric`` and whether the metric is known.

    ETX variants of olsrd keep the value (4096 and above is broken); olsrd2's
    ``ff_dat_metric`` uses :func:`meshcore.net._costs.olsr2_dat_cost`; BGP,
    hop counts and unknown metrics give 1.0 per link.
    """
    key = (metric or "").strip().lower()
    func = _METRICS.get(key)
    if func is None:
        return _costs.hop_cost, False
    return func, True


def _gateway(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    return value


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value)
        return text or None
    return None


def load(text: str, path: str) -> Topology:
    """Parse one NetJSON document (NetworkGraph, NetworkCollection or NetworkRoutes)."""
    data = parse_json(text, path, FORMAT)
    return _load_doc(JsonReader(path, FORMAT), data, "")


def load_many(texts: Iterable[tuple[str, str]]) -> Topology:
    """Merge several NetJSON documents ``(path, text)`` into one graph.

    Meant for one NetworkRoutes (or NetworkGraph) view per router, taken at
    the same time; every link is kept as its own router reported it.
    """
    merged: Topology | None = None
    for path, text in texts:
        topo = load(text, path)
        if merged is None:
            merged = topo
            merged.router_id = None
            continue
        for node in topo.nodes.values():
            existing = merged.nodes.get(node.id)
            props = dict(node.properties)
            if existing is not None and "prefixes" in props:
                props["prefixes"] = sorted(
                    set(existing.properties.get("prefixes", [])) | set(props["prefixes"])
                )
            if existing is not None and existing.properties.get("gateway"):
                props["gateway"] = True
            merged.update_node(node.id, label=node.label, properties=props)
        for link in topo.links():
            known = merged.observations(link.source, link.target).get("import")
            if known is None or link.cost < known:
                merged.observe(link.source, link.target, link.cost, properties=link.properties)
        for key, value in topo.stats.items():
            count(merged, key, value)
    if merged is None:
        raise TopologyFormatError("<none>", FORMAT, "directory", "no documents to merge")
    return merged


def _load_doc(reader: JsonReader, data: Any, where: str) -> Topology:
    doc = reader.obj(data, where or "$")
    kind = doc.get("type")
    if kind == "NetworkGraph":
        return _load_graph(reader, doc, where)
    if kind == "NetworkCollection":
        return _load_collection(reader, doc, where)
    if kind == "NetworkRoutes":
        return _load_routes(reader, doc, where)
    reader.fail(
        join(where, "type"),
        f"expected NetworkGraph, NetworkCollection or NetworkRoutes, got {kind!r}",
    )


def _header(doc: dict[str, Any]) -> Topology:
    return Topology(
        protocol=_str_or_none(doc.get("protocol")) or "unknown",
        version=_str_or_none(doc.get("version")),
        metric=_str_or_none(doc.get("metric")) or "unknown",
        router_id=_str_or_none(doc.get("router_id")),
        label=_str_or_none(doc.get("label")),
    )


def _load_collection(reader: JsonReader, doc: dict[str, Any], where: str) -> Topology:
    at = join(where, "collection")
    items = reader.arr(doc.get("collection"), at)
    merged = Topology(protocol="unknown", metric="unknown", label=_str_or_none(doc.get("label")))
    for i, item in enumerate(items):
        part = _load_doc(reader, item, join(at, i))
        if i == 0:
            merged.protocol, merged.metric = part.protocol, part.metric
            merged.version = part.version
        merged.merge(part, origin="import")
        for key, value in part.stats.items():
            count(merged, key, value)
    return merged


def _load_graph(reader: JsonReader, doc: dict[str, Any], where: str) -> Topology:
    topo = _header(doc)
    convert, _known = cost_converter(topo.metric)
    nodes_at = join(where, "nodes")
    for i, raw in enumerate(reader.arr(doc.get("nodes"), nodes_at)):
        at = join(nodes_at, i)
        node = reader.obj(raw, at)
        node_id = reader.text(node, "id", at)
        props: dict[str, Any] = {}
        raw_props = node.get("properties")
        if raw_props is not None:
            props.update(reader.obj(raw_props, join(at, "properties")))
        if "gateway" in props:
            props["gateway"] = _gateway(props["gateway"])
        addresses = node.get("local_addresses")
        if addresses is not None:
            lst = reader.arr(addresses, join(at, "local_addresses"))
            props["local_addresses"] = [
                reader.as_text(a, join(join(at, "local_addresses"), k)) for k, a in enumerate(lst)
            ]
        if node_id in topo.nodes:
            count(topo, "duplicate_nodes")
        topo.update_node(node_id, label=_str_or_none(node.get("label")), properties=props)

    links_at = join(where, "links")
    records: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    for i, raw in enumerate(reader.arr(doc.get("links"), links_at)):
        at = join(links_at, i)
        link = reader.obj(raw, at)
        source = reader.text(link, "source", at)
        target = reader.text(link, "target", at)
        value = reader.number(link, "cost", at, strict=True)  # RFC: a number
        if value < 0:
            reader.fail(join(at, "cost"), f"expected a cost >= 0, got {value!r}")
        cost = reader.convert(convert, join(at, "cost"), value)
        count(topo, "records")
        if source == target:
            count(topo, "self_loops")
            continue
        props: dict[str, Any] = {}
        raw_props = link.get("properties")
        if raw_props is not None:
            props.update(reader.obj(raw_props, join(at, "properties")))
        cost_text = _str_or_none(link.get("cost_text"))
        if cost_text is not None:
            props["cost_text"] = cost_text
        for end in (source, target):
            if end not in topo.nodes:
                count(topo, "implicit_nodes")
                topo.add_node(end)
        previous = records.get((source, target))
        if previous is not None:
            count(topo, "duplicates")
            if previous[0] <= cost:
                continue
        records[(source, target)] = (cost, props)

    directed = doc.get("directed")
    if not isinstance(directed, bool):
        both = sum(1 for s, t in records if (t, s) in records)
        directed = bool(records) and both * 2 > len(records)
    for (source, target), (cost, props) in records.items():
        topo.observe(source, target, cost, properties=props)
        if not directed and (target, source) not in records:
            topo.observe(target, source, cost, properties=props)
    return topo


def _router_addr(value: str) -> str:
    return value[3:] if value.startswith("id_") else value


def _load_routes(reader: JsonReader, doc: dict[str, Any], where: str) -> Topology:
    topo = _header(doc)
    convert, _ = cost_converter(topo.metric)
    props = doc.get("properties")
    me = None
    if isinstance(props, dict):
        me = _str_or_none(props.get("router_addr"))
    if me is None:
        if topo.router_id is None:
            reader.fail(join(where, "router_id"), "missing (needed to place the routes)")
        me = _router_addr(topo.router_id)
    topo.router_id = me
    topo.add_node(me)
    key = "route" if "route" in doc else "routes"
    routes_at = join(where, key)
    neighbours: dict[str, float] = {}
    for i, raw in enumerate(reader.arr(doc.get(key), routes_at)):
        at = join(routes_at, i)
        route = reader.obj(raw, at)
        destination = reader.text(route, "destination", at)
        value = reader.number(route, "cost", at, strict=True)
        cost = reader.convert(convert, join(at, "cost"), value)
        count(topo, "records")
        rprops = route.get("properties")
        rp = reader.obj(rprops, join(at, "properties")) if rprops is not None else {}
        hops = rp.get("hops")
        if hops is not None:
            hops = reader.as_number(hops, join(join(at, "properties"), "hops"))
        next_router = _str_or_none(rp.get("next_router_addr"))
        if next_router is None and rp.get("next_router_id") is not None:
            next_router = _router_addr(str(rp["next_router_id"]))
        last_router = _str_or_none(rp.get("last_router_addr"))
        dest_router = _str_or_none(rp.get("destination_id"))
        dest_router = _router_addr(dest_router) if dest_router else None
        for router in (next_router, last_router, dest_router):
            if router and router != me:
                topo.add_node(router)
        bare = destination.split("/")[0]
        is_router = dest_router is not None and bare == dest_router
        if dest_router is not None and not is_router:
            node = topo.add_node(dest_router)
            prefixes = set(node.properties.get("prefixes", []))
            prefixes.add(destination)
            node.properties["prefixes"] = sorted(prefixes)
            if destination in ("0.0.0.0/0", "::/0"):
                node.properties["gateway"] = True
        direct = (
            hops == 1
            and next_router
            and next_router != me
            and (dest_router is None or (is_router and dest_router == next_router))
        )
        if direct and (next_router not in neighbours or cost < neighbours[next_router]):
            neighbours[next_router] = cost
    for router, cost in neighbours.items():
        topo.add_link(me, router, cost)
    return topo
