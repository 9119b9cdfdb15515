"""Bloom filter, compiled kernel (built as ``meshcore.kernels._bloom_c``).

Theory of operation
-------------------
A Bloom filter (B. H. Bloom, CACM 13(7), 1970) is ``m`` bits and ``k`` probes
per key; adding a key sets its ``k`` bits, a lookup says "maybe present" when
all are set. Each key is hashed once with XXH64 (``h``); the probes are the
double-hashing sequence ``x_i = h + i * h2 (mod 2**64)`` of Kirsch &
Mitzenmacher (ESA 2006), with ``h2`` the splitmix64 finaliser of ``h`` forced
odd, mapped to ``[0, m)`` by Lemire's multiply-high (ACM TOMACS 29(1), 2019).
Bit ``i`` is bit ``i & 7`` of byte ``i >> 3``. The pure twin
``meshcore/kernels/_bloom_py.py`` is the specification; this module must
produce the same bytes, and shares geometry, messages and the wire formats
with it through ``meshcore.kernels._bloom_format``.

Where the time goes, and what this module does about it (see
docs/kernels/bloom.md for measurements):

* Hashing. XXH64 of a 32-100 byte key is a few dozen dependent multiplies and
  dominates a batch. Keys are hashed straight from their storage (``bytes``
  data, the UTF-8 of a ``str``, a row of a 2-D uint8 array), never copied, and
  batches hash eight keys at a time: with AVX-512 in the eight lanes of one
  register (``_bloom_hash.h``), elsewhere one after another.
* Memory. The k probes of a key hit k random bytes of a filter that is
  usually bigger than L2. Batches keep the positions of the last RING keys in
  a ring: a key's bytes are prefetched when it is hashed and touched RING keys
  later, so the misses of different keys overlap. The key objects of a list
  are prefetched two blocks ahead, since gathers do not wake the hardware
  prefetcher.
* The GIL. Batch lookups in a 2-D array release it. Adds keep it: two
  threads setting bits in the same byte without it could lose one of the
  bits, which would be a false negative.

The bit array is one ``calloc`` block of whole 64-bit words (``nbytes``), so
word-wide OR, AND and popcount need no tail handling; bits >= m stay 0.
"""

from cpython.buffer cimport (
    PyBUF_FULL_RO,
    PyBUF_SIMPLE,
    PyBUF_WRITABLE,
    PyBuffer_IsContiguous,
    PyBuffer_Release,
    PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_Check
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

import numpy

from meshcore.kernels._bloom_format import (
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


cdef extern from "Python.h":
    PyObject** PySequence_Fast_ITEMS(object seq)
    Py_ssize_t PySequence_Fast_GET_SIZE(object seq)
    object PySequence_Fast(object o, const char* message)
    const Py_ssize_t PY_SSIZE_T_MAX
    # The same macros as cpython.bytes/unicode, on borrowed references.
    bint PyBytes_CheckExact_P "PyBytes_CheckExact"(PyObject* o)
    bint PyBytes_Check_P "PyBytes_Check"(PyObject* o)
    bint PyUnicode_CheckExact_P "PyUnicode_CheckExact"(PyObject* o)
    bint PyUnicode_Check_P "PyUnicode_Check"(PyObject* o)
    bint PyUnicode_IS_COMPACT_ASCII(PyObject* o)
    const char* PyBytes_AS_STRING_P "PyBytes_AS_STRING"(PyObject* o)
    Py_ssize_t PyBytes_GET_SIZE_P "PyBytes_GET_SIZE"(PyObject* o)
    void* PyUnicode_DATA_P "PyUnicode_DATA"(PyObject* o)
    Py_ssize_t PyUnicode_GET_LENGTH_P "PyUnicode_GET_LENGTH"(PyObject* o)


cdef extern from "_bloom_hash.h" nogil:
    enum: MC_LANES
    uint64_t mc_xxh64(const uint8_t* p, size_t length, uint64_t seed)
    void mc_xxh64_lanes(const uint8_t* const* ptr, const size_t* length, unsigned lanes,
                        uint64_t seed, uint64_t* out)
    int mc_simd_init(int allow)
    uint64_t mc_step(uint64_t h)
    uint64_t mc_mulhi64(uint64_t a, uint64_t b)
    uint64_t mc_mulhi64_portable(uint64_t a, uint64_t b)
    int mc_popcount64(uint64_t x)
    int mc_popcount64_portable(uint64_t x)
    void MC_PREFETCH_W(const void* p)
    void MC_PREFETCH_R(const void* p)


cdef bint _SIMD = mc_simd_init(1)


cdef enum:
    # A key's bit positions are computed and prefetched when it is hashed and
    # its bits are tested or set RING keys later, when they have arrived.
    RING = 16  # a power of two
    MAX_HASHES = 32
    # Key objects of a list are prefetched this many keys ahead.
    KEY_AHEAD = 2 * MC_LANES


cdef struct Ring:
    uint64_t pos[RING * MAX_HASHES]  # slot s holds positions at pos[s * MAX_HASHES:]
    Py_ssize_t count                 # keys staged so far; key i lives in slot i % RING


cdef struct Block:
    # Up to MC_LANES keys on their way to mc_xxh64_lanes.
    const uint8_t* ptr[MC_LANES]
    size_t length[MC_LANES]
    uint64_t hash[MC_LANES]
    unsigned lanes      # keys still to hash (hash[i] is already set for the others)
    Py_ssize_t count    # keys gathered


# -- nogil loops ----------------------------------------------------------------------------


cdef inline bint _add_one(uint8_t* bits, uint64_t m, int k, uint64_t h) noexcept nogil:
    cdef uint64_t h2 = mc_step(h)
    cdef uint64_t bit
    cdef uint8_t byte, mask, flipped = 0
    cdef int i
    for i in range(k):
        bit = mc_mulhi64(h, m)
        mask = <uint8_t>(1 << (bit & 7))
        byte = bits[bit >> 3]
        flipped |= (~byte) & mask
        bits[bit >> 3] = byte | mask
        h += h2
    return flipped != 0


cdef inline bint _contains_one(const uint8_t* bits, uint64_t m, int k, uint64_t h) noexcept nogil:
    cdef uint64_t h2 = mc_step(h)
    cdef uint64_t bit
    cdef int i
    for i in range(k):
        bit = mc_mulhi64(h, m)
        if not (bits[bit >> 3] >> (bit & 7)) & 1:
            return False
        h += h2
    return True


cdef inline uint64_t* _slot(Ring* r, Py_ssize_t i) noexcept nogil:
    return r.pos + (i & (RING - 1)) * MAX_HASHES


cdef inline void _stage(Ring* r, const uint8_t* bits, uint64_t m, int k, uint64_t h) noexcept nogil:
    """Put the next key's k bit positions in the ring and prefetch their bytes."""
    cdef uint64_t* pos = _slot(r, r.count)
    cdef uint64_t h2 = mc_step(h)
    cdef uint64_t bit
    cdef int i
    for i in range(k):
        bit = mc_mulhi64(h, m)
        pos[i] = bit
        MC_PREFETCH_W(bits + (bit >> 3))
        h += h2
    r.count += 1


cdef inline Py_ssize_t _set_slot(uint8_t* bits, int k, const uint64_t* pos) noexcept nogil:
    """Set one staged key's bits; 1 if at least one was not set before, else 0."""
    cdef uint64_t bit
    cdef uint8_t byte, mask, flipped = 0
    cdef int i
    for i in range(k):
        bit = pos[i]
        mask = <uint8_t>(1 << (bit & 7))
        byte = bits[bit >> 3]
        flipped |= (~byte) & mask
        bits[bit >> 3] = byte | mask
    return flipped != 0


cdef inline uint8_t _test_slot(const uint8_t* bits, int k, const uint64_t* pos) noexcept nogil:
    """1 if every bit of one staged key is set, else 0."""
    cdef uint64_t bit
    cdef int i
    for i in range(k):
        bit = pos[i]
        if not (bits[bit >> 3] >> (bit & 7)) & 1:
            return 0
    return 1


cdef inline Py_ssize_t _ring_add(Ring* r, uint8_t* bits, uint64_t m, int k,
                                 const uint64_t* hashes, Py_ssize_t n) noexcept nogil:
    """Stage n hashed keys; set the bits of each key RING places before them.

    Returns how many of the keys whose bits were set flipped at least one bit."""
    cdef Py_ssize_t j, added = 0
    for j in range(n):
        if r.count >= RING:  # its slot holds the oldest staged key: finish that one first
            added += _set_slot(bits, k, _slot(r, r.count))
        _stage(r, bits, m, k, hashes[j])
    return added


cdef inline Py_ssize_t _ring_add_flush(Ring* r, uint8_t* bits, int k) noexcept nogil:
    """Set the bits of every key still staged, oldest first."""
    cdef Py_ssize_t i, added = 0
    cdef Py_ssize_t first = r.count - RING if r.count > RING else 0
    for i in range(first, r.count):
        added += _set_slot(bits, k, _slot(r, i))
    r.count = 0
    return added


cdef inline void _ring_contains(Ring* r, const uint8_t* bits, uint64_t m, int k,
                                const uint64_t* hashes, Py_ssize_t n, uint8_t* out) noexcept nogil:
    """Stage n hashed keys (keys number r.count...); write the result of each key RING
    places before them to out[its number]."""
    cdef Py_ssize_t j
    for j in range(n):
        if r.count >= RING:
            out[r.count - RING] = _test_slot(bits, k, _slot(r, r.count))
        _stage(r, bits, m, k, hashes[j])


cdef inline void _ring_contains_flush(Ring* r, const uint8_t* bits, int k,
                                      uint8_t* out) noexcept nogil:
    cdef Py_ssize_t i
    cdef Py_ssize_t first = r.count - RING if r.count > RING else 0
    for i in range(first, r.count):
        out[i] = _test_slot(bits, k, _slot(r, i))
    r.count = 0


cdef inline Py_ssize_t _rows_block(Block* blk, const uint8_t* data, Py_ssize_t width,
                                   Py_ssize_t rows, Py_ssize_t start, uint64_t seed) noexcept nogil:
    """Hash rows start.. of a rows x width byte matrix (at most MC_LANES); return how many."""
    cdef Py_ssize_t n = rows - start if rows - start < MC_LANES else MC_LANES
    cdef Py_ssize_t i
    cdef const uint8_t* ahead = data + (start + 2 * MC_LANES) * width
    if start + 3 * MC_LANES <= rows:
        # Rows two blocks on: gathers do not trigger the hardware prefetcher.
        for i in range(0, MC_LANES * width, 64):
            MC_PREFETCH_R(ahead + i)
    for i in range(n):
        blk.ptr[i] = data + (start + i) * width
        blk.length[i] = <size_t>width
    mc_xxh64_lanes(blk.ptr, blk.length, (1u << n) - 1, seed, blk.hash)
    return n


cdef inline Py_ssize_t _add_rows(uint8_t* bits, uint64_t m, int k, uint64_t seed,
                                 const uint8_t* data, Py_ssize_t width,
                                 Py_ssize_t rows) noexcept nogil:
    """Add each row of a rows x width byte matrix as a key; return how many set a new bit."""
    cdef Ring ring
    cdef Block blk
    cdef Py_ssize_t start = 0, n, added = 0
    ring.count = 0
    while start < rows:
        n = _rows_block(&blk, data, width, rows, start, seed)
        added += _ring_add(&ring, bits, m, k, blk.hash, n)
        start += n
    return added + _ring_add_flush(&ring, bits, k)


cdef inline void _contains_rows(const uint8_t* bits, uint64_t m, int k, uint64_t seed,
                                const uint8_t* data, Py_ssize_t width, Py_ssize_t rows,
                                uint8_t* out) noexcept nogil:
    """out[j] = 1 if row j of a rows x width byte matrix may be in the filter, else 0."""
    cdef Ring ring
    cdef Block blk
    cdef Py_ssize_t start = 0, n
    ring.count = 0
    while start < rows:
        n = _rows_block(&blk, data, width, rows, start, seed)
        _ring_contains(&ring, bits, m, k, blk.hash, n, out)
        start += n
    _ring_contains_flush(&ring, bits, k, out)


cdef inline uint64_t _popcount(const uint8_t* bits, Py_ssize_t nbytes) noexcept nogil:
    cdef const uint64_t* words = <const uint64_t*>bits
    cdef Py_ssize_t j
    cdef uint64_t total = 0
    for j in range(nbytes >> 3):
        total += <uint64_t>mc_popcount64(words[j])
    return total


# -- keys -----------------------------------------------------------------------------------


cdef object _key_name(Py_ssize_t index):
    return "key" if index < 0 else f"keys[{index}]"


cdef int _hash_key(object key, uint64_t seed, uint64_t* out, Py_ssize_t index) except -1:
    """XXH64 of one key's bytes; TypeError naming the key (``keys[index]`` in a batch)."""
    cdef Py_buffer view
    cdef Py_ssize_t size
    cdef const char* data
    if PyBytes_Check(key):
        out[0] = mc_xxh64(<const uint8_t*>PyBytes_AS_STRING(key), <size_t>PyBytes_GET_SIZE(key),
                          seed)
        return 0
    if PyUnicode_Check(key):
        # Borrowed from the str's UTF-8 cache (its own data when ASCII): no copy.
        data = PyUnicode_AsUTF8AndSize(key, &size)
        out[0] = mc_xxh64(<const uint8_t*>data, <size_t>size, seed)
        return 0
    if not PyObject_CheckBuffer(key):
        raise key_type_error(_key_name(index), key)
    # The flags memoryview() uses, so that both twins accept the same buffers.
    PyObject_GetBuffer(key, &view, PyBUF_FULL_RO)
    try:
        if not PyBuffer_IsContiguous(&view, b"C"):
            raise noncontiguous_key_error(_key_name(index))
        out[0] = mc_xxh64(<const uint8_t*>view.buf, <size_t>view.len, seed)
    finally:
        PyBuffer_Release(&view)
    return 0


cdef int _items_block(Block* blk, object seq, Py_ssize_t start, uint64_t seed) except -1:
    """Gather keys seq[start:start + MC_LANES] (a list or tuple) into blk and hash them.

    bytes and str keys are read in place through borrowed references (the
    sequence keeps them alive, and no Python code runs meanwhile); other
    buffers are hashed at once, since their view must be released. On a bad
    key, blk.count says how many keys before it were gathered and blk.lanes
    which of those still need hashing; then the error propagates.
    """
    cdef PyObject** items = PySequence_Fast_ITEMS(seq)
    cdef Py_ssize_t size = PySequence_Fast_GET_SIZE(seq)
    cdef Py_ssize_t n = size - start if size - start < MC_LANES else MC_LANES
    cdef Py_ssize_t i, ahead
    cdef Py_ssize_t length
    cdef PyObject* o
    blk.lanes = 0
    blk.count = 0
    for i in range(n):
        ahead = start + i + KEY_AHEAD
        if ahead < size:
            o = items[ahead]
            MC_PREFETCH_R(o)
            MC_PREFETCH_R(<char*>o + 64)
            MC_PREFETCH_R(<char*>o + 127)
        o = items[start + i]
        if PyBytes_CheckExact_P(o) or PyBytes_Check_P(o):
            blk.ptr[i] = <const uint8_t*>PyBytes_AS_STRING_P(o)
            blk.length[i] = <size_t>PyBytes_GET_SIZE_P(o)
        elif PyUnicode_CheckExact_P(o) and PyUnicode_IS_COMPACT_ASCII(o):
            blk.ptr[i] = <const uint8_t*>PyUnicode_DATA_P(o)
            blk.length[i] = <size_t>PyUnicode_GET_LENGTH_P(o)
        elif PyUnicode_Check_P(o):
            # UTF-8 cached inside the str: valid as long as the str lives.
            blk.ptr[i] = <const uint8_t*>PyUnicode_AsUTF8AndSize(<object>o, &length)
            blk.length[i] = <size_t>length
        else:
            _hash_key(<object>o, seed, &blk.hash[i], start + i)
            blk.count = i + 1
            # No Python code ran, but re-read the storage rather than trust it.
            items = PySequence_Fast_ITEMS(seq)
            size = PySequence_Fast_GET_SIZE(seq)
            continue
        blk.lanes |= 1u << i
        blk.count = i + 1
    mc_xxh64_lanes(blk.ptr, blk.length, blk.lanes, seed, blk.hash)
    blk.lanes = 0
    return 0


cdef inline void _finish_block(Block* blk, uint64_t seed) noexcept nogil:
    """Hash the keys a failed _items_block gathered before the bad one."""
    mc_xxh64_lanes(blk.ptr, blk.length, blk.lanes, seed, blk.hash)
    blk.lanes = 0


# -- testing hooks --------------------------------------------------------------------------


def _simd(enable=None):
    """Whether batches hash eight keys per AVX-512 instruction; ``enable`` turns it
    off or (where the CPU has it) on. A testing hook: the default is the fastest."""
    global _SIMD
    if enable is not None:
        _SIMD = mc_simd_init(1 if enable else 0)
    return bool(_SIMD)


def _xxh64(key, uint64_t seed=0):
    """XXH64 of a key's bytes (testing hook: proves this XXH64 equals xxhash's)."""
    cdef uint64_t h
    _hash_key(key, seed, &h, -1)
    return h


def _xxh64_many(keys, uint64_t seed=0):
    """XXH64 of each key of a list, through the batch path (testing hook)."""
    cdef Block blk
    cdef Py_ssize_t start = 0, i
    seq = PySequence_Fast(keys, b"keys: expected a sequence of keys")
    out = []
    while start < PySequence_Fast_GET_SIZE(seq):
        _items_block(&blk, seq, start, seed)
        for i in range(blk.count):
            out.append(blk.hash[i])
        start += blk.count
    return out


def _mulhi64(uint64_t a, uint64_t b, bint portable=False):
    """High 64 bits of the 128-bit product ``a * b`` (testing hook for both C paths)."""
    return mc_mulhi64_portable(a, b) if portable else mc_mulhi64(a, b)


def _popcount64(uint64_t x, bint portable=False):
    """Number of set bits of a 64-bit word (testing hook for both C paths)."""
    return mc_popcount64_portable(x) if portable else mc_popcount64(x)


def _bit_indices(key, num_bits, num_hashes, seed=0):
    """The ``num_hashes`` bit positions of ``key``, in probe order (testing hook)."""
    m, k, s = check_geometry(num_bits, num_hashes, seed)
    cdef uint64_t h, h2, mm = m
    cdef int i
    _hash_key(key, s, &h, -1)
    h2 = mc_step(h)
    out = []
    for i in range(<int>k):
        out.append(mc_mulhi64(h, mm))
        h += h2
    return out


# -- the filter -----------------------------------------------------------------------------


cdef class BloomFilter:
    """A Bloom filter of ``num_bits`` bits probed ``num_hashes`` times per key.

    ``BloomFilter(capacity, fpr=0.01, *, seed=0)`` sizes the filter for
    ``capacity`` keys at false-positive rate ``fpr``;
    :meth:`from_geometry` takes the geometry as is. Keys are bytes-like objects
    (C-contiguous) or ``str`` (hashed as UTF-8). Raises TypeError/ValueError
    naming the bad argument.
    """

    cdef uint8_t* _bits
    cdef Py_ssize_t _nbytes
    cdef uint64_t _m
    cdef uint64_t _seed
    cdef int _k
    # Batch lookups running without the GIL: the buffer must not be freed under them.
    cdef Py_ssize_t _readers

    def __cinit__(self, *args, **kwargs):
        # Every object owns a valid buffer from birth, so no method can see NULL.
        self._bits = NULL
        self._readers = 0
        self._setup(1, 1, 0)

    def __dealloc__(self):
        PyMem_RawFree(self._bits)

    def __init__(self, capacity, fpr=0.01, *, seed=0):
        num_bits, num_hashes = geometry_for_capacity(capacity, fpr)
        m, k, s = check_geometry(num_bits, num_hashes, seed)
        self._setup(m, k, s)

    cdef int _setup(self, uint64_t m, int k, uint64_t seed) except -1:
        cdef uint64_t nbytes = nbytes_for(m)
        cdef uint8_t* bits
        if self._readers:
            raise RuntimeError("BloomFilter: cannot re-initialise during a batch lookup")
        if nbytes > <uint64_t>PY_SSIZE_T_MAX:
            raise MemoryError(f"num_bits: {m} bits do not fit in this address space")
        bits = <uint8_t*>PyMem_RawCalloc(<size_t>nbytes, 1)
        if bits == NULL:
            raise MemoryError(f"num_bits: cannot allocate {nbytes} bytes")
        PyMem_RawFree(self._bits)
        self._bits = bits
        self._nbytes = <Py_ssize_t>nbytes
        self._m = m
        self._k = k
        self._seed = seed
        return 0

    @classmethod
    def from_geometry(cls, num_bits, num_hashes, *, seed=0):
        """An empty filter of exactly ``num_bits`` bits (1 <= m < 2**40) and
        ``num_hashes`` probes (1..32). Raises TypeError/ValueError naming the argument."""
        m, k, s = check_geometry(num_bits, num_hashes, seed)
        cdef BloomFilter bf = cls.__new__(cls)
        bf._setup(m, k, s)
        return bf

    # -- geometry ------------------------------------------------------------------------

    @property
    def num_bits(self):
        """m, the number of bits."""
        return self._m

    @property
    def num_hashes(self):
        """k, the number of probes per key."""
        return self._k

    @property
    def seed(self):
        """The XXH64 seed (0 <= seed < 2**64)."""
        return self._seed

    @property
    def nbytes(self):
        """Bytes of the bit array: ceil(num_bits / 64) * 8."""
        return self._nbytes

    cdef tuple _geometry(self):
        return (self._m, self._k, self._seed)

    cdef bytes _bytes(self):
        return PyBytes_FromStringAndSize(<const char*>self._bits, self._nbytes)

    cdef void _load(self, const uint8_t* data) noexcept:
        memcpy(self._bits, data, <size_t>self._nbytes)

    # -- single keys ---------------------------------------------------------------------

    def add(self, key):
        """Add ``key``; True if it set at least one bit (so it was not present before).

        Raises TypeError naming ``key`` for anything but bytes-like or str.
        """
        cdef uint64_t h
        _hash_key(key, self._seed, &h, -1)
        return _add_one(self._bits, self._m, self._k, h)

    def contains(self, key):
        """True if ``key`` may have been added (false positives possible, no false negatives)."""
        cdef uint64_t h
        _hash_key(key, self._seed, &h, -1)
        return _contains_one(self._bits, self._m, self._k, h)

    def __contains__(self, key):
        cdef uint64_t h
        _hash_key(key, self._seed, &h, -1)
        return _contains_one(self._bits, self._m, self._k, h)

    # -- batches -------------------------------------------------------------------------

    def add_many(self, keys):
        """Add every key in order; return how many set at least one bit.

        ``keys`` is a 2-D C-contiguous uint8 array (one key per row) or an
        iterable of bytes-like/str keys. A bad key raises TypeError naming
        ``keys[i]`` after the keys before it were added.
        """
        cdef Ring ring
        cdef Block blk
        cdef Py_buffer view
        cdef Py_ssize_t rows, width, start, added = 0
        cdef uint8_t* bits = self._bits
        cdef uint64_t m = self._m, seed = self._seed
        cdef int k = self._k
        shape = batch_shape(keys)
        if shape is not None:
            rows, width = shape
            PyObject_GetBuffer(keys, &view, PyBUF_SIMPLE)
            try:
                if view.len != rows * width:
                    raise ValueError("keys: the array changed while being read")
                # The GIL stays held: see the module docstring.
                return _add_rows(bits, m, k, seed, <const uint8_t*>view.buf, width, rows)
            finally:
                PyBuffer_Release(&view)
        seq = PySequence_Fast(keys, b"keys: expected a sequence of keys")
        rows = PySequence_Fast_GET_SIZE(seq)
        ring.count = 0
        blk.count = 0
        start = 0
        try:
            while start < rows:
                _items_block(&blk, seq, start, seed)
                added += _ring_add(&ring, bits, m, k, blk.hash, blk.count)
                start += blk.count
        finally:
            if start < rows:  # a bad key: the keys before it are still added, as in the twin
                _finish_block(&blk, seed)
                _ring_add(&ring, bits, m, k, blk.hash, blk.count)
            added += _ring_add_flush(&ring, bits, k)
        return added

    def contains_many(self, keys, out=None):
        """Look every key up; return a numpy bool array (or ``out``, filled).

        ``out`` is a writable 1-D bool or uint8 array with one slot per key.
        Raises TypeError/ValueError naming ``keys``, ``keys[i]`` or ``out``.
        """
        cdef Ring ring
        cdef Block blk
        cdef Py_buffer view, target
        cdef Py_ssize_t rows, width = 0, start
        cdef const uint8_t* data
        cdef uint8_t* result
        cdef uint8_t* bits = self._bits
        cdef uint64_t m = self._m, seed = self._seed
        cdef int k = self._k
        shape = batch_shape(keys)
        if shape is None:
            seq = PySequence_Fast(keys, b"keys: expected a sequence of keys")
            rows = PySequence_Fast_GET_SIZE(seq)
        else:
            rows, width = shape
        if out is None:
            out = numpy.zeros(rows, dtype=bool)
        else:
            check_out(out, rows)
        PyObject_GetBuffer(out, &target, PyBUF_WRITABLE)
        result = <uint8_t*>target.buf
        try:
            if shape is not None:
                PyObject_GetBuffer(keys, &view, PyBUF_SIMPLE)
                self._readers += 1
                try:
                    if view.len != rows * width:
                        raise ValueError("keys: the array changed while being read")
                    data = <const uint8_t*>view.buf
                    with nogil:
                        _contains_rows(bits, m, k, seed, data, width, rows, result)
                finally:
                    self._readers -= 1
                    PyBuffer_Release(&view)
                return out
            # Python objects: the GIL stays held while their bytes are read.
            ring.count = 0
            blk.count = 0
            start = 0
            try:
                while start < rows:
                    _items_block(&blk, seq, start, seed)
                    _ring_contains(&ring, bits, m, k, blk.hash, blk.count, result)
                    start += blk.count
            finally:
                if start < rows:  # a bad key: the keys before it are still looked up
                    _finish_block(&blk, seed)
                    _ring_contains(&ring, bits, m, k, blk.hash, blk.count, result)
                _ring_contains_flush(&ring, bits, k, result)
            return out
        finally:
            PyBuffer_Release(&target)

    # -- whole filters -------------------------------------------------------------------

    def copy(self):
        """An independent filter with the same geometry and bits."""
        cdef BloomFilter bf = type(self).from_geometry(self._m, self._k, seed=self._seed)
        bf._load(self._bits)
        return bf

    def clear(self):
        """Unset every bit."""
        memset(self._bits, 0, <size_t>self._nbytes)

    cdef BloomFilter _checked(self, other):
        check_other("other", BloomFilter, self._geometry(), other)
        return <BloomFilter>other

    cdef void _or_from(self, BloomFilter other) noexcept:
        cdef uint64_t* a = <uint64_t*>self._bits
        cdef const uint64_t* b = <const uint64_t*>other._bits
        cdef Py_ssize_t j
        for j in range(self._nbytes >> 3):
            a[j] |= b[j]

    cdef void _and_from(self, BloomFilter other) noexcept:
        cdef uint64_t* a = <uint64_t*>self._bits
        cdef const uint64_t* b = <const uint64_t*>other._bits
        cdef Py_ssize_t j
        for j in range(self._nbytes >> 3):
            a[j] &= b[j]

    def union(self, other):
        """A new filter holding the keys of both (bitwise OR).

        Raises TypeError unless ``other`` is a BloomFilter, ValueError on a
        geometry mismatch (num_bits, num_hashes and seed must all match).
        """
        cdef BloomFilter o = self._checked(other)
        cdef BloomFilter bf = self.copy()
        bf._or_from(o)
        return bf

    def intersection(self, other):
        """A new filter of the bits set in both (bitwise AND; errors as :meth:`union`)."""
        cdef BloomFilter o = self._checked(other)
        cdef BloomFilter bf = self.copy()
        bf._and_from(o)
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
        self._or_from(self._checked(other))
        return self

    def __iand__(self, other):
        if not isinstance(other, BloomFilter):
            return NotImplemented
        self._and_from(self._checked(other))
        return self

    def __eq__(self, other):
        if not isinstance(other, BloomFilter):
            return NotImplemented
        cdef BloomFilter o = <BloomFilter>other
        return (self._m == o._m and self._k == o._k and self._seed == o._seed
                and memcmp(self._bits, o._bits, <size_t>self._nbytes) == 0)

    __hash__ = None  # mutable

    def __repr__(self):
        return f"BloomFilter(num_bits={self._m}, num_hashes={self._k}, seed={self._seed})"

    def __reduce__(self):
        return (type(self).from_bytes, (self.to_bytes(),))

    # -- statistics ----------------------------------------------------------------------

    def fill_ratio(self):
        """Fraction of bits set, in [0, 1]."""
        return _popcount(self._bits, self._nbytes) / <double>self._m

    def estimated_count(self):
        """Estimated number of distinct keys added: -(m/k) ln(1 - X/m); inf when full."""
        return estimated_count(_popcount(self._bits, self._nbytes), self._m, self._k)

    def theoretical_fpr(self, n=None):
        """(1 - e^(-k n / m))^k for ``n`` keys (default: :meth:`estimated_count`).

        Raises TypeError/ValueError naming ``n`` unless it is a number >= 0.
        """
        if n is None:
            n = self.estimated_count()
        return theoretical_fpr(n, self._m, self._k)

    # -- wire formats --------------------------------------------------------------------

    def to_bytes(self):
        """The ``MCBF`` serialisation (header, bits, XXH64); see docs/kernels/bloom.md."""
        return encode_filter(self._m, self._k, self._seed, self._bytes())

    @classmethod
    def from_bytes(cls, buf):
        """The filter serialised in ``buf`` by :meth:`to_bytes`.

        Raises :class:`~meshcore.errors.DecodeError` for malformed or corrupt
        bytes (never returns a wrong filter), TypeError if ``buf`` is not bytes-like.
        """
        m, k, seed, bits = decode_filter(buf)
        cdef BloomFilter bf = cls.from_geometry(m, k, seed=seed)
        bf._load(<const uint8_t*>PyBytes_AS_STRING(bits))
        return bf

    def delta_to(self, newer):
        """The ``MCBD`` delta that turns this filter into ``newer`` (XOR, LZ4-compressed).

        Raises TypeError unless ``newer`` is a BloomFilter, ValueError on a
        geometry mismatch.
        """
        check_other("newer", BloomFilter, self._geometry(), newer)
        return make_delta(
            self._m, self._k, self._seed, self._bytes(), (<BloomFilter>newer)._bytes()
        )

    def apply_delta(self, delta):
        """Apply a delta made by ``base.delta_to(newer)`` where ``base`` equals this filter.

        In place; raises :class:`~meshcore.errors.DecodeError` (and leaves the
        filter unchanged) when the delta is corrupt, for another geometry, or
        made from another base.
        """
        result = apply_delta_bits(self._m, self._k, self._seed, self._bytes(), delta)
        self._load(<const uint8_t*>PyBytes_AS_STRING(result))
