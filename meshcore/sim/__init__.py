"""The discrete-event simulator that hosts meshcore's sans-I/O policy cores.

``engine`` (clock and event queue), ``network`` (links, segments, routing,
partitions), ``hosts`` (a core on a node), ``generators`` (topologies) and
``scenarios`` (runs and metrics). See ``docs/sim.md``.
"""

from .engine import Simulator, Timer
from .generators import (
    add_clients,
    chain,
    clusters_with_bridge,
    from_topology,
    grid,
    random_geometric,
    router_id,
)
from .hosts import CoreHost
from .network import Addr, NodeCounters, SimLink, SimNetwork
from .scenarios import Scenario, all_know, converged, discovery_factory, knows, start_discovery

__all__ = [
    "Addr",
    "CoreHost",
    "NodeCounters",
    "Scenario",
    "SimLink",
    "SimNetwork",
    "Simulator",
    "Timer",
    "add_clients",
    "all_know",
    "chain",
    "clusters_with_bridge",
    "converged",
    "discovery_factory",
    "from_topology",
    "grid",
    "knows",
    "random_geometric",
    "router_id",
    "start_discovery",
]
