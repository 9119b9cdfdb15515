"""What a host tells a :class:`~meshcore.router.Router`, and what the router asks of its host.

Events (inputs) and commands (outputs) of the router as a whole; the cores'
own events (discovery's :class:`~meshcore.net.discovery.Datagram`, the
routes' :class:`~meshcore.net.routing.TopologyChanged`...) pass through the
router unchanged. Every host (the daemon, the simulator, a test) speaks
exactly this vocabulary; ``docs/architecture.md`` draws it.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from ..core import Command, Event, Fact
from ..identity import GUEST, Principal
from ..tiers import Tier
from .messages import Message

__all__ = [
    "ChunkArrived",
    "ClientRequest",
    "Deliver",
    "EgressIdle",
    "Holding",
    "ItemPublished",
    "MessageFailed",
    "MessageReceived",
    "RequestCompleted",
    "RequestRefused",
    "SendMessage",
    "SendSlice",
    "WallClock",
]


# -- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientRequest(Event):
    """A client of this router asks for item ``key`` (``request_id`` is the host's)."""

    request_id: int
    key: Hashable
    principal: Principal = GUEST


@dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """Node-to-node ``message`` from ``peer`` (authenticated by the host's transport)."""

    peer: str
    message: Message


@dataclass(frozen=True, slots=True)
class MessageFailed(Event):
    """``message`` to ``peer`` could not be delivered (no route, connection lost)."""

    peer: str
    message: Message


@dataclass(frozen=True, slots=True)
class ChunkArrived(Event):
    """The host put chunk ``digest`` (answer to ``request_id``) from ``peer`` together.

    ``intact`` says whether it matched its digest; when it did, the host's
    storage driver has already written it (staged: the cache decides next
    whether it is kept).
    """

    peer: str
    request_id: int
    digest: bytes
    size: int
    intact: bool


@dataclass(frozen=True, slots=True)
class EgressIdle(Event):
    """The router's outgoing link can take the next slice."""


@dataclass(frozen=True, slots=True)
class ItemPublished(Event):
    """The storage driver holds item ``key`` complete (published here, or found at start).

    ``pin`` keeps it regardless of popularity (this node's own and designated
    content); ``expires_at`` and ``pin_until`` are calendar seconds.
    """

    key: Hashable
    chunks: tuple[tuple[bytes, int], ...]
    pin: bool = False
    expires_at: float | None = None
    pin_until: float | None = None


@dataclass(frozen=True, slots=True)
class WallClock(Event):
    """The host read the wall clock: ``wall`` Unix seconds (see :mod:`meshcore.clock`)."""

    wall: float


# -- commands ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendMessage(Command):
    """Send ``message`` to router ``peer``."""

    peer: str
    message: Message


@dataclass(frozen=True, slots=True)
class SendSlice(Command):
    """Send the next slice of a chunk to ``peer``: read ``message``'s bytes from storage.

    ``message`` is a :class:`~meshcore.router.messages.ChunkSlice` whose
    ``data`` the host fills from its store (or leaves None in a simulation).
    When the slice has left, the host feeds :class:`EgressIdle`.
    """

    peer: str
    message: Message


@dataclass(frozen=True, slots=True)
class Deliver(Command):
    """Stream item ``key`` (``size`` bytes, from the store) to the client of ``request_id``."""

    request_id: int
    key: Hashable
    size: int
    tier: Tier


@dataclass(frozen=True, slots=True)
class RequestRefused(Command):
    """Answer the client of ``request_id`` with an error: ``reason`` (``"no-holder"``...)."""

    request_id: int
    key: Hashable
    reason: str


# -- facts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holding(Fact):
    """This node now holds (``held``) or no longer holds item ``key`` (``size`` bytes)."""

    node: str
    key: Hashable
    held: bool
    size: int = 0


@dataclass(frozen=True, slots=True)
class RequestCompleted(Fact):
    """A client request was served: ``nbytes`` from ``tier`` (``source``), in ``seconds``."""

    request_id: int
    key: Hashable
    tier: Tier
    source: str
    nbytes: int
    seconds: float
