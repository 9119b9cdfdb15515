"""The asyncio node driver: real sockets, real disk and the real clock around the cores.

* :mod:`.udp` — :class:`UdpDriver`, multicast and unicast discovery on real sockets.
* :mod:`.babeld` — :class:`BabeldClient`, the babeld local-interface adapter with backoff.
* :mod:`.daemon` — :class:`NodeDaemon`, what ``meshcore node run`` runs.

See docs/node.md.
"""

from meshcore._lazy import lazy_exports

# Loaded on first use (meshcore/_lazy.py): importing the package stays cheap.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".babeld": ("BabeldClient", "BabeldUnavailableError", "fetch_topology"),
        ".daemon": ("NodeDaemon", "NodeSettings"),
        ".udp": ("UdpDriver",),
    },
)
