"""Route costs over a directed link-cost graph: the pure-Python twin.

Theory of operation
-------------------
Routing and local-first source selection need, per source, the cheapest path
to every node, its next hop and its length. A mesh has 200-10,000 nodes and
ETX-like link costs (>= 1 typically, two directions with different costs).

**The canonical result.** Path costs are float64 sums taken left to right
from the source. For a source ``s`` every node ``x`` gets a triple
``(cost, hops, pred)``, defined recursively:

* ``cost[x]`` is the least cost of any path ``s -> x`` (float addition is
  monotone, so this is also the least fixpoint of
  ``cost[x] = min over links (y, x) of cost[y] + w(y, x)``);
* ``hops[x]`` is the least ``hops[y] + 1`` over *tight* in-links ``(y, x)``,
  those with ``cost[y] + w(y, x) == cost[x]``;
* ``pred[x]`` is the smallest ``y`` among the tight in-links with
  ``hops[y] + 1 == hops[x]``;
* ``next_hop[x]`` is the node after ``s`` on the ``pred`` chain.

In words: the lexicographically least ``(cost, hops, pred)`` candidate over
all in-links. When sums are exact (integer costs) ``hops`` is the least
number of links over all paths of least cost. The result depends only on
the graph, never on heap or iteration order, so an incremental update can
reproduce a full recomputation bit for bit.

**Single source** (Dijkstra 1959; here ``heapq`` with lazy deletion, the
compiled twin an indexed heap with decrease-key, same result): the heap
is keyed by ``(cost, hops, node)``; a relaxation accepts a candidate triple
only when it is strictly smaller. Keys grow along every link (``hops`` grows
by one, ``cost`` never shrinks), so when ``x`` is popped every tight in-link
that can set its ``hops`` and ``pred`` has been relaxed and ``x`` is final;
its ``next_hop`` is taken from its ``pred``, popped before it.

**Incremental update** (dynamic SSSP in the spirit of Ramalingam and Reps,
"An incremental algorithm for a generalization of the shortest-path
problem", J. Algorithms 1996): after link ``(u, v)`` changes from ``w_old``
to ``w_new``, each row is tested in O(1):

* increase or removal: the row changes only if ``pred[v] == u``; then the
  affected set R is ``v``'s subtree in the old ``pred`` tree (no other node's
  cost can change: its old path is intact and no path got cheaper);
* decrease or new link: only if ``(cost[u] + w_new, hops[u] + 1, u)`` beats
  ``v``'s triple. If the cost of ``v`` drops, a cost-only Dijkstra from
  ``v`` finds the set C of nodes whose cost drops and R is the union of the
  old ``pred`` subtrees of C; otherwise (same cost, fewer hops or smaller
  pred) R is empty and ``v`` is improved directly.

Every node outside R keeps its cost, and its old triple is still achievable,
so it can only improve (fewer hops, or a smaller pred at equal hops). R is
reset; each node of R is seeded from its in-links from outside R; then one
Dijkstra over the same key runs from R, and when it relaxes a link into a
node outside R with a strictly better triple that node is improved and
joins the search. Finally ``next_hop`` is recomputed for the popped nodes
in pop order (parents first) and pushed down the new tree wherever it
changed. Why the subtrees of C rather than only C: a child of a cheaper
node can keep its cost yet need a new pred (its link is no longer tight),
and with float rounding it can even get more ``hops`` (a cheaper but longer
path to its parent whose extra cost the child's sum absorbs), so the
descendants of C may get worse and must be recomputed, not just improved.

The cost is proportional to the affected nodes and their links, times the
heap's log; a structural change (a link added or removed) also rebuilds the
CSR arrays, O(E).

Layout: row state lives in flat ``array.array`` buffers (float64 and int32),
exposed as read-only numpy views without copying; the algorithms run on
plain lists (numpy appears only at the API boundary: ``CostGraph`` arrays in,
result arrays out). This module is the executable specification of
``ext/routes.pyx``; ``docs/kernels/routes.md`` is the full contract.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_left

import numpy as np

from ._graph import (
    CostGraph,
    ShortestPaths,
    check_graph,
    check_link_cost,
    check_node,
    check_sources,
)

__all__ = ["RouteTable", "all_pairs_costs", "shortest_paths"]

_INF = math.inf
_I32 = next(t for t in "il" if array(t).itemsize == 4)  # int32 typecode


def _sssp(n, indptr, indices, costs, s):
    """Canonical ``(cost, pred, next_hop, hops)`` lists from source ``s``."""
    cost = [_INF] * n
    pred = [-1] * n
    nh = [-1] * n
    hops = [-1] * n
    cost[s] = 0.0
    hops[s] = 0
    nh[s] = s
    heap = [(0.0, 0, s)]
    pop = heapq.heappop
    push = heapq.heappush
    while heap:
        cx, hx, x = pop(heap)
        if cx != cost[x] or hx != hops[x]:
            continue  # stale: a node's keys strictly decrease, the current one is popped once
        if x != s:
            p = pred[x]
            nh[x] = x if p == s else nh[p]
        h1 = hx + 1
        for j in range(indptr[x], indptr[x + 1]):
            y = indices[j]
            cy = cx + costs[j]
            cur = cost[y]
            hy = hops[y]
            if cy < cur or (cy == cur and (h1 < hy or (h1 == hy and x < pred[y]))):
                if cy != cur or h1 != hy:
                    push(heap, (cy, h1, y))
                cost[y] = cy
                hops[y] = h1
                pred[y] = x
    return cost, pred, nh, hops


def _sssp_cost(n, indptr, indices, costs, s):
    """Least path costs from ``s`` (no hops or preds: the all-pairs fast path)."""
    cost = [_INF] * n
    cost[s] = 0.0
    heap = [(0.0, s)]
    pop = heapq.heappop
    push = heapq.heappush
    while heap:
        cx, x = pop(heap)
        if cx != cost[x]:
            continue  # stale entry
        for j in range(indptr[x], indptr[x + 1]):
            y = indices[j]
            cy = cx + costs[j]
            if cy < cost[y]:
                cost[y] = cy
                push(heap, (cy, y))
    return cost


def shortest_paths(graph: CostGraph, source: int) -> ShortestPaths:
    """Canonical shortest-path tree from ``source`` (see ``docs/kernels/routes.md``).

    O((V + E) log V). Raises TypeError for a graph that is not a
    :class:`CostGraph` and TypeError/ValueError naming ``source`` for a bad node.
    """
    graph = check_graph(graph)
    n = graph.num_nodes
    s = check_node("source", source, n)
    cost, pred, nh, hops = _sssp(
        n, graph._indptr.tolist(), graph._indices.tolist(), graph._costs.tolist(), s
    )
    return ShortestPaths(
        s,
        np.array(cost, dtype=np.float64),
        np.array(pred, dtype=np.int32),
        np.array(nh, dtype=np.int32),
        np.array(hops, dtype=np.int32),
    )


def all_pairs_costs(graph: CostGraph, sources=None) -> np.ndarray:
    """Least path costs, float64 ``(len(sources), num_nodes)``; all nodes when ``None``.

    Row ``i`` is ``shortest_paths(graph, sources[i]).cost``. Sources may
    repeat. Raises TypeError/ValueError naming ``graph`` or ``sources[i]``.
    """
    graph = check_graph(graph)
    n = graph.num_nodes
    src = check_sources(sources, n, unique=False).tolist()
    out = np.empty((len(src), n), dtype=np.float64)
    indptr = graph._indptr.tolist()
    indices = graph._indices.tolist()
    costs = graph._costs.tolist()
    for r, s in enumerate(src):
        out[r] = _sssp_cost(n, indptr, indices, costs, s)
    return out


class RouteTable:
    """Shortest-path rows for a set of sources, updated incrementally.

    ``RouteTable(graph, sources=None)`` computes one canonical row per source
    (all nodes when ``None``; sources must be distinct). The table keeps its
    own copy of ``graph``; :meth:`set_link` changes that copy and updates
    every row, touching only what the change affects. Arrays ``cost``,
    ``pred``, ``next_hop``, ``hops`` (``len(sources) x num_nodes``) are
    read-only views of the live state. Not safe for concurrent ``set_link``
    calls from several threads (the second raises RuntimeError).
    """

    def __init__(self, graph: CostGraph, sources=None) -> None:
        if getattr(self, "_busy", False):  # __init__ again while another thread is in set_link
            raise RuntimeError("set_link: another thread is updating this RouteTable")
        graph = check_graph(graph)
        n = graph.num_nodes
        src = check_sources(sources, n, unique=True)
        self._graph = graph.copy()
        self._graph._reverse()
        self._n = n
        self._sources = src
        self._src = src.tolist()
        self._row_of = {s: r for r, s in enumerate(self._src)}
        nrows = len(self._src)
        self._cost_buf = array("d", [_INF]) * (nrows * n)
        self._pred_buf = array(_I32, [-1]) * (nrows * n)
        self._nh_buf = array(_I32, [-1]) * (nrows * n)
        self._hops_buf = array(_I32, [-1]) * (nrows * n)
        self._busy = False
        self._load_graph()
        self._rows = []
        for r, s in enumerate(self._src):
            views = tuple(
                memoryview(buf)[r * n : (r + 1) * n]
                for buf in (self._cost_buf, self._pred_buf, self._nh_buf, self._hops_buf)
            )
            cost, pred, nh, hops = _sssp(n, self._indptr, self._indices, self._costs, s)
            views[0][:] = array("d", cost)
            views[1][:] = array(_I32, pred)
            views[2][:] = array(_I32, nh)
            views[3][:] = array(_I32, hops)
            self._rows.append(views)
        self._views = tuple(
            _frozen(np.frombuffer(buf, dtype=dt).reshape(nrows, n))
            for buf, dt in (
                (self._cost_buf, np.float64),
                (self._pred_buf, np.int32),
                (self._nh_buf, np.int32),
                (self._hops_buf, np.int32),
            )
        )
        # Per-node scratch of the incremental update; stamps equal to the
        # current epoch mark membership, so nothing is cleared per row.
        self._epoch = 0
        self._in_r = [0] * n
        self._done = [0] * n
        self._vis = [0] * n
        self._acost = [0.0] * n
        self._old_cost = [0.0] * n
        self._old_pred = [0] * n
        self._old_nh = [0] * n
        self._old_hops = [0] * n

    def _load_graph(self) -> None:
        g = self._graph
        rindptr, rindices, rcosts = g._reverse()
        self._indptr = g._indptr.tolist()
        self._indices = g._indices.tolist()
        self._costs = g._costs.tolist()
        self._rindptr = rindptr.tolist()
        self._rindices = rindices.tolist()
        self._rcosts = rcosts.tolist()

    # -- read access ---------------------------------------------------------

    @property
    def graph(self) -> CostGraph:
        """The table's own graph, with every :meth:`set_link` change applied."""
        return self._graph

    @property
    def sources(self) -> np.ndarray:
        """int32[S]: the source of each row (read-only)."""
        return _frozen(self._sources)

    @property
    def cost(self) -> np.ndarray:
        """float64[S, num_nodes]: least path costs, inf when unreachable (read-only view)."""
        return self._views[0]

    @property
    def pred(self) -> np.ndarray:
        """int32[S, num_nodes]: canonical predecessors, -1 for sources/unreachable."""
        return self._views[1]

    @property
    def next_hop(self) -> np.ndarray:
        """int32[S, num_nodes]: first node after the row's source, -1 when unreachable."""
        return self._views[2]

    @property
    def hops(self) -> np.ndarray:
        """int32[S, num_nodes]: links on the canonical path, -1 when unreachable."""
        return self._views[3]

    def row_index(self, source: int) -> int:
        """Row number of ``source``; ValueError if it is not a node or has no row."""
        s = check_node("source", source, self._n)
        r = self._row_of.get(s)
        if r is None:
            raise ValueError(f"source: node {s} has no row in this table")
        return r

    def row(self, source: int) -> ShortestPaths:
        """The row of ``source`` as a :class:`ShortestPaths` (copies of the arrays)."""
        r = self.row_index(source)
        cost, pred, nh, hops = self._views
        return ShortestPaths(
            self._src[r], cost[r].copy(), pred[r].copy(), nh[r].copy(), hops[r].copy()
        )

    def __repr__(self) -> str:
        return f"RouteTable(num_nodes={self._n}, rows={len(self._src)})"

    # -- incremental update ----------------------------------------------------

    def set_link(self, u: int, v: int, cost: float) -> int:
        """Set the cost of the directed link ``u -> v`` and update every row.

        ``cost`` inf removes the link; a link that did not exist is added; a
        self-loop (``u == v``) is ignored. Returns the number of rows in which
        any of ``cost``, ``pred``, ``next_hop`` or ``hops`` changed. Raises
        TypeError/ValueError naming ``u``, ``v`` or ``cost``; RuntimeError if
        another thread is inside ``set_link`` of this table.
        """
        if self._busy:
            raise RuntimeError("set_link: another thread is updating this RouteTable")
        n = self._n
        u = check_node("u", u, n)
        v = check_node("v", v, n)
        w = check_link_cost("cost", cost)
        if u == v:
            return 0
        self._busy = True
        try:
            old, structural = self._graph._set_link(u, v, w)
            if old == w:
                return 0
            if structural:
                self._load_graph()
            else:
                k = bisect_left(self._indices, v, self._indptr[u], self._indptr[u + 1])
                self._costs[k] = w
                k = bisect_left(self._rindices, u, self._rindptr[v], self._rindptr[v + 1])
                self._rcosts[k] = w
            changed = 0
            for r, s in enumerate(self._src):
                if self._update_row(r, s, u, v, old, w):
                    changed += 1
            return changed
        finally:
            self._busy = False

    def _update_row(self, r, s, u, v, w_old, w_new):
        """Bring row ``r`` (source ``s``) up to date after ``w(u, v)`` changed; True if changed."""
        cost, pred, nh, hops = self._rows[r]
        indptr, indices, costs = self._indptr, self._indices, self._costs
        in_r, done = self._in_r, self._done
        pop = heapq.heappop
        push = heapq.heappush
        improve_only = False
        if w_new > w_old:
            if pred[v] != u:
                return False  # the link is not on this row's tree
            self._epoch += 1
            ep = self._epoch
            in_r[v] = ep
            rset = [v]
        else:
            cu = cost[u]
            if v == s or cu == _INF:
                return False
            cand_c = cu + w_new
            cand_h = hops[u] + 1
            cur = cost[v]
            if not (
                cand_c < cur
                or (cand_c == cur and (cand_h < hops[v] or (cand_h == hops[v] and u < pred[v])))
            ):
                return False  # v keeps its triple, so nothing else moves
            self._epoch += 1
            ep = self._epoch
            if cand_c < cur:
                rset = self._cheaper_set(cost, v, cand_c, ep)
            else:
                improve_only = True
                rset = []
        # R: the old pred subtrees of the roots (rset grows while it is scanned).
        i = 0
        while i < len(rset):
            x = rset[i]
            i += 1
            for j in range(indptr[x], indptr[x + 1]):
                z = indices[j]
                if pred[z] == x and in_r[z] != ep:
                    in_r[z] = ep
                    rset.append(z)
        old_cost, old_pred, old_nh, old_hops = (
            self._old_cost,
            self._old_pred,
            self._old_nh,
            self._old_hops,
        )
        for x in rset:
            old_cost[x] = cost[x]
            old_pred[x] = pred[x]
            old_nh[x] = nh[x]
            old_hops[x] = hops[x]
            cost[x] = _INF
            hops[x] = -1
            pred[x] = -1
        # Seed R from in-links whose tail is outside R (their values hold).
        rindptr, rindices, rcosts = self._rindptr, self._rindices, self._rcosts
        heap = []
        for x in rset:
            bc = _INF
            bh = -1
            bp = -1
            for j in range(rindptr[x], rindptr[x + 1]):
                y = rindices[j]
                if in_r[y] == ep:
                    continue
                cy = cost[y]
                if cy == _INF:
                    continue
                cy += rcosts[j]
                hy = hops[y] + 1
                if cy < bc or (cy == bc and (hy < bh or (hy == bh and y < bp))):
                    bc = cy
                    bh = hy
                    bp = y
            if bc != _INF:
                cost[x] = bc
                hops[x] = bh
                pred[x] = bp
                push(heap, (bc, bh, x))
        if improve_only:
            old_cost[v] = cost[v]
            old_pred[v] = pred[v]
            old_nh[v] = nh[v]
            old_hops[v] = hops[v]
            in_r[v] = ep
            rset.append(v)
            cost[v] = cand_c
            hops[v] = cand_h
            pred[v] = u
            push(heap, (cand_c, cand_h, v))
        # Dijkstra from R; a node outside R that gets a better triple joins R.
        touched = []
        while heap:
            cx, hx, x = pop(heap)
            if done[x] == ep or cx != cost[x] or hx != hops[x]:
                continue
            done[x] = ep
            touched.append(x)
            h1 = hx + 1
            for j in range(indptr[x], indptr[x + 1]):
                y = indices[j]
                if y == s or done[y] == ep:
                    continue
                cy = cx + costs[j]
                cur = cost[y]
                hy = hops[y]
                if cy < cur or (cy == cur and (h1 < hy or (h1 == hy and x < pred[y]))):
                    if in_r[y] != ep:
                        in_r[y] = ep
                        rset.append(y)
                        old_cost[y] = cur
                        old_pred[y] = pred[y]
                        old_nh[y] = nh[y]
                        old_hops[y] = hy
                        push(heap, (cy, h1, y))
                    elif cy != cur or h1 != hy:
                        push(heap, (cy, h1, y))
                    cost[y] = cy
                    hops[y] = h1
                    pred[y] = x
        for x in rset:
            if done[x] != ep:  # R node no longer reachable
                nh[x] = -1
        # next_hop: parents are popped before children, so pop order is
        # top-down; a change is pushed down the new tree to untouched nodes.
        vis = self._vis
        changed = False
        for x in touched:
            if vis[x] == ep:
                continue
            p = pred[x]
            t = x if p == s else nh[p]
            if t != nh[x]:
                changed = True
                nh[x] = t
                vis[x] = ep
                stack = [x]
                while stack:
                    a = stack.pop()
                    for j in range(indptr[a], indptr[a + 1]):
                        z = indices[j]
                        if pred[z] == a and vis[z] != ep and nh[z] != t:
                            nh[z] = t
                            vis[z] = ep
                            stack.append(z)
        if changed:
            return True
        for x in rset:
            if (
                cost[x] != old_cost[x]
                or hops[x] != old_hops[x]
                or pred[x] != old_pred[x]
                or nh[x] != old_nh[x]
            ):
                return True
        return False

    def _cheaper_set(self, cost, v, cv, ep):
        """Cost-only Dijkstra from ``v`` (new cost ``cv``): nodes whose cost drops, marked in R."""
        indptr, indices, costs = self._indptr, self._indices, self._costs
        in_r, acost = self._in_r, self._acost
        pop = heapq.heappop
        push = heapq.heappush
        in_r[v] = ep
        acost[v] = cv
        cheaper = [v]
        heap = [(cv, v)]
        while heap:
            cx, x = pop(heap)
            if cx != acost[x]:
                continue
            for j in range(indptr[x], indptr[x + 1]):
                y = indices[j]
                cy = cx + costs[j]
                if in_r[y] == ep:
                    if cy < acost[y]:
                        acost[y] = cy
                        push(heap, (cy, y))
                elif cy < cost[y]:
                    in_r[y] = ep
                    cheaper.append(y)
                    acost[y] = cy
                    push(heap, (cy, y))
        return cheaper


def _frozen(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view
