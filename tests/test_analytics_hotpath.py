"""The collector's hot path: batched top-k, first sight per hour, fast HMAC, fast reduce.

These pin the equivalences the speed-ups rely on (module docstrings of
events.py, sketches.py and privacy.py): each fast path must give the same
bytes or the same summary as the plain definition.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.analytics import events, sketches
from meshcore.analytics.events import Collector, RequestServed, UplinkChange
from meshcore.analytics.privacy import Pseudonymizer
from meshcore.analytics.rollups import unpack_sketches
from meshcore.analytics.sketches import MisraGries

DAY0 = 1_763_942_400  # Monday 2025-11-24 00:00 UTC
SALT = "community-salt-for-tests"


@settings(max_examples=60, deadline=None)
@given(salt=st.binary(min_size=8, max_size=150), raw=st.text(min_size=1, max_size=80))
def test_pseudonym_is_truncated_hmac_sha256(salt, raw):
    # RFC 2104 through the standard library is the definition (docs/analytics.md).
    expected = hmac.new(salt, raw.encode("utf-8"), hashlib.sha256).digest()[:8].hex()
    assert Pseudonymizer(salt)(raw) == expected


def _reduce_both(counts: dict[str, int], k: int, monkeypatch) -> tuple[MisraGries, MisraGries]:
    fast, plain = MisraGries(k), MisraGries(k)
    fast.add_counts(counts)
    with monkeypatch.context() as m:
        m.setattr(sketches, "_np", None)
        plain.add_counts(counts)
    return fast, plain


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 120), distinct=st.integers(256, 900))
def test_numpy_reduction_equals_the_plain_one(seed, k, distinct):
    rnd = random.Random(seed)
    counts = {f"item{i}": 1 + int(rnd.paretovariate(1.1)) for i in range(distinct)}
    with pytest.MonkeyPatch.context() as mp:
        fast, plain = _reduce_both(counts, k, mp)
    assert fast == plain
    assert list(fast.counts) == list(plain.counts)  # same order too
    assert len(fast.counts) <= k


def test_add_counts_keeps_bounds_and_leaves_the_batch_alone():
    rnd = random.Random(5)
    stream = [f"c{min(int(rnd.paretovariate(0.9)), 5000)}" for _ in range(60_000)]
    mg = MisraGries(50)
    for i in range(0, len(stream), 1000):
        batch = Counter(stream[i : i + 1000])
        before = dict(batch)
        mg.add_counts(batch)
        assert dict(batch) == before  # held keys were summed in a copy
    truth = Counter(stream)
    assert mg.n == len(stream)
    for key, upper, err in mg.top():
        assert upper - err <= truth[key] <= upper
    assert all(f <= mg.error for key, f in truth.items() if key not in mg.counts)


def test_top_k_batch_spans_several_folds_and_is_exact_when_small():
    col = Collector("n", now=DAY0, salt=SALT, top_k=2000)
    n = 2 * events._BATCH + 17  # two full batches and a partial one
    contents = [f"c{i % 1500}" for i in range(n)]
    for i, c in enumerate(contents):
        col.request_served(c, f"u{i % 30}", "local", 10, now=DAY0 + i * 0.01)
    top = col.summary(now=DAY0 + 100).top  # folds the partial batch
    assert top.n == n and top.error == 0
    assert top.counts == dict(Counter(contents))
    rolls = col.tick(now=DAY0 + 3600)
    (hour,) = [r for r in rolls if r.resolution == "hour"]
    assert unpack_sketches(hour.sketch)[2].n == n


def test_first_sight_each_hour_counts_users_households_and_shares():
    col = Collector("n", now=DAY0, salt=SALT, hll_precision=14)
    for hour in range(2):
        for i in range(300):
            t = DAY0 + hour * 3600 + i
            col.request_served("c", f"user{i % 100}", "mesh", 1 + i % 100, now=t,
                               household=f"house{i % 100 // 4}")
    rolls = col.tick(now=DAY0 + 2 * 3600)
    hours = sorted((r for r in rolls if r.resolution == "hour"), key=lambda r: r.start)
    assert [h.users for h in hours] == [100, 100]  # p=14, linear counting: rounds to the truth
    assert [h.households for h in hours] == [25, 25]
    # user u made 3 requests of 1 + u bytes in each hour
    shares = [3 * (1 + u) for u in range(100)]
    expected = sum(shares) ** 2 / (len(shares) * sum(s * s for s in shares))
    assert hours[0].jfi == pytest.approx(expected)
    assert hours[1].jfi == pytest.approx(expected)


def test_principal_overflow_counts_requests_and_resets_each_hour():
    col = Collector("n", now=DAY0, salt=SALT, max_principals=3)
    for i in range(10):
        col.request_served("c", f"user{i % 5}", "local", 1, now=DAY0 + i)
    assert col.principal_overflow == 4  # user3 and user4, twice each
    col.request_served("c", "user4", "local", 1, now=DAY0 + 3600)  # new hour: room again
    assert col.principal_overflow == 4


def test_outage_requests_are_counted_at_once():
    col = Collector("n", now=DAY0, salt=SALT)
    col.request_served("c", "u", "local", 1, now=DAY0 + 1)
    col.record(UplinkChange(False), now=DAY0 + 2)
    col.record(RequestServed("c", "u", "mesh", 5), now=DAY0 + 3)
    col.request_served("c", "u", "mesh", 5, now=DAY0 + 4)
    col.record(UplinkChange(True), now=DAY0 + 5)
    col.request_served("c", "u", "local", 1, now=DAY0 + 6)
    t = col.totals()
    assert t["outage_served"] == 2 and t["outage_requests"] == 2
    assert t["outage_seconds"] == pytest.approx(3.0)


def test_bad_principal_is_refused_at_the_call_not_at_the_fold():
    col = Collector("n", now=DAY0, salt=SALT)
    with pytest.raises(TypeError, match="principal"):
        col.request_served("c", 42, "local", 1, now=DAY0)
    with pytest.raises(TypeError, match="household"):
        col.request_served("c", "u", "local", 1, now=DAY0, household=None)
    col.request_served("c", "u", "local", 1, now=DAY0)
    assert col.totals()["req_local"] == 1  # the refused calls counted nothing
    assert col.summary(now=DAY0 + 1).users.estimate() == pytest.approx(1, abs=0.01)
