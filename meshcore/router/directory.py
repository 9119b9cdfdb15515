"""A plain directory of who holds what: the stand-in until cache coordination lands.

:class:`Directory` maps an item key to the routers that hold it and to its
size. Routers report what they hold as :class:`~meshcore.router.events.Holding`
facts; whoever hosts the directory applies them (:meth:`Directory.apply`).
In the simulator one directory is shared by every router, so it is exact and
free (the *oracle* the coordinated cache is measured against); in a daemon
without coordination it knows only the node itself. Cache coordination
(Bloom summaries exchanged between routers, ``docs/cache/coordination.md``)
answers the same two questions, :meth:`holders` and :meth:`size`, from what
peers advertise.
"""

from __future__ import annotations

from collections.abc import Hashable

from .events import Holding

__all__ = ["Directory"]


class Directory:
    """Who holds which item, and its size (see the module docstring)."""

    __slots__ = ("_holders", "_sizes")

    def __init__(self) -> None:
        self._holders: dict[Hashable, set[str]] = {}
        self._sizes: dict[Hashable, int] = {}

    def apply(self, fact: Holding) -> None:
        """Record a :class:`Holding` fact."""
        if fact.held:
            self._holders.setdefault(fact.key, set()).add(fact.node)
            if fact.size:
                self._sizes[fact.key] = fact.size
            return
        holders = self._holders.get(fact.key)
        if holders is not None:
            holders.discard(fact.node)
            if not holders:
                del self._holders[fact.key]

    def holders(self, key: Hashable) -> list[str]:
        """The routers holding ``key``, sorted (empty when none)."""
        return sorted(self._holders.get(key, ()))

    def size(self, key: Hashable) -> int | None:
        """The size of ``key`` in bytes, when any holder reported it."""
        return self._sizes.get(key)

    def forget_node(self, node: str) -> int:
        """Drop every entry of ``node`` (it left the mesh); returns how many went."""
        gone = 0
        for key in [k for k, h in self._holders.items() if node in h]:
            self.apply(Holding(node, key, False))
            gone += 1
        return gone

    def __len__(self) -> int:
        return len(self._holders)
