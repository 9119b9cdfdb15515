"""Seeded bottleneck-link scenarios on the discrete-event simulator: fair scheduler vs FIFO.

Theory of operation
-------------------
One node sends over one link of ``link_rate`` bytes/s (the gateway's uplink or
a mesh hop's air time). Users (households) submit transfers to the node:

* **backlogged** users keep ``flows`` huge transfers open from ``start`` to
  ``stop`` (arriving and leaving users are backlogged users with a window);
* **bursty** users submit transfers of ``burst`` bytes with exponential gaps
  of mean ``gap`` seconds (Poisson arrivals, from the simulator's seeded RNG).

The link asks its scheduler for the next chunk whenever it is free
(``next_send``) and is busy for ``size / link_rate`` seconds; bytes count for a
user when the chunk has been transmitted. Two schedulers are compared on the
*same* workload (same seed, same arrivals):

* ``"fair"``: :class:`~meshcore.fairness.scheduler.FairScheduler` with the
  scenario's classes;
* ``"fifo"``: :class:`FifoBaseline`, one shared first-in-first-out queue in
  which every transfer keeps two chunks (a TCP-like window), so the link is
  shared per *flow* in arrival order, blind to hosts and weights: what a plain
  queue gives.

**Measurement.** Time is cut into epochs at every start/stop of a backlogged
user; each epoch is measured after a settling time (``settle`` of its length).
Per epoch: each active user's bytes, its weighted max-min fair share of
``link_rate x length`` (metrics.max_min_fair_shares; demand = infinite for
backlogged users, bytes submitted in the epoch for bursty ones), Jain's index
among backlogged users (weighted by class weight) and the worst ratio of
bytes received to fair share. A scenario's figure is the worst epoch.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field

from ..config import parse_config
from ..kernels import BACKGROUND, ON_DEMAND
from ..sim.engine import Simulator
from .congestion import CongestionController, CongestionParams, DeferReplication, SetClassRate
from .metrics import jain_index, max_min_fair_shares
from .policy import ALLOW, REFUSE, Policy, Principal
from .scheduler import Decision, FairScheduler, Transfer
from .settings import parse_fairness

__all__ = [
    "CongestionResult",
    "EpochResult",
    "FifoBaseline",
    "Scenario",
    "ScenarioResult",
    "UserSpec",
    "build_policy",
    "run_congestion",
    "run_scenario",
    "standard_scenarios",
]

_HUGE = 2**50  # bytes of a "backlogged" transfer: never finishes in a run


@dataclass(frozen=True, slots=True)
class UserSpec:
    """One user (household ``name``) of class ``class_name``.

    ``mode`` "backlogged" (``flows`` open transfers from ``start`` to ``stop``)
    or "bursty" (``burst``-byte transfers, exponential gaps of mean ``gap`` s).
    """

    name: str
    class_name: str = "member"
    mode: str = "backlogged"
    flows: int = 1
    start: float = 0.0
    stop: float = math.inf
    burst: int = 65536
    gap: float = 1.0
    priority: int = ON_DEMAND


@dataclass(frozen=True, slots=True)
class Scenario:
    """A seeded workload on one link (``link_rate`` bytes/s, ``duration`` s)."""

    name: str
    users: tuple[UserSpec, ...]
    link_rate: float = 1.25e6
    duration: float = 60.0
    chunk: int = 16384
    classes: dict[str, dict[str, object]] = field(default_factory=lambda: {"member": {"weight": 1}})
    seed: int = 1
    settle: float = 0.1
    drain: float = 0.1


@dataclass(frozen=True, slots=True)
class EpochResult:
    """Per-epoch figures (see the module docstring)."""

    start: float
    end: float
    users: tuple[str, ...]
    received: tuple[float, ...]
    fair: tuple[float, ...]
    weights: tuple[float, ...]
    backlogged: tuple[bool, ...]
    jfi: float
    worst_ratio: float


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """A run: per-epoch results, the worst JFI and share ratio, and every decision."""

    scenario: str
    scheduler: str
    epochs: tuple[EpochResult, ...]
    jfi: float
    worst_ratio: float
    bytes_by_user: dict[str, int]
    decisions: tuple[tuple[float, str, Decision], ...]


def build_policy(scenario: Scenario) -> Policy:
    """The scenario's classes and one household rule per user, through the TOML loader."""
    lines = ["[fairness]", f'chunk = "{scenario.chunk} B"']
    first = next(iter(scenario.classes))
    lines.append(f'default_class = "{first}"')
    for name, values in scenario.classes.items():
        lines.append(f"[fairness.classes.{name}]")
        for key, value in values.items():
            lines.append(f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}")
    for user in scenario.users:
        lines += [
            "[[fairness.rules]]",
            f'household = "{user.name}"',
            f'class = "{user.class_name}"',
        ]
    text = "\n".join(lines).replace("'", '"')
    return Policy(parse_fairness(parse_config(text, f"<scenario {scenario.name}>")))


class FifoBaseline:
    """The FIFO baseline: one shared chunk queue, two chunks per transfer in it.

    Same calls as the fair scheduler (``submit``, ``next_send``, ``complete``);
    admits everything, ignores hosts, classes and priorities.
    """

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self._queue: deque[tuple[int, int]] = deque()  # (transfer_id, size)
        self._left: dict[int, list] = {}  # id -> [transfer, unqueued, queued]

    def submit(self, transfer: Transfer, *, now: float) -> Decision:
        """Queue ``transfer`` at the tail (always admitted)."""
        self._left[transfer.transfer_id] = [transfer, transfer.size, 0]
        self._fill(transfer.transfer_id)
        return Decision(transfer.transfer_id, ALLOW, "fifo", transfer.priority)

    def _fill(self, tid: int) -> None:
        entry = self._left[tid]
        while entry[2] < 2 and entry[1]:
            size = min(self.chunk, entry[1])
            entry[1] -= size
            entry[2] += 1
            self._queue.append((tid, size))

    def next_send(self, *, now: float) -> tuple[Transfer, int] | None:
        """The chunk at the head of the queue (skipping cancelled transfers)."""
        while self._queue:
            tid, size = self._queue.popleft()
            entry = self._left.get(tid)
            if entry is None:
                continue
            entry[2] -= 1
            if entry[1]:
                self._fill(tid)
            elif not entry[2]:
                del self._left[tid]
            return entry[0], size
        return None

    def complete(self, transfer_id: int, *, now: float) -> int:
        """Cancel a transfer; its queued chunks are skipped."""
        entry = self._left.pop(transfer_id, None)
        return 0 if entry is None else entry[1]

    def get_timer(self) -> float | None:
        """FIFO never waits on a rate."""
        return None


class _Run:
    def __init__(self, scenario: Scenario, mode: str) -> None:
        if mode not in ("fair", "fifo"):
            raise ValueError(f"mode: expected 'fair' or 'fifo', got {mode!r}")
        self.sc = scenario
        self.sim = Simulator(seed=scenario.seed)
        self.policy = build_policy(scenario)
        self.sched = (
            FairScheduler(self.policy, now=0.0) if mode == "fair" else FifoBaseline(scenario.chunk)
        )
        self.mode = mode
        self.busy = False
        self.wake = None
        self.next_id = 0
        self.sent: dict[str, int] = {u.name: 0 for u in scenario.users}
        self.offered: dict[str, int] = {u.name: 0 for u in scenario.users}
        self.open: dict[str, list[int]] = {u.name: [] for u in scenario.users}
        self.decisions: list[tuple[float, str, Decision]] = []
        self.snapshots: dict[float, tuple[dict[str, int], dict[int, int]]] = {}
        # bursty users: (arrival time, transfer id, size) and bytes delivered per transfer
        self.arrivals: dict[str, list[tuple[float, int, int]]] = {
            u.name: [] for u in scenario.users
        }
        self.tsent: dict[int, int] = {}

    def submit(self, user: UserSpec, size: int) -> None:
        self.next_id += 1
        tid = self.next_id
        now = self.sim.now
        t = Transfer(tid, size, Principal(household=user.name), priority=user.priority)
        dec = self.sched.submit(t, now=now)
        self.decisions.append((now, user.name, dec))
        if dec.action != REFUSE:
            self.offered[user.name] += size
            if user.mode == "bursty":
                self.arrivals[user.name].append((now, tid, size))
                self.tsent[tid] = 0
            else:
                self.open[user.name].append(tid)
            self.kick()

    def kick(self) -> None:
        if not self.busy:
            self.busy = True
            self.sim.schedule(0.0, self.serve)

    def serve(self) -> None:
        got = self.sched.next_send(now=self.sim.now)
        if got is None:
            self.busy = False
            at = self.sched.get_timer()
            if at is not None and (self.wake is None or self.wake.time != at):
                self.wake = self.sim.schedule_at(max(at, self.sim.now), self.kick)
            return
        transfer, size = got
        self.sim.schedule(size / self.sc.link_rate, self.delivered, transfer, size)

    def delivered(self, transfer: Transfer, size: int) -> None:
        self.sent[transfer.identity.household] += size
        tid = transfer.transfer_id
        if tid in self.tsent:
            self.tsent[tid] += size
        self.serve()

    def start_backlogged(self, user: UserSpec) -> None:
        for _ in range(user.flows):
            self.submit(user, _HUGE)

    def stop_user(self, user: UserSpec) -> None:
        for tid in self.open[user.name]:
            self.sched.complete(tid, now=self.sim.now)
        self.open[user.name].clear()

    def bursty(self, user: UserSpec) -> None:
        if self.sim.now >= user.stop:
            return
        self.submit(user, user.burst)
        self.sim.schedule(self.sim.rng.expovariate(1.0 / user.gap), self.bursty, user)

    def snapshot(self) -> None:
        self.snapshots[self.sim.now] = (dict(self.sent), dict(self.tsent))


def _epochs(sc: Scenario) -> list[tuple[float, float]]:
    cuts = {0.0, sc.duration}
    for u in sc.users:
        if u.mode == "backlogged":
            cuts.update(t for t in (u.start, u.stop) if 0 < t < sc.duration)
    points = sorted(cuts)
    return list(itertools.pairwise(points))


def run_scenario(scenario: Scenario, scheduler: str = "fair") -> ScenarioResult:
    """Run ``scenario`` through ``scheduler`` ("fair" or "fifo"); deterministic per seed."""
    run = _Run(scenario, scheduler)
    sim = run.sim
    for user in scenario.users:
        if user.mode == "backlogged":
            sim.schedule_at(user.start, run.start_backlogged, user)
        elif user.mode == "bursty":
            sim.schedule_at(user.start, run.bursty, user)
        else:
            raise ValueError(f"users: unknown mode {user.mode!r} for {user.name!r}")
        if user.stop < scenario.duration:
            sim.schedule_at(user.stop, run.stop_user, user)
    windows = []
    for a, b in _epochs(scenario):
        m0 = a + scenario.settle * (b - a)
        windows.append((m0, b))
        sim.schedule_at(m0, run.snapshot)
        sim.schedule_at(b, run.snapshot)
    sim.run(until=scenario.duration)
    run.snapshot()
    weights = {
        u.name: run.policy.resolve(Principal(household=u.name)).spec.weight
        for u in scenario.users
    }
    epochs = []
    for m0, b in windows:
        sent0, _ = run.snapshots[m0]
        sent1, tsent1 = run.snapshots[b]
        cutoff = b - scenario.drain * (b - m0)
        active, got_l, demand = [], [], []
        for u in scenario.users:
            if u.mode == "backlogged":
                if u.start <= m0 and u.stop >= b:
                    active.append(u)
                    got_l.append(float(sent1[u.name] - sent0[u.name]))
                    demand.append(math.inf)
                continue
            # A bursty user: the transfers it asked for in [m0, cutoff) and how much of
            # them arrived by b (the drain time lets the last request be served).
            asked = [(tid, size) for t, tid, size in run.arrivals[u.name] if m0 <= t < cutoff]
            if asked:
                active.append(u)
                got_l.append(float(sum(tsent1.get(tid, 0) for tid, _ in asked)))
                demand.append(float(sum(size for _, size in asked)))
        if not active:
            continue
        names = tuple(u.name for u in active)
        got = tuple(got_l)
        w = tuple(weights[n] for n in names)
        fair = tuple(max_min_fair_shares(scenario.link_rate * (b - m0), demand, w))
        back = tuple(u.mode == "backlogged" for u in active)
        bg = [(g, wt) for g, wt, k in zip(got, w, back, strict=True) if k]
        jfi = jain_index([g for g, _ in bg], [wt for _, wt in bg]) if bg else 1.0
        worst = min(g / f if f > 0 else 1.0 for g, f in zip(got, fair, strict=True))
        epochs.append(EpochResult(m0, b, names, got, fair, w, back, jfi, worst))
    return ScenarioResult(
        scenario.name,
        scheduler,
        tuple(epochs),
        min((e.jfi for e in epochs), default=1.0),
        min((e.worst_ratio for e in epochs), default=1.0),
        dict(run.sent),
        tuple(run.decisions),
    )


def standard_scenarios(scale: float = 1.0) -> list[Scenario]:
    """The issue's scenarios (equal, heavy vs light, weighted, 200 users, 1,000 flows,
    arriving/leaving); ``scale`` < 1 shortens them (tests), > 1 lengthens (benchmarks)."""
    r = 1.25e6  # 10 Mbit/s
    chunk = 16384
    dur = 40.0 * scale
    out = [
        Scenario("equal", tuple(UserSpec(f"u{i}") for i in range(10)), r, dur, chunk),
        Scenario(
            "heavy-vs-light",
            (
                UserSpec("heavy", flows=16),
                *(UserSpec(f"mod{i}") for i in range(4)),
                *(UserSpec(f"light{i}", mode="bursty", burst=32768, gap=0.8) for i in range(5)),
            ),
            r,
            dur,
            chunk,
            seed=2,
        ),
        Scenario(
            "guest-vs-member",
            tuple(UserSpec(f"m{i}", "member") for i in range(4))
            + tuple(UserSpec(f"g{i}", "guest") for i in range(4)),
            r,
            dur,
            chunk,
            classes={"member": {"weight": 2}, "guest": {"weight": 1}},
            seed=3,
        ),
        Scenario(
            "200-users",
            tuple(UserSpec(f"b{i}", flows=1 + i % 3) for i in range(100))
            + tuple(UserSpec(f"l{i}", mode="bursty", burst=16384, gap=20.0) for i in range(100)),
            4 * r,
            dur * 1.5,
            chunk,
            seed=4,
        ),
        Scenario(
            "1000-flows",
            tuple(UserSpec(f"h{i}", flows=1 + (i * 7) % 19) for i in range(100)),
            8 * r,
            dur * 1.5,
            chunk,
            seed=5,
        ),
        Scenario(
            "arrive-leave",
            tuple(
                UserSpec(f"a{i}", flows=1 + i % 2, start=(dur / 8) * i, stop=dur - (dur / 10) * i)
                for i in range(4)
            ),
            r,
            dur,
            chunk,
            seed=6,
            settle=0.15,
        ),
    ]
    return out


# ------------------------------------------------------------------- congestion


@dataclass(frozen=True, slots=True)
class CongestionResult:
    """A congestion run: detection time, effects in order, on-demand latencies."""

    detected_at: float | None
    effects: tuple[tuple[float, object], ...]
    latency_before: float
    latency_congested: float
    latency_after: float
    background_rate_after: float


def run_congestion(
    *,
    mitigate: bool = True,
    link_rate: float = 1.25e6,
    downstream: float = 1.25e6,
    drop_at: float = 10.0,
    dropped: float = 0.3125e6,
    duration: float = 40.0,
    chunk: int = 16384,
    seed: int = 7,
) -> CongestionResult:
    """A node sends background bulk and on-demand requests into a downstream bottleneck
    whose capacity falls from ``downstream`` to ``dropped`` bytes/s at ``drop_at``.

    The downstream hop is a FIFO fluid queue; RTT samples are ``0.02 s + queue /
    capacity``. With ``mitigate`` the :class:`CongestionController` drives the
    scheduler's class caps. Latency = submit to last byte out of the downstream
    queue, averaged over on-demand requests in [0, drop_at), [drop_at, drop_at
    + 5), and the last quarter of the run.
    """
    sim = Simulator(seed=seed)
    sc = Scenario("congestion", (), link_rate, duration, chunk)
    policy = build_policy(sc)
    sched = FairScheduler(policy, now=0.0)
    ctl = CongestionController(link_rate, chunk=chunk, params=CongestionParams(), now=0.0)
    state = {"q": 0.0, "t": 0.0, "busy": False, "wake": None}
    effects: list[tuple[float, object]] = []
    pending: dict[int, tuple[float, int]] = {}  # od transfer -> (submitted, bytes left)
    lat: list[tuple[float, float]] = []
    ids = iter(range(1, 10**9))

    def capacity() -> float:
        return downstream if sim.now < drop_at else dropped

    def kick() -> None:
        if not state["busy"]:
            state["busy"] = True
            sim.schedule(0.0, serve)

    def serve() -> None:
        got = sched.next_send(now=sim.now)
        if got is None:
            state["busy"] = False
            at = sched.get_timer()
            if at is not None:
                sim.schedule_at(max(at, sim.now), kick)
            return
        transfer, size = got
        ctl.on_sojourn(sched.last_sojourn, priority=transfer.priority, now=sim.now)
        sim.schedule(size / link_rate, out, transfer, size)

    def out(transfer: Transfer, size: int) -> None:
        cap = capacity()
        q = max(0.0, state["q"] - cap * (sim.now - state["t"])) + size
        state["q"], state["t"] = q, sim.now
        ctl.on_rtt(0.02 + q / cap, now=sim.now)
        tid = transfer.transfer_id
        if tid in pending:
            t0, left = pending[tid]
            left -= size
            if left <= 0:
                del pending[tid]
                lat.append((t0, sim.now + q / cap - t0))
            else:
                pending[tid] = (t0, left)
        serve()

    def tick() -> None:
        for eff in ctl.tick(now=sim.now):
            effects.append((sim.now, eff))
            if mitigate and isinstance(eff, SetClassRate):
                sched.set_class_rate(eff.priority, eff.rate, now=sim.now)
        sim.schedule_at(ctl.get_timer(), tick)
        kick()

    def request() -> None:
        tid = next(ids)
        size = 4 * chunk
        sched.submit(Transfer(tid, size, Principal(household="reader")), now=sim.now)
        pending[tid] = (sim.now, size)
        kick()
        sim.schedule(sim.rng.expovariate(2.0), request)

    for i in range(3):
        t = Transfer(next(ids), _HUGE, Principal(household=f"bulk{i}"), priority=BACKGROUND)
        sched.submit(t, now=0.0)
    sim.schedule(0.0, request)
    sim.schedule_at(ctl.get_timer(), tick)
    kick()
    sim.run(until=duration)

    def mean(a: float, b: float) -> float:
        xs = [x for t0, x in lat if a <= t0 < b]
        return sum(xs) / len(xs) if xs else math.nan

    first = next((t for t, e in effects if not isinstance(e, DeferReplication)), None)
    detected = first if first is not None and first >= drop_at else None
    bg = sched.class_rate(BACKGROUND)
    return CongestionResult(
        detected,
        tuple(effects),
        mean(0.0, drop_at),
        mean(drop_at, drop_at + 5.0),
        mean(duration * 0.75, duration),
        link_rate if bg is None else bg,
    )
