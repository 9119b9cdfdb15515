"""Node-to-node messages of the content path (sans-I/O values).

These are the requests and answers routers exchange to move an item: which
chunks make it up, and the chunks themselves. The simulator carries them as
objects over simulated links, charging :attr:`Message.wire_size` bytes; the
daemon's transport (``docs/node.md``) carries the same exchanges over
authenticated HTTP between routers. Every message names the ``request_id``
its answer refers to, so answers can arrive in any order.

Chunk bodies travel as **slices**: the sender's fair scheduler hands out a
transfer a slice at a time (:class:`~meshcore.fairness.scheduler.Transmit`),
each slice is a :class:`ChunkSlice` of ``nbytes`` body bytes, and the
receiver's host puts the slices of one chunk together, verifies the chunk
against its digest and stores it before it tells its router
(:class:`~meshcore.router.events.ChunkArrived`). ``data`` is None in
simulations that model sizes, not bytes.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

__all__ = [
    "HEADER_BYTES",
    "ChunkRequest",
    "ChunkSlice",
    "ChunkUnavailable",
    "ItemInfo",
    "ItemQuery",
    "Message",
]

#: Bytes a message's header takes on the wire (request line, authentication
#: tag, ids): an estimate used by the simulator; the real transport measures.
HEADER_BYTES = 96


class Message:
    """Base class of node-to-node messages; ``wire_size`` is bytes on the wire."""

    __slots__ = ()

    @property
    def wire_size(self) -> int:
        """Bytes this message occupies on a link (header included)."""
        return HEADER_BYTES


@dataclass(frozen=True, slots=True)
class ItemQuery(Message):
    """Which chunks make up item ``key``? (answered by :class:`ItemInfo`)."""

    request_id: int
    key: Hashable


@dataclass(frozen=True, slots=True)
class ItemInfo(Message):
    """Item ``key`` is made of ``chunks`` ``(digest, size)``; ``found`` False: not held."""

    request_id: int
    key: Hashable
    chunks: tuple[tuple[bytes, int], ...] = ()
    found: bool = True
    expires_at: float | None = None

    @property
    def wire_size(self) -> int:
        """Header plus 40 bytes per chunk (a 32-byte digest and a size)."""
        return HEADER_BYTES + 40 * len(self.chunks)


@dataclass(frozen=True, slots=True)
class ChunkRequest(Message):
    """Send chunk ``digest`` (``size`` bytes) in traffic class ``priority``."""

    request_id: int
    digest: bytes
    size: int
    priority: int = 1


@dataclass(frozen=True, slots=True)
class ChunkSlice(Message):
    """Bytes ``offset .. offset + nbytes`` of chunk ``digest`` (``size`` bytes in all)."""

    request_id: int
    digest: bytes
    offset: int
    nbytes: int
    size: int
    data: bytes | None = None

    @property
    def last(self) -> bool:
        """True for the slice that completes the chunk."""
        return self.offset + self.nbytes >= self.size

    @property
    def wire_size(self) -> int:
        """The body bytes, plus the header on the first slice (one response per chunk)."""
        return self.nbytes + (HEADER_BYTES if self.offset == 0 else 0)


@dataclass(frozen=True, slots=True)
class ChunkUnavailable(Message):
    """The peer will not send chunk ``digest``: ``reason`` says why."""

    request_id: int
    digest: bytes
    reason: str
