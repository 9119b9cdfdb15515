"""Trace replay and hit statistics (meshcore.cache._replay)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.cache._replay import HitStats, replay, replay_many
from meshcore.cache._traces import Request, lognormal_trace, zipf_trace


class TinyLRU:
    """The smallest policy honouring the contract: byte-budgeted LRU, no oversize admits."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self.used_bytes = 0
        self._items: OrderedDict = OrderedDict()

    def request(self, key, size: int) -> bool:
        if key in self._items:
            self._items.move_to_end(key)
            return True
        if size > self.capacity_bytes:
            return False
        while self.used_bytes + size > self.capacity_bytes:
            _, old = self._items.popitem(last=False)
            self.used_bytes -= old
        self._items[key] = size
        self.used_bytes += size
        return False

    def __contains__(self, key) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def remove(self, key) -> bool:
        size = self._items.pop(key, None)
        if size is None:
            return False
        self.used_bytes -= size
        return True


class Leaky(TinyLRU):
    """A broken policy: never evicts."""

    def request(self, key, size: int) -> bool:
        if key in self._items:
            return True
        self._items[key] = size
        self.used_bytes += size
        return False


def test_counts_hits_and_bytes():
    trace = [("a", 10), ("b", 20), ("a", 10), ("c", 30), ("b", 20), ("a", 10)]
    stats = replay(TinyLRU(60), trace)
    # a miss, b miss, a hit, c miss (60 used), b hit, a hit
    assert stats == HitStats(requests=6, hits=3, bytes_requested=100, bytes_hit=40)
    assert stats.object_hit_ratio == 0.5
    assert stats.byte_hit_ratio == 0.4
    assert stats.object_miss_ratio == 0.5
    assert stats.byte_miss_ratio == pytest.approx(0.6)


def test_lru_known_answer_with_eviction():
    # capacity 2 unit objects: a b c a -> a was evicted by c, so all misses
    assert replay(TinyLRU(2), [(k, 1) for k in "abca"]).hits == 0
    assert replay(TinyLRU(3), [(k, 1) for k in "abca"]).hits == 1


def test_oversized_objects_are_never_hits():
    stats = replay(TinyLRU(5), [("big", 6), ("big", 6), ("s", 5), ("s", 5)])
    assert stats.hits == 1 and stats.bytes_hit == 5 and stats.bytes_requested == 22


def test_warmup_requests_are_replayed_but_not_counted():
    trace = [("a", 1), ("b", 1), ("a", 1), ("b", 1)]
    stats = replay(TinyLRU(2), trace, warmup=2)
    assert stats == HitStats(2, 2, 2, 2, warmup_requests=2)
    assert stats.object_hit_ratio == 1.0
    # warm-up longer than the trace: nothing counted, ratios are 0.0
    short = replay(TinyLRU(2), trace, warmup=10)
    assert short == HitStats(0, 0, 0, 0, warmup_requests=4)
    assert short.object_hit_ratio == 0.0 and short.byte_hit_ratio == 0.0
    assert replay(TinyLRU(2), [], warmup=3) == HitStats(0, 0, 0, 0, 0)


@pytest.mark.parametrize("warmup", [-1, 1.5, True, "3"])
def test_bad_warmup(warmup):
    with pytest.raises(ValueError, match="warmup: expected an integer >= 0"):
        replay(TinyLRU(2), [], warmup=warmup)
    with pytest.raises(ValueError, match="warmup: expected an integer >= 0"):
        replay_many({"lru": TinyLRU(2)}, [], warmup=warmup)


@pytest.mark.parametrize("size", [-1, 1.0, "1", None, True])
def test_bad_sizes_name_the_request(size):
    trace = [("a", 1), ("b", size)]
    with pytest.raises(ValueError, match=r"trace\[1\]: size: expected an integer >= 0"):
        replay(TinyLRU(2), trace)
    with pytest.raises(ValueError, match=r"trace\[1\]: size: expected an integer >= 0"):
        replay_many({"x": TinyLRU(2)}, trace)


def test_numpy_integer_sizes_and_request_tuples():
    trace = [Request(np.int64(1), np.int32(3), 0.0), Request(np.int64(1), np.int64(3), 1.0)]
    stats = replay(TinyLRU(10), trace)
    assert stats.hits == 1 and stats.bytes_hit == 3 and type(stats.bytes_hit) is int


def test_check_budget_catches_a_leaky_policy():
    trace = [(k, 4) for k in "abc"]
    assert replay(Leaky(10), trace).requests == 3  # unchecked: not noticed
    with pytest.raises(RuntimeError, match="policy Leaky holds 12 bytes after request 2, over"):
        replay(Leaky(10), trace, check_budget=True)
    with pytest.raises(RuntimeError, match="policy 'bad' holds 12 bytes after request 2"):
        replay_many({"ok": TinyLRU(10), "bad": Leaky(10)}, trace, check_budget=True)
    assert replay(TinyLRU(10), trace, check_budget=True).hits == 0


def test_replay_consumes_a_generator_once():
    gen = zipf_trace(np.random.default_rng(1), 100, 5000, 1.0)
    stats = replay(TinyLRU(20), gen)
    assert stats.requests == 5000
    assert replay(TinyLRU(20), gen).requests == 0  # exhausted


def test_replay_many_equals_separate_replays():
    trace = list(
        lognormal_trace(np.random.default_rng(3), 300, 5000, 0.9, median_size=100, sigma=1.0)
    )
    total = sum({r.key: r.size for r in trace}.values())
    capacities = {"small": total // 50, "mid": total // 10, "big": total // 3}
    together = replay_many(
        {n: TinyLRU(c) for n, c in capacities.items()}, iter(trace), warmup=100, check_budget=True
    )
    for name, cap in capacities.items():
        assert together[name] == replay(TinyLRU(cap), trace, warmup=100)
    assert together["small"].byte_hit_ratio < together["mid"].byte_hit_ratio
    assert together["mid"].byte_hit_ratio < together["big"].byte_hit_ratio


def test_zipf_hit_ratio_grows_with_cache_and_alpha():
    def ohr(alpha, cap):
        trace = zipf_trace(np.random.default_rng(0), 2000, 20_000, alpha)
        return replay(TinyLRU(cap), trace).object_hit_ratio

    assert ohr(0.8, 20) < ohr(0.8, 200) < ohr(0.8, 1000)
    assert ohr(0.6, 200) < ohr(1.0, 200) < ohr(1.2, 200)


def test_works_with_make_policy_when_available():
    make_policy = pytest.importorskip("meshcore.cache").make_policy
    trace = list(
        lognormal_trace(np.random.default_rng(5), 500, 5000, 0.9, median_size=1000, sigma=2.0)
    )
    for name in ("lru", "default"):
        policy = make_policy(name, 50_000)
        stats = replay(policy, trace, check_budget=True)
        assert 0 < stats.hits < stats.requests
    # make_policy's LRU agrees with the reference LRU, request by request
    assert replay(make_policy("lru", 50_000), trace) == replay(TinyLRU(50_000), trace)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 15), st.integers(0, 12)), max_size=60),
    st.integers(0, 40),
    st.integers(0, 70),
)
def test_stats_invariants(trace, capacity, warmup):
    stats = replay(TinyLRU(capacity), trace, warmup=warmup, check_budget=True)
    counted = trace[warmup:]
    assert stats.requests == len(counted)
    assert stats.bytes_requested == sum(s for _, s in counted)
    assert 0 <= stats.hits <= stats.requests
    assert 0 <= stats.bytes_hit <= stats.bytes_requested
    assert stats.warmup_requests == min(warmup, len(trace))
    assert 0.0 <= stats.object_hit_ratio <= 1.0 and 0.0 <= stats.byte_hit_ratio <= 1.0
    # a first access is never a hit, so hits <= requests - first accesses counted
    seen = {k for k, _ in trace[:warmup]}
    first = 0
    for k, _ in counted:
        if k not in seen:
            first += 1
            seen.add(k)
    assert stats.hits <= stats.requests - first


# ---------------------------------------------------------------------------
# The benchmark's offline references (bench/bench_cache.py) against brute force:
# Belady's MIN must be optimal for unit sizes, every offline replay feasible
# (<= the optimum), and the PFOO-U bound >= the optimum.


def _bench_module():
    import sys
    from pathlib import Path

    bench = str(Path(__file__).resolve().parent.parent / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    import bench_cache

    return bench_cache


def _as_bench_trace(bc, pairs):
    keys = np.array([k for k, _ in pairs], dtype=np.int64)
    sizes = np.array([s for _, s in pairs], dtype=np.int64)
    return bc.Trace("t", keys, sizes, bc.next_use(keys), "", 0, keys.tolist(), sizes.tolist())


def _optimum(pairs, capacity):
    """Most hits and most bytes hit of any schedule (evict anything, any time; bypass)."""
    from functools import cache
    from itertools import combinations

    sizes = dict(pairs)

    @cache
    def best(i, held):
        if i == len(pairs):
            return (0, 0)
        key, size = pairs[i]
        used = sum(sizes[k] for k in held)
        options = []
        if key in held:
            hit = (1, size)
            for r in range(len(held) + 1):  # keep it, drop any subset of the others
                for drop in combinations(sorted(held - {key}), r):
                    rest = best(i + 1, held - frozenset(drop))
                    options.append((hit[0] + rest[0], hit[1] + rest[1]))
            return tuple(max(o[j] for o in options) for j in (0, 1))
        for r in range(len(held) + 1):
            for drop in combinations(sorted(held), r):
                kept = held - frozenset(drop)
                options.append(best(i + 1, kept))  # bypass
                if used - sum(sizes[k] for k in drop) + size <= capacity:
                    options.append(best(i + 1, kept | {key}))
        return tuple(max(o[j] for o in options) for j in (0, 1))

    return best(0, frozenset())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=11), st.integers(1, 3))
def test_bench_belady_is_optimal_for_unit_sizes(keys, capacity):
    bc = _bench_module()
    pairs = [(k, 1) for k in keys]
    hits, _ = _optimum(tuple(pairs), capacity)
    tr = _as_bench_trace(bc, pairs)
    assert bc.belady_furthest(tr, capacity)[0] == hits
    assert bc.upper_bound(tr, capacity).ohr * len(pairs) >= hits - 1e-9


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=9), st.integers(2, 9))
def test_bench_size_aware_replays_are_feasible_and_bounded(keys, capacity):
    bc = _bench_module()
    size_of = {0: 1, 1: 2, 2: 3, 3: 5, 4: 2}
    pairs = [(k, size_of[k]) for k in keys]
    hits, bytes_hit = _optimum(tuple(pairs), capacity)
    tr = _as_bench_trace(bc, pairs)
    for replay_fn in (bc.belady_furthest, bc.belady_size_weighted):
        h, b = replay_fn(tr, capacity)
        assert h <= hits and b <= bytes_hit
    bound = bc.upper_bound(tr, capacity)
    assert bound.ohr * len(pairs) >= hits - 1e-9
    assert bound.bhr * sum(s for _, s in pairs) >= bytes_hit - 1e-9
    # and every online policy stays below the optimum too
    stats = replay(TinyLRU(capacity), pairs)
    assert stats.hits <= hits and stats.bytes_hit <= bytes_hit
