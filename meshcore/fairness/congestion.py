"""Congestion detection and mitigation: slow background first, restore when it clears.

Theory of operation
-------------------
Three detectors, each evaluated once per ``interval`` (``tick``):

* **Queueing delay in the scheduler** (CoDel, Nichols and Jacobson, "Controlling
  Queue Delay", ACM Queue 2012; RFC 8289): the *minimum* sojourn time of the
  chunks that left the scheduler during the last interval. A minimum above
  ``target`` means a standing queue that never drained for a whole interval
  (bursts pass, a standing queue does not). RFC 8289 uses 5 ms / 100 ms on
  Ethernet-class links and says the target must cover at least one
  maximum-size transmission at the link rate. Mesh links are 1-50 Mbit/s and
  the scheduler's unit is a chunk (up to 64 KiB: 0.5 s at 1 Mbit/s), so
  :func:`scaled_codel` stretches both: ``target = max(5 ms, 1.5 x chunk /
  link_rate)``, ``interval = max(100 ms, 10 x target)`` (the paper's ratio of
  interval to target is 20; 10 keeps reaction time reasonable on slow links).
* **RTT inflation** (LEDBAT, RFC 6817): ``base`` is the minimum RTT over the
  last 10 one-minute buckets (RFC 6817 section 3.4.2's base history); the
  queueing delay is the minimum RTT sample of the last interval minus
  ``base``; above ``rtt_target`` (100 ms, RFC 6817's TARGET) is congestion.
* **Losses and timeouts**: lost / sent over the last interval above
  ``loss_threshold`` (5%); a timeout counts as one lost of one sent.

**Mitigation** (one step per interval while any detector fires; AIMD, Chiu
and Jain 1989): halve the background class's rate cap (``decrease`` = 0.5),
starting from the link rate, down to ``min_rate``; once background is at its
floor, defer replication (an effect the node applies: no new replication
transfers); only then halve the on-demand cap, to ``min_rate``. Interactive
traffic is never capped.

**Recovery with hysteresis**: only after *every* detector has been clear for
``recover_after`` seconds (default 2 intervals, at least 1 s) does recovery
start, and it undoes the steps in reverse order, additively
(``increase`` bytes/s per interval, default link_rate / 10): on-demand first,
its cap removed when it reaches the link rate; then replication resumes; then
background rises to the link rate and is uncapped. A new congestion signal
stops the recovery and resumes the decrease where the rates are.

Effects are :class:`SetClassRate` (for ``FairScheduler.set_class_rate``) and
:class:`DeferReplication`. The controller never reads a clock: ``now`` comes in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core import Command, Event, Fact, dispatches, handler
from ..kernels import BACKGROUND, ON_DEMAND

__all__ = [
    "CongestionCleared",
    "CongestionController",
    "CongestionDetected",
    "CongestionParams",
    "DeferReplication",
    "LossSample",
    "RttSample",
    "SetClassRate",
    "SojournSample",
    "TransferTimedOut",
    "scaled_codel",
]


@dataclass(frozen=True, slots=True)
class SetClassRate(Command):
    """Command: cap priority class ``priority`` at ``rate`` bytes/s (None: remove the cap)."""

    priority: int
    rate: float | None


@dataclass(frozen=True, slots=True)
class DeferReplication(Command):
    """Command: stop (``defer=True``) or resume starting replication transfers."""

    defer: bool


@dataclass(frozen=True, slots=True)
class CongestionDetected(Fact):
    """Congestion began at ``at``; ``signals`` name the detectors that fired."""

    at: float
    signals: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CongestionCleared(Fact):
    """The congestion episode that began at ``since`` ended after ``duration`` seconds."""

    since: float
    duration: float


# -- events (the protocol's inputs) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class SojournSample(Event):
    """A chunk of class ``priority`` left the scheduler after ``sojourn`` seconds."""

    sojourn: float
    priority: int = ON_DEMAND


@dataclass(frozen=True, slots=True)
class RttSample(Event):
    """One RTT sample (seconds) on the path the link carries."""

    rtt: float


@dataclass(frozen=True, slots=True)
class LossSample(Event):
    """``lost`` of ``sent`` chunks or packets were lost since the last report."""

    lost: int
    sent: int


@dataclass(frozen=True, slots=True)
class TransferTimedOut(Event):
    """A request or transfer on this link timed out (one loss)."""


@dataclass(frozen=True, slots=True)
class CongestionParams:
    """Detector and AIMD parameters (seconds, bytes/s, fractions); see the module docstring.

    ``increase`` and ``min_rate`` of 0 mean "link_rate / 10" and "link_rate / 100".
    """

    delay_target: float = 0.005
    delay_interval: float = 0.100
    rtt_target: float = 0.100
    loss_threshold: float = 0.05
    decrease: float = 0.5
    increase: float = 0.0
    min_rate: float = 0.0
    recover_after: float = 0.0

    @classmethod
    def from_settings(cls, values: dict[str, float]) -> CongestionParams:
        """From ``FairnessSettings.congestion`` (keys as in ``[fairness.congestion]``)."""
        return cls(**values)


def scaled_codel(
    link_rate: float, chunk: int, *, target: float = 0.005, interval: float = 0.100
) -> tuple[float, float]:
    """CoDel ``(target, interval)`` in seconds for a link of ``link_rate`` bytes/s and a
    scheduler unit of ``chunk`` bytes: target >= 1.5 chunk transmissions, interval >= 10x."""
    if not (link_rate > 0 and math.isfinite(link_rate)):
        raise ValueError(f"link_rate: expected bytes/s > 0, got {link_rate!r}")
    t = max(target, 4 * chunk / link_rate)
    return t, max(interval, 10 * t)


@dispatches
class CongestionController:
    """Detectors plus AIMD mitigation for one node's outgoing link (sans-I/O).

    ``link_rate`` (bytes/s) is the capacity estimate rates start from;
    ``chunk`` the scheduler's chunk size (scales the CoDel target). Feed
    samples with ``handle`` (:class:`SojournSample`, :class:`RttSample`,
    :class:`LossSample`, :class:`TransferTimedOut`; or the ``on_*`` methods)
    and call ``handle_timer`` at ``get_timer()``: it returns
    :class:`SetClassRate` and :class:`DeferReplication` commands for the
    scheduler and :class:`CongestionDetected` / :class:`CongestionCleared` facts.
    """

    def __init__(
        self,
        link_rate: float,
        *,
        chunk: int = 65536,
        params: CongestionParams | None = None,
        now: float,
    ) -> None:
        p = params or CongestionParams()
        self.params = p
        self.link_rate = float(link_rate)
        self.target, self.interval = scaled_codel(
            link_rate, chunk, target=p.delay_target, interval=p.delay_interval
        )
        if not 0 < p.decrease < 1:
            raise ValueError(f"decrease: expected 0 < decrease < 1, got {p.decrease!r}")
        self.increase = p.increase or self.link_rate / 10
        self.min_rate = p.min_rate or self.link_rate / 100
        self.recover_after = p.recover_after or max(1.0, 2 * self.interval)
        self.bg_rate: float | None = None
        self.od_rate: float | None = None
        self.deferring = False
        self.congested = False
        self.signals: tuple[str, ...] = ()
        #: When congestion was first detected in the current episode (None if clear).
        self.detected_at: float | None = None
        self._clear_since: float | None = None
        self._next_tick = now + self.interval
        self._min_sojourn = math.inf
        self._min_rtt = math.inf
        self._rtt_hist: list[tuple[int, float]] = []  # (minute, min rtt) last 10
        self._lost = 0
        self._sent = 0
        self._hold_until = -math.inf
        #: Queueing delay (s) on the path in the last interval (min RTT - base), 0 if unknown.
        self.queue_delay = 0.0

    # ------------------------------------------------------------- samples

    def on_sojourn(self, sojourn: float, *, priority: int = ON_DEMAND, now: float) -> None:
        """A chunk of class ``priority`` left the scheduler after waiting ``sojourn`` seconds.

        Background chunks are ignored: bulk work waits in the scheduler by
        design (it is backlogged), so only people's traffic (interactive and
        on-demand) waiting is a congestion signal.
        """
        if priority == ON_DEMAND and self.od_rate is not None:
            # On-demand is capped by this controller: its waiting is our own
            # doing, not the link's, and counting it would cap it further
            # (a feedback loop that starves people's requests).
            return
        if priority < BACKGROUND and sojourn < self._min_sojourn:
            self._min_sojourn = sojourn

    def on_rtt(self, rtt: float, *, now: float) -> None:
        """One RTT sample (seconds) on the path this link carries."""
        if rtt < self._min_rtt:
            self._min_rtt = rtt
        minute = int(now // 60)
        hist = self._rtt_hist
        if hist and hist[-1][0] == minute:
            if rtt < hist[-1][1]:
                hist[-1] = (minute, rtt)
        else:
            hist.append((minute, rtt))
            while hist and hist[0][0] <= minute - 10:
                hist.pop(0)

    def on_loss(self, lost: int, sent: int, *, now: float) -> None:
        """``lost`` of ``sent`` chunks/packets were lost since the last report."""
        if lost < 0 or sent < lost:
            raise ValueError(f"lost, sent: expected 0 <= lost <= sent, got {lost}, {sent}")
        self._lost += lost
        self._sent += sent

    def on_timeout(self, *, now: float) -> None:
        """A request or transfer timed out (one loss)."""
        self._lost += 1
        self._sent += 1

    @property
    def base_rtt(self) -> float | None:
        """The LEDBAT base delay (min RTT of the last 10 minutes), None before any sample."""
        return min(r for _, r in self._rtt_hist) if self._rtt_hist else None

    # ------------------------------------------------------------- control

    def get_timer(self) -> float:
        """When ``handle_timer`` is due (seconds)."""
        return self._next_tick

    def handle_timer(self, *, now: float) -> list[Command | Fact]:
        """Evaluate the last interval; commands for the scheduler plus episode facts."""
        was, since = self.congested, self.detected_at
        out: list[Command | Fact] = list(self.tick(now=now))
        if self.congested and not was:
            out.append(CongestionDetected(now, self.signals))
        elif was and not self.congested and since is not None:
            out.append(CongestionCleared(since, now - since))
        return out

    @handler(SojournSample)
    def _on_sojourn_event(self, event: SojournSample, *, now: float) -> list:
        self.on_sojourn(event.sojourn, priority=event.priority, now=now)
        return []

    @handler(RttSample)
    def _on_rtt_event(self, event: RttSample, *, now: float) -> list:
        self.on_rtt(event.rtt, now=now)
        return []

    @handler(LossSample)
    def _on_loss_event(self, event: LossSample, *, now: float) -> list:
        self.on_loss(event.lost, event.sent, now=now)
        return []

    @handler(TransferTimedOut)
    def _on_timeout_event(self, event: TransferTimedOut, *, now: float) -> list:
        self.on_timeout(now=now)
        return []

    def _detect(self) -> tuple[str, ...]:
        signals = []
        if self._min_sojourn != math.inf and self._min_sojourn > self.target:
            signals.append("delay")
        base = self.base_rtt
        if self._min_rtt != math.inf and base is not None:
            self.queue_delay = self._min_rtt - base
            if self.queue_delay > self.params.rtt_target:
                signals.append("rtt")
        if self._sent and self._lost / self._sent > self.params.loss_threshold:
            signals.append("loss")
        self._min_sojourn = math.inf
        self._min_rtt = math.inf
        self._lost = self._sent = 0
        return tuple(signals)

    def tick(self, *, now: float) -> list[SetClassRate | DeferReplication]:
        """Evaluate the last interval's samples; returns the effects to apply (maybe none).

        Does nothing before ``get_timer()``.
        """
        if now < self._next_tick:
            return []
        self._next_tick = now + self.interval
        self.signals = self._detect()
        if self.signals:
            self._clear_since = None
            if not self.congested:
                self.congested = True
                self.detected_at = now
            return self._decrease(now)
        if self._clear_since is None:
            self._clear_since = now
        if self.congested and now - self._clear_since >= self.recover_after:
            self.congested = False
            self.detected_at = None
        if not self.congested:
            return self._recover()
        return []

    def _decrease(self, now: float) -> list[SetClassRate | DeferReplication]:
        d, floor = self.params.decrease, self.min_rate
        if self.bg_rate is None or self.bg_rate > floor:
            start = self.link_rate if self.bg_rate is None else self.bg_rate
            self.bg_rate = max(floor, start * d)
            return [SetClassRate(BACKGROUND, self.bg_rate)]
        if now < self._hold_until:
            return []
        # Let the path drain what is already queued before touching people's traffic:
        # hold for one interval or the measured queueing delay, whichever is longer.
        self._hold_until = now + max(self.interval, self.queue_delay)
        if not self.deferring:
            self.deferring = True
            return [DeferReplication(True)]
        if self.od_rate is None or self.od_rate > floor:
            start = self.link_rate if self.od_rate is None else self.od_rate
            self.od_rate = max(floor, start * d)
            return [SetClassRate(ON_DEMAND, self.od_rate)]
        return []

    def _recover(self) -> list[SetClassRate | DeferReplication]:
        if self.od_rate is not None:
            self.od_rate += self.increase
            if self.od_rate >= self.link_rate:
                self.od_rate = None
            return [SetClassRate(ON_DEMAND, self.od_rate)]
        if self.deferring:
            self.deferring = False
            return [DeferReplication(False)]
        if self.bg_rate is not None:
            self.bg_rate += self.increase
            if self.bg_rate >= self.link_rate:
                self.bg_rate = None
            return [SetClassRate(BACKGROUND, self.bg_rate)]
        return []
