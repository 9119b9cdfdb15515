"""Shared by both chunker twins (skeleton: the chunker helper fills this in)."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

__all__ = ["Chunk", "blake2b_256"]


class Chunk(NamedTuple):
    """One content-defined chunk (placeholder fields; see docs/kernels.md)."""

    offset: int
    length: int
    fingerprint: bytes | None
    data: bytes


def blake2b_256(data) -> bytes:
    """BLAKE2b with a 32-byte digest: the name of a chunk in the integrity layer."""
    return hashlib.blake2b(data, digest_size=32).digest()
