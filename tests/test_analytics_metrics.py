"""Metrics: counters, gauges, histograms, labels, cardinality cap, unknown names."""

from __future__ import annotations

import math

import pytest

from meshcore.analytics.metrics import (
    OVERFLOW,
    Counter,
    CounterChild,
    Registry,
    UnknownMetricError,
)
from meshcore.errors import MeshcoreError


def test_counter_children_are_slotted_and_count_exactly():
    reg = Registry()
    c = reg.counter("meshcore_test", "help", ("tier",))
    mesh = c.labels(tier="mesh")
    assert isinstance(mesh, CounterChild)
    assert not hasattr(mesh, "__dict__")
    for _ in range(1000):
        mesh.inc()
    mesh.inc(5)
    assert mesh.value == 1005
    assert c.labels("mesh") is mesh  # positional and keyword give the same child
    assert c.labels(tier="local").value == 0


def test_counter_refuses_negative_increments():
    c = Registry().counter("x", "h")
    with pytest.raises(ValueError, match="only go up"):
        c.inc(-1)
    c.inc(2.5)
    assert c.children[()].value == 2.5


def test_gauge_set_inc_dec():
    g = Registry().gauge("g", "h")
    g.set(10)
    g.inc(2)
    g.dec(5)
    assert g.children[()].value == 7


def test_histogram_buckets_follow_prometheus_le_rule():
    h = Registry().histogram("lat", "h", buckets=(0.1, 1.0, 10.0))
    for v in (0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 11.0, math.inf):
        h.observe(v)
    child = h.children[()]
    # v <= le goes into bucket le: 0.05, 0.1 | 0.5, 1.0 | 5, 10 | 11, inf
    assert child.counts == [2, 2, 2, 2]
    assert child.cumulative() == [2, 4, 6, 8]
    assert child.count == 8


def test_histogram_rejects_bad_buckets():
    reg = Registry()
    with pytest.raises(ValueError, match="strictly increasing"):
        reg.histogram("a", "h", buckets=(1.0, 1.0))
    with pytest.raises(ValueError, match="at least one"):
        reg.histogram("b", "h", buckets=(math.inf,))
    with pytest.raises(ValueError, match="reserved"):
        reg.histogram("c", "h", ("le",))
    h = reg.histogram("d", "h", buckets=(1, 2, math.inf))  # +Inf given explicitly is fine
    assert h.bounds == (1.0, 2.0)


def test_unknown_metric_name_is_a_clear_error():
    reg = Registry()
    reg.counter("meshcore_requests", "h")
    pattern = r"meshcore_reqests.*registered: meshcore_requests"
    with pytest.raises(UnknownMetricError, match=pattern):
        reg.get("meshcore_reqests")
    assert issubclass(UnknownMetricError, MeshcoreError)
    assert isinstance(reg.get("meshcore_requests"), Counter)
    assert "meshcore_requests" in reg


def test_registering_twice_and_bad_names():
    reg = Registry()
    reg.counter("a", "h")
    with pytest.raises(ValueError, match="already registered"):
        reg.gauge("a", "h")
    with pytest.raises(ValueError, match="metric name"):
        reg.counter("1abc", "h")
    with pytest.raises(ValueError, match="label name"):
        reg.counter("b", "h", ("__reserved",))
    with pytest.raises(ValueError, match="duplicate"):
        reg.counter("c", "h", ("x", "x"))
    with pytest.raises(ValueError, match="cap"):
        Registry(cap=0)


def test_label_errors_name_the_problem():
    c = Registry().counter("c", "h", ("tier", "class"))
    with pytest.raises(ValueError, match="missing label 'class'"):
        c.labels(tier="mesh")
    with pytest.raises(ValueError, match="unknown label"):
        c.labels(tier="mesh", **{"class": "x", "extra": "y"})
    with pytest.raises(ValueError, match="takes 2 label values"):
        c.labels("mesh")
    with pytest.raises(ValueError, match="strings"):
        c.labels("mesh", 3)
    with pytest.raises(ValueError, match="not both"):
        c.labels("mesh", tier="x")
    with pytest.raises(ValueError, match="has labels"):
        c.inc()
    with pytest.raises(ValueError, match="no labels"):
        Registry().counter("d", "h").labels("x")


def test_cardinality_cap_bounds_memory_and_counts_drops():
    reg = Registry(cap=10)
    c = reg.counter("c", "h", ("user",))
    for i in range(10_000):
        c.labels(f"u{i}").inc()
    assert len(c.children) == 10
    assert c.dropped == 9_990
    assert reg.dropped() == {"c": 9_990}
    samples = dict(c.samples())
    # totals stay right: the excess went to the single overflow child
    assert samples[(OVERFLOW,)].value == 9_990
    assert sum(ch.value for ch in samples.values()) == 10_000
    # an already known label set is still found after the cap is hit
    c.labels("u3").inc()
    assert c.children[("u3",)].value == 2
