"""Link quality: ETX, loss, RTT and throughput against hand-computed values."""

from __future__ import annotations

import math

import pytest

from meshcore.net._linkquality import LinkQuality


def feed(lq: LinkQuality, pattern: str, *, tau: float = 1.0, start: float = 0.0) -> float:
    """Probes at start + i*tau for each '1' in pattern; returns the time of the last slot."""
    t = start
    for i, c in enumerate(pattern):
        t = start + i * tau
        if c == "1":
            lq.add_probe(tau, now=t)
    return t


def test_perfect_link_has_etx_one():
    lq = LinkQuality(window=10)
    t = feed(lq, "1" * 20)
    lq.set_forward_ratio(1.0)
    assert lq.dr(now=t) == 1.0
    assert lq.etx(now=t) == 1.0
    assert lq.loss(now=t) == 0.0


def test_etx_from_two_way_ratios_hand_computed():
    # De Couto's example shape: 8 of the last 10 probes heard (dr = 0.8); the
    # neighbour hears half of ours (df = 0.5): a packet and its ack both get
    # through with probability 0.4, so 1/0.4 = 2.5 transmissions on average.
    lq = LinkQuality(window=10)
    t = feed(lq, "1111111111" + "1101101111")  # last 10 slots: 8 ones
    lq.set_forward_ratio(0.5)
    assert lq.dr(now=t) == pytest.approx(0.8)
    assert lq.etx(now=t) == pytest.approx(2.5)
    assert lq.loss(now=t) == pytest.approx(0.6)


def test_silence_drains_the_window():
    lq = LinkQuality(window=4)
    feed(lq, "1111")  # probes at 0..3
    lq.set_forward_ratio(1.0)
    # at t=5 the window (1, 5] holds the probes at 2 and 3: 2 of 4 slots
    assert lq.dr(now=5.0) == pytest.approx(0.5)
    assert lq.dr(now=100.0) == 0.0
    assert lq.etx(now=100.0) == math.inf


def test_warm_up_does_not_read_as_loss():
    lq = LinkQuality(window=10)
    lq.add_probe(2.0, now=0.0)
    lq.add_probe(2.0, now=2.0)
    # two slots elapsed, two probes heard: a perfect young link, not 2/10
    assert lq.dr(now=2.5) == 1.0


def test_etx_is_infinite_until_forward_ratio_known():
    lq = LinkQuality()
    feed(lq, "11111")
    assert lq.df is None
    assert lq.etx(now=4.0) == math.inf
    lq.set_forward_ratio(0.0)
    assert lq.etx(now=4.0) == math.inf
    lq.set_forward_ratio(7.0)  # clamped
    assert lq.df == 1.0


def test_empty_link():
    lq = LinkQuality()
    assert lq.dr(now=1.0) == 0.0
    assert lq.loss(now=1.0) == 1.0


def test_rtt_ewma_follows_rfc6298_gain():
    lq = LinkQuality()
    assert lq.add_rtt_sample(0.100)
    assert lq.rtt == pytest.approx(0.100)
    assert lq.add_rtt_sample(0.020)
    # srtt = 7/8 * 100 ms + 1/8 * 20 ms = 90 ms
    assert lq.rtt == pytest.approx(0.090)
    assert lq.rtt_min == pytest.approx(0.020)
    assert not lq.add_rtt_sample(-0.001)
    assert not lq.add_rtt_sample(61.0)
    assert lq.rtt == pytest.approx(0.090)


def test_throughput_samples():
    lq = LinkQuality()
    lq.add_throughput_sample(1_000_000, 2.0, now=0.0)  # 500 kB/s
    lq.add_throughput_sample(100_000, 1.0, now=1.0)  # 100 kB/s
    # 3/4 * 500k + 1/4 * 100k = 400k
    assert lq.throughput == pytest.approx(400_000)
    assert lq.throughput_max == pytest.approx(500_000)
    with pytest.raises(ValueError, match="seconds"):
        lq.add_throughput_sample(1, 0.0, now=0.0)
    with pytest.raises(ValueError, match="bytes"):
        lq.add_throughput_sample(-1, 1.0, now=0.0)


def test_argument_errors():
    with pytest.raises(ValueError, match="window"):
        LinkQuality(window=0)
    with pytest.raises(ValueError, match="interval"):
        LinkQuality().add_probe(0.0, now=0.0)
