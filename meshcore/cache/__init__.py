"""Node cache (sans-I/O): popularity sketch, admission/eviction, retention, freshness.

* :class:`FrequencySketch` — aging count-min sketch with a TinyLFU doorkeeper.
* :func:`make_policy` — eviction policies over a byte budget (``"default"``:
  size-aware TinyLFU; ``"default-bytes"``; ``"lru"``; ``"wtinylfu"``), all with the same
  ``request(key, size) -> bool`` interface.
* :class:`ContentCache` — the node's cache core: byte budget, chunk refcounts,
  pins, expiry, last-replica protection; returns effects
  (:class:`StoreChunk`, :class:`FreeChunk`, :class:`Evicted`, ...).
* :func:`evaluate` / :class:`Freshness` — HTTP freshness (RFC 9111).
* Trace generators and libCacheSim trace readers (:func:`zipf_trace`,
  :func:`read_csv_trace`, ...) and :func:`replay`, which measures object and
  byte hit ratios of any policy (see ``docs/cache_harness.md``).

See ``docs/cache.md``.
"""

from __future__ import annotations

from ._cache import (
    STAGING_SHARE,
    ContentCache,
    Effect,
    Evicted,
    FreeChunk,
    ItemRejected,
    ItemStored,
    Lookup,
    LookupResult,
    Offer,
    Pin,
    PinnedOverBudget,
    Remove,
    SetBudget,
    StoreChunk,
    Unpin,
    cache_budget,
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
from ._replay import HitStats, replay, replay_many
from ._sketch import FrequencySketch, key_hash
from ._traces import (
    Request,
    TraceBlock,
    ZipfSampler,
    daily_blocks,
    daily_trace,
    lognormal_blocks,
    lognormal_sizes,
    lognormal_trace,
    read_csv_trace,
    read_plain_trace,
    requests_from_blocks,
    scan_blocks,
    scan_trace,
    zipf_blocks,
    zipf_trace,
)

__all__ = [
    "POLICIES",
    "STAGING_SHARE",
    "ByteHitTinyLFUPolicy",
    "CachePolicy",
    "ContentCache",
    "Effect",
    "Evicted",
    "FreeChunk",
    "FrequencySketch",
    "Freshness",
    "HitStats",
    "ItemRejected",
    "ItemStored",
    "LRUPolicy",
    "Lookup",
    "LookupResult",
    "Offer",
    "Pin",
    "PinnedOverBudget",
    "Remove",
    "Request",
    "SetBudget",
    "SizeAwareTinyLFUPolicy",
    "StoreChunk",
    "TraceBlock",
    "Unpin",
    "WTinyLFUPolicy",
    "ZipfSampler",
    "cache_budget",
    "daily_blocks",
    "daily_trace",
    "evaluate",
    "key_hash",
    "lognormal_blocks",
    "lognormal_sizes",
    "lognormal_trace",
    "make_policy",
    "parse_cache_control",
    "parse_http_date",
    "read_csv_trace",
    "read_plain_trace",
    "refresh",
    "replay",
    "replay_many",
    "requests_from_blocks",
    "scan_blocks",
    "scan_trace",
    "zipf_blocks",
    "zipf_trace",
]
