"""The cache core's durable driver: the chunk store and the catalog.

One storage model (``docs/architecture.md``): the cache core
(:class:`~meshcore.cache.ContentCache`, inside the node's
:class:`~meshcore.router.Router`) decides what this node keeps: one byte
budget, one pin and expiry system, one popularity sketch. The chunk store and
the catalog are its durable driver:

* **at start** they tell the cache what is on disk
  (:meth:`ContentStorage.items`): every complete item, most accessed first,
  as an :class:`~meshcore.router.events.ItemPublished` whose retention comes
  from the distribution policy (:func:`~meshcore.content.distribution.evaluate`):
  ``KEEP`` pins it (until the placement's end), this node's own
  publications are pinned (the mesh may hold no other copy), ``MAY_EVICT``
  competes in the cache policy (and may be refused admission), ``MUST_NOT_STORE``
  is removed;
* **while running** they carry out the cache's decisions
  (:meth:`ContentStorage.apply`): an :class:`~meshcore.cache.Evicted` item,
  or one the cache refused (:class:`~meshcore.cache.ItemRejected`), leaves the
  catalog with its manifest and every chunk no other item lists
  (under the catalog's intent marker, so a crash never resurrects it or
  leaves it half there); a :class:`~meshcore.cache.FreeChunk` for a chunk no
  catalog item lists (a staged chunk the cache did not keep) is deleted;
  a :class:`~meshcore.cache.StoreChunk` is checked against the store (a chunk
  the catalog lists but the store lost is marked missing for a re-fetch).

The store's own byte limit (``[content] budget``) is the disk's hard stop;
the cache's budget is that limit less a staging reserve for chunks in flight
(:func:`meshcore.cache.cache_budget`), so the cache, not the store, decides what goes, and a
fetch never finds the disk full because the cache filled it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..cache import Evicted, FreeChunk, ItemRejected, StoreChunk
from ..router.events import ItemPublished
from .distribution import Action
from .node import ContentNode

__all__ = ["ContentStorage"]

class ContentStorage:
    """The durable driver of one node's cache core, over its :class:`ContentNode`."""

    def __init__(self, node: ContentNode, *, node_id: str) -> None:
        self.node = node
        self.node_id = node_id
        self.removed = 0
        self.freed = 0
        self.lost = 0

    def items(self, *, wall: float, known_nodes: Iterable[str] = ()) -> list[ItemPublished]:
        """What is on disk, as events for the cache; items that must go are removed here.

        ``wall`` is calendar seconds (placements and expiry are calendar
        decisions); ``known_nodes`` feeds ``replicate:k`` placement.
        """
        catalog = self.node.catalog
        records = catalog.items(complete_only=True)
        records.sort(key=lambda r: (-catalog.access_count(r.content_id)[0], r.content_id))
        known = tuple(known_nodes)
        out = []
        for rec in records:
            place = self.node.placement(rec.content_id, now=wall, node_id=self.node_id,
                                        known_nodes=known)
            if place.action is Action.MUST_NOT_STORE:
                self.node._remove(rec.content_id)
                self.removed += 1
                continue
            pin = rec.origin or place.action is Action.KEEP
            until = None if rec.origin else place.pinned_until
            out.append(ItemPublished(rec.content_id, tuple(catalog.chunks_of(rec.content_id)),
                                     pin=pin, expires_at=rec.expires, pin_until=until))
        return out

    def apply(self, effects: Iterable[Any]) -> None:
        """Carry out the cache's commands in ``effects`` (other effects are ignored).

        Evictions are done first, whole items at a time, so a chunk is only
        ever deleted once no catalog item lists it.
        """
        frees = []
        catalog = self.node.catalog
        for e in effects:
            kind = type(e)
            if kind is Evicted or kind is ItemRejected:
                rec = catalog.get(e.key) if isinstance(e.key, bytes) else None
                if rec is not None and not rec.origin:
                    self.node._remove(rec.content_id)
                    self.removed += 1
            elif kind is FreeChunk:
                frees.append(e)
            elif (kind is StoreChunk and not self.node.store.has(e.digest)
                  and catalog.chunk_state(e.digest) is not None):
                self.node._lost(e.digest, "missing from the store when the cache kept it")
                self.lost += 1
        for e in frees:
            if catalog.chunk_state(e.digest) is None and self.node.store.has(e.digest):
                self.node.store.delete(e.digest)
                self.freed += 1
