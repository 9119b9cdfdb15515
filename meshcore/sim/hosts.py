"""Run a sans-I/O core on a simulated node: the simulator's version of the daemon loop.

Theory of operation (aioquic ``asyncio/protocol.py``): every input goes into
the core (``start``, ``receive_datagram``, ``handle_timer``, or any other
method through :meth:`CoreHost.call`), the effects it returns are applied,
and then the core's next deadline (``get_timer()``) is armed again, replacing
the previous one. The same core object that runs in the real daemon runs
here, with the simulator's clock passed as ``now``.

Effects are recognised by shape, so any core can be hosted without the
simulator importing it: an effect with ``addr`` and ``data`` attributes is a
unicast (``SendUnicast``), one with ``interface`` and ``data`` a multicast on
that interface's segment (``SendMulticast``). Every other effect goes to the
``on_effect(host, effect)`` hook (e.g. ``PeerJoined`` for a scenario's
metrics) and is kept in :attr:`CoreHost.effects` when ``keep_effects`` is set.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .engine import Timer
from .network import Addr, SimNetwork

__all__ = ["SPIN_STEP", "CoreHost"]

#: Seconds a timer is pushed when a core asks again for a deadline it just
#: handled (see ``CoreHost.spins``): the real clock's progress, simulated.
SPIN_STEP = 1e-6


class CoreHost:
    """Drive ``core`` on node ``node_id`` of ``network``, bound to UDP ``port``.

    ``on_effect(host, effect)`` receives the effects that are not sends.
    The host is idle until :meth:`start` (or :meth:`start_at`). ``spins``
    counts timers the core re-requested at or before the instant it just
    handled (pushed by :data:`SPIN_STEP`; non-zero hints at a core bug). Raises
    KeyError for an unknown node, ValueError when the port is taken.
    """

    def __init__(
        self,
        network: SimNetwork,
        node_id: str,
        core: Any,
        *,
        port: int,
        on_effect: Callable[[CoreHost, Any], Any] | None = None,
        keep_effects: bool = False,
    ) -> None:
        if node_id not in network.index:
            raise KeyError(f"node_id: no node {node_id!r} in this network")
        self.network = network
        self.sim = network.sim
        self.node_id = node_id
        self.core = core
        self.port = port
        self.address: Addr = (network.address(node_id), port)
        self.on_effect = on_effect
        self.keep_effects = keep_effects
        self.effects: list[Any] = []
        self.running = False
        self.inputs = 0
        self.spins = 0
        self._timer: Timer | None = None
        self._deadline: float | None = None
        self._fired_at: float | None = None
        try:
            params = inspect.signature(core.receive_datagram).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            params = {}
        self._rich = "interface" in params and "via_multicast" in params

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Bind the port, call ``core.start(now=...)`` if it has one, apply its effects."""
        if self.running:
            return
        self.network.bind(self.node_id, self.port, self._on_datagram)
        self.running = True
        start = getattr(self.core, "start", None)
        effects = start(now=self.sim.now) if start is not None else []
        self._apply(effects)

    def start_at(self, at: float) -> Timer:
        """Schedule :meth:`start` at simulated time ``at``."""
        return self.sim.schedule_at(at, self.start)

    def stop(self) -> None:
        """Unbind and cancel the timer; the core is left as it is (a crash, not a goodbye)."""
        if not self.running:
            return
        self.running = False
        self.network.unbind(self.node_id, self.port)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._deadline = None

    # -- inputs ------------------------------------------------------------------

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``core.<method>(*args, now=<sim time>, **kwargs)`` and apply the effects.

        For inputs other than datagrams and timers (e.g. Discovery's
        ``set_daemon_neighbours``). A method that returns None (a setter) is
        fine; the timer is re-armed either way. Returns what the method returned.
        """
        result = getattr(self.core, method)(*args, now=self.sim.now, **kwargs)
        self._apply(result if isinstance(result, list) else [])
        return result

    def _on_datagram(self, data: bytes, src: Addr, interface: str | None, mcast: bool) -> None:
        if not self.running:
            return
        self.inputs += 1
        if self._rich:
            effects = self.core.receive_datagram(
                data, src, now=self.sim.now, interface=interface, via_multicast=mcast
            )
        else:
            effects = self.core.receive_datagram(data, src, now=self.sim.now)
        self._apply(effects)

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        if not self.running:
            return
        self.inputs += 1
        self._fired_at = self.sim.now
        try:
            self._apply(self.core.handle_timer(now=self.sim.now))
        finally:
            self._fired_at = None

    # -- effects -------------------------------------------------------------------

    def _apply(self, effects: Any) -> None:
        if effects:
            net = self.network
            for effect in effects:
                data = getattr(effect, "data", None)
                if data is not None and hasattr(effect, "addr"):
                    net.send(self.node_id, self.port, tuple(effect.addr), data)
                elif data is not None and hasattr(effect, "interface"):
                    net.multicast(self.node_id, effect.interface, self.port, data)
                else:
                    if self.keep_effects:
                        self.effects.append(effect)
                    if self.on_effect is not None:
                        self.on_effect(self, effect)
        self._arm()

    def _arm(self) -> None:
        if not self.running:
            return
        deadline = self.core.get_timer()
        if deadline == self._deadline and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            now = self.sim.now
            if deadline <= now and self._fired_at == now:
                # The core handled a timer at ``now`` and still wants one at or
                # before ``now`` (e.g. a float-rounding mismatch between its
                # deadline and its expiry test). On a real clock time moves on
                # and the retry succeeds; a simulated clock would spin forever.
                self.spins += 1
                deadline = now + SPIN_STEP
            self._timer = self.sim.schedule_at(max(deadline, now), self._on_timer)

    def __repr__(self) -> str:
        return f"CoreHost({self.node_id!r}, port={self.port}, running={self.running})"
