"""The fairness scheduler: every outgoing transfer of a node, host-fair, through the DRR kernel.

Theory of operation
-------------------
**Admission.** ``submit`` resolves the transfer's :class:`Principal` to a
class (policy.py), checks its quotas (REFUSE at the hard quota with the reason
and reset time, DEMOTE to the background class at the soft one) and queues it.
Locality plays no part: a transfer to a peer on the same segment gets exactly
the share of any other (libtorrent and Syncthing exempt "local" peers from
limits by default; here locality changes the route, never the share).

**Two-level fairness with one flat kernel per priority class.** CAKE's
per-host isolation (Høiland-Jørgensen et al., "Piece of CAKE", LANMAN 2018)
gives each host (a household, else user, else device, else peer node) an
equal share, weighted here by its class, and splits the host's share among
its flows. We get the same result from one flat DRR kernel
(``meshcore.kernels.DRRScheduler``, Shreedhar and Varghese 1995) whose flows
are transfers, each with weight::

    w(transfer) = weight(class of its host) / (active transfers of that host in
                  this priority class)

The weights of a host's transfers always sum to the host's weight, so in DRR's
byte shares (proportional to flow quanta) every backlogged host gets
``weight_h / sum of backlogged hosts' weights`` of the link, however many
transfers it opens, and its transfers split that equally. A transfer's
arrival or departure re-weights the other transfers of its host (O(transfers
of that host), a handful): cheaper on the per-decision hot path than a
two-level kernel (one host kernel plus per-host kernels would dequeue twice
and keep each host's flow non-empty by hand). The kernel rounds flow quanta
to whole bytes, ``max(1, round(quantum * w))``; with the default 64 KiB
quantum a host with 100 transfers loses under 1% to rounding.

**Strict priority** (interactive > on-demand > background) is one kernel per
class, served lowest number first, instead of the kernel's built-in classes:
congestion mitigation caps a class's rate (AIMD on background), and a capped
class must be *skipped* while lower classes are served, which one
strict-priority kernel cannot do.

**Items.** A transfer is sliced into chunks of at most ``chunk`` bytes. Each
transfer keeps at most two chunks in the kernel and the next one is enqueued
as one leaves, so a transfer's kernel flow never runs empty mid-transfer (an
emptied DRR flow loses its deficit and its place in the round) while memory
stays O(transfers), not O(bytes). The time a chunk entered the kernel gives
its **sojourn time** when it leaves (``last_sojourn``), the queueing delay the
CoDel-style detector watches.

**Rate caps.** A class with ``rate_down`` gives each of its hosts a token
bucket (accounting.TokenBucket; sends may go into debt, a chunk is never
split). A host in debt is *parked*: its transfers leave the kernel until the
debt is repaid, then rejoin (the time is in ``get_timer()``). Priority
classes may be capped too (``set_class_rate``, driven by congestion.py).

**Accounting** is batched off the hot path: bytes sent are charged to the
ledger (every principal of the identity, direction DOWN: the client receives)
when a transfer finishes and every ``flush_interval`` seconds (default 1 s);
quotas are therefore exact to within one flush interval of traffic. A flush
also re-checks active transfers: over the soft quota -> moved to background;
over the hard quota -> cancelled with a :class:`Refused` effect.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..clock import Calendar
from ..core import Command, Event, Fact, dispatches, handler
from ..identity import Account, Principal
from ..kernels import BACKGROUND, INTERACTIVE, ON_DEMAND, DRRScheduler
from .accounting import DOWN, TokenBucket, UsageLedger
from .policy import DEMOTE, REFUSE, Policy

__all__ = [
    "PRIORITIES",
    "Cancel",
    "Decision",
    "FairScheduler",
    "Pull",
    "Refused",
    "Submit",
    "Transfer",
    "Transmit",
]

#: Strict priority classes, highest first (the kernel's constants).
PRIORITIES = (INTERACTIVE, ON_DEMAND, BACKGROUND)
_INT64 = 2**63


def _in_debt(bucket: TokenBucket, tokens: float) -> bool:
    # Refilled at exactly the time get_timer() gave, a bucket can land a hair below
    # zero (epoch-second floats have ~0.2 us resolution): allow 1 byte + 1 us of rate.
    return tokens < -1.0 - bucket.rate * 1e-6


@dataclass(frozen=True, slots=True)
class Transfer:
    """An outgoing transfer: ``size`` bytes to the client ``identity``.

    ``transfer_id`` is the caller's int64 id (unique among active transfers);
    ``priority`` INTERACTIVE/ON_DEMAND/BACKGROUND; ``kind`` is free text
    ("content", "replication", ...); ``local`` says the peer is on the same
    segment and is deliberately **ignored** by the scheduler.
    """

    transfer_id: int
    size: int
    identity: Principal
    priority: int = ON_DEMAND
    kind: str = "content"
    local: bool = False


@dataclass(frozen=True, slots=True)
class Decision(Fact):
    """The answer to ``submit``: ``action`` is ALLOW, DEMOTE or REFUSE.

    ``priority`` is the class the transfer is served in (BACKGROUND when
    demoted; None when refused), ``reason``/``reset_at`` explain a DEMOTE or
    REFUSE (reset time in epoch seconds).
    """

    transfer_id: int
    action: str
    class_name: str
    priority: int | None
    reason: str = ""
    reset_at: float | None = None

    @property
    def accepted(self) -> bool:
        """True unless refused."""
        return self.action != REFUSE


@dataclass(frozen=True, slots=True)
class Refused(Fact):
    """An active transfer was cancelled at its hard quota (from a flush)."""

    transfer_id: int
    reason: str
    reset_at: float | None
    bytes_unsent: int


@dataclass(frozen=True, slots=True)
class Transmit(Command):
    """Send the next ``nbytes`` of ``transfer`` now (it waited ``sojourn`` seconds queued)."""

    transfer: Transfer
    nbytes: int
    sojourn: float


@dataclass(frozen=True, slots=True)
class Submit(Event):
    """Admit and queue ``transfer`` (:meth:`FairScheduler.submit`)."""

    transfer: Transfer


@dataclass(frozen=True, slots=True)
class Cancel(Event):
    """Forget active transfer ``transfer_id`` (:meth:`FairScheduler.complete`)."""

    transfer_id: int


@dataclass(frozen=True, slots=True)
class Pull(Event):
    """The egress can take one more slice: :meth:`FairScheduler.next_send` as a command."""


class _Host:
    __slots__ = ("bucket", "flows", "key", "parked_until", "weight")

    def __init__(self, key: tuple[Account, str], weight: float, bucket: TokenBucket | None):
        self.key = key
        self.weight = weight
        self.bucket = bucket
        # priority -> list of active transfer records of this host in that class
        self.flows: list[list[_Active]] = [[] for _ in PRIORITIES]
        self.parked_until: float | None = None


class _Active:
    __slots__ = (
        "host",
        "identity",
        "limit",
        "prio",
        "queued",
        "sent",
        "slot",
        "t0",
        "t1",
        "tid",
        "transfer",
        "unaccounted",
        "unqueued",
    )

    def __init__(self, transfer: Transfer, host: _Host, prio: int, slot: int) -> None:
        self.transfer = transfer
        self.tid = transfer.transfer_id
        self.limit = 1
        self.identity = transfer.identity
        self.host = host
        self.prio = prio
        self.slot = slot
        self.unqueued = transfer.size
        self.queued = 0
        self.sent = 0
        self.unaccounted = 0
        self.t0 = 0.0
        self.t1 = 0.0


def _check_transfer(transfer: object) -> Transfer:
    if not isinstance(transfer, Transfer):
        raise TypeError(f"transfer: expected a Transfer, got {type(transfer).__name__}")
    tid, size = transfer.transfer_id, transfer.size
    if isinstance(tid, bool) or not isinstance(tid, int) or not -_INT64 <= tid < _INT64:
        raise ValueError(f"transfer.transfer_id: expected an int64, got {tid!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"transfer.size: expected an integer >= 0 bytes, got {size!r}")
    if transfer.priority not in PRIORITIES:
        raise ValueError(
            f"transfer.priority: expected INTERACTIVE (0), ON_DEMAND (1) or BACKGROUND (2), "
            f"got {transfer.priority!r}"
        )
    return transfer


@dispatches
class FairScheduler:
    """Host-fair, class-weighted, strict-priority scheduler of outgoing transfers (sans-I/O).

    ``policy`` maps identities to classes and quotas; ``ledger`` receives the
    bytes sent (a new :class:`UsageLedger` on ``calendar`` when None);
    ``usage(principal, period)`` answers quota checks (default: this node's
    ledger; pass ``MeshUsage.usage`` for mesh-wide quotas). ``now`` is
    monotonic seconds (token buckets, flushes); quota periods and reset times
    are calendar time from ``calendar`` (:mod:`meshcore.clock`).

    Protocol (:mod:`meshcore.core`): ``handle`` takes :class:`Submit`
    (returns the :class:`Decision` fact), :class:`Cancel` and :class:`Pull`
    (returns one :class:`Transmit` command, or nothing when nothing may be
    sent now); ``handle_timer`` unparks rate-capped hosts and flushes the
    accounting (returning :class:`Refused` facts at a hard quota).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        ledger: UsageLedger | None = None,
        usage: Callable[[Account, str], int] | None = None,
        flush_interval: float = 1.0,
        min_chunk: int = 4096,
        now: float = 0.0,
        calendar: Calendar | None = None,
    ) -> None:
        settings = policy.settings
        self.policy = policy
        if ledger is None:
            ledger = UsageLedger(calendar)
        self.ledger = ledger
        self.calendar = ledger.calendar if calendar is None else calendar
        self._usage = usage
        self.chunk = settings.chunk
        self.quantum = settings.quantum
        #: Smallest slice (bytes) handed out, whatever the flow quantum.
        self.min_chunk = min(self.chunk, min_chunk)
        self._kernels = [DRRScheduler(quantum=self.quantum, num_classes=1) for _ in PRIORITIES]
        self._by_prio = tuple(enumerate(self._kernels))
        self._class_bucket: list[TokenBucket | None] = [None] * len(PRIORITIES)
        self._hosts: dict[tuple[Account, str], _Host] = {}
        self._by_id: dict[int, _Active] = {}
        self._slots: list[_Active | None] = []
        self._free: list[int] = []
        self._parked: list[_Host] = []
        self._wake = math.inf  # earliest parked_until
        self._effects: list[Refused] = []
        if not flush_interval > 0:
            raise ValueError(f"flush_interval: expected seconds > 0, got {flush_interval!r}")
        self.flush_interval = float(flush_interval)
        self._next_flush = float(now) + self.flush_interval
        #: Sojourn time (s) of the chunk last returned by ``next_send``.
        self.last_sojourn = 0.0

    # ------------------------------------------------------------ admission

    def _period_usage(self, principal: Account, period: str, now: float) -> int:
        if self._usage is not None:
            return self._usage(principal, period)
        return self.ledger.period_usage(principal, period, now=now)

    def submit(self, transfer: Transfer, *, now: float) -> Decision:
        """Admit and queue ``transfer``; the :class:`Decision` says how (or why not).

        Raises TypeError/ValueError for a malformed transfer or an id already active.
        """
        t = _check_transfer(transfer)
        if t.transfer_id in self._by_id:
            raise ValueError(f"transfer.transfer_id: {t.transfer_id} is already active")
        if now >= self._next_flush:
            self.flush(now=now)
        adm = self.policy.admit(
            t.identity,
            usage=lambda p, per: self._period_usage(p, per, now),
            wall=self.calendar.wall(now),
        )
        if adm.action == REFUSE:
            return Decision(t.transfer_id, REFUSE, adm.class_name, None, adm.reason, adm.reset_at)
        prio = BACKGROUND if adm.action == DEMOTE else t.priority
        host = self._host(t.identity, now)
        slot = self._free.pop() if self._free else len(self._slots)
        if slot == len(self._slots):
            self._slots.append(None)
        rec = _Active(t, host, prio, slot)
        self._slots[slot] = rec
        self._by_id[t.transfer_id] = rec
        if t.size == 0:  # nothing to send: done at once, never joins the kernel
            del self._by_id[t.transfer_id]
            self._slots[slot] = None
            self._free.append(slot)
        else:
            self._join(rec, now)
        return Decision(t.transfer_id, adm.action, adm.class_name, prio, adm.reason, adm.reset_at)

    def _host(self, identity: Principal, now: float) -> _Host:
        spec = self.policy.resolve(identity).spec
        key = (identity.host(), spec.name)
        host = self._hosts.get(key)
        if host is None:
            bucket = None
            if spec.rate_down is not None:
                bucket = TokenBucket(spec.rate_down, max(spec.burst, self.chunk), now=now)
            host = self._hosts[key] = _Host(key, spec.weight, bucket)
        return host

    # ------------------------------------------------------- kernel plumbing

    def _reweight(self, host: _Host, prio: int) -> None:
        """Give the host's transfers of ``prio`` equal parts of its weight (and slice size).

        Slices are no larger than a transfer's flow quantum (but >= min_chunk): each
        flow's unsent credit is under one slice, so a host's is under about one host
        quantum however many transfers it opens.
        """
        flows = host.flows[prio]
        if not flows:
            return
        w = host.weight / len(flows)
        limit = int(self.quantum * w)
        limit = self.min_chunk if limit < self.min_chunk else min(limit, self.chunk)
        for rec in flows:
            rec.limit = limit
        if host.parked_until is None:
            set_flow = self._kernels[prio].set_flow
            for rec in flows:
                set_flow(rec.slot, weight=w)

    def _fill(self, rec: _Active, now: float) -> None:
        """Top the transfer's kernel queue up to two chunks."""
        kernel = self._kernels[rec.prio]
        limit = rec.limit
        while rec.queued < 2 and rec.unqueued:
            size = limit if rec.unqueued > limit else rec.unqueued
            rec.unqueued -= size
            kernel.enqueue(rec.slot, size, rec.tid)
            if rec.queued == 0:
                rec.t0 = now
            else:
                rec.t1 = now
            rec.queued += 1

    def _join(self, rec: _Active, now: float) -> None:
        host = rec.host
        host.flows[rec.prio].append(rec)
        self._reweight(host, rec.prio)
        if host.parked_until is None:
            self._fill(rec, now)

    def _leave(self, rec: _Active) -> None:
        """Take ``rec`` out of its host and kernel (its unsent bytes are dropped)."""
        host = rec.host
        host.flows[rec.prio].remove(rec)
        kernel = self._kernels[rec.prio]
        if rec.slot in kernel:
            rec.unqueued += kernel.backlog(rec.slot)[1]
            kernel.remove_flow(rec.slot)
        rec.queued = 0
        self._reweight(host, rec.prio)

    def _queued_bytes(self, rec: _Active) -> int:
        kernel = self._kernels[rec.prio]
        return kernel.backlog(rec.slot)[1] if rec.slot in kernel else 0

    def _finish(self, rec: _Active, now: float) -> None:
        self._leave(rec)
        self._account(rec, now)
        del self._by_id[rec.transfer.transfer_id]
        self._slots[rec.slot] = None
        self._free.append(rec.slot)

    def _park(self, host: _Host, until: float) -> None:
        host.parked_until = until
        self._parked.append(host)
        if until < self._wake:
            self._wake = until
        for prio, flows in enumerate(host.flows):
            kernel = self._kernels[prio]
            for rec in flows:
                rec.unqueued += self._queued_bytes(rec)
                rec.queued = 0
                kernel.remove_flow(rec.slot)

    def _unpark(self, now: float) -> None:
        still = []
        for host in self._parked:
            if host.parked_until is not None and host.parked_until > now:
                still.append(host)
                continue
            host.parked_until = None
            for prio, flows in enumerate(host.flows):
                for rec in flows:
                    self._fill(rec, now)
                self._reweight(host, prio)
        self._parked = still
        self._wake = min((h.parked_until for h in still), default=math.inf)

    # ------------------------------------------------------------- hot path

    def next_send(self, *, now: float) -> tuple[Transfer, int] | None:
        """The next chunk to send as ``(transfer, chunk_bytes)``, or None (nothing sendable now).

        None with transfers still queued means every queued host or class is
        over its rate: call again at ``get_timer()``.
        """
        if now >= self._wake:
            self._unpark(now)
        if now >= self._next_flush:
            self.flush(now=now)
        buckets = self._class_bucket
        for prio, kernel in self._by_prio:
            if not kernel:
                continue
            bucket = buckets[prio]
            if bucket is not None and _in_debt(bucket, bucket.refill(now=now)):
                continue
            slot, _tag, size = kernel.dequeue()
            rec = self._slots[slot]
            self.last_sojourn = now - rec.t0
            rec.t0 = rec.t1
            rec.sent += size
            rec.unaccounted += size
            if bucket is not None:
                bucket.tokens -= size
            left = rec.unqueued
            if left:
                # unqueued > 0 means two slices were queued: one left, one goes in.
                n = rec.limit if left > rec.limit else left
                rec.unqueued = left - n
                kernel.enqueue(slot, n, rec.tid)
                rec.t1 = now
            else:
                rec.queued -= 1
                if not rec.queued:
                    self._finish(rec, now)
            hb = rec.host.bucket
            if hb is not None:
                wait = hb.consume(size, now=now)
                if wait > 0:
                    self._park(rec.host, now + wait)
            return rec.transfer, size
        return None

    def get_timer(self) -> float | None:
        """When ``handle_timer`` is due, or None: the next unpark of a rate-capped host
        or class, or the next accounting flush while transfers are active.

        Also when to call ``next_send`` again after it returned None with work queued.
        """
        times = [h.parked_until for h in self._parked if h.parked_until is not None]
        for prio, bucket in enumerate(self._class_bucket):
            if bucket is not None and self._kernels[prio] and _in_debt(bucket, bucket.tokens):
                times.append(bucket.last - bucket.tokens / bucket.rate)
        if self._by_id:
            times.append(self._next_flush)
        return min(times) if times else None

    def handle_timer(self, *, now: float) -> list[Refused]:
        """Unpark hosts whose rate debt is repaid and flush accounting when due."""
        if now >= self._wake:
            self._unpark(now)
        if now >= self._next_flush:
            return self.flush(now=now)
        return []

    def clock_stepped(self, old_wall: float, new_wall: float) -> int:
        """The calendar stepped: keep the current quota periods (``UsageLedger.carry_periods``)."""
        return self.ledger.carry_periods(old_wall, new_wall)

    @handler(Submit)
    def _on_submit(self, event: Submit, *, now: float) -> list[Decision]:
        return [self.submit(event.transfer, now=now)]

    @handler(Cancel)
    def _on_cancel(self, event: Cancel, *, now: float) -> list:
        self.complete(event.transfer_id, now=now)
        return []

    @handler(Pull)
    def _on_pull(self, event: Pull, *, now: float) -> list[Transmit]:
        got = self.next_send(now=now)
        if got is None:
            return []
        return [Transmit(got[0], got[1], self.last_sojourn)]

    # ------------------------------------------------------------ lifecycle

    def complete(self, transfer_id: int, *, now: float) -> int:
        """Forget an active transfer (finished elsewhere, failed or cancelled).

        Returns the bytes it had not sent (0 if it was not active: transfers
        leave by themselves once their last chunk is handed out).
        """
        rec = self._by_id.get(transfer_id)
        if rec is None:
            return 0
        self._finish(rec, now)
        return rec.unqueued

    def set_class_rate(self, priority: int, rate: float | None, *, now: float) -> None:
        """Cap a priority class at ``rate`` bytes/s (None removes the cap); for congestion.py."""
        if priority not in PRIORITIES:
            raise ValueError(f"priority: expected 0, 1 or 2, got {priority!r}")
        if rate is None:
            self._class_bucket[priority] = None
            return
        bucket = self._class_bucket[priority]
        if bucket is None:
            self._class_bucket[priority] = TokenBucket(rate, 2 * self.chunk, now=now)
        else:
            bucket.set_rate(rate, now=now)

    def class_rate(self, priority: int) -> float | None:
        """The current cap of a priority class in bytes/s (None: uncapped)."""
        bucket = self._class_bucket[priority]
        return None if bucket is None else bucket.rate

    def flush(self, *, now: float) -> list[Refused]:
        """Charge bytes sent to the ledger and re-check quotas of active transfers.

        Over the soft quota -> moved to background; over the hard quota ->
        cancelled, with a :class:`Refused` effect (also kept for ``drain_effects``).
        """
        self._next_flush = now + self.flush_interval
        for rec in list(self._by_id.values()):
            self._account(rec, now)
        out = []
        for rec in list(self._by_id.values()):
            adm = self.policy.admit(
                rec.identity,
                usage=lambda p, per: self._period_usage(p, per, now),
                wall=self.calendar.wall(now),
            )
            if adm.action == REFUSE:
                self._finish(rec, now)
                out.append(
                    Refused(rec.transfer.transfer_id, adm.reason, adm.reset_at, rec.unqueued)
                )
            elif adm.action == DEMOTE and rec.prio != BACKGROUND:
                self._leave(rec)
                rec.prio = BACKGROUND
                self._join(rec, now)
        self._effects.extend(out)
        return out

    def drain_effects(self) -> list[Refused]:
        """Effects produced by flushes since the last call."""
        out, self._effects = self._effects, []
        return out

    def _account(self, rec: _Active, now: float) -> None:
        n = rec.unaccounted
        if n:
            rec.unaccounted = 0
            cls = rec.host.key[1]
            for principal in rec.identity.accounts():
                self.ledger.record(principal, n, direction=DOWN, traffic_class=cls, now=now)

    # ------------------------------------------------------------- queries

    def __len__(self) -> int:
        """Active transfers (queued, parked or being sent)."""
        return len(self._by_id)

    def pending_bytes(self, priority: int | None = None) -> int:
        """Bytes not yet handed out, over all transfers or one priority class."""
        return sum(
            rec.unqueued + self._queued_bytes(rec)
            for rec in self._by_id.values()
            if priority is None or rec.prio == priority
        )

    def sent_bytes(self, transfer_id: int) -> int:
        """Bytes handed out for an active transfer; ValueError if it is not active."""
        rec = self._by_id.get(transfer_id)
        if rec is None:
            raise ValueError(f"transfer_id: {transfer_id} is not active")
        return rec.sent

    def priority_of(self, transfer_id: int) -> int:
        """The class an active transfer is served in; ValueError if it is not active."""
        rec = self._by_id.get(transfer_id)
        if rec is None:
            raise ValueError(f"transfer_id: {transfer_id} is not active")
        return rec.prio

    def host_weight(self, identity: Principal, priority: int = ON_DEMAND) -> float:
        """Sum of the kernel weights of the host's active transfers in ``priority``
        (equals the class weight while any is active; for tests and introspection)."""
        spec = self.policy.resolve(identity).spec
        host = self._hosts.get((identity.host(), spec.name))
        if host is None:
            return 0.0
        kernel = self._kernels[priority]
        return sum(kernel.weight(r.slot) for r in host.flows[priority] if r.slot in kernel)
