"""Shared by both chunker twins: the ``Chunk`` type, the gear table, parameters and messages.

Theory of operation (FastCDC, Xia et al., USENIX ATC 2016, and the 2020 IEEE
TPDS extension "The Design of Fast Content-Defined Chunking for Data
Deduplication Based Storage Systems"):

* A gear hash rolls over the stream one byte at a time,
  ``fp = ((fp << 1) + GEAR[byte]) mod 2**64``. The shift pushes each byte's
  contribution up one bit per step, so after 64 bytes it has left the word:
  ``fp`` is a function of the last 64 bytes only (a 64-byte sliding window
  for free). Bit ``j`` depends on the last ``j + 1`` bytes, so the cut test
  looks at the HIGH bits (the ones that see the whole window).
* A chunk ends at the first candidate length ``L`` (``min_size <= L``) where
  ``fp & mask == 0``, ``fp`` being the gear hash of the chunk's last 64 bytes.
  The first ``min_size - 64`` bytes of a chunk are never hashed (FastCDC's
  cut-point skipping); the next 63 bytes warm the hash up so that even the
  first candidate sees a full 64-byte window, which makes every cut decision a
  function of the 64 bytes before it and nothing else.
* Normalized chunking: below ``normal_size`` the mask has ``bits +
  normalization`` one-bits (cuts are rarer), from ``normal_size`` on it has
  ``bits - normalization`` (cuts are likelier), squeezing the size
  distribution around the average. ``normal_size`` sits below ``avg_size`` by
  a per-level fraction of ``avg_size - min_size`` so that the mean chunk size
  lands near ``avg_size`` (see :func:`expected_chunk_size` and
  docs/kernels/chunker.md for the table of expected means).
* ``max_size`` bytes without a cut force one; the last chunk of a stream is
  whatever is left (possibly shorter than ``min_size``).

Everything here is plain Python shared by the compiled module and the pure
twin, so both raise the same exceptions with the same messages and use the
very same gear table and masks.
"""

from __future__ import annotations

import hashlib
import math
import operator
from typing import NamedTuple

__all__ = [
    "GEAR",
    "GEAR_SEED",
    "MASK64",
    "MAX_SIZE_LIMIT",
    "MIN_SIZE_LIMIT",
    "NORMAL_FRACTION_16THS",
    "WINDOW",
    "Chunk",
    "ChunkParams",
    "blake2b_256",
    "byte_view",
    "check_fingerprints",
    "chunk_params",
    "expected_chunk_size",
    "high_mask",
]

MASK64 = 0xFFFFFFFFFFFFFFFF
#: Bytes that influence one gear-hash value (64-bit word, one shift per byte).
WINDOW = 64
#: Smallest allowed ``min_size``: the hash needs a full window before the first candidate.
MIN_SIZE_LIMIT = WINDOW
#: Largest allowed ``max_size`` (1 GiB): keeps one chunk addressable on 32-bit routers.
MAX_SIZE_LIMIT = 1 << 30
#: ASCII "meshcore" read as a big-endian integer: the splitmix64 seed of the gear table.
GEAR_SEED = 0x6D657368636F7265
#: ``normal_size = min + ((avg - min) * NORMAL_FRACTION_16THS[level]) // 16`` per level.
NORMAL_FRACTION_16THS = (16, 8, 12, 14)


def _splitmix64(seed: int, count: int) -> tuple[int, ...]:
    """``count`` outputs of Vigna's splitmix64 starting from ``seed`` (all 64-bit)."""
    out = []
    state = seed & MASK64
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out.append(z ^ (z >> 31))
    return tuple(out)


#: The 256 random 64-bit gear values, ``GEAR[b]`` for byte value ``b``. Changing
#: it changes every chunk boundary (and so every chunk name): it is frozen.
GEAR: tuple[int, ...] = _splitmix64(GEAR_SEED, 256)


class Chunk(NamedTuple):
    """One content-defined chunk of a stream.

    ``offset`` and ``length`` are in bytes (``offset`` from the start of the
    stream); ``fingerprint`` is ``xxhash.xxh3_128_digest(data)`` (16 bytes,
    canonical big-endian), or None when the chunker runs with
    ``fingerprints=False``; ``data`` is the chunk's bytes.
    """

    offset: int
    length: int
    fingerprint: bytes | None
    data: bytes


def blake2b_256(data) -> bytes:
    """BLAKE2b with a 32-byte digest: the name of a chunk in the integrity layer.

    ``data`` is any bytes-like object; raises TypeError otherwise (hashlib's message).
    """
    return hashlib.blake2b(data, digest_size=32).digest()


class ChunkParams(NamedTuple):
    """Validated chunking parameters and the values derived from them (sizes in bytes)."""

    min_size: int
    avg_size: int
    max_size: int
    normalization: int
    #: ``round(log2(avg_size))``: one-bits of the mask without normalization.
    bits: int
    #: Candidate lengths ``L < normal_size`` use ``mask_s``, ``L >= normal_size`` use ``mask_l``.
    normal_size: int
    mask_s: int
    mask_l: int


def high_mask(ones: int) -> int:
    """A 64-bit mask whose ``ones`` HIGHEST bits are set (``0 < ones < 64``)."""
    return ((1 << ones) - 1) << (64 - ones)


def _round_log2(n: int) -> int:
    """``round(log2(n))`` for an integer ``n >= 1``, exactly (no floating point).

    ``2**(b + 0.5)`` is irrational, so ``n`` never ties: compare ``n**2`` with ``2**(2b+1)``.
    """
    b = n.bit_length() - 1
    return b + 1 if n * n > 1 << (2 * b + 1) else b


def _as_int(value, name: str) -> int:
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    return operator.index(value)


def chunk_params(min_size, avg_size, max_size, normalization) -> ChunkParams:
    """Validate the chunker's arguments and derive masks and the switch point.

    Raises TypeError when an argument is not an integer and ValueError unless
    ``64 <= min_size <= avg_size <= max_size <= 2**30`` and ``normalization``
    is one of 0, 1, 2, 3. Messages name the argument(s).
    """
    mn = _as_int(min_size, "min_size")
    avg = _as_int(avg_size, "avg_size")
    mx = _as_int(max_size, "max_size")
    nc = _as_int(normalization, "normalization")
    if not MIN_SIZE_LIMIT <= mn <= avg <= mx <= MAX_SIZE_LIMIT:
        raise ValueError(
            "min_size, avg_size, max_size: expected "
            f"{MIN_SIZE_LIMIT} <= min <= avg <= max <= {MAX_SIZE_LIMIT}, got {mn}, {avg}, {mx}"
        )
    if not 0 <= nc <= 3:
        raise ValueError(f"normalization: expected an integer in 0..3, got {nc}")
    bits = _round_log2(avg)  # 6..30, so bits - nc >= 3 and bits + nc <= 33
    normal = mn + ((avg - mn) * NORMAL_FRACTION_16THS[nc]) // 16
    return ChunkParams(mn, avg, mx, nc, bits, normal, high_mask(bits + nc), high_mask(bits - nc))


def check_fingerprints(fingerprints) -> bool:
    """Validate the ``fingerprints`` flag: a bool, else TypeError naming it."""
    if not isinstance(fingerprints, bool):
        raise TypeError(f"fingerprints: expected a bool, got {type(fingerprints).__name__}")
    return fingerprints


_EMPTY = memoryview(b"")


def byte_view(data) -> memoryview:
    """``data`` as a flat memoryview of unsigned bytes, without copying.

    Accepts any C-contiguous buffer (bytes, bytearray, memoryview, array,
    numpy arrays of any dtype: their raw bytes, as hashlib reads them).
    Raises TypeError naming ``data`` for anything else.
    """
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"data: expected a C-contiguous bytes-like object, got {type(data).__name__}"
        ) from None
    if not view.c_contiguous:
        raise TypeError("data: expected a C-contiguous bytes-like object, got a strided buffer")
    if view.nbytes == 0:
        return _EMPTY
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view


def expected_chunk_size(min_size=4096, avg_size=16384, max_size=65536, normalization=2) -> float:
    """Analytic mean chunk length in bytes on random data (an infinite stream, no tail).

    Each candidate length ``L`` cuts independently with probability
    ``2**-(bits+nc)`` below ``normal_size`` and ``2**-(bits-nc)`` from it on;
    ``E[L] = min + sum over L in [min, max) of P(no cut at any length <= L)``.
    Raises like :func:`chunk_params`.
    """
    p = chunk_params(min_size, avg_size, max_size, normalization)
    keep_s = 1.0 - 2.0 ** -(p.bits + p.normalization)
    keep_l = 1.0 - 2.0 ** -(p.bits - p.normalization)
    n_small = p.normal_size - p.min_size  # candidates L in [min, normal)
    n_large = p.max_size - p.normal_size  # candidates L in [normal, max)
    # Geometric sums sum_{j=1..n} q**j; expm1/log1p keep precision for q close to 1.
    small = keep_s * -math.expm1(n_small * math.log1p(-(1.0 - keep_s))) / (1.0 - keep_s)
    survive = keep_s**n_small
    large = survive * keep_l * -math.expm1(n_large * math.log1p(-(1.0 - keep_l))) / (1.0 - keep_l)
    return p.min_size + small + large
