"""Eviction policies: the shared contract, LRU order, size-aware TinyLFU admission."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.cache import POLICIES, LRUPolicy, make_policy

NAMES = sorted(POLICIES)


def _zipf(n_objects, n_requests, alpha, seed):
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** alpha for i in range(n_objects)]
    return rng.choices(range(n_objects), weights=weights, k=n_requests)


def _hit_ratio(policy, keys, sizes=None):
    hits = 0
    for k in keys:
        hits += policy.request(k, 1 if sizes is None else sizes[k])
    return hits / len(keys)


@pytest.mark.parametrize("name", NAMES)
def test_contract_basics(name):
    p = make_policy(name, 100)
    assert p.capacity_bytes == 100
    assert p.used_bytes == 0
    assert len(p) == 0
    assert p.request("a", 10) is False
    assert "a" in p
    assert p.request("a", 10) is True
    assert p.used_bytes == 10
    assert len(p) == 1
    assert p.size_of("a") == 10
    assert list(p) == ["a"]
    assert p.remove("a") is True
    assert p.remove("a") is False
    assert "a" not in p
    assert p.used_bytes == 0


@pytest.mark.parametrize("name", NAMES)
def test_object_larger_than_capacity_is_never_admitted(name):
    p = make_policy(name, 100)
    p.request("small", 10)
    assert p.request("huge", 101) is False
    assert p.request("huge", 101) is False
    assert "huge" not in p
    assert "small" in p


@pytest.mark.parametrize("name", NAMES)
def test_size_change_is_a_miss_and_reaccounted(name):
    p = make_policy(name, 100)
    p.request("a", 10)
    assert p.request("a", 30) is False
    assert p.used_bytes == p.size_of("a") == 30 or "a" not in p


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [-1, 1.5, "3", True, None])
def test_bad_sizes_raise(name, size):
    p = make_policy(name, 100)
    with pytest.raises(ValueError, match="size: expected an integer >= 0"):
        p.request("a", size)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_integer_sizes_are_accepted(name):
    p = make_policy(name, 100)
    p.request(1, np.int64(7))
    assert p.used_bytes == 7


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None)
@given(
    cap=st.integers(0, 200),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 30), st.integers(0, 120)), max_size=200),
)
def test_budget_never_exceeded_and_accounting_is_exact(name, cap, ops):
    evicted = []
    p = make_policy(name, cap, on_evict=evicted.append)
    sizes = {}
    for is_remove, key, size in ops:
        if is_remove:
            assert p.remove(key) == (key in sizes)
            sizes.pop(key, None)
        else:
            p.request(key, size)
            if key in p:
                sizes[key] = size
            else:
                sizes.pop(key, None)
            for k in evicted:
                assert k not in p
                sizes.pop(k, None)
            evicted.clear()
        assert p.used_bytes <= p.capacity_bytes
        assert set(sizes) == set(p)
        assert p.used_bytes == sum(sizes.values())
        assert len(p) == len(sizes)


@pytest.mark.parametrize("name", NAMES)
def test_resize_evicts_and_reports(name):
    evicted = []
    p = make_policy(name, 100, on_evict=evicted.append)
    for k in range(10):
        p.request(k, 10)
        p.request(k, 10)
    p.resize(35)
    assert p.used_bytes <= 35
    assert len(evicted) >= 7
    assert all(k not in p for k in evicted)
    p.resize(0)
    assert p.used_bytes == 0
    with pytest.raises(ValueError, match="capacity_bytes: expected an integer >= 0, got -1"):
        p.resize(-1)


def test_lru_evicts_least_recently_used():
    evicted = []
    p = LRUPolicy(3, on_evict=evicted.append)
    for k in "abc":
        p.request(k, 1)
    p.request("a", 1)
    p.request("d", 1)
    assert evicted == ["b"]
    assert set(p) == {"a", "c", "d"}


def test_default_rejects_one_hit_wonders_and_keeps_popular():
    p = make_policy("default", 10)
    for _ in range(5):
        for k in range(10):
            p.request(k, 1)
    scan = range(1000, 1100)
    for k in scan:
        p.request(k, 1)
    assert set(range(10)) <= set(p)
    assert p.rejections >= 90


def test_default_huge_object_must_beat_combined_frequency():
    # The duel rule alone: no admission window (the climber would open one).
    p = make_policy("default", 1000, window=0.0, adaptive=False)
    for _ in range(3):
        for k in range(100):
            p.request(k, 10)  # 100 pages of 10 bytes, each seen 3 times
    # A 700-byte "video" seen a few times is less popular than the 70 pages it
    # would displace together: it stays out.
    for _ in range(5):
        assert p.request("video", 700) is False
    assert "video" not in p
    assert len(p) == 100
    # A page-sized newcomer that is hotter than one victim gets in.
    for _ in range(6):
        p.request("hot-page", 10)
    assert "hot-page" in p


def test_default_admits_huge_object_more_popular_than_its_victims_together():
    evicted = []
    p = make_policy("default", 1000, on_evict=evicted.append)
    for k in range(10):
        p.request(k, 100)  # ten cold 100-byte objects fill the cache
    for _ in range(9):
        p.request("video", 700)
    assert "video" in p
    assert p.used_bytes <= 1000
    assert len([k for k in evicted if k != "video"]) == 7


def test_default_small_newcomer_displaces_a_big_cold_object():
    p = make_policy("default", 1000, window=0.0, adaptive=False)
    p.request("big", 900)
    p.request("big", 900)
    p.request("page", 200)  # seen once, but far more hits per byte than "big"
    assert "page" in p
    assert "big" not in p
    # A newcomer with fewer hits per byte than every resident is refused at once.
    for k in range(8):
        for _ in range(3):
            p.request(k, 10)
    before = p.rejections
    p.request("cold-video", 900)
    assert "cold-video" not in p
    assert p.rejections == before + 1


def test_default_evicts_big_cold_objects_before_small_popular_ones():
    p = make_policy("default", 100)
    p.request("big", 60)
    for _ in range(4):
        for k in range(4):
            p.request(k, 10)
    assert "big" in p
    for _ in range(3):
        p.request("new", 10)
    assert "new" in p
    assert "big" not in p
    assert all(k in p for k in range(4))


def test_wtinylfu_segments_promote_and_demote():
    p = make_policy("wtinylfu", 100, window=0.1, protected=0.5)
    for k in range(20):
        p.request(k, 5)
    for k in range(20):
        p.request(k, 5)
    assert p.used_bytes <= 100
    assert p._protected_bytes <= p._protected_cap
    p.resize(50)
    assert p.used_bytes <= 50


@pytest.mark.parametrize(("alpha", "frac"), [(0.8, 0.01), (1.0, 0.05)])
def test_default_beats_lru_on_zipf(alpha, frac):
    keys = _zipf(5000, 60000, alpha, seed=11)
    cap = int(5000 * frac)
    lru = _hit_ratio(make_policy("lru", cap), keys)
    ours = _hit_ratio(make_policy("default", cap), keys)
    assert ours > lru + 0.03


def test_default_beats_lru_on_variable_sizes():
    rng = random.Random(5)
    sizes = {k: max(1, int(rng.lognormvariate(8, 1.5))) for k in range(3000)}
    keys = _zipf(3000, 40000, 0.8, seed=5)
    cap = sum(sizes.values()) // 20
    lru = _hit_ratio(make_policy("lru", cap), keys, sizes)
    ours = _hit_ratio(make_policy("default", cap), keys, sizes)
    assert ours > lru + 0.05


def test_default_bytes_trades_object_hits_for_byte_hits():
    rng = random.Random(9)
    sizes = {k: max(100, int(rng.lognormvariate(10.4, 2.0))) for k in range(3000)}
    keys = _zipf(3000, 40000, 0.8, seed=9)
    cap = sum(sizes.values()) // 20

    def ratios(policy):
        hits = hit_bytes = 0
        for k in keys:
            if policy.request(k, sizes[k]):
                hits += 1
                hit_bytes += sizes[k]
        return hits / len(keys), hit_bytes / sum(sizes[k] for k in keys)

    lru = ratios(make_policy("lru", cap))
    adaptive_bytes = ratios(make_policy("default-bytes", cap))
    assert adaptive_bytes[1] > lru[1] + 0.03
    # The trade itself, without the climber moving the window under it.
    fixed = {"window": 0.0, "adaptive": False}
    objects = ratios(make_policy("default", cap, **fixed))
    byte_tuned = ratios(make_policy("default-bytes", cap, **fixed))
    assert objects[0] > byte_tuned[0] and objects[0] > lru[0]
    assert byte_tuned[1] > objects[1] and byte_tuned[1] > lru[1]
    half = ratios(make_policy("default", cap, size_exponent=0.5, **fixed))
    assert byte_tuned[0] < half[0] < objects[0]


def test_sketch_grows_with_the_cache_and_keys_of_all_types_work():
    p = make_policy("default", 10000)
    for k in range(500):
        p.request(k, 1)
    assert p.sketch.width >= 8 * 500
    for k in ("s", b"b", 3):
        p.request(k, 1)
        assert k in p
    with pytest.raises(TypeError, match="key: expected int, str or bytes"):
        p.request(1.5, 1)


def test_window_variant_of_default():
    p = make_policy("default", 1000, window=0.05)
    for k in range(300):
        p.request(k % 120, 10)
    assert p.used_bytes <= 1000
    p.resize(500)
    assert p.used_bytes <= 500


def test_make_policy_errors():
    with pytest.raises(
        ValueError,
        match=r"policy: unknown name 'belady'; known policies: "
        r"default, default-bytes, lru, wtinylfu",
    ):
        make_policy("belady", 10)
    with pytest.raises(ValueError, match="capacity_bytes: expected an integer >= 0, got -1"):
        make_policy("lru", -1)
    with pytest.raises(ValueError, match="policy 'lru': bad parameters"):
        make_policy("lru", 10, window=0.1)
    for bad in (
        {"window": 1.0},
        {"sketch_factor": 0},
        {"size_exponent": 1.5},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            make_policy("default", 10, **bad)
    for bad in ({"window": -0.1}, {"protected": 2}, {"sketch_factor": 0}, {"sample": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            make_policy("wtinylfu", 10, **bad)


@pytest.mark.parametrize("name", ["default", "wtinylfu"])
def test_window_hits_removal_and_shrinking(name):
    evicted = []
    p = make_policy(name, 1000, window=0.2, on_evict=evicted.append)
    p.request("w", 50)
    assert p.request("w", 50) is True  # a hit while still in the window
    assert p.remove("w") is True
    assert p.used_bytes == 0
    for k in range(40):
        p.request(k, 40)
        p.request(k, 40)
    # the window (20% of 1000 bytes: five 40-byte objects) holds the five latest keys
    assert [p.request(k, 40) for k in range(35, 40)] == [True] * 5
    p.resize(100)
    assert p.used_bytes <= 100
    p.resize(0)
    assert p.used_bytes == 0 and len(p) == 0
    assert all(k not in p for k in evicted)


def test_wtinylfu_protected_hits_and_sketch_growth():
    p = make_policy("wtinylfu", 500)
    for _ in range(3):
        for k in range(200):
            p.request(k, 1)
    assert p.sketch.width >= 8 * 200
    hits = sum(p.request(k, 1) for k in range(200))
    assert hits == 200


def test_default_bad_sample_factor():
    with pytest.raises(ValueError, match="sample_factor: expected an integer >= 1, got 0"):
        make_policy("default", 10, sample_factor=0)
