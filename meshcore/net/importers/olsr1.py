"""OLSRv1 (olsrd) importer: jsoninfo, txtinfo and dot_draw plugin outputs.

olsrd (http://www.olsr.org, RFC 3626 with the ETX link-quality extension)
exposes its state through plugins. Three of their outputs are read here; all
describe the same graph, so they give the same nodes and links.

Nodes are *main addresses*: an interface alias that a MID entry maps to a
main address is folded onto it (and listed in the node's
``local_addresses``). Links are TC edges ``lastHop -> destination``
(directed: the advertising router is the last hop). The router's own link
set (jsoninfo ``links[]``, txtinfo "Table: Links") refines the cost of an
edge between two known routers, because it is fresher than the TC; a local
link to an address no TC or MID mentions is not a router and is skipped
(counted as ``stats["unknown_local_links"]``). A dump without any TC edge
(``/links`` only) takes every local link. HNA announcements become the
announcing router's ``prefixes`` property, and ``0.0.0.0/0`` (or ``::/0``)
marks it ``gateway``.

Costs (:mod:`meshcore.net._costs`): ETX as is; jsoninfo's ``tcEdgeCost`` and
``linkCost`` are ETX x 1024 integers in olsrd 0.6 and ETX floats in olsrd 0.9
(:func:`~meshcore.net._costs.olsr1_cost` tells them apart with LQ and NLQ);
``INFINITE`` and ETX >= 4096 (olsrd's LINK_COST_BROKEN) are broken links.

jsoninfo
    A JSON object with ``topology[]`` (``lastHopIP``, ``destinationIP``,
    ``linkQuality``, ``neighborLinkQuality``, ``tcEdgeCost``), optional
    ``links[]``, ``mid[]`` and ``hna[]``. MID entries come in two layouts:
    old ``{"ipAddress": main, "aliases": [...]}`` and new
    ``{"main": {"ipAddress": main}, "aliases": [{"ipAddress": a}]}``.
    A top-level ``data`` object or list (some versions) is unwrapped.
txtinfo
    ``Table: <name>`` blocks of tab-separated rows under a header row;
    columns are found by header name (``Dest. IP``/``Destination IP``,
    ``Last hop IP``, ``LQ``, ``NLQ``/``ILQ``, ``Cost``/``ETX``).
dot_draw
    A Graphviz digraph: ``"A" -> "B"[label="1.234"]`` is a link with ETX
    1.234 (``INFINITE`` broken); ``label="HNA"`` edges point to announced
    prefixes (diamond-shaped), which are not routers.
"""

from __future__ import annotations

import re
from typing import Any

from meshcore.errors import TopologyFormatError
from meshcore.net import _costs
from meshcore.net.importers._common import JsonReader, clip, count, join, parse_json
from meshcore.net.topology import Topology

__all__ = ["FORMAT", "detect", "load", "load_dot", "load_jsoninfo", "load_txtinfo"]

FORMAT = "olsr1"
FORMAT_JSON = "olsr1-jsoninfo"
FORMAT_TXT = "olsr1-txtinfo"
FORMAT_DOT = "olsr1-dot"

_JSON_KEYS = re.compile(r'"(lastHopIP|destinationIP|tcEdgeCost|remoteIP|neighborLinkQuality)"')
_TABLE = re.compile(r"^Table:\s*(\S.*?)\s*$", re.MULTILINE)


def detect(head: str) -> bool:
    """True for olsrd jsoninfo JSON, txtinfo tables or a dot_draw digraph."""
    stripped = head.lstrip()
    if stripped.startswith("{"):
        return _JSON_KEYS.search(head) is not None and '"rows"' not in head[:2000]
    if re.match(r"(strict\s+)?digraph\b", stripped):
        return "->" in head
    return (
        _TABLE.search(head) is not None
        and re.search(r"^Table:\s*(Topology|Links)", head, re.MULTILINE) is not None
    )


def load(text: str, path: str) -> Topology:
    """Parse any of the three olsrd outputs (chosen by the first non-blank character)."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("{", "[")):
        return load_jsoninfo(text, path)
    if re.match(r"(strict\s+)?digraph\b", stripped):
        return load_dot(text, path)
    return load_txtinfo(text, path)


class _Builder:
    """Collects TC edges, local links, MID and HNA, then builds the graph."""

    def __init__(self) -> None:
        self.alias: dict[str, str] = {}
        self.tc: list[tuple[str, str, float, dict[str, Any]]] = []
        self.local: list[tuple[str, str, float, dict[str, Any]]] = []
        self.hna: list[tuple[str, str]] = []

    def main(self, address: str) -> str:
        return self.alias.get(address, address)

    def add_mid(self, main: str, aliases: list[str]) -> None:
        for alias in aliases:
            if alias and alias != main:
                self.alias[alias] = main

    def build(self, topo: Topology) -> Topology:
        for main in sorted(set(self.alias.values())):
            node = topo.add_node(main)
            addresses = sorted(a for a, m in self.alias.items() if m == main)
            node.properties["local_addresses"] = addresses
        edges: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        for source, target, cost, props in self.tc:
            s, t = self.main(source), self.main(target)
            count(topo, "records")
            if s == t:
                count(topo, "self_loops")
                continue
            topo.add_node(s)
            topo.add_node(t)
            old = edges.get((s, t))
            if old is not None:
                count(topo, "duplicates")
                if old[0] <= cost:
                    continue
            edges[(s, t)] = (cost, props)
        for source, target, cost, props in self.local:
            s, t = self.main(source), self.main(target)
            count(topo, "local_records")
            if s == t:
                count(topo, "self_loops")
                continue
            if self.tc and (t not in topo.nodes or s not in topo.nodes):
                count(topo, "unknown_local_links")
                continue
            topo.add_node(s)
            topo.add_node(t)
            edges[(s, t)] = (cost, {**edges.get((s, t), (0, {}))[1], **props})
        for (s, t), (cost, props) in edges.items():
            topo.observe(s, t, cost, properties=props)
        for prefix, gateway in self.hna:
            g = self.main(gateway)
            node = topo.nodes.get(g)
            if node is None:
                count(topo, "unknown_hna")
                continue
            prefixes = set(node.properties.get("prefixes", []))
            prefixes.add(prefix)
            node.properties["prefixes"] = sorted(prefixes)
            if prefix in ("0.0.0.0/0", "::/0"):
                node.properties["gateway"] = True
        return topo


# -- jsoninfo -------------------------------------------------------------------


def _address(reader: JsonReader, value: Any, at: str) -> str:
    if isinstance(value, dict):
        for key in ("ipAddress", "ip", "address"):
            if key in value:
                return reader.text(value, key, at)
        reader.fail(at, "expected an address object with ipAddress")
    return reader.as_text(value, at)


def load_jsoninfo(text: str, path: str) -> Topology:
    """Parse olsrd jsoninfo output (``/topology``, ``/links``, ``/mid``, ``/all``)."""
    reader = JsonReader(path, FORMAT_JSON)
    data = parse_json(text, path, FORMAT_JSON)
    if isinstance(data, list):
        merged: dict[str, Any] = {}
        for i, part in enumerate(data):
            merged.update(reader.obj(part, f"[{i}]"))
        data = merged
    doc = reader.obj(data, "$")
    prefix = ""
    if "topology" not in doc and "links" not in doc and "data" in doc:
        inner = doc["data"]
        prefix = "data"
        if isinstance(inner, list):
            merged = {}
            for i, part in enumerate(inner):
                merged.update(reader.obj(part, f"data[{i}]"))
            inner = merged
            prefix = "data[]"
        doc = reader.obj(inner, "data")
    if "topology" not in doc and "links" not in doc:
        reader.fail(prefix or "$", "no topology[] or links[] member")

    version = None
    raw_version = doc.get("version")
    if isinstance(raw_version, dict):
        version = raw_version.get("releaseVersion") or raw_version.get("version")
    elif isinstance(raw_version, str):
        version = raw_version
    topo = Topology(protocol="OLSR", version=version, metric="ETX")

    b = _Builder()
    mid_at = join(prefix, "mid")
    for i, raw in enumerate(reader.arr(doc.get("mid", []), mid_at)):
        at = join(mid_at, i)
        entry = reader.obj(raw, at)
        if "main" in entry:
            main = _address(reader, entry["main"], join(at, "main"))
        else:
            main = _address(
                reader, entry.get("ipAddress", entry.get("mainIP")), join(at, "ipAddress")
            )
        aliases_at = join(at, "aliases")
        aliases = [
            _address(reader, a, join(aliases_at, k))
            for k, a in enumerate(reader.arr(entry.get("aliases", []), aliases_at))
        ]
        b.add_mid(main, aliases)

    tc_at = join(prefix, "topology")
    for i, raw in enumerate(reader.arr(doc.get("topology", []), tc_at)):
        at = join(tc_at, i)
        entry = reader.obj(raw, at)
        last = reader.text(entry, "lastHopIP", at)
        dest = reader.text(entry, "destinationIP", at)
        cost, props = _json_cost(reader, entry, at, "tcEdgeCost")
        b.tc.append((last, dest, cost, props))

    links_at = join(prefix, "links")
    for i, raw in enumerate(reader.arr(doc.get("links", []), links_at)):
        at = join(links_at, i)
        entry = reader.obj(raw, at)
        local = reader.text(entry, "localIP", at)
        remote = reader.text(entry, "remoteIP", at)
        cost, props = _json_cost(reader, entry, at, "linkCost")
        b.local.append((local, remote, cost, props))

    hna_at = join(prefix, "hna")
    for i, raw in enumerate(reader.arr(doc.get("hna", []), hna_at)):
        at = join(hna_at, i)
        entry = reader.obj(raw, at)
        dest = reader.text(entry, "destination", at)
        mask = entry.get("genmask", entry.get("netmask"))
        gateway = reader.text(entry, "gateway", at)
        b.hna.append((f"{dest}/{mask}" if mask is not None else dest, gateway))
    return b.build(topo)


def _json_cost(
    reader: JsonReader, entry: dict[str, Any], at: str, key: str
) -> tuple[float, dict[str, Any]]:
    props: dict[str, Any] = {}
    lq = entry.get("linkQuality")
    nlq = entry.get("neighborLinkQuality")
    if lq is not None:
        props["lq"] = reader.as_number(lq, join(at, "linkQuality"))
    if nlq is not None:
        props["nlq"] = reader.as_number(nlq, join(at, "neighborLinkQuality"))
    if key in entry:
        raw = entry[key]
        if isinstance(raw, str) and raw.strip().lower() in ("infinite", "inf", "infinity"):
            return float("inf"), props
        value = reader.as_number(raw, join(at, key))
        return reader.convert(_costs.olsr1_cost, join(at, key), value, lq, nlq), props
    if "lq" in props and "nlq" in props:
        product = props["lq"] * props["nlq"]
        if not 0 <= product <= 1:
            reader.fail(join(at, "linkQuality"), "LQ and NLQ must be in [0, 1]")
        return (float("inf") if product == 0 else 1.0 / product), props
    reader.fail(join(at, key), "missing (and no linkQuality/neighborLinkQuality to derive it)")


# -- txtinfo --------------------------------------------------------------------


def _column(header: list[str], *names: str) -> int | None:
    for i, col in enumerate(header):
        low = col.strip().lower()
        if any(low.startswith(n) for n in names):
            return i
    return None


def load_txtinfo(text: str, path: str) -> Topology:
    """Parse olsrd txtinfo output (``/all``, ``/topology``...): ``Table:`` blocks."""
    topo = Topology(protocol="OLSR", metric="ETX")
    b = _Builder()
    lines = text.splitlines()
    table: str | None = None
    header: list[str] | None = None
    seen_table = False
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        match = _TABLE.match(stripped)
        if match:
            table, header, seen_table = match.group(1).strip().lower(), None, True
            continue
        if not stripped:
            continue
        if table is None:
            if stripped.startswith(("HTTP/", "Content-", "Date:", "Server:", "Connection:")):
                continue  # an HTTP header from `wget -S` or `curl -i`
            raise TopologyFormatError(
                path,
                FORMAT_TXT,
                f"line {lineno}",
                f"text before the first 'Table:' line: {clip(stripped)}",
            )
        cells = [c.strip() for c in re.split(r"\t+| {2,}", stripped)]
        if header is None:
            header = cells
            continue
        if table == "topology":
            b.tc.append(_txt_edge(path, lineno, header, cells, ("dest",), ("last hop",)))
        elif table == "links":
            b.local.append(_txt_edge(path, lineno, header, cells, ("local ip",), ("remote ip",)))
        elif table == "mid":
            main = cells[0]
            aliases = re.split(r"[;\s,]+", " ".join(cells[1:])) if len(cells) > 1 else []
            b.add_mid(main, [a for a in aliases if a])
        elif table == "hna" and len(cells) >= 2:
            b.hna.append((cells[0], cells[1]))
    if not seen_table:
        raise TopologyFormatError(path, FORMAT_TXT, "line 1", "no 'Table:' line")
    # Topology rows are "Dest. IP, Last hop IP": the TC edge goes last hop -> destination.
    b.tc = [(last, dest, cost, props) for dest, last, cost, props in b.tc]
    return b.build(topo)


def _txt_edge(
    path: str,
    lineno: int,
    header: list[str],
    cells: list[str],
    first: tuple[str, ...],
    second: tuple[str, ...],
) -> tuple[str, str, float, dict[str, Any]]:
    where = f"line {lineno}"
    i = _column(header, *first)
    j = _column(header, *second)
    c = _column(header, "cost", "etx")
    lq_i = _column(header, "lq")
    nlq_i = _column(header, "nlq", "ilq")
    i = 0 if i is None else i
    j = 1 if j is None else j
    c = len(header) - 1 if c is None else c
    if max(i, j, c) >= len(cells):
        raise TopologyFormatError(
            path, FORMAT_TXT, where, f"expected {len(header)} columns, got {len(cells)}"
        )
    props: dict[str, Any] = {}
    try:
        cost = _costs.olsr1_etx_cost(cells[c])
        for key, idx in (("lq", lq_i), ("nlq", nlq_i)):
            if idx is not None and idx < len(cells) and idx != c:
                props[key] = float(cells[idx])
    except ValueError as exc:
        raise TopologyFormatError(path, FORMAT_TXT, where, str(exc)) from None
    return cells[i], cells[j], cost, props


# -- dot_draw -------------------------------------------------------------------

_DOT_EDGE = re.compile(r'^"([^"]+)"\s*->\s*"([^"]+)"\s*(?:\[(.*)\])?\s*;?$')
_DOT_NODE = re.compile(r'^"([^"]+)"\s*(?:\[(.*)\])?\s*;?$')
_DOT_ATTR = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s\]]+))')
_DOT_SKIP = re.compile(
    r"^((strict\s+)?digraph\b.*|\{|\}|(graph|node|edge)\s*\[.*\]\s*;?|//.*|#.*)$"
)


def load_dot(text: str, path: str) -> Topology:
    """Parse the olsrd dot_draw plugin's Graphviz digraph."""
    topo = Topology(protocol="OLSR", metric="ETX")
    prefixes: set[str] = set()
    edges: list[tuple[int, str, str, str | None]] = []
    routers: list[str] = []
    started = False
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if _DOT_SKIP.match(stripped):
            started = started or stripped.startswith(("digraph", "strict"))
            continue
        if not started:
            raise TopologyFormatError(path, FORMAT_DOT, f"line {lineno}", "expected 'digraph'")
        match = _DOT_EDGE.match(stripped)
        if match:
            attrs = _attrs(match.group(3))
            edges.append((lineno, match.group(1), match.group(2), attrs.get("label")))
            continue
        match = _DOT_NODE.match(stripped)
        if match:
            attrs = _attrs(match.group(2))
            if attrs.get("shape") == "diamond":
                prefixes.add(match.group(1))
            else:
                routers.append(match.group(1))
            continue
        raise TopologyFormatError(
            path, FORMAT_DOT, f"line {lineno}", f"not a dot_draw node or edge: {clip(stripped)}"
        )
    if not started:
        raise TopologyFormatError(path, FORMAT_DOT, "line 1", "expected 'digraph'")
    hna: list[tuple[str, str]] = []
    for _lineno, source, target, label in edges:
        if label == "HNA" or target in prefixes:
            hna.append((target, source))
    hna_targets = {t for t, _ in hna}
    for router in routers:
        if router not in hna_targets:
            topo.add_node(router)
    for lineno, source, target, label in edges:
        if label == "HNA" or target in prefixes:
            continue
        if source == target:
            count(topo, "self_loops")
            continue
        count(topo, "records")
        try:
            cost = _costs.olsr1_etx_cost(label) if label is not None else 1.0
        except ValueError as exc:
            raise TopologyFormatError(path, FORMAT_DOT, f"line {lineno}", str(exc)) from None
        previous = topo.observations(source, target).get("import")
        if previous is not None:
            count(topo, "duplicates")
            if previous <= cost:
                continue
        topo.add_link(source, target, cost, cost_text=label or "")
    for prefix, gateway in hna:
        node = topo.add_node(gateway)
        node.properties["prefixes"] = sorted({*node.properties.get("prefixes", []), prefix})
        if prefix in ("0.0.0.0/0", "::/0"):
            node.properties["gateway"] = True
    return topo


def _attrs(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    return {
        m.group(1): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _DOT_ATTR.finditer(text)
    }
