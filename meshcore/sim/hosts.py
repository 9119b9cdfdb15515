"""Host a sans-I/O core on a simulated node: the simulator's side of the one host loop.

Theory of operation: :class:`CoreHost` gives a core (a
:class:`~meshcore.net.discovery.Discovery` alone, or a whole
:class:`~meshcore.router.Router`) the same :class:`~meshcore.host.HostLoop`
the daemon uses, with the simulator's clock and event queue in place of
``loop.time`` and ``loop.call_at``. Inputs become the core's events
(:class:`~meshcore.net.discovery.Datagram` for a datagram on the bound port,
:class:`~meshcore.router.events.MessageReceived` or, for the slices of a
chunk, :class:`~meshcore.router.events.ChunkArrived` once the node's storage
driver has put the chunk together and verified it); commands are carried out
on the :class:`~meshcore.sim.network.SimNetwork`:

* ``SendUnicast`` / ``SendMulticast`` → datagrams;
* ``SendMessage`` / ``SendSlice`` → :meth:`SimNetwork.send_message` (a slice's
  bytes are read from storage; when it leaves the first hop the host feeds
  ``EgressIdle``; a message whose path broke comes back as ``MessageFailed``);
* ``StoreChunk`` / ``FreeChunk`` → the node's :class:`~meshcore.sim.storage.SimStorage`.

Every other effect (facts, ``Deliver``, ``RequestRefused``...) goes to the
``on_effect(host, effect)`` hook and is kept in :attr:`CoreHost.effects`
when ``keep_effects`` is set. The host never inspects the core: the
protocol is the whole contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..cache import FreeChunk, StoreChunk
from ..host import SPIN_STEP, HostLoop
from ..net.discovery import Datagram, SendMulticast, SendUnicast, Start
from ..router.events import EgressIdle, MessageFailed, MessageReceived, SendMessage, SendSlice
from ..router.messages import ChunkSlice
from .engine import Timer
from .network import Addr, SimNetwork
from .storage import SimStorage

__all__ = ["SPIN_STEP", "CoreHost"]


class CoreHost:
    """Drive ``core`` on node ``node_id`` of ``network``, bound to UDP ``port``.

    ``on_effect(host, effect)`` receives the effects that are not carried out
    here. ``storage`` is the node's storage driver (a new :class:`SimStorage`
    by default). The host is idle until :meth:`start` (or :meth:`start_at`).
    ``spins`` counts timers the core re-requested at or before the instant it
    just handled (non-zero hints at a core bug). Raises KeyError for an
    unknown node, ValueError when the port is taken.
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
        storage: SimStorage | None = None,
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
        self.storage = storage if storage is not None else SimStorage()
        self.loop = HostLoop(core, clock=self._clock, call_at=self._call_at,
                             apply=self._apply_one)
        self.loop.running = False

    # -- the loop's clock ---------------------------------------------------------------

    def _clock(self) -> float:
        return self.sim.now

    def _call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return self.sim.schedule_at(when, callback)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self.loop.running

    @property
    def inputs(self) -> int:
        """Events and timer firings handed to the core so far."""
        return self.loop.inputs

    @property
    def spins(self) -> int:
        """Deadlines the core re-requested at the instant it had just handled."""
        return self.loop.spins

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Bind the port and the node's messages, feed the core :class:`Start`."""
        if self.running:
            return
        self.network.bind(self.node_id, self.port, self._on_datagram)
        self.network.bind_messages(self.node_id, self._on_message)
        self.loop.resume()
        self.loop.feed(Start())

    def start_at(self, at: float) -> Timer:
        """Schedule :meth:`start` at simulated time ``at``."""
        return self.sim.schedule_at(at, self.start)

    def stop(self) -> None:
        """Unbind and cancel the timer; the core is left as it is (a crash, not a goodbye)."""
        if not self.running:
            return
        self.loop.stop()
        self.network.unbind(self.node_id, self.port)
        self.network.unbind_messages(self.node_id)

    # -- inputs ----------------------------------------------------------------------

    def feed(self, event: Any) -> list[Any]:
        """Hand any event to the core (e.g. ``DaemonNeighbours``); returns its effects."""
        return self.loop.feed(event)

    def _on_datagram(self, data: bytes, src: Addr, interface: str | None, mcast: bool) -> None:
        if self.running:
            self.loop.feed(Datagram(data, src, interface, mcast))

    def _on_message(self, peer: str, message: Any) -> None:
        if not self.running:
            return
        if isinstance(message, ChunkSlice):
            arrived = self.storage.receive_slice(peer, message)
            if arrived is not None:
                self.loop.feed(arrived)
            return
        self.loop.feed(MessageReceived(peer, message))

    # -- effects -----------------------------------------------------------------------

    def _apply_one(self, effect: Any) -> None:
        net = self.network
        kind = type(effect)
        if kind is SendUnicast:
            net.send(self.node_id, self.port, tuple(effect.addr), effect.data)
        elif kind is SendMulticast:
            net.multicast(self.node_id, effect.interface, self.port, effect.data)
        elif kind is SendSlice:
            piece = self.storage.read_slice(effect.message)
            self._send(effect.peer, piece, egress=True)
        elif kind is SendMessage:
            self._send(effect.peer, effect.message, egress=False)
        elif kind is StoreChunk:
            self.storage.keep(effect.digest, effect.size)
        elif kind is FreeChunk:
            self.storage.free(effect.digest)
        else:
            if self.keep_effects:
                self.effects.append(effect)
            if self.on_effect is not None:
                self.on_effect(self, effect)

    def _send(self, peer: str, message: Any, *, egress: bool) -> None:
        left = [False]  # has the message left the first hop (the egress is free)?

        def sent() -> None:
            left[0] = True
            if self.running:
                self.loop.feed(EgressIdle())

        def failed(reason: str) -> None:
            if self.running:
                self.loop.feed(MessageFailed(peer, message))
                if egress and not left[0]:
                    self.loop.feed(EgressIdle())

        self.network.send_message(self.node_id, peer, message, message.wire_size,
                                  on_sent=sent if egress else None, on_failed=failed)

    def __repr__(self) -> str:
        return f"CoreHost({self.node_id!r}, port={self.port}, running={self.running})"
