"""NetJSON NetworkGraph export (and import) of a :class:`Topology`.

NetJSON (https://netjson.org, RFC draft "NetJSON: data interchange format
for networks", section 4 NetworkGraph) is the format that visualisers such
as netjsongraph.js and openwisp-network-topology draw. An export validates
against the official schema (``netjson/netjson`` ``schema/network-graph.json``,
vendored under ``tests/data/netjson/schema/``).

Mapping (export)
----------------
* Header: ``type`` ``"NetworkGraph"``; ``protocol``, ``version`` (``""`` when
  unknown: the schema requires a string), ``label`` and ``router_id`` from
  the topology (``router_id`` may be overridden by ``self_id``). ``metric``
  is always ``"etx"``: costs are on meshcore's ETX-like scale whatever the
  source measured; the source's own metric name is kept in the extra member
  ``source_metric``. ``directed: true`` says that every link record is one
  direction (both directions are written when both exist), so a re-import
  never doubles a link.
* Nodes (sorted by id): ``id``, ``label`` (when set), ``local_addresses``
  (from the node property of that name) and ``properties``: every other
  node property, plus ``gateway`` (bool, false when absent) and, when a
  route view is given, ``locality``: the lower-case name of the node's tier
  from :meth:`meshcore.net.routing.Routes.tier` (``same_segment``,
  ``one_hop``, ``multi_hop``, ``beyond_gateway``, ``unreachable``; the
  router itself is ``self``), plus ``route_cost`` and ``hops`` when the
  route view has them.
* Links (sorted by source, target): ``source``, ``target``, ``cost``,
  ``cost_text`` (kept from the source when it had one, else the cost with
  three decimals) and ``properties`` (every other link property, plus
  ``origins``, the observers of the link, best first). A broken link is
  written with cost 4096.0 and ``cost_text`` ``"INFINITE"`` (olsrd's
  convention for ETX, which the importer reads back as broken), unless
  ``include_broken=False`` leaves it out.
* Values that JSON cannot hold (sets, objects) are written with ``str()``;
  non-finite floats in properties become ``null``.

Import is :func:`meshcore.net.importers.netjson.load`, re-exported here as
:func:`from_netjson`.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from meshcore.net.topology import Topology

__all__ = ["BROKEN_COST", "dumps", "from_netjson", "iter_dumps", "to_netjson"]

#: Cost written for a broken link (olsrd's broken ETX, 4194304 / 1024).
BROKEN_COST = 4096.0


class _RouteView(Protocol):
    def tier(self, node_id: str) -> Any: ...


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, enum.Enum):
        return value.name.lower()
    return str(value)


def _tier_name(tier: Any) -> str:
    name = getattr(tier, "name", None)
    return (name if isinstance(name, str) else str(tier)).lower()


def _default_routes(topo: Topology, self_id: str) -> _RouteView | None:
    try:
        from meshcore.net.routing import Routes
    except ImportError:  # pragma: no cover - routing ships with meshcore.net
        return None
    return Routes(topo, self_id=self_id)


def to_netjson(
    topo: Topology,
    *,
    routes: _RouteView | None = None,
    self_id: str | None = None,
    include_broken: bool = True,
) -> dict[str, Any]:
    """The topology as a NetJSON NetworkGraph dict (see the module docstring).

    ``routes`` is a route view with ``tier(node_id)`` (a
    :class:`meshcore.net.routing.Routes`); when it is None but ``self_id``
    names a node of the graph, one is built from the topology. Without
    either, nodes carry no ``locality``. Raises ValueError when ``self_id``
    is given but not a node of ``topo``.
    """
    doc, nodes, links = _records(topo, routes=routes, self_id=self_id,
                                 include_broken=include_broken)
    doc["nodes"] = list(nodes)
    doc["links"] = list(links)
    return doc


def _records(
    topo: Topology, *, routes: _RouteView | None, self_id: str | None, include_broken: bool
) -> tuple[dict[str, Any], Iterator[dict[str, Any]], Iterator[dict[str, Any]]]:
    """The header dict and lazy iterators of the node and link records."""
    router_id = self_id if self_id is not None else topo.router_id
    if self_id is not None:
        if self_id not in topo.nodes:
            raise ValueError(f"self_id: {self_id!r} is not a node of the topology")
        if routes is None:
            routes = _default_routes(topo, self_id)
    doc: dict[str, Any] = {
        "type": "NetworkGraph",
        "protocol": str(topo.protocol or "unknown"),
        "version": str(topo.version or ""),
        "metric": "etx",
        "source_metric": str(topo.metric or "unknown"),
        "directed": True,
    }
    if router_id is not None:
        doc["router_id"] = str(router_id)
    if topo.label is not None:
        doc["label"] = str(topo.label)
    return (doc, _node_records(topo, routes, router_id),
            _link_records(topo, include_broken))


def _node_records(topo: Topology, routes: _RouteView | None,
                  router_id: str | None) -> Iterator[dict[str, Any]]:
    for node_id in sorted(topo.nodes):
        node = topo.nodes[node_id]
        entry: dict[str, Any] = {"id": node_id}
        if node.label:
            entry["label"] = str(node.label)
        props = dict(node.properties)
        addresses = props.pop("local_addresses", None)
        if isinstance(addresses, (list, tuple)) and addresses:
            entry["local_addresses"] = sorted({str(a) for a in addresses})
        out = {str(k): _jsonable(v) for k, v in props.items()}
        out["gateway"] = bool(props.get("gateway", False))
        if routes is not None:
            if node_id == router_id:
                out["locality"] = "self"
            else:
                out["locality"] = _tier_name(routes.tier(node_id))
            for attr, key in (("cost", "route_cost"), ("hops", "hops")):
                getter = getattr(routes, attr, None)
                if callable(getter):
                    with contextlib.suppress(KeyError, ValueError, TypeError):
                        out[key] = _jsonable(getter(node_id))
        entry["properties"] = out
        yield entry


def _link_records(topo: Topology, include_broken: bool) -> Iterator[dict[str, Any]]:
    for link in topo.links():
        if link.broken and not include_broken:
            continue
        props = dict(link.properties)
        cost_text = props.pop("cost_text", None)
        if link.broken:
            cost, text = BROKEN_COST, "INFINITE"
        else:
            cost = link.cost
            text = str(cost_text) if cost_text else f"{cost:.3f}"
        out = {str(k): _jsonable(v) for k, v in props.items()}
        out["origins"] = list(link.origins)
        yield {
            "source": link.source,
            "target": link.target,
            "cost": cost,
            "cost_text": text,
            "properties": out,
        }


def dumps(topo: Topology, *, indent: int | None = 2, **options: Any) -> str:
    """:func:`to_netjson` as JSON text (strict JSON: no NaN or Infinity)."""
    return "".join(iter_dumps(topo, indent=indent, **options))


def iter_dumps(topo: Topology, *, indent: int | None = 2, **options: Any) -> Iterator[str]:
    """:func:`dumps` in pieces, one node or link record at a time.

    The same text as ``json.dumps(to_netjson(topo), indent=indent)`` plus a
    newline, without holding the whole document: `topology import` writes a
    large graph with memory for one record beside the graph (the whole dict
    tree and its text cost more than the graph itself did).
    """
    doc, nodes, links = _records(topo, routes=options.pop("routes", None),
                                 self_id=options.pop("self_id", None),
                                 include_broken=options.pop("include_broken", True))
    if options:
        raise TypeError(f"unexpected options: {', '.join(sorted(options))}")

    def encode(value: Any) -> str:
        return json.dumps(value, indent=indent, allow_nan=False)

    # json.dumps's layout: members of the document one indent in, records of
    # its two lists two (a record's own lines shifted by as much).
    if indent is None:
        open_doc, member_sep, first_rec, rec_sep, close_list = "{", ", ", "", ", ", "]"
        shift = None
    else:
        pad = " " * indent
        open_doc, member_sep = "{\n" + pad, ",\n" + pad
        first_rec, rec_sep, close_list = "\n" + pad * 2, ",\n" + pad * 2, "\n" + pad + "]"
        shift = "\n" + pad * 2
    yield open_doc + member_sep.join(f"{encode(k)}: {encode(v)}" for k, v in doc.items())
    for name, records in (("nodes", nodes), ("links", links)):
        yield f"{member_sep}{encode(name)}: ["
        empty = True
        for record in records:
            text = encode(record)
            yield (first_rec if empty else rec_sep) + (
                text if shift is None else text.replace("\n", shift))
            empty = False
        yield "]" if empty else close_list
    yield ("}" if indent is None else "\n}") + "\n"


def from_netjson(data: str | Mapping[str, Any], path: str = "<netjson>") -> Topology:
    """Import a NetJSON NetworkGraph/NetworkCollection/NetworkRoutes (text or decoded dict).

    Raises :class:`meshcore.errors.TopologyFormatError` on malformed input.
    """
    from meshcore.net.importers import netjson as importer

    text = data if isinstance(data, str) else json.dumps(data)
    return importer.load(text, path)
