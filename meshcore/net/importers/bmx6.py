"""bmx6 importer: link lists of bmx6 nodes (qMp / guifi.net).

bmx6 (https://github.com/bmx-routing/bmx6) measures each link's receive and
transmit rate in percent (100 = no loss). Two layouts are read:

* a list of nodes ``[{"name": N, "links": [{"name": M, "rxRate", "txRate"}]}]``
  (openwisp/netdiff, built from several nodes' ``bmx6 -c links`` JSON);
* one node's ``{"links": [...]}`` (the json plugin's ``links`` file), whose
  own name is ``"name"`` when present and ``"self"`` otherwise.

Link ``N -> M`` costs ``100 / txRate`` as N reports it for M (N is the
authority on its own transmissions); when N does not list M but M lists N,
``100 / rxRate`` from M's entry is used (M receives what N sends). A rate of
0 is a broken direction. Names are node ids as written (a typo in a name
makes a separate node, as in the netdiff sample).
"""

from __future__ import annotations

from typing import Any

from meshcore.net import _costs
from meshcore.net.importers._common import JsonReader, count, join, parse_json
from meshcore.net.topology import Topology

__all__ = ["FORMAT", "detect", "load"]

FORMAT = "bmx6"


def detect(head: str) -> bool:
    """True for JSON with bmx6 ``rxRate``/``txRate`` link entries."""
    stripped = head.lstrip()
    return stripped.startswith(("[", "{")) and '"rxRate"' in head and '"txRate"' in head


def load(text: str, path: str) -> Topology:
    """Parse a bmx6 node list or one node's links document."""
    reader = JsonReader(path, FORMAT)
    data = parse_json(text, path, FORMAT)
    if isinstance(data, dict):
        name = data.get("name") or "self"
        entries: list[Any] = [{"name": name, "links": data.get("links")}]
        base = ""
    else:
        entries = reader.arr(data, "$")
        base = "$"
    topo = Topology(protocol="bmx6", metric="rate")
    tx: dict[tuple[str, str], float] = {}
    rx: dict[tuple[str, str], float] = {}
    for i, raw in enumerate(entries):
        at = join(base, i) if base else ""
        entry = reader.obj(raw, at or "$")
        name = reader.text(entry, "name", at)
        topo.add_node(name)
        links_at = join(at, "links")
        for k, lraw in enumerate(reader.arr(entry.get("links"), links_at)):
            lat = join(links_at, k)
            link = reader.obj(lraw, lat)
            other = reader.text(link, "name", lat)
            count(topo, "records")
            if other == name:
                count(topo, "self_loops")
                continue
            tx_cost = reader.convert(
                _costs.bmx6_rate_cost, join(lat, "txRate"), reader.number(link, "txRate", lat)
            )
            rx_cost = reader.convert(
                _costs.bmx6_rate_cost, join(lat, "rxRate"), reader.number(link, "rxRate", lat)
            )
            tx[(name, other)] = min(tx_cost, tx.get((name, other), tx_cost))
            rx[(other, name)] = min(rx_cost, rx.get((other, name), rx_cost))
    for (s, t), cost in tx.items():
        topo.add_link(s, t, cost)
    for (s, t), cost in rx.items():
        if (s, t) not in tx:
            topo.add_link(s, t, cost)
    return topo
