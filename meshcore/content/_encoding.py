"""Byte-level helpers of the canonical manifest encoding: minimal LEB128 and a strict reader.

Every length is an unsigned LEB128 varint in its shortest form (a non-minimal
form such as ``0x80 0x00`` for zero is rejected: two spellings of one value
would give one manifest two content ids). Integers that are not lengths are
fixed-width big-endian, so they have one spelling by construction.
docs/content/format.md describes the layout byte by byte.
"""

from __future__ import annotations

from meshcore.errors import DecodeError

__all__ = ["MAX_VARINT", "Reader", "encode_varint"]

#: Largest length a varint may carry here (5 bytes of LEB128 hold 35 bits; we cap at 2**32 - 1).
MAX_VARINT = 2**32 - 1


def encode_varint(value: int) -> bytes:
    """Shortest unsigned LEB128 of ``0 <= value <= MAX_VARINT`` (ValueError otherwise)."""
    if not 0 <= value <= MAX_VARINT:
        raise ValueError(f"varint: {value} is outside 0..{MAX_VARINT}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Reader:
    """A cursor over a bytes-like object that raises :class:`DecodeError` naming the offset.

    ``what`` prefixes every message (``"manifest"``), so an operator reading a
    log knows which object and which byte were bad.
    """

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self.data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self.pos = 0
        self.what = what

    def error(self, problem: str, at: int | None = None) -> DecodeError:
        """A DecodeError ``"<what>: byte <offset>: <problem>"``."""
        return DecodeError(f"{self.what}: byte {self.pos if at is None else at}: {problem}")

    @property
    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return len(self.data) - self.pos

    def take(self, n: int, field: str) -> bytes:
        """The next ``n`` bytes (DecodeError if fewer remain)."""
        if n > self.remaining:
            raise self.error(f"{field}: needs {n} bytes, only {self.remaining} left (truncated)")
        start = self.pos
        self.pos += n
        return bytes(self.data[start : self.pos])

    def u8(self, field: str) -> int:
        """One unsigned byte."""
        if self.remaining < 1:
            raise self.error(f"{field}: truncated")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self, field: str) -> int:
        """A minimal unsigned LEB128 no larger than MAX_VARINT."""
        start = self.pos
        value = 0
        shift = 0
        while True:
            if self.remaining < 1:
                raise self.error(f"{field}: truncated length", start)
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 28:
                raise self.error(f"{field}: length varint longer than 5 bytes", start)
        if value > MAX_VARINT:
            raise self.error(f"{field}: length {value} exceeds {MAX_VARINT}", start)
        if self.pos - start > 1 and byte == 0:
            raise self.error(f"{field}: length varint is not in its shortest form", start)
        return value
