"""Node cache (sans-I/O): popularity sketch, admission/eviction, retention, freshness.

* :class:`FrequencySketch` — aging count-min sketch with a TinyLFU doorkeeper.
* :func:`make_policy` — eviction policies over a byte budget (``"default"``:
  size-aware TinyLFU; ``"default-bytes"``; ``"lru"``; ``"wtinylfu"``), all with the same
  ``request(key, size) -> bool`` interface.
* :class:`ContentCache` — the node's cache core: byte budget, chunk refcounts,
  pins, expiry, last-replica protection; returns effects
  (:class:`StoreChunk`, :class:`FreeChunk`, :class:`Evicted`, ...).
* :func:`evaluate` / :class:`Freshness` — HTTP freshness (RFC 9111).

See ``docs/cache.md``.
"""

from __future__ import annotations

from ._cache import (
    ContentCache,
    Effect,
    Evicted,
    FreeChunk,
    ItemRejected,
    ItemStored,
    PinnedOverBudget,
    StoreChunk,
)
from ._freshness import Freshness, evaluate, parse_cache_control, parse_http_date, refresh
from ._policies import (
    POLICIES,
    ByteHitTinyLFUPolicy,
    CachePolicy,
    LRUPolicy,
    SizeAwareTinyLFUPolicy,
    WTinyLFUPolicy,
    make_policy,
)
from ._sketch import FrequencySketch, key_hash

__all__ = [
    "POLICIES",
    "ByteHitTinyLFUPolicy",
    "CachePolicy",
    "ContentCache",
    "Effect",
    "Evicted",
    "FreeChunk",
    "FrequencySketch",
    "Freshness",
    "ItemRejected",
    "ItemStored",
    "LRUPolicy",
    "PinnedOverBudget",
    "SizeAwareTinyLFUPolicy",
    "StoreChunk",
    "WTinyLFUPolicy",
    "evaluate",
    "key_hash",
    "make_policy",
    "parse_cache_control",
    "parse_http_date",
    "refresh",
]
