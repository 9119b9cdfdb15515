"""Local network intelligence: discovery, link quality, topology, routes (issue 4).

* :mod:`.discovery` — :class:`Discovery`, the sans-I/O discovery core: HMAC
  beacons on each segment, peer exchange beyond it, the peer table.
* :mod:`.topology` — :class:`Topology`, one graph merged from the node's own
  observations, peers' gossip and routing-daemon imports.
* :mod:`.importers` — :func:`import_topology` for Babel, OLSR, batman-adv,
  NetJSON, meshviewer, 802.11s, bmx6 and CNML outputs.
* :mod:`.netjson` — NetJSON NetworkGraph export and import.
* :mod:`.routing` — :class:`Routes`: costs, next hops, locality tiers and
  local-first source selection with failover.

See docs/net/.
"""

from .discovery import (
    Discovery,
    DiscoverySettings,
    DiscoveryStats,
    Peer,
    PeerChanged,
    PeerJoined,
    PeerLeft,
    PeerTable,
    SendMulticast,
    SendUnicast,
)
from .importers import FORMATS, detect_format, import_topology
from .netjson import dumps, from_netjson, to_netjson
from .routing import Failover, Holder, RankedHolder, Routes, Tier
from .topology import Link, LinkChange, Node, Topology, TopologyDiff

__all__ = [
    "FORMATS",
    "Discovery",
    "DiscoverySettings",
    "DiscoveryStats",
    "Failover",
    "Holder",
    "Link",
    "LinkChange",
    "Node",
    "Peer",
    "PeerChanged",
    "PeerJoined",
    "PeerLeft",
    "PeerTable",
    "RankedHolder",
    "Routes",
    "SendMulticast",
    "SendUnicast",
    "Tier",
    "Topology",
    "TopologyDiff",
    "detect_format",
    "dumps",
    "from_netjson",
    "import_topology",
    "to_netjson",
]
