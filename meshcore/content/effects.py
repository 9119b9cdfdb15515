"""Effects the content layer hands to the cache layer (sans-I/O: returned, never performed).

A scrub or a failed read finds a chunk that is corrupt or gone; the content
layer cannot fetch anything itself, so it returns :class:`RefetchChunk` and
the driver (meshcore/node, meshcore/sim) asks the cache layer to fetch the
chunk again from the cheapest holder.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RefetchChunk"]


@dataclass(frozen=True, slots=True)
class RefetchChunk:
    """Fetch chunk ``digest`` (BLAKE2b-256, 32 bytes) again; ``reason`` says why (for logs)."""

    digest: bytes
    reason: str
