"""Accounting: sliding windows, quota periods, token buckets, mesh-wide merge."""

from __future__ import annotations

import calendar
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.fairness.accounting import (
    DOWN,
    UP,
    WINDOWS,
    Account,
    MeshUsage,
    RingCounter,
    TokenBucket,
    UsageLedger,
    UsageRecord,
    period_bounds,
)

ALICE = Account("user", "alice")
HOUSE = Account("household", "h1")
T0 = float(calendar.timegm((2026, 3, 15, 12, 0, 0)))


def test_principal_validation():
    assert str(Account("device", "aa")) == "device:aa"
    with pytest.raises(ValueError, match="kind"):
        Account("planet", "x")
    with pytest.raises(ValueError, match="name"):
        Account("user", "")


def test_ring_counter_slides_by_buckets():
    ring = RingCounter(WINDOWS["minute"])  # 12 buckets of 5 s
    ring.add(100, now=0.0)
    ring.add(50, now=30.0)
    assert ring.total(now=30.0) == 150
    assert ring.total(now=59.9) == 150
    # The first bucket [0, 5) leaves the window once slot 12 starts (t = 60).
    assert ring.total(now=60.0) == 50
    assert ring.total(now=95.0) == 0
    # A bucket reused after a full turn is cleared first.
    ring.add(7, now=120.0)
    assert ring.total(now=120.0) == 7


def test_ledger_windows_directions_and_classes():
    led = UsageLedger()
    led.record(ALICE, 1000, direction=DOWN, traffic_class="member", now=T0)
    led.record(ALICE, 200, direction=UP, traffic_class="member", now=T0 + 1)
    led.record(ALICE, 30, direction=DOWN, traffic_class="bulk", now=T0 + 2)
    assert led.window_usage(ALICE, "minute", now=T0 + 2) == 1230
    assert led.window_usage(ALICE, "minute", now=T0 + 2, direction=DOWN) == 1030
    assert led.window_usage(ALICE, "hour", now=T0 + 2, traffic_class="bulk") == 30
    assert led.window_usage(ALICE, "minute", now=T0 + 120) == 0
    assert led.window_usage(ALICE, "day", now=T0 + 3600) == 1230
    assert led.period_usage(ALICE, "day", now=T0) == 1230
    assert led.period_usage(ALICE, "month", now=T0, direction=UP) == 200
    assert led.accounts() == [ALICE]
    with pytest.raises(ValueError, match="window"):
        led.window_usage(ALICE, "year", now=T0)
    with pytest.raises(ValueError, match="direction"):
        led.record(ALICE, 1, direction="sideways", now=T0)
    with pytest.raises(ValueError, match="nbytes"):
        led.record(ALICE, -1, direction=UP, now=T0)
    with pytest.raises(TypeError, match="nbytes"):
        led.record(ALICE, 1.5, direction=UP, now=T0)
    with pytest.raises(ValueError, match="now"):
        led.record(ALICE, 1, direction=UP, now=float("nan"))


def test_period_counters_reset_at_utc_midnight_and_month_start():
    led = UsageLedger()
    end_of_day = period_bounds("day", T0)[1]
    led.record(ALICE, 500, direction=DOWN, now=end_of_day - 1)
    led.record(ALICE, 70, direction=DOWN, now=end_of_day)
    assert led.period_usage(ALICE, "day", now=end_of_day) == 70
    assert led.period_usage(ALICE, "month", now=end_of_day) == 570
    # A late report for the closed day is not added to the new one.
    led.record(ALICE, 9, direction=DOWN, now=end_of_day - 5)
    assert led.period_usage(ALICE, "day", now=end_of_day) == 70


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**9), 4 * 10**9))
def test_period_bounds_match_the_calendar(t):
    start, end = period_bounds("month", float(t))
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    first = dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC)
    nxt = dt.datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=dt.UTC)
    assert (start, end) == (first.timestamp(), nxt.timestamp())
    ds, de = period_bounds("day", float(t))
    assert ds <= t < de and de - ds == 86400 and ds % 86400 == 0


def test_period_bounds_rejects():
    with pytest.raises(ValueError, match="period"):
        period_bounds("week", 0.0)
    with pytest.raises(ValueError, match="now"):
        period_bounds("day", float("inf"))


def test_token_bucket():
    b = TokenBucket(1000, 500, now=0.0)
    assert b.try_consume(400, now=0.0)
    assert not b.try_consume(400, now=0.0)
    assert b.try_consume(400, now=0.3)  # 100 + 300 refilled
    # Debt: 0 - 1000 -> 1 s to repay.
    assert b.consume(1000, now=0.3) == pytest.approx(1.0)
    assert b.refill(now=10.0) == 500  # capped at burst
    b.set_rate(2000, now=10.0)
    assert b.consume(1500, now=10.0) == pytest.approx(0.5)
    for bad in (0, -1, float("inf")):
        with pytest.raises(ValueError, match="rate"):
            TokenBucket(bad, 1, now=0.0)
        with pytest.raises(ValueError, match="rate"):
            b.set_rate(bad, now=0.0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1, -1, now=0.0)


def _ledger(node, entries):
    led = UsageLedger()
    for p, n, d in entries:
        led.record(p, n, direction=d, now=T0)
    return led.export(node, now=T0)


def test_mesh_usage_counts_each_node_once():
    a = _ledger("gw-a", [(ALICE, 1000, DOWN), (HOUSE, 1000, DOWN)])
    b = _ledger("gw-b", [(ALICE, 300, DOWN), (ALICE, 5, UP)])
    mesh = MeshUsage()
    # One record per (principal, period, direction): day and month each.
    assert mesh.merge(a) == 4
    assert mesh.merge(b) == 4
    # Duplicate gossip (via another neighbour) changes nothing.
    assert mesh.merge(a + b) == 0
    assert mesh.usage(ALICE, "day", wall=T0) == 1305
    assert mesh.usage(ALICE, "month", wall=T0, direction=DOWN) == 1300
    assert mesh.usage(HOUSE, "day", wall=T0) == 1000
    # Tomorrow the old day's records no longer count.
    assert mesh.usage(ALICE, "day", wall=T0 + 86400) == 0


def test_mesh_usage_newer_report_replaces_older():
    led = UsageLedger()
    led.record(ALICE, 100, direction=DOWN, now=T0)
    first = led.export("gw", now=T0)
    led.record(ALICE, 50, direction=DOWN, now=T0)
    second = led.export("gw", now=T0)
    mesh = MeshUsage()
    mesh.merge(second)
    mesh.merge(first)  # stale, arrives late
    assert mesh.usage(ALICE, "day", wall=T0) == 150
    with pytest.raises(ValueError, match="malformed"):
        mesh.merge([UsageRecord("gw", ALICE, "year", DOWN, T0, 1, 1)])


_records = st.lists(
    st.builds(
        UsageRecord,
        node=st.sampled_from(["a", "b", "c"]),
        principal=st.sampled_from([ALICE, HOUSE]),
        period=st.just("day"),
        direction=st.sampled_from([UP, DOWN]),
        period_start=st.sampled_from([T0 - 86400, period_bounds("day", T0)[0]]),
        version=st.integers(1, 5),
        nbytes=st.integers(0, 10**6),
    ),
    max_size=20,
)


def _state(*parts):
    m = MeshUsage()
    for part in parts:
        m.merge(part)
    return m


@settings(max_examples=150, deadline=None)
@given(_records, _records, _records)
def test_merge_is_a_join(x, y, z):
    # Commutative, associative, idempotent: replicas converge whatever the gossip order.
    assert _state(x, y) == _state(y, x)
    left = _state(x, y)
    left.merge_state(_state(z))
    right = _state(x)
    right.merge_state(_state(y, z))
    assert left == right
    twice = _state(x, y)
    assert twice.merge(x + y) == 0
    assert twice == _state(y, x, x)
    assert _state(x).records() == _state(x, x).records()
    assert _state(x) != "not a MeshUsage"
