"""Fairness under load (fair scheduler vs FIFO) and the policy layer's cost per decision.

Groups ``fairness-{scenario}`` (the issue's scenarios from
``meshcore.fairness.scenarios.standard_scenarios``: equal backlogged users,
one heavy user against many light ones, guest vs member, 200 users at peak,
1,000 flows on one bottleneck, users arriving and leaving): one seeded
simulator run per round through ``FairScheduler`` (ours) and through the FIFO
baseline (peer, ``FifoBaseline``: one shared queue, two chunks per transfer)
on the same workload. Metrics, per the issue:

* ``jfi``: Jain's index among backlogged users (weighted by class), the worst
  epoch; target >= 0.99;
* ``worst_vs_maxmin``: the worst user's bytes / its weighted max-min fair
  share, the worst epoch; target >= 0.95.

Group ``fairness-overhead``: the cost of one transfer decision. Workload: 100
hosts with 1..5 backlogged transfers each (300 transfers), 16 KiB slices.

* ours: ``FairScheduler.next_send`` (policy layer + kernel: slice, refill,
  sojourn bookkeeping, host and class checks);
* peer ("bare DRR kernel", the bound): ``DRRScheduler.dequeue()`` plus the
  ``enqueue`` that keeps the flow backlogged, the kernel work a decision
  needs, in the same run and process.

Metric ``added_us_per_decision`` = median over alternating pairs of
(ours - bare) / decisions, in microseconds; target <= 2.
"""

from __future__ import annotations

import statistics
import time

import pytest
from _harness import describe, scale

from meshcore.config import parse_config
from meshcore.fairness.policy import Policy, Principal
from meshcore.fairness.scenarios import run_scenario, standard_scenarios
from meshcore.fairness.scheduler import FairScheduler, Transfer
from meshcore.fairness.settings import parse_fairness
from meshcore.kernels import BACKEND, DRRScheduler

SCALE = scale(2, 1) * 1.0
SCENARIOS = {sc.name: sc for sc in standard_scenarios(SCALE)}
DECISIONS = scale(200_000, 30_000)
PAIRS = scale(7, 3)
HOSTS = 100
CHUNK = 16384
BIG = 10**15


@pytest.mark.parametrize("who", ["fair", "fifo"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fairness_scenario(benchmark, name, who):
    sc = SCENARIOS[name]
    # Decisions per run: link bytes / slice size (the same for both: the link never idles).
    label = {
        "group": f"fairness-{name}",
        "impl": "meshcore FairScheduler" if who == "fair" else "FIFO baseline",
        "role": "ours" if who == "fair" else "peer",
        "items": int(sc.link_rate * sc.duration // sc.chunk),
        "unit": "decisions",
    }
    describe(benchmark, **label)
    result = benchmark.pedantic(run_scenario, args=(sc, who), rounds=1, iterations=1)
    describe(
        benchmark,
        **label,
        jfi=round(result.jfi, 4),
        worst_vs_maxmin=round(result.worst_ratio, 4),
        jfi_target=0.99,
        worst_target=0.95,
    )


def _policy() -> Policy:
    text = f'[fairness]\nchunk = "{CHUNK} B"\n[fairness.classes.member]\nweight = 1\n'
    return Policy(parse_fairness(parse_config(text, "<bench>")))


def _ours_setup():
    sched = FairScheduler(_policy(), now=0.0, flush_interval=3600.0)
    tid = 0
    for h in range(HOSTS):
        for _ in range(1 + h % 5):
            tid += 1
            sched.submit(Transfer(tid, BIG, Principal(household=f"h{h}")), now=0.0)
    return sched


def _ours_run(sched, n=DECISIONS):
    send = sched.next_send
    for _ in range(n):
        send(now=1.0)


def _bare_setup():
    k = DRRScheduler(quantum=65536, num_classes=1)
    f = 0
    for h in range(HOSTS):
        flows = 1 + h % 5
        for _ in range(flows):
            k.set_flow(f, weight=1.0 / flows)
            k.enqueue(f, CHUNK, f)
            k.enqueue(f, CHUNK, f)
            f += 1
    return k


def _bare_run(k, n=DECISIONS):
    dequeue, enqueue = k.dequeue, k.enqueue
    for _ in range(n):
        f, t, s = dequeue()
        enqueue(f, s, t)


def _added_us() -> float:
    diffs = []
    for i in range(PAIRS):
        a, b = _ours_setup(), _bare_setup()
        order = [("ours", a), ("bare", b)] if i % 2 == 0 else [("bare", b), ("ours", a)]
        times = {}
        for who, obj in order:
            start = time.perf_counter()
            (_ours_run if who == "ours" else _bare_run)(obj)
            times[who] = time.perf_counter() - start
        diffs.append((times["ours"] - times["bare"]) / DECISIONS * 1e6)
    return statistics.median(diffs)


@pytest.mark.parametrize("who", ["ours", "bare"])
def test_decision_overhead(benchmark, who):
    label = {
        "group": "fairness-overhead",
        "impl": f"FairScheduler.next_send ({BACKEND} kernel)"
        if who == "ours"
        else f"bare DRRScheduler dequeue+enqueue ({BACKEND})",
        "role": "ours" if who == "ours" else "peer",
        "items": DECISIONS,
        "unit": "decisions",
    }
    describe(benchmark, **label)
    if who == "ours":
        benchmark.pedantic(_ours_run, setup=lambda: ((_ours_setup(),), {}), rounds=PAIRS)
        describe(benchmark, **label, added_us_per_decision=round(_added_us(), 3), target_us=2.0)
    else:
        benchmark.pedantic(_bare_run, setup=lambda: ((_bare_setup(),), {}), rounds=PAIRS)
