"""Route kernel: CostGraph, shortest_paths, all_pairs_costs, RouteTable (both twins).

The canonical result is checked three ways: hand-made graphs with known
answers, a brute force over all simple paths (integer costs, where sums are
exact and "fewest links among cheapest paths" is well defined), and a
Bellman-Ford + BFS reference of the recursive definition (any float costs,
including ones where rounding absorbs a link). RouteTable.set_link is checked
against a fresh RouteTable after every change, with the returned count
checked against the rows that actually changed.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
from collections import deque

import numpy as np
import pytest
from conftest import kernel_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshcore.kernels._graph import CostGraph, ShortestPaths

INF = math.inf

# Costs that make ties, zero-cost links and cycles, and float rounding:
# 1e16 + 1 == 1e16 (absorbed), 0.1 + 0.2 != 0.3, 0.25 + 0.25 + 0.4999999999999999 < 1,
# and 1e308 + 1e308 == inf (a path whose sum overflows does not reach).
TIE_COSTS = [0.0, 1.0, 2.0, 3.0, 0.5, 0.25, 1e16, 0.4999999999999999, 0.1, 0.2, 0.3, 1e308]
INT_COSTS = [0.0, 1.0, 2.0, 3.0]


def examples(n):
    """Hypothesis settings: n examples, no deadline, fixtures allowed."""
    return settings(
        max_examples=n, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


def routes(backend):
    return kernel_module("routes", backend)


def graph(n, edges):
    """CostGraph from a list of (src, dst, cost)."""
    src = [e[0] for e in edges]
    dst = [e[1] for e in edges]
    cost = [e[2] for e in edges]
    return CostGraph.from_edges(n, src, dst, cost)


def as_lists(sp):
    return sp.cost.tolist(), sp.pred.tolist(), sp.next_hop.tolist(), sp.hops.tolist()


def table_arrays(t):
    return [t.cost.copy(), t.pred.copy(), t.next_hop.copy(), t.hops.copy()]


def edge_dict(g):
    s, d, c = g.edges()
    return {(a, b): w for a, b, w in zip(s.tolist(), d.tolist(), c.tolist(), strict=True)}


# -- references --------------------------------------------------------------------


def _next_hops(n, s, pred, reachable):
    nh = [-1] * n
    for x in range(n):
        if not reachable[x]:
            continue
        if x == s:
            nh[x] = s
            continue
        y = x
        while pred[y] != s:
            y = pred[y]
        nh[x] = y
    return nh


def _preds(n, s, edges, cost, hops):
    pred = [-1] * n
    for (u, v), w in edges.items():
        if v == s or hops[u] < 0:
            continue
        if cost[u] + w == cost[v] and hops[u] + 1 == hops[v] and (pred[v] < 0 or u < pred[v]):
            pred[v] = u
    return pred


def brute_force(n, edges, s):
    """Global definition by enumerating simple paths (exact for integer costs)."""
    best = {s: (0.0, 0)}
    out = {}
    for (u, v), w in edges.items():
        out.setdefault(u, []).append((v, w))

    def walk(x, c, h, seen):
        for y, w in out.get(x, ()):
            if y in seen:
                continue
            key = (c + w, h + 1)
            if y not in best or key < best[y]:
                best[y] = key
            seen.add(y)
            walk(y, c + w, h + 1, seen)
            seen.discard(y)

    walk(s, 0.0, 0, {s})
    cost = [best[x][0] if x in best else INF for x in range(n)]
    hops = [best[x][1] if x in best else -1 for x in range(n)]
    pred = _preds(n, s, edges, cost, hops)
    nh = _next_hops(n, s, pred, [h >= 0 for h in hops])
    return cost, pred, nh, hops


def recursive_reference(n, edges, s):
    """Recursive definition: Bellman-Ford costs, BFS hops over tight links, pred rule."""
    cost = [INF] * n
    cost[s] = 0.0
    changed = True
    while changed:
        changed = False
        for (u, v), w in edges.items():
            if v != s and cost[u] + w < cost[v]:
                cost[v] = cost[u] + w
                changed = True
    tight = {}
    for (u, v), w in edges.items():
        if v != s and cost[v] != INF and cost[u] + w == cost[v]:
            tight.setdefault(u, []).append(v)
    hops = [-1] * n
    hops[s] = 0
    queue = deque([s])
    while queue:
        x = queue.popleft()
        for y in tight.get(x, ()):
            if hops[y] < 0:
                hops[y] = hops[x] + 1
                queue.append(y)
    pred = _preds(n, s, edges, cost, hops)
    nh = _next_hops(n, s, pred, [h >= 0 for h in hops])
    return cost, pred, nh, hops


# -- strategies ----------------------------------------------------------------------


@st.composite
def small_graphs(draw, costs=TIE_COSTS, max_nodes=8, allow_inf=True):
    n = draw(st.integers(1, max_nodes))
    pool = [*costs, INF] if allow_inf else costs
    edges = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.sampled_from(pool)),
            max_size=3 * n,
        )
    )
    return n, edges


@st.composite
def graph_and_ops(draw, costs=TIE_COSTS, max_nodes=8, max_ops=8):
    n, edges = draw(small_graphs(costs=costs, max_nodes=max_nodes))
    sources = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
    existing = [(a, b) for a, b, _ in edges if a != b]
    pool = [*costs, INF]
    op = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.sampled_from(pool))
    if existing:
        # Changes to existing links hit tree edges far more often than random pairs.
        op = st.one_of(
            op,
            st.tuples(st.sampled_from(existing), st.sampled_from(pool)).map(
                lambda t: (t[0][0], t[0][1], t[1])
            ),
        )
    ops = draw(st.lists(op, max_size=max_ops))
    return n, edges, sources, ops


# -- CostGraph -----------------------------------------------------------------------


def test_graph_csr_layout_and_normalisation():
    g = graph(
        4,
        [
            (2, 1, 5.0),
            (0, 3, 1.0),
            (0, 1, 2.0),
            (0, 1, 1.5),
            (1, 1, 0.0),
            (3, 0, INF),
            (2, 0, -0.0),
            (0, 1, 7.0),
        ],
    )
    assert g.num_nodes == 4
    assert g.num_edges == 4  # self-loop, inf and two duplicates dropped
    assert g.indptr.tolist() == [0, 2, 2, 4, 4]
    assert g.indices.tolist() == [1, 3, 0, 1]
    assert g.costs.tolist() == [1.5, 1.0, 0.0, 5.0]
    assert math.copysign(1.0, g.costs[2]) == 1.0  # -0.0 stored as 0.0
    assert g.indptr.dtype == np.int64 and g.indices.dtype == np.int32
    assert g.costs.dtype == np.float64
    assert g.edge_cost(0, 1) == 1.5
    assert g.edge_cost(1, 0) == INF
    assert g.edge_cost(np.int64(2), np.int32(1)) == 5.0
    s, d, c = g.edges()
    assert (s.tolist(), d.tolist(), c.tolist()) == (
        [0, 0, 2, 2],
        [1, 3, 0, 1],
        [1.5, 1.0, 0.0, 5.0],
    )
    assert s.dtype == np.int32 and d.dtype == np.int32
    # Reverse CSR: in-links of each node, sorted by source.
    assert g.in_indptr.tolist() == [0, 1, 3, 3, 4]
    assert g.in_indices.tolist() == [2, 0, 2, 0]
    assert g.in_costs.tolist() == [0.0, 1.5, 5.0, 1.0]
    assert repr(g) == "CostGraph(num_nodes=4, num_edges=4)"


def test_graph_arrays_are_read_only_and_copies_independent():
    g = graph(3, [(0, 1, 1.0), (1, 2, 2.0)])
    for arr in (g.indptr, g.indices, g.costs, g.in_indptr, g.in_indices, g.in_costs):
        with pytest.raises(ValueError):
            arr[0] = 0
    c = g.edges()[2]
    c[0] = 99.0  # edges() returns copies
    assert g.edge_cost(0, 1) == 1.0
    h = g.copy()
    h._set_link(0, 1, 5.0)
    assert g.edge_cost(0, 1) == 1.0 and h.edge_cost(0, 1) == 5.0


def test_graph_accepts_numpy_inputs_and_empty():
    src = np.array([0, 1, 2], dtype=np.uint16)
    dst = np.array([1, 2, 0], dtype=np.int32)
    cost = np.array([1, 2, 3], dtype=np.float32)
    g = CostGraph(3, src, dst, cost)
    assert g.costs.tolist() == [1.0, 2.0, 3.0]
    assert CostGraph(np.int64(3), src, dst, [1, 2, 3]).num_edges == 3
    e = CostGraph(0, [], [], [])
    assert (e.num_nodes, e.num_edges, e.indptr.tolist()) == (0, 0, [0])
    assert CostGraph(5, [], [], []).indptr.tolist() == [0] * 6


@pytest.mark.parametrize(
    ("args", "exc", "message"),
    [
        ((True, [], [], []), TypeError, "num_nodes: expected an integer, got bool"),
        (("3", [], [], []), TypeError, "num_nodes: expected an integer, got str"),
        ((-1, [], [], []), ValueError, "num_nodes: expected an integer in [0, 2**31), got -1"),
        (
            (2**31, [], [], []),
            ValueError,
            "num_nodes: expected an integer in [0, 2**31), got 2147483648",
        ),
        ((3, [[0]], [1], [1.0]), ValueError, "src: expected a 1-D sequence, got shape (1, 1)"),
        ((3, [0.0], [1], [1.0]), TypeError, "src: expected integer node ids, got dtype float64"),
        ((3, [0], ["1"], [1.0]), TypeError, "dst: expected integer node ids, got dtype <U1"),
        ((3, [0], [1], [[1.0]]), ValueError, "cost: expected a 1-D sequence, got shape (1, 1)"),
        ((3, [0], [1], ["x"]), TypeError, "cost: expected real numbers, got dtype <U1"),
        ((3, [0, 1], [1], [1.0, 1.0]), ValueError, "dst: expected 2 entries like src, got 1"),
        ((3, [0, 1], [1, 2], [1.0]), ValueError, "cost: expected 2 entries like src, got 1"),
        (
            (3, [0, 3], [1, 2], [1.0, 1.0]),
            ValueError,
            "src[1]: node 3 does not exist (num_nodes=3)",
        ),
        (
            (3, [0, -1], [1, 2], [1.0, 1.0]),
            ValueError,
            "src[1]: node -1 does not exist (num_nodes=3)",
        ),
        (
            (3, [0, 1], [7, 9], [1.0, 1.0]),
            ValueError,
            "dst[0]: node 7 does not exist (num_nodes=3)",
        ),
        (
            (3, [0, 1, 2], [1, 2, 0], [1.0, math.nan, -1.0]),
            ValueError,
            "cost[1]: expected a number >= 0 (inf for no link), got nan",
        ),
        (
            (3, [0, 1], [1, 2], [1.0, -INF]),
            ValueError,
            "cost[1]: expected a number >= 0 (inf for no link), got -inf",
        ),
        (
            (3, [0, 1], [1, 2], [-0.5, 1.0]),
            ValueError,
            "cost[0]: expected a number >= 0 (inf for no link), got -0.5",
        ),
    ],
)
def test_graph_validation_messages(args, exc, message):
    with pytest.raises(exc) as info:
        CostGraph.from_edges(*args)
    assert str(info.value) == message


def test_graph_out_of_range_message_names_index():
    src = np.zeros(20, dtype=np.int64)
    dst = np.arange(20, dtype=np.int64)
    dst[17] = 250
    with pytest.raises(ValueError, match=r"^dst\[17\]: node 250 does not exist \(num_nodes=200\)$"):
        CostGraph(200, src, dst, np.ones(20))
    big = np.array([2**63 + 5], dtype=np.uint64)
    with pytest.raises(ValueError, match=r"^src\[0\]: node 9223372036854775813 does not exist"):
        CostGraph(3, big, [1], [1.0])


def test_edge_cost_validation():
    g = graph(3, [(0, 1, 1.0)])
    with pytest.raises(ValueError, match=r"^u: node 3 does not exist \(num_nodes=3\)$"):
        g.edge_cost(3, 0)
    with pytest.raises(TypeError, match=r"^v: expected an integer node id, got float$"):
        g.edge_cost(0, 1.0)
    with pytest.raises(TypeError, match=r"^v: expected an integer node id, got bool$"):
        g.edge_cost(0, True)


def test_graph_set_link_keeps_both_csrs_consistent():
    rng = random.Random(3)
    g = graph(6, [(0, 1, 1.0), (1, 2, 2.0), (2, 0, 3.0), (4, 5, 1.0)])
    g._reverse()
    for _ in range(200):
        u, v = rng.randrange(6), rng.randrange(6)
        if u == v:
            continue
        w = rng.choice([INF, 0.0, 1.0, 2.5])
        before = g.edge_cost(u, v)
        old, structural = g._set_link(u, v, w)
        assert old == before
        assert structural == ((old == INF) != (w == INF))
        assert g.edge_cost(u, v) == w
        fresh = CostGraph(6, *g.edges())
        for name in ("indptr", "indices", "costs", "in_indptr", "in_indices", "in_costs"):
            assert getattr(g, name).tolist() == getattr(fresh, name).tolist(), name
    assert g._set_link(0, 1, g.edge_cost(0, 1)) == (g.edge_cost(0, 1), False)


# -- shortest_paths: hand-made graphs ---------------------------------------------------


def test_line(backend):
    m = routes(backend)
    g = graph(4, [(0, 1, 1.0), (1, 2, 2.0), (2, 3, 3.0), (3, 2, 1.0)])
    sp = m.shortest_paths(g, 0)
    assert isinstance(sp, ShortestPaths)
    assert sp.source == 0
    assert as_lists(sp) == ([0.0, 1.0, 3.0, 6.0], [-1, 0, 1, 2], [0, 1, 1, 1], [0, 1, 2, 3])
    assert (sp.cost.dtype, sp.pred.dtype, sp.next_hop.dtype, sp.hops.dtype) == (
        np.float64,
        np.int32,
        np.int32,
        np.int32,
    )
    assert sp.path_to(3) == [0, 1, 2, 3]
    assert sp.path_to(0) == [0]
    sp3 = m.shortest_paths(g, 3)
    assert as_lists(sp3) == ([INF, INF, 1.0, 0.0], [-1, -1, 3, -1], [-1, -1, 2, 3], [-1, -1, 1, 0])
    assert sp3.path_to(0) == []
    assert repr(sp3) == "ShortestPaths(source=3, num_nodes=4, reachable=2)"


def test_diamond_ties_pick_smallest_pred_and_fewest_hops(backend):
    m = routes(backend)
    # Two equal-cost two-link paths 0-3-1 and 0-2-1: pred[1] is the smaller id, 2.
    # Node 4: cost 2 directly (1 link) or via 2 (2 links): the direct link wins.
    g = graph(5, [(0, 3, 1.0), (3, 1, 1.0), (0, 2, 1.0), (2, 1, 1.0), (0, 4, 2.0), (2, 4, 1.0)])
    cost, pred, nh, hops = as_lists(m.shortest_paths(g, 0))
    assert cost == [0.0, 2.0, 1.0, 1.0, 2.0]
    assert pred == [-1, 2, 0, 0, 0]
    assert nh == [0, 2, 2, 3, 4]
    assert hops == [0, 2, 1, 1, 1]


def test_zero_cost_links_and_cycles(backend):
    m = routes(backend)
    g = graph(
        5,
        [(0, 1, 0.0), (1, 2, 0.0), (2, 1, 0.0), (0, 2, 0.0), (2, 3, 0.0), (3, 0, 0.0), (1, 4, 1.0)],
    )
    cost, pred, nh, hops = as_lists(m.shortest_paths(g, 0))
    assert cost == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert hops == [0, 1, 1, 2, 2]
    assert pred == [-1, 0, 0, 2, 1]
    assert nh == [0, 1, 2, 2, 1]


def test_disconnected_parts(backend):
    m = routes(backend)
    g = graph(6, [(0, 1, 1.0), (1, 0, 1.0), (2, 3, 1.0), (3, 4, 1.0)])
    cost, pred, nh, hops = as_lists(m.shortest_paths(g, 2))
    assert cost == [INF, INF, 0.0, 1.0, 2.0, INF]
    assert pred == [-1, -1, -1, 2, 3, -1]
    assert nh == [-1, -1, 2, 3, 3, -1]
    assert hops == [-1, -1, 0, 1, 2, -1]
    single = m.shortest_paths(CostGraph(1, [], [], []), 0)
    assert as_lists(single) == ([0.0], [-1], [0], [0])


def test_rounding_follows_the_recursive_definition(backend):
    """A cheaper path to a node can give its child the same cost but more links.

    Node 1 costs 1.0 over one link, or 0.9999999999999999 over three; with a
    link of 1e16 both sums round to 1e16 at node 5, so node 5's hops follow
    node 1's canonical (cheaper, longer) path: 4, not 2.
    """
    m = routes(backend)
    tiny = 0.4999999999999999  # 0.5 - 2**-53: 0.25 + 0.25 + tiny < 1.0
    g = graph(6, [(0, 1, 1.0), (0, 2, 0.25), (2, 3, 0.25), (3, 1, tiny), (1, 5, 1e16)])
    cost, pred, nh, hops = as_lists(m.shortest_paths(g, 0))
    assert cost[1] == 0.5 + tiny < 1.0
    assert cost[5] == 1e16
    assert hops[5] == 4 and pred[5] == 1 and nh[5] == 2
    assert (cost, pred, nh, hops) == recursive_reference(6, edge_dict(g), 0)


def test_overflowing_sum_does_not_reach(backend):
    m = routes(backend)
    g = graph(4, [(0, 1, 1e308), (1, 2, 1e308), (0, 3, 1.0), (3, 2, 1.7e308)])
    cost, pred, _, hops = as_lists(m.shortest_paths(g, 0))
    assert cost == [0.0, 1e308, 1.0 + 1.7e308, 1.0]
    assert pred == [-1, 0, 3, 0] and hops == [0, 1, 2, 1]
    t = m.RouteTable(g, [0])
    assert apply_and_check(m, t, [0], 3, 2, INF) == 1
    assert t.cost[0].tolist() == [0.0, 1e308, INF, 1.0]  # 1e308 + 1e308 overflows
    assert (t.pred[0, 2], t.hops[0, 2], t.next_hop[0, 2]) == (-1, -1, -1)
    assert apply_and_check(m, t, [0], 1, 2, 1e300) == 1
    assert t.hops[0, 2] == 2


def test_shortest_paths_validation(backend):
    m = routes(backend)
    g = graph(3, [(0, 1, 1.0)])
    with pytest.raises(ValueError, match=r"^source: node 3 does not exist \(num_nodes=3\)$"):
        m.shortest_paths(g, 3)
    with pytest.raises(ValueError, match=r"^source: node -1 does not exist"):
        m.shortest_paths(g, -1)
    with pytest.raises(TypeError, match=r"^source: expected an integer node id, got str$"):
        m.shortest_paths(g, "0")
    with pytest.raises(TypeError, match=r"^graph: expected a CostGraph, got list$"):
        m.shortest_paths([(0, 1, 1.0)], 0)
    with pytest.raises(ValueError, match=r"^source: node 0 does not exist \(num_nodes=0\)$"):
        m.shortest_paths(CostGraph(0, [], [], []), 0)
    sp = m.shortest_paths(g, 0)
    with pytest.raises(ValueError, match=r"^target: node 5 does not exist"):
        sp.path_to(5)


# -- shortest_paths against references ------------------------------------------------


@examples(150)
@given(data=small_graphs(costs=INT_COSTS, max_nodes=7))
def test_matches_brute_force_on_integer_costs(backend, data):
    m = routes(backend)
    n, edges = data
    g = graph(n, edges)
    e = edge_dict(g)
    for s in range(n):
        assert as_lists(m.shortest_paths(g, s)) == brute_force(n, e, s)


@examples(150)
@given(data=small_graphs(max_nodes=9))
def test_matches_recursive_reference_on_float_ties(backend, data):
    m = routes(backend)
    n, edges = data
    g = graph(n, edges)
    e = edge_dict(g)
    for s in range(n):
        assert as_lists(m.shortest_paths(g, s)) == recursive_reference(n, e, s)


def test_paths_are_consistent_on_a_random_mesh(backend):
    m = routes(backend)
    g = random_mesh(60, seed=4)
    sp = m.shortest_paths(g, 7)
    for v in range(60):
        path = sp.path_to(v)
        if sp.hops[v] < 0:
            assert path == [] and sp.cost[v] == INF
            continue
        assert len(path) == sp.hops[v] + 1 and path[0] == 7 and path[-1] == v
        total = 0.0
        for a, b in itertools.pairwise(path):
            total += g.edge_cost(a, b)
        assert total == sp.cost[v]
        assert sp.next_hop[v] == (path[1] if v != 7 else 7)


# -- all_pairs_costs --------------------------------------------------------------------


def random_mesh(n, seed, degree=7.0):
    """Random geometric graph: both directions of every link, independent costs in [1, 10]."""
    rng = np.random.default_rng(seed)
    pts = rng.random((n, 2))
    r = math.sqrt(degree / (math.pi * n))
    diff = pts[:, None, :] - pts[None, :, :]
    close = np.triu((diff**2).sum(axis=2) < r * r, k=1)
    a, b = np.nonzero(close)
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    return CostGraph(n, src, dst, rng.uniform(1.0, 10.0, size=src.shape[0]))


def test_all_pairs_equals_stacked_single_source(backend):
    m = routes(backend)
    g = random_mesh(40, seed=1)
    full = m.all_pairs_costs(g)
    assert full.shape == (40, 40) and full.dtype == np.float64
    for s in range(40):
        np.testing.assert_array_equal(full[s], m.shortest_paths(g, s).cost)
    some = m.all_pairs_costs(g, [5, 0, 5])  # repeats allowed
    np.testing.assert_array_equal(some, full[[5, 0, 5]])
    some64 = m.all_pairs_costs(g, np.array([39], dtype=np.int64))
    np.testing.assert_array_equal(some64, full[[39]])
    assert m.all_pairs_costs(g, []).shape == (0, 40)
    assert m.all_pairs_costs(CostGraph(0, [], [], [])).shape == (0, 0)


@examples(60)
@given(data=small_graphs())
def test_all_pairs_matches_reference(backend, data):
    m = routes(backend)
    n, edges = data
    g = graph(n, edges)
    e = edge_dict(g)
    expected = [recursive_reference(n, e, s)[0] for s in range(n)]
    assert m.all_pairs_costs(g).tolist() == expected


def test_all_pairs_validation(backend):
    m = routes(backend)
    g = graph(3, [(0, 1, 1.0)])
    with pytest.raises(ValueError, match=r"^sources\[1\]: node 3 does not exist \(num_nodes=3\)$"):
        m.all_pairs_costs(g, [0, 3])
    with pytest.raises(TypeError, match=r"^sources: expected integer node ids, got dtype float64$"):
        m.all_pairs_costs(g, [0.0])
    with pytest.raises(ValueError, match=r"^sources: expected a 1-D sequence, got shape \(\)$"):
        m.all_pairs_costs(g, 0)
    with pytest.raises(TypeError, match=r"^graph: expected a CostGraph, got NoneType$"):
        m.all_pairs_costs(None)


def test_scipy_agrees_on_costs(backend):
    csgraph = pytest.importorskip("scipy.sparse.csgraph")
    sparse = pytest.importorskip("scipy.sparse")
    m = routes(backend)
    for seed in range(3):
        g = random_mesh(50, seed=seed)
        s, d, c = g.edges()
        mat = sparse.csr_matrix((c, (s, d)), shape=(50, 50))
        expected = csgraph.dijkstra(mat, directed=True)
        np.testing.assert_array_equal(m.all_pairs_costs(g), expected)
        np.testing.assert_array_equal(m.shortest_paths(g, 3).cost, expected[3])


# -- RouteTable -------------------------------------------------------------------------


def test_route_table_rows_and_views(backend):
    m = routes(backend)
    g = random_mesh(30, seed=2)
    t = m.RouteTable(g, [4, 0, 17])
    assert t.sources.tolist() == [4, 0, 17] and t.sources.dtype == np.int32
    assert t.cost.shape == (3, 30) and t.cost.dtype == np.float64
    for arr in (t.pred, t.next_hop, t.hops):
        assert arr.shape == (3, 30) and arr.dtype == np.int32
    for arr in (t.cost, t.pred, t.next_hop, t.hops, t.sources):
        with pytest.raises(ValueError):
            arr[0] = 1
    for r, s in enumerate([4, 0, 17]):
        expected = as_lists(m.shortest_paths(g, s))
        assert as_lists(t.row(s)) == expected
        assert t.row(s).source == s
        assert t.row_index(s) == r
        assert [
            t.cost[r].tolist(),
            t.pred[r].tolist(),
            t.next_hop[r].tolist(),
            t.hops[r].tolist(),
        ] == list(expected)
    full = m.RouteTable(g)
    assert full.sources.tolist() == list(range(30))
    np.testing.assert_array_equal(full.cost, m.all_pairs_costs(g))
    assert repr(full) == "RouteTable(num_nodes=30, rows=30)"
    assert full.graph is not g and full.graph.num_edges == g.num_edges
    empty = m.RouteTable(g, [])
    assert empty.cost.shape == (0, 30)
    assert empty.set_link(0, 1, 1.0) == 0
    nothing = m.RouteTable(CostGraph(0, [], [], []))
    assert nothing.cost.shape == (0, 0)


def test_route_table_row_copies_are_detached(backend):
    m = routes(backend)
    g = graph(3, [(0, 1, 1.0), (1, 2, 1.0)])
    t = m.RouteTable(g)
    row = t.row(0)
    view = t.cost
    assert t.set_link(0, 2, 0.5) == 1
    assert row.cost.tolist() == [0.0, 1.0, 2.0]  # the copy keeps the old values
    assert view[0].tolist() == [0.0, 1.0, 0.5]  # the view is live
    assert g.edge_cost(0, 2) == INF  # the caller's graph is not changed
    assert t.graph.edge_cost(0, 2) == 0.5


def test_route_table_validation(backend):
    m = routes(backend)
    g = graph(3, [(0, 1, 1.0)])
    with pytest.raises(ValueError, match=r"^sources\[2\]: node 0 is listed twice$"):
        m.RouteTable(g, [0, 1, 0])
    with pytest.raises(ValueError, match=r"^sources\[0\]: node 5 does not exist"):
        m.RouteTable(g, [5])
    with pytest.raises(TypeError, match=r"^graph: expected a CostGraph, got dict$"):
        m.RouteTable({})
    t = m.RouteTable(g, [1, 2])
    with pytest.raises(ValueError, match=r"^source: node 0 has no row in this table$"):
        t.row(0)
    with pytest.raises(ValueError, match=r"^source: node 9 does not exist \(num_nodes=3\)$"):
        t.row_index(9)
    with pytest.raises(ValueError, match=r"^u: node 3 does not exist \(num_nodes=3\)$"):
        t.set_link(3, 0, 1.0)
    with pytest.raises(TypeError, match=r"^v: expected an integer node id, got NoneType$"):
        t.set_link(0, None, 1.0)
    with pytest.raises(
        ValueError, match=r"^cost: expected a number >= 0 \(inf for no link\), got nan$"
    ):
        t.set_link(0, 1, math.nan)
    with pytest.raises(
        ValueError, match=r"^cost: expected a number >= 0 \(inf for no link\), got -1.0$"
    ):
        t.set_link(0, 1, -1)
    with pytest.raises(TypeError, match=r"^cost: expected a real number, got str$"):
        t.set_link(0, 1, "1")
    with pytest.raises(TypeError, match=r"^cost: expected a real number, got bool$"):
        t.set_link(0, 1, True)
    with pytest.raises(ValueError, match=r"^cost: expected a number >= 0 \(inf for no link\)"):
        t.set_link(0, 1, 10**400)
    assert t.graph.edge_cost(0, 1) == 1.0  # failed calls changed nothing


def test_set_link_trivial_changes_return_zero(backend):
    m = routes(backend)
    g = graph(3, [(0, 1, 1.0), (1, 2, 1.0)])
    t = m.RouteTable(g)
    before = table_arrays(t)
    assert t.set_link(1, 1, 0.0) == 0  # self-loops are ignored, like in CostGraph
    assert t.set_link(0, 1, 1.0) == 0  # same cost
    assert t.set_link(2, 0, INF) == 0  # removing a link that does not exist
    assert t.set_link(np.int64(0), np.int32(1), np.float32(1.0)) == 0
    for a, b in zip(before, table_arrays(t), strict=True):
        np.testing.assert_array_equal(a, b)
    assert t.graph.num_edges == 2


def test_set_link_rejects_concurrent_update(backend):
    m = routes(backend)
    t = m.RouteTable(graph(2, [(0, 1, 1.0)]))
    t._busy = True
    with pytest.raises(RuntimeError, match="another thread is updating this RouteTable"):
        t.set_link(0, 1, 2.0)
    with pytest.raises(RuntimeError, match="another thread is updating this RouteTable"):
        t.__init__(graph(2, [(0, 1, 1.0)]))
    t._busy = False
    t.__init__(graph(3, [(0, 1, 3.0)]), [1, 0])  # a second __init__ starts afresh
    assert t.sources.tolist() == [1, 0] and t.cost[1].tolist() == [0.0, 3.0, INF]
    assert t.set_link(0, 1, 2.0) == 1


def check_against_fresh(m, t, sources):
    fresh = m.RouteTable(t.graph, sources)
    for got, want, name in zip(
        table_arrays(t), table_arrays(fresh), ("cost", "pred", "next_hop", "hops"), strict=True
    ):
        assert np.array_equal(got, want), name


def apply_and_check(m, t, sources, u, v, w):
    before = table_arrays(t)
    changed = t.set_link(u, v, w)
    after = table_arrays(t)
    rows = sum(
        1
        for r in range(len(sources))
        if any(not np.array_equal(b[r], a[r]) for b, a in zip(before, after, strict=True))
    )
    assert changed == rows
    check_against_fresh(m, t, sources)
    return changed


def test_set_link_scenarios(backend):
    m = routes(backend)
    # 0 -> 1 -> 2 -> 3 chain plus a detour 0 -> 4 -> 2 of equal cost and 5 hanging off 3.
    g = graph(
        6,
        [
            (0, 1, 1.0),
            (1, 2, 1.0),
            (2, 3, 1.0),
            (0, 4, 1.0),
            (4, 2, 1.0),
            (3, 5, 1.0),
            (5, 3, 1.0),
            (1, 0, 1.0),
        ],
    )
    srcs = [0, 1, 5]
    t = m.RouteTable(g, srcs)
    assert t.pred[0].tolist() == [-1, 0, 1, 2, 0, 3]
    # Increase a tree link: node 2 moves to the detour (pred 4), next hops follow.
    assert apply_and_check(m, t, srcs, 1, 2, 5.0) == 2
    assert t.pred[0, 2] == 4 and t.next_hop[0, 3] == 4 and t.next_hop[0, 5] == 4
    # Remove the detour: the subtree goes back under 1 at the higher cost.
    apply_and_check(m, t, srcs, 4, 2, INF)
    assert t.cost[0].tolist() == [0.0, 1.0, 6.0, 7.0, 1.0, 8.0]
    # Remove the only way in: the subtree becomes unreachable from 0 and 1.
    apply_and_check(m, t, srcs, 1, 2, INF)
    assert t.hops[0].tolist() == [0, 1, -1, -1, 1, -1]
    assert t.next_hop[1].tolist() == [0, 1, -1, -1, 0, -1]
    # Add a new link: reachable again, improvements propagate down.
    apply_and_check(m, t, srcs, 4, 3, 0.5)
    assert t.cost[0].tolist() == [0.0, 1.0, INF, 1.5, 1.0, 2.5]
    # Equal cost, fewer hops: hops-only improvement (no cost changes).
    apply_and_check(m, t, srcs, 0, 3, 1.5)
    assert t.hops[0, 3] == 1 and t.pred[0, 3] == 0 and t.next_hop[0, 5] == 3
    # Equal cost and hops, smaller pred id: pred-only change.
    apply_and_check(m, t, srcs, 1, 5, 1.5)
    apply_and_check(m, t, srcs, 0, 2, 3.0)
    t2 = m.RouteTable(graph(4, [(0, 2, 1.0), (2, 3, 1.0), (0, 1, 1.0)]), [0])
    assert t2.pred[0, 3] == 2
    assert apply_and_check(m, t2, [0], 1, 3, 1.0) == 1
    assert t2.pred[0, 3] == 1 and t2.next_hop[0, 3] == 1
    # A change that does not matter to any row.
    assert apply_and_check(m, t2, [0], 3, 1, 9.0) == 0
    # A tree link gets dearer but the sum rounds to the same cost: the row is
    # recomputed and found unchanged.
    t3 = m.RouteTable(graph(3, [(0, 1, 1e16), (1, 2, 0.0)]), [0])
    assert apply_and_check(m, t3, [0], 1, 2, 1.0) == 0
    assert t3.graph.edge_cost(1, 2) == 1.0 and t3.pred[0, 2] == 1


def test_set_link_rounding_can_make_hops_grow(backend):
    """A cheaper path to 1 raises the hops of 5 (cost unchanged), and back."""
    m = routes(backend)
    tiny = 0.4999999999999999  # 0.5 - 2**-53: 0.25 + 0.25 + tiny < 1.0
    g = graph(
        6,
        [
            (0, 1, 1.0),
            (0, 2, 0.25),
            (2, 3, 0.25),
            (3, 1, 5.0),
            (1, 5, 1e16),
            (0, 4, 1.0),
            (4, 5, 1e16),
        ],
    )
    t = m.RouteTable(g, [0])
    assert (t.hops[0, 5], t.pred[0, 5]) == (2, 1)
    apply_and_check(m, t, [0], 3, 1, tiny)
    # 5 keeps cost 1e16; via 1 it would take 4 links, via 4 it takes 2.
    assert (t.cost[0, 5], t.hops[0, 5], t.pred[0, 5]) == (1e16, 2, 4)
    apply_and_check(m, t, [0], 0, 4, INF)
    assert (t.hops[0, 5], t.pred[0, 5], t.next_hop[0, 5]) == (4, 1, 2)
    apply_and_check(m, t, [0], 3, 1, 5.0)
    assert (t.hops[0, 5], t.next_hop[0, 5]) == (2, 1)


@examples(120)
@given(data=graph_and_ops())
def test_incremental_equals_recompute(backend, data):
    m = routes(backend)
    n, edges, sources, ops = data
    t = m.RouteTable(graph(n, edges), sources)
    for u, v, w in ops:
        apply_and_check(m, t, sources, u, v, w)


@examples(60)
@given(data=graph_and_ops(costs=INT_COSTS, max_nodes=6))
def test_incremental_matches_brute_force(backend, data):
    m = routes(backend)
    n, edges, sources, ops = data
    t = m.RouteTable(graph(n, edges), sources)
    for u, v, w in ops:
        t.set_link(u, v, w)
        e = edge_dict(t.graph)
        for r, s in enumerate(sources):
            assert as_lists(t.row(s)) == brute_force(n, e, s)
            assert t.row_index(s) == r


def test_incremental_random_walk_on_a_mesh(backend):
    """Many changes on a mesh-like graph, each checked against a full recomputation."""
    m = routes(backend)
    n = 40 if backend == "pure" else 150
    g = random_mesh(n, seed=9)
    sources = list(range(0, n, 3))
    t = m.RouteTable(g, sources)
    rng = random.Random(11)
    s, d, _ = g.edges()
    links = list(zip(s.tolist(), d.tolist(), strict=True))
    total = 0
    for step in range(60):
        u, v = (
            links[rng.randrange(len(links))]
            if rng.random() < 0.8
            else (rng.randrange(n), rng.randrange(n))
        )
        w = INF if rng.random() < 0.2 else float(rng.choice([1, 2, 3, rng.uniform(1, 10)]))
        if step % 10 == 9:
            total += apply_and_check(m, t, sources, u, v, w)
        else:
            total += t.set_link(u, v, w)
    check_against_fresh(m, t, sources)
    assert total > 0


def test_tables_in_parallel_threads(backend):
    """The GIL-free loops keep no shared state: two tables updated at once stay exact."""
    m = routes(backend)
    n = 30 if backend == "pure" else 200
    g = random_mesh(n, seed=12)
    s, d, _ = g.edges()
    rng = random.Random(5)
    ops = [
        (int(s[k]), int(d[k]), rng.choice([INF, 1.0, 9.0]))
        for k in (rng.randrange(s.size) for _ in range(40))
    ]
    tables = [m.RouteTable(g) for _ in range(2)]
    threads = [threading.Thread(target=lambda t=t: [t.set_link(*op) for op in ops]) for t in tables]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in tables:
        check_against_fresh(m, t, None)
    np.testing.assert_array_equal(tables[0].next_hop, tables[1].next_hop)


# -- differential: pure vs compiled ------------------------------------------------------


def outcome(fn, *args):
    try:
        result = fn(*args)
    except Exception as exc:  # compared by type and message
        return ("raised", type(exc), str(exc))
    if isinstance(result, ShortestPaths):
        return ("paths", result.source, *as_lists(result))
    if isinstance(result, np.ndarray):
        return ("array", result.dtype.str, result.shape, result.tolist())
    return ("value", result)


@examples(150)
@given(data=small_graphs(max_nodes=10), source=st.integers(-2, 11))
def test_twins_agree_on_single_source_and_all_pairs(twins, data, source):
    py, c = twins("routes")
    n, edges = data
    g = graph(n, edges)
    assert outcome(py.shortest_paths, g, source) == outcome(c.shortest_paths, g, source)
    assert outcome(py.all_pairs_costs, g) == outcome(c.all_pairs_costs, g)


@examples(100)
@given(data=graph_and_ops(max_nodes=10, max_ops=10))
def test_twins_agree_on_incremental_updates(twins, data):
    py, c = twins("routes")
    n, edges, sources, ops = data
    g = graph(n, edges)
    tp, tc = py.RouteTable(g, sources), c.RouteTable(g, sources)
    for u, v, w in ops:
        assert tp.set_link(u, v, w) == tc.set_link(u, v, w)
        for a, b in zip(table_arrays(tp), table_arrays(tc), strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)


BAD_CALLS = [
    ("shortest_paths", ("graph", 0)),
    ("shortest_paths", (None, 0)),
    ("shortest_paths", ("G", 7)),
    ("shortest_paths", ("G", -1)),
    ("shortest_paths", ("G", 1.5)),
    ("shortest_paths", ("G", True)),
    ("all_pairs_costs", ("G", [0, 9])),
    ("all_pairs_costs", ("G", ["a"])),
    ("all_pairs_costs", ("G", [[0]])),
    ("RouteTable", ("G", [1, 1])),
    ("RouteTable", ("G", [-3])),
    ("RouteTable", (3,)),
]


@pytest.mark.parametrize(("name", "args"), BAD_CALLS)
def test_twins_raise_the_same_errors(twins, name, args):
    py, c = twins("routes")
    g = graph(4, [(0, 1, 1.0)])
    args = tuple(g if a == "G" else a for a in args)
    got_py = outcome(getattr(py, name), *args)
    got_c = outcome(getattr(c, name), *args)
    assert got_py[0] == "raised" and got_py == got_c


@pytest.mark.parametrize(
    "call",
    [
        ("set_link", (9, 0, 1.0)),
        ("set_link", (0, -1, 1.0)),
        ("set_link", (0, 1, "x")),
        ("set_link", (0, 1, -2.0)),
        ("set_link", (0, 1.0, 1.0)),
        ("row", (3,)),
        ("row", ("a",)),
        ("row_index", (2,)),
    ],
)
def test_twins_raise_the_same_errors_on_tables(twins, call):
    py, c = twins("routes")
    g = graph(4, [(0, 1, 1.0)])
    name, args = call
    got_py = outcome(getattr(py.RouteTable(g, [0, 1]), name), *args)
    got_c = outcome(getattr(c.RouteTable(g, [0, 1]), name), *args)
    assert got_py[0] == "raised" and got_py == got_c


def test_twins_agree_on_a_mesh(twins):
    py, c = twins("routes")
    g = random_mesh(120, seed=5)
    a, b = py.shortest_paths(g, 11), c.shortest_paths(g, 11)
    assert as_lists(a) == as_lists(b)
    np.testing.assert_array_equal(
        py.all_pairs_costs(g, range(0, 120, 7)), c.all_pairs_costs(g, range(0, 120, 7))
    )
