"""The one vocabulary of locality: :class:`Tier`, nearest first.

Routes decide a holder's tier (:meth:`meshcore.net.routing.Routes.tier`), the
distribution policies compare a node's tier with ``push-tier``'s scope, and
analytics counts where each request's bytes came from. All three use this
enum. Its ``label`` is the spelling of config files, NetJSON and docs
(``"same-segment"``); :attr:`Tier.served_from` is the coarse group the
analytics rollups keep one column for (:data:`SERVED_FROM`), so a year of
rollups stays small:

================  ============  ===================================
tier              served_from   meaning
================  ============  ===================================
LOCAL             local         this node itself
SAME_SEGMENT      segment       a node on one of this node's L2 segments
ONE_HOP           mesh          a direct mesh neighbour
MULTI_HOP         mesh          further inside the mesh
BEYOND_GATEWAY    mesh          through a gateway, VPN or tunnel link
EXTERNAL          external      the internet, over a gateway's uplink
UNREACHABLE       (none)        no path
================  ============  ===================================

Tiers are never decided from addresses: a multi-hop ``10.x`` mesh is all
private and still not local (see ``docs/net/routing.md``).
"""

from __future__ import annotations

import enum

__all__ = ["SERVED_FROM", "Tier"]

#: Analytics groups of tiers, nearest first (rollup columns ``req_<group>``).
SERVED_FROM = ("local", "segment", "mesh", "external")


class Tier(enum.IntEnum):
    """How local a node (or a request's source) is, nearest first."""

    LOCAL = 0
    SAME_SEGMENT = 1
    ONE_HOP = 2
    MULTI_HOP = 3
    BEYOND_GATEWAY = 4
    EXTERNAL = 5
    UNREACHABLE = 6

    @property
    def label(self) -> str:
        """The config and NetJSON spelling: ``"same-segment"``, ``"one-hop"``..."""
        return self.name.lower().replace("_", "-")

    @property
    def served_from(self) -> str:
        """The analytics group (:data:`SERVED_FROM`); ValueError for UNREACHABLE."""
        group = _GROUPS[self]
        if group is None:
            raise ValueError("tier: nothing is served from an unreachable node")
        return group

    @classmethod
    def parse(cls, value: object) -> Tier:
        """A Tier from a Tier, its label (``"one-hop"``) or its name (``"ONE_HOP"``).

        Raises TypeError for another type, ValueError (listing the labels) for
        an unknown name.
        """
        if isinstance(value, Tier):
            return value
        if isinstance(value, enum.Enum):  # a caller's own enum: its name, else a str value
            if value.name.upper() in cls.__members__ or not isinstance(value.value, str):
                value = value.name
            else:
                value = value.value
        if not isinstance(value, str):
            raise TypeError(f"tier: expected a Tier or a string, got {type(value).__name__}")
        key = value.strip().upper().replace("-", "_")
        member = cls.__members__.get(key)
        if member is None:
            labels = ", ".join(t.label for t in cls)
            raise ValueError(f"tier: expected one of {labels}, got {value!r}")
        return member


_GROUPS = {
    Tier.LOCAL: "local",
    Tier.SAME_SEGMENT: "segment",
    Tier.ONE_HOP: "mesh",
    Tier.MULTI_HOP: "mesh",
    Tier.BEYOND_GATEWAY: "mesh",
    Tier.EXTERNAL: "external",
    Tier.UNREACHABLE: None,
}
