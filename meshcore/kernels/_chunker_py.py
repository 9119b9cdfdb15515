"""Content-defined chunking, pure-Python twin (the executable specification).

FastCDC-style normalized chunking with a 64-bit gear hash (Xia et al., USENIX
ATC 2016; TPDS 2020). The algorithm, the gear table and the parameter rules
live in :mod:`meshcore.kernels._chunking` (theory of operation there); this
module is the reference scanner. The compiled ``_chunker_c`` must return
byte-identical chunks, fingerprints and cut points.

Per chunk, with ``j`` the offset of a byte inside the chunk, ``m = min_size``:

* ``j < m - 64``: skipped, never hashed;
* ``m - 64 <= j < m - 1``: hashed, never a cut (warm-up: the hash is reset
  to 0 at ``j = m - 64``, so from ``j = m - 1`` on it covers 64 bytes);
* ``j >= m - 1``: hashed, then the chunk is cut after byte ``j`` (length
  ``L = j + 1``) if ``fp & mask == 0``, with ``mask = mask_s`` while
  ``L < normal_size`` and ``mask_l`` after;
* ``L == max_size`` cuts regardless.

Slow by nature (tens of MB/s at best): it exists for machines without a
compiler and as the oracle of the differential tests.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

import xxhash

if TYPE_CHECKING:  # annotations only: the streaming twin runs without numpy
    from collections.abc import Buffer

    import numpy as np

from ._chunking import (
    GEAR,
    MASK64,
    WINDOW,
    Chunk,
    ChunkParams,
    byte_view,
    check_fingerprints,
    chunk_params,
)

__all__ = ["Chunker", "chunk_fingerprints", "cut_points"]

_xxh3_128 = xxhash.xxh3_128_digest


def _hash(seg: bytes, fp: int) -> int:
    """Fold every byte of ``seg`` into ``fp`` without testing (the warm-up)."""
    gear = GEAR
    for b in seg:
        fp = ((fp << 1) + gear[b]) & MASK64
    return fp


def _hash_until(seg: bytes, fp: int, mask: int) -> tuple[int, int]:
    """Fold ``seg`` into ``fp`` byte by byte; stop after the first byte where ``fp & mask == 0``.

    Returns ``(index of that byte or -1, fp)``.
    """
    gear = GEAR
    below = (mask ^ MASK64) + 1  # mask is high bits: fp & mask == 0  <=>  fp < below
    for i, b in enumerate(seg):
        fp = ((fp << 1) + gear[b]) & MASK64
        if fp < below:
            return i, fp
    return -1, fp


def _scan(p: ChunkParams, view: memoryview, start: int, stop: int, clen: int, fp: int):
    """Scan ``view[start:stop]`` for the chunk whose first ``clen`` bytes (hash ``fp``) are seen.

    Returns ``(end, clen, fp)``: ``end`` is the index in ``view`` just past the
    chunk's last byte when a cut was found (then ``clen``/``fp`` are
    meaningless), else -1 with ``clen``/``fp`` advanced over all of
    ``view[start:stop]``.
    """
    # Indices below are offsets inside the chunk; view index = start + (offset - clen).
    lim = min(p.max_size - clen, stop - start)  # bytes of view this chunk may take
    base = start - clen
    i = clen
    end = clen + lim
    warm = p.min_size - WINDOW
    if i < warm:
        i = min(warm, end)
    e = min(p.min_size - 1, end)
    if i < e:
        fp = _hash(view[base + i : base + e].tobytes(), fp)
        i = e
    for limit, mask in ((p.normal_size - 1, p.mask_s), (end, p.mask_l)):
        e = min(limit, end)
        if i < e:
            hit, fp = _hash_until(view[base + i : base + e].tobytes(), fp, mask)
            if hit >= 0:
                return base + i + hit + 1, 0, 0
            i = e
    if end == p.max_size:
        return base + end, 0, 0
    return -1, end, fp


class Chunker:
    """Streaming content-defined chunker (FastCDC-style gear hash, normalized chunking).

    ``min_size``, ``avg_size``, ``max_size`` are in bytes with
    ``64 <= min_size <= avg_size <= max_size <= 2**30``; ``normalization`` is
    0..3. ``fingerprints=False`` skips the xxh3-128 fingerprints (``None`` in
    each :class:`Chunk`). Raises TypeError/ValueError naming the bad argument.

    :meth:`feed` pieces of a stream, then :meth:`finish` it; chunks come out in
    order with absolute offsets. At most one incomplete chunk (< ``max_size``
    bytes) is held between calls, and bytes are hashed once, however the
    stream is split.
    """

    __slots__ = ("_buf", "_fingerprints", "_fp", "_offset", "_params")

    def __init__(
        self,
        min_size: int = 4096,
        avg_size: int = 16384,
        max_size: int = 65536,
        *,
        normalization: int = 2,
        fingerprints: bool = True,
    ) -> None:
        self._params = chunk_params(min_size, avg_size, max_size, normalization)
        self._fingerprints = check_fingerprints(fingerprints)
        self._buf = bytearray()  # the incomplete chunk, all of it already scanned
        self._fp = 0  # gear hash of the bytes scanned in the incomplete chunk
        self._offset = 0  # stream offset of the incomplete chunk's first byte

    @property
    def min_size(self) -> int:
        """Minimum chunk length in bytes (except the last chunk of a stream)."""
        return self._params.min_size

    @property
    def avg_size(self) -> int:
        """Configured average chunk length in bytes."""
        return self._params.avg_size

    @property
    def max_size(self) -> int:
        """Maximum chunk length in bytes."""
        return self._params.max_size

    @property
    def normalization(self) -> int:
        """Normalized-chunking level, 0..3."""
        return self._params.normalization

    @property
    def fingerprints(self) -> bool:
        """Whether chunks carry xxh3-128 fingerprints."""
        return self._fingerprints

    @property
    def buffered(self) -> int:
        """Bytes held for the incomplete chunk (always < ``max_size`` between calls)."""
        return len(self._buf)

    def _emit(self, out: list, data: bytes) -> None:
        fingerprint = _xxh3_128(data) if self._fingerprints else None
        out.append(Chunk(self._offset, len(data), fingerprint, data))
        self._offset += len(data)

    def feed(self, data: Buffer) -> list[Chunk]:
        """Add the next piece of the stream; return the chunks it completed, in order.

        ``data`` is any C-contiguous buffer (TypeError naming ``data`` otherwise).
        """
        view = byte_view(data)
        params = self._params
        buf = self._buf
        out: list[Chunk] = []
        pos = 0
        n = len(view)
        while pos < n:
            end, _, fp = _scan(params, view, pos, n, len(buf), self._fp)
            if end < 0:
                buf += view[pos:]
                self._fp = fp
                break
            if buf:
                buf += view[pos:end]
                chunk = bytes(buf)
                buf.clear()
            else:
                chunk = view[pos:end].tobytes()
            self._fp = 0
            self._emit(out, chunk)
            pos = end
        return out

    def finish(self) -> list[Chunk]:
        """End the stream: return the incomplete tail as one chunk (or nothing) and reset.

        The next :meth:`feed` starts a new stream at offset 0.
        """
        out: list[Chunk] = []
        if self._buf:
            self._emit(out, bytes(self._buf))
        self._buf = bytearray()
        self._fp = 0
        self._offset = 0
        return out

    def __repr__(self) -> str:
        p = self._params
        return (
            f"Chunker(min_size={p.min_size}, avg_size={p.avg_size}, max_size={p.max_size}, "
            f"normalization={p.normalization}, fingerprints={self._fingerprints})"
        )


def _ends(params: ChunkParams, view: memoryview):
    """Yield the END offset of each chunk of the whole buffer ``view``, in order."""
    pos = 0
    n = len(view)
    while pos < n:
        end, _, _ = _scan(params, view, pos, n, 0, 0)
        pos = n if end < 0 else end
        yield pos


def cut_points(
    data: Buffer,
    min_size: int = 4096,
    avg_size: int = 16384,
    max_size: int = 65536,
    *,
    normalization: int = 2,
) -> np.ndarray:
    """Chunk END offsets of one whole buffer, as a numpy int64 array.

    Exactly the boundaries of ``feed(data)`` + ``finish()``: the last element
    is ``len(data)`` (in bytes); empty input gives an empty array. Raises like
    :class:`Chunker` (TypeError/ValueError naming the argument).
    """
    params = chunk_params(min_size, avg_size, max_size, normalization)
    ends = array("q", _ends(params, byte_view(data)))
    import numpy  # only here: the streaming twin runs without numpy

    return numpy.array(ends, dtype=numpy.int64)


def chunk_fingerprints(
    data: Buffer,
    min_size: int = 4096,
    avg_size: int = 16384,
    max_size: int = 65536,
    *,
    normalization: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Chunk ends and xxh3-128 fingerprints of one whole buffer, without copying chunks.

    Returns ``(ends, fingerprints)``: ``ends`` is what :func:`cut_points`
    gives (numpy int64, END offsets in bytes); ``fingerprints`` is a
    C-contiguous numpy ``uint8`` array of shape ``(len(ends), 16)`` whose row
    ``i`` is ``xxhash.xxh3_128_digest`` of chunk ``i``'s bytes. Empty input
    gives shapes ``(0,)`` and ``(0, 16)``. Raises like :func:`cut_points`.
    """
    params = chunk_params(min_size, avg_size, max_size, normalization)
    view = byte_view(data)
    ends = array("q")
    fingerprints = bytearray()
    start = 0
    for end in _ends(params, view):
        fingerprints += _xxh3_128(view[start:end])  # a view: the chunk is not copied
        ends.append(end)
        start = end
    import numpy  # only here: the streaming twin runs without numpy

    rows = numpy.frombuffer(fingerprints, dtype=numpy.uint8).reshape(len(ends), 16)
    return numpy.array(ends, dtype=numpy.int64), rows.copy()
