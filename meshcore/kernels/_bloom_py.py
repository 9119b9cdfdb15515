"""Bloom filter, pure-Python twin: the executable specification of ``ext/bloom.pyx``.

Theory of operation
-------------------
A Bloom filter (B. H. Bloom, "Space/time trade-offs in hash coding with
allowable errors", CACM 13(7), 1970) is an array of ``m`` bits and ``k``
probe positions per key. Adding a key sets its ``k`` bits; a lookup answers
"maybe present" when all ``k`` bits are set and "absent" otherwise, so there
are no false negatives and the false-positive rate after ``n`` keys is about
``(1 - e^(-kn/m))^k``.

Each key is hashed once: ``h = XXH64(key, seed)``. The ``k`` probes come from
double hashing (Kirsch & Mitzenmacher, "Less hashing, same performance",
ESA 2006): ``x_i = h + i * h2 (mod 2**64)`` with ``h2`` the splitmix64
finaliser of ``h`` forced odd, so the probes of one key never collapse onto
one position. A 64-bit ``x_i`` becomes a bit index with Lemire's multiply-high
"fastrange" (``(x_i * m) >> 64``, D. Lemire, "Fast random integer generation
in an interval", ACM TOMACS 29(1), 2019), which needs no division and is exact
for any ``m``. Bit ``i`` lives in byte ``i >> 3`` at position ``i & 7``, least
significant bit first, so the array is the same on little- and big-endian
routers.

This twin keeps the bits in one ``bytearray`` and uses Python ints masked to
64 bits where C wraps; the compiled kernel must produce the same bytes.
Geometry, argument checks, messages and the wire formats are shared with the
kernel through :mod:`._bloom_format`. ``numpy`` is imported only for the
array that :meth:`BloomFilter.contains_many` returns when no ``out`` is given.
See ``docs/kernels/bloom.md``.
"""

from __future__ import annotations

from xxhash import xxh64_intdigest

from ._bloom_format import (
    MASK64,
    apply_delta_bits,
    batch_shape,
    check_geometry,
    check_other,
    check_out,
    decode_filter,
    encode_filter,
    estimated_count,
    geometry_for_capacity,
    key_type_error,
    make_delta,
    nbytes_for,
    noncontiguous_key_error,
    theoretical_fpr,
)

__all__ = ["BloomFilter"]

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _key_bytes(key, name: str = "key") -> bytes:
    """The bytes a key is hashed as: itself, its UTF-8 encoding, or its buffer's bytes."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return str.encode(key, "utf-8")
    try:
        view = memoryview(key)
    except TypeError:
        raise key_type_error(name, key) from None
    with view:
        if not view.c_contiguous:
            raise noncontiguous_key_error(name)
        return view.tobytes()


def _step(h: int) -> int:
    """h2: the splitmix64 finaliser of h, forced odd."""
    z = (h + _GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & MASK64
    return (z ^ (z >> 31)) | 1


def _xxh64(key, seed: int = 0) -> int:
    """XXH64 of a key's bytes (testing hook: the kernel has its own XXH64)."""
    return xxh64_intdigest(_key_bytes(key), seed)


def _xxh64_many(keys, seed: int = 0) -> list[int]:
    """XXH64 of each key of a list (testing hook: the kernel's batch path)."""
    return [xxh64_intdigest(_key_bytes(key, f"keys[{j}]"), seed) for j, key in enumerate(keys)]


def _simd(enable=None) -> bool:
    """Whether batches hash several keys per vector instruction: never here (testing hook)."""
    return False


def _mulhi64(a: int, b: int, portable: bool = False) -> int:
    """High 64 bits of the 128-bit product ``a * b`` (testing hook)."""
    return (a * b) >> 64


def _popcount64(x: int, portable: bool = False) -> int:
    """Number of set bits of a 64-bit word (testing hook)."""
    return x.bit_count()


def _bit_indices(key, num_bits: int, num_hashes: int, seed: int = 0) -> list[int]:
    """The ``num_hashes`` bit positions of ``key``, in probe order (testing hook)."""
    m, k, seed = check_geometry(num_bits, num_hashes, seed)
    h = xxh64_intdigest(_key_bytes(key), seed)
    h2 = _step(h)
    out = []
    for _ in range(k):
        out.append((h * m) >> 64)
        h = (h + h2) & MASK64
    return out


class BloomFilter:
    """A Bloom filter of ``num_bits`` bits probed ``num_hashes`` times per key.

    ``BloomFilter(capacity, fpr=0.01, *, seed=0)`` sizes the filter for
    ``capacity`` keys at false-positive rate ``fpr``;
    :meth:`from_geometry` takes the geometry as is. Keys are bytes-like objects
    (C-contiguous) or ``str`` (hashed as UTF-8). Raises TypeError/ValueError
    naming the bad argument.
    """

    __slots__ = ("_bits", "_k", "_m", "_seed")
    __hash__ = None  # mutable

    def __init__(self, capacity, fpr=0.01, *, seed=0) -> None:
        num_bits, num_hashes = geometry_for_capacity(capacity, fpr)
        self._setup(*check_geometry(num_bits, num_hashes, seed))

    def _setup(self, num_bits: int, num_hashes: int, seed: int) -> None:
        self._m = num_bits
        self._k = num_hashes
        self._seed = seed
        self._bits = bytearray(nbytes_for(num_bits))

    @classmethod
    def from_geometry(cls, num_bits, num_hashes, *, seed=0) -> BloomFilter:
        """An empty filter of exactly ``num_bits`` bits (1 <= m < 2**40) and
        ``num_hashes`` probes (1..32). Raises TypeError/ValueError naming the argument."""
        bf = cls.__new__(cls)
        bf._setup(*check_geometry(num_bits, num_hashes, seed))
        return bf

    # -- geometry ------------------------------------------------------------------------

    @property
    def num_bits(self) -> int:
        """m, the number of bits."""
        return self._m

    @property
    def num_hashes(self) -> int:
        """k, the number of probes per key."""
        return self._k

    @property
    def seed(self) -> int:
        """The XXH64 seed (0 <= seed < 2**64)."""
        return self._seed

    @property
    def nbytes(self) -> int:
        """Bytes of the bit array: ceil(num_bits / 64) * 8."""
        return len(self._bits)

    def _geometry(self) -> tuple[int, int, int]:
        return (self._m, self._k, self._seed)

    # -- single keys ---------------------------------------------------------------------

    def _add_hash(self, h: int) -> bool:
        bits = self._bits
        m = self._m
        h2 = _step(h)
        flipped = False
        for _ in range(self._k):
            i = (h * m) >> 64
            mask = 1 << (i & 7)
            byte = bits[i >> 3]
            if not byte & mask:
                bits[i >> 3] = byte | mask
                flipped = True
            h = (h + h2) & MASK64
        return flipped

    def _contains_hash(self, h: int) -> bool:
        bits = self._bits
        m = self._m
        h2 = _step(h)
        for _ in range(self._k):
            i = (h * m) >> 64
            if not bits[i >> 3] & (1 << (i & 7)):
                return False
            h = (h + h2) & MASK64
        return True

    def add(self, key) -> bool:
        """Add ``key``; True if it set at least one bit (so it was not present before).

        Raises TypeError naming ``key`` for anything but bytes-like or str.
        """
        return self._add_hash(xxh64_intdigest(_key_bytes(key), self._seed))

    def contains(self, key) -> bool:
        """True if ``key`` may have been added (false positives possible, no false negatives)."""
        return self._contains_hash(xxh64_intdigest(_key_bytes(key), self._seed))

    def __contains__(self, key) -> bool:
        return self.contains(key)

    # -- batches -------------------------------------------------------------------------

    def _hashes(self, keys):
        """Yield each key's XXH64, in order, from a 2-D uint8 array or a sequence."""
        seed = self._seed
        shape = batch_shape(keys)
        if shape is not None:
            rows, width = shape
            with memoryview(keys) as view:
                raw = view.tobytes()
            for j in range(rows):
                yield xxh64_intdigest(raw[j * width : (j + 1) * width], seed)
        else:
            for j, key in enumerate(keys):
                yield xxh64_intdigest(_key_bytes(key, f"keys[{j}]"), seed)

    def add_many(self, keys) -> int:
        """Add every key in order; return how many set at least one bit.

        ``keys`` is a 2-D C-contiguous uint8 array (one key per row) or an
        iterable of bytes-like/str keys. A bad key raises TypeError naming
        ``keys[i]`` after the keys before it were added.
        """
        added = 0
        for h in self._hashes(keys):
            added += self._add_hash(h)
        return added

    def contains_many(self, keys, out=None):
        """Look every key up; return a numpy bool array (or ``out``, filled).

        ``out`` is a writable 1-D bool or uint8 array with one slot per key.
        Raises TypeError/ValueError naming ``keys``, ``keys[i]`` or ``out``.
        """
        if batch_shape(keys) is None:
            keys = keys if isinstance(keys, list | tuple) else list(keys)
            rows = len(keys)
        else:
            rows = memoryview(keys).shape[0]
        if out is None:
            import numpy

            out = numpy.zeros(rows, dtype=bool)
        else:
            check_out(out, rows)
        with memoryview(out) as view, view.cast("B") as target:
            for j, h in enumerate(self._hashes(keys)):
                target[j] = self._contains_hash(h)
        return out

    # -- whole filters -------------------------------------------------------------------

    def copy(self) -> BloomFilter:
        """An independent filter with the same geometry and bits."""
        bf = type(self).from_geometry(self._m, self._k, seed=self._seed)
        bf._bits[:] = self._bits
        return bf

    def clear(self) -> None:
        """Unset every bit."""
        self._bits[:] = bytes(len(self._bits))

    def _combine(self, other, op) -> bytes:
        check_other("other", BloomFilter, self._geometry(), other)
        a = int.from_bytes(self._bits, "little")
        b = int.from_bytes(other._bits, "little")
        return op(a, b).to_bytes(len(self._bits), "little")

    def union(self, other) -> BloomFilter:
        """A new filter holding the keys of both (bitwise OR).

        Raises TypeError unless ``other`` is a BloomFilter, ValueError on a
        geometry mismatch (num_bits, num_hashes and seed must all match).
        """
        bf = self.copy()
        bf._bits[:] = self._combine(other, int.__or__)
        return bf

    def intersection(self, other) -> BloomFilter:
        """A new filter of the bits set in both (bitwise AND; errors as :meth:`union`)."""
        bf = self.copy()
        bf._bits[:] = self._combine(other, int.__and__)
        return bf

    def __or__(self, other):
        if not isinstance(other, BloomFilter):
            return NotImplemented
        return self.union(other)

    def __and__(self, other):
        if not isinstance(other, BloomFilter):
            return NotImplemented
        return self.intersection(other)

    def __ior__(self, other):
        if not isinstance(other, BloomFilter):
            return NotImplemented
        self._bits[:] = self._combine(other, int.__or__)
        return self

    def __iand__(self, other):
        if not isinstance(other, BloomFilter):
            return NotImplemented
        self._bits[:] = self._combine(other, int.__and__)
        return self

    def __eq__(self, other):
        if not isinstance(other, BloomFilter):
            return NotImplemented
        return self._geometry() == other._geometry() and self._bits == other._bits

    def __repr__(self) -> str:
        return f"BloomFilter(num_bits={self._m}, num_hashes={self._k}, seed={self._seed})"

    def __reduce__(self):
        return (type(self).from_bytes, (self.to_bytes(),))

    # -- statistics ----------------------------------------------------------------------

    def _popcount(self) -> int:
        return int.from_bytes(self._bits, "little").bit_count()

    def fill_ratio(self) -> float:
        """Fraction of bits set, in [0, 1]."""
        return self._popcount() / self._m

    def estimated_count(self) -> float:
        """Estimated number of distinct keys added: -(m/k) ln(1 - X/m); inf when full."""
        return estimated_count(self._popcount(), self._m, self._k)

    def theoretical_fpr(self, n=None) -> float:
        """(1 - e^(-k n / m))^k for ``n`` keys (default: :meth:`estimated_count`).

        Raises TypeError/ValueError naming ``n`` unless it is a number >= 0.
        """
        if n is None:
            n = self.estimated_count()
        return theoretical_fpr(n, self._m, self._k)

    # -- wire formats --------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The ``MCBF`` serialisation (header, bits, XXH64); see docs/kernels/bloom.md."""
        return encode_filter(self._m, self._k, self._seed, self._bits)

    @classmethod
    def from_bytes(cls, buf) -> BloomFilter:
        """The filter serialised in ``buf`` by :meth:`to_bytes`.

        Raises :class:`~meshcore.errors.DecodeError` for malformed or corrupt
        bytes (never returns a wrong filter), TypeError if ``buf`` is not bytes-like.
        """
        m, k, seed, bits = decode_filter(buf)
        bf = cls.from_geometry(m, k, seed=seed)
        bf._bits[:] = bits
        return bf

    def delta_to(self, newer) -> bytes:
        """The ``MCBD`` delta that turns this filter into ``newer`` (XOR, LZ4-compressed).

        Raises TypeError unless ``newer`` is a BloomFilter, ValueError on a
        geometry mismatch.
        """
        check_other("newer", BloomFilter, self._geometry(), newer)
        return make_delta(self._m, self._k, self._seed, bytes(self._bits), bytes(newer._bits))

    def apply_delta(self, delta) -> None:
        """Apply a delta made by ``base.delta_to(newer)`` where ``base`` equals this filter.

        In place; raises :class:`~meshcore.errors.DecodeError` (and leaves the
        filter unchanged) when the delta is corrupt, for another geometry, or
        made from another base.
        """
        self._bits[:] = apply_delta_bits(self._m, self._k, self._seed, bytes(self._bits), delta)
