"""Mesh-wide merge: same result for any order, grouping and duplicate delivery."""

from __future__ import annotations

import contextlib
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.analytics.aggregate import MeshAggregate, NodeSummary
from meshcore.analytics.events import Collector
from meshcore.analytics.sketches import HyperLogLog, MisraGries
from meshcore.errors import DecodeError

DAY0 = 1_763_942_400


def _summary(node: str, version: int, seed: int, window_start: int = DAY0) -> NodeSummary:
    users, houses, top = HyperLogLog(6), HyperLogLog(6), MisraGries(4)
    for i in range(seed % 17 + 1):
        users.add(f"u{seed * 7 + i}")
        houses.add(f"h{seed + i // 2}")
        top.add(f"c{(seed + i) % 5}")
    return NodeSummary(
        node=node, window_start=window_start, window=86400, version=version,
        counters={"req_local": seed, "bytes_local": 100 * seed + version},
        users=users, households=houses, top=top,
        histograms={"lat": ((0.1, 1.0), (seed, 1, 0), 0.5 * seed)},
    )


summaries = st.lists(
    st.builds(
        _summary,
        node=st.sampled_from(["a", "b", "c", "d"]),
        version=st.integers(1, 4),
        seed=st.integers(0, 50),
        window_start=st.sampled_from([DAY0, DAY0 + 86400]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(summaries, st.randoms(use_true_random=False))
def test_merge_order_grouping_and_duplicates_do_not_matter(items, rnd):
    reference = MeshAggregate(items)
    # duplicates, shuffled, delivered to several nodes and joined in random groups
    deliveries = items + [rnd.choice(items) for _ in range(len(items))]
    rnd.shuffle(deliveries)
    parts = [MeshAggregate() for _ in range(3)]
    for s in deliveries:
        rnd.choice(parts).merge(s)
    rnd.shuffle(parts)
    left = MeshAggregate()
    for p in parts:
        left.join(p)
    right = MeshAggregate()
    right.join(parts[2])
    tmp = MeshAggregate()
    tmp.join(parts[1])
    tmp.join(parts[0])
    right.join(tmp)  # (c + (b + a)) vs ((a + b) + c)
    assert left.to_dict() == reference.to_dict() == right.to_dict()
    left.join(left)
    assert left.to_dict() == reference.to_dict()  # idempotent join
    for start, window in reference.windows():
        assert left.view(start, window).to_dict() == reference.view(start, window).to_dict()


@settings(max_examples=40, deadline=None)
@given(summaries)
def test_view_sums_latest_counters_per_node(items):
    agg = MeshAggregate(items)
    for start, window in agg.windows():
        latest = {}
        for s in items:
            if s.window_start != start:
                continue
            held = latest.get(s.node)
            if held is None or (s.version, s.digest()) > (held.version, held.digest()):
                latest[s.node] = s
        view = agg.view(start, window)
        assert view.nodes == tuple(sorted(latest))
        assert view.counters["req_local"] == sum(s.counters["req_local"] for s in latest.values())
        union = HyperLogLog(6)
        for s in latest.values():
            union.merge(s.users)
        assert view.users == union
        assert view.histograms["lat"][1][0] == sum(s.counters["req_local"]
                                                   for s in latest.values())


def test_newer_version_replaces_older_and_stale_is_ignored():
    agg = MeshAggregate()
    assert agg.merge(_summary("a", 2, 5))
    assert not agg.merge(_summary("a", 1, 9))  # late, older
    assert not agg.merge(_summary("a", 2, 5))  # duplicate
    assert agg.merge(_summary("a", 3, 1))
    assert agg.view(DAY0, 86400).counters["req_local"] == 1
    with pytest.raises(TypeError):
        agg.merge("nope")
    empty = agg.view(DAY0 + 86400, 86400)
    assert empty.nodes == () and empty.users is None and empty.to_dict()["top"] is None


def test_wire_round_trip_from_a_collector():
    col = Collector("node-x", now=DAY0, salt="0123456789abcdef", hll_precision=8)
    for i in range(300):
        col.request_served(f"c{i % 7}", f"u{i % 40}", "mesh", 1000, now=DAY0 + i,
                           latency=0.02)
    s = col.summary(now=DAY0 + 400)
    back = NodeSummary.from_bytes(s.to_bytes())
    assert back.to_dict() == s.to_dict()
    assert back.digest() == s.digest()
    assert back.counters["req_mesh"] == 300


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_decode_error(data):
    with contextlib.suppress(DecodeError):
        NodeSummary.from_bytes(data)


def test_malformed_summaries_raise_decode_error():
    good = _summary("a", 1, 3).to_dict()
    import json

    def enc(d):
        return zlib.compress(json.dumps(d).encode())

    bad_variants = [
        {**good, "format": 2},
        {**good, "node": ""},
        {**good, "window": 0},
        {**good, "version": "1"},
        {**good, "counters": {"x": "1"}},
        {**good, "users": "!!"},
        {**good, "households": good["users"][:-8] + "AAAAAAAA"},
        {**good, "top": {"k": 4, "n": 1, "error": 0, "counts": [["a", 1, 0]]}},
        {**good, "top": {"k": 1, "n": 1, "error": 0, "counts": [["a", 1], ["b", 1]]}},
        {**good, "top": {"k": 4, "n": 1, "error": 0, "counts": [["a", 5]]}},
        {**good, "histograms": {"lat": [[1.0], [1], 0]}},
        {k: v for k, v in good.items() if k != "top"},
        [1, 2],
    ]
    small = HyperLogLog(5)
    bad_variants.append({**good, "households": __import__("base64").b64encode(
        small.to_bytes()).decode()})
    for bad in bad_variants:
        with pytest.raises(DecodeError):
            NodeSummary.from_bytes(enc(bad))
    with pytest.raises(DecodeError, match="max_size"):
        NodeSummary.from_bytes(zlib.compress(b" " * 5000), max_size=1000)
