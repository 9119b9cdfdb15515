"""Tests of the DRR scheduler kernel: both twins, a naive reference model, differential runs."""

from __future__ import annotations

import array
import enum
import math
import random
from collections import deque

import numpy as np
import pytest
from conftest import kernel_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshcore.kernels import _drr_common as common

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def drr(backend):
    """The DRR kernel module of the backend under test."""
    return kernel_module("drr", backend)


def drain(sched):
    """Every remaining dequeue, in order."""
    out = []
    while (got := sched.dequeue()) is not None:
        out.append(got)
    return out


def fill(sched, flow, sizes, first_tag=0):
    for k, size in enumerate(sizes):
        sched.enqueue(flow, size, first_tag + k)


# --------------------------------------------------------------------------
# A naive reference model: the paper's loop, one round at a time, with Python
# objects. The kernels must agree with it dequeue by dequeue, which checks the
# round-skipping shortcut and the eager end of turns.


class RefDRR:
    def __init__(self, quantum, num_classes):
        self.quantum = quantum
        self.num_classes = num_classes
        self.flows = {}
        self.active = [deque() for _ in range(num_classes)]
        self.turn = [False] * num_classes

    def _flow(self, f):
        if f not in self.flows:
            self.flows[f] = {
                "queue": deque(),
                "deficit": 0,
                "fq": self.quantum,
                "weight": 1.0,
                "cls": 1 if self.num_classes > 1 else 0,
                "served": 0,
                "items": 0,
            }
        return self.flows[f]

    def _leave(self, f, cls):
        lst = self.active[cls]
        if lst[0] == f:
            self.turn[cls] = False
        lst.remove(f)

    def set_flow(self, f, weight=None, priority=None):
        fl = self._flow(f)
        if weight is not None:
            fl["weight"] = float(weight)
            fl["fq"] = max(1, round(self.quantum * float(weight)))
        if priority is not None and priority != fl["cls"]:
            if fl["queue"]:
                self._leave(f, fl["cls"])
                fl["deficit"] = 0
                self.active[priority].append(f)
            fl["cls"] = priority

    def enqueue(self, f, size, tag):
        fl = self._flow(f)
        if not fl["queue"]:
            self.active[fl["cls"]].append(f)
        fl["queue"].append((size, tag))

    def remove_flow(self, f):
        fl = self.flows.pop(f)
        if fl["queue"]:
            self._leave(f, fl["cls"])
        return [tag for _, tag in fl["queue"]]

    def dequeue(self):
        for cls in range(self.num_classes):
            if self.active[cls]:
                break
        else:
            return None
        lst = self.active[cls]
        while True:
            f = lst[0]
            fl = self.flows[f]
            if not self.turn[cls]:
                fl["deficit"] += fl["fq"]
                self.turn[cls] = True
            if fl["queue"][0][0] <= fl["deficit"]:
                break
            lst.rotate(-1)
            self.turn[cls] = False
        size, tag = fl["queue"].popleft()
        fl["deficit"] -= size
        fl["served"] += size
        fl["items"] += 1
        if not fl["queue"]:
            fl["deficit"] = 0
            lst.popleft()
            self.turn[cls] = False
        elif fl["queue"][0][0] > fl["deficit"]:
            lst.rotate(-1)
            self.turn[cls] = False
        return f, tag, size

    def state(self):
        return (
            sum(len(fl["queue"]) for fl in self.flows.values()),
            sum(s for fl in self.flows.values() for s, _ in fl["queue"]),
            sorted(self.flows),
            [list(lst) for lst in self.active],
            {
                f: (
                    fl["deficit"],
                    (len(fl["queue"]), sum(s for s, _ in fl["queue"])),
                    fl["served"],
                    fl["items"],
                    fl["weight"],
                    fl["cls"],
                )
                for f, fl in self.flows.items()
            },
        )


def state(sched):
    """Everything observable about a scheduler, for comparisons."""
    return (
        len(sched),
        sched.pending_bytes,
        sched.flows(),
        [sched.active_flows(c) for c in range(sched.num_classes)],
        {
            f: (
                sched.deficit(f),
                sched.backlog(f),
                sched.served_bytes(f),
                sched.served_items(f),
                sched.weight(f),
                sched.priority(f),
            )
            for f in sched.flows()
        },
    )


# --------------------------------------------------------------------------
# Basic behaviour


def test_module_exports(drr):
    import meshcore.kernels as kernels

    assert drr.__all__ == ["DRRScheduler"]
    assert kernels.DRRScheduler.__name__ == "DRRScheduler"
    assert (kernels.INTERACTIVE, kernels.ON_DEMAND, kernels.BACKGROUND) == (0, 1, 2)


def test_empty_scheduler(drr):
    s = drr.DRRScheduler()
    assert s.dequeue() is None
    assert len(s) == 0
    assert s.pending_bytes == 0
    assert s.flows() == []
    assert s.active_flows(0) == [] and s.active_flows(2) == []
    out = np.full(4, 7, np.int64)
    assert s.dequeue_many(out, out.copy(), out.copy()) == 0
    assert out.tolist() == [7, 7, 7, 7]
    assert (s.quantum, s.num_classes) == (65536, 3)
    assert repr(s) == "DRRScheduler(quantum=65536, num_classes=3, flows=0, queued=0)"


def test_fifo_within_flow(drr):
    s = drr.DRRScheduler(quantum=100)
    sizes = [5, 100, 0, 99, 1, 100, 50]
    fill(s, 4, sizes, first_tag=10)
    assert drain(s) == [(4, 10 + k, size) for k, size in enumerate(sizes)]
    assert s.deficit(4) == 0
    assert s.served_bytes(4) == sum(sizes)
    assert s.served_items(4) == len(sizes)
    assert s.active_flows(1) == []


def test_defaults_of_auto_created_flow(drr):
    s = drr.DRRScheduler(quantum=10)
    s.enqueue(3, 7, -1)
    assert 3 in s and 2 not in s
    assert s.flows() == [3]
    assert s.weight(3) == 1.0 and isinstance(s.weight(3), float)
    assert s.priority(3) == common.ON_DEMAND
    assert s.backlog(3) == (1, 7)
    assert s.active_flows(common.ON_DEMAND) == [3]
    one = drr.DRRScheduler(num_classes=1)
    one.enqueue(0, 1)
    assert one.priority(0) == 0
    one.set_flow(1)
    assert one.flows() == [0, 1] and one.backlog(1) == (0, 0)
    assert repr(s) == "DRRScheduler(quantum=10, num_classes=3, flows=1, queued=1)"


def test_round_robin_order_one_item_per_turn(drr):
    s = drr.DRRScheduler(quantum=1500)
    for k in range(3):
        for f in (5, 2, 9):
            s.enqueue(f, 1500, 100 * f + k)
    assert [got[0] for got in drain(s)] == [5, 2, 9] * 3


def test_deficit_carries_over_between_rounds(drr):
    s = drr.DRRScheduler(quantum=1500)
    fill(s, 0, [1000] * 4)
    fill(s, 1, [1000] * 4)
    got = []
    for _ in range(4):
        got.append(s.dequeue()[0])
    # Round 1: 1500 each, one item each (500 left). Round 2: 2000, two items each.
    assert got == [0, 1, 0, 0]
    assert s.deficit(0) == 0 and s.deficit(1) == 500
    assert s.active_flows(1) == [1, 0]


def test_equal_weights_share_bytes_equally(drr):
    rnd = random.Random(7)
    quantum, big = 1500, 1500
    s = drr.DRRScheduler(quantum=quantum)
    flows = [0, 1, 2, 3]
    for f in flows:
        fill(s, f, [rnd.randint(1, big) for _ in range(300)])
    round_ends = 0
    for _ in range(600):
        s.dequeue()
        # While every flow is backlogged, served + deficit counts whole quanta
        # (one per started turn) and turns differ by at most one between flows.
        turns = []
        for f in flows:
            total = s.served_bytes(f) + s.deficit(f)
            assert total % quantum == 0
            turns.append(total // quantum)
        assert max(turns) - min(turns) <= 1
        served = [s.served_bytes(f) for f in flows]
        assert max(served) - min(served) < quantum + big
        if len(set(turns)) == 1 and s.active_flows(1)[0] == flows[0]:
            # A round just ended: every flow had as many turns, so shares
            # differ by less than one maximal item.
            round_ends += 1
            assert max(served) - min(served) < big
    assert round_ends >= 50


def test_weights_give_proportional_byte_shares(drr):
    rnd = random.Random(3)
    s = drr.DRRScheduler(quantum=1000)
    for f, w in ((0, 1), (1, 2), (2, 4)):
        s.set_flow(f, weight=w)
        fill(s, f, [rnd.randint(1, 1000) for _ in range(3000)])
    for _ in range(3000):
        s.dequeue()
    served = [s.served_bytes(f) for f in range(3)]
    assert all(s.backlog(f)[0] > 0 for f in range(3))
    assert served[1] / served[0] == pytest.approx(2, rel=0.02)
    assert served[2] / served[0] == pytest.approx(4, rel=0.02)
    for f, w in ((0, 1), (1, 2), (2, 4)):
        assert (s.served_bytes(f) + s.deficit(f)) % (1000 * w) == 0


@pytest.mark.parametrize(
    ("quantum", "weight", "flow_quantum"),
    [(3, 0.5, 2), (5, 0.5, 2), (7, 0.5, 4), (3, 0.1, 1), (10, 1e-300, 1), (1500, 2.5, 3750)],
)
def test_flow_quantum_rounds_half_even(drr, quantum, weight, flow_quantum):
    s = drr.DRRScheduler(quantum=quantum)
    s.set_flow(0, weight=weight)
    fill(s, 0, [0, 0])
    s.dequeue()
    assert s.deficit(0) == flow_quantum  # mid-turn: the quantum just added


def test_strict_priority(drr):
    s = drr.DRRScheduler(quantum=100)
    s.set_flow(10, priority=common.BACKGROUND)
    s.set_flow(20, priority=common.INTERACTIVE)
    fill(s, 10, [50] * 5, first_tag=100)
    fill(s, 30, [50] * 5, first_tag=300)  # ON_DEMAND by default
    fill(s, 20, [50] * 2, first_tag=200)
    assert [s.dequeue()[0] for _ in range(4)] == [20, 20, 30, 30]
    # An interactive item arriving mid-stream goes first; the on-demand flow
    # then resumes its turn, and background waits for on-demand to empty.
    s.enqueue(20, 50, 250)
    assert s.dequeue() == (20, 250, 50)
    assert [s.dequeue()[0] for _ in range(3)] == [30, 30, 30]
    assert s.backlog(10) == (5, 250)
    assert s.served_items(10) == 0
    assert [got[0] for got in drain(s)] == [10] * 5


def test_lower_class_resumes_turn_after_preemption(drr):
    s = drr.DRRScheduler(quantum=300)
    s.set_flow(1, priority=2)
    s.set_flow(2, priority=2)
    fill(s, 1, [100] * 4)
    fill(s, 2, [100] * 4)
    assert s.dequeue()[0] == 1
    s.enqueue(0, 10)
    assert s.dequeue()[0] == 0
    assert s.deficit(1) == 200
    assert [s.dequeue()[0] for _ in range(4)] == [1, 1, 2, 2]


def test_items_larger_than_quantum(drr):
    s = drr.DRRScheduler(quantum=100)
    fill(s, 0, [1000, 1000], first_tag=0)
    fill(s, 1, [250, 250, 250, 250], first_tag=10)
    ref = RefDRR(100, 3)
    for k, size in enumerate([1000, 1000]):
        ref.enqueue(0, size, k)
    for k in range(4):
        ref.enqueue(1, 250, 10 + k)
    expected = [ref.dequeue() for _ in range(6)]
    assert drain(s) == expected
    assert sorted(got[1] for got in expected) == [0, 1, 10, 11, 12, 13]


def test_huge_items_terminate_quickly(drr):
    top = common.MAX_SIZE
    s = drr.DRRScheduler(quantum=1)
    s.enqueue(0, top, 1)
    s.enqueue(1, top - 1, 2)
    s.enqueue(1, 5, 3)
    s.enqueue(2, top, 4)
    # Round by round this would take 2**48 rounds; the shortcut takes one.
    # In round top - 1 flow 0 is still one byte short and flow 1 fits.
    assert s.dequeue() == (1, 2, top - 1)
    assert (s.deficit(0), s.deficit(1), s.deficit(2)) == (top - 1, 0, top - 2)
    assert s.active_flows(1) == [2, 0, 1]
    assert s.dequeue() == (0, 1, top)
    assert s.dequeue() == (2, 4, top)
    assert s.dequeue() == (1, 3, 5)
    assert s.served_bytes(0) == top


def test_zero_size_items(drr):
    s = drr.DRRScheduler(quantum=10)
    fill(s, 0, [0, 0, 0], first_tag=0)
    fill(s, 1, [0, 10], first_tag=10)
    assert drain(s) == [(0, 0, 0), (0, 1, 0), (0, 2, 0), (1, 10, 0), (1, 11, 10)]
    assert s.served_bytes(0) == 0 and s.served_items(0) == 3
    assert s.pending_bytes == 0


def test_remove_flow_mid_stream(drr):
    s = drr.DRRScheduler(quantum=100)
    for f in range(4):
        fill(s, f, [60] * 3, first_tag=10 * f)
    assert s.dequeue()[0] == 0
    # Flow 0 is mid-turn (40 left < 60): its turn ended, flow 1 is next.
    assert s.active_flows(1) == [1, 2, 3, 0]
    assert s.remove_flow(1) == [10, 11, 12]
    assert 1 not in s and s.flows() == [0, 2, 3]
    assert len(s) == 8 and s.pending_bytes == 480
    assert s.active_flows(1) == [2, 3, 0]
    assert s.dequeue() == (2, 20, 60)
    assert s.remove_flow(3) == [30, 31, 32]
    assert s.remove_flow(2) == [21, 22]
    with pytest.raises(ValueError, match="flow: expected a known flow id, got 2"):
        s.served_bytes(2)
    s.set_flow(5)
    assert s.remove_flow(5) == []
    # A removed flow comes back fresh.
    s.set_flow(1, weight=3, priority=0)
    assert s.remove_flow(1) == []
    s.enqueue(1, 5, 99)
    assert (s.weight(1), s.priority(1), s.served_bytes(1), s.backlog(1)) == (1.0, 1, 0, (1, 5))
    assert [got[0] for got in drain(s)] == [0, 0, 1]
    assert len(s) == 0 and s.pending_bytes == 0


def test_remove_head_flow_mid_turn(drr):
    s = drr.DRRScheduler(quantum=100)
    fill(s, 0, [10] * 5, first_tag=0)
    fill(s, 1, [10] * 2, first_tag=10)
    assert s.dequeue() == (0, 0, 10)
    assert s.active_flows(1) == [0, 1]  # flow 0 still mid-turn
    assert s.remove_flow(0) == [1, 2, 3, 4]
    assert s.active_flows(1) == [1]
    assert s.dequeue() == (1, 10, 10)
    assert s.deficit(1) == 90  # a fresh turn for flow 1
    assert s.remove_flow(1) == [11]
    assert s.dequeue() is None


def test_priority_change_while_backlogged(drr):
    s = drr.DRRScheduler(quantum=100)
    for f in range(3):
        fill(s, f, [30] * 3, first_tag=10 * f)
    s.set_flow(3, priority=0)
    fill(s, 3, [30] * 3, first_tag=30)
    s.set_flow(4, priority=0)
    fill(s, 4, [30] * 3, first_tag=40)
    assert s.dequeue()[0] == 3  # flow 3 mid-turn, deficit 70
    s.set_flow(3, priority=1)
    assert s.deficit(3) == 0
    assert s.priority(3) == 1
    assert s.active_flows(0) == [4]
    assert s.active_flows(1) == [0, 1, 2, 3]
    s.set_flow(0, priority=1)  # unchanged class: stays in place
    assert s.active_flows(1) == [0, 1, 2, 3]
    s.set_flow(1, priority=0)
    assert s.active_flows(0) == [4, 1]
    assert [got[0] for got in drain(s)] == [4] * 3 + [1] * 3 + [0] * 3 + [2] * 3 + [3] * 2
    s.set_flow(2, priority=2)  # idle flow: just changes class
    s.enqueue(2, 1)
    assert s.active_flows(2) == [2]


def test_weight_change_takes_effect_next_turn(drr):
    s = drr.DRRScheduler(quantum=100)
    fill(s, 0, [10] * 40)
    fill(s, 1, [10] * 40)
    s.dequeue()
    assert s.deficit(0) == 90
    s.set_flow(0, weight=3)
    assert s.weight(0) == 3.0
    assert s.deficit(0) == 90
    got = [s.dequeue()[0] for _ in range(9 + 10 + 30)]
    assert got == [0] * 9 + [1] * 10 + [0] * 30


def test_counters_exact(drr):
    s = drr.DRRScheduler(quantum=50)
    fill(s, 0, [10, 20, 30])
    fill(s, 7, [5, 5])
    assert (len(s), s.pending_bytes) == (5, 70)
    assert s.backlog(0) == (3, 60) and s.backlog(7) == (2, 10)
    assert s.flows() == [0, 7]
    assert s.dequeue() == (0, 0, 10)
    assert s.dequeue() == (0, 1, 20)
    assert (s.deficit(0), s.backlog(0), s.served_bytes(0), s.served_items(0)) == (
        20,
        (1, 30),
        30,
        2,
    )
    assert s.dequeue() == (7, 0, 5)
    assert (len(s), s.pending_bytes) == (2, 35)
    assert s.dequeue() == (7, 1, 5)
    assert s.deficit(7) == 0  # its queue emptied
    assert s.dequeue() == (0, 2, 30)
    assert (s.served_bytes(7), s.served_items(7), s.backlog(7)) == (10, 2, (0, 0))


def test_byte_counters_wrap_modulo_2_64(drr):
    s = drr.DRRScheduler(quantum=common.MAX_QUANTUM)
    top = common.MAX_SIZE
    for _ in range(2**16):
        s.enqueue(0, top)
    assert s.backlog(0) == (2**16, 0)
    assert s.pending_bytes == 0
    s.enqueue(0, 3)
    assert s.pending_bytes == 3
    assert s.dequeue_many(*(np.zeros(2**16, np.int64) for _ in range(3))) == 2**16
    assert s.served_bytes(0) == 0
    assert s.backlog(0) == (1, 3)
    assert s.dequeue() == (0, 0, 3)
    assert s.served_bytes(0) == 3 and s.pending_bytes == 0


def test_item_tags_cover_int64(drr):
    s = drr.DRRScheduler()
    lo, hi = -(2**63), 2**63 - 1
    s.enqueue(0, 1, lo)
    s.enqueue(0, 1, hi)
    s.enqueue(0, 1, -1)
    assert s.remove_flow(0) == [lo, hi, -1]
    s.enqueue(0, 1, hi)
    assert s.dequeue() == (0, hi, 1)


def test_int_like_arguments(drr):
    class Cls(enum.IntEnum):
        HIGH = 0

    s = drr.DRRScheduler(quantum=np.int64(100), num_classes=np.int32(2))
    assert s.quantum == 100 and type(s.quantum) is int
    s.set_flow(np.int64(3), weight=np.int64(2), priority=Cls.HIGH)
    s.enqueue(np.uint8(3), np.int64(10), np.int64(-5))
    s.enqueue(Cls.HIGH, True + 0, 1)
    assert s.backlog(np.int16(3)) == (1, 10)
    assert s.weight(3) == 2.0 and s.priority(3) == 0
    assert np.int64(3) in s
    assert s.dequeue() == (3, -5, 10)
    assert s.remove_flow(np.int64(0)) == [1]


def test_membership_never_raises(drr):
    s = drr.DRRScheduler()
    s.enqueue(1, 1)
    assert 1 in s
    for value in (True, 1.0, "1", None, -1, 2**31, 2**100, 0, 5):
        assert value not in s


def test_repeated_cycles_reuse_item_slots(drr):
    s = drr.DRRScheduler(quantum=1500)
    for cycle in range(5):
        for k in range(200):
            s.enqueue(k % 7, 1500, cycle * 1000 + k)
        got = drain(s)
        assert sorted(tag for _, tag, _ in got) == [cycle * 1000 + k for k in range(200)]
    assert len(s) == 0 and s.pending_bytes == 0


# --------------------------------------------------------------------------
# dequeue_many


def _filled(drr, seed=1):
    rnd = random.Random(seed)
    s = drr.DRRScheduler(quantum=300, num_classes=3)
    for k in range(120):
        f = rnd.randint(0, 9)
        if k == 40:
            s.set_flow(f, weight=2.5, priority=0)
        s.enqueue(f, rnd.choice([0, 100, 299, 300, 700]), k)
    return s


def test_dequeue_many_equals_repeated_dequeue(drr):
    one, many = _filled(drr), _filled(drr)
    expected = drain(one)
    got = []
    for n in (0, 1, 7, 50, 200):
        fo, io, so = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
        count = many.dequeue_many(fo, io, so)
        got += list(zip(fo[:count].tolist(), io[:count].tolist(), so[:count].tolist(), strict=True))
    assert got == expected
    assert state(one) == state(many)


def test_dequeue_many_fills_partially_and_accepts_array_module(drr):
    s = drr.DRRScheduler()
    fill(s, 2, [1, 2, 3], first_tag=5)
    fo = array.array("q", [-9] * 5)
    io = array.array("q", [-9] * 5)
    so = np.full(5, -9, dtype="<i8")
    assert s.dequeue_many(fo, io, so) == 3
    assert list(fo) == [2, 2, 2, -9, -9]
    assert list(io) == [5, 6, 7, -9, -9]
    assert so.tolist() == [1, 2, 3, -9, -9]
    assert s.dequeue_many(fo, io, so) == 0


@pytest.mark.parametrize(
    ("args", "exc", "message"),
    [
        (([0], "i", "s"), TypeError, "flows_out: expected a writable C-contiguous"),
        ((None, "i", "s"), TypeError, "flows_out: expected a writable C-contiguous"),
        (("f", None, "s"), TypeError, "items_out: expected a writable"),
        (("f", "i", 3), TypeError, "sizes_out: expected a writable"),
        ((np.zeros(3), "i", "s"), ValueError, "flows_out: expected a writable"),
        ((np.zeros(3, np.uint64), "i", "s"), ValueError, "flows_out: expected"),
        ((np.zeros(3, np.int32), "i", "s"), ValueError, "flows_out: expected"),
        ((np.zeros((3, 2), np.int64), "i", "s"), ValueError, "ndim 2"),
        ((np.zeros(6, np.int64)[::2], "i", "s"), ValueError, "c_contiguous False"),
        ((b"\0" * 24, "i", "s"), ValueError, "flows_out: expected"),
        (("f", "ro", "s"), ValueError, "items_out: expected a writable .* readonly True"),
        (("f", "i", "short"), ValueError, r"sizes_out: expected length 3 \(as flows_out\), got 2"),
        (("f", "short", "s"), ValueError, r"items_out: expected length 3 \(as flows_out\), got 2"),
    ],
)
def test_dequeue_many_rejects_bad_arrays(drr, args, exc, message):
    s = drr.DRRScheduler()
    fill(s, 0, [1, 2, 3, 4])

    def make(spec):
        if isinstance(spec, str):
            if spec == "ro":
                out = np.zeros(3, np.int64)
                out.flags.writeable = False
                return out
            return np.zeros(2 if spec == "short" else 3, np.int64)
        return spec

    with pytest.raises(exc, match=message):
        s.dequeue_many(*(make(a) for a in args))
    assert len(s) == 4  # nothing was dequeued


# --------------------------------------------------------------------------
# Argument checks: same types and messages on both twins


INT_DESC = {
    "quantum": "an integer 1 <= quantum <= 2**48",
    "num_classes": "an integer 1 <= num_classes <= 16",
    "flow": "an integer 0 <= flow < 2**31",
    "size": "an integer 0 <= size <= 2**48",
    "item": "an int64 tag -2**63 <= item < 2**63",
}


def _msg(name, value, desc=None):
    return f"{name}: expected {desc or INT_DESC[name]}, got {value!r}"


BAD_CALLS = [
    # constructor
    (lambda m: m.DRRScheduler(quantum=0), ValueError, _msg("quantum", 0)),
    (lambda m: m.DRRScheduler(quantum=2**48 + 1), ValueError, _msg("quantum", 2**48 + 1)),
    (lambda m: m.DRRScheduler(quantum=1.0), TypeError, _msg("quantum", 1.0)),
    (lambda m: m.DRRScheduler(quantum=True), TypeError, _msg("quantum", True)),
    (lambda m: m.DRRScheduler(num_classes=0), ValueError, _msg("num_classes", 0)),
    (lambda m: m.DRRScheduler(num_classes=17), ValueError, _msg("num_classes", 17)),
    (lambda m: m.DRRScheduler(num_classes="3"), TypeError, _msg("num_classes", "3")),
    # enqueue
    (lambda m: m.DRRScheduler().enqueue(-1, 1), ValueError, _msg("flow", -1)),
    (lambda m: m.DRRScheduler().enqueue(2**31, 1), ValueError, _msg("flow", 2**31)),
    (lambda m: m.DRRScheduler().enqueue(2**64, 1), ValueError, _msg("flow", 2**64)),
    (lambda m: m.DRRScheduler().enqueue(True, 1), TypeError, _msg("flow", True)),
    (lambda m: m.DRRScheduler().enqueue(1.0, 1), TypeError, _msg("flow", 1.0)),
    (lambda m: m.DRRScheduler().enqueue(None, 1), TypeError, _msg("flow", None)),
    (lambda m: m.DRRScheduler().enqueue(0, -1), ValueError, _msg("size", -1)),
    (lambda m: m.DRRScheduler().enqueue(0, 2**48 + 1), ValueError, _msg("size", 2**48 + 1)),
    (lambda m: m.DRRScheduler().enqueue(0, -(2**70)), ValueError, _msg("size", -(2**70))),
    (lambda m: m.DRRScheduler().enqueue(0, 1.5), TypeError, _msg("size", 1.5)),
    (lambda m: m.DRRScheduler().enqueue(0, False), TypeError, _msg("size", False)),
    (lambda m: m.DRRScheduler().enqueue(0, 1, 2**63), ValueError, _msg("item", 2**63)),
    (
        lambda m: m.DRRScheduler().enqueue(0, 1, -(2**63) - 1),
        ValueError,
        _msg("item", -(2**63) - 1),
    ),
    (lambda m: m.DRRScheduler().enqueue(0, 1, "t"), TypeError, _msg("item", "t")),
    (lambda m: m.DRRScheduler().enqueue(0, 1, object), TypeError, _msg("item", object)),
    # set_flow
    (lambda m: m.DRRScheduler().set_flow(-3), ValueError, _msg("flow", -3)),
    (
        lambda m: m.DRRScheduler().set_flow(0, weight=0),
        ValueError,
        "weight: expected a finite number > 0, got 0",
    ),
    (
        lambda m: m.DRRScheduler().set_flow(0, weight=-1.5),
        ValueError,
        "weight: expected a finite number > 0, got -1.5",
    ),
    (
        lambda m: m.DRRScheduler().set_flow(0, weight=math.nan),
        ValueError,
        "weight: expected a finite number > 0, got nan",
    ),
    (
        lambda m: m.DRRScheduler().set_flow(0, weight=math.inf),
        ValueError,
        "weight: expected a finite number > 0, got inf",
    ),
    (
        lambda m: m.DRRScheduler().set_flow(0, weight=10**400),
        ValueError,
        f"weight: expected a finite number > 0, got {10**400!r}",
    ),
    (
        lambda m: m.DRRScheduler().set_flow(0, weight=True),
        TypeError,
        "weight: expected a finite number > 0, got True",
    ),
    (
        lambda m: m.DRRScheduler().set_flow(0, weight="2"),
        TypeError,
        "weight: expected a finite number > 0, got '2'",
    ),
    (
        lambda m: m.DRRScheduler(quantum=2**40).set_flow(0, weight=257),
        ValueError,
        f"weight: expected quantum * weight <= 2**48 (quantum {2**40}), got 257",
    ),
    (
        lambda m: m.DRRScheduler().set_flow(0, priority=3),
        ValueError,
        "priority: expected an integer 0 <= priority < 3, got 3",
    ),
    (
        lambda m: m.DRRScheduler(num_classes=1).set_flow(0, priority=1),
        ValueError,
        "priority: expected an integer 0 <= priority < 1, got 1",
    ),
    (
        lambda m: m.DRRScheduler().set_flow(0, priority=1.0),
        TypeError,
        "priority: expected an integer 0 <= priority < 3, got 1.0",
    ),
    (
        lambda m: m.DRRScheduler().set_flow(0, priority=False),
        TypeError,
        "priority: expected an integer 0 <= priority < 3, got False",
    ),
    # getters and removal
    (
        lambda m: m.DRRScheduler().remove_flow(0),
        ValueError,
        "flow: expected a known flow id, got 0",
    ),
    (lambda m: m.DRRScheduler().backlog(5), ValueError, "flow: expected a known flow id, got 5"),
    (lambda m: m.DRRScheduler().served_bytes(-1), ValueError, _msg("flow", -1)),
    (lambda m: m.DRRScheduler().served_items("a"), TypeError, _msg("flow", "a")),
    (lambda m: m.DRRScheduler().weight(2**40), ValueError, _msg("flow", 2**40)),
    (lambda m: m.DRRScheduler().priority(None), TypeError, _msg("flow", None)),
    (lambda m: m.DRRScheduler().deficit(False), TypeError, _msg("flow", False)),
    (
        lambda m: m.DRRScheduler().active_flows(-1),
        ValueError,
        "priority: expected an integer 0 <= priority < 3, got -1",
    ),
]


@pytest.mark.parametrize(("call", "exc", "message"), BAD_CALLS)
def test_bad_arguments_raise_with_message(drr, call, exc, message):
    with pytest.raises(exc) as info:
        call(drr)
    assert type(info.value) is exc
    assert str(info.value) == message


def test_failed_calls_change_nothing(drr):
    s = drr.DRRScheduler(quantum=100)
    fill(s, 0, [10, 20])
    s.set_flow(1, weight=2, priority=0)
    before = state(s)
    for call in (
        lambda: s.enqueue(2, -1),
        lambda: s.enqueue(2, 1, 2**63),
        lambda: s.set_flow(3, weight=0),
        lambda: s.set_flow(0, weight=2, priority=9),
        lambda: s.set_flow(0, weight=-1, priority=0),
        lambda: s.remove_flow(4),
    ):
        with pytest.raises(ValueError):
            call()
        assert state(s) == before


def test_known_but_removed_flow_lookups(drr):
    s = drr.DRRScheduler()
    s.enqueue(3, 1)
    s.remove_flow(3)
    for getter in (s.backlog, s.served_bytes, s.weight, s.priority, s.deficit, s.remove_flow):
        with pytest.raises(ValueError, match="flow: expected a known flow id, got 3"):
            getter(3)
    with pytest.raises(ValueError, match=r"got 1$"):
        s.served_items(1)


# --------------------------------------------------------------------------
# Against the naive reference model (each backend)


def weighted(*pairs):
    """A strategy drawing each ``(weight, strategy)`` in proportion to its integer weight."""
    bag = [strategy for weight, strategy in pairs for _ in range(weight)]
    return st.integers(0, len(bag) - 1).flatmap(lambda k: bag[k])


valid_ops = st.lists(
    weighted(
        (
            5,
            st.tuples(
                st.just("enqueue"),
                st.integers(0, 6),
                st.one_of(st.integers(0, 400), st.sampled_from([0, 1, 1500, 2999])),
                st.integers(-(2**63), 2**63 - 1),
            ),
        ),
        (
            1,
            st.tuples(
                st.just("set_flow"),
                st.integers(0, 7),
                st.one_of(st.none(), st.sampled_from([0.01, 0.3, 0.5, 1, 1.5, 2, 4, 7.25])),
                st.one_of(st.none(), st.integers(0, 3)),
            ),
        ),
        (1, st.tuples(st.just("remove"), st.integers(0, 7))),
        (4, st.tuples(st.just("dequeue"), st.integers(1, 6))),
    ),
    min_size=10,
    max_size=100,
)


@FAST
@given(
    quantum=st.sampled_from([1, 3, 64, 100, 1500]),
    num_classes=st.integers(1, 4),
    ops=valid_ops,
)
def test_matches_reference_model(drr, quantum, num_classes, ops):
    s = drr.DRRScheduler(quantum=quantum, num_classes=num_classes)
    ref = RefDRR(quantum, num_classes)
    for op in ops:
        if op[0] == "enqueue":
            s.enqueue(op[1], op[2], op[3])
            ref.enqueue(op[1], op[2], op[3])
        elif op[0] == "set_flow":
            prio = None if op[3] is None else op[3] % num_classes
            s.set_flow(op[1], weight=op[2], priority=prio)
            ref.set_flow(op[1], op[2], prio)
        elif op[0] == "remove":
            if op[1] in ref.flows:
                assert s.remove_flow(op[1]) == ref.remove_flow(op[1])
            else:
                assert op[1] not in s
        else:
            for _ in range(op[1]):
                assert s.dequeue() == ref.dequeue()
        assert state(s) == ref.state()
    while (got := ref.dequeue()) is not None:
        assert s.dequeue() == got
    assert s.dequeue() is None
    assert state(s) == ref.state()


# --------------------------------------------------------------------------
# Differential: compiled against pure, including errors

flow_arg = weighted(
    (9, st.integers(0, 9)),
    (1, st.sampled_from([-1, 2**31, 2**64, True, 1.0, None, "0", np.int64(2)])),
)
size_arg = weighted(
    (9, st.one_of(st.integers(0, 3000), st.sampled_from([0, 1, 1500]))),
    (1, st.sampled_from([2**47, 2**48, 2**48 + 1, -1, 2**64, 1.5, False, np.int64(9)])),
)
item_arg = weighted(
    (9, st.integers(-(2**63), 2**63 - 1)),
    (1, st.sampled_from([2**63, -(2**63) - 1, None, 1.0, b"x"])),
)
weight_arg = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-2, 10),
    st.sampled_from([True, "1", 10**400, 2**47, 1e-320]),
)
prio_arg = st.one_of(st.none(), st.integers(-1, 4), st.sampled_from([True, 1.0]))


def _out_array(kind, n):
    if kind == "np":
        return np.full(n, -7, np.int64)
    if kind == "array":
        return array.array("q", [-7] * n)
    if kind == "f64":
        return np.zeros(n)
    return [0] * n


out_kind = st.sampled_from(["np", "np", "np", "np", "array", "f64", "list"])

any_ops = st.lists(
    weighted(
        (6, st.tuples(st.just("enqueue"), flow_arg, size_arg, item_arg)),
        (4, st.tuples(st.just("dequeue"), st.integers(1, 8))),
        (1, st.tuples(st.just("set_flow"), flow_arg, weight_arg, prio_arg)),
        (1, st.tuples(st.just("remove"), flow_arg)),
        (
            1,
            st.tuples(
                st.just("many"),
                st.tuples(out_kind, out_kind, out_kind),
                st.integers(0, 8),
                st.sampled_from([0, 0, 0, 0, 0, -1, 1]),
            ),
        ),
        (1, st.tuples(st.just("query"), flow_arg, prio_arg)),
    ),
    min_size=10,
    max_size=150,
)


def _apply(sched, op):
    """Run one operation; return its result or the exception it raised (type, message)."""
    try:
        if op[0] == "enqueue":
            return sched.enqueue(op[1], op[2], op[3])
        if op[0] == "set_flow":
            return sched.set_flow(op[1], weight=op[2], priority=op[3])
        if op[0] == "remove":
            return sched.remove_flow(op[1])
        if op[0] == "dequeue":
            return [sched.dequeue() for _ in range(op[1])]
        if op[0] == "many":
            kinds, n, delta = op[1], op[2], op[3]
            arrays = [_out_array(kinds[0], n), _out_array(kinds[1], n)]
            arrays.append(_out_array(kinds[2], max(0, n + delta)))
            count = sched.dequeue_many(*arrays)
            return count, [list(a) for a in arrays]
        return (
            op[1] in sched,
            _apply_getters(sched, op[1]),
            _apply_active(sched, op[2]),
        )
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)


def _apply_getters(sched, flow):
    out = []
    for getter in (
        sched.backlog,
        sched.served_bytes,
        sched.served_items,
        sched.weight,
        sched.priority,
        sched.deficit,
    ):
        try:
            out.append(getter(flow))
        except (TypeError, ValueError) as exc:
            out.append((type(exc), str(exc)))
    return out


def _apply_active(sched, priority):
    try:
        return sched.active_flows(priority)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    quantum=st.sampled_from([1, 2, 100, 1500, 2**20]),
    num_classes=st.integers(1, 5),
    ops=any_ops,
)
def test_twins_agree_on_random_operations(twins, quantum, num_classes, ops):
    pure, compiled = twins("drr")
    a = pure.DRRScheduler(quantum=quantum, num_classes=num_classes)
    b = compiled.DRRScheduler(quantum=quantum, num_classes=num_classes)
    for op in ops:
        got_a, got_b = _apply(a, op), _apply(b, op)
        assert got_a == got_b, op
        assert state(a) == state(b)
        assert repr(a) == repr(b)
    assert drain(a) == drain(b)
    assert state(a) == state(b)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    quantum=st.one_of(st.integers(-2, 2**49), st.sampled_from([True, 1.5, "9", None])),
    num_classes=st.one_of(st.integers(-1, 18), st.sampled_from([True, 2.0, None])),
)
def test_twins_agree_on_constructor_arguments(twins, quantum, num_classes):
    pure, compiled = twins("drr")
    results = []
    for mod in (pure, compiled):
        try:
            s = mod.DRRScheduler(quantum=quantum, num_classes=num_classes)
            results.append((s.quantum, s.num_classes, repr(s)))
        except (TypeError, ValueError) as exc:
            results.append((type(exc), str(exc)))
    assert results[0] == results[1]


def test_twins_agree_on_heavy_random_run(twins):
    pure, compiled = twins("drr")
    rnd = random.Random(11)
    a, b = pure.DRRScheduler(quantum=700), compiled.DRRScheduler(quantum=700)
    for s in (a, b):
        for f in range(50):
            s.set_flow(f, weight=0.25 + (f % 7) * 0.5, priority=f % 3)
    ops = []
    for k in range(20000):
        r = rnd.random()
        if r < 0.5:
            ops.append(("enqueue", rnd.randrange(60), rnd.choice([0, 1, 500, 1500, 9000]), k))
        elif r < 0.51:
            ops.append(("remove", rnd.randrange(60)))
        elif r < 0.52:
            ops.append(
                ("set_flow", rnd.randrange(60), rnd.choice([None, 0.5, 3]), rnd.randrange(3))
            )
        else:
            ops.append(("dequeue", 1))
    for op in ops:
        assert _apply(a, op) == _apply(b, op)
    assert state(a) == state(b)
    assert drain(a) == drain(b)


def test_compiled_refuses_an_impossible_flow_table():
    """A flow id needing a table larger than memory raises MemoryError and changes nothing."""
    drr = kernel_module("drr", "compiled")
    sched = drr.DRRScheduler()
    sched.enqueue(3, 100, 1)
    with pytest.raises(MemoryError):
        sched.enqueue(2**31 - 1, 10, 2)
    assert len(sched) == 1
    assert sched.dequeue() == (3, 1, 100)
