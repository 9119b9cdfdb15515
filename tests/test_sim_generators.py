"""Topology generators: sizes, links, segments, seeding, imported topologies."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from meshcore.net.routing import Routes
from meshcore.net.topology import Topology
from meshcore.sim.generators import (
    add_clients,
    chain,
    clusters_with_bridge,
    from_topology,
    grid,
    random_geometric,
    router_id,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "topologies"


def pairs(topo):
    return {frozenset((lk.source, lk.target)) for lk in topo.links()}


def reachable(topo, start):
    seen, todo = {start}, [start]
    while todo:
        for nb in topo.neighbours(todo.pop()):
            if nb not in seen:
                seen.add(nb)
                todo.append(nb)
    return seen


def test_grid():
    t = grid(5, 4)
    assert len(t.nodes) == 20
    assert len(pairs(t)) == 4 * (5 - 1) + 5 * (4 - 1)  # rows x (w-1) + columns x (h-1)
    assert t.num_links == 2 * len(pairs(t))
    assert t.neighbours(router_id(0)) == [router_id(1), router_id(5)]
    assert len(t.neighbours(router_id(6))) == 4
    assert Routes(t, self_id=router_id(0)).hops(router_id(19)) == 4 + 3  # Manhattan distance
    assert all(n.properties["segment"] == f"lan-{n.id}" for n in t.nodes.values())


def test_chain_has_high_latency_and_full_diameter():
    t = chain(10, latency=0.2)
    assert len(pairs(t)) == 9
    assert t.link("r0003", "r0004").properties["latency"] == 0.2
    assert Routes(t, self_id="r0000").hops("r0009") == 9


def test_random_geometric_is_seeded_connected_and_near_the_target_degree():
    a = random_geometric(300, degree=8, seed=5)
    b = random_geometric(300, degree=8, seed=5)
    c = random_geometric(300, degree=8, seed=6)
    assert [(lk.source, lk.target, lk.cost) for lk in a.links()] == [
        (lk.source, lk.target, lk.cost) for lk in b.links()]
    assert pairs(a) != pairs(c)
    assert len(a.nodes) == 300
    assert reachable(a, "r0000") == set(a.nodes)
    mean_degree = a.num_links / len(a.nodes)
    assert 6.0 < mean_degree < 10.0  # edge effects lower it a little
    for lk in a.links():
        loss = lk.properties["loss"]
        assert 0.0 <= loss <= 0.1
        assert lk.cost == pytest.approx(1 / (1 - loss) ** 2)
        assert lk.cost == a.link(lk.target, lk.source).cost  # symmetric


def test_random_geometric_without_forced_connectivity_can_be_split():
    t = random_geometric(60, radius=0.05, connected=False, seed=1)
    assert len(reachable(t, "r0000")) < 60
    t = random_geometric(60, radius=0.05, connected=True, seed=1)
    assert reachable(t, "r0000") == set(t.nodes)


def test_clients_share_their_router_lan_segment():
    t = grid(2, 2, clients=3)
    assert len(t.nodes) == 4 * 4
    members = [n.id for n in t.nodes.values() if n.properties["segment"] == "lan-r0000"]
    assert sorted(members) == ["r0000", "r0000.c0", "r0000.c1", "r0000.c2"]
    assert all(t.link(a, b).properties["l2"] for a in members for b in members if a != b)
    assert t.nodes["r0000.c1"].properties["role"] == "client"
    r = Routes(t, self_id="r0000.c0")
    assert r.hops("r0003.c2") == 4  # client -> router -> router -> router -> client
    add_clients(t, 1, routers=["r0001"])  # again: joins the existing segment
    assert t.nodes["r0001.c0"].properties["segment"] == "lan-r0001"


def test_clusters_with_bridge():
    t = clusters_with_bridge([30, 40, 20], seed=3, bridge_latency=0.1)
    assert len(t.nodes) == 90
    bridges = [lk for lk in t.links() if lk.properties.get("bridge")]
    assert len(bridges) == 2 * 2
    assert all(lk.properties["latency"] == 0.1 for lk in bridges)
    clusters = [t.nodes[lk.source].properties["cluster"] for lk in bridges]
    assert sorted(clusters) == [0, 1, 1, 2]
    assert reachable(t, "r0000") == set(t.nodes)
    for lk in bridges:
        t.remove_link(lk.source, lk.target)
    part = reachable(t, "r0000")
    assert part == {n for n, v in t.nodes.items() if v.properties["cluster"] == 0}


@pytest.mark.parametrize(
    ("call", "arg"),
    [
        (lambda: grid(0, 3), "w"),
        (lambda: grid(2, 2, bandwidth=0), "bandwidth"),
        (lambda: chain(True), "n"),
        (lambda: chain(3, latency=-1), "latency"),
        (lambda: random_geometric(10, radius=None, degree=None), "radius"),
        (lambda: random_geometric(10, degree=0), "degree"),
        (lambda: random_geometric(10, edge_loss=1.0), "edge_loss"),
        (lambda: clusters_with_bridge([]), "sizes"),
        (lambda: clusters_with_bridge([3, 0]), r"sizes\[1\]"),
        (lambda: add_clients(grid(1, 1), -1), "clients"),
        (lambda: from_topology(grid(1, 1), vpn_latency=-1), "vpn_latency"),
    ],
)
def test_bad_arguments(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


def test_from_topology_fills_link_parameters_and_keeps_the_original():
    t = Topology()
    t.add_link("a", "b", 4.0, symmetric=True, type="vpn")
    t.add_link("b", "c", 1.0, symmetric=True, latency=0.5)
    t.add_link("c", "d", math.inf)
    t.add_node("k", role="client", segment="lan-c")
    sim_t = from_topology(t, clients=2)
    assert t.link("a", "b").properties == {"type": "vpn"}
    ab = sim_t.link("a", "b").properties
    assert ab["latency"] == 0.03 and ab["loss"] == pytest.approx(0.5)
    assert sim_t.link("b", "c").properties["latency"] == 0.5
    assert sim_t.link("b", "c").properties["loss"] == 0.0
    assert math.isinf(sim_t.link("c", "d").cost)
    assert len(sim_t.nodes) == len(t.nodes) + 2 * 4  # clients for a, b, c, d; not for k
    assert "k.c0" not in sim_t.nodes


def test_from_an_imported_real_topology():
    path = DATA / "netjson" / "ninux-roma-olsr1-etx.json"
    if not path.exists():
        pytest.skip(f"sample data absent: {path}")
    from meshcore.net.importers import import_topology

    real = import_topology(path)
    t = from_topology(real, clients=1)
    assert len(t.nodes) == 2 * len(real.nodes)
    assert all("latency" in lk.properties for lk in t.links())
    net_nodes = [n for n in t.nodes if not n.endswith(".c0")]
    assert set(net_nodes) == set(real.nodes)


def test_freifunk_meshviewer_sample_runs_in_the_simulator():
    path = DATA / "meshviewer" / "freifunk-ulm-2020-meshviewer.json"
    if not path.exists():
        pytest.skip(f"sample data absent: {path}")
    from meshcore.net.importers import import_topology
    from meshcore.sim.engine import Simulator
    from meshcore.sim.network import SimNetwork

    real = import_topology(path)
    t = from_topology(real)
    vpn = [lk for lk in t.links() if lk.properties.get("type") == "vpn"]
    assert vpn and all(lk.properties["latency"] == 0.03 for lk in vpn)
    net = SimNetwork(Simulator(seed=1), t)
    a = vpn[0].source
    b = vpn[0].target
    assert net.route_hops(a, b) >= 1
    routes = Routes(t, self_id=a)
    # a node reached over a VPN tunnel is beyond the local mesh, whatever its address
    beyond = [n for n in t.nodes if routes.path(n)[:2] == [a, b]]
    assert beyond and all(routes.tier(n).name == "BEYOND_GATEWAY" for n in beyond)
