"""The topology model: observations, precedence, merge laws, cost graph, diff."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.kernels import shortest_paths
from meshcore.net.topology import Link, Topology, TopologyDiff, origin_rank

INF = math.inf


def test_add_link_adds_nodes_and_is_directed():
    t = Topology()
    t.add_link("a", "b", 2.0)
    assert set(t.nodes) == {"a", "b"}
    assert t.link("a", "b").cost == 2.0
    assert t.link("b", "a") is None
    assert t.neighbours("a") == ["b"]
    assert t.neighbours("b") == []
    assert t.num_links == 1


def test_symmetric_adds_both_directions_with_own_property_dicts():
    t = Topology()
    t.add_link("a", "b", 1.5, symmetric=True, type="wifi")
    ab, ba = t.link("a", "b"), t.link("b", "a")
    assert ab.cost == ba.cost == 1.5
    assert ab.properties == ba.properties == {"type": "wifi"}


def test_same_origin_replaces_its_observation():
    t = Topology()
    t.add_link("a", "b", 3.0)
    t.add_link("a", "b", 1.25, note="x")
    link = t.link("a", "b")
    assert link.cost == 1.25
    assert link.properties == {"note": "x"}
    assert link.origins == ("import",)


@pytest.mark.parametrize(
    ("origin", "rank"),
    [("daemon:babel", 0), ("daemon", 0), ("local", 1), ("gossip:n1", 2), ("import", 3), ("x", 4)],
)
def test_origin_rank(origin, rank):
    assert origin_rank(origin) == rank


def test_precedence_daemon_over_local_over_gossip_over_import():
    t = Topology()
    t.add_link("a", "b", 1.0, origin="import")
    t.add_link("a", "b", 5.0, origin="gossip:c")
    assert t.link("a", "b").cost == 5.0  # gossip beats import even when worse
    t.add_link("a", "b", 4.0, origin="local")
    assert t.link("a", "b").cost == 4.0
    t.add_link("a", "b", 9.0, origin="daemon:olsr1")
    link = t.link("a", "b")
    assert link.cost == 9.0
    assert link.origins == ("daemon:olsr1", "local", "gossip:c", "import")
    assert t.observations("a", "b") == {
        "import": 1.0,
        "gossip:c": 5.0,
        "local": 4.0,
        "daemon:olsr1": 9.0,
    }


def test_gossip_from_the_link_source_wins_then_lowest_cost():
    t = Topology()
    t.add_link("a", "b", 1.0, origin="gossip:z")
    t.add_link("a", "b", 3.0, origin="gossip:a")
    assert t.link("a", "b").cost == 3.0  # a is the authority on its own link
    t.remove_link("a", "b", origin="gossip:a")
    t.add_link("a", "b", 2.0, origin="gossip:y")
    assert t.link("a", "b").cost == 1.0  # lowest cost among other peers


def test_equal_cost_ties_break_on_origin_name():
    t = Topology()
    t.add_link("a", "b", 2.0, origin="daemon:olsr1", src="olsr")
    t.add_link("a", "b", 2.0, origin="daemon:babel", src="babel")
    assert t.link("a", "b").properties == {"src": "babel"}


def test_broken_links_are_kept_but_not_neighbours_and_not_in_cost_graph():
    t = Topology()
    t.add_link("a", "b", INF)
    t.add_link("a", "c", 1.0)
    assert t.link("a", "b").broken
    assert t.neighbours("a") == ["c"]
    graph, ids = t.to_cost_graph()
    assert ids == ["a", "b", "c"]
    assert graph.num_edges == 1
    assert graph.edge_cost(0, 1) == INF


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        ((1, "b", 1.0), TypeError),
        (("", "b", 1.0), ValueError),
        (("a", "a", 1.0), ValueError),
        (("a", "b", -1.0), ValueError),
        (("a", "b", float("nan")), ValueError),
        (("a", "b", "1"), TypeError),
        (("a", "b", True), TypeError),
    ],
)
def test_add_link_refuses_bad_arguments(args, exc):
    t = Topology()
    with pytest.raises(exc):
        t.add_link(*args)
    assert t.num_links == 0


def test_add_link_refuses_bad_origin():
    t = Topology()
    with pytest.raises(ValueError, match="origin"):
        t.add_link("a", "b", 1.0, origin="")
    with pytest.raises(TypeError, match="origin"):
        t.add_link("a", "b", 1.0, origin=3)


def test_numpy_cost_and_negative_zero():
    np = pytest.importorskip("numpy")
    t = Topology()
    t.add_link("a", "b", np.float32(0.5))
    t.add_link("b", "a", -0.0)
    assert t.link("a", "b").cost == 0.5
    assert math.copysign(1.0, t.link("b", "a").cost) == 1.0


def test_add_node_merges_label_and_properties():
    t = Topology()
    t.add_node("a", label="A", gateway=False)
    t.add_node("a", segment="s1")
    node = t.add_node("a", gateway=True)
    assert node.label == "A"
    assert node.properties == {"gateway": True, "segment": "s1"}
    with pytest.raises(TypeError):
        t.add_node(5)


def test_observe_and_update_node_take_any_property_key():
    t = Topology()
    t.observe("a", "b", 1.0, properties={"source": "x", "origin": "y", "cost": 3})
    t.update_node("a", label="A", properties={"label": "inner", "node_id": 7})
    assert t.link("a", "b").properties == {"source": "x", "origin": "y", "cost": 3}
    assert t.nodes["a"].label == "A"
    assert t.nodes["a"].properties == {"label": "inner", "node_id": 7}
    with pytest.raises(ValueError):
        t.observe("a", "a", 1.0)


def test_remove_link_by_origin_and_all():
    t = Topology()
    t.add_link("a", "b", 1.0, origin="local")
    t.add_link("a", "b", 2.0, origin="import")
    assert t.remove_link("a", "b", origin="gossip:x") is False
    assert t.remove_link("a", "b", origin="local") is True
    assert t.link("a", "b").cost == 2.0
    assert t.remove_link("a", "b", origin="import") is True
    assert t.link("a", "b") is None
    assert t.remove_link("a", "b") is False
    t.add_link("a", "b", 1.0, origin="local")
    t.add_link("a", "b", 2.0)
    assert t.remove_link("a", "b") is True
    assert t.num_links == 0
    assert set(t.nodes) == {"a", "b"}  # nodes stay


def test_remove_node_removes_its_links():
    t = Topology()
    t.add_link("a", "b", 1.0, symmetric=True)
    t.add_link("c", "b", 1.0)
    assert t.remove_node("b") is True
    assert t.remove_node("b") is False
    assert t.num_links == 0
    assert set(t.nodes) == {"a", "c"}
    assert t.neighbours("a") == []
    assert t.neighbours("nobody") == []


def test_rename_node_moves_links_and_router_id():
    t = Topology(router_id="self")
    t.add_link("self", "b", 1.0, symmetric=True, origin="local")
    t.add_node("self", label="me", gateway=True)
    assert t.rename_node("self", "n1") is True
    assert "self" not in t.nodes
    assert t.nodes["n1"].label == "me" and t.nodes["n1"].properties == {"gateway": True}
    assert t.link("n1", "b").origins == ("local",)
    assert t.link("b", "n1").cost == 1.0
    assert t.router_id == "n1"
    assert t.rename_node("missing", "x") is False
    assert t.rename_node("n1", "n1") is True
    with pytest.raises(ValueError, match="already exists"):
        t.rename_node("n1", "b")


def test_remove_origin_and_replace_origin():
    t = Topology()
    t.add_link("a", "b", 1.0, origin="daemon:babel")
    t.add_link("b", "c", 1.0, origin="daemon:babel")
    t.add_link("b", "c", 3.0, origin="local")
    fresh = Topology()
    fresh.add_link("a", "b", 2.0)
    t.replace_origin(fresh, origin="daemon:babel")
    assert t.link("a", "b").cost == 2.0
    assert t.link("b", "c").origins == ("local",)
    assert t.remove_origin("local") == 1
    assert t.link("b", "c") is None


def test_merge_tags_the_origin_and_merges_node_properties():
    mine = Topology()
    mine.add_link("a", "b", 1.0, origin="local")
    theirs = Topology()
    theirs.add_node("b", label="B", gateway=True)
    theirs.add_link("b", "c", 2.5, type="wifi")
    mine.merge(theirs, origin="gossip:b")
    assert mine.nodes["b"].label == "B" and mine.nodes["b"].properties["gateway"] is True
    link = mine.link("b", "c")
    assert link.origins == ("gossip:b",)
    assert link.properties == {"type": "wifi"}
    # merged properties are copies, not shared with the other graph
    theirs.nodes["b"].properties["gateway"] = False
    assert mine.nodes["b"].properties["gateway"] is True


def test_links_are_sorted_and_snapshots():
    t = Topology()
    for s, d in [("c", "a"), ("a", "c"), ("a", "b"), ("b", "a")]:
        t.add_link(s, d, 1.0)
    pairs = [(lk.source, lk.target) for lk in t.links()]
    assert pairs == sorted(pairs)
    link = t.link("a", "b")
    assert isinstance(link, Link)
    with pytest.raises(AttributeError):
        link.cost = 5.0  # frozen
    assert t.pairs() == {frozenset("ab"), frozenset("ac")}
    assert len(t) == 3
    assert "nodes=3" in repr(t)


def test_copy_is_deep():
    t = Topology(protocol="OLSR", version="1", metric="ETX", router_id="a", label="L")
    t.add_node("a", local_addresses=["10.0.0.1"])
    t.add_link("a", "b", 1.0, origin="local", tags=["x"])
    t.stats["records"] = 1
    c = t.copy()
    c.nodes["a"].properties["local_addresses"].append("10.0.0.2")
    c.add_link("a", "b", 5.0, origin="local")
    assert t.nodes["a"].properties["local_addresses"] == ["10.0.0.1"]
    assert t.link("a", "b").cost == 1.0
    assert (c.protocol, c.version, c.metric, c.router_id, c.label) == ("OLSR", "1", "ETX", "a", "L")
    assert c.stats == {"records": 1}
    assert not t.diff(t.copy())


def test_to_cost_graph_matches_a_hand_computed_route():
    t = Topology()
    t.add_link("a", "b", 1.0)
    t.add_link("b", "c", 1.0)
    t.add_link("a", "c", 3.0)
    t.add_link("c", "d", 0.5)
    graph, ids = t.to_cost_graph()
    sp = shortest_paths(graph, ids.index("a"))
    assert sp.cost[ids.index("c")] == 2.0
    assert sp.cost[ids.index("d")] == 2.5
    assert sp.hops[ids.index("d")] == 3


def test_to_cost_graph_uses_effective_costs():
    t = Topology()
    t.add_link("a", "b", 1.0)
    t.add_link("a", "b", INF, origin="daemon:babel")  # the daemon says it is broken
    graph, _ = t.to_cost_graph()
    assert graph.num_edges == 0


def test_diff_reports_nodes_links_and_cost_changes():
    old = Topology()
    old.add_link("a", "b", 1.0)
    old.add_link("b", "c", 1.0)
    old.add_link("c", "d", 2.0)
    new = Topology()
    new.add_link("a", "b", 1.0)
    new.add_link("b", "c", INF)
    new.add_link("c", "d", 2.0000001)
    new.add_link("a", "e", 3.0)
    new.remove_node("d")
    new.add_link("c", "x", 1.0)
    diff = old.diff(new)
    assert isinstance(diff, TopologyDiff) and diff
    assert diff.added_nodes == ("e", "x")
    assert diff.removed_nodes == ("d",)
    assert [(lk.source, lk.target) for lk in diff.added_links] == [("a", "e"), ("c", "x")]
    assert [(lk.source, lk.target) for lk in diff.removed_links] == [("c", "d")]
    assert [(c.source, c.target, c.old_cost, c.new_cost) for c in diff.changed_links] == [
        ("b", "c", 1.0, INF)
    ]
    as_dict = diff.to_dict()
    assert as_dict["changed_links"] == [
        {"source": "b", "target": "c", "old_cost": 1.0, "new_cost": None}
    ]
    assert as_dict["removed_nodes"] == ["d"]


def test_diff_rel_tol():
    a, b = Topology(), Topology()
    a.add_link("a", "b", 1.0)
    b.add_link("a", "b", 1.04)
    assert len(a.diff(b).changed_links) == 1
    assert not a.diff(b, rel_tol=0.05)
    with pytest.raises(ValueError, match="rel_tol"):
        a.diff(b, rel_tol=-1)


_ids = st.sampled_from(list("abcdef"))
_origins = st.sampled_from(["import", "local", "gossip:a", "gossip:b", "daemon:babel", "x"])
_costs = st.one_of(st.floats(0, 100, allow_nan=False), st.just(INF))
_obs = st.lists(st.tuples(_ids, _ids, _costs, _origins).filter(lambda o: o[0] != o[1]), max_size=30)


@settings(max_examples=150, deadline=None)
@given(_obs, st.randoms(use_true_random=False))
def test_effective_graph_is_independent_of_arrival_order(observations, rnd: random.Random):
    # Later observations of one (pair, origin) replace earlier ones, so keep the last.
    last = {(s, t, o): c for s, t, c, o in observations}
    items = [(s, t, c, o) for (s, t, o), c in last.items()]
    shuffled = items[:]
    rnd.shuffle(shuffled)
    a, b = Topology(), Topology()
    for s, t, c, o in items:
        a.add_link(s, t, c, origin=o)
    for s, t, c, o in shuffled:
        b.add_link(s, t, c, origin=o)
    assert list(a.links()) == list(b.links())
    assert not a.diff(b)


@settings(max_examples=100, deadline=None)
@given(_obs, _obs)
def test_merge_is_idempotent_and_commutative(first, second):
    def build(obs):
        t = Topology()
        for s, d, c, o in obs:
            t.add_link(s, d, c, origin=o)
        return t

    x, y = build(first), build(second)
    base1, base2 = Topology(), Topology()
    base1.merge(x, origin="gossip:a")
    base1.merge(y, origin="gossip:b")
    base2.merge(y, origin="gossip:b")
    base2.merge(x, origin="gossip:a")
    assert list(base1.links()) == list(base2.links())
    again = base1.copy()
    again.merge(x, origin="gossip:a")
    again.merge(y, origin="gossip:b")
    assert list(again.links()) == list(base1.links())


def test_each_module_imports_alone():
    import subprocess
    import sys

    modules = [
        "meshcore.net.topology",
        "meshcore.net._costs",
        "meshcore.net.netjson",
        "meshcore.net._cli",
        "meshcore.net.importers",
        "meshcore.net.importers._common",
        "meshcore.net.importers.netjson",
        "meshcore.net.importers.olsr1",
        "meshcore.net.importers.batman",
        "meshcore.net.importers.meshviewer",
        "meshcore.net.importers.iw80211s",
        "meshcore.net.importers.bmx6",
        "meshcore.net.importers.cnml",
    ]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('meshcore')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
