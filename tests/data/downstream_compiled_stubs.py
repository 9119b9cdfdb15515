"""Names taken from the compiled modules directly type-check through their stubs."""

from __future__ import annotations

from meshcore.kernels._bloom_c import BloomFilter
from meshcore.kernels._cache_c import AdaptiveTinyLFU, FrequencySketch
from meshcore.kernels._chunker_c import cut_points
from meshcore.kernels._drr_c import DRRScheduler
from meshcore.kernels._routes_c import shortest_paths

policy: AdaptiveTinyLFU = AdaptiveTinyLFU(100)
hit: bool = policy.request("k", 1)
sketch: FrequencySketch = policy.sketch
count: int = sketch.estimate("k")
names = (BloomFilter, cut_points, DRRScheduler, shortest_paths)
