"""FrequencySketch: count-min estimates, doorkeeper, aging, top items, bounds."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.cache import FrequencySketch, key_hash


def test_key_hash_is_stable_and_typed():
    # Pinned values: two nodes must place a key in the same sketch cells on any machine.
    # Integers use the SplitMix64 finaliser: key_hash(k * golden) is the (k+1)-th output
    # of Vigna's splitmix64.c seeded with 0, the published reference sequence.
    gamma = 0x9E3779B97F4A7C15
    assert key_hash(0) == 0xE220A8397B1DCDAF
    assert key_hash(gamma) == 0x6E789E6AA1B965F4
    assert key_hash((2 * gamma) % 2**64) == 0x06C45D188009454F
    # str and bytes use XXH3-64 (seed 0): the empty input's value is the spec's test vector.
    assert key_hash(b"") == 0x2D06800538D394C2
    assert key_hash("a") == 0xE6C632B61E964E1F
    assert key_hash(-5) == 0x16B1CBA95FC60262  # negatives wrap modulo 2**64 as on 32-bit ARM
    assert key_hash("é") == key_hash("é".encode()) == 0xF7940A006CF10CB3
    assert key_hash("a") == key_hash(b"a")  # str hashes its UTF-8 bytes
    assert key_hash(b"a") == key_hash(bytearray(b"a"))
    assert key_hash(True) == key_hash(1)
    assert key_hash(1) != key_hash(2)
    assert 0 <= key_hash(-5) < 2**64
    with pytest.raises(TypeError, match="key: expected int, str or bytes, got float"):
        key_hash(1.5)


def test_unseen_key_estimates_zero_and_doorkeeper_absorbs_first_access():
    s = FrequencySketch(256)
    assert s.estimate("never") == 0
    assert s.increment("k") == 1
    assert s.estimate("k") == 1
    assert s.increment("k") == 2
    assert s.estimate("k") == 2
    # The first access only set the doorkeeper: the counters hold 1, which
    # aging halves to 0 (had the first access counted, 2 would halve to 1).
    s.reset()
    assert s.estimate("k") == 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=400))
def test_estimate_never_below_true_count_before_aging(keys):
    s = FrequencySketch(512, max_count=255, sample_size=10**6)
    for k in keys:
        s.increment(k)
    for k, n in Counter(keys).items():
        assert s.estimate(k) >= min(n, 256)


def test_counters_saturate_at_max_count():
    s = FrequencySketch(64, max_count=15, sample_size=10**6)
    for _ in range(100):
        s.increment("hot")
    assert s.estimate("hot") == 16  # 15 in the counters + 1 in the doorkeeper


def test_aging_halves_counts_and_clears_doorkeeper():
    s = FrequencySketch(64, sample_size=40, max_count=255)
    for _ in range(20):
        s.increment("a")
    before = s.estimate("a")
    assert before == 20
    for i in range(20):
        s.increment(("b", i)[1] + 1000)
    assert s.resets == 1
    after = s.estimate("a")
    assert after == (before - 1) // 2  # counters halved, doorkeeper bit gone


def test_estimates_are_accurate_on_zipf():
    rng = random.Random(7)
    s = FrequencySketch(4096, max_count=255, sample_size=10**7)
    weights = [1 / (i + 1) for i in range(2000)]
    keys = rng.choices(range(2000), weights=weights, k=20000)
    true = Counter(keys)
    for k in keys:
        s.increment(k)
    errors = [s.estimate(k) - min(true[k], 256) for k in range(100)]
    assert min(errors) >= 0
    assert sum(errors) / len(errors) < 2.0


def test_top_reports_heavy_hitters_in_order():
    rng = random.Random(3)
    s = FrequencySketch(1024, top_k=8, max_count=255, sample_size=10**6)
    stream = [0] * 50 + [1] * 40 + [2] * 30 + [rng.randrange(10, 5000) for _ in range(500)]
    rng.shuffle(stream)
    for k in stream:
        s.increment(k)
    top = s.top(3)
    assert [k for k, _ in top] == [0, 1, 2]
    assert top[0][1] >= 50
    assert len(s.top(100)) <= 8
    assert s.top(0) == []
    with pytest.raises(ValueError, match="n: expected an integer >= 0"):
        s.top(-1)


def test_top_survives_aging_and_clear():
    s = FrequencySketch(16, top_k=2, sample_size=20)
    for _ in range(5):
        for k in ("a", "a", "a", "b", "c"):
            s.increment(k)
    assert s.resets >= 1
    assert s.top(1)[0][0] == "a"
    s.clear()
    assert s.top(5) == []
    assert s.estimate("a") == 0
    s2 = FrequencySketch(16, top_k=0)
    s2.increment("x")
    assert s2.top(5) == []


def test_memory_is_bounded_by_configuration():
    s = FrequencySketch(1000, depth=4)
    assert s.width == 1024
    assert s.depth == 4
    assert s.sample_size == 10240
    assert s.memory_bytes == 4 * 1024 + 1024 // 4
    for i in range(50000):
        s.increment(i)
    assert s.memory_bytes == 4 * 1024 + 1024 // 4
    assert FrequencySketch(1).width == 16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "width: expected an integer >= 1, got 0"),
        ({"depth": 0}, "depth: expected an integer >= 1, got 0"),
        ({"depth": 9}, "depth: expected an integer between 1 and 8, got 9"),
        ({"top_k": -1}, "top_k: expected an integer >= 0, got -1"),
        ({"sample_size": 0}, "sample_size: expected an integer >= 1, got 0"),
        ({"max_count": 256}, "max_count: expected an integer between 1 and 255, got 256"),
        ({"width": True}, "width: expected an integer >= 1, got True"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FrequencySketch(**kwargs)


def test_grow_keeps_every_estimate():
    rng = random.Random(1)
    s = FrequencySketch(64, max_count=255, sample_size=10**6)
    keys = [rng.randrange(500) for _ in range(3000)]
    for k in keys:
        s.increment(k)
    before = {k: s.estimate(k) for k in range(600)}
    s.grow(1000, sample_size=5000)
    assert s.width == 1024
    assert s.sample_size == 5000
    assert s.memory_bytes == 4 * 1024 + 1024 // 4
    assert {k: s.estimate(k) for k in range(600)} == before
    s.grow(1024)
    assert s.sample_size == 10240
    with pytest.raises(ValueError, match="width: expected at least the current 1024, got 512"):
        s.grow(512)
