"""Routes from one node (meshcore.net.routing.Routes) vs scipy.sparse.csgraph.dijkstra.

Workload: the simulator's seeded random geometric mesh
(``meshcore.sim.generators.random_geometric``, mean degree 7, ETX costs from
distance), 200 and 1,000 routers [quick: 200 and 400]; ``self`` is router
``r0000``. scipy gets a ``csr_matrix`` of the same effective links, built
once outside the timings, and computes one source with predecessors
(``dijkstra(csr, indices=s, return_predecessors=True)``), the same
information Routes keeps (costs and the tree; Routes adds hop counts and next
hops).

Groups:

* ``net-routes-build-N``: a full build from a Topology:
  ``Routes(topology, self_id=...)`` (ours) against the same job done with
  scipy: ``Topology.to_cost_graph()``, a ``csr_matrix`` and one-source
  Dijkstra (peer). Both read the Topology, which dominates at these sizes.
* ``net-routes-incremental-N``: one link changes (a random existing link to
  a new cost uniform in [1, 3], or one time in five broken): ours applies it
  with ``Routes.set_link`` (the kernel's incremental update); the peer
  recomputes the source from scratch with scipy on the changed matrix
  (built untimed). Every round starts from the base state (the untimed setup
  restores the previous change).
* ``net-routes-update-N``: the same changes arriving as a whole new
  Topology (a daemon import): ``Routes.update(topology)`` (diff, then
  ``set_link``) against scipy's read-build-recompute.
"""

from __future__ import annotations

import math
import random
from functools import cache

import pytest
from _harness import describe, scale

from meshcore.net.routing import Routes
from meshcore.sim.generators import random_geometric

sparse = pytest.importorskip("scipy.sparse")
csgraph = pytest.importorskip("scipy.sparse.csgraph")

SIZES = [200, scale(1000, 400)]
ROUNDS = scale(20, 5)
INCR_ROUNDS = scale(200, 40)
SELF = "r0000"


@cache
def mesh(n):
    topo = random_geometric(n, degree=7, seed=20261125 + n)
    graph, ids = topo.to_cost_graph()
    s, d, c = graph.edges()
    csr = sparse.csr_matrix((c, (s, d)), shape=(n, n))
    changes = []
    rng = random.Random(n)
    links = [(lk.source, lk.target, lk.cost) for lk in topo.links()]
    for _ in range(INCR_ROUNDS + 2):
        a, b, old = links[rng.randrange(len(links))]
        new = math.inf if rng.random() < 0.2 else rng.uniform(1.0, 3.0)
        changes.append((a, b, old, new))
    info = {"nodes": n, "links": graph.num_edges}
    return topo, csr, ids.index(SELF), ids, changes, info


def scipy_from_topology(topo, s):
    """The peer's whole job from a Topology: read it, build the matrix, one source."""
    graph, ids = topo.to_cost_graph()
    n = len(ids)
    a, b, c = graph.edges()
    csr = sparse.csr_matrix((c, (a, b)), shape=(n, n))
    return csgraph.dijkstra(csr, directed=True, indices=s, return_predecessors=True)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("who", ["ours", "peer"])
def test_build(benchmark, n, who):
    topo, csr, s, _, _, info = mesh(n)
    group = f"net-routes-build-{n}"
    if who == "ours":
        describe(benchmark, group=group, impl="meshcore Routes(topology)", role="ours",
                 items=1, unit="builds", **info)
        routes = benchmark.pedantic(lambda: Routes(topo, self_id=SELF), rounds=ROUNDS,
                                    warmup_rounds=1)
        dist = csgraph.dijkstra(csr, directed=True, indices=s)
        assert [routes.cost(nid) for nid in sorted(topo.nodes)] == dist.tolist()
    else:
        describe(benchmark, group=group,
                 impl="scipy: to_cost_graph + csr_matrix + dijkstra(indices=s, preds)",
                 role="peer", items=1, unit="builds", **info)
        benchmark.pedantic(lambda: scipy_from_topology(topo, s), rounds=ROUNDS,
                           warmup_rounds=1)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("who", ["ours", "peer"])
def test_incremental(benchmark, n, who):
    topo, csr, s, ids, changes, info = mesh(n)
    group = f"net-routes-incremental-{n}"
    index = {nid: i for i, nid in enumerate(ids)}
    it = iter(changes)
    state = {"undo": None}
    if who == "peer":
        base = csr.tolil()

        def setup():
            a, b, _, new = next(it)
            m = base.copy()
            m[index[a], index[b]] = 0.0 if math.isinf(new) else new
            return (m.tocsr(),), {}

        describe(benchmark, group=group, impl="scipy dijkstra recompute (one source, preds)",
                 role="peer", items=1, unit="changes", **info)
        benchmark.pedantic(
            lambda m: csgraph.dijkstra(m, directed=True, indices=s, return_predecessors=True),
            setup=setup, rounds=INCR_ROUNDS,
        )
        return
    routes = Routes(topo, self_id=SELF)

    def setup():
        if state["undo"] is not None:
            routes.set_link(*state["undo"])
        a, b, old, new = next(it)
        state["undo"] = (a, b, old)
        return (a, b, new), {}

    describe(benchmark, group=group, impl="meshcore Routes.set_link", role="ours",
             items=1, unit="changes", **info)
    benchmark.pedantic(routes.set_link, setup=setup, rounds=INCR_ROUNDS)
    routes.set_link(*state["undo"])
    fresh = Routes(topo, self_id=SELF)
    assert all(routes.cost(nid) == fresh.cost(nid) for nid in topo.nodes)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("who", ["ours", "peer"])
def test_update_from_topology(benchmark, n, who):
    topo, _, s, _, changes, info = mesh(n)
    group = f"net-routes-update-{n}"
    work = topo.copy()
    it = iter(changes)
    state = {"undo": None}
    routes = Routes(topo, self_id=SELF) if who == "ours" else None

    def setup():
        if state["undo"] is not None:
            work.add_link(*state["undo"], origin="sim")
            if routes is not None:
                routes.update(work)
        a, b, old, new = next(it)
        state["undo"] = (a, b, old)
        work.add_link(a, b, new, origin="sim")
        return (work,), {}

    rounds = scale(40, 10)
    if who == "ours":
        describe(benchmark, group=group, impl="meshcore Routes.update(topology)", role="ours",
                 items=1, unit="changes", **info)
        benchmark.pedantic(routes.update, setup=setup, rounds=rounds)
        work.add_link(*state["undo"], origin="sim")
        routes.update(work)
        fresh = Routes(topo, self_id=SELF)
        assert all(routes.cost(nid) == fresh.cost(nid) for nid in topo.nodes)
    else:
        describe(benchmark, group=group,
                 impl="scipy: to_cost_graph + csr_matrix + dijkstra(indices=s, preds)",
                 role="peer", items=1, unit="changes", **info)
        benchmark.pedantic(lambda t: scipy_from_topology(t, s), setup=setup, rounds=rounds)
