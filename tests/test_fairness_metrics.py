"""Jain's index and weighted max-min fair shares (meshcore.fairness.metrics)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.fairness.metrics import (
    jain_index,
    max_min_fair_shares,
    share_ratios,
    worst_share_ratio,
)


def test_jain_bounds_from_the_definition():
    assert jain_index([5, 5, 5, 5]) == pytest.approx(1.0)
    # One user takes everything: 1/n (Jain et al. 1984).
    assert jain_index([7, 0, 0, 0]) == pytest.approx(0.25)
    # (1+2)^2 / (2 * (1+4)) = 0.9
    assert jain_index([1, 2]) == pytest.approx(0.9)
    assert jain_index([0, 0]) == 1.0


def test_jain_weighted_normalises_by_weight():
    assert jain_index([2, 1], [2, 1]) == pytest.approx(1.0)
    assert jain_index([1, 1], [2, 1]) == pytest.approx(0.9)


def test_jain_huge_values_do_not_overflow():
    assert jain_index([1e300, 1e300]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("values", "weights", "exc"),
    [
        ([], None, ValueError),
        ([-1.0], None, ValueError),
        ([math.nan], None, ValueError),
        ([math.inf], None, ValueError),
        (["1"], None, TypeError),
        ([True], None, TypeError),
        ([1.0], [0.0], ValueError),
        ([1.0], [1.0, 2.0], ValueError),
        ([1.0], ["x"], TypeError),
    ],
)
def test_jain_rejects_bad_input(values, weights, exc):
    with pytest.raises(exc):
        jain_index(values, weights)


def test_water_filling_textbook_example():
    # Bertsekas & Gallager: capacity 10, demands 1, 2, inf, inf -> 1, 2, 3.5, 3.5
    assert max_min_fair_shares(10, [1, 2, math.inf, math.inf]) == pytest.approx([1, 2, 3.5, 3.5])
    # Weights 1:2 on a capacity of 12, both backlogged.
    assert max_min_fair_shares(12, [math.inf, math.inf], [1, 2]) == pytest.approx([4, 8])
    # Undersubscribed: everyone gets their demand.
    assert max_min_fair_shares(100, [1, 2, 3]) == pytest.approx([1, 2, 3])
    assert max_min_fair_shares(5, []) == []
    assert max_min_fair_shares(0, [1, 1]) == [0.0, 0.0]


@pytest.mark.parametrize(
    ("cap", "demands", "exc"),
    [
        (-1, [1], ValueError),
        (math.inf, [1], ValueError),
        ("1", [1], TypeError),
        (1, [-1], ValueError),
        (1, [math.nan], ValueError),
        (1, [None], TypeError),
    ],
)
def test_water_filling_rejects_bad_input(cap, demands, exc):
    with pytest.raises(exc):
        max_min_fair_shares(cap, demands)


@settings(max_examples=200, deadline=None)
@given(
    cap=st.floats(0, 1e6),
    users=st.lists(
        st.tuples(
            st.one_of(st.floats(0, 1e6), st.just(math.inf)),
            st.floats(0.1, 10),
        ),
        max_size=12,
    ),
)
def test_water_filling_properties(cap, users):
    demands = [d for d, _ in users]
    weights = [w for _, w in users]
    shares = max_min_fair_shares(cap, demands, weights)
    total = sum(shares)
    # Feasible, work-conserving, nobody above demand.
    assert total <= cap * (1 + 1e-9) + 1e-6
    assert total == pytest.approx(min(cap, math.fsum(demands)), rel=1e-6, abs=1e-6)
    for s, d in zip(shares, demands, strict=True):
        assert -1e-9 <= s <= d * (1 + 1e-9) + 1e-9
    # Max-min: any user below its demand has the largest normalised share.
    norm = [s / w for s, w in zip(shares, weights, strict=True)]
    for i, (s, d) in enumerate(zip(shares, demands, strict=True)):
        if s < d * (1 - 1e-9) - 1e-9:
            assert norm[i] >= max(norm) * (1 - 1e-6) - 1e-9


def test_share_ratios():
    assert share_ratios([5, 10, 0], [10, 10, 0]) == [0.5, 1.0, 1.0]
    assert worst_share_ratio([5, 10], [10, 10]) == 0.5
    assert worst_share_ratio([], []) == 1.0
    with pytest.raises(ValueError, match="fair_shares"):
        share_ratios([1], [1, 2])
