"""The clock convention: monotonic time everywhere, calendar time from one Calendar."""

from __future__ import annotations

import pytest

from meshcore.analytics.events import Collector, RequestServed
from meshcore.cache import ContentCache, Evicted
from meshcore.clock import STEP_TOLERANCE, TRUSTED_AFTER, Calendar

D = b"d" * 32
NOW_2026 = 1_780_000_000.0


def test_observe_absorbs_drift_and_records_steps():
    cal = Calendar.at(NOW_2026, now=100.0)
    assert cal.wall(100.0) == NOW_2026 and cal.monotonic(NOW_2026) == 100.0
    assert cal.observe(NOW_2026 + 10.0 + STEP_TOLERANCE / 2, now=110.0) is None
    step = cal.observe(NOW_2026 + 3600.0, now=120.0)
    assert step is not None and step.delta == pytest.approx(3600.0 - 20.0)
    assert step.was_trusted and step.is_trusted and cal.steps == 1
    assert cal.wall(120.0) == NOW_2026 + 3600.0


def test_an_unset_clock_is_untrusted_until_it_steps():
    cal = Calendar.at(12.0, now=12.0)  # booted at the epoch
    assert not cal.trusted
    step = cal.observe(NOW_2026, now=30.0)
    assert step is not None and not step.was_trusted and step.is_trusted and cal.trusted
    assert Calendar().trusted  # no trusted_after: tests and simulations trust it
    assert not Calendar(0.0, trusted_after=TRUSTED_AFTER).trusted
    with pytest.raises(ValueError, match="wall"):
        cal.observe(float("nan"), now=1.0)
    with pytest.raises(ValueError, match="offset"):
        Calendar(float("inf"))


def test_expiry_is_suspended_on_an_unset_clock_and_follows_a_step():
    cal = Calendar.at(5.0, now=5.0)  # 1970: untrusted
    cache = ContentCache(1000, calendar=cal)
    # An HTTP response said "expires at 2026-...+1 h": stored now, kept while untrusted.
    cache.insert("page", [(D, 10)], now=5.0, expires_at=NOW_2026 + 3600)
    assert cache.get_timer() is None
    assert cache.handle_timer(now=1e6) == []
    assert cache.request("page", now=1e6)[0]
    # NTP answers: the expiry is an hour away on the monotonic clock now.
    cal.observe(NOW_2026, now=1e6)
    assert cache.get_timer() == pytest.approx(1e6 + 3600)
    assert cache.handle_timer(now=1e6 + 3599) == []
    effects = cache.handle_timer(now=1e6 + 3600)
    assert Evicted("page", "expired") in effects


def test_analytics_windows_are_calendar_hours():
    cal = Calendar.at(NOW_2026 - NOW_2026 % 3600, now=0.0)  # the top of an hour
    col = Collector("n", now=0.0, salt="a-long-salt", calendar=cal)
    assert col.get_timer() == pytest.approx(60.0)  # the calendar minute ends, monotonic
    col.record(RequestServed("x", "p", "local", 100), now=10.0)
    rollups = col.tick(now=3600.5)
    hours = [r for r in rollups if r.resolution == "hour"]
    assert [r.start for r in hours] == [cal.wall(0.0)]
    assert hours[0].get("req_local") == 1
