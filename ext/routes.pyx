"""Route costs over a directed link-cost graph (compiled twin).

Theory of operation
-------------------
Dijkstra (1959) with a binary heap, and a dynamic single-source update in
the spirit of Ramalingam and Reps (J. Algorithms 1996). This module is the
C-array twin of ``meshcore/kernels/_routes_py.py``, which is the executable
specification and explains the canonical result (least ``(cost, hops,
pred)`` triple per node) and the incremental algorithm step by step;
``docs/kernels/routes.md`` gives the full contract. Both twins return
bit-identical arrays and raise the same exceptions with the same messages
(the checks live in ``_graph``).

Layout: the graph is read through raw pointers into the CSR arrays of
:class:`CostGraph` (forward and reverse). A heap entry is 16 bytes,
``(double cost, int64 key)`` with ``key = hops << 32 | node`` (both < 2**31),
so one integer compare orders ``(hops, node)``; the heaps, the per-node
scratch of the incremental update and the row arrays are C buffers, never a
Python object per node. Every loop runs without the GIL.

Two heaps. The full computations (``shortest_paths``, ``all_pairs_costs``,
building a ``RouteTable``) use an indexed binary heap with decrease-key: a
node is in it at most once and popped once, about a third fewer pops than
lazy deletion on mesh-like graphs. The incremental update uses a plain
binary heap with lazy deletion (stale entries are skipped when popped),
because an index would need clearing per row; it is pre-sized to
``num_nodes + num_edges + 2`` entries, which bounds the pushes of one row
update: every node is popped (finalised) once, so every link is relaxed
once, plus one seed per node. Membership sets of the incremental update are
epoch stamps (a uint64 per node equal to the current epoch), so nothing is
cleared per row either.

Floating point: results are IEEE-754 binary64 sums; the build must evaluate
doubles in double precision (SSE2 on x86, VFP/NEON on ARM; not x87).
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memset

import numpy as np

from meshcore.kernels._graph import (
    ShortestPaths,
    check_graph,
    check_link_cost,
    check_node,
    check_sources,
)

__all__ = ["RouteTable", "all_pairs_costs", "shortest_paths"]


ctypedef struct Entry:
    double cost
    int64_t key           # hops << 32 | node (cost-only heaps: node)


ctypedef struct Heap:
    Entry* data
    int32_t* pos          # indexed heap: slot of each node, -1 absent, -2 popped


ctypedef struct Csr:
    int32_t n
    const int64_t* indptr
    const int32_t* indices
    const double* costs
    const int64_t* rindptr      # reverse CSR (in-links); NULL where unused
    const int32_t* rindices
    const double* rcosts


ctypedef struct Scratch:
    uint64_t epoch
    uint64_t* in_r        # node is in R (reset or improved) this epoch
    uint64_t* done        # node popped (final) this epoch
    uint64_t* vis         # next_hop already final this epoch
    double* acost         # new costs of the cost-only phase
    double* old_cost      # values of R nodes before the update
    int32_t* old_pred
    int32_t* old_nh
    int32_t* old_hops
    int32_t* rset         # R as a list (grows while scanned)
    int32_t* touched      # nodes in pop order
    int32_t* stack


# -- heap -------------------------------------------------------------------

cdef inline int _less(const Entry* a, const Entry* b) noexcept nogil:
    # Bitwise, not short-circuit: the compiler emits flag arithmetic instead of
    # hard-to-predict branches, which dominate a heap's cost.
    return (a.cost < b.cost) | ((a.cost == b.cost) & (a.key < b.key))


cdef inline Py_ssize_t _push(Entry* heap, Py_ssize_t size, double cost,
                             int64_t key) noexcept nogil:
    """Push (cost, key); returns the new size. Callers keep data and size in locals."""
    cdef Py_ssize_t i = size
    cdef Py_ssize_t p
    cdef Entry e
    e.cost = cost
    e.key = key
    while i > 0:
        p = (i - 1) >> 1
        if not _less(&e, &heap[p]):
            break
        heap[i] = heap[p]
        i = p
    heap[i] = e
    return size + 1


cdef inline Py_ssize_t _pop(Entry* heap, Py_ssize_t size, Entry* top) noexcept nogil:
    """Pop the least entry into top; returns the new size.

    Bottom-up deletion (Wegener 1993): the hole walks down to a leaf along the
    smaller children (one compare per level, branch-free), then the last entry
    sifts up from there, usually a step or two.
    """
    cdef Entry last
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t c
    cdef Py_ssize_t p
    top[0] = heap[0]
    size -= 1
    if size == 0:
        return 0
    last = heap[size]
    c = 1
    while c < size:
        # heap[size] is still allocated (it held last), so reading heap[c + 1]
        # when c + 1 == size is safe; the bound check masks the result.
        c += (c + 1 < size) & _less(&heap[c + 1], &heap[c])
        heap[i] = heap[c]
        i = c
        c = 2 * i + 1
    while i > 0:
        p = (i - 1) >> 1
        if not _less(&last, &heap[p]):
            break
        heap[i] = heap[p]
        i = p
    heap[i] = last
    return size


cdef inline int _lt(const Entry* a, const Entry* b, bint full) noexcept nogil:
    if full:
        return _less(a, b)
    return a.cost < b.cost


cdef inline void _ih_place(Entry* heap, int32_t* pos, Py_ssize_t k, Entry e,
                           bint full) noexcept nogil:
    """Sift e up from slot k of an indexed heap and store it.

    ``full`` orders by (cost, key); otherwise by cost alone (the all-pairs
    heap, whose result does not depend on ties). Callers pass a constant, so
    the compiler specialises the inlined code.
    """
    cdef Py_ssize_t par
    while k > 0:
        par = (k - 1) >> 1
        if not _lt(&e, &heap[par], full):
            break
        heap[k] = heap[par]
        pos[<uint32_t>heap[k].key] = <int32_t>k
        k = par
    heap[k] = e
    pos[<uint32_t>e.key] = <int32_t>k


cdef inline Py_ssize_t _ih_update(Entry* heap, int32_t* pos, Py_ssize_t size, double cost,
                                  int64_t key, bint full) noexcept nogil:
    """Insert node (low 32 bits of key) or lower its key; returns the new size.

    The indexed heap (decrease-key) of the full computations: each node is
    popped exactly once and the heap holds at most the frontier, which beats
    lazy deletion by about a third on mesh-like graphs.
    """
    cdef Py_ssize_t k = pos[<uint32_t>key]
    cdef Entry e
    e.cost = cost
    e.key = key
    if k < 0:
        k = size
        size += 1
    _ih_place(heap, pos, k, e, full)
    return size


cdef inline Py_ssize_t _ih_pop(Entry* heap, int32_t* pos, Py_ssize_t size, Entry* top,
                               bint full) noexcept nogil:
    """Pop the least entry of an indexed heap into top; returns the new size."""
    cdef Py_ssize_t k = 0
    cdef Py_ssize_t c = 1
    top[0] = heap[0]
    pos[<uint32_t>top.key] = -2
    size -= 1
    if size == 0:
        return 0
    while c < size:
        c += (c + 1 < size) & _lt(&heap[c + 1], &heap[c], full)
        heap[k] = heap[c]
        pos[<uint32_t>heap[k].key] = <int32_t>k
        k = c
        c = 2 * k + 1
    _ih_place(heap, pos, k, heap[size], full)
    return size


cdef inline bint _better(double c, int32_t h, int32_t p, double cur, int32_t hcur,
                         int32_t pcur) noexcept nogil:
    """Is the triple (c, h, p) strictly smaller than (cur, hcur, pcur)?"""
    return c < cur or (c == cur and (h < hcur or (h == hcur and p < pcur)))


# -- single source ------------------------------------------------------------

cdef void _sssp(const Csr* g, int32_t s, double* cost, int32_t* pred, int32_t* nh,
                int32_t* hops, Heap* hp) noexcept nogil:
    """Canonical (cost, pred, next_hop, hops) from s; see _routes_py._sssp.

    Same result as the twin's lazy-deletion heap: the key (cost, hops, node)
    of a node only decreases, and the triple a node ends with does not depend
    on the order of pops among equal keys.
    """
    cdef const int64_t* indptr = g.indptr
    cdef const int32_t* indices = g.indices
    cdef const double* costs = g.costs
    cdef Entry* heap = hp.data
    cdef int32_t* pos = hp.pos
    cdef Py_ssize_t hs
    cdef int32_t n = g.n
    cdef int32_t i, x, y, p, h1
    cdef int64_t j, jend
    cdef double cx, cy, cur
    cdef Entry e
    for i in range(n):
        cost[i] = INFINITY
        pred[i] = -1
        nh[i] = -1
        hops[i] = -1
        pos[i] = -1
    cost[s] = 0.0
    hops[s] = 0
    nh[s] = s
    hs = _ih_update(heap, pos, 0, 0.0, s, True)
    while hs > 0:
        hs = _ih_pop(heap, pos, hs, &e, True)
        x = <int32_t><uint32_t>e.key
        if x != s:
            p = pred[x]
            nh[x] = x if p == s else nh[p]
        cx = e.cost
        h1 = hops[x] + 1
        jend = indptr[x + 1]
        for j in range(indptr[x], jend):
            y = indices[j]
            cy = cx + costs[j]
            cur = cost[y]
            if _better(cy, h1, x, cur, hops[y], pred[y]):
                if cy != cur or h1 != hops[y]:
                    hs = _ih_update(heap, pos, hs, cy, (<int64_t>h1 << 32) | y, True)
                cost[y] = cy
                hops[y] = h1
                pred[y] = x


cdef void _sssp_cost(const Csr* g, int32_t s, double* cost, Heap* hp) noexcept nogil:
    """Least path costs from s only (all-pairs fast path)."""
    cdef const int64_t* indptr = g.indptr
    cdef const int32_t* indices = g.indices
    cdef const double* costs = g.costs
    cdef Entry* heap = hp.data
    cdef int32_t* pos = hp.pos
    cdef Py_ssize_t hs
    cdef int32_t n = g.n
    cdef int32_t i, x, y
    cdef int64_t j, jend
    cdef double cx, cy
    cdef Entry e
    for i in range(n):
        cost[i] = INFINITY
        pos[i] = -1
    cost[s] = 0.0
    hs = _ih_update(heap, pos, 0, 0.0, s, False)
    while hs > 0:
        hs = _ih_pop(heap, pos, hs, &e, False)
        x = <int32_t><uint32_t>e.key
        cx = e.cost
        jend = indptr[x + 1]
        for j in range(indptr[x], jend):
            y = indices[j]
            cy = cx + costs[j]
            if cy < cost[y]:
                cost[y] = cy
                hs = _ih_update(heap, pos, hs, cy, y, False)


# -- incremental update of one row ----------------------------------------------

cdef int32_t _cheaper_set(const Csr* g, Scratch* sc, Heap* hp, const double* cost, int32_t v,
                          double cv, uint64_t ep) noexcept nogil:
    """Cost-only Dijkstra from v (new cost cv): nodes whose cost drops go to R.

    Returns the number of such nodes, written to rset and stamped in in_r.
    """
    cdef const int64_t* indptr = g.indptr
    cdef const int32_t* indices = g.indices
    cdef const double* costs = g.costs
    cdef Entry* heap = hp.data
    cdef Py_ssize_t hs = 0
    cdef uint64_t* in_r = sc.in_r
    cdef double* acost = sc.acost
    cdef int32_t* rset = sc.rset
    cdef int32_t nr = 0, x, y
    cdef int64_t j, jend
    cdef double cx, cy
    cdef Entry e
    in_r[v] = ep
    acost[v] = cv
    rset[nr] = v
    nr += 1
    hs = 0
    hs = _push(heap, hs, cv, v)
    while hs > 0:
        hs = _pop(heap, hs, &e)
        x = <int32_t>e.key
        cx = e.cost
        if cx != acost[x]:
            continue
        jend = indptr[x + 1]
        for j in range(indptr[x], jend):
            y = indices[j]
            cy = cx + costs[j]
            if in_r[y] == ep:
                if cy < acost[y]:
                    acost[y] = cy
                    hs = _push(heap, hs, cy, y)
            elif cy < cost[y]:
                in_r[y] = ep
                rset[nr] = y
                nr += 1
                acost[y] = cy
                hs = _push(heap, hs, cy, y)
    return nr


cdef inline void _save(Scratch* sc, int32_t x, const double* cost, const int32_t* pred,
                       const int32_t* nh, const int32_t* hops) noexcept nogil:
    sc.old_cost[x] = cost[x]
    sc.old_pred[x] = pred[x]
    sc.old_nh[x] = nh[x]
    sc.old_hops[x] = hops[x]


cdef int _update_row(const Csr* g, Scratch* sc, Heap* hp, int32_t s, int32_t u, int32_t v,
                     double w_old, double w_new, double* cost, int32_t* pred, int32_t* nh,
                     int32_t* hops) noexcept nogil:
    """Bring one row up to date after w(u, v) changed; 1 if any value changed.

    Step for step the algorithm of _routes_py.RouteTable._update_row.
    """
    cdef const int64_t* indptr = g.indptr
    cdef const int32_t* indices = g.indices
    cdef const double* costs = g.costs
    cdef Entry* heap = hp.data
    cdef Py_ssize_t hs = 0
    cdef const int64_t* rindptr = g.rindptr
    cdef const int32_t* rindices = g.rindices
    cdef const double* rcosts = g.rcosts
    cdef uint64_t* in_r = sc.in_r
    cdef uint64_t* done = sc.done
    cdef uint64_t* vis = sc.vis
    cdef int32_t* rset = sc.rset
    cdef int32_t* touched = sc.touched
    cdef int32_t* stack = sc.stack
    cdef uint64_t ep
    cdef int32_t nr, nt = 0, top, i, x, y, z, a, p, t, hx, h1, hy, bh, bp, cand_h = 0
    cdef int64_t j, jend
    cdef double cand_c = 0.0, cur, cx, cy, bc
    cdef bint improve_only = False
    cdef int changed = 0
    cdef Entry e

    if w_new > w_old:
        if pred[v] != u:
            return 0  # the link is not on this row's tree
        sc.epoch += 1
        ep = sc.epoch
        in_r[v] = ep
        rset[0] = v
        nr = 1
    else:
        if v == s or cost[u] == INFINITY:
            return 0
        cand_c = cost[u] + w_new
        cand_h = hops[u] + 1
        cur = cost[v]
        if not _better(cand_c, cand_h, u, cur, hops[v], pred[v]):
            return 0  # v keeps its triple, so nothing else moves
        sc.epoch += 1
        ep = sc.epoch
        if cand_c < cur:
            nr = _cheaper_set(g, sc, hp, cost, v, cand_c, ep)
        else:
            improve_only = True
            nr = 0

    # R: the old pred subtrees of the roots (rset grows while it is scanned).
    i = 0
    while i < nr:
        x = rset[i]
        i += 1
        jend = indptr[x + 1]
        for j in range(indptr[x], jend):
            z = indices[j]
            if pred[z] == x and in_r[z] != ep:
                in_r[z] = ep
                rset[nr] = z
                nr += 1
    for i in range(nr):
        x = rset[i]
        _save(sc, x, cost, pred, nh, hops)
        cost[x] = INFINITY
        hops[x] = -1
        pred[x] = -1

    # Seed R from in-links whose tail is outside R (their values hold).
    hs = 0
    for i in range(nr):
        x = rset[i]
        bc = INFINITY
        bh = -1
        bp = -1
        jend = rindptr[x + 1]
        for j in range(rindptr[x], jend):
            y = rindices[j]
            if in_r[y] == ep:
                continue
            cy = cost[y]
            if cy == INFINITY:
                continue
            cy = cy + rcosts[j]
            hy = hops[y] + 1
            if _better(cy, hy, y, bc, bh, bp):
                bc = cy
                bh = hy
                bp = y
        if bc != INFINITY:
            cost[x] = bc
            hops[x] = bh
            pred[x] = bp
            hs = _push(heap, hs, bc, (<int64_t>bh << 32) | x)
    if improve_only:
        _save(sc, v, cost, pred, nh, hops)
        in_r[v] = ep
        rset[nr] = v
        nr += 1
        cost[v] = cand_c
        hops[v] = cand_h
        pred[v] = u
        hs = _push(heap, hs, cand_c, (<int64_t>cand_h << 32) | v)

    # Dijkstra from R; a node outside R that gets a better triple joins R.
    while hs > 0:
        hs = _pop(heap, hs, &e)
        x = <int32_t><uint32_t>e.key
        hx = <int32_t>(e.key >> 32)
        if done[x] == ep or e.cost != cost[x] or hx != hops[x]:
            continue
        done[x] = ep
        touched[nt] = x
        nt += 1
        cx = e.cost
        h1 = hx + 1
        jend = indptr[x + 1]
        for j in range(indptr[x], jend):
            y = indices[j]
            if y == s or done[y] == ep:
                continue
            cy = cx + costs[j]
            cur = cost[y]
            hy = hops[y]
            if _better(cy, h1, x, cur, hy, pred[y]):
                if in_r[y] != ep:
                    in_r[y] = ep
                    rset[nr] = y
                    nr += 1
                    _save(sc, y, cost, pred, nh, hops)
                    hs = _push(heap, hs, cy, (<int64_t>h1 << 32) | y)
                elif cy != cur or h1 != hy:
                    hs = _push(heap, hs, cy, (<int64_t>h1 << 32) | y)
                cost[y] = cy
                hops[y] = h1
                pred[y] = x
    for i in range(nr):
        x = rset[i]
        if done[x] != ep:  # R node no longer reachable
            nh[x] = -1

    # next_hop, top-down in pop order, pushed down the new tree where it changed.
    for i in range(nt):
        x = touched[i]
        if vis[x] == ep:
            continue
        p = pred[x]
        t = x if p == s else nh[p]
        if t != nh[x]:
            changed = 1
            nh[x] = t
            vis[x] = ep
            stack[0] = x
            top = 1
            while top > 0:
                top -= 1
                a = stack[top]
                jend = indptr[a + 1]
                for j in range(indptr[a], jend):
                    z = indices[j]
                    if pred[z] == a and vis[z] != ep and nh[z] != t:
                        nh[z] = t
                        vis[z] = ep
                        stack[top] = z
                        top += 1
    if changed:
        return 1
    for i in range(nr):
        x = rset[i]
        if (cost[x] != sc.old_cost[x] or hops[x] != sc.old_hops[x]
                or pred[x] != sc.old_pred[x] or nh[x] != sc.old_nh[x]):
            return 1
    return 0


# -- buffers --------------------------------------------------------------------

cdef inline const int64_t* _p64(const int64_t[::1] m) noexcept:
    return &m[0] if m.shape[0] > 0 else NULL


cdef inline const int32_t* _p32(const int32_t[::1] m) noexcept:
    return &m[0] if m.shape[0] > 0 else NULL


cdef inline const double* _pd(const double[::1] m) noexcept:
    return &m[0] if m.shape[0] > 0 else NULL


cdef class _GraphView:
    """Holds the buffers of a CostGraph and raw pointers into them."""

    cdef const int64_t[::1] indptr
    cdef const int32_t[::1] indices
    cdef const double[::1] costs
    cdef const int64_t[::1] rindptr
    cdef const int32_t[::1] rindices
    cdef const double[::1] rcosts
    cdef Csr csr

    def __cinit__(self, graph, bint reverse):
        self.indptr = graph._indptr
        self.indices = graph._indices
        self.costs = graph._costs
        self.csr.n = graph._num_nodes
        self.csr.indptr = _p64(self.indptr)
        self.csr.indices = _p32(self.indices)
        self.csr.costs = _pd(self.costs)
        self.csr.rindptr = NULL
        self.csr.rindices = NULL
        self.csr.rcosts = NULL
        if reverse:
            self.rindptr, self.rindices, self.rcosts = graph._reverse()
            self.csr.rindptr = _p64(self.rindptr)
            self.csr.rindices = _p32(self.rindices)
            self.csr.rcosts = _pd(self.rcosts)


cdef void* _alloc(size_t count, size_t size) except NULL:
    cdef void* p = PyMem_Malloc(count * size if count > 0 else 1)
    if p == NULL:
        raise MemoryError()
    return p


cdef inline Py_ssize_t _heap_bound(Csr* g) noexcept:
    return <Py_ssize_t>g.n + <Py_ssize_t>(g.indptr[g.n] if g.indptr != NULL else 0) + 2


def _frozen(arr):
    view = arr.view()
    view.flags.writeable = False
    return view


# -- public API -------------------------------------------------------------------

def shortest_paths(graph, source):
    """Canonical shortest-path tree from ``source`` (see ``docs/kernels/routes.md``).

    O((V + E) log V). Raises TypeError for a graph that is not a
    :class:`CostGraph` and TypeError/ValueError naming ``source`` for a bad node.
    """
    graph = check_graph(graph)
    cdef int32_t n = graph.num_nodes
    cdef int32_t s = check_node("source", source, n)
    cdef _GraphView gv = _GraphView(graph, False)
    cost = np.empty(n, dtype=np.float64)
    pred = np.empty(n, dtype=np.int32)
    nh = np.empty(n, dtype=np.int32)
    hops = np.empty(n, dtype=np.int32)
    cdef double[::1] c = cost
    cdef int32_t[::1] p = pred
    cdef int32_t[::1] q = nh
    cdef int32_t[::1] h = hops
    cdef Heap hp
    hp.data = NULL
    hp.pos = NULL
    try:
        # An indexed heap holds each node at most once.
        hp.data = <Entry*>_alloc(n + 1, sizeof(Entry))
        hp.pos = <int32_t*>_alloc(n, sizeof(int32_t))
        with nogil:
            _sssp(&gv.csr, s, &c[0], &p[0], &q[0], &h[0], &hp)
    finally:
        PyMem_Free(hp.data)
        PyMem_Free(hp.pos)
    return ShortestPaths(s, cost, pred, nh, hops)


def all_pairs_costs(graph, sources=None):
    """Least path costs, float64 ``(len(sources), num_nodes)``; all nodes when ``None``.

    Row ``i`` is ``shortest_paths(graph, sources[i]).cost``. Sources may
    repeat. Raises TypeError/ValueError naming ``graph`` or ``sources[i]``.
    """
    graph = check_graph(graph)
    cdef int32_t n = graph.num_nodes
    src_arr = check_sources(sources, n, unique=False)
    cdef const int32_t[::1] src = src_arr
    cdef Py_ssize_t nrows = src.shape[0]
    cdef Py_ssize_t r
    out = np.empty((nrows, n), dtype=np.float64)
    if nrows == 0 or n == 0:
        return out
    cdef double[:, ::1] o = out
    cdef _GraphView gv = _GraphView(graph, False)
    cdef Heap hp
    hp.data = NULL
    hp.pos = NULL
    try:
        hp.data = <Entry*>_alloc(n + 1, sizeof(Entry))
        hp.pos = <int32_t*>_alloc(n, sizeof(int32_t))
        with nogil:
            for r in range(nrows):
                _sssp_cost(&gv.csr, src[r], &o[r, 0], &hp)
    finally:
        PyMem_Free(hp.data)
        PyMem_Free(hp.pos)
    return out


cdef class RouteTable:
    """Shortest-path rows for a set of sources, updated incrementally.

    ``RouteTable(graph, sources=None)`` computes one canonical row per source
    (all nodes when ``None``; sources must be distinct). The table keeps its
    own copy of ``graph``; :meth:`set_link` changes that copy and updates
    every row, touching only what the change affects. Arrays ``cost``,
    ``pred``, ``next_hop``, ``hops`` (``len(sources) x num_nodes``) are
    read-only views of the live state. Not safe for concurrent ``set_link``
    calls from several threads (the second raises RuntimeError).
    """

    cdef object _graph
    cdef object _sources
    cdef object _row_of
    cdef tuple _views
    cdef _GraphView _gv
    cdef double[:, ::1] _cost
    cdef int32_t[:, ::1] _pred
    cdef int32_t[:, ::1] _nh
    cdef int32_t[:, ::1] _hops
    cdef const int32_t[::1] _src
    cdef int32_t _n
    cdef Heap _heap
    cdef Py_ssize_t _heap_cap
    cdef Scratch _sc
    cdef public bint _busy

    def __cinit__(self, *args, **kwargs):
        self._heap.data = NULL
        self._heap.pos = NULL
        self._heap_cap = 0
        memset(&self._sc, 0, sizeof(Scratch))

    def __init__(self, graph, sources=None):
        if self._busy:  # __init__ again while another thread is in set_link
            raise RuntimeError("set_link: another thread is updating this RouteTable")
        graph = check_graph(graph)
        cdef int32_t n = graph.num_nodes
        src_arr = check_sources(sources, n, unique=True)
        self._graph = graph.copy()
        self._n = n
        self._sources = src_arr
        self._src = src_arr
        self._row_of = {s: r for r, s in enumerate(src_arr.tolist())}
        cdef Py_ssize_t nrows = src_arr.shape[0]
        cost = np.empty((nrows, n), dtype=np.float64)
        pred = np.empty((nrows, n), dtype=np.int32)
        nh = np.empty((nrows, n), dtype=np.int32)
        hops = np.empty((nrows, n), dtype=np.int32)
        self._cost = cost
        self._pred = pred
        self._nh = nh
        self._hops = hops
        self._views = (_frozen(cost), _frozen(pred), _frozen(nh), _frozen(hops))
        self._gv = _GraphView(self._graph, True)
        self._alloc_scratch()
        self._ensure_heap()
        cdef Py_ssize_t r
        if nrows == 0 or n == 0:
            return
        with nogil:
            for r in range(nrows):
                _sssp(&self._gv.csr, self._src[r], &self._cost[r, 0], &self._pred[r, 0],
                      &self._nh[r, 0], &self._hops[r, 0], &self._heap)

    cdef _alloc_scratch(self):
        cdef size_t n = <size_t>self._n
        cdef Scratch* sc = &self._sc
        self._free_buffers()  # __init__ called again on a live table
        sc.epoch = 0
        sc.in_r = <uint64_t*>_alloc(n, sizeof(uint64_t))
        sc.done = <uint64_t*>_alloc(n, sizeof(uint64_t))
        sc.vis = <uint64_t*>_alloc(n, sizeof(uint64_t))
        sc.acost = <double*>_alloc(n, sizeof(double))
        sc.old_cost = <double*>_alloc(n, sizeof(double))
        sc.old_pred = <int32_t*>_alloc(n, sizeof(int32_t))
        sc.old_nh = <int32_t*>_alloc(n, sizeof(int32_t))
        sc.old_hops = <int32_t*>_alloc(n, sizeof(int32_t))
        sc.rset = <int32_t*>_alloc(n, sizeof(int32_t))
        sc.touched = <int32_t*>_alloc(n, sizeof(int32_t))
        sc.stack = <int32_t*>_alloc(n, sizeof(int32_t))
        self._heap.pos = <int32_t*>_alloc(n, sizeof(int32_t))
        if n > 0:
            memset(sc.in_r, 0, n * sizeof(uint64_t))
            memset(sc.done, 0, n * sizeof(uint64_t))
            memset(sc.vis, 0, n * sizeof(uint64_t))

    cdef _ensure_heap(self):
        cdef Py_ssize_t need = _heap_bound(&self._gv.csr)
        if need > self._heap_cap:
            need += need // 8  # room for a few added links before the next grow
            PyMem_Free(self._heap.data)
            self._heap.data = NULL
            self._heap_cap = 0
            self._heap.data = <Entry*>_alloc(need, sizeof(Entry))
            self._heap_cap = need

    cdef _free_buffers(self):
        cdef Scratch* sc = &self._sc
        PyMem_Free(self._heap.data)
        PyMem_Free(self._heap.pos)
        PyMem_Free(sc.in_r)
        PyMem_Free(sc.done)
        PyMem_Free(sc.vis)
        PyMem_Free(sc.acost)
        PyMem_Free(sc.old_cost)
        PyMem_Free(sc.old_pred)
        PyMem_Free(sc.old_nh)
        PyMem_Free(sc.old_hops)
        PyMem_Free(sc.rset)
        PyMem_Free(sc.touched)
        PyMem_Free(sc.stack)
        self._heap.data = NULL
        self._heap.pos = NULL
        self._heap_cap = 0
        memset(sc, 0, sizeof(Scratch))

    def __dealloc__(self):
        self._free_buffers()

    # -- read access -------------------------------------------------------------

    @property
    def graph(self):
        """The table's own graph, with every :meth:`set_link` change applied."""
        return self._graph

    @property
    def sources(self):
        """int32[S]: the source of each row (read-only)."""
        return _frozen(self._sources)

    @property
    def cost(self):
        """float64[S, num_nodes]: least path costs, inf when unreachable (read-only view)."""
        return self._views[0]

    @property
    def pred(self):
        """int32[S, num_nodes]: canonical predecessors, -1 for sources/unreachable."""
        return self._views[1]

    @property
    def next_hop(self):
        """int32[S, num_nodes]: first node after the row's source, -1 when unreachable."""
        return self._views[2]

    @property
    def hops(self):
        """int32[S, num_nodes]: links on the canonical path, -1 when unreachable."""
        return self._views[3]

    def row_index(self, source):
        """Row number of ``source``; ValueError if it is not a node or has no row."""
        s = check_node("source", source, self._n)
        r = self._row_of.get(s)
        if r is None:
            raise ValueError(f"source: node {s} has no row in this table")
        return r

    def row(self, source):
        """The row of ``source`` as a :class:`ShortestPaths` (copies of the arrays)."""
        r = self.row_index(source)
        cost, pred, nh, hops = self._views
        return ShortestPaths(int(self._sources[r]), cost[r].copy(), pred[r].copy(),
                             nh[r].copy(), hops[r].copy())

    def __repr__(self):
        return f"RouteTable(num_nodes={self._n}, rows={self._src.shape[0]})"

    # -- incremental update ------------------------------------------------------

    def set_link(self, u, v, cost):
        """Set the cost of the directed link ``u -> v`` and update every row.

        ``cost`` inf removes the link; a link that did not exist is added; a
        self-loop (``u == v``) is ignored. Returns the number of rows in which
        any of ``cost``, ``pred``, ``next_hop`` or ``hops`` changed. Raises
        TypeError/ValueError naming ``u``, ``v`` or ``cost``; RuntimeError if
        another thread is inside ``set_link`` of this table.
        """
        if self._busy:
            raise RuntimeError("set_link: another thread is updating this RouteTable")
        cdef int32_t n = self._n
        cdef int32_t cu = check_node("u", u, n)
        cdef int32_t cv = check_node("v", v, n)
        cdef double w = check_link_cost("cost", cost)
        cdef double old
        cdef Py_ssize_t r, nrows = self._src.shape[0]
        cdef Py_ssize_t changed = 0
        if cu == cv:
            return 0
        self._busy = True
        try:
            old, structural = self._graph._set_link(cu, cv, w)
            if old == w:
                return 0
            if structural:
                self._gv = _GraphView(self._graph, True)
                self._ensure_heap()
            with nogil:
                for r in range(nrows):
                    changed += _update_row(&self._gv.csr, &self._sc, &self._heap, self._src[r],
                                           cu, cv, old, w, &self._cost[r, 0], &self._pred[r, 0],
                                           &self._nh[r, 0], &self._hops[r, 0])
            return changed
        finally:
            self._busy = False
