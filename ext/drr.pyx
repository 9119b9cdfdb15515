"""Weighted deficit round robin with strict priority classes (compiled twin).

Theory of operation
-------------------
Shreedhar and Varghese, "Efficient Fair Queueing using Deficit Round Robin"
(SIGCOMM 1995), weighted, under strict priority classes. This module is the
C-array twin of ``meshcore/kernels/_drr_py.py``, which is the executable
specification and explains the algorithm; ``docs/kernels/drr.md`` gives the
full contract. Both twins produce the same dequeue order, counters and
exceptions on every sequence of calls.

Layout: one owned array of ``Item`` (size, tag, next index; free slots are
chained through ``next``), and two arrays indexed by flow id: ``Flow``, the
64 bytes a dequeue touches, and ``FlowInfo``, the rest; all grown by
doubling with ``PyMem_Realloc``. Splitting them keeps a dequeue to one flow
cache line, which is what keeps throughput level with 100,000 flows, where
the flow table no longer fits in cache. A flow is known while its quantum is
non-zero (quanta are >= 1). The active list of a class is a circular doubly
linked list through ``Flow.next``/``FlowInfo.prev``, so ending a turn is one
pointer move (the class head advances). No Python object is kept per item or
per flow.

Argument checks live in ``_drr_common`` (shared messages); the hot entry
points first try an inline check on exact ``int`` arguments and fall back to
the shared checks, which then raise or convert (numpy integers, IntEnum).

``dequeue_many`` drains into caller arrays through a ``noexcept nogil`` C
loop but keeps the GIL: the scheduler is mutable shared state, and another
thread's ``enqueue`` could reallocate the pools under a loop running without
the GIL. A batch is microseconds, so holding the GIL costs nothing.
"""

cimport cython
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.string cimport memset

from meshcore.kernels._drr_common import (
    DEFAULT_CLASSES,
    MAX_FLOW,
    MAX_SIZE,
    as_flow_id,
    check_flow,
    check_item,
    check_num_classes,
    check_out_arrays,
    check_priority,
    check_quantum,
    check_size,
    check_weight,
    default_priority,
    unknown_flow,
)

__all__ = ["DRRScheduler"]

cdef enum:
    _MAX_CLASSES = 16     # _drr_common.MAX_CLASSES; check_num_classes enforces it
    _FIRST_ITEMS = 64     # initial item pool, doubled when full

# Bounds of the inline argument checks, taken from the shared module.
cdef int64_t _MAX_FLOW = MAX_FLOW
cdef int64_t _MAX_SIZE = MAX_SIZE


ctypedef struct Item:
    int64_t size
    int64_t tag
    int64_t next          # next item of the flow's FIFO, or of the free list; -1 ends


ctypedef struct Flow:
    # Everything a dequeue touches, in 64 bytes.
    int64_t head          # first queued item, -1 when idle
    int64_t deficit       # bytes
    int64_t quantum       # max(1, round(scheduler quantum * weight)); 0: unknown flow
    int64_t count         # queued items
    uint64_t bytes        # queued bytes, modulo 2**64
    uint64_t served_bytes # modulo 2**64
    int64_t served_items
    int32_t next          # next flow in the class's circular active list, -1 when idle
    int32_t cls           # priority class


ctypedef struct FlowInfo:
    int64_t tail          # last queued item, -1 when idle
    double weight
    int32_t prev          # previous flow in the active list, -1 when idle


cdef void* _resize(void* block, int64_t count, size_t itemsize) except NULL:
    # Refuse sizes past PY_SSIZE_T_MAX before multiplying: on 32-bit ARM a
    # flow id near 2**31 would otherwise wrap size_t and under-allocate.
    cdef void* grown = NULL
    if count <= <int64_t>(PY_SSIZE_T_MAX // itemsize):
        grown = PyMem_Realloc(block, <size_t>count * itemsize)
    if grown == NULL:
        raise MemoryError()
    return grown


@cython.final
cdef class DRRScheduler:
    """Weighted deficit round robin over flows, under strict priority classes.

    ``quantum`` is the bytes a weight-1 flow may send per round (an integer
    1..2**48); ``num_classes`` the number of strict priority classes (1..16,
    class 0 served first). Raises TypeError/ValueError naming the argument.
    Not thread-safe: one owner calls it.
    """

    cdef Item* _items
    cdef int64_t _items_cap
    cdef int64_t _items_used     # slots ever handed out (the pool's high-water mark)
    cdef int64_t _free           # head of the free list, -1 when empty
    cdef Flow* _flows
    cdef FlowInfo* _info
    cdef int64_t _flows_cap
    cdef int32_t _chead[_MAX_CLASSES]   # head flow of each class's active list, -1 empty
    cdef int64_t _nactive[_MAX_CLASSES]
    cdef bint _turn[_MAX_CLASSES]       # whether the head flow's turn has started
    cdef int64_t _quantum
    cdef int32_t _num_classes
    cdef int32_t _default_priority
    cdef int64_t _nflows
    cdef int64_t _len
    cdef uint64_t _pending

    def __cinit__(self, quantum=65536, num_classes=DEFAULT_CLASSES):
        cdef int c
        self._quantum = check_quantum(quantum)
        self._num_classes = check_num_classes(num_classes)
        self._default_priority = default_priority(self._num_classes)
        for c in range(_MAX_CLASSES):
            self._chead[c] = -1
            self._nactive[c] = 0
            self._turn[c] = False
        self._items = NULL
        self._items_cap = 0
        self._items_used = 0
        self._free = -1
        self._flows = NULL
        self._info = NULL
        self._flows_cap = 0
        self._nflows = 0
        self._len = 0
        self._pending = 0

    def __dealloc__(self):
        PyMem_Free(self._items)
        PyMem_Free(self._flows)
        PyMem_Free(self._info)

    # ------------------------------------------------------------------ flows

    cdef int _grow_flows(self, int64_t flow) except -1:
        cdef int64_t cap = max(flow + 1, 2 * self._flows_cap)
        cdef int64_t f
        self._flows = <Flow*>_resize(self._flows, cap, sizeof(Flow))
        self._info = <FlowInfo*>_resize(self._info, cap, sizeof(FlowInfo))
        for f in range(self._flows_cap, cap):
            self._forget(f)
        self._flows_cap = cap
        return 0

    cdef inline void _forget(self, int64_t flow) noexcept nogil:
        memset(&self._flows[flow], 0, sizeof(Flow))
        memset(&self._info[flow], 0, sizeof(FlowInfo))
        self._flows[flow].head = -1
        self._flows[flow].next = -1
        self._info[flow].tail = -1
        self._info[flow].prev = -1

    cdef int _ensure_flow(self, int64_t flow) except -1:
        cdef Flow* fl
        if flow >= self._flows_cap:
            self._grow_flows(flow)
        fl = &self._flows[flow]
        if not fl.quantum:
            fl.quantum = self._quantum
            fl.cls = self._default_priority
            self._info[flow].weight = 1.0
            self._nflows += 1
        return 0

    cdef int64_t _known_flow(self, object flow) except -1:
        cdef int64_t f = -1
        cdef int overflow = 0
        if type(flow) is int:
            f = PyLong_AsLongLongAndOverflow(flow, &overflow)
            if overflow or f < 0 or f >= _MAX_FLOW:
                f = -1
        if f < 0:
            f = check_flow(flow)
        if f >= self._flows_cap or not self._flows[f].quantum:
            raise unknown_flow(f)
        return f

    cdef inline void _append(self, int64_t flow, int32_t cls) noexcept nogil:
        cdef Flow* flows = self._flows
        cdef FlowInfo* info = self._info
        cdef int32_t head = self._chead[cls]
        cdef int32_t tail
        if head < 0:
            self._chead[cls] = <int32_t>flow
            info[flow].prev = <int32_t>flow
            flows[flow].next = <int32_t>flow
        else:
            tail = info[head].prev
            flows[tail].next = <int32_t>flow
            info[flow].prev = tail
            flows[flow].next = head
            info[head].prev = <int32_t>flow
        self._nactive[cls] += 1

    cdef inline void _unlink(self, int64_t flow, int32_t cls) noexcept nogil:
        cdef Flow* flows = self._flows
        cdef FlowInfo* info = self._info
        cdef int32_t prev = info[flow].prev
        cdef int32_t nxt = flows[flow].next
        if self._chead[cls] == flow:
            self._turn[cls] = False
            self._chead[cls] = nxt if self._nactive[cls] > 1 else -1
        flows[prev].next = nxt
        info[nxt].prev = prev
        info[flow].prev = -1
        flows[flow].next = -1
        self._nactive[cls] -= 1

    def set_flow(self, flow, *, weight=None, priority=None):
        """Create or update a flow.

        ``weight`` (a finite number > 0; default 1) scales the flow quantum to
        ``max(1, round(quantum * weight))`` bytes from the flow's next turn on.
        ``priority`` (0..num_classes-1; default ON_DEMAND, or 0 with one class)
        moves a backlogged flow to the tail of the new class with its deficit
        reset. ``None`` leaves a setting as it is. Raises TypeError/ValueError
        naming the argument; nothing changes when it raises.
        """
        cdef int64_t f = check_flow(flow)
        cdef double w = 0.0
        cdef int64_t fq = 0
        cdef int32_t p = 0
        cdef Flow* fl
        if weight is not None:
            w, fq = check_weight(weight, self._quantum)
        if priority is not None:
            p = check_priority(priority, self._num_classes)
        self._ensure_flow(f)
        fl = &self._flows[f]
        if weight is not None:
            self._info[f].weight = w
            fl.quantum = fq
        if priority is not None and p != fl.cls:
            if fl.count:
                self._unlink(f, fl.cls)
                fl.deficit = 0
                self._append(f, p)
            fl.cls = p

    def remove_flow(self, flow):
        """Forget ``flow`` and return the tags of its queued items, in FIFO order.

        Its counters go too; a later ``enqueue`` or ``set_flow`` creates it
        afresh with default settings. Raises ValueError for an unknown flow.
        """
        cdef int64_t f = self._known_flow(flow)
        cdef Flow* fl = &self._flows[f]
        cdef Item* items = self._items
        cdef int64_t i = fl.head
        cdef int64_t nxt
        cdef list tags = []
        while i >= 0:
            tags.append(items[i].tag)
            nxt = items[i].next
            items[i].next = self._free
            self._free = i
            i = nxt
        if fl.count:
            self._unlink(f, fl.cls)
            self._len -= fl.count
            self._pending -= fl.bytes
        self._forget(f)
        self._nflows -= 1
        return tags

    # ------------------------------------------------------------ the queue

    def enqueue(self, flow, size, item=0):
        """Append an item of ``size`` bytes tagged ``item`` to ``flow``'s FIFO.

        ``flow`` is an integer 0 <= flow < 2**31 (an unknown flow is created
        with default settings), ``size`` an integer 0..2**48, ``item`` any
        int64 (a transfer id, say). Raises TypeError/ValueError naming the
        argument; nothing changes when it raises.
        """
        cdef int64_t f = -1
        cdef int64_t s = -1
        cdef int64_t t = 0
        cdef int o1 = 0
        cdef int o2 = 0
        cdef int o3 = 0
        cdef int64_t i, cap
        cdef Flow* fl
        if type(flow) is int and type(size) is int and type(item) is int:
            f = PyLong_AsLongLongAndOverflow(flow, &o1)
            s = PyLong_AsLongLongAndOverflow(size, &o2)
            t = PyLong_AsLongLongAndOverflow(item, &o3)
        if o1 or o2 or o3 or not (0 <= f < _MAX_FLOW and 0 <= s <= _MAX_SIZE):
            f = check_flow(flow)
            s = check_size(size)
            t = check_item(item)
        self._ensure_flow(f)
        i = self._free
        if i >= 0:
            self._free = self._items[i].next
        else:
            if self._items_used == self._items_cap:
                cap = max(<int64_t>_FIRST_ITEMS, 2 * self._items_cap)
                self._items = <Item*>_resize(self._items, cap, sizeof(Item))
                self._items_cap = cap
            i = self._items_used
            self._items_used += 1
        self._items[i].size = s
        self._items[i].tag = t
        self._items[i].next = -1
        fl = &self._flows[f]
        if fl.count:
            self._items[self._info[f].tail].next = i
        else:
            fl.head = i
            self._append(f, fl.cls)
        self._info[f].tail = i
        fl.count += 1
        fl.bytes += <uint64_t>s
        self._len += 1
        self._pending += <uint64_t>s

    cdef void _skip_rounds(self, int64_t start) noexcept nogil:
        # After a whole pass in which no flow of the class could send: add the
        # m - 1 silent rounds before the first round m in which one can.
        cdef Flow* flows = self._flows
        cdef Item* items = self._items
        cdef int64_t rounds = (<int64_t>1) << 62
        cdef int64_t f = start
        cdef int64_t q, k
        while True:
            q = flows[f].quantum
            k = (items[flows[f].head].size - flows[f].deficit + q - 1) // q
            if k < rounds:
                rounds = k
            f = flows[f].next
            if f == start:
                break
        while True:
            flows[f].deficit += (rounds - 1) * flows[f].quantum
            f = flows[f].next
            if f == start:
                break

    cdef inline int64_t _start_turn(self, int32_t cls) noexcept nogil:
        # Start turns until a flow can send its head item; return that flow.
        cdef Flow* flows = self._flows
        cdef Item* items = self._items
        cdef int64_t n = self._nactive[cls]
        cdef int64_t f = self._chead[cls]
        cdef int64_t misses = 0
        cdef int64_t d
        while True:
            d = flows[f].deficit + flows[f].quantum
            flows[f].deficit = d
            if items[flows[f].head].size <= d:
                break
            f = flows[f].next
            misses += 1
            if misses == n:
                self._skip_rounds(f)
                misses = 0
        self._chead[cls] = <int32_t>f
        self._turn[cls] = True
        return f

    cdef inline void _dequeue_one(
        self, int64_t* out_flow, int64_t* out_tag, int64_t* out_size
    ) noexcept nogil:
        # Send one item; the scheduler must not be empty.
        cdef int32_t cls = 0
        cdef int64_t f, i, nxt, size, d
        cdef Flow* fl
        cdef Item* it
        while self._chead[cls] < 0:
            cls += 1
        f = self._chead[cls] if self._turn[cls] else self._start_turn(cls)
        fl = &self._flows[f]
        i = fl.head
        it = &self._items[i]
        size = it.size
        out_flow[0] = f
        out_tag[0] = it.tag
        out_size[0] = size
        nxt = it.next
        it.next = self._free
        self._free = i
        fl.head = nxt
        fl.count -= 1
        fl.bytes -= <uint64_t>size
        d = fl.deficit - size
        fl.deficit = d
        fl.served_bytes += <uint64_t>size
        fl.served_items += 1
        self._len -= 1
        self._pending -= <uint64_t>size
        if nxt < 0:
            self._info[f].tail = -1
            fl.deficit = 0
            self._unlink(f, cls)
        elif self._items[nxt].size > d:
            self._chead[cls] = fl.next
            self._turn[cls] = False

    cdef void _drain(
        self, int64_t* flows_out, int64_t* items_out, int64_t* sizes_out, int64_t n
    ) noexcept nogil:
        cdef int64_t k
        for k in range(n):
            self._dequeue_one(&flows_out[k], &items_out[k], &sizes_out[k])

    def dequeue(self):
        """The next item to send as ``(flow, item, size)``, or None when nothing is queued."""
        cdef int64_t f, t, s
        if not self._len:
            return None
        self._dequeue_one(&f, &t, &s)
        return (f, t, s)

    def dequeue_many(self, flows_out, items_out, sizes_out):
        """Dequeue up to ``len(flows_out)`` items into the three arrays; return the count.

        The arrays are caller-provided, equally long, writable, C-contiguous
        int64 buffers (numpy ``int64``, ``array.array('q')``); entry ``k``
        receives the ``k``-th dequeue's flow, item tag and size, exactly as
        repeated ``dequeue()`` would return them. Entries past the count are
        left untouched. Raises TypeError/ValueError naming the bad array.
        """
        cdef int64_t[::1] fo
        cdef int64_t[::1] io
        cdef int64_t[::1] so
        cdef int64_t n
        fo, io, so = check_out_arrays(flows_out, items_out, sizes_out)
        n = min(<int64_t>fo.shape[0], self._len)
        if n:
            self._drain(&fo[0], &io[0], &so[0], n)
        return n

    # ------------------------------------------------------------- counters

    def __len__(self):
        """Items queued over all flows."""
        return self._len

    def __contains__(self, flow):
        """Whether ``flow`` is a known flow id (never raises)."""
        cdef int64_t f = as_flow_id(flow)
        return 0 <= f < self._flows_cap and self._flows[f].quantum != 0

    def __repr__(self):
        return (
            f"DRRScheduler(quantum={self._quantum}, num_classes={self._num_classes}, "
            f"flows={self._nflows}, queued={self._len})"
        )

    @property
    def quantum(self):
        """Bytes a weight-1 flow may send per round."""
        return self._quantum

    @property
    def num_classes(self):
        """Number of strict priority classes."""
        return self._num_classes

    @property
    def pending_bytes(self):
        """Bytes queued over all flows (modulo 2**64)."""
        return self._pending

    def flows(self):
        """Known flow ids, sorted."""
        cdef int64_t f
        return [f for f in range(self._flows_cap) if self._flows[f].quantum]

    def active_flows(self, priority):
        """Backlogged flows of class ``priority`` in round order, the one served next first.

        Raises TypeError/ValueError for a bad class.
        """
        cdef int32_t cls = check_priority(priority, self._num_classes)
        cdef list out = []
        cdef int64_t start = self._chead[cls]
        cdef int64_t f = start
        while f >= 0:
            out.append(f)
            f = self._flows[f].next
            if f == start:
                break
        return out

    def backlog(self, flow):
        """``(items, bytes)`` queued for ``flow`` (bytes modulo 2**64); ValueError if unknown."""
        cdef int64_t f = self._known_flow(flow)
        return (self._flows[f].count, self._flows[f].bytes)

    def served_bytes(self, flow):
        """Bytes dequeued from ``flow`` since its creation (mod 2**64); ValueError if unknown."""
        return self._flows[self._known_flow(flow)].served_bytes

    def served_items(self, flow):
        """Items dequeued from ``flow`` since it was created; ValueError if unknown."""
        return self._flows[self._known_flow(flow)].served_items

    def weight(self, flow):
        """The weight of ``flow``; ValueError if unknown."""
        return self._info[self._known_flow(flow)].weight

    def priority(self, flow):
        """The priority class of ``flow``; ValueError if unknown."""
        return self._flows[self._known_flow(flow)].cls

    def deficit(self, flow):
        """The deficit counter of ``flow`` in bytes; ValueError if unknown."""
        return self._flows[self._known_flow(flow)].deficit
