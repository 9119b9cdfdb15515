"""What both Bloom filter twins share: geometry, messages, wire formats.

The compiled kernel (``ext/bloom.pyx``) and the pure twin (``_bloom_py.py``)
differ only in their per-key and per-bit loops. Everything that must be the
same bit for bit on every node of a mesh lives here, once, so the two cannot
drift apart:

* geometry: the classic optimum for a target false-positive rate
  (m = ceil(-n ln p / (ln 2)^2), k = round(m/n ln 2); Bloom 1970, and the
  analysis in Broder & Mitzenmacher, "Network applications of Bloom filters",
  Internet Mathematics 1(4), 2004) and the limits on ``num_bits``,
  ``num_hashes`` and ``seed``;
* argument checking, with the messages both twins raise;
* the serialised filter (``MCBF``) and the XOR delta (``MCBD``), both closed by
  an XXH64 checksum, and their decoders, which raise
  :class:`~meshcore.errors.DecodeError` on any malformed input instead of
  returning a wrong filter;
* the count estimate of Swamidass & Baldi (J. Chem. Inf. Model. 47(3), 2007)
  and the false-positive rate that follows from it.

The byte layouts are specified in ``docs/kernels/bloom.md``.
"""

from __future__ import annotations

import math
import struct

import lz4.block
import xxhash

from ..errors import DecodeError
from ._args import as_int

__all__ = [
    "DELTA_HEADER",
    "DELTA_MAGIC",
    "FILTER_HEADER",
    "FILTER_MAGIC",
    "LZ4_MAX_INPUT",
    "MAX_BITS",
    "MAX_HASHES",
    "VERSION",
    "apply_delta_bits",
    "batch_shape",
    "check_geometry",
    "check_other",
    "check_out",
    "decode_filter",
    "encode_filter",
    "estimated_count",
    "geometry_for_capacity",
    "key_type_error",
    "make_delta",
    "nbytes_for",
    "noncontiguous_key_error",
    "theoretical_fpr",
]

MASK64 = 0xFFFFFFFFFFFFFFFF
#: num_bits must stay below this: 2**40 bits is a 128 GiB filter, far beyond a
#: router, and it keeps every byte offset inside a 64-bit integer with room.
MAX_BITS = 1 << 40
MAX_HASHES = 32
VERSION = 1

FILTER_MAGIC = b"MCBF"
DELTA_MAGIC = b"MCBD"
#: magic, version, num_hashes, flags, num_bits, seed (24 bytes).
FILTER_HEADER = struct.Struct("<4sBBHQQ")
#: the filter header, then XXH64 of the base bits and of the resulting bits (40 bytes).
DELTA_HEADER = struct.Struct("<4sBBHQQQQ")
CHECKSUM = struct.Struct("<Q")
#: the uncompressed size that lz4.block.compress(..., store_size=True) puts first.
LZ4_SIZE = struct.Struct("<I")
#: LZ4_MAX_INPUT_SIZE of liblz4: a delta cannot describe a bigger bit array.
LZ4_MAX_INPUT = 0x7E000000

_LN2 = math.log(2.0)
_LN2_SQUARED = _LN2 * _LN2


# -- arguments ---------------------------------------------------------------------------


def _int_arg(name: str, value, lo: int, hi: int, wanted: str) -> int:
    """``value`` as an int in ``[lo, hi]``, or TypeError/ValueError naming ``name``."""
    message = f"{name}: expected {wanted}, got {value!r}"
    number = as_int(value, message)
    if not lo <= number <= hi:
        raise ValueError(message)
    return number


def check_geometry(num_bits, num_hashes, seed) -> tuple[int, int, int]:
    """Validated ``(num_bits, num_hashes, seed)`` as Python ints.

    Raises TypeError (not an integer) or ValueError (out of range) naming the
    argument.
    """
    m = _int_arg("num_bits", num_bits, 1, MAX_BITS - 1, "an integer with 1 <= num_bits < 2**40")
    k = _int_arg("num_hashes", num_hashes, 1, MAX_HASHES, "an integer with 1 <= num_hashes <= 32")
    s = _int_arg("seed", seed, 0, MASK64, "an integer with 0 <= seed < 2**64")
    return m, k, s


def geometry_for_capacity(capacity, fpr) -> tuple[int, int]:
    """``(num_bits, num_hashes)`` that hold ``capacity`` keys at false-positive rate ``fpr``.

    m = ceil(-capacity * ln(fpr) / (ln 2)**2) and
    k = min(32, max(1, round(m / capacity * ln 2))) with IEEE doubles and
    round-half-even. Raises TypeError/ValueError naming ``capacity`` or ``fpr``.
    """
    n = as_int(capacity, f"capacity: expected an integer >= 1, got {capacity!r}")
    if n < 1:
        raise ValueError(f"capacity: expected an integer >= 1, got {capacity!r}")
    fpr_message = f"fpr: expected a number with 0 < fpr < 1, got {fpr!r}"
    if isinstance(fpr, bool | str | bytes):
        raise TypeError(fpr_message)
    try:
        p = float(fpr)
    except (TypeError, ValueError):
        raise TypeError(fpr_message) from None
    if not 0.0 < p < 1.0:  # also rejects nan
        raise ValueError(fpr_message)
    try:
        bits = -float(n) * math.log(p) / _LN2_SQUARED
    except OverflowError:
        bits = math.inf
    if not bits < MAX_BITS - 1:
        raise ValueError(
            f"capacity: {n} keys at fpr={p!r} need more than the maximum of 2**40 - 1 bits"
        )
    m = max(1, math.ceil(bits))
    k = min(MAX_HASHES, max(1, round(m / n * _LN2)))
    return m, k


def nbytes_for(num_bits: int) -> int:
    """Bytes of the bit array: whole 64-bit words, ceil(num_bits / 64) * 8."""
    return ((num_bits + 63) >> 6) << 3


def key_type_error(name: str, key) -> TypeError:
    """The TypeError for a key that is neither bytes-like nor str."""
    return TypeError(
        f"{name}: expected bytes, a bytes-like object or str, got {type(key).__name__}"
    )


def noncontiguous_key_error(name: str) -> TypeError:
    """The TypeError for a key whose buffer is not C-contiguous."""
    return TypeError(f"{name}: expected a C-contiguous buffer")


def _keys_error(keys) -> TypeError:
    return TypeError(
        "keys: expected a 2-D C-contiguous uint8 array or a sequence of keys, "
        f"got {type(keys).__name__}"
    )


def batch_shape(keys) -> tuple[int, int] | None:
    """``(rows, width)`` when ``keys`` is a 2-D uint8 buffer, None for a sequence of keys.

    A buffer must be 2-D, C-contiguous, with format ``"B"``; ``str`` and any
    other buffer (``bytes`` is not a batch of keys) raise TypeError naming
    ``keys``. Iterables, numpy object arrays included, are sequences of keys,
    checked key by key by the caller.
    """
    if isinstance(keys, str):
        raise _keys_error(keys)
    try:
        view = memoryview(keys)
    except TypeError:
        if not hasattr(keys, "__iter__"):
            raise _keys_error(keys) from None
        return None
    with view:
        if view.format == "O":  # a numpy object array: Python objects, one per key
            return None
        if view.ndim != 2 or view.format != "B" or not view.c_contiguous:
            raise TypeError(
                "keys: expected a 2-D C-contiguous uint8 array or a sequence of keys, "
                f"got a buffer with ndim={view.ndim}, format={view.format!r}, "
                f"c_contiguous={view.c_contiguous}"
            )
        rows, width = view.shape
    return rows, width


def check_out(out, rows: int) -> None:
    """Check that ``out`` can take ``rows`` results (``contains_many(..., out=)``).

    It must be a writable, C-contiguous 1-D buffer of bools or uint8 (format
    ``"?"`` or ``"B"``) of length ``rows``: TypeError otherwise (ValueError for
    a wrong length), naming ``out``.
    """
    try:
        view = memoryview(out)
    except TypeError:
        raise TypeError(
            f"out: expected a writable 1-D bool or uint8 array, got {type(out).__name__}"
        ) from None
    with view:
        if (
            view.ndim != 1
            or view.format not in ("?", "B")
            or view.readonly
            or not view.c_contiguous
        ):
            raise TypeError(
                "out: expected a writable 1-D C-contiguous bool or uint8 array, got a "
                f"buffer with ndim={view.ndim}, format={view.format!r}, "
                f"readonly={view.readonly}, c_contiguous={view.c_contiguous}"
            )
        if view.shape[0] != rows:
            raise ValueError(f"out: expected length {rows} (one per key), got {view.shape[0]}")


def check_other(name: str, cls: type, self_geometry: tuple, other) -> None:
    """TypeError unless ``other`` is a ``cls``; ValueError unless its geometry matches."""
    if not isinstance(other, cls):
        raise TypeError(f"{name}: expected a BloomFilter, got {type(other).__name__}")
    other_geometry = (other.num_bits, other.num_hashes, other.seed)
    if other_geometry != self_geometry:
        raise ValueError(
            f"{name}: geometry mismatch (num_bits/num_hashes/seed: "
            f"self {self_geometry[0]}/{self_geometry[1]}/{self_geometry[2]}, "
            f"{name} {other_geometry[0]}/{other_geometry[1]}/{other_geometry[2]})"
        )


# -- statistics --------------------------------------------------------------------------


def estimated_count(set_bits: int, num_bits: int, num_hashes: int) -> float:
    """Swamidass & Baldi: n* = -(m/k) ln(1 - X/m), ``inf`` when every bit is set."""
    if set_bits >= num_bits:
        return math.inf
    return -(num_bits / num_hashes) * math.log1p(-set_bits / num_bits)


def theoretical_fpr(n, num_bits: int, num_hashes: int) -> float:
    """(1 - e^(-k n / m))^k; ``n`` may be ``inf`` (then 1.0). ValueError naming ``n``."""
    message = f"n: expected a number >= 0, got {n!r}"
    if isinstance(n, bool | str | bytes):
        raise TypeError(message)
    try:
        count = float(n)
    except (TypeError, ValueError):
        raise TypeError(message) from None
    except OverflowError:
        count = math.inf
    if not count >= 0.0:  # also rejects nan
        raise ValueError(message)
    return (-math.expm1(-num_hashes * count / num_bits)) ** num_hashes


# -- the serialised filter: MCBF ---------------------------------------------------------


def _tail_is_clean(bits, num_bits: int) -> bool:
    """True when no bit at index >= num_bits is set (they live in the last word only)."""
    used = num_bits & 63
    if not used:
        return True
    last = int.from_bytes(bits[len(bits) - 8 :], "little")
    return last >> used == 0


def encode_filter(num_bits: int, num_hashes: int, seed: int, bits) -> bytes:
    """The ``MCBF`` serialisation: header, bit array, XXH64 (seed 0) of both."""
    body = FILTER_HEADER.pack(FILTER_MAGIC, VERSION, num_hashes, 0, num_bits, seed) + bytes(bits)
    return body + CHECKSUM.pack(xxhash.xxh64_intdigest(body))


def _buffer_arg(name: str, value) -> bytes:
    """The bytes of a C-contiguous bytes-like ``value``, or TypeError naming ``name``."""
    try:
        view = memoryview(value)
    except TypeError:
        raise TypeError(
            f"{name}: expected a bytes-like object, got {type(value).__name__}"
        ) from None
    with view:
        if not view.c_contiguous:
            raise TypeError(f"{name}: expected a C-contiguous buffer")
        return view.tobytes()


def decode_filter(buf) -> tuple[int, int, int, bytes]:
    """``(num_bits, num_hashes, seed, bits)`` from an ``MCBF`` serialisation.

    Raises DecodeError for a wrong magic, an unknown version, nonzero flags,
    num_hashes or num_bits out of range, a wrong total length, a checksum
    mismatch or set bits beyond num_bits; TypeError if ``buf`` is not bytes-like.
    """
    data = _buffer_arg("buf", buf)
    size = len(data)
    head = FILTER_HEADER.size
    if size < head:
        raise DecodeError(f"Bloom filter: truncated header ({size} bytes, need {head})")
    magic, version, k, flags, m, seed = FILTER_HEADER.unpack_from(data)
    if magic != FILTER_MAGIC:
        raise DecodeError(f"Bloom filter: bad magic {magic!r}, expected {FILTER_MAGIC!r}")
    if version != VERSION:
        raise DecodeError(f"Bloom filter: unsupported version {version} (this code reads 1)")
    if flags:
        raise DecodeError(f"Bloom filter: unknown flags 0x{flags:04x}")
    if not 1 <= k <= MAX_HASHES:
        raise DecodeError(f"Bloom filter: num_hashes {k} out of range 1..32")
    if not 1 <= m < MAX_BITS:
        raise DecodeError(f"Bloom filter: num_bits {m} out of range 1..2**40-1")
    expected = head + nbytes_for(m) + CHECKSUM.size
    if size != expected:
        raise DecodeError(
            f"Bloom filter: wrong length {size} bytes, expected {expected} for num_bits {m}"
        )
    (stored,) = CHECKSUM.unpack_from(data, size - CHECKSUM.size)
    if xxhash.xxh64_intdigest(data[: size - CHECKSUM.size]) != stored:
        raise DecodeError("Bloom filter: checksum mismatch (corrupt data)")
    bits = data[head : size - CHECKSUM.size]
    if not _tail_is_clean(bits, m):
        raise DecodeError(f"Bloom filter: bits set beyond num_bits {m}")
    return m, k, seed, bits


# -- the XOR delta: MCBD ------------------------------------------------------------------


def _xor(a, b) -> bytes:
    n = len(a)
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(n, "little")


def make_delta(num_bits: int, num_hashes: int, seed: int, base_bits, new_bits) -> bytes:
    """The ``MCBD`` delta that turns ``base_bits`` into ``new_bits``.

    Header, then base XOR new as an LZ4 block behind its 4-byte little-endian
    size (``lz4.block.compress(..., store_size=True)``), then XXH64 (seed 0)
    of everything before. Raises ValueError when the bit array is larger than
    one LZ4 block can hold.
    """
    if len(base_bits) > LZ4_MAX_INPUT:
        raise ValueError(
            f"newer: a delta holds at most {LZ4_MAX_INPUT} bytes of bits, "
            f"this filter has {len(base_bits)}"
        )
    payload = lz4.block.compress(_xor(base_bits, new_bits), store_size=True)
    body = (
        DELTA_HEADER.pack(
            DELTA_MAGIC,
            VERSION,
            num_hashes,
            0,
            num_bits,
            seed,
            xxhash.xxh64_intdigest(base_bits),
            xxhash.xxh64_intdigest(new_bits),
        )
        + payload
    )
    return body + CHECKSUM.pack(xxhash.xxh64_intdigest(body))


def apply_delta_bits(num_bits: int, num_hashes: int, seed: int, base_bits, delta) -> bytes:
    """The bit array after applying ``delta`` to ``base_bits`` (which is left alone).

    Raises DecodeError when the delta is malformed, corrupt, for another
    geometry, made from another base, or would yield a different result than
    its creator had; TypeError if ``delta`` is not bytes-like.
    """
    data = _buffer_arg("delta", delta)
    size = len(data)
    head = DELTA_HEADER.size
    if size < head + CHECKSUM.size:
        raise DecodeError(
            f"Bloom delta: truncated ({size} bytes, need at least {head + CHECKSUM.size})"
        )
    magic, version, k, flags, m, s, base_sum, result_sum = DELTA_HEADER.unpack_from(data)
    if magic != DELTA_MAGIC:
        raise DecodeError(f"Bloom delta: bad magic {magic!r}, expected {DELTA_MAGIC!r}")
    if version != VERSION:
        raise DecodeError(f"Bloom delta: unsupported version {version} (this code reads 1)")
    if flags:
        raise DecodeError(f"Bloom delta: unknown flags 0x{flags:04x}")
    (stored,) = CHECKSUM.unpack_from(data, size - CHECKSUM.size)
    if xxhash.xxh64_intdigest(data[: size - CHECKSUM.size]) != stored:
        raise DecodeError("Bloom delta: checksum mismatch (corrupt data)")
    if (m, k, s) != (num_bits, num_hashes, seed):
        raise DecodeError(
            "Bloom delta: geometry mismatch (num_bits/num_hashes/seed: "
            f"delta {m}/{k}/{s}, filter {num_bits}/{num_hashes}/{seed})"
        )
    if xxhash.xxh64_intdigest(base_bits) != base_sum:
        raise DecodeError("Bloom delta: made from a different base filter (base checksum mismatch)")
    nbytes = len(base_bits)
    payload = data[head : size - CHECKSUM.size]
    # Check the stored size before lz4 allocates it: a forged one could ask for 2 GiB.
    if len(payload) < LZ4_SIZE.size or LZ4_SIZE.unpack_from(payload)[0] != nbytes:
        raise DecodeError(f"Bloom delta: LZ4 payload does not hold {nbytes} bytes of bits")
    try:
        xor = lz4.block.decompress(payload)
    except Exception as exc:  # lz4.block.LZ4BlockError is not exported as a stable name
        raise DecodeError(f"Bloom delta: corrupt LZ4 payload ({exc})") from None
    if len(xor) != nbytes:
        raise DecodeError(f"Bloom delta: LZ4 payload holds {len(xor)} bytes, expected {nbytes}")
    result = _xor(base_bits, xor)
    if xxhash.xxh64_intdigest(result) != result_sum or not _tail_is_clean(result, num_bits):
        raise DecodeError("Bloom delta: result checksum mismatch (corrupt or forged delta)")
    return result
