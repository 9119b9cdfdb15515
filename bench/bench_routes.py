"""Route kernel vs scipy.sparse.csgraph (Dijkstra, Fibonacci heap, C via Cython).

Workload: random geometric graphs, the usual model of a wireless mesh. N
nodes uniform in the unit square, a link between two nodes closer than
r = sqrt(7 / (pi N)) (mean degree about 7), both directions with independent
ETX-like costs uniform in [1, 10]; only the largest connected component is
kept (relabelled 0..n-1, so n is a little under N). Seeded. scipy gets a
``csr_matrix`` of the same links (costs >= 1, so no explicit zero is taken
for "no link"), built once outside the timings.

Groups (sizes in quick mode in brackets):

* ``routes-allpairs-200``, ``routes-allpairs-1000`` [400]: all-pairs costs,
  ``all_pairs_costs(g)`` vs ``dijkstra(csr, directed=True)``.
* ``routes-sssp-5000`` [2000]: one source (the node nearest the centre),
  ``shortest_paths(g, s)`` (costs, preds, next hops, hops) vs
  ``dijkstra(csr, indices=s)``; ``routes-sssp-5000-pred``: the same against
  ``return_predecessors=True``, since we compute predecessors too.
* ``routes-incremental-1000`` [400]: one random link change, either a random
  existing link to a new cost uniform in [1, 10] or (one time in five) its
  removal, applied with ``RouteTable.set_link`` to a table of all sources.
  Every round starts from the same state: the untimed setup puts the
  previous round's link back. The bound is recomputing all pairs on the
  changed graph: our own ``all_pairs_costs`` (``-vs-allpairs``), a fresh
  ``RouteTable`` (``-vs-rebuild``, which also computes preds and hops) and
  scipy (``-vs-scipy``); each peer is timed on the unchanged graph, so the
  change itself costs it nothing. Target: median ratio >= 10x. Metrics: rows
  changed per update (median and mean) and the share of updates that
  changed any row.
* ``routes-twin-allpairs-200`` [100] and ``routes-twin-incremental-200``
  [100]: the pure twin, with the compiled kernel on the same work for scale
  (the incremental peer there is the twin's own all-pairs recompute).
"""

from __future__ import annotations

import importlib
import math
import statistics
from functools import cache

import numpy as np
import pytest
from _harness import describe, scale

from meshcore.kernels import CostGraph
from meshcore.kernels import _routes_py as twin

sparse = pytest.importorskip("scipy.sparse")
csgraph = pytest.importorskip("scipy.sparse.csgraph")
spatial = pytest.importorskip("scipy.spatial")

SEED = 20240611
DEGREE = 7.0
ALLPAIRS_SMALL = 200
ALLPAIRS_LARGE = scale(1000, 400)
SSSP_N = scale(5000, 2000)
INCR_N = scale(1000, 400)
INCR_ROUNDS = scale(300, 60)
TWIN_N = scale(200, 100)
ROUNDS = scale(7, 3)


def compiled():
    try:
        return importlib.import_module("meshcore.kernels._routes_c")
    except ImportError as exc:
        pytest.skip(f"compiled routes kernel is not built: {exc}")


@cache
def mesh(n_nominal: int):
    """(CostGraph, csr_matrix, centre node, metrics) of a seeded random geometric graph."""
    rng = np.random.default_rng(SEED + n_nominal)
    pts = rng.random((n_nominal, 2))
    r = math.sqrt(DEGREE / (math.pi * n_nominal))
    pairs = spatial.cKDTree(pts).query_pairs(r, output_type="ndarray")
    a, b = pairs[:, 0], pairs[:, 1]
    und = sparse.coo_matrix((np.ones(a.size), (a, b)), shape=(n_nominal, n_nominal))
    _, label = csgraph.connected_components(und, directed=False)
    keep = label == np.bincount(label).argmax()
    new_id = np.full(n_nominal, -1, dtype=np.int64)
    new_id[keep] = np.arange(int(keep.sum()))
    inside = keep[a] & keep[b]
    a, b = new_id[a[inside]], new_id[b[inside]]
    n = int(keep.sum())
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    cost = rng.uniform(1.0, 10.0, size=src.size)
    graph = CostGraph.from_edges(n, src, dst, cost)
    s, d, c = graph.edges()
    csr = sparse.csr_matrix((c, (s, d)), shape=(n, n))
    centre = int(np.argmin(((pts[keep] - 0.5) ** 2).sum(axis=1)))
    info = {"nodes": n, "links": graph.num_edges, "mean_out_degree": graph.num_edges / n}
    return graph, csr, centre, info


def run(benchmark, fn, *, setup=None, rounds=ROUNDS, **labels):
    """Label the benchmark, then time ``fn`` (after ``setup``, untimed, each round)."""
    describe(benchmark, **labels)
    if setup is None:
        return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    return benchmark.pedantic(fn, setup=setup, rounds=rounds, iterations=1)


# -- all pairs ---------------------------------------------------------------------------

ALLPAIRS = [ALLPAIRS_SMALL, ALLPAIRS_LARGE]


@pytest.mark.parametrize("n", ALLPAIRS)
def test_allpairs_ours(benchmark, n):
    mod = compiled()
    graph, csr, _, info = mesh(n)
    out = run(
        benchmark,
        lambda: mod.all_pairs_costs(graph),
        group=f"routes-allpairs-{n}",
        impl="meshcore-compiled all_pairs_costs",
        role="ours",
        items=info["nodes"],
        unit="sources",
        **info,
    )
    np.testing.assert_array_equal(out, csgraph.dijkstra(csr, directed=True))


@pytest.mark.parametrize("n", ALLPAIRS)
def test_allpairs_peer(benchmark, n):
    _, csr, _, info = mesh(n)
    run(
        benchmark,
        lambda: csgraph.dijkstra(csr, directed=True),
        group=f"routes-allpairs-{n}",
        impl="scipy dijkstra(csr)",
        role="peer",
        items=info["nodes"],
        unit="sources",
        **info,
    )


# -- single source -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "-pred"])
def test_sssp_ours(benchmark, suffix):
    mod = compiled()
    graph, csr, centre, info = mesh(SSSP_N)
    describe(
        benchmark,
        group=f"routes-sssp-{SSSP_N}{suffix}",
        impl="meshcore-compiled shortest_paths",
        role="ours",
        items=1,
        unit="sources",
        **info,
    )
    sp = benchmark(mod.shortest_paths, graph, centre)
    dist, pred = csgraph.dijkstra(csr, directed=True, indices=centre, return_predecessors=True)
    np.testing.assert_array_equal(sp.cost, dist)
    # Predecessors may differ only where two paths tie exactly in cost.
    assert np.mean(sp.pred[sp.hops > 0] == pred[sp.hops > 0]) > 0.99


@pytest.mark.parametrize("suffix", ["", "-pred"])
def test_sssp_peer(benchmark, suffix):
    _, csr, centre, info = mesh(SSSP_N)
    describe(
        benchmark,
        group=f"routes-sssp-{SSSP_N}{suffix}",
        impl="scipy dijkstra(csr, indices=s" + (", return_predecessors=True)" if suffix else ")"),
        role="peer",
        items=1,
        unit="sources",
        **info,
    )
    benchmark(
        csgraph.dijkstra, csr, directed=True, indices=centre, return_predecessors=bool(suffix)
    )


# -- incremental -------------------------------------------------------------------------


def link_changes(graph, rounds, seed):
    """Seeded list of (u, v, old cost, new cost): existing links, 1 in 5 removed."""
    rng = np.random.default_rng(seed)
    src, dst, cost = graph.edges()
    picks = rng.integers(0, src.size, size=rounds)
    new = rng.uniform(1.0, 10.0, size=rounds)
    new[rng.random(rounds) < 0.2] = math.inf
    return [
        (int(src[k]), int(dst[k]), float(cost[k]), float(w))
        for k, w in zip(picks, new, strict=True)
    ]


def time_set_link(benchmark, mod, n, group, impl, role, rounds):
    """Time RouteTable.set_link on a table of all sources, one change per round."""
    graph, _, _, info = mesh(n)
    table = mod.RouteTable(graph)
    changes = iter(link_changes(graph, rounds + 1, SEED))
    state = {"undo": None}
    changed = []

    def setup():
        if state["undo"] is not None:
            table.set_link(*state["undo"])  # back to the base state, untimed
        u, v, old, new = next(changes)
        state["undo"] = (u, v, old)
        return (u, v, new), {}

    def step(u, v, new):
        changed.append(table.set_link(u, v, new))

    describe(benchmark, group=group, impl=impl, role=role, items=1, unit="changes", **info)
    benchmark.pedantic(step, setup=setup, rounds=rounds, iterations=1)
    table.set_link(*state["undo"])
    describe(
        benchmark,
        group=group,
        impl=impl,
        role=role,
        items=1,
        unit="changes",
        rows_changed_median=float(statistics.median(changed)),
        rows_changed_mean=float(statistics.mean(changed)),
        share_changing_rows=sum(1 for c in changed if c) / len(changed),
    )
    # The table is back at the base state, bit for bit.
    np.testing.assert_array_equal(table.cost, mod.all_pairs_costs(graph))


INCR_PEERS = ["allpairs", "rebuild", "scipy"]


@pytest.mark.parametrize("peer", INCR_PEERS)
def test_incremental_ours(benchmark, peer):
    time_set_link(
        benchmark,
        compiled(),
        INCR_N,
        f"routes-incremental-{INCR_N}-vs-{peer}",
        "meshcore-compiled RouteTable.set_link",
        "ours",
        INCR_ROUNDS,
    )


@pytest.mark.parametrize("peer", INCR_PEERS)
def test_incremental_peer(benchmark, peer):
    mod = compiled()
    graph, csr, _, info = mesh(INCR_N)
    fn, impl = {
        "allpairs": (lambda: mod.all_pairs_costs(graph), "meshcore-compiled all_pairs_costs"),
        "rebuild": (lambda: mod.RouteTable(graph), "meshcore-compiled RouteTable(graph)"),
        "scipy": (lambda: csgraph.dijkstra(csr, directed=True), "scipy dijkstra(csr)"),
    }[peer]
    run(
        benchmark,
        fn,
        group=f"routes-incremental-{INCR_N}-vs-{peer}",
        impl=f"recompute: {impl}",
        role="peer",
        items=1,
        unit="changes",
        **info,
    )


# -- the pure twin -----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["twin", "ours", "peer"])
def test_twin_allpairs(benchmark, who):
    graph, csr, _, info = mesh(TWIN_N)
    if who == "peer":
        fn, impl = (lambda: csgraph.dijkstra(csr, directed=True)), "scipy dijkstra(csr)"
    else:
        mod = twin if who == "twin" else compiled()
        fn = lambda: mod.all_pairs_costs(graph)  # noqa: E731
        impl = f"meshcore-{'pure' if who == 'twin' else 'compiled'} all_pairs_costs"
    run(
        benchmark,
        fn,
        group=f"routes-twin-allpairs-{TWIN_N}",
        impl=impl,
        role=who,
        items=info["nodes"],
        unit="sources",
        rounds=scale(3, 2),
        **info,
    )


@pytest.mark.parametrize("who", ["twin", "ours"])
def test_twin_incremental(benchmark, who):
    mod = twin if who == "twin" else compiled()
    impl = f"meshcore-{'pure' if who == 'twin' else 'compiled'} RouteTable.set_link"
    time_set_link(
        benchmark, mod, TWIN_N, f"routes-twin-incremental-{TWIN_N}", impl, who, scale(100, 30)
    )


def test_twin_incremental_peer(benchmark):
    graph, _, _, info = mesh(TWIN_N)
    run(
        benchmark,
        lambda: twin.all_pairs_costs(graph),
        group=f"routes-twin-incremental-{TWIN_N}",
        impl="recompute: meshcore-pure all_pairs_costs",
        role="peer",
        items=1,
        unit="changes",
        rounds=scale(3, 2),
        **info,
    )
