"""Weighted deficit round robin with strict priority classes (pure-Python twin).

Theory of operation
-------------------
Shreedhar and Varghese, "Efficient Fair Queueing using Deficit Round Robin"
(SIGCOMM 1995). Every flow (a household, user or peer: a small integer id
chosen by the policy layer) has a FIFO of items (chunks to send, each with a
size in bytes and an int64 tag chosen by the caller), a *flow quantum*
``max(1, round(quantum * weight))`` bytes and a *deficit* counter in bytes.

Flows belong to one of ``num_classes`` strict priority classes. A dequeue
serves the lowest-numbered class that has a backlog; a lower class waits
until every class above it is empty. Inside a class, the backlogged flows
form a circular *active list* in round order. The flow at its head is either
waiting for its turn or in the middle of it:

* a turn starts by adding the flow quantum to the deficit;
* the flow then sends its head item while ``deficit >= size``, taking the
  size off its deficit;
* when its queue empties, its deficit resets to 0 and it leaves the list;
  when its head item is larger than its deficit, the turn ends with the
  deficit kept and the flow moves to the tail (the list head advances).

Turns end eagerly (right after the send that ends them), so when a class's
head flow is mid-turn its deficit always covers its head item, and one
dequeue is O(1) whenever every flow quantum is at least that flow's largest
item. Otherwise starting a turn may pass over flows whose deficit is still
short; after one whole pass without a send, the number ``m`` of further
rounds until some flow can send is computed (``ceil((size - deficit) /
flow quantum)``, minimised over the class) and ``m - 1`` silent rounds are
added to every deficit at once. A dequeue therefore costs at most two passes
over the class plus one, whatever the item sizes, and gives the same order
as turning the rounds one by one.

Storage is flat: an item pool (parallel lists of size, tag and next index,
with a free list threaded through ``next``) and per-flow lists indexed by
flow id (grown to the largest id + 1) holding queue head and tail, counts,
deficit, quantum, weight, class and the prev/next links of the active list.
The compiled ``_drr_c`` keeps the same state in C arrays and gives the same
results on every sequence of calls; ``docs/kernels/drr.md`` is the full
specification.
"""

from __future__ import annotations

from ._drr_common import (
    DEFAULT_CLASSES,
    MASK64,
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


class DRRScheduler:
    """Weighted deficit round robin over flows, under strict priority classes.

    ``quantum`` is the bytes a weight-1 flow may send per round (an integer
    1..2**48); ``num_classes`` the number of strict priority classes (1..16,
    class 0 served first). Raises TypeError/ValueError naming the argument.
    Not thread-safe: one owner calls it.
    """

    __slots__ = (
        "_backlog_bytes",
        "_chead",
        "_count",
        "_default_priority",
        "_deficit",
        "_flow_class",
        "_flow_quantum",
        "_free",
        "_head",
        "_item_next",
        "_item_size",
        "_item_tag",
        "_known",
        "_len",
        "_nactive",
        "_next",
        "_nflows",
        "_num_classes",
        "_pending",
        "_prev",
        "_quantum",
        "_served_bytes",
        "_served_items",
        "_tail",
        "_turn",
        "_weight",
    )

    def __init__(self, quantum: int = 65536, num_classes: int = DEFAULT_CLASSES) -> None:
        self._quantum = check_quantum(quantum)
        self._num_classes = check_num_classes(num_classes)
        self._default_priority = default_priority(self._num_classes)
        # Item pool: parallel lists, free slots chained through _item_next.
        self._item_size: list[int] = []
        self._item_tag: list[int] = []
        self._item_next: list[int] = []
        self._free = -1
        # Per-flow state, indexed by flow id.
        self._known: list[bool] = []
        self._head: list[int] = []
        self._tail: list[int] = []
        self._count: list[int] = []
        self._backlog_bytes: list[int] = []
        self._deficit: list[int] = []
        self._flow_quantum: list[int] = []
        self._weight: list[float] = []
        self._flow_class: list[int] = []
        self._served_bytes: list[int] = []
        self._served_items: list[int] = []
        self._prev: list[int] = []
        self._next: list[int] = []
        # Per-class active list: head flow (-1 when empty), length, and whether
        # the head flow's turn has started (its quantum already added).
        self._chead = [-1] * self._num_classes
        self._nactive = [0] * self._num_classes
        self._turn = [False] * self._num_classes
        self._nflows = 0
        self._len = 0
        self._pending = 0

    # ------------------------------------------------------------------ flows

    def _grow_flows(self, flow: int) -> None:
        extra = max(flow + 1, 2 * len(self._known)) - len(self._known)
        self._known.extend([False] * extra)
        for column in (self._head, self._tail, self._prev, self._next):
            column.extend([-1] * extra)
        for column in (
            self._count,
            self._backlog_bytes,
            self._deficit,
            self._flow_quantum,
            self._flow_class,
            self._served_bytes,
            self._served_items,
        ):
            column.extend([0] * extra)
        self._weight.extend([0.0] * extra)

    def _ensure_flow(self, flow: int) -> None:
        if flow >= len(self._known):
            self._grow_flows(flow)
        if not self._known[flow]:
            self._known[flow] = True
            self._weight[flow] = 1.0
            self._flow_quantum[flow] = self._quantum
            self._flow_class[flow] = self._default_priority
            self._nflows += 1

    def _known_flow(self, flow: object) -> int:
        f = check_flow(flow)
        if f >= len(self._known) or not self._known[f]:
            raise unknown_flow(f)
        return f

    def _append(self, flow: int, cls: int) -> None:
        """Put ``flow`` at the tail of class ``cls``'s active list."""
        head = self._chead[cls]
        if head < 0:
            self._chead[cls] = flow
            self._prev[flow] = flow
            self._next[flow] = flow
        else:
            tail = self._prev[head]
            self._next[tail] = flow
            self._prev[flow] = tail
            self._next[flow] = head
            self._prev[head] = flow
        self._nactive[cls] += 1

    def _unlink(self, flow: int, cls: int) -> None:
        """Take ``flow`` out of class ``cls``'s active list (ending its turn)."""
        if self._chead[cls] == flow:
            self._turn[cls] = False
            self._chead[cls] = self._next[flow] if self._nactive[cls] > 1 else -1
        prev = self._prev[flow]
        nxt = self._next[flow]
        self._next[prev] = nxt
        self._prev[nxt] = prev
        self._prev[flow] = -1
        self._next[flow] = -1
        self._nactive[cls] -= 1

    def set_flow(
        self, flow: int, *, weight: float | None = None, priority: int | None = None
    ) -> None:
        """Create or update a flow.

        ``weight`` (a finite number > 0; default 1) scales the flow quantum to
        ``max(1, round(quantum * weight))`` bytes from the flow's next turn on.
        ``priority`` (0..num_classes-1; default ON_DEMAND, or 0 with one class)
        moves a backlogged flow to the tail of the new class with its deficit
        reset. ``None`` leaves a setting as it is. Raises TypeError/ValueError
        naming the argument; nothing changes when it raises.
        """
        f = check_flow(flow)
        if weight is not None:
            w, fq = check_weight(weight, self._quantum)
        if priority is not None:
            p = check_priority(priority, self._num_classes)
        self._ensure_flow(f)
        if weight is not None:
            self._weight[f] = w
            self._flow_quantum[f] = fq
        if priority is not None and p != self._flow_class[f]:
            if self._count[f]:
                self._unlink(f, self._flow_class[f])
                self._deficit[f] = 0
                self._append(f, p)
            self._flow_class[f] = p

    def remove_flow(self, flow: int) -> list[int]:
        """Forget ``flow`` and return the tags of its queued items, in FIFO order.

        Its counters go too; a later ``enqueue`` or ``set_flow`` creates it
        afresh with default settings. Raises ValueError for an unknown flow.
        """
        f = self._known_flow(flow)
        tags = []
        item_next = self._item_next
        i = self._head[f]
        while i >= 0:
            tags.append(self._item_tag[i])
            nxt = item_next[i]
            item_next[i] = self._free
            self._free = i
            i = nxt
        if self._count[f]:
            self._unlink(f, self._flow_class[f])
            self._len -= self._count[f]
            self._pending = (self._pending - self._backlog_bytes[f]) & MASK64
        self._known[f] = False
        self._head[f] = self._tail[f] = -1
        self._count[f] = self._backlog_bytes[f] = self._deficit[f] = 0
        self._served_bytes[f] = self._served_items[f] = 0
        self._flow_quantum[f] = self._flow_class[f] = 0
        self._weight[f] = 0.0
        self._nflows -= 1
        return tags

    # ------------------------------------------------------------ the queue

    def enqueue(self, flow: int, size: int, item: int = 0) -> None:
        """Append an item of ``size`` bytes tagged ``item`` to ``flow``'s FIFO.

        ``flow`` is an integer 0 <= flow < 2**31 (an unknown flow is created
        with default settings), ``size`` an integer 0..2**48, ``item`` any
        int64 (a transfer id, say). Raises TypeError/ValueError naming the
        argument; nothing changes when it raises.
        """
        f = check_flow(flow)
        s = check_size(size)
        t = check_item(item)
        self._ensure_flow(f)
        i = self._free
        if i >= 0:
            self._free = self._item_next[i]
            self._item_size[i] = s
            self._item_tag[i] = t
            self._item_next[i] = -1
        else:
            i = len(self._item_size)
            self._item_size.append(s)
            self._item_tag.append(t)
            self._item_next.append(-1)
        if self._count[f]:
            self._item_next[self._tail[f]] = i
        else:
            self._head[f] = i
            self._append(f, self._flow_class[f])
        self._tail[f] = i
        self._count[f] += 1
        self._backlog_bytes[f] = (self._backlog_bytes[f] + s) & MASK64
        self._len += 1
        self._pending = (self._pending + s) & MASK64

    def _skip_rounds(self, start: int) -> None:
        """Add, all at once, the silent rounds before some flow of a class can send.

        Called after a whole pass over the class's active list (from ``start``
        back to it) in which no flow could send: every flow gets the ``m - 1``
        quanta it would gain in the rounds before the first round ``m`` in
        which one of them can send.
        """
        deficit = self._deficit
        quantum = self._flow_quantum
        size = self._item_size
        head = self._head
        nxt = self._next
        rounds = 1 << 62
        f = start
        while True:
            q = quantum[f]
            rounds = min(rounds, (size[head[f]] - deficit[f] + q - 1) // q)
            f = nxt[f]
            if f == start:
                break
        while True:
            deficit[f] += (rounds - 1) * quantum[f]
            f = nxt[f]
            if f == start:
                break

    def _start_turn(self, cls: int) -> int:
        """Start turns in ``cls`` until a flow can send its head item; return it."""
        deficit = self._deficit
        quantum = self._flow_quantum
        size = self._item_size
        head = self._head
        nxt = self._next
        n = self._nactive[cls]
        f = self._chead[cls]
        misses = 0
        while True:
            d = deficit[f] + quantum[f]
            deficit[f] = d
            if size[head[f]] <= d:
                break
            f = nxt[f]
            misses += 1
            if misses == n:
                self._skip_rounds(f)
                misses = 0
        self._chead[cls] = f
        self._turn[cls] = True
        return f

    def _dequeue_one(self) -> tuple[int, int, int]:
        """Send one item; the scheduler must not be empty."""
        cls = 0
        chead = self._chead
        while chead[cls] < 0:
            cls += 1
        f = chead[cls] if self._turn[cls] else self._start_turn(cls)
        i = self._head[f]
        size = self._item_size[i]
        tag = self._item_tag[i]
        nxt = self._item_next[i]
        self._item_next[i] = self._free
        self._free = i
        self._head[f] = nxt
        self._count[f] -= 1
        self._backlog_bytes[f] = (self._backlog_bytes[f] - size) & MASK64
        d = self._deficit[f] - size
        self._deficit[f] = d
        self._served_bytes[f] = (self._served_bytes[f] + size) & MASK64
        self._served_items[f] += 1
        self._len -= 1
        self._pending = (self._pending - size) & MASK64
        if nxt < 0:
            self._tail[f] = -1
            self._deficit[f] = 0
            self._unlink(f, cls)
        elif self._item_size[nxt] > d:
            chead[cls] = self._next[f]
            self._turn[cls] = False
        return f, tag, size

    def dequeue(self) -> tuple[int, int, int] | None:
        """The next item to send as ``(flow, item, size)``, or None when nothing is queued."""
        if not self._len:
            return None
        return self._dequeue_one()

    def dequeue_many(self, flows_out, items_out, sizes_out) -> int:
        """Dequeue up to ``len(flows_out)`` items into the three arrays; return the count.

        The arrays are caller-provided, equally long, writable, C-contiguous
        int64 buffers (numpy ``int64``, ``array.array('q')``); entry ``k``
        receives the ``k``-th dequeue's flow, item tag and size, exactly as
        repeated ``dequeue()`` would return them. Entries past the count are
        left untouched. Raises TypeError/ValueError naming the bad array.
        """
        flows, items, sizes = check_out_arrays(flows_out, items_out, sizes_out)
        n = min(len(flows), self._len)
        for k in range(n):
            f, t, s = self._dequeue_one()
            flows[k] = f
            items[k] = t
            sizes[k] = s
        return n

    # ------------------------------------------------------------- counters

    def __len__(self) -> int:
        """Items queued over all flows."""
        return self._len

    def __contains__(self, flow: object) -> bool:
        """Whether ``flow`` is a known flow id (never raises)."""
        f = as_flow_id(flow)
        return 0 <= f < len(self._known) and self._known[f]

    def __repr__(self) -> str:
        return (
            f"DRRScheduler(quantum={self._quantum}, num_classes={self._num_classes}, "
            f"flows={self._nflows}, queued={self._len})"
        )

    @property
    def quantum(self) -> int:
        """Bytes a weight-1 flow may send per round."""
        return self._quantum

    @property
    def num_classes(self) -> int:
        """Number of strict priority classes."""
        return self._num_classes

    @property
    def pending_bytes(self) -> int:
        """Bytes queued over all flows (modulo 2**64)."""
        return self._pending

    def flows(self) -> list[int]:
        """Known flow ids, sorted."""
        return [f for f, known in enumerate(self._known) if known]

    def active_flows(self, priority: int) -> list[int]:
        """Backlogged flows of class ``priority`` in round order, the one served next first.

        Raises TypeError/ValueError for a bad class.
        """
        cls = check_priority(priority, self._num_classes)
        out = []
        f = start = self._chead[cls]
        while f >= 0:
            out.append(f)
            f = self._next[f]
            if f == start:
                break
        return out

    def backlog(self, flow: int) -> tuple[int, int]:
        """``(items, bytes)`` queued for ``flow`` (bytes modulo 2**64); ValueError if unknown."""
        f = self._known_flow(flow)
        return self._count[f], self._backlog_bytes[f]

    def served_bytes(self, flow: int) -> int:
        """Bytes dequeued from ``flow`` since its creation (mod 2**64); ValueError if unknown."""
        f = self._known_flow(flow)
        return self._served_bytes[f]

    def served_items(self, flow: int) -> int:
        """Items dequeued from ``flow`` since it was created; ValueError if unknown."""
        f = self._known_flow(flow)
        return self._served_items[f]

    def weight(self, flow: int) -> float:
        """The weight of ``flow``; ValueError if unknown."""
        f = self._known_flow(flow)
        return self._weight[f]

    def priority(self, flow: int) -> int:
        """The priority class of ``flow``; ValueError if unknown."""
        f = self._known_flow(flow)
        return self._flow_class[f]

    def deficit(self, flow: int) -> int:
        """The deficit counter of ``flow`` in bytes; ValueError if unknown."""
        f = self._known_flow(flow)
        return self._deficit[f]
