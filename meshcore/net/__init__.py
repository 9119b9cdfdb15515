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

from meshcore._lazy import lazy_exports

# Loaded on first use (meshcore/_lazy.py): importing the package stays cheap.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".discovery": (
            "Discovery",
            "DiscoverySettings",
            "DiscoveryStats",
            "Peer",
            "PeerChanged",
            "PeerJoined",
            "PeerLeft",
            "PeerTable",
            "SendMulticast",
            "SendUnicast",
        ),
        ".importers": ("FORMATS", "detect_format", "import_topology"),
        ".netjson": ("dumps", "from_netjson", "to_netjson"),
        ".routing": ("Failover", "Holder", "RankedHolder", "Routes", "Tier"),
        ".topology": ("Link", "LinkChange", "Node", "Topology", "TopologyDiff"),
    },
)
