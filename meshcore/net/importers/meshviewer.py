"""Freifunk map data importer: meshviewer.json (v2), graph.json (v1), hopglass rows.

Freifunk communities publish their network for map front-ends. These files
are produced by yanic / ffmap-backend / hopglass-server from batman-adv (or,
in Berlin, OLSR) data, so they are routing-daemon views one step removed.

meshviewer v2 (``{"meta", "nodes", "links"}``, yanic's meshviewer-ffrgb output)
    Node = ``nodes[].node_id``; label ``hostname``; properties ``gateway``
    (``is_gateway``), ``online`` (``is_online``), ``clients``,
    ``site_code``/``domain``, ``model``, ``location`` and
    ``local_addresses`` (``addresses``) when present. Link = ``links[]``:
    ``source -> target`` costs ``1 / source_tq`` and ``target -> source``
    ``1 / target_tq`` (tq = batman TQ/255 as measured by that end, in [0, 1];
    0 is a broken direction). ``type`` (wifi, vpn, other) is kept, so
    :mod:`meshcore.net.routing` can treat vpn links as tunnels. A pair listed
    several times (one record per interface pair) keeps the lowest cost per
    direction, with that record's type.
graph.json v1 (``{"batadv": {"nodes", "links"}}``, ffmap-backend)
    Links name nodes by index; ``tq`` is already ETX-like (1.0 perfect,
    meshviewer shows ``100/tq`` %) and used as is; ``bidirect`` false means
    only ``source -> target``.
hopglass rows (``{"JSON": {"rows": [...]}}``, Freifunk Berlin, OLSR)
    Node = ``rows[].id`` (``<hostname>.olsr``), label ``value.hostname``,
    ``location`` from ``value.latlng``. Link = ``value.links[]`` from the row
    to ``id``: the cost comes from the attached olsrd jsoninfo link record
    (``olsr_ipv4``, else ``olsr_ipv6``: ``linkCost`` read as
    :func:`meshcore.net._costs.olsr1_cost`, 4194304 broken) or, without one,
    from ``quality`` (a delivery ratio, ``1 / quality``). Link targets that
    have no row of their own become nodes too.
"""

from __future__ import annotations

import re
from typing import Any

from meshcore.net import _costs
from meshcore.net.importers._common import JsonReader, count, join, parse_json
from meshcore.net.topology import Topology

__all__ = ["FORMAT", "detect", "load"]

FORMAT = "meshviewer"


def detect(head: str) -> bool:
    """True for meshviewer v2, graph.json v1 or hopglass rows JSON."""
    stripped = head.lstrip()
    if not stripped.startswith("{"):
        return False
    if re.match(r'\{\s*"JSON"\s*:\s*\{', stripped) or ('"rows"' in head[:200] and '.olsr"' in head):
        return True
    if '"node_id"' in head and ('"source_tq"' in head or '"is_online"' in head):
        return True
    return '"batadv"' in head and '"links"' in head and '"nodes"' in head


def load(text: str, path: str) -> Topology:
    """Parse a meshviewer v2, graph.json v1 or hopglass rows document."""
    reader = JsonReader(path, FORMAT)
    doc = reader.obj(parse_json(text, path, FORMAT), "$")
    if "JSON" in doc:
        return _load_hopglass(reader, doc)
    if "batadv" in doc:
        return _load_graph_v1(reader, doc)
    return _load_v2(reader, doc)


def _keep_min(
    records: dict[tuple[str, str], tuple[float, dict[str, Any]]],
    topo: Topology,
    source: str,
    target: str,
    cost: float,
    props: dict[str, Any],
) -> None:
    old = records.get((source, target))
    if old is not None:
        count(topo, "duplicates")
        if old[0] <= cost:
            return
    records[(source, target)] = (cost, props)


def _flush(topo: Topology, records: dict[tuple[str, str], tuple[float, dict[str, Any]]]) -> None:
    for (source, target), (cost, props) in records.items():
        for end in (source, target):
            if end not in topo.nodes:
                count(topo, "implicit_nodes")
                topo.add_node(end)
        topo.observe(source, target, cost, properties=props)


_NODE_FIELDS = {
    "is_gateway": "gateway",
    "is_online": "online",
    "clients": "clients",
    "site_code": "site_code",
    "domain": "domain",
    "model": "model",
    "location": "location",
    "mac": "mac",
}


def _load_v2(reader: JsonReader, doc: dict[str, Any]) -> Topology:
    topo = Topology(protocol="batman-adv", metric="tq", label="meshviewer")
    meta = doc.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("timestamp"), str):
        topo.version = None
        topo.label = f"meshviewer {meta['timestamp']}"
    for i, raw in enumerate(reader.arr(doc.get("nodes"), "nodes")):
        at = join("nodes", i)
        node = reader.obj(raw, at)
        node_id = reader.text(node, "node_id", at)
        props: dict[str, Any] = {}
        for key, name in _NODE_FIELDS.items():
            value = node.get(key)
            if value not in (None, "", {}):
                props[name] = value
        addresses = node.get("addresses")
        if isinstance(addresses, list) and addresses:
            props["local_addresses"] = [str(a) for a in addresses]
        hostname = node.get("hostname")
        if node_id in topo.nodes:
            count(topo, "duplicate_nodes")
        topo.update_node(node_id, label=str(hostname) if hostname else None, properties=props)
    records: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    for i, raw in enumerate(reader.arr(doc.get("links"), "links")):
        at = join("links", i)
        link = reader.obj(raw, at)
        source = reader.text(link, "source", at)
        target = reader.text(link, "target", at)
        count(topo, "records")
        if source == target:
            count(topo, "self_loops")
            continue
        props = {}
        if link.get("type") is not None:
            props["type"] = str(link["type"])
        # Some exporters write one "tq" for both directions instead of source_tq/target_tq.
        key = "source_tq" if "source_tq" in link or "tq" not in link else "tq"
        forward = reader.convert(_costs.ratio_cost, join(at, key), reader.number(link, key, at))
        _keep_min(records, topo, source, target, forward, props)
        if key == "tq":
            _keep_min(records, topo, target, source, forward, dict(props))
        elif "target_tq" in link:
            backward = reader.convert(
                _costs.ratio_cost, join(at, "target_tq"), reader.number(link, "target_tq", at)
            )
            _keep_min(records, topo, target, source, backward, dict(props))
    _flush(topo, records)
    return topo


def _load_graph_v1(reader: JsonReader, doc: dict[str, Any]) -> Topology:
    topo = Topology(protocol="batman-adv", metric="tq", label="meshviewer graph")
    batadv = reader.obj(doc["batadv"], "batadv")
    ids: list[str] = []
    for i, raw in enumerate(reader.arr(batadv.get("nodes"), "batadv.nodes")):
        at = join("batadv.nodes", i)
        node = reader.obj(raw, at)
        key = "node_id" if node.get("node_id") else "id"
        node_id = reader.text(node, key, at)
        ids.append(node_id)
        topo.add_node(node_id)
    records: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    for i, raw in enumerate(reader.arr(batadv.get("links"), "batadv.links")):
        at = join("batadv.links", i)
        link = reader.obj(raw, at)
        ends = []
        for key in ("source", "target"):
            value = link.get(key)
            if isinstance(value, bool) or not isinstance(value, int):
                reader.fail(join(at, key), "expected a node index")
            if not 0 <= value < len(ids):
                reader.fail(join(at, key), f"node index {value} out of range (0..{len(ids) - 1})")
            ends.append(ids[value])
        count(topo, "records")
        if ends[0] == ends[1]:
            count(topo, "self_loops")
            continue
        cost = reader.number(link, "tq", at)
        if cost < 0:
            reader.fail(join(at, "tq"), "expected a value >= 0")
        props = {"type": "vpn"} if link.get("vpn") else {}
        _keep_min(records, topo, ends[0], ends[1], cost, props)
        if link.get("bidirect", True):
            _keep_min(records, topo, ends[1], ends[0], cost, dict(props))
    _flush(topo, records)
    return topo


def _load_hopglass(reader: JsonReader, doc: dict[str, Any]) -> Topology:
    topo = Topology(protocol="OLSR", metric="ETX", label="hopglass")
    inner = reader.obj(doc["JSON"], "JSON")
    rows = reader.arr(inner.get("rows"), "JSON.rows")
    records: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    for i, raw in enumerate(rows):
        at = join("JSON.rows", i)
        row = reader.obj(raw, at)
        node_id = reader.text(row, "id", at)
        value = row.get("value", {})
        value = reader.obj(value, join(at, "value")) if value is not None else {}
        props: dict[str, Any] = {}
        latlng = value.get("latlng")
        if isinstance(latlng, list) and len(latlng) == 2:
            props["location"] = {"latitude": latlng[0], "longitude": latlng[1]}
        hostname = value.get("hostname")
        topo.update_node(node_id, label=str(hostname) if hostname else None, properties=props)
    for i, raw in enumerate(rows):
        at = join("JSON.rows", i)
        source = raw["id"]
        value = raw.get("value") or {}
        links_at = join(join(at, "value"), "links")
        for k, lraw in enumerate(reader.arr(value.get("links", []), links_at)):
            lat = join(links_at, k)
            link = reader.obj(lraw, lat)
            target = reader.text(link, "id", lat)
            count(topo, "records")
            if target == source:
                count(topo, "self_loops")
                continue
            olsr = link.get("olsr_ipv4") or link.get("olsr_ipv6")
            props: dict[str, Any] = {}
            if isinstance(olsr, dict) and "linkCost" in olsr:
                key = "olsr_ipv4" if link.get("olsr_ipv4") else "olsr_ipv6"
                cat = join(join(lat, key), "linkCost")
                raw_cost = olsr["linkCost"]
                if not isinstance(raw_cost, str):
                    reader.as_number(raw_cost, cat)
                cost = reader.convert(
                    _costs.olsr1_cost,
                    cat,
                    raw_cost,
                    olsr.get("linkQuality"),
                    olsr.get("neighborLinkQuality"),
                )
                for name in ("localIP", "remoteIP"):
                    if olsr.get(name):
                        props[name] = olsr[name]
            else:
                quality = reader.number(link, "quality", lat)
                cost = reader.convert(_costs.ratio_cost, join(lat, "quality"), quality)
            if link.get("ifname"):
                props["interface"] = str(link["ifname"])
            _keep_min(records, topo, source, target, cost, props)
    _flush(topo, records)
    return topo
