"""Congestion detectors, AIMD mitigation order, hysteresis, and the bottleneck scenario."""

from __future__ import annotations

import math

import pytest

from meshcore.fairness.congestion import (
    CongestionController,
    CongestionParams,
    DeferReplication,
    SetClassRate,
    scaled_codel,
)
from meshcore.fairness.scenarios import run_congestion
from meshcore.kernels import BACKGROUND, ON_DEMAND

R = 1.25e6  # 10 Mbit/s


def test_codel_scaling_for_slow_links():
    # Fast link and small unit: RFC 8289 defaults.
    assert scaled_codel(125e6, 1500) == (0.005, 0.100)
    # 1 Mbit/s and 64 KiB chunks: 4 chunk times = 2.1 s target, 10x interval.
    t, i = scaled_codel(125000, 65536)
    assert t == pytest.approx(4 * 65536 / 125000) and i == pytest.approx(10 * t)
    with pytest.raises(ValueError, match="link_rate"):
        scaled_codel(0, 1)


def ctl(**kw):
    return CongestionController(R, chunk=16384, params=CongestionParams(**kw), now=0.0)


def run_ticks(c, t0, t1, feed):
    """Tick every interval from t0 to t1, calling feed(t) before each tick."""
    out = []
    t = t0
    while t < t1:
        t = c.get_timer()
        feed(t)
        out += [(t, e) for e in c.tick(now=t)]
    return out


def test_delay_detector_ignores_background_and_bursts():
    c = ctl()
    # Background waits for ever by design: not a signal.
    c.on_sojourn(10.0, priority=BACKGROUND, now=0.01)
    assert c.tick(now=c.get_timer()) == [] and not c.congested
    # One short wait in the interval keeps the minimum under target: a burst, not a queue.
    c.on_sojourn(1.0, now=0.6)
    c.on_sojourn(0.001, now=0.7)
    assert c.tick(now=c.get_timer()) == [] and c.signals == ()
    # A whole interval of waits above target: congestion.
    c.on_sojourn(0.2, now=1.1)
    c.on_sojourn(0.3, now=1.2)
    effects = c.tick(now=c.get_timer())
    assert c.signals == ("delay",) and c.congested
    assert effects == [SetClassRate(BACKGROUND, R / 2)]
    assert c.tick(now=0.0) == []  # not due yet


def test_rtt_inflation_over_base():
    c = ctl()
    for k in range(5):
        c.on_rtt(0.030 + 0.001 * k, now=0.1 * k)
    assert c.base_rtt == pytest.approx(0.030)
    c.tick(now=c.get_timer())
    assert not c.congested and c.queue_delay == pytest.approx(0.0)
    c.on_rtt(0.25, now=0.7)
    c.tick(now=c.get_timer())
    assert c.signals == ("rtt",) and c.queue_delay == pytest.approx(0.22)
    # The base forgets samples older than 10 minutes.
    c.on_rtt(0.5, now=700.0)
    c.on_rtt(0.4, now=700.5)
    assert c.base_rtt == pytest.approx(0.4)


def test_loss_and_timeouts():
    c = ctl()
    c.on_loss(1, 100, now=0.1)
    c.tick(now=c.get_timer())
    assert not c.congested
    c.on_loss(3, 20, now=0.7)
    c.on_timeout(now=0.8)
    c.tick(now=c.get_timer())
    assert c.signals == ("loss",)
    with pytest.raises(ValueError, match="lost"):
        c.on_loss(5, 2, now=1.0)


def test_mitigation_order_background_then_defer_then_on_demand_then_recovery():
    c = ctl(min_rate=R / 8, recover_after=1.0)
    congested = True

    c.on_rtt(0.03, now=0.0)  # the base
    assert c.tick(now=c.get_timer()) == []

    def feed(t):
        c.on_rtt(0.5 if congested else 0.031, now=t - 0.1)

    effects = [e for _, e in run_ticks(c, 0, 8, feed)]
    bg = [e.rate for e in effects if isinstance(e, SetClassRate) and e.priority == BACKGROUND]
    assert bg == [R / 2, R / 4, R / 8]  # AIMD halving to the floor
    first_defer = effects.index(DeferReplication(True))
    first_od = next(
        i for i, e in enumerate(effects) if isinstance(e, SetClassRate) and e.priority == ON_DEMAND
    )
    assert effects.index(SetClassRate(BACKGROUND, R / 8)) < first_defer < first_od
    assert c.od_rate == pytest.approx(R / 8) and c.detected_at is not None
    assert run_ticks(c, 8, 10, feed) == []  # everything at its floor
    # Signal clears: nothing changes until it has been clear for recover_after (hysteresis).
    congested = False
    t_clear = c.get_timer()
    rec = run_ticks(c, t_clear, t_clear + 30, feed)
    assert rec[0][0] - t_clear >= 1.0 - 1e-9
    kinds = [e for _, e in rec]
    # Reverse order: on-demand restored (cap removed) before replication resumes,
    # before background is uncapped.
    od_free = kinds.index(SetClassRate(ON_DEMAND, None))
    resume = kinds.index(DeferReplication(False))
    bg_free = kinds.index(SetClassRate(BACKGROUND, None))
    assert od_free < resume < bg_free
    assert not c.congested and c.bg_rate is None and c.od_rate is None and not c.deferring
    assert c.tick(now=c.get_timer()) == []


def test_new_signal_during_recovery_decreases_again():
    c = ctl(min_rate=R / 4, recover_after=0.5)
    c.on_loss(10, 10, now=0.1)
    c.tick(now=c.get_timer())
    c.tick(now=c.get_timer())  # clear, but hysteresis holds
    c.tick(now=c.get_timer() + 1.0)
    assert not c.congested and c.bg_rate == pytest.approx(R / 2 + R / 10)
    c.on_loss(10, 10, now=c.get_timer() - 0.01)
    assert c.tick(now=c.get_timer()) == [SetClassRate(BACKGROUND, (R / 2 + R / 10) / 2)]


def test_bad_params():
    with pytest.raises(ValueError, match="decrease"):
        ctl(decrease=1.0)


def test_bottleneck_congestion_is_detected_and_mitigated():
    drop = 10.0
    on = run_congestion(mitigate=True, drop_at=drop, duration=40.0)
    off = run_congestion(mitigate=False, drop_at=drop, duration=40.0)
    # Nothing fires before the bottleneck shrinks.
    assert all(t >= drop for t, _ in on.effects)
    # Detected within two CoDel intervals (about 1 s at 10 Mbit/s and 16 KiB slices).
    assert on.detected_at is not None and on.detected_at - drop <= 1.1
    # Background is slowed first, on-demand only after replication was deferred.
    kinds = [e for _, e in on.effects]
    assert kinds[0] == SetClassRate(BACKGROUND, R / 2)
    od = [i for i, e in enumerate(kinds) if isinstance(e, SetClassRate) and e.priority == ON_DEMAND]
    assert not od or od[0] > kinds.index(DeferReplication(True))
    # On-demand latency: fine before, bad right after the drop, restored by mitigation;
    # without mitigation the downstream queue grows without bound.
    assert on.latency_before < 0.15
    assert on.latency_congested > 1.0
    assert on.latency_after < 1.0
    assert off.latency_after > 20 * on.latency_after
    assert math.isfinite(on.background_rate_after)
