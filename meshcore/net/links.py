"""The one :class:`LinkChange`: a link's cost moved, whoever noticed it.

The topology diff (:meth:`meshcore.net.topology.Topology.diff`), the routing
daemon's view in the node daemon (babeld cost changes), discovery's link
quality (ETX) and the analytics collector all speak of link changes with this
one type. Costs are on the ETX-like scale of ``docs/net/topology.md`` (1 is
a perfect link; ``math.inf`` a lost one); ``old_cost`` is ``math.nan`` when
the link was not known before.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshcore.core import Fact

__all__ = ["LinkChange"]


@dataclass(frozen=True, slots=True)
class LinkChange(Fact):
    """The link ``source -> target`` changed cost from ``old_cost`` to ``new_cost``."""

    source: str
    target: str
    old_cost: float
    new_cost: float
