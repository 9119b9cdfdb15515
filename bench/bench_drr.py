"""DRR scheduler: dequeues per second against the issue's bound, and flatness in the flow count.

No library implements a weighted deficit round robin for Python, and a
queue written in the benchmark is no peer, so every row is judged against
the targets of issue 3 (``against_bound``; the report prints met or missed
under the row) and prints no time ratio.

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
  (``items`` set to that, so its throughput is comparable; no bound: the
  target is for the compiled kernel).

Bounds: ``throughput`` >= 5 million dequeues/s (compiled); ``served_spread``
(most minus fewest items served to one flow in the drain) <= 1, i.e. fair at
one-item granularity; and, in the 100,000-flow groups, ``vs_10_flows`` >= 0.7:
the median over back-to-back pairs of the 100,000-flow drain's throughput
over the 10-flow drain's, the same number of dequeues each (issue 3 asks for
"flat in the number of flows"; 0.7 is the reading it accepted).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from _harness import against_bound, describe, paired_ratio, scale

from meshcore.kernels import _drr_py as twin

FLOW_COUNTS = [10, 1_000, 100_000]
DRAIN = scale(1_000_000, 50_000)
TWIN_DRAIN = scale(100_000, 10_000)
ITEM = 1500
QUANTUM = 1500
BATCH = 1024
ROUNDS = scale(5, 2)
TARGET = 5_000_000  # dequeues/s, compiled (issue 3)
FLAT = 0.7  # 100,000-flow / 10-flow throughput


def compiled():
    try:
        return importlib.import_module("meshcore.kernels._drr_c")
    except ImportError as exc:
        pytest.skip(f"compiled drr kernel is not built: {exc}")


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


def drr_spread(sched, flows: int) -> int:
    served = [sched.served_items(f) for f in range(flows)]
    return max(served) - min(served)


def group(flows: int) -> str:
    return f"drr-dequeue-{flows}flows"


def drain_loop(sched, drain: int = DRAIN) -> None:
    """``drain`` single ``dequeue()`` calls."""
    dequeue = sched.dequeue
    for _ in range(drain):
        dequeue()


def make_drain_many():
    """A drain through ``dequeue_many`` into preallocated arrays."""
    fo, io, so = (np.empty(BATCH, np.int64) for _ in range(3))

    def drain_many(sched, drain: int = DRAIN) -> None:
        many = sched.dequeue_many
        left = drain
        while left >= BATCH:
            left -= many(fo, io, so)
        if left:
            many(fo[:left], io[:left], so[:left])

    return drain_many


def judge(benchmark, sched, flows: int, make, drain) -> None:
    """The bounds of a compiled row; the flatness pair at the largest flow count."""
    benchmark.extra_info.setdefault("metrics", {})["served_spread"] = drr_spread(sched, flows)
    against_bound(benchmark, "throughput", TARGET, better="higher", unit="dequeues/s")
    against_bound(benchmark, "served_spread", 1, better="lower", unit="items")
    if flows == FLOW_COUNTS[-1]:

        def setup(n):
            def prepared():
                sched = make()
                prefill(sched, n, DRAIN)
                return (sched,)

            return prepared

        ratio = paired_ratio(drain, drain, rounds=ROUNDS, ours_setup=setup(flows),
                             peer_setup=setup(FLOW_COUNTS[0]))
        benchmark.extra_info["metrics"]["vs_10_flows"] = ratio
        against_bound(benchmark, "vs_10_flows", FLAT, better="higher")


def time_drain(benchmark, make, drain_fn, flows: int, drain: int, impl: str, role: str):
    """Time ``drain_fn`` over a freshly prefilled scheduler per round; return the last one."""
    last = {}

    def setup():
        sched = make()
        prefill(sched, flows, drain)
        last["sched"] = sched
        return (sched, drain), {}

    describe(benchmark, group=group(flows), impl=impl, role=role, items=drain, unit="dequeues")
    benchmark.pedantic(drain_fn, setup=setup, rounds=ROUNDS, iterations=1)
    sched = last["sched"]
    assert len(sched) == flows * (-(-drain // flows) + 1) - drain
    return sched


@pytest.mark.parametrize("flows", FLOW_COUNTS)
def test_dequeue_loop_ours(benchmark, flows):
    mod = compiled()

    def make():
        return mod.DRRScheduler(quantum=QUANTUM)

    sched = time_drain(benchmark, make, drain_loop, flows, DRAIN,
                       "meshcore-compiled dequeue()", "ours")
    judge(benchmark, sched, flows, make, drain_loop)


@pytest.mark.parametrize("flows", FLOW_COUNTS)
def test_dequeue_many_ours(benchmark, flows):
    mod = compiled()

    def make():
        return mod.DRRScheduler(quantum=QUANTUM)

    drain_many = make_drain_many()
    sched = time_drain(benchmark, make, drain_many, flows, DRAIN,
                       f"meshcore-compiled dequeue_many({BATCH})", "ours")
    judge(benchmark, sched, flows, make, drain_many)


@pytest.mark.parametrize("flows", FLOW_COUNTS)
def test_dequeue_twin(benchmark, flows):
    sched = time_drain(benchmark, lambda: twin.DRRScheduler(quantum=QUANTUM), drain_loop,
                       flows, TWIN_DRAIN, "meshcore-pure dequeue()", "twin")
    benchmark.extra_info.setdefault("metrics", {})["served_spread"] = drr_spread(sched, flows)
