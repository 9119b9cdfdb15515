"""Directed link-cost graphs in CSR arrays, shared by both route twins.

Theory of operation
-------------------
A mesh topology is a directed graph: a Wi-Fi link has two directions with
different ETX-like costs. :class:`CostGraph` stores it as compressed sparse
rows (CSR, the layout of ``scipy.sparse.csr_matrix``): the out-links of node
``u`` are ``indices[indptr[u]:indptr[u+1]]`` with costs at the same
positions, each row sorted by destination. The route kernels also walk
in-links (the reverse CSR, rows sorted by source), which is built on first use.

Normalisation at construction (so that every route result depends only on
the graph, never on the order in which links were listed):

* a link cost of ``+inf`` means "no link": the entry is dropped;
* self-loops are dropped (they never shorten a path);
* of duplicate ``(src, dst)`` pairs the lowest cost is kept;
* ``-0.0`` is stored as ``0.0``.

This module also holds the argument checks and messages of the route
kernels, so the compiled module (``_routes_c``) and the pure twin
(``_routes_py``) raise the same exception with the same message, and the
result type :class:`ShortestPaths` that both return.

Integers: a ``bool`` is never accepted as a node id or a count; any other
``int`` or object with ``__index__`` (numpy integers) is.
"""

from __future__ import annotations

import math

import numpy as np

from ._args import as_int

__all__ = ["MAX_NODES", "CostGraph", "ShortestPaths"]

#: Node ids are int32 in the result arrays, so a graph has fewer than 2**31 nodes.
MAX_NODES = 2**31

_INF = math.inf


def _type_name(value: object) -> str:
    return type(value).__name__


def check_num_nodes(num_nodes: object) -> int:
    """Return ``num_nodes`` as an int in ``[0, 2**31)``; TypeError/ValueError name it."""
    n = as_int(num_nodes, f"num_nodes: expected an integer, got {_type_name(num_nodes)}")
    if not 0 <= n < MAX_NODES:
        raise ValueError(f"num_nodes: expected an integer in [0, 2**31), got {n}")
    return n


def check_node(name: str, value: object, num_nodes: int) -> int:
    """Return ``value`` as a node id of a graph with ``num_nodes`` nodes.

    Raises TypeError when it is not an integer and ValueError when the node
    does not exist; both messages start with ``name``.
    """
    node = as_int(value, f"{name}: expected an integer node id, got {_type_name(value)}")
    if not 0 <= node < num_nodes:
        raise ValueError(f"{name}: node {node} does not exist (num_nodes={num_nodes})")
    return node


def check_link_cost(name: str, value: object) -> float:
    """Return ``value`` as a link cost: a float >= 0, ``inf`` meaning "no link".

    Raises TypeError for a non-number and ValueError for NaN or a negative cost.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {_type_name(value)}")
    try:
        cost = float(value)
    except OverflowError:
        raise ValueError(f"{name}: expected a number >= 0 (inf for no link), got {value}") from None
    if not cost >= 0.0:  # also catches NaN
        raise ValueError(f"{name}: expected a number >= 0 (inf for no link), got {cost!r}")
    return cost + 0.0  # -0.0 -> 0.0


def check_graph(graph: object) -> CostGraph:
    """Return ``graph`` if it is a :class:`CostGraph`; TypeError otherwise."""
    if not isinstance(graph, CostGraph):
        raise TypeError(f"graph: expected a CostGraph, got {_type_name(graph)}")
    return graph


def _int_array(name: str, values: object) -> np.ndarray:
    """A 1-D integer ndarray view of ``values`` (no copy when it already is one)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got shape {arr.shape}")
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind in "iuf"):
        raise TypeError(f"{name}: expected integer node ids, got dtype {arr.dtype}")
    return arr


def _check_range(name: str, arr: np.ndarray, num_nodes: int) -> None:
    bad = np.flatnonzero((arr < 0) | (arr >= num_nodes))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}]: node {int(arr[i])} does not exist (num_nodes={num_nodes})")


def check_sources(sources: object, num_nodes: int, *, unique: bool) -> np.ndarray:
    """Return ``sources`` as a new int32 array (all nodes when ``None``).

    Raises TypeError for non-integers, ValueError for a node that does not
    exist and, when ``unique``, for a node listed twice; messages name the
    index (``"sources[3]: node 7 is listed twice"``).
    """
    if sources is None:
        return np.arange(num_nodes, dtype=np.int32)
    arr = _int_array("sources", sources)
    _check_range("sources", arr, num_nodes)
    out = arr.astype(np.int32)
    if unique and out.size > 1:
        order = np.argsort(out, kind="stable")
        dup = np.flatnonzero(out[order][1:] == out[order][:-1])
        if dup.size:
            # The first entry, in input order, that repeats an earlier one.
            i = int(order[dup + 1].min())
            raise ValueError(f"sources[{i}]: node {int(out[i])} is listed twice")
    return out


def _splice(arr: np.ndarray, k: int, value: float) -> np.ndarray:
    """A new array: ``arr`` with ``value`` inserted at ``k`` (np.insert, minus its overhead)."""
    out = np.empty(arr.shape[0] + 1, dtype=arr.dtype)
    out[:k] = arr[:k]
    out[k] = value
    out[k + 1 :] = arr[k:]
    return out


def _cut(arr: np.ndarray, k: int) -> np.ndarray:
    """A new array: ``arr`` without entry ``k``."""
    out = np.empty(arr.shape[0] - 1, dtype=arr.dtype)
    out[:k] = arr[:k]
    out[k:] = arr[k + 1 :]
    return out


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


class CostGraph:
    """Directed graph with float64 link costs in CSR arrays.

    ``CostGraph(num_nodes, src, dst, cost)`` is the same as
    :meth:`from_edges`. The graph is immutable through its public API
    (:class:`RouteTable` changes its own private copy).
    """

    __slots__ = ("_costs", "_indices", "_indptr", "_num_nodes", "_rcosts", "_rindices", "_rindptr")

    def __init__(self, num_nodes: int, src: object, dst: object, cost: object) -> None:
        n = check_num_nodes(num_nodes)
        s = _int_array("src", src)
        d = _int_array("dst", dst)
        c = np.asarray(cost)
        if c.ndim != 1:
            raise ValueError(f"cost: expected a 1-D sequence, got shape {c.shape}")
        if c.dtype.kind not in "iuf":
            raise TypeError(f"cost: expected real numbers, got dtype {c.dtype}")
        if d.shape[0] != s.shape[0]:
            raise ValueError(f"dst: expected {s.shape[0]} entries like src, got {d.shape[0]}")
        if c.shape[0] != s.shape[0]:
            raise ValueError(f"cost: expected {s.shape[0]} entries like src, got {c.shape[0]}")
        _check_range("src", s, n)
        _check_range("dst", d, n)
        c = c.astype(np.float64, copy=False)
        bad = np.flatnonzero(~(c >= 0.0))  # NaN and negatives
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"cost[{i}]: expected a number >= 0 (inf for no link), got {float(c[i])!r}"
            )
        keep = (c != _INF) & (s != d)
        s64 = s[keep].astype(np.int64)
        d64 = d[keep].astype(np.int64)
        w = c[keep] + 0.0  # a new array; -0.0 -> 0.0
        order = np.lexsort((w, d64, s64))
        s64, d64, w = s64[order], d64[order], w[order]
        first = np.ones(s64.shape[0], dtype=bool)
        first[1:] = (s64[1:] != s64[:-1]) | (d64[1:] != d64[:-1])
        s64, d64, w = s64[first], d64[first], w[first]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(s64, minlength=n), out=indptr[1:])
        self._set_arrays(n, indptr, d64.astype(np.int32), np.ascontiguousarray(w))

    @classmethod
    def from_edges(cls, num_nodes: int, src: object, dst: object, cost: object) -> CostGraph:
        """Build the CSR graph of ``num_nodes`` nodes from parallel link arrays.

        ``src``/``dst`` are integer node ids and ``cost`` link costs (float64,
        >= 0; ``inf`` drops the link), all of the same length. Self-loops are
        dropped and duplicate ``(src, dst)`` pairs keep the lowest cost.
        Raises TypeError for non-integer ids or non-numeric costs and
        ValueError naming the argument and index otherwise
        (``"dst[17]: node 250 does not exist (num_nodes=200)"``).
        """
        return cls(num_nodes, src, dst, cost)

    @classmethod
    def _from_csr(
        cls, num_nodes: int, indptr: np.ndarray, indices: np.ndarray, costs: np.ndarray
    ) -> CostGraph:
        """Trusted constructor (arrays already valid, sorted and deduplicated)."""
        graph = cls.__new__(cls)
        graph._set_arrays(num_nodes, indptr, indices, costs)
        return graph

    def _set_arrays(
        self, n: int, indptr: np.ndarray, indices: np.ndarray, costs: np.ndarray
    ) -> None:
        self._num_nodes = n
        self._indptr = indptr
        self._indices = indices
        self._costs = costs
        self._rindptr = None
        self._rindices = None
        self._rcosts = None

    # -- read access ---------------------------------------------------------

    @property
    def num_nodes(self) -> int:
        """Number of nodes; ids are ``0 .. num_nodes - 1``."""
        return self._num_nodes

    @property
    def num_edges(self) -> int:
        """Number of stored links (after dropping inf, self-loops and duplicates)."""
        return int(self._indices.shape[0])

    @property
    def indptr(self) -> np.ndarray:
        """int64[num_nodes + 1]: out-links of ``u`` are at ``indptr[u]:indptr[u+1]`` (read-only)."""
        return _readonly(self._indptr)

    @property
    def indices(self) -> np.ndarray:
        """int32[num_edges]: link destinations, each row ascending (read-only)."""
        return _readonly(self._indices)

    @property
    def costs(self) -> np.ndarray:
        """float64[num_edges]: link costs, aligned with :attr:`indices` (read-only)."""
        return _readonly(self._costs)

    def _reverse(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The in-link CSR ``(rindptr, rindices, rcosts)``, built once on first use."""
        if self._rindptr is None:
            n = self._num_nodes
            src = np.repeat(np.arange(n, dtype=np.int32), np.diff(self._indptr))
            order = np.lexsort((src, self._indices))
            rindptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.bincount(self._indices, minlength=n), out=rindptr[1:])
            self._rindptr = rindptr
            self._rindices = np.ascontiguousarray(src[order])
            self._rcosts = np.ascontiguousarray(self._costs[order])
        return self._rindptr, self._rindices, self._rcosts

    @property
    def in_indptr(self) -> np.ndarray:
        """int64[num_nodes + 1]: in-links of ``v`` are at ``in_indptr[v]:in_indptr[v+1]``."""
        return _readonly(self._reverse()[0])

    @property
    def in_indices(self) -> np.ndarray:
        """int32[num_edges]: in-link sources, each row ascending (read-only)."""
        return _readonly(self._reverse()[1])

    @property
    def in_costs(self) -> np.ndarray:
        """float64[num_edges]: in-link costs, aligned with :attr:`in_indices` (read-only)."""
        return _readonly(self._reverse()[2])

    def _find(self, u: int, v: int) -> tuple[int, bool]:
        """Position of link ``(u, v)`` in the forward CSR (or where it would go)."""
        lo, hi = int(self._indptr[u]), int(self._indptr[u + 1])
        k = lo + int(np.searchsorted(self._indices[lo:hi], v))
        return k, k < hi and int(self._indices[k]) == v

    def edge_cost(self, u: int, v: int) -> float:
        """Cost of the link ``u -> v``, ``inf`` when there is none.

        Raises TypeError/ValueError (naming ``u`` or ``v``) for a bad node.
        """
        u = check_node("u", u, self._num_nodes)
        v = check_node("v", v, self._num_nodes)
        k, found = self._find(u, v)
        return float(self._costs[k]) if found else _INF

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """New arrays ``(src int32, dst int32, cost float64)`` in CSR order."""
        src = np.repeat(np.arange(self._num_nodes, dtype=np.int32), np.diff(self._indptr))
        return src, self._indices.copy(), self._costs.copy()

    def copy(self) -> CostGraph:
        """An independent copy (used by :class:`RouteTable`, which changes its own)."""
        return CostGraph._from_csr(
            self._num_nodes, self._indptr.copy(), self._indices.copy(), self._costs.copy()
        )

    def __repr__(self) -> str:
        return f"CostGraph(num_nodes={self._num_nodes}, num_edges={self.num_edges})"

    # -- change one link (RouteTable only) ------------------------------------

    def _set_link(self, u: int, v: int, cost: float) -> tuple[float, bool]:
        """Set the cost of link ``u -> v`` (checked ids, ``u != v``; inf removes it).

        Returns ``(old_cost, structural)``: ``old_cost`` is inf when the link did
        not exist; ``structural`` says the arrays were replaced (a link added or
        removed, O(E)) rather than one cost changed in place (O(log degree)).
        New arrays are allocated for a structural change, never resized in
        place, so a reader holding the old buffers never indexes past them.
        """
        k, found = self._find(u, v)
        old = float(self._costs[k]) if found else _INF
        if old == cost:
            return old, False
        rindptr, rindices, rcosts = self._reverse()
        rlo, rhi = int(rindptr[v]), int(rindptr[v + 1])
        rk = rlo + int(np.searchsorted(rindices[rlo:rhi], u))
        if found and cost != _INF:
            self._costs[k] = cost
            rcosts[rk] = cost
            return old, False
        if found:
            indices = _cut(self._indices, k)
            costs = _cut(self._costs, k)
            rindices = _cut(rindices, rk)
            rcosts = _cut(rcosts, rk)
            step = -1
        else:
            indices = _splice(self._indices, k, v)
            costs = _splice(self._costs, k, cost)
            rindices = _splice(rindices, rk, u)
            rcosts = _splice(rcosts, rk, cost)
            step = 1
        indptr = self._indptr.copy()
        indptr[u + 1 :] += step
        rindptr = rindptr.copy()
        rindptr[v + 1 :] += step
        self._indptr, self._indices, self._costs = indptr, indices, costs
        self._rindptr, self._rindices, self._rcosts = rindptr, rindices, rcosts
        return old, True


class ShortestPaths:
    """Routes from one source: the canonical shortest-path tree.

    Arrays of length ``num_nodes``: ``cost`` (float64; inf when unreachable),
    ``pred`` (int32; the previous node on the path, -1 for the source and
    unreachable nodes), ``next_hop`` (int32; the first node after the source,
    the source itself for the source, -1 when unreachable) and ``hops``
    (int32; links on the path, 0 for the source, -1 when unreachable).
    See ``docs/kernels/routes.md`` for the tie-breaking rules.
    """

    __slots__ = ("cost", "hops", "next_hop", "pred", "source")

    def __init__(
        self,
        source: int,
        cost: np.ndarray,
        pred: np.ndarray,
        next_hop: np.ndarray,
        hops: np.ndarray,
    ) -> None:
        self.source = source
        self.cost = cost
        self.pred = pred
        self.next_hop = next_hop
        self.hops = hops

    def path_to(self, target: int) -> list[int]:
        """Node ids from the source to ``target`` (both included); ``[]`` if unreachable.

        Raises TypeError/ValueError (naming ``target``) for a bad node id.
        """
        target = check_node("target", target, int(self.cost.shape[0]))
        if self.hops[target] < 0:
            return []
        path = [target]
        node = target
        while node != self.source:
            node = int(self.pred[node])
            path.append(node)
        path.reverse()
        return path

    def __repr__(self) -> str:
        reachable = int(np.count_nonzero(self.hops >= 0))
        return (
            f"ShortestPaths(source={self.source}, num_nodes={self.cost.shape[0]}, "
            f"reachable={reachable})"
        )
