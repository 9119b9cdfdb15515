"""A downstream mesh project using meshcore's kernels as a primitive library."""

from __future__ import annotations

import numpy as np

from meshcore import kernels
from meshcore.kernels import (
    AdaptiveTinyLFU,
    BloomFilter,
    Chunker,
    CostGraph,
    DRRScheduler,
    FrequencySketch,
    RouteTable,
    all_pairs_costs,
    blake2b_256,
    chunk_fingerprints,
    cut_points,
    key_hash,
    shortest_paths,
)


def summary(keys: list[bytes]) -> bytes:
    bf = BloomFilter(len(keys) + 1, 0.01)
    bf.add_many(keys)
    return bf.to_bytes()


def names(data: bytes) -> list[bytes]:
    chunker = Chunker(4096, 16384, 65536)
    out = [c.fingerprint or b"" for c in chunker.feed(data)]
    out += [c.fingerprint or b"" for c in chunker.finish()]
    ends: np.ndarray = cut_points(data)
    _, fps = chunk_fingerprints(data)
    assert len(ends) == len(fps)
    return [*out, blake2b_256(data)]


def cache_hits(requests: list[tuple[int, int]]) -> float:
    cache = AdaptiveTinyLFU(1 << 20, weighting="bytes")
    hits = sum(cache.request(key, size) for key, size in requests)
    sketch: FrequencySketch = cache.sketch
    top: list[tuple[object, int]] = sketch.top(3)
    return hits / max(1, len(requests)) + len(top) * 0.0 + key_hash(1) * 0.0


def schedule() -> int:
    s = DRRScheduler(1500)
    s.enqueue(1, 100, 1500)
    item = s.dequeue()
    return 0 if item is None else 1


def routes() -> float:
    g = CostGraph.from_edges(3, [0, 1], [1, 2], [1.0, 2.0])
    sp = shortest_paths(g, 0)
    table = RouteTable(g)
    costs = all_pairs_costs(g)
    extra = len(kernels.BACKEND) * 0.0 + len(repr(table)) * 0.0
    return float(sp.cost[2]) + float(costs[0][2]) + extra


if __name__ == "__main__":
    print(len(names(b"x" * 100_000)), cache_hits([(1, 10), (1, 10)]), schedule(), routes())
    print(len(summary([b"a"])))
