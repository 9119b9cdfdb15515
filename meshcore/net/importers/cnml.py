"""guifi.net CNML importer (Community Network Markup Language, XML).

CNML (https://guifi.net/en/node/3413) describes a zone: ``<node id title
lat lon status>`` elements holding ``<device>`` → ``<radio>`` →
``<interface ipv4 mac>`` and, under an interface, ``<link id
linked_device_id linked_node_id linked_interface_id link_type
link_status>``. A link is written under both of its interfaces, so one
link id usually appears twice.

Mapping: a node per ``<node>`` (id = the guifi node id, label = ``title``,
properties ``status``, ``location``); a link id joins the node holding the
element and ``linked_node_id``, in both directions, cost ``1.0`` (CNML has no
quality metric), properties ``type`` (wds, ap/client, cable), ``status`` and
``link_id``. Only links whose status is in :data:`DEFAULT_STATUSES`
(``Working``) are taken by default, as netdiff does: planned or inactive
links carry no traffic. :func:`load_cnml` takes other statuses. A
linked node outside the file (another zone) becomes a node of its own
(counted in ``stats["implicit_nodes"]``).

Safety: the XML is parsed by the standard library's expat-based
``xml.etree.ElementTree`` after refusing any document type declaration, so
entity expansion attacks ("billion laughs", external entities) cannot
happen; CNML exports never carry a DTD. Elements nested deeper than
:data:`MAX_DEPTH` are refused (a 200,000-deep file is no zone tree, and was
read as an empty one).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from meshcore.errors import TopologyFormatError
from meshcore.net.importers._common import count
from meshcore.net.topology import Topology

__all__ = ["DEFAULT_STATUSES", "FORMAT", "detect", "load", "load_cnml"]

FORMAT = "cnml"
DEFAULT_STATUSES = frozenset({"Working"})
#: Deepest element nesting accepted (guifi's zone trees are about ten deep).
MAX_DEPTH = 256

_DOCTYPE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def detect(head: str) -> bool:
    """True for an XML document whose root element is ``<cnml``."""
    return re.match(r"\s*(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*<cnml\b", head, re.DOTALL) is not None


def _parse_bounded(text: str, path: str) -> ET.Element:
    """Parse with a bound on element depth: a file nested 200,000 levels deep
    is not a zone tree (real ones are about ten deep), and must not pass as a
    valid CNML with no nodes."""
    parser = ET.XMLPullParser(events=("start", "end"))
    depth = 0
    root: ET.Element | None = None
    step = 1 << 16
    for offset in range(0, len(text), step):
        parser.feed(text[offset:offset + step])
        for event, element in parser.read_events():
            if event == "start":
                depth += 1
                if root is None:
                    root = element
                if depth > MAX_DEPTH:
                    raise TopologyFormatError(
                        path, FORMAT, f"element <{element.tag[:40]}>",
                        f"nested more than {MAX_DEPTH} elements deep")
            else:
                depth -= 1
    parser.close()
    for _event, _element in parser.read_events():
        pass
    if root is None:
        raise ET.ParseError("no element found")
    return root


def load(text: str, path: str) -> Topology:
    """Parse CNML keeping ``Working`` links only."""
    return load_cnml(text, path)


def load_cnml(text: str, path: str, *, statuses: Iterable[str] = DEFAULT_STATUSES) -> Topology:
    """Parse CNML keeping links whose ``link_status`` is in ``statuses``."""
    match = _DOCTYPE.search(text)
    if match:
        line = text.count("\n", 0, match.start()) + 1
        raise TopologyFormatError(
            path, FORMAT, f"line {line}", "document type declarations and entities are refused"
        )
    try:
        root = _parse_bounded(text, path)
    except ET.ParseError as exc:
        lineno, column = exc.position
        raise TopologyFormatError(
            path, FORMAT, f"line {lineno} column {column + 1}", f"invalid XML: {exc.msg}"
        ) from None
    if root.tag != "cnml":
        raise TopologyFormatError(
            path, FORMAT, "line 1", f"root element is <{root.tag}>, not <cnml>"
        )
    wanted = set(statuses)
    topo = Topology(protocol="cnml", version=root.get("version"), metric="hop", label="guifi.net")
    pending: list[tuple[str, str, dict[str, Any]]] = []
    for node in root.iter("node"):
        node_id = node.get("id")
        if not node_id:
            raise TopologyFormatError(path, FORMAT, "node", "a <node> has no id attribute")
        props: dict[str, Any] = {}
        if node.get("status"):
            props["status"] = node.get("status")
        lat, lon = node.get("lat"), node.get("lon")
        try:
            if lat is not None and lon is not None:
                props["location"] = {"latitude": float(lat), "longitude": float(lon)}
        except ValueError:
            raise TopologyFormatError(
                path, FORMAT, f"node[@id={node_id}]", f"bad lat/lon {lat!r}, {lon!r}"
            ) from None
        topo.update_node(node_id, label=node.get("title"), properties=props)
        for link in node.iter("link"):
            count(topo, "records")
            other = link.get("linked_node_id")
            link_id = link.get("id")
            if not other or not link_id:
                raise TopologyFormatError(
                    path,
                    FORMAT,
                    f"node[@id={node_id}]/link",
                    "a <link> needs id and linked_node_id attributes",
                )
            status = link.get("link_status", "")
            if status not in wanted:
                count(topo, "skipped_status")
                continue
            pending.append(
                (
                    node_id,
                    other,
                    {"type": link.get("link_type", ""), "status": status, "link_id": link_id},
                )
            )
    for source, target, props in pending:
        if source == target:
            count(topo, "self_loops")
            continue
        if target not in topo.nodes:
            count(topo, "implicit_nodes")
        topo.observe(source, target, 1.0, properties=props)
        topo.observe(target, source, 1.0, properties=props)
    return topo
