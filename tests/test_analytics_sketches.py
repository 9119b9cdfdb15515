"""Sketches against their stated bounds: HyperLogLog, Space-Saving, access matrix."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.analytics.sketches import (
    AccessMatrix,
    HyperLogLog,
    MisraGries,
    SpaceSaving,
    hour_and_weekday,
    item_hash,
)
from meshcore.errors import DecodeError

ITEM_HASH_USER_1 = 0xA173746B114C6BE8  # XXH64("user-1", seed 0), recorded: must never change

# -- HyperLogLog -----------------------------------------------------------------


@pytest.mark.parametrize("p", [8, 10, 12])
@pytest.mark.parametrize("n", [10, 1_000, 50_000])
def test_hll_relative_error_within_four_standard_errors(p, n):
    hll = HyperLogLog(p)
    for i in range(n):
        hll.add(f"user-{p}-{i}")
    bound = 4 * 1.04 / math.sqrt(2**p)  # P(|err| > 4 sigma) ~ 6e-5 per case
    assert hll.standard_error == pytest.approx(1.04 / math.sqrt(2**p))
    assert abs(hll.estimate() - n) / n <= bound


def test_hll_error_distribution_matches_stated_standard_error():
    # Over many independent sketches, the RMS relative error is ~1.04/sqrt(m).
    p, n, trials = 8, 3_000, 40
    errors = []
    for t in range(trials):
        hll = HyperLogLog(p)
        for i in range(n):
            hll.add(f"t{t}-{i}")
        errors.append(hll.estimate() / n - 1)
    rms = math.sqrt(sum(e * e for e in errors) / trials)
    stated = 1.04 / math.sqrt(2**p)
    assert 0.6 * stated <= rms <= 1.4 * stated


def test_item_hash_is_xxh64_pinned_across_machines():
    # Nodes merge each other's sketches, so every node must hash an item alike:
    # XXH64 seed 0 of the UTF-8 bytes. The empty input's value is the spec's test vector.
    assert item_hash(b"") == item_hash("") == 0xEF46DB3751D8E999
    assert item_hash("user-1") == item_hash(b"user-1") == ITEM_HASH_USER_1
    # The register layout is part of the wire format: the top p bits pick the register,
    # the rank is 1 + the leading zeros of the remaining 64 - p bits.
    hll = HyperLogLog(4)
    hll.add("user-1")
    index, rest = ITEM_HASH_USER_1 >> 60, ITEM_HASH_USER_1 & (2**60 - 1)
    registers = hll.to_bytes()[4:]
    assert registers[index] == 60 - rest.bit_length() + 1
    assert sum(registers) == registers[index]


def test_hll_duplicates_do_not_count_and_bytes_equal_str():
    a, b = HyperLogLog(10), HyperLogLog(10)
    for _ in range(5):
        for i in range(100):
            a.add(f"x{i}")
    for i in range(100):
        b.add(f"x{i}".encode())
    assert a == b
    assert abs(a.estimate() - 100) <= 5  # linear counting is near exact here
    assert HyperLogLog(10).estimate() == 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.text(max_size=6), max_size=30), min_size=1, max_size=5),
       st.randoms(use_true_random=False))
def test_hll_merge_is_union_and_order_free(parts, rnd):
    union = HyperLogLog(6)
    sketches = []
    for part in parts:
        s = HyperLogLog(6)
        for item in part:
            s.add(item)
            union.add(item)
        sketches.append(s)
    order = sketches + sketches[: rnd.randrange(len(sketches) + 1)]  # duplicates
    rnd.shuffle(order)
    merged = HyperLogLog(6)
    for s in order:
        merged.merge(s)
    assert merged == union
    merged.merge(merged.copy())
    assert merged == union  # idempotent


def test_hll_serialisation_and_bad_input():
    hll = HyperLogLog(5)
    for i in range(50):
        hll.add(str(i))
    assert HyperLogLog.from_bytes(hll.to_bytes()) == hll
    for bad in (b"", b"XX1\x05" + bytes(32), b"HL1\x05" + bytes(31), b"HL1\x03" + bytes(8),
                b"HL1\x05" + bytes([61]) + bytes(31)):
        with pytest.raises(DecodeError):
            HyperLogLog.from_bytes(bad)
    with pytest.raises(ValueError, match="p"):
        HyperLogLog(3)
    with pytest.raises(ValueError, match="p=5"):
        hll.merge(HyperLogLog(6))
    assert hll != "x"


# -- Space-Saving ----------------------------------------------------------------


def _zipf_stream(n: int, objects: int, alpha: float, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, objects + 1)
    probs = ranks**-alpha
    probs /= probs.sum()
    return [f"c{int(i)}" for i in rng.choice(objects, size=n, p=probs)]


def _check_guarantees(ss: SpaceSaving, truth: Counter, n: int) -> None:
    assert ss.n == n
    for key, count, error in ss.top():
        assert count - error <= truth[key] <= count  # per-key bounds
        assert error <= n / ss.k
    assert ss.min_count <= n / ss.k
    for key, f in truth.items():
        if f > n / ss.k:
            assert key in ss.counts  # every frequent key is monitored


def test_space_saving_bounds_on_zipf_and_true_top_found():
    stream = _zipf_stream(50_000, 5_000, 1.0, seed=7)
    truth = Counter(stream)
    ss = SpaceSaving(100)
    for key in stream:
        ss.add(key)
    _check_guarantees(ss, truth, len(stream))
    true_top10 = [k for k, _ in truth.most_common(10)]
    assert [k for k, _, _ in ss.top(10)] == true_top10


def test_space_saving_flash_crowd_item_enters_top():
    rnd = random.Random(3)
    stream = [f"c{rnd.randrange(2000)}" for _ in range(20_000)]
    stream[12_000:12_000] = ["breaking-news"] * 800  # a sudden burst late in the stream
    ss = SpaceSaving(50)
    for key in stream:
        ss.add(key)
    _check_guarantees(ss, Counter(stream), len(stream))
    assert ss.top(1)[0][0] == "breaking-news"


def test_space_saving_weighted_adds():
    ss = SpaceSaving(2)
    ss.add("a", 5)
    ss.add("b", 3)
    ss.add("c", 2)  # replaces b (min 3): count 5, error 3
    assert ss.top() == [("a", 5, 0), ("c", 5, 3)]
    assert ss.n == 10


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=120), min_size=2, max_size=4),
       st.integers(3, 12))
def test_space_saving_merge_keeps_bounds(parts, k):
    truth: Counter = Counter()
    merged = SpaceSaving(k)
    for part in parts:
        s = SpaceSaving(k)
        for x in part:
            s.add(str(x))
            truth[str(x)] += 1
        merged.merge(s)
    n = sum(len(p) for p in parts)
    assert merged.n == n
    for key, count, error in merged.top():
        assert count - error <= truth[key] <= count
    for key, f in truth.items():
        if f > n / k:
            assert key in merged.counts


def test_space_saving_merge_is_commutative():
    a, b = SpaceSaving(5), SpaceSaving(5)
    for x in "aaabbbcccddeeffgghhij":
        a.add(x)
    for x in "zzzyyyxxxaaawwv":
        b.add(x)
    ab, ba = a.copy(), b.copy()
    ab.merge(b)
    ba.merge(a)
    assert ab.top() == ba.top()
    with pytest.raises(TypeError):
        a.merge(HyperLogLog())


def test_space_saving_serialisation_and_bad_input():
    ss = SpaceSaving(3)
    for x in "aabbbcd":
        ss.add(x)
    back = SpaceSaving.from_list(3, ss.n, ss.to_list())
    assert back.top() == ss.top() and back.n == ss.n
    back.add("e")  # the rebuilt heap works
    for bad in ([["a", 0, 0]], [["a", 2, 3]], [[1, 1, 0]], [["a", 1]], [["a", 1, 0]] * 4, "x"):
        with pytest.raises(DecodeError):
            SpaceSaving.from_list(3, 1, bad)
    with pytest.raises(DecodeError):
        SpaceSaving.from_list(3, -1, [])
    with pytest.raises(ValueError, match="k"):
        SpaceSaving(0)


# -- Misra-Gries (batch form, used by the collector) ------------------------------


def _check_mg(mg: MisraGries, truth: Counter) -> None:
    n = sum(truth.values())
    assert mg.n == n
    assert len(mg.counts) <= mg.k
    assert sum(mg.counts.values()) + (mg.k + 1) * mg.error <= n  # the invariant
    for key, f in truth.items():
        low = mg.counts.get(key, 0)
        assert low <= f <= low + mg.error
        if f > n / (mg.k + 1):
            assert key in mg.counts
    for key, upper, err in mg.top():
        assert upper - err <= truth[key] <= upper


@pytest.mark.parametrize("batch", [1, 37, 2048])
def test_misra_gries_bounds_on_zipf_any_batch_size(batch):
    stream = _zipf_stream(30_000, 5_000, 1.0, seed=9)
    mg = MisraGries(100)
    for i in range(0, len(stream), batch):
        mg.add_counts(Counter(stream[i : i + batch]))
    truth = Counter(stream)
    _check_mg(mg, truth)
    assert [k for k, _, _ in mg.top(5)] == [k for k, _ in truth.most_common(5)]


def test_misra_gries_flash_crowd_and_item_adds():
    rnd = random.Random(3)
    stream = [f"c{rnd.randrange(2000)}" for _ in range(20_000)]
    stream[15_000:15_000] = ["breaking-news"] * 600
    mg = MisraGries(40)
    for key in stream:
        mg.add(key)
    _check_mg(mg, Counter(stream))
    assert mg.top(1)[0][0] == "breaking-news"
    with pytest.raises(ValueError, match="count"):
        mg.add("x", 0)
    with pytest.raises(ValueError, match="k"):
        MisraGries(0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, 25), max_size=150), min_size=1, max_size=5),
       st.lists(st.integers(2, 10), min_size=5, max_size=5), st.randoms(use_true_random=False))
def test_misra_gries_merge_keeps_bounds_and_commutes(parts, ks, rnd):
    truth: Counter = Counter()
    summaries = []
    for part, k in zip(parts, ks, strict=False):
        s = MisraGries(k)
        s.add_counts(Counter(str(x) for x in part))
        truth.update(str(x) for x in part)
        summaries.append(s)
    rnd.shuffle(summaries)
    merged = summaries[0].copy()
    for s in summaries[1:]:
        merged.merge(s)
    assert merged.k == min(s.k for s in summaries)
    _check_mg(merged, truth)
    if len(summaries) == 2:
        other = summaries[1].copy()
        other.merge(summaries[0])
        assert other == merged
    small = merged.truncated(2)
    _check_mg(small, truth)


def test_misra_gries_serialisation_and_bad_input():
    mg = MisraGries(3)
    mg.add_counts(Counter("aaabbbccddeeffg"))
    back = MisraGries.from_dict(mg.to_dict())
    assert back == mg and back != "x"
    assert mg.min_count == mg.error
    good = mg.to_dict()
    for bad in (
        {**good, "k": 0},
        {**good, "n": -1},
        {**good, "error": True},
        {**good, "counts": [["a", 0]]},
        {**good, "counts": [["a", 1], ["a", 1]]},
        {**good, "counts": [[1, 1]]},
        {**good, "counts": [["a", 1, 2]]},
        {**good, "counts": [["a", 1], ["b", 1], ["c", 1], ["d", 1]]},
        {**good, "n": 1},
        {k: v for k, v in good.items() if k != "error"},
    ):
        with pytest.raises(DecodeError):
            MisraGries.from_dict(bad)
    with pytest.raises(TypeError):
        mg.merge(SpaceSaving(3))


# -- access matrix -------------------------------------------------------------------


def test_hour_and_weekday_against_known_dates():
    assert hour_and_weekday(0) == (0, 3)  # 1970-01-01 00:00 UTC, a Thursday
    assert hour_and_weekday(1_764_063_000) == (9, 1)  # 2025-11-25 09:30 UTC, a Tuesday
    assert hour_and_weekday(1_764_063_000 + 6 * 86400 + 14 * 3600) == (23, 0)


def test_access_matrix_daily_cycle_peaks():
    m = AccessMatrix()
    monday = 1_763_942_400  # 2025-11-24 00:00 UTC
    for day in range(7):
        for hour in range(24):
            # evening peak at 20:00, busier at the weekend
            load = 10 + (100 if hour == 20 else 0) + (50 if day >= 5 else 0)
            m.add(monday + day * 86400 + hour * 3600 + 120, load)
    rows = m.rows()
    assert rows[0][20] == 110 and rows[6][20] == 160
    assert m.peaks(2) == [(5, 20, 160), (6, 20, 160)]
    other = AccessMatrix()
    other.add(monday, 1)
    m.merge(other)
    assert m.rows()[0][0] == 11
