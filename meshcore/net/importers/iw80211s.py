"""802.11s importer: ``iw dev <if> mpath dump`` and ``iw dev <if> station dump`` text.

An 802.11s mesh routes in the Wi-Fi driver (HWMP, IEEE 802.11-2016 section
14.10) with the *airtime* link metric. ``iw`` shows one station's view:

``mpath dump``
    A header row (``DEST ADDR  NEXT HOP  IFACE  SN  METRIC  QLEN  EXPTIME
    DTIM  DRET  FLAGS [HOP_COUNT  PATH_CHANGE]``) then one row per mesh
    path. A path whose destination is its own next hop is a direct link
    ``self -> dest`` with cost ``METRIC / 152``
    (:func:`meshcore.net._costs.airtime_cost`: 152 is mac80211's metric of a
    loss-free 54 Mbit/s link). Other destinations become nodes with the
    properties ``nexthop``, ``path_cost`` and ``hop_count`` (when printed).
``station dump``
    ``Station <mac> (on <if>)`` blocks of ``key: value`` lines. Each peer with
    ``mesh plink: ESTAB`` (or no plink line) is a direct link ``self ->
    peer`` costing ``54 / expected throughput`` (Mbit/s), or
    ``54 / tx bitrate`` when the driver reports no expected throughput;
    a peer link in any other state is broken (``inf``). ``signal`` and the
    rates are kept as link properties.

Both dumps may be concatenated in one file; a direct link seen in both takes
the airtime metric of the mpath dump (the metric HWMP itself uses). ``iw``
does not print the local MAC, so the local station is the node ``"self"``
(:data:`SELF`) unless an ``addr <mac>`` line (from ``iw dev``) names it;
``meshcore topology import --self ID`` renames it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from meshcore.errors import TopologyFormatError
from meshcore.net import _costs
from meshcore.net.importers._common import clip, count
from meshcore.net.topology import Topology

__all__ = ["FORMAT", "SELF", "detect", "load"]

FORMAT = "iw80211s"
SELF = "self"

_MAC = r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}"
_STATION = re.compile(r"^Station\s+(" + _MAC + r")\s*(?:\(on\s+([^)]+)\))?")
_MPATH_HEADER = re.compile(r"^DEST\s+ADDR\s+NEXT\s+HOP", re.IGNORECASE)
_ADDR = re.compile(r"^\s*addr\s+(" + _MAC + r")\s*$")
_RATE = re.compile(r"([0-9.]+)\s*M[Bb]it/s|([0-9.]+)\s*Mbps")


def detect(head: str) -> bool:
    """True for ``iw`` mpath or station dump text."""
    for line in head.splitlines()[:50]:
        stripped = line.strip()
        if _MPATH_HEADER.match(stripped) or _STATION.match(stripped):
            return True
    return False


def _rate(value: str) -> float | None:
    match = _RATE.search(value)
    if not match:
        return None
    return float(match.group(1) or match.group(2))


def load(text: str, path: str) -> Topology:
    """Parse mpath and/or station dump text of one mesh station."""
    lines = text.splitlines()
    me = SELF
    for line in lines:
        match = _ADDR.match(line)
        if match:
            me = match.group(1).lower()
            break
    topo = Topology(protocol="802.11s", metric="airtime", router_id=me)
    topo.add_node(me)
    mpath: dict[str, tuple[float, dict[str, Any]]] = {}
    stations: dict[str, tuple[float, dict[str, Any]]] = {}
    remote: dict[str, dict[str, Any]] = {}
    header: list[str] | None = None
    station: str | None = None
    found = False
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped:
            continue
        if _MPATH_HEADER.match(stripped):
            header = [h.upper() for h in re.split(r"\t+|\s{2,}", stripped)]
            station, found = None, True
            continue
        match = _STATION.match(stripped)
        if match:
            station, header, found = match.group(1).lower(), None, True
            stations[station] = (float("inf"), {"interface": (match.group(2) or "").strip()})
            continue
        if station is not None and ":" in stripped:
            key, _, value = stripped.partition(":")
            _station_field(stations, station, key.strip().lower(), value.strip())
            continue
        if header is not None:
            _mpath_row(path, lineno, header, stripped, mpath, remote)
            continue
        if _ADDR.match(line) or stripped.startswith(("Interface", "ifindex", "wdev", "type")):
            continue
        raise TopologyFormatError(
            path, FORMAT, f"line {lineno}", f"not an iw mpath/station dump line: {clip(stripped)}"
        )
    if not found:
        raise TopologyFormatError(path, FORMAT, "line 1", "no mpath header or Station block")
    links: dict[str, tuple[float, dict[str, Any]]] = {}
    for mac, (_cost, props) in stations.items():
        rate = props.get("expected_throughput") or props.get("tx_bitrate")
        if props.get("plink", "ESTAB") != "ESTAB":
            cost = math.inf
        elif rate:
            cost = _costs.throughput_cost(rate)
        else:
            cost = 1.0
        links[mac] = (cost, props)
    for mac, (cost, props) in mpath.items():
        links[mac] = (cost, {**links.get(mac, (0, {}))[1], **props})
    for mac, (cost, props) in links.items():
        if mac == me:
            continue
        count(topo, "records")
        topo.observe(me, mac, cost, properties=props)
    for mac, props in remote.items():
        if mac not in links and mac != me:
            topo.add_node(mac, **props)
    return topo


def _station_field(
    stations: dict[str, tuple[float, dict[str, Any]]], mac: str, key: str, value: str
) -> None:
    cost, props = stations[mac]
    if key == "mesh plink":
        props["plink"] = value.split()[0] if value else ""
    elif key == "signal":
        props["signal"] = value
    elif key in ("tx bitrate", "rx bitrate", "expected throughput"):
        rate = _rate(value)
        if rate is not None:
            props[key.replace(" ", "_")] = rate
    stations[mac] = (cost, props)


def _mpath_row(
    path: str,
    lineno: int,
    header: list[str],
    line: str,
    mpath: dict[str, tuple[float, dict[str, Any]]],
    remote: dict[str, dict[str, Any]],
) -> None:
    cells = line.split()
    where = f"line {lineno}"
    if len(cells) < 5 or not re.fullmatch(_MAC, cells[0]) or not re.fullmatch(_MAC, cells[1]):
        raise TopologyFormatError(path, FORMAT, where, f"not an mpath row: {clip(line)}")
    col = {name: i for i, name in enumerate(header)}
    dest, nexthop = cells[0].lower(), cells[1].lower()
    metric_i = col.get("METRIC", 4)
    try:
        metric = int(cells[metric_i])
        cost = _costs.airtime_cost(metric)
    except (ValueError, IndexError):
        raise TopologyFormatError(
            path, FORMAT, where, f"METRIC: expected an integer in column {metric_i + 1}"
        ) from None
    props: dict[str, Any] = {"metric": metric}
    hop_i = col.get("HOP_COUNT")
    if hop_i is not None and hop_i < len(cells) and cells[hop_i].isdigit():
        props["hop_count"] = int(cells[hop_i])
    if dest == nexthop:
        old = mpath.get(dest)
        if old is None or cost < old[0]:
            mpath[dest] = (cost, props)
    else:
        remote[dest] = {"nexthop": nexthop, "path_cost": cost, **props}
