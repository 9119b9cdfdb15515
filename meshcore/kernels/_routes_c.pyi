# Type stub of the compiled routes kernel (ext/routes.pyx): it has exactly the API of its pure
# twin, whose annotations are the types (docs/stability.md: the kernel API is stable).

from ._routes_py import RouteTable as RouteTable
from ._routes_py import all_pairs_costs as all_pairs_costs
from ._routes_py import shortest_paths as shortest_paths

__all__ = ["RouteTable", "all_pairs_costs", "shortest_paths"]
