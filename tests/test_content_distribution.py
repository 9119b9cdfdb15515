"""Distribution policies: evaluate(manifest, context) for every policy and retention."""

from __future__ import annotations

import enum
import io
from collections import Counter

import pytest
from _content_util import keypair, payload, settings
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import meshcore.tiers
from meshcore.content.distribution import (
    Action,
    DistributionContext,
    evaluate,
    normalize_tier,
    rendezvous_rank,
)
from meshcore.content.manifest import ChunkRef, Manifest
from meshcore.content.node import ContentNode, UnknownContentError

KEY = keypair(5)
D1, D2, D3 = (bytes([i]) * 32 for i in (1, 2, 3))


def manifest(distribution="on-demand", retention=None, expires=None, chunks=None):
    chunks = chunks or (ChunkRef(D1, 100), ChunkRef(D2, 50), ChunkRef(D1, 100))
    return Manifest(name="x", size=sum(c.size for c in chunks), media_type="text/plain",
                    chunks=tuple(chunks), tags=(), access="public", distribution=distribution,
                    retention=retention, publisher=KEY.public, created=100, expires=expires)


def ctx(**kw):
    kw.setdefault("node_id", "n0")
    kw.setdefault("free_bytes", 10_000)
    return DistributionContext(**kw)


def test_missing_bytes_count_repeated_chunks_once():
    p = evaluate(manifest("push-all"), ctx(held={D2}), now=200)
    assert p.action is Action.FETCH_NOW and p.missing_bytes == 100


def test_expired_must_not_store():
    p = evaluate(manifest("push-all", expires=150), ctx(held={D1, D2}), now=150)
    assert p.action is Action.MUST_NOT_STORE and "expired" in p.reason


def test_no_store():
    p = evaluate(manifest("no-store"), ctx(held={D1, D2}), now=200)
    assert p.action is Action.MUST_NOT_STORE


def test_local_only():
    assert evaluate(manifest("local-only"), ctx(origin=True), now=200).action is Action.KEEP
    p = evaluate(manifest("local-only"), ctx(held={D1, D2}), now=200)
    assert p.action is Action.MUST_NOT_STORE and "not the publishing node" in p.reason


def test_push_all():
    m = manifest("push-all", expires=900)
    assert evaluate(m, ctx(), now=200).action is Action.FETCH_NOW
    keep = evaluate(m, ctx(held={D1, D2}), now=200)
    assert keep.action is Action.KEEP and keep.pinned_until == 900
    short = evaluate(m, ctx(free_bytes=149), now=200)
    assert short.action is Action.MAY_EVICT and "only 149 free" in short.reason


@pytest.mark.parametrize(
    ("tier", "scope", "designated"),
    [
        ("same-segment", "one-hop", True),
        ("one-hop", "one-hop", True),
        ("multi-hop", "one-hop", False),
        ("multi-hop", "multi-hop", True),
        ("beyond-gateway", "multi-hop", False),
        ("unreachable", "unreachable", True),
    ],
)
def test_push_tier(tier, scope, designated):
    p = evaluate(manifest("push-tier"), ctx(tier=tier, push_tier_scope=scope), now=200)
    assert (p.action is Action.FETCH_NOW) is designated
    if not designated:
        assert p.action is Action.MAY_EVICT and "beyond" in p.reason


def test_push_tier_origin_always_designated():
    p = evaluate(manifest("push-tier"), ctx(tier="beyond-gateway", origin=True), now=200)
    assert p.action is Action.FETCH_NOW


def test_on_demand():
    assert evaluate(manifest(), ctx(), now=200).action is Action.MAY_EVICT
    assert evaluate(manifest(), ctx(held={D1, D2}), now=200).action is Action.MAY_EVICT


def test_retention_pin_until_expiry_and_ttl():
    m = manifest("on-demand", retention="pin-until-expiry", expires=1000)
    p = evaluate(m, ctx(held={D1, D2}), now=200)
    assert p.action is Action.KEEP and p.pinned_until == 1000
    # a pin protects only what is held: a missing item is still fetched on demand
    assert evaluate(m, ctx(), now=200).action is Action.MAY_EVICT
    t = manifest("on-demand", retention="ttl:60s")
    kept = evaluate(t, ctx(held={D1, D2}, stored_at=100.0), now=159)
    assert kept.action is Action.KEEP and kept.pinned_until == 160
    lapsed = evaluate(t, ctx(held={D1, D2}, stored_at=100.0), now=160)
    assert lapsed.action is Action.MAY_EVICT and "lapsed" in lapsed.reason
    # after the pin, the distribution policy still decides
    tp = manifest("push-all", retention="ttl:60s")
    assert evaluate(tp, ctx(held={D1, D2}, stored_at=100.0), now=160).action is Action.KEEP
    fresh = evaluate(t, ctx(held={D1, D2}), now=500)  # stored just now
    assert fresh.action is Action.KEEP and fresh.pinned_until == 560


def test_tiers_accept_enums_and_reject_unknown():
    class Tier(enum.Enum):
        SAME_SEGMENT = 0
        ONE_HOP = 1

    class Named(enum.Enum):
        X = "multi-hop"

    assert normalize_tier(Tier.SAME_SEGMENT) is meshcore.tiers.Tier.SAME_SEGMENT
    assert normalize_tier(Named.X).label == "multi-hop"
    assert normalize_tier(" Beyond_Gateway ").label == "beyond-gateway"
    assert normalize_tier(meshcore.tiers.Tier.ONE_HOP) is meshcore.tiers.Tier.ONE_HOP
    with pytest.raises(ValueError, match="tier"):
        normalize_tier("next-door")
    with pytest.raises(TypeError):
        normalize_tier(3)


def _cluster(n):
    return [f"node-{i:03d}" for i in range(n)]


@hsettings(max_examples=40, deadline=None)
@given(k=st.integers(1, 8), n=st.integers(1, 30), cid=st.binary(min_size=32, max_size=32))
def test_replicate_k_designates_exactly_min_k_n_nodes(k, n, cid):
    nodes = _cluster(n)
    m = manifest(f"replicate:{k}")
    object.__setattr__(m, "_encoded", None)
    fetchers = []
    for me in nodes:
        others = [x for x in nodes if x != me]
        rank = rendezvous_rank(cid, me, others)
        fetchers.append(rank < k)
    assert sum(fetchers) == min(k, n)
    # ranks are a permutation: every node computes the same order
    ranks = sorted(rendezvous_rank(cid, me, nodes) for me in nodes)
    assert ranks == list(range(n))


def test_replicate_evaluate_and_minimal_disruption():
    nodes = _cluster(20)
    m = manifest("replicate:3")
    chosen = [x for x in nodes
              if evaluate(m, ctx(node_id=x, known_nodes=nodes), now=200).action is Action.FETCH_NOW]
    assert len(chosen) == 3
    held = evaluate(m, ctx(node_id=chosen[0], known_nodes=nodes, held={D1, D2}), now=200)
    assert held.action is Action.KEEP and "rendezvous rank" in held.reason
    # removing a node that was not chosen changes nothing (rendezvous property)
    spare = next(x for x in nodes if x not in chosen)
    rest = [x for x in nodes if x != spare]
    again = [x for x in rest
             if evaluate(m, ctx(node_id=x, known_nodes=rest), now=200).action is Action.FETCH_NOW]
    assert again == chosen


def test_replicate_spreads_load():
    nodes = _cluster(10)
    counts: Counter[str] = Counter()
    for i in range(400):
        cid = i.to_bytes(32, "big")
        for me in nodes:
            if rendezvous_rank(cid, me, nodes) < 2:
                counts[me] += 1
    assert sum(counts.values()) == 800
    assert min(counts.values()) > 50 and max(counts.values()) < 110  # ~80 each


def test_tiers_order():
    tiers = [normalize_tier(t) for t in ("unreachable", "one-hop", "same-segment", "local")]
    assert [t.label for t in sorted(tiers)] == ["local", "same-segment", "one-hop", "unreachable"]


def test_node_placement_uses_its_own_state(tmp_path):
    with ContentNode(settings(tmp_path), now=0.0) as node:
        admin = node.settings.principal("local")
        r = node.publish(admin, io.BytesIO(payload(10_000)), keypair=KEY, now=100.0, name="a",
                         distribution="replicate:2", retention="ttl:1h")
        p = node.placement(r.content_id, node_id="me", tier="one-hop", now=200.0)
        assert p.action is Action.KEEP and p.pinned_until == 3700
        p = node.placement(r.content_id, node_id="me", tier="one-hop", now=4000.0)
        assert p.action is Action.KEEP  # ttl lapsed, but rank 0 of 1 < 2: designated
        assert node.catalog.pinned(now=200.0) == [(r.content_id, 3700)]
        assert node.catalog.pinned(now=4000.0) == []
        with pytest.raises(UnknownContentError):
            node.placement(bytes(32), node_id="me", now=1.0)
