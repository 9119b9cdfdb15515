"""Seeded bottleneck-link scenarios on the discrete-event simulator: fair scheduler vs FIFO.

Theory of operation
-------------------
One node sends over one link of ``link_rate`` bytes/s (the gateway's uplink or
a mesh hop's air time). Users (households) submit transfers to the node:

* **backlogged** users keep ``flows`` huge transfers open from ``start`` to
  ``stop`` (arriving and leaving users are backlogged users with a window);
* **bursty** users submit transfers of ``burst`` bytes with exponential gaps
  of mean ``gap`` seconds (Poisson arrivals, from the simulator's seeded RNG).

The run is a two-node mesh on :mod:`meshcore.sim`: the sending node and a
sink joined by one link of ``link_rate`` bytes/s (no latency, no loss). The
sender is a :class:`BottleneckSender` core (the protocol of
:mod:`meshcore.core`) hosted by the simulator's :class:`~meshcore.sim.hosts.CoreHost`
and the one host loop: whenever its egress is idle it takes the next slice
from its scheduler and sends it as a message; the link is busy for
``size / link_rate`` seconds, and bytes count for a user when the slice has
been transmitted. Two schedulers are compared on the *same* workload (same
seed, same arrivals):

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
from ..core import dispatches, handler
from ..identity import Principal
from ..kernels import BACKGROUND, ON_DEMAND
from ..net.discovery import Start
from ..net.topology import Topology
from ..router.events import EgressIdle, SendSlice
from ..router.messages import ChunkSlice
from ..sim.hosts import CoreHost
from ..sim.scenarios import Scenario
from .congestion import (
    CongestionController,
    CongestionParams,
    DeferReplication,
    RttSample,
    SetClassRate,
)
from .metrics import jain_index, max_min_fair_shares
from .policy import ALLOW, REFUSE, Policy
from .scheduler import Cancel, Decision, FairScheduler, Submit, Transfer
from .settings import parse_fairness

__all__ = [
    "BottleneckSender",
    "CongestionResult",
    "EpochResult",
    "FifoBaseline",
    "ScenarioResult",
    "UserSpec",
    "Workload",
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
class Workload:
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


def build_policy(scenario: Workload) -> Policy:
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

    def handle_timer(self, *, now: float) -> list:
        """Nothing is ever due."""
        return []


@dispatches
class BottleneckSender:
    """One node sending its users' transfers over one link, through ``scheduler`` (a core).

    ``scheduler`` is a :class:`FairScheduler` or a :class:`FifoBaseline`;
    ``sink`` the node at the far end of the link. With a ``congestion``
    controller, RTT samples (:class:`RttSample`) feed it and, when
    ``mitigate``, its class caps drive the scheduler; every congestion effect
    is kept in ``effects`` with its time.
    """

    def __init__(self, scheduler, *, sink: str, congestion: CongestionController | None = None,
                 mitigate: bool = True) -> None:
        self.scheduler = scheduler
        self.sink = sink
        self.congestion = congestion
        self.mitigate = mitigate
        self.effects: list[tuple[float, object]] = []
        self._idle = True
        self._offset: dict[int, int] = {}  # bytes of each transfer already sent

    def get_timer(self) -> float | None:
        """The scheduler's deadline, or the congestion controller's tick."""
        times = [t for t in (self.scheduler.get_timer(),
                             self.congestion.get_timer() if self.congestion else None)
                 if t is not None]
        return min(times) if times else None

    def handle_timer(self, *, now: float) -> list:
        """Unpark or flush the scheduler, tick the controller, then send if idle."""
        out: list = []
        t = self.scheduler.get_timer()
        if t is not None and t <= now:
            self.scheduler.handle_timer(now=now)
        if self.congestion is not None and self.congestion.get_timer() <= now:
            for eff in self.congestion.tick(now=now):
                self.effects.append((now, eff))
                if self.mitigate and isinstance(eff, SetClassRate):
                    self.scheduler.set_class_rate(eff.priority, eff.rate, now=now)
        self._pull(now, out)
        return out

    @handler(Start)
    def _on_start(self, event: Start, *, now: float) -> list:
        return []

    @handler(Submit)
    def _on_submit(self, event: Submit, *, now: float) -> list:
        out: list = [self.scheduler.submit(event.transfer, now=now)]
        self._pull(now, out)
        return out

    @handler(Cancel)
    def _on_cancel(self, event: Cancel, *, now: float) -> list:
        self.scheduler.complete(event.transfer_id, now=now)
        return []

    @handler(EgressIdle)
    def _on_idle(self, event: EgressIdle, *, now: float) -> list:
        self._idle = True
        out: list = []
        self._pull(now, out)
        return out

    @handler(RttSample)
    def _on_rtt(self, event: RttSample, *, now: float) -> list:
        if self.congestion is not None:
            self.congestion.on_rtt(event.rtt, now=now)
        return []

    def _pull(self, now: float, out: list) -> None:
        if not self._idle:
            return
        got = self.scheduler.next_send(now=now)
        if got is None:
            return
        transfer, size = got
        if self.congestion is not None and isinstance(self.scheduler, FairScheduler):
            self.congestion.on_sojourn(self.scheduler.last_sojourn, priority=transfer.priority,
                                       now=now)
        self._idle = False
        tid = transfer.transfer_id
        offset = self._offset.get(tid, 0)
        self._offset[tid] = offset + size
        out.append(SendSlice(self.sink, ChunkSlice(tid, b"", offset, size, transfer.size)))


_SENDER, _SINK = "sender", "sink"


def _bottleneck(link_rate: float, seed: int) -> Scenario:
    """The two-node mesh: sender -> sink over one ``link_rate`` link (header-free)."""
    topo = Topology()
    topo.add_node(_SENDER)
    topo.add_node(_SINK)
    topo.add_link(_SENDER, _SINK, 1.0, origin="sim", symmetric=True, latency=0.0,
                  bandwidth=float(link_rate), loss=0.0)
    return Scenario(topo, seed=seed, header_bytes=0)


class _Run:
    def __init__(self, workload: Workload, mode: str) -> None:
        if mode not in ("fair", "fifo"):
            raise ValueError(f"mode: expected 'fair' or 'fifo', got {mode!r}")
        self.sc = workload
        self.mesh = _bottleneck(workload.link_rate, workload.seed)
        self.sim = self.mesh.sim
        self.policy = build_policy(workload)
        sched = (
            FairScheduler(self.policy, now=0.0) if mode == "fair" else FifoBaseline(workload.chunk)
        )
        self.sender = BottleneckSender(sched, sink=_SINK)
        self.host = CoreHost(self.mesh.network, _SENDER, self.sender, port=1)
        self.host.start()
        self.mesh.network.bind_messages(_SINK, self.delivered)
        self.next_id = 0
        self.user_of: dict[int, str] = {}
        self.sent: dict[str, int] = {u.name: 0 for u in workload.users}
        self.offered: dict[str, int] = {u.name: 0 for u in workload.users}
        self.open: dict[str, list[int]] = {u.name: [] for u in workload.users}
        self.decisions: list[tuple[float, str, Decision]] = []
        self.snapshots: dict[float, tuple[dict[str, int], dict[int, int]]] = {}
        # bursty users: (arrival time, transfer id, size) and bytes delivered per transfer
        self.arrivals: dict[str, list[tuple[float, int, int]]] = {
            u.name: [] for u in workload.users
        }
        self.tsent: dict[int, int] = {}

    def submit(self, user: UserSpec, size: int) -> None:
        self.next_id += 1
        tid = self.next_id
        now = self.sim.now
        t = Transfer(tid, size, Principal(household=user.name), priority=user.priority)
        self.user_of[tid] = user.name
        (dec,) = [e for e in self.host.feed(Submit(t)) if isinstance(e, Decision)]
        self.decisions.append((now, user.name, dec))
        if dec.action != REFUSE:
            self.offered[user.name] += size
            if user.mode == "bursty":
                self.arrivals[user.name].append((now, tid, size))
                self.tsent[tid] = 0
            else:
                self.open[user.name].append(tid)

    def delivered(self, peer: str, piece: ChunkSlice) -> None:
        tid = piece.request_id
        self.sent[self.user_of[tid]] += piece.nbytes
        if tid in self.tsent:
            self.tsent[tid] += piece.nbytes

    def start_backlogged(self, user: UserSpec) -> None:
        for _ in range(user.flows):
            self.submit(user, _HUGE)

    def stop_user(self, user: UserSpec) -> None:
        for tid in self.open[user.name]:
            self.host.feed(Cancel(tid))
        self.open[user.name].clear()

    def bursty(self, user: UserSpec) -> None:
        if self.sim.now >= user.stop:
            return
        self.submit(user, user.burst)
        self.sim.schedule(self.sim.rng.expovariate(1.0 / user.gap), self.bursty, user)

    def snapshot(self) -> None:
        self.snapshots[self.sim.now] = (dict(self.sent), dict(self.tsent))


def _epochs(sc: Workload) -> list[tuple[float, float]]:
    cuts = {0.0, sc.duration}
    for u in sc.users:
        if u.mode == "backlogged":
            cuts.update(t for t in (u.start, u.stop) if 0 < t < sc.duration)
    points = sorted(cuts)
    return list(itertools.pairwise(points))


def run_scenario(scenario: Workload, scheduler: str = "fair") -> ScenarioResult:
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


def standard_scenarios(scale: float = 1.0) -> list[Workload]:
    """The issue's scenarios (equal, heavy vs light, weighted, 200 users, 1,000 flows,
    arriving/leaving); ``scale`` < 1 shortens them (tests), > 1 lengthens (benchmarks)."""
    r = 1.25e6  # 10 Mbit/s
    chunk = 16384
    dur = 40.0 * scale
    out = [
        Workload("equal", tuple(UserSpec(f"u{i}") for i in range(10)), r, dur, chunk),
        Workload(
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
        Workload(
            "guest-vs-member",
            tuple(UserSpec(f"m{i}", "member") for i in range(4))
            + tuple(UserSpec(f"g{i}", "guest") for i in range(4)),
            r,
            dur,
            chunk,
            classes={"member": {"weight": 2}, "guest": {"weight": 1}},
            seed=3,
        ),
        Workload(
            "200-users",
            tuple(UserSpec(f"b{i}", flows=1 + i % 3) for i in range(100))
            + tuple(UserSpec(f"l{i}", mode="bursty", burst=16384, gap=20.0) for i in range(100)),
            4 * r,
            dur * 1.5,
            chunk,
            seed=4,
        ),
        Workload(
            "1000-flows",
            tuple(UserSpec(f"h{i}", flows=1 + (i * 7) % 19) for i in range(100)),
            8 * r,
            dur * 1.5,
            chunk,
            seed=5,
        ),
        Workload(
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
    sc = Workload("congestion", (), link_rate, duration, chunk)
    mesh = _bottleneck(link_rate, seed)
    sim = mesh.sim
    sched = FairScheduler(build_policy(sc), now=0.0)
    ctl = CongestionController(link_rate, chunk=chunk, params=CongestionParams(), now=0.0)
    sender = BottleneckSender(sched, sink=_SINK, congestion=ctl, mitigate=mitigate)
    host = CoreHost(mesh.network, _SENDER, sender, port=1)
    host.start()
    queue = {"q": 0.0, "t": 0.0}
    pending: dict[int, tuple[float, int]] = {}  # od transfer -> (submitted, bytes left)
    lat: list[tuple[float, float]] = []
    ids = iter(range(1, 10**9))

    def capacity() -> float:
        return downstream if sim.now < drop_at else dropped

    def downstream_hop(peer: str, piece: ChunkSlice) -> None:
        # The slice enters the downstream FIFO fluid queue; its RTT sample
        # goes back to the sender's controller.
        cap = capacity()
        q = max(0.0, queue["q"] - cap * (sim.now - queue["t"])) + piece.nbytes
        queue["q"], queue["t"] = q, sim.now
        host.feed(RttSample(0.02 + q / cap))
        tid = piece.request_id
        if tid in pending:
            t0, left = pending[tid]
            left -= piece.nbytes
            if left <= 0:
                del pending[tid]
                lat.append((t0, sim.now + q / cap - t0))
            else:
                pending[tid] = (t0, left)

    mesh.network.bind_messages(_SINK, downstream_hop)

    def request() -> None:
        tid = next(ids)
        size = 4 * chunk
        pending[tid] = (sim.now, size)
        host.feed(Submit(Transfer(tid, size, Principal(household="reader"))))
        sim.schedule(sim.rng.expovariate(2.0), request)

    for i in range(3):
        host.feed(Submit(Transfer(next(ids), _HUGE, Principal(household=f"bulk{i}"),
                                  priority=BACKGROUND)))
    sim.schedule(0.0, request)
    sim.run(until=duration)
    effects = sender.effects

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
