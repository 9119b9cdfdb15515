"""DRR scheduler vs a heapq weighted fair queue (SCFQ), dequeues per second.

Workload: F backlogged flows (F = 10, 1,000, 100,000), equal weights, every
item 1500 bytes, quantum 1500, so each turn sends exactly one item: the worst
case for round-robin overhead. Each round pre-fills (untimed setup) every
flow with ``ceil(DRAIN / F) + 1`` items, enqueued round-robin across flows as
concurrent transfers would arrive, then times draining DRAIN items (1,000,000;
50,000 in quick mode), so every flow stays backlogged to the end.

Groups ``drr-dequeue-{F}flows``:

* ``meshcore-compiled dequeue()`` (ours): a Python loop calling ``dequeue()``;
* ``meshcore-compiled dequeue_many(1024)`` (ours): the batch path, 1024
  dequeues per call into preallocated int64 arrays;
* ``meshcore-pure dequeue()`` (twin): the pure twin draining TWIN_DRAIN items
  (``items`` set to that, so its throughput is comparable);
* ``heapq SCFQ`` (peer): self-clocked fair queueing (Golestani, INFOCOM 1994),
  the usual heap-based WFQ: finish tag ``max(V, last finish of the flow) +
  size / weight`` stamped at enqueue, one heap entry per backlogged flow
  (its head's tag), the virtual time V is the tag of the item last served.
  O(log F) per dequeue; ours is O(1).

Metric ``served_spread`` = most minus fewest items served to one flow in the
drain (1 means perfectly fair at one-item granularity). Target: >= 5 million
dequeues/s compiled, flat in F (compare 100,000-flow to 10-flow throughput
within one run).
"""

from __future__ import annotations

import heapq
import importlib
from collections import deque

import numpy as np
import pytest
from _harness import describe, scale

from meshcore.kernels import _drr_py as twin

FLOW_COUNTS = [10, 1_000, 100_000]
DRAIN = scale(1_000_000, 50_000)
TWIN_DRAIN = scale(100_000, 10_000)
ITEM = 1500
QUANTUM = 1500
BATCH = 1024
ROUNDS = scale(5, 2)


def compiled():
    try:
        return importlib.import_module("meshcore.kernels._drr_c")
    except ImportError as exc:
        pytest.skip(f"compiled drr kernel is not built: {exc}")


class HeapSCFQ:
    """Self-clocked fair queueing on ``heapq``: the peer.

    A fair, reasonably efficient pure-Python weighted fair queue: per-flow
    FIFOs of ``(finish, item, size)``, finish tags computed once at enqueue,
    and a heap holding only each backlogged flow's head tag, so a dequeue is
    one ``heapreplace`` (or ``heappop`` when the flow empties). Ties go to the
    lower flow id.
    """

    def __init__(self) -> None:
        self.queues: dict[int, deque] = {}
        self.last_finish: dict[int, float] = {}
        self.weights: dict[int, float] = {}
        self.heap: list[tuple[float, int]] = []
        self.vtime = 0.0

    def enqueue(self, flow: int, size: int, item: int = 0) -> None:
        queue = self.queues.get(flow)
        if queue is None:
            queue = self.queues[flow] = deque()
        start = max(self.vtime, self.last_finish.get(flow, 0.0))
        finish = start + size / self.weights.get(flow, 1.0)
        self.last_finish[flow] = finish
        if not queue:
            heapq.heappush(self.heap, (finish, flow))
        queue.append((finish, item, size))

    def dequeue(self):
        heap = self.heap
        if not heap:
            return None
        finish, flow = heap[0]
        queue = self.queues[flow]
        _, item, size = queue.popleft()
        self.vtime = finish
        if queue:
            heapq.heapreplace(heap, (queue[0][0], flow))
        else:
            heapq.heappop(heap)
        return flow, item, size


def prefill(sched, flows: int, drain: int) -> int:
    """Fill every flow with enough 1500-byte items to stay backlogged; return items per flow."""
    per_flow = -(-drain // flows) + 1
    enqueue = sched.enqueue
    tag = 0
    for _ in range(per_flow):
        for f in range(flows):
            enqueue(f, ITEM, tag)
            tag += 1
    return per_flow


def spread(served: list[int]) -> int:
    return max(served) - min(served)


def drr_spread(sched, flows: int) -> int:
    return spread([sched.served_items(f) for f in range(flows)])


def record_spread(benchmark, value: int) -> None:
    benchmark.extra_info.setdefault("metrics", {})["served_spread"] = value


def group(flows: int) -> str:
    return f"drr-dequeue-{flows}flows"


def time_dequeue_loop(benchmark, make, flows: int, drain: int, impl: str, role: str):
    """Time ``drain`` single ``dequeue()`` calls on a prefilled scheduler; return the last one."""
    last = {}

    def setup():
        sched = make()
        prefill(sched, flows, drain)
        last["sched"] = sched
        return (sched,), {}

    def run(sched):
        dequeue = sched.dequeue
        for _ in range(drain):
            dequeue()

    describe(benchmark, group=group(flows), impl=impl, role=role, items=drain, unit="dequeues")
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    return last["sched"]


@pytest.mark.parametrize("flows", FLOW_COUNTS)
def test_dequeue_loop_ours(benchmark, flows):
    mod = compiled()
    sched = time_dequeue_loop(
        benchmark,
        lambda: mod.DRRScheduler(quantum=QUANTUM),
        flows,
        DRAIN,
        "meshcore-compiled dequeue()",
        "ours",
    )
    assert len(sched) == flows * (-(-DRAIN // flows) + 1) - DRAIN
    record_spread(benchmark, drr_spread(sched, flows))


@pytest.mark.parametrize("flows", FLOW_COUNTS)
def test_dequeue_many_ours(benchmark, flows):
    mod = compiled()
    out = [np.empty(BATCH, np.int64) for _ in range(3)]
    last = {}

    def setup():
        sched = mod.DRRScheduler(quantum=QUANTUM)
        prefill(sched, flows, DRAIN)
        last["sched"] = sched
        return (sched,), {}

    def run(sched):
        fo, io, so = out
        many = sched.dequeue_many
        left = DRAIN
        while left >= BATCH:
            left -= many(fo, io, so)
        if left:
            many(fo[:left], io[:left], so[:left])

    describe(
        benchmark,
        group=group(flows),
        impl=f"meshcore-compiled dequeue_many({BATCH})",
        role="ours",
        items=DRAIN,
        unit="dequeues",
    )
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    assert len(last["sched"]) == flows * (-(-DRAIN // flows) + 1) - DRAIN
    record_spread(benchmark, drr_spread(last["sched"], flows))


@pytest.mark.parametrize("flows", FLOW_COUNTS)
def test_dequeue_twin(benchmark, flows):
    sched = time_dequeue_loop(
        benchmark,
        lambda: twin.DRRScheduler(quantum=QUANTUM),
        flows,
        TWIN_DRAIN,
        "meshcore-pure dequeue()",
        "twin",
    )
    record_spread(benchmark, drr_spread(sched, flows))


@pytest.mark.parametrize("flows", FLOW_COUNTS)
def test_dequeue_peer(benchmark, flows):
    peer = time_dequeue_loop(benchmark, HeapSCFQ, flows, DRAIN, "heapq SCFQ dequeue()", "peer")
    per_flow = -(-DRAIN // flows) + 1
    record_spread(benchmark, spread([per_flow - len(peer.queues[f]) for f in range(flows)]))
