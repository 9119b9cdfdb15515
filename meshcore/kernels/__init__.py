"""The five hot paths of meshcore, compiled or pure, behind one import.

This is the one place that chooses a backend. Everything else imports from
here, never from ``_*_c`` or ``_*_py`` directly.

* ``BACKEND`` is ``"compiled"`` when the Cython extensions loaded and
  ``"pure"`` when the pure-Python twins are in use (no wheel for this CPU, a
  build without a compiler, or ``MESHCORE_PURE=1`` in the environment).
* The twins are the executable specification: same names, same signatures,
  same exceptions and byte-identical results. The compiled modules are loaded
  all five or none, so a partial build never mixes backends.

See ``docs/kernels.md`` for the algorithms, bit layouts and wire formats.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from ._chunking import Chunk, blake2b_256
from ._drr_common import BACKGROUND, INTERACTIVE, ON_DEMAND
from ._graph import CostGraph, ShortestPaths

__all__ = [
    "BACKEND",
    "BACKGROUND",
    "INTERACTIVE",
    "ON_DEMAND",
    "AdaptiveTinyLFU",
    "BloomFilter",
    "Chunk",
    "Chunker",
    "CostGraph",
    "DRRScheduler",
    "FrequencySketch",
    "RouteTable",
    "ShortestPaths",
    "all_pairs_costs",
    "blake2b_256",
    "chunk_fingerprints",
    "cut_points",
    "key_hash",
    "shortest_paths",
]


def _pure_requested() -> bool:
    return os.environ.get("MESHCORE_PURE", "").strip().lower() not in ("", "0", "false", "no")


if TYPE_CHECKING or _pure_requested() or sys.implementation.name != "cpython":
    from ._bloom_py import BloomFilter
    from ._cache_py import AdaptiveTinyLFU, FrequencySketch, key_hash
    from ._chunker_py import Chunker, chunk_fingerprints, cut_points
    from ._drr_py import DRRScheduler
    from ._routes_py import RouteTable, all_pairs_costs, shortest_paths

    BACKEND = "pure"
else:
    try:
        from ._bloom_c import BloomFilter
        from ._cache_c import AdaptiveTinyLFU, FrequencySketch, key_hash
        from ._chunker_c import Chunker, chunk_fingerprints, cut_points
        from ._drr_c import DRRScheduler
        from ._routes_c import RouteTable, all_pairs_costs, shortest_paths

        BACKEND = "compiled"
    except ImportError:
        from ._bloom_py import BloomFilter
        from ._cache_py import AdaptiveTinyLFU, FrequencySketch, key_hash
        from ._chunker_py import Chunker, chunk_fingerprints, cut_points
        from ._drr_py import DRRScheduler
        from ._routes_py import RouteTable, all_pairs_costs, shortest_paths

        BACKEND = "pure"
