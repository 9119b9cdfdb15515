"""Collector: synthetic event streams with known totals, top-k and unique counts."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import pytest

from meshcore.analytics.events import (
    CacheLookup,
    Collector,
    CongestionEpisode,
    LinkChange,
    NeighborChange,
    PeerServed,
    QuotaAction,
    RequestFailed,
    RequestServed,
    UplinkChange,
    jain,
)
from meshcore.analytics.metrics import OVERFLOW
from meshcore.analytics.rollups import COUNTER_FIELDS, TIERS, unpack_sketches

DAY0 = 1_763_942_400  # Monday 2025-11-24 00:00 UTC
SALT = "community-salt-for-tests"


def _stream(days: int = 2, seed: int = 11):
    """A daily cycle (quiet nights, evening peak) and a flash crowd on day 2 at 18:00.

    Yields (time, RequestServed); times strictly increase.
    """
    rnd = random.Random(seed)
    out = []
    for day in range(days):
        for hour in range(24):
            rate = 20 + int(180 * max(0.0, math.sin(math.pi * (hour - 6) / 16)))
            base = DAY0 + day * 86400 + hour * 3600
            times = sorted(rnd.uniform(0, 3599) for _ in range(rate))
            for t in times:
                user = rnd.randrange(400)
                content = f"c{min(int(rnd.paretovariate(1.2)), 500)}"
                if day == 1 and hour == 18 and rnd.random() < 0.7:
                    content = "flash-crowd-video"
                tier = TIERS[rnd.randrange(4)]
                out.append((base + t, RequestServed(
                    content=content, principal=f"aa:bb:cc:00:{user // 256:02x}:{user % 256:02x}",
                    tier=tier, nbytes=rnd.randrange(1, 50_000),
                    content_class="video" if content.startswith("flash") else "web",
                    household=f"house-{user // 3}",
                )))
    return out


def _run(events, *, now0=DAY0, **kw):
    col = Collector("node-a", now=now0, salt=SALT, **kw)
    rolls = []
    for t, ev in events:
        col.record(ev, now=t)
        rolls += col.drain()
    return col, rolls


def test_exact_counters_and_rollups_add_up():
    events = _stream()
    col, rolls = _run(events)
    rolls += col.tick(now=DAY0 + 3 * 86400)
    truth: Counter = Counter()
    for _, ev in events:
        truth[f"req_{ev.tier}"] += 1
        truth[f"bytes_{ev.tier}"] += ev.nbytes
    totals = col.totals()
    for key in truth:
        assert totals[key] == truth[key]
    for res in ("minute", "hour", "day"):
        summed: Counter = Counter()
        for r in rolls:
            if r.resolution == res:
                for k, v in r.counters.items():
                    summed[k] += v
        assert dict(summed) == dict(truth), res
    days = [r for r in rolls if r.resolution == "day"]
    assert [d.start for d in days] == [DAY0, DAY0 + 86400]
    # the day's hour profile is the daily cycle: quiet at 03:00, busy at 14:00
    per_hour = Counter()
    for t, _ in events:
        if t < DAY0 + 86400:
            per_hour[int((t - DAY0) // 3600)] += 1
    assert list(days[0].hours) == [per_hour[h] for h in range(24)]
    assert col.get_timer() == DAY0 + 3 * 86400 + 60


def test_unique_users_and_households_within_bounds():
    events = _stream()
    col, rolls = _run(events)
    rolls += col.tick(now=DAY0 + 3 * 86400)
    for day in (0, 1):
        window = [ev for t, ev in events if DAY0 + day * 86400 <= t < DAY0 + (day + 1) * 86400]
        users = len({ev.principal for ev in window})
        houses = len({ev.household for ev in window})
        (row,) = [r for r in rolls if r.resolution == "day" and r.start == DAY0 + day * 86400]
        bound = 4 * 1.04 / math.sqrt(2**12)
        assert abs(row.users - users) / users <= bound
        assert abs(row.households - houses) / houses <= bound


def test_flash_crowd_is_the_top_item_of_its_hour_and_bounds_hold():
    events = _stream()
    _col, rolls = _run(events)
    start = DAY0 + 86400 + 18 * 3600
    (hour,) = [r for r in rolls if r.resolution == "hour" and r.start == start]
    _, _, top = unpack_sketches(hour.sketch)
    truth = Counter(ev.content for t, ev in events if start <= t < start + 3600)
    assert top.top(1)[0][0] == "flash-crowd-video"
    for key, count, err in top.top():
        assert count - err <= truth[key] <= count
    assert top.n == sum(truth.values())


def test_hourly_jfi_matches_per_user_bytes():
    events = _stream(days=1)
    col, rolls = _run(events)
    rolls += col.tick(now=DAY0 + 86400)
    start = DAY0 + 14 * 3600
    per_user = defaultdict(int)
    for t, ev in events:
        if start <= t < start + 3600:
            per_user[ev.principal] += ev.nbytes
    (row,) = [r for r in rolls if r.resolution == "hour" and r.start == start]
    assert row.jfi == pytest.approx(jain(list(per_user.values())))
    day = next(r for r in rolls if r.resolution == "day")
    hours = [r.jfi for r in rolls if r.resolution == "hour"]
    assert day.jfi == pytest.approx(sum(hours) / len(hours))


def test_jain_index_definition():
    assert jain([5, 5, 5]) == pytest.approx(1.0)
    assert jain([1, 0, 0, 0]) == pytest.approx(0.25)
    assert jain([]) is None


def test_no_raw_principal_in_sketches():
    events = _stream(days=1)
    col, rolls = _run(events)
    rolls += col.tick(now=DAY0 + 86400)
    blobs = b"".join(r.sketch for r in rolls if r.sketch)
    for _, ev in events[:200]:
        assert ev.principal.encode() not in blobs


def test_other_events_and_outage_accounting():
    col = Collector("n", now=DAY0, salt=SALT)
    col.record(NeighborChange("peer-1", True), now=DAY0 + 1)
    col.record(NeighborChange("peer-1", True), now=DAY0 + 2)  # repeated: no change
    col.record(NeighborChange("peer-2", True), now=DAY0 + 3)
    col.record(NeighborChange("peer-1", False), now=DAY0 + 4)
    col.record(LinkChange("n1", "peer-2", math.nan, 1.5), now=DAY0 + 5)
    col.record(QuotaAction("aa:bb:cc:dd:ee:ff", "throttle"), now=DAY0 + 6)
    col.record(CongestionEpisode("wlan0", 12.0), now=DAY0 + 7)
    col.record(CacheLookup(True), now=DAY0 + 8)
    col.record(CacheLookup(False), now=DAY0 + 8)
    col.record(PeerServed("peer-2", 4096), now=DAY0 + 9)
    col.record(UplinkChange(False), now=DAY0 + 100)
    col.record(UplinkChange(False), now=DAY0 + 110)  # already down
    col.record(RequestServed("c1", "u1", "mesh", 10), now=DAY0 + 120)
    col.record(RequestFailed("c2", "u2", "uplink_down"), now=DAY0 + 130)
    # the outage spans a minute boundary and an hour boundary
    col.record(UplinkChange(True), now=DAY0 + 3700)
    col.record(RequestFailed("c3", "u2", "no_holder"), now=DAY0 + 3710)
    rolls = col.tick(now=DAY0 + 86400)
    t = col.totals()
    assert t["outage_seconds"] == pytest.approx(3600.0)
    assert t["outage_requests"] == 2 and t["outage_served"] == 1
    assert t["req_failed"] == 2 and t["bytes_to_peers"] == 4096 and t["req_to_peers"] == 1
    assert t["quota_actions"] == 1 and t["congestion_episodes"] == 1 and t["link_changes"] == 1
    assert col.link_usage() == {("n", "peer-2"): {"bytes": 4096, "transfers": 1}}
    with pytest.raises(ValueError, match="nbytes"):
        col.record(PeerServed("peer-2", -1), now=DAY0 + 3711)
    reg = col.registry
    assert reg.get("meshcore_neighbors").children[()].value == 1
    assert reg.get("meshcore_cache_lookups").children[("hit",)].value == 1
    assert reg.get("meshcore_uplink_up").children[()].value == 1
    hours = [r for r in rolls if r.resolution == "hour"]
    assert sum(r.get("outage_seconds") for r in hours) == pytest.approx(3600.0)
    (day,) = [r for r in rolls if r.resolution == "day"]
    assert day.get("outage_seconds") == pytest.approx(3600.0)
    with pytest.raises(TypeError, match="not an analytics event"):
        col.record("hello", now=DAY0 + 86401)
    with pytest.raises(ValueError, match="new_cost"):
        col.record(LinkChange("n1", "p", 1.0, 0.5), now=DAY0 + 86401)


def test_long_silent_outage_is_counted_in_full():
    col = Collector("n", now=DAY0, salt=SALT)
    col.record(UplinkChange(False), now=DAY0 + 10)
    rolls = col.tick(now=DAY0 + 5 * 3600 + 10)  # no events for five hours
    rolls += col.flush(now=DAY0 + 5 * 3600 + 10)
    assert col.totals()["outage_seconds"] == pytest.approx(5 * 3600)
    assert sum(r.get("outage_seconds") for r in rolls if r.resolution == "hour") == (
        pytest.approx(5 * 3600))


def test_bad_arguments():
    col = Collector("n", now=DAY0, salt=SALT)
    with pytest.raises(ValueError, match="tier"):
        col.request_served("c", "u", "satellite", 1, now=DAY0)
    with pytest.raises(ValueError, match="nbytes"):
        col.request_served("c", "u", "local", -1, now=DAY0)
    with pytest.raises(ValueError, match="content_class"):
        col.request_served("c", "u", "local", 1, now=DAY0, content_class=3)
    with pytest.raises(ValueError, match="now"):
        col.tick(now=math.nan)
    with pytest.raises(ValueError, match="salt"):
        Collector("n", now=DAY0)
    with pytest.raises(ValueError, match="node"):
        Collector("", now=DAY0, salt=SALT)


def test_class_cardinality_cap_keeps_tier_totals_exact():
    col = Collector("n", now=DAY0, salt=SALT, label_cap=10)
    for i in range(200):
        col.request_served("c", "u", TIERS[i % 4], 1, now=DAY0 + i, content_class=f"cls{i}")
    fam = col.registry.get("meshcore_requests")
    assert len(fam.children) <= 10
    assert fam.dropped > 0
    t = col.totals()
    assert [t[f"req_{tier}"] for tier in TIERS] == [50, 50, 50, 50]
    assert fam.children[("mesh", OVERFLOW)].value > 0


def test_principal_table_is_bounded():
    col = Collector("n", now=DAY0, salt=SALT, max_principals=5, hll_precision=10)
    for i in range(50):
        col.request_served("c", f"user{i}", "local", 1, now=DAY0 + i)
    assert col.principal_overflow == 45
    rolls = col.tick(now=DAY0 + 3600)
    (hour,) = [r for r in rolls if r.resolution == "hour"]
    assert abs(hour.users - 50) <= 3  # overflowed principals still counted as users


def test_summary_covers_the_day_so_far():
    events = _stream(days=1)
    col, _ = _run(events[: len(events) // 2])
    last = events[len(events) // 2 - 1][0]
    s1 = col.summary(now=last)
    s2 = col.summary(now=last)
    assert s2.version > s1.version
    truth = Counter()
    for _, ev in events[: len(events) // 2]:
        truth[f"req_{ev.tier}"] += 1
    assert {k: v for k, v in s1.counters.items() if k.startswith("req_")} == dict(truth)
    assert set(s1.counters) <= set(COUNTER_FIELDS)
    users = len({ev.principal for _, ev in events[: len(events) // 2]})
    assert abs(s1.users.estimate() - users) / users < 4 * s1.users.standard_error
