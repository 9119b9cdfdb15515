"""The one host loop: input → ``core.handle`` → apply effects → arm ``core.get_timer()``.

Theory of operation (aioquic ``asyncio/protocol.py``; SimPy ``Environment``):
a host owns a core (any object following :class:`meshcore.core.Core`, usually
a :class:`meshcore.router.Router`), a clock, a way to call something at a
time, and an ``apply`` function that carries out one effect (a datagram on a
socket, bytes to a peer, a chunk written to disk; or its simulated
equivalent). :class:`HostLoop` is the part every host shares:

1. :meth:`HostLoop.feed` hands one event to ``core.handle(event, now=clock())``;
2. every effect returned goes to ``apply`` in order (an effect may feed
   further events: ``apply`` may call :meth:`feed` again, re-entrantly);
3. the core's deadline is re-armed: one pending timer at most, replaced when
   ``get_timer()`` moves, cancelled when it becomes None;
4. when the timer fires, ``core.handle_timer(now=clock())`` runs and its
   effects are applied the same way.

The asyncio daemon passes ``loop.time`` and ``loop.call_at``; the simulator
passes its simulated clock and ``Simulator.schedule_at``. Both get the same
loop, so what the simulator shows about a core is what the daemon runs.

A core that asks again for a deadline at or before the instant it has just
handled (a float-rounding mismatch between its deadline and its expiry test)
is nudged :data:`SPIN_STEP` seconds later, and counted in ``spins``: on a
real clock time moves on by itself; on a simulated clock it would spin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .core import Core

__all__ = ["SPIN_STEP", "HostLoop", "TimerHandle"]

#: Seconds a re-requested deadline is pushed (see the module docstring).
SPIN_STEP = 1e-6


class TimerHandle(Protocol):
    """What ``call_at`` returns: something with ``cancel()``."""

    def cancel(self) -> None:
        """Do not run the callback."""
        ...


class HostLoop:
    """Drive ``core``: feed events, apply effects, keep its one timer armed.

    ``clock()`` returns monotonic seconds; ``call_at(when, callback)``
    schedules ``callback()`` and returns a :class:`TimerHandle`; ``apply(effect)``
    carries out one effect. ``inputs`` counts events and timer firings.
    Nothing runs until :meth:`start` (or the first :meth:`feed`).
    """

    __slots__ = (
        "_apply",
        "_call_at",
        "_deadline",
        "_fired_at",
        "_timer",
        "clock",
        "core",
        "inputs",
        "running",
        "spins",
    )

    def __init__(
        self,
        core: Core,
        *,
        clock: Callable[[], float],
        call_at: Callable[[float, Callable[[], None]], TimerHandle],
        apply: Callable[[Any], None],
    ) -> None:
        self.core = core
        self.clock = clock
        self._call_at = call_at
        self._apply = apply
        self._timer: TimerHandle | None = None
        self._deadline: float | None = None
        self._fired_at: float | None = None
        self.inputs = 0
        self.spins = 0
        self.running = True

    def feed(self, event: Any) -> list[Any]:
        """Hand ``event`` to the core, apply its effects, re-arm; returns the effects."""
        if not self.running:
            return []
        self.inputs += 1
        effects = self.core.handle(event, now=self.clock())
        self.apply(effects)
        return effects

    def apply(self, effects: list[Any]) -> None:
        """Apply effects a core returned from a direct call, then re-arm the timer."""
        apply = self._apply
        for effect in effects:
            apply(effect)
        self.arm()

    def arm(self) -> None:
        """Re-arm the timer to ``core.get_timer()`` (after any input the host gave directly)."""
        if not self.running:
            return
        deadline = self.core.get_timer()
        if deadline == self._deadline and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is None:
            return
        now = self.clock()
        if deadline <= now and self._fired_at == now:
            self.spins += 1
            deadline = now + SPIN_STEP
        self._timer = self._call_at(max(deadline, now), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._deadline = None
        if not self.running:
            return
        self.inputs += 1
        now = self._fired_at = self.clock()
        try:
            self.apply(self.core.handle_timer(now=now))
        finally:
            self._fired_at = None

    def stop(self) -> None:
        """Cancel the timer and take no more input (a crash or a shutdown)."""
        self.running = False
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._deadline = None

    def resume(self) -> None:
        """Take input again after :meth:`stop` and re-arm the timer."""
        self.running = True
        self.arm()
