"""Routes: costs, next hops, tiers (never by address), selection and failover."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.net.routing import Holder, Routes, Tier
from meshcore.net.topology import Topology
from meshcore.sim.generators import random_geometric


def mesh():
    """me(seg A, with client c) - r1 - r2 (gateway) - r3 ; me - r4 (vpn) - r5; r1 - r5."""
    t = Topology()
    t.add_node("me", segment="A")
    t.add_node("c", segment="A")
    t.add_node("r2", gateway=True)
    t.add_link("me", "c", 1.0, symmetric=True, l2=True)
    t.add_link("me", "r1", 1.5, symmetric=True)
    t.add_link("r1", "r2", 1.0, symmetric=True)
    t.add_link("r2", "r3", 1.0, symmetric=True)
    t.add_link("me", "r4", 1.0, symmetric=True, type="vpn")
    t.add_link("r4", "r5", 1.0, symmetric=True)
    t.add_link("r1", "r5", 5.0, symmetric=True)
    t.add_node("island")
    return t


def test_costs_next_hops_hops_and_paths():
    r = Routes(mesh(), self_id="me")
    assert r.cost("me") == 0.0 and r.hops("me") == 0 and r.next_hop("me") == "me"
    assert r.cost("r3") == 3.5
    assert r.next_hop("r3") == "r1"
    assert r.hops("r3") == 3
    assert r.path("r3") == ["me", "r1", "r2", "r3"]
    assert r.path("r5") == ["me", "r4", "r5"]
    assert math.isinf(r.cost("island")) and r.hops("island") is None
    assert r.next_hop("island") is None and r.path("island") == []
    assert math.isinf(r.cost("nobody")) and r.tier("nobody") is Tier.UNREACHABLE
    assert "Routes(self_id='me'" in repr(r)


def test_tiers():
    r = Routes(mesh(), self_id="me")
    assert r.tier("me") is Tier.LOCAL
    assert r.tier("c") is Tier.SAME_SEGMENT
    assert r.tier("r1") is Tier.ONE_HOP
    assert r.tier("r2") is Tier.MULTI_HOP  # the gateway itself is not beyond itself
    assert r.tier("r3") is Tier.BEYOND_GATEWAY  # through r2
    assert r.tier("r4") is Tier.BEYOND_GATEWAY  # over a vpn link
    assert r.tier("r5") is Tier.BEYOND_GATEWAY
    assert r.tier("island") is Tier.UNREACHABLE
    assert Tier.LOCAL < Tier.SAME_SEGMENT < Tier.ONE_HOP < Tier.MULTI_HOP < Tier.BEYOND_GATEWAY


def test_direct_l2_link_is_same_segment_without_segment_property():
    t = Topology()
    t.add_link("a", "b", 1.0, symmetric=True, l2=True)
    t.add_link("a", "z", 1.0, symmetric=True, uplink=True)
    r = Routes(t, self_id="a")
    assert r.tier("b") is Tier.SAME_SEGMENT
    assert r.tier("z") is Tier.BEYOND_GATEWAY


def test_a_multi_hop_private_mesh_is_not_local():
    """Lesson from the field: 10.x everywhere does not make a node local."""
    t = Topology()
    ids = [f"10.0.0.{i}" for i in range(1, 6)]
    for i, nid in enumerate(ids):
        t.add_node(nid, local_addresses=[nid, f"10.1.{i}.1"])
    for a, b in itertools.pairwise(ids):
        t.add_link(a, b, 1.0, symmetric=True)
    r = Routes(t, self_id=ids[0])
    assert r.tier(ids[1]) is Tier.ONE_HOP
    assert [r.tier(n) for n in ids[2:]] == [Tier.MULTI_HOP] * 3
    ranked = r.select_sources(list(reversed(ids[1:])), 10_000)
    assert [h.node_id for h in ranked] == ids[1:]


def test_implicit_same_segment_links():
    t = Topology()
    t.add_node("a", segment="s")
    t.add_node("b", segment="s")
    t.add_node("c", segment=["s", "t"])
    t.add_link("a", "b", 3.0)
    r = Routes(t, self_id="a", l2_cost=0.5)
    assert r.cost("b") == 1.0  # explicit a->b at 3 loses to a->c->b at 0.5 + 0.5
    assert r.cost("c") == 0.5
    assert r.tier("b") is Tier.SAME_SEGMENT


def test_update_is_incremental_and_rebuilds_only_for_new_nodes():
    t = mesh()
    r = Routes(t, self_id="me")
    assert r.rebuilds == 1
    t2 = t.copy()
    t2.add_link("r1", "r2", math.inf)  # break the link (both ways)
    t2.add_link("r2", "r1", math.inf)
    v = r.version
    assert r.update(t2) == 2
    assert r.rebuilds == 1 and r.version == v + 1
    assert r.cost("r3") == math.inf
    assert r.update(t2) == 0 and r.version == v + 1
    t3 = t2.copy()
    t3.add_link("r5", "r3", 1.0, symmetric=True)
    assert r.update(t3) == 2
    assert r.cost("r3") == 3.0 and r.path("r3") == ["me", "r4", "r5", "r3"]
    t4 = t3.copy()
    t4.add_link("r3", "newcomer", 1.0, symmetric=True)
    assert r.update(t4) == -1 and r.rebuilds == 2
    assert r.cost("newcomer") == 4.0
    t5 = t4.copy()
    t5.nodes["r5"].properties["segment"] = "A"
    assert r.update(t5) == -1
    assert r.tier("r5") is Tier.SAME_SEGMENT
    with pytest.raises(KeyError):
        r.update(Topology())
    with pytest.raises(TypeError):
        r.update("x")


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_incremental_updates_equal_a_full_rebuild(seed):
    rng = random.Random(seed)
    t = random_geometric(40, seed=seed, clients=1)
    me = sorted(t.nodes)[rng.randrange(len(t.nodes))]
    r = Routes(t, self_id=me)
    links = [(lk.source, lk.target) for lk in t.links()]
    for _ in range(10):
        a, b = links[rng.randrange(len(links))]
        t.add_link(a, b, rng.choice([math.inf, rng.uniform(1, 5)]), origin="sim")
        if rng.random() < 0.5:
            r.update(t)
        else:
            r.set_link(a, b, t.link(a, b).cost)
        fresh = Routes(t, self_id=me)
        for nid in t.nodes:
            assert r.cost(nid) == fresh.cost(nid)
            assert r.next_hop(nid) == fresh.next_hop(nid)
            assert r.tier(nid) == fresh.tier(nid)


def test_set_link():
    r = Routes(mesh(), self_id="me")
    assert r.set_link("r1", "r2", 0.5) is True
    assert r.cost("r3") == 3.0
    assert r.set_link("r1", "r2", 0.5) is False
    assert r.set_link("me", "r1", math.inf) is True
    assert r.path("r3") == ["me", "r4", "r5", "r1", "r2", "r3"]
    with pytest.raises(KeyError, match="target"):
        r.set_link("me", "zz", 1.0)


def test_select_sources_formula_and_order():
    t = mesh()
    r = Routes(t, self_id="me", default_rate=1000.0, per_hop_delay=0.01)
    size = 5000
    ranked = r.select_sources(
        ["r3", "r1", Holder("c", load=3, capacity=4), "island", Holder("r2", rate=500.0)], size
    )
    assert [h.node_id for h in ranked] == ["c", "r1", "r2", "r3"]  # island unreachable
    c, r1, r2, r3 = ranked
    assert (c.tier, r1.tier, r2.tier, r3.tier) == (
        Tier.SAME_SEGMENT, Tier.ONE_HOP, Tier.MULTI_HOP, Tier.BEYOND_GATEWAY)
    # size * cost / rate / (1 - u) + hops * delay, computed by hand
    assert c.expected_seconds == pytest.approx(5000 * 1.0 / 1000 / (1 - 0.75) + 0.01)
    assert r1.expected_seconds == pytest.approx(5000 * 1.5 / 1000 + 0.01)
    assert r2.expected_seconds == pytest.approx(5000 * 2.5 / 500 + 0.02)
    assert r2.next_hop == "r1" and r2.hops == 2 and r2.cost == 2.5
    assert c.utilisation == 0.75


def test_lowest_tier_wins_unless_saturated_and_loads_override():
    t = Topology()
    t.add_node("me", segment="A")
    t.add_node("lan", segment="A")
    t.add_link("me", "lan", 4.0, symmetric=True)  # a poor LAN link, still same segment
    t.add_link("me", "near", 1.0, symmetric=True)
    t.add_link("near", "far", 1.0, symmetric=True)
    r = Routes(t, self_id="me")
    order = [h.node_id for h in r.select_sources(["far", "near", "lan"], 10**6)]
    assert order == ["lan", "near", "far"]
    order = [h.node_id for h in r.select_sources(["far", "near", "lan"], 10**6,
                                                 loads={"lan": 1.0, "near": (5, 10)})]
    assert order == ["near", "far", "lan"]  # lan saturated: last, whatever its tier
    # same tier: cheaper expected transfer first, load-adjusted
    t.add_link("me", "near2", 1.0, symmetric=True)
    r = Routes(t, self_id="me")
    order = [h.node_id for h in r.select_sources(["near", "near2"], 10**6, loads={"near": 0.5})]
    assert order == ["near2", "near"]
    order = [h.node_id for h in r.select_sources(["near2", "near"], 10**6)]
    assert order == ["near", "near2"]  # tie broken by id
    assert r.select_sources([], 1) == []
    assert r.select_sources(["me"], 10)[0].expected_seconds == 0.0
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="size"):
            r.select_sources(["near"], bad)


def test_failover_yields_next_holder_and_reranks_after_route_change():
    r = Routes(mesh(), self_id="me")
    it = r.failover(["r3", "r1", "c", "island"], 1000)
    assert next(it).node_id == "c"
    r.set_link("me", "r1", math.inf)  # the path to r1 breaks (r1 still reachable via r4-r5)
    nxt = next(it)
    assert nxt.node_id == "r1" and nxt.tier is Tier.BEYOND_GATEWAY
    r.set_link("r5", "r1", math.inf)  # r1 and r3 unreachable now
    assert list(it) == []
    assert it.current is None
    r.set_link("me", "r1", 1.5)
    assert next(it).node_id == "r3"  # reachable again, untried
    it.retry("c")
    it.retry("zz")
    assert next(it).node_id == "c"
    with pytest.raises(StopIteration):
        next(it)


def test_bad_arguments():
    with pytest.raises(KeyError, match="self_id"):
        Routes(mesh(), self_id="zz")
    with pytest.raises(TypeError, match="topology"):
        Routes({}, self_id="me")
    with pytest.raises(ValueError, match="default_rate"):
        Routes(mesh(), self_id="me", default_rate=0)
    with pytest.raises(ValueError, match="per_hop_delay"):
        Routes(mesh(), self_id="me", per_hop_delay=-1)
