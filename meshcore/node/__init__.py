"""The asyncio node driver: real sockets, real disk and the real clock around the cores.

* :mod:`.udp` — :class:`UdpDriver`, multicast and unicast discovery on real sockets.
* :mod:`.babeld` — :class:`BabeldClient`, the babeld local-interface adapter with backoff.
* :mod:`.daemon` — :class:`NodeDaemon`, what ``meshcore node run`` runs.

See docs/node.md.
"""

from .babeld import BabeldClient, BabeldUnavailableError, fetch_topology
from .daemon import NodeDaemon, NodeSettings
from .udp import UdpDriver

__all__ = [
    "BabeldClient",
    "BabeldUnavailableError",
    "NodeDaemon",
    "NodeSettings",
    "UdpDriver",
    "fetch_topology",
]
