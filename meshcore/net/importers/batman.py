"""batman-adv importer: ``batadv-vis`` (alfred) JSON and ``batctl o`` originator tables.

batman-adv (https://www.open-mesh.org) is a layer-2 mesh: nodes are
*originators* named by the MAC of their primary interface. Every format below
is lower-cased for MACs.

``batadv-vis -f jsondoc``
    ``{"algorithm": 4, "vis": [{"primary", "secondary": [...], "neighbors":
    [{"router", "neighbor", "metric"}], "clients": [...]}]}``. A node per
    ``primary``; interface MACs in ``secondary`` (and ``router``) map to
    their primary, so ``router -> neighbor`` is a link between the two
    originators owning those interfaces (an interface MAC nobody claims
    becomes a node of its own). ``metric`` is already ``255 / TQ`` for
    BATMAN IV (1.000 perfect, ETX-like) and is used as is; for BATMAN V
    (``"algorithm": 5``) it is a throughput in Mbit/s, converted with
    :func:`meshcore.net._costs.throughput_cost`. Links are directed (each
    originator reports its own neighbours). Several interface pairs between
    two originators keep the lowest cost. ``clients`` (translation-table
    MACs) become the node property ``clients`` (sorted, without repeats).
``batadv-vis -f json`` (one object per line; also old ``batctl vd json``)
    ``{"primary": M}``, ``{"secondary": S, "of": M}``, ``{"router": R,
    "neighbor": N, "label": "1.015"}`` (a link, label = 255/TQ) and
    ``{"router": R, "gateway": C, "label": "TT"}`` (client C of R). Same
    mapping as above. Errors name the line.
``batctl o`` / ``batctl originators``
    One node's view: the header names its main interface MAC (the node
    itself). Each row is an originator with its best next hop and TQ ``(#/255)``
    (or a BATMAN V throughput in Mbit/s), followed in the old layout by
    every potential next hop and its TQ; in the new layout (batctl >= 2013)
    each next hop is its own row and ``*`` marks the best. A direct
    neighbour is an originator that appears as its own next hop; it gives the
    link ``self -> neighbour`` with cost ``255 / TQ``. Other originators are
    nodes without links, with properties ``nexthop`` (best next hop) and
    ``path_cost`` (``255 / TQ`` of the best route).
"""

from __future__ import annotations

import json
import re
from typing import Any

from meshcore.errors import TopologyFormatError
from meshcore.net import _costs
from meshcore.net.importers._common import JsonReader, clip, count, join, parse_json
from meshcore.net.topology import Topology

__all__ = ["FORMAT", "detect", "load", "load_jsondoc", "load_lines", "load_originators"]

FORMAT = "batman"
FORMAT_JSONDOC = "batman-jsondoc"
FORMAT_LINES = "batman-json-lines"
FORMAT_ORIG = "batman-originators"

_MAC = r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}"
_LINE_KEYS = re.compile(r'^\s*\{\s*"(primary|secondary|router)"\s*:', re.MULTILINE)


def detect(head: str) -> bool:
    """True for batadv-vis jsondoc, batadv-vis line JSON or a ``batctl o`` table."""
    stripped = head.lstrip()
    if stripped.startswith("[B.A.T.M.A.N.") or re.search(r"Originator\s+last-seen", head):
        return True
    if stripped.startswith("{"):
        if '"vis"' in head and '"primary"' in head:
            return True
        first = stripped.split("\n", 1)[0]
        return _LINE_KEYS.match(first) is not None and first.rstrip().endswith("}")
    return False


def load(text: str, path: str) -> Topology:
    """Parse any batman-adv format above, chosen by its first characters."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("{"):
        first = stripped.split("\n", 1)[0].strip()
        if _LINE_KEYS.match(first) and first.endswith("}"):
            return load_lines(text, path)
        return load_jsondoc(text, path)
    return load_originators(text, path)


class _Graph:
    def __init__(self, algorithm: int | str | None) -> None:
        self.primary: list[str] = []
        self.owner: dict[str, str] = {}
        self.links: list[tuple[str, str, float, str]] = []
        self.clients: dict[str, list[str]] = {}
        self.algorithm = algorithm

    def resolve(self, mac: str) -> str:
        return self.owner.get(mac, mac)

    def build(self, topo: Topology) -> Topology:
        for mac in self.primary:
            topo.add_node(mac)
        for mac, owner in self.owner.items():
            if mac != owner:
                node = topo.add_node(owner)
                node.properties.setdefault("local_addresses", []).append(mac)
        for node in topo.nodes.values():
            if "local_addresses" in node.properties:
                node.properties["local_addresses"] = sorted(set(node.properties["local_addresses"]))
        for router, neighbour, cost, text in self.links:
            s, t = self.resolve(router), self.resolve(neighbour)
            count(topo, "records")
            if s == t:
                count(topo, "self_loops")
                continue
            for end in (s, t):
                if end not in topo.nodes:
                    count(topo, "implicit_nodes")
                    topo.add_node(end)
            known = topo.observations(s, t).get("import")
            if known is not None:
                count(topo, "duplicates")
                if known <= cost:
                    continue
            topo.add_link(s, t, cost, cost_text=text)
        for router, macs in self.clients.items():
            node = topo.add_node(self.resolve(router))
            merged = set(node.properties.get("clients", [])) | set(macs)
            node.properties["clients"] = sorted(merged)
            count(topo, "clients", len(macs))
        return topo


def _mac(reader: JsonReader, obj: dict[str, Any], key: str, at: str) -> str:
    value = reader.text(obj, key, at).lower()
    if not re.fullmatch(_MAC, value):
        reader.fail(join(at, key), f"expected a MAC address, got {clip(value)}")
    return value


def _mac_value(reader: JsonReader, value: Any, at: str) -> str:
    mac = reader.as_text(value, at).lower()
    if not re.fullmatch(_MAC, mac):
        reader.fail(at, f"expected a MAC address, got {clip(mac)}")
    return mac


def _metric_cost(reader: JsonReader, value: Any, at: str, algorithm: Any) -> float:
    number = reader.as_number(value, at)
    if algorithm in (5, "5", "BATMAN_V"):
        return reader.convert(_costs.throughput_cost, at, number)
    if number < 0:
        reader.fail(at, f"expected a metric >= 0, got {clip(value)}")
    return number


def load_jsondoc(text: str, path: str) -> Topology:
    """Parse ``batadv-vis -f jsondoc`` output."""
    reader = JsonReader(path, FORMAT_JSONDOC)
    doc = reader.obj(parse_json(text, path, FORMAT_JSONDOC), "$")
    algorithm = doc.get("algorithm")
    g = _Graph(algorithm)
    entries = reader.arr(doc.get("vis"), "vis")
    for i, raw in enumerate(entries):
        at = join("vis", i)
        entry = reader.obj(raw, at)
        primary = _mac(reader, entry, "primary", at)
        g.primary.append(primary)
        g.owner[primary] = primary
        secondary = entry.get("secondary", [])
        if isinstance(secondary, str):
            secondary = [secondary]
        for k, mac in enumerate(reader.arr(secondary, join(at, "secondary"))):
            g.owner[_mac_value(reader, mac, join(join(at, "secondary"), k))] = primary
    for i, raw in enumerate(entries):
        at = join("vis", i)
        entry = raw
        primary = entry["primary"].lower()
        n_at = join(at, "neighbors")
        for k, nraw in enumerate(reader.arr(entry.get("neighbors", []), n_at)):
            nat = join(n_at, k)
            neighbour = reader.obj(nraw, nat)
            router = _mac(reader, neighbour, "router", nat) if "router" in neighbour else primary
            mac = _mac(reader, neighbour, "neighbor", nat)
            raw_metric = neighbour.get("metric")
            if raw_metric is None:
                reader.fail(join(nat, "metric"), "missing")
            cost = _metric_cost(reader, raw_metric, join(nat, "metric"), algorithm)
            g.links.append((router, mac, cost, str(raw_metric)))
        c_at = join(at, "clients")
        clients = [
            _mac_value(reader, c, join(c_at, k))
            for k, c in enumerate(reader.arr(entry.get("clients", []), c_at))
        ]
        if clients:
            g.clients.setdefault(primary, []).extend(clients)
    version = doc.get("source_version")
    topo = Topology(
        protocol="batman-adv",
        version=str(version) if version is not None else None,
        metric="tq" if algorithm not in (5, "5") else "throughput",
    )
    return g.build(topo)


def load_lines(text: str, path: str) -> Topology:
    """Parse ``batadv-vis -f json``: one JSON object per line."""
    g = _Graph(4)
    unknown = 0
    pending: list[tuple[int, str, str, Any]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip().rstrip(",")
        if not stripped:
            continue
        reader = JsonReader(path, FORMAT_LINES)
        try:
            obj = json.loads(stripped)
        except (ValueError, RecursionError) as exc:
            raise TopologyFormatError(
                path, FORMAT_LINES, f"line {lineno}", f"invalid JSON: {exc}"
            ) from None
        where = f"line {lineno}"
        obj = reader.obj(obj, where)
        if "primary" in obj:
            mac = _mac(reader, obj, "primary", where)
            g.primary.append(mac)
            g.owner.setdefault(mac, mac)
        elif "secondary" in obj:
            mac = _mac(reader, obj, "secondary", where)
            g.owner[mac] = _mac(reader, obj, "of", where)
        elif "router" in obj and "neighbor" in obj:
            label = obj.get("label")
            if label is None:
                reader.fail(join(where, "label"), "missing")
            reader.as_number(label, join(where, "label"))
            pending.append(
                (
                    lineno,
                    _mac(reader, obj, "router", where),
                    _mac(reader, obj, "neighbor", where),
                    label,
                )
            )
        elif "router" in obj and "gateway" in obj:
            router = _mac(reader, obj, "router", where)
            g.clients.setdefault(router, []).append(_mac(reader, obj, "gateway", where))
        else:
            unknown += 1  # record kinds of future alfred versions are skipped, counted
    reader = JsonReader(path, FORMAT_LINES)
    for lineno, router, neighbour, label in pending:
        cost = _metric_cost(reader, label, f"line {lineno}.label", 4)
        g.links.append((router, neighbour, cost, str(label)))
    # Primaries first seen through "secondary ... of" still are originators.
    for mac in dict.fromkeys(g.owner.values()):
        if mac not in g.primary:
            g.primary.append(mac)
    topo = g.build(Topology(protocol="batman-adv", metric="tq"))
    if unknown:
        count(topo, "unknown_records", unknown)
    return topo


_HEADER = re.compile(
    r"\[B\.A\.T\.M\.A\.N\. adv ([^,\]]+).*?MainIF/MAC:\s*([^/\s]+)/(" + _MAC + r")", re.IGNORECASE
)
_ROW = re.compile(
    r"^\s*(\*)?\s*("
    + _MAC
    + r")\s+(\d+(?:\.\d+)?)s\s+\(\s*([0-9.]+)\s*\)\s+("
    + _MAC
    + r")\s+\[\s*([^\]]*?)\s*\]:?\s*(.*)$"
)
_POTENTIAL = re.compile(r"(" + _MAC + r")\s+\(\s*([0-9.]+)\s*\)")


def load_originators(text: str, path: str) -> Topology:
    """Parse ``batctl o`` (originator table) output of one node."""
    me: str | None = None
    version = None
    rows: list[tuple[int, bool, str, float, str, str, str]] = []
    throughput = False
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        header = _HEADER.search(stripped)
        if header:
            version, me = header.group(1).strip(), header.group(3).lower()
            throughput = "BATMAN_V" in stripped.upper()
            continue
        if "Originator" in stripped and ("last-seen" in stripped or "last seen" in stripped):
            throughput = throughput or "throughput" in stripped.lower()
            continue
        if stripped.startswith(("No batman nodes", "Error", "Warning")):
            continue
        row = _ROW.match(line)
        if row is None:
            raise TopologyFormatError(
                path, FORMAT_ORIG, f"line {lineno}", f"not an originator row: {clip(stripped)}"
            )
        rows.append(
            (
                lineno,
                bool(row.group(1)),
                row.group(2).lower(),
                float(row.group(4)),
                row.group(5).lower(),
                row.group(6),
                row.group(7),
            )
        )
    if me is None:
        raise TopologyFormatError(
            path, FORMAT_ORIG, "line 1", "no '[B.A.T.M.A.N. adv ..., MainIF/MAC: if/mac]' header"
        )

    def cost_of(value: float, lineno: int) -> float:
        try:
            if throughput:
                return _costs.throughput_cost(value)
            return _costs.batman_tq_cost(value)
        except ValueError as exc:
            raise TopologyFormatError(path, FORMAT_ORIG, f"line {lineno}", str(exc)) from None

    topo = Topology(
        protocol="batman-adv",
        version=version,
        metric="throughput" if throughput else "tq",
        router_id=me,
    )
    topo.add_node(me)
    best: dict[str, tuple[str, float]] = {}
    direct: dict[str, float] = {}
    starred = any(r[1] for r in rows)
    for lineno, star, orig, value, nexthop, iface, rest in rows:
        cost = cost_of(value, lineno)
        count(topo, "records")
        if star or not starred:
            best.setdefault(orig, (nexthop, cost))
        candidates = [(nexthop, cost)]
        for match in _POTENTIAL.finditer(rest):
            candidates.append((match.group(1).lower(), cost_of(float(match.group(2)), lineno)))
        for hop, hop_cost in candidates:
            if hop == orig and hop != me and (orig not in direct or hop_cost < direct[orig]):
                direct[orig] = hop_cost
        topo.add_node(orig, interface=iface)
    for orig, (nexthop, cost) in best.items():
        topo.add_node(orig, nexthop=nexthop, path_cost=cost)
    for neighbour, cost in direct.items():
        topo.add_link(me, neighbour, cost)
    return topo
