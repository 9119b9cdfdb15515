"""A router's storage driver in the simulator: chunks by digest, in memory.

The real driver is the content store and catalog (:mod:`meshcore.content`);
this one keeps the same promises at simulation scale. It puts the slices of
each incoming chunk together, **verifies** the chunk (BLAKE2b-256 of its
bytes against its digest, when the simulation carries bytes; where sizes
stand in for bytes, a sender marked :attr:`SimStorage.corrupt` sends empty
bodies, which never verify), stages what verified, and carries out the
cache core's :class:`~meshcore.cache.StoreChunk` (keep) and
:class:`~meshcore.cache.FreeChunk` (delete) commands. Reads for outgoing
slices come from here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..kernels import blake2b_256
from ..router.events import ChunkArrived
from ..router.messages import ChunkSlice

__all__ = ["SimStorage"]


@dataclass(slots=True)
class _Incoming:
    size: int
    received: int = 0
    parts: list[bytes] = field(default_factory=list)
    intact: bool = True


class SimStorage:
    """Chunks held by one simulated router (see the module docstring).

    ``corrupt``: this router sends damaged bytes (a broken or lying node).
    """

    def __init__(self, *, corrupt: bool = False) -> None:
        self.corrupt = corrupt
        self.chunks: dict[bytes, bytes | None] = {}
        self.sizes: dict[bytes, int] = {}
        self.kept: set[bytes] = set()
        self._incoming: dict[tuple[str, int, bytes], _Incoming] = {}
        self.rejected = 0
        self.freed = 0

    # -- the cache core's commands ----------------------------------------------------

    def keep(self, digest: bytes, size: int, data: bytes | None = None) -> None:
        """``StoreChunk``: keep ``digest`` (given its bytes when it was published here)."""
        digest = bytes(digest)
        if digest not in self.chunks:
            self.chunks[digest] = data
            self.sizes[digest] = size
        self.kept.add(digest)

    def free(self, digest: bytes) -> None:
        """``FreeChunk``: delete ``digest``."""
        digest = bytes(digest)
        self.kept.discard(digest)
        if digest in self.sizes:
            del self.sizes[digest]
            self.chunks.pop(digest, None)
            self.freed += 1

    def __contains__(self, digest: object) -> bool:
        return digest in self.chunks

    @property
    def bytes_held(self) -> int:
        """Bytes of every chunk held (kept and staged)."""
        return sum(self.sizes.values())

    # -- slices -----------------------------------------------------------------------

    def read_slice(self, piece: ChunkSlice) -> ChunkSlice:
        """``piece`` with its bytes filled in from storage (damaged when ``corrupt``)."""
        data = self.chunks.get(bytes(piece.digest))
        if data is None:
            # Sizes stand in for bytes: a corrupt sender's slices carry an
            # empty body, which can never verify.
            if self.corrupt:
                return ChunkSlice(piece.request_id, piece.digest, piece.offset, piece.nbytes,
                                  piece.size, b"")
            return piece
        body = data[piece.offset : piece.offset + piece.nbytes]
        if self.corrupt and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        return ChunkSlice(piece.request_id, piece.digest, piece.offset, piece.nbytes,
                          piece.size, body)

    def receive_slice(self, peer: str, piece: ChunkSlice) -> ChunkArrived | None:
        """Take one slice from ``peer``; the :class:`ChunkArrived` when it completes a chunk.

        The chunk is verified before it is staged; a chunk that fails is
        dropped (counted in ``rejected``) and reported as not intact.
        """
        key = (peer, piece.request_id, bytes(piece.digest))
        inc = self._incoming.get(key)
        if inc is None:
            inc = self._incoming[key] = _Incoming(piece.size)
        if piece.offset != inc.received:
            inc.intact = False  # out of order or duplicated: the stream is broken
        inc.received = max(inc.received, piece.offset + piece.nbytes)
        if piece.data is not None:
            inc.parts.append(piece.data)
        if not piece.last:
            return None
        del self._incoming[key]
        digest = bytes(piece.digest)
        data = b"".join(inc.parts) if inc.parts else None
        intact = inc.intact and inc.received == piece.size
        if intact and data is not None:
            intact = len(data) == piece.size and blake2b_256(data) == digest
        if not intact:
            self.rejected += 1
            return ChunkArrived(peer, piece.request_id, digest, piece.size, False)
        if digest not in self.chunks:
            self.chunks[digest] = data
            self.sizes[digest] = piece.size
        return ChunkArrived(peer, piece.request_id, digest, piece.size, True)
