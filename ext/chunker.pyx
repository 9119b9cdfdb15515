"""Content-defined chunking, compiled (``meshcore.kernels._chunker_c``).

FastCDC-style normalized chunking with a 64-bit gear hash (Xia et al.,
"FastCDC: a Fast and Efficient Content-Defined Chunking Approach for Data
Deduplication", USENIX ATC 2016; TPDS 2020 extension). The theory of
operation, the gear table and the parameter rules are in
``meshcore/kernels/_chunking.py``; the pure twin ``_chunker_py.py`` is the
specification this module must match byte for byte. docs/kernels/chunker.md
has the exact algorithm.

What is compiled here and why:

* ``_hash_until`` is the whole cost, and it rolls two bytes per step
  (FastCDC 2020, Xia et al., TPDS): ``x = (fp << 2) + GEAR_LS[b0]`` is the
  first byte's hash shifted left by one, and ``fp = x + GEAR[b1]`` the
  second's, so a pair costs one shift, two table adds and two tests instead of
  two shift-adds, two table adds and two tests. The paper tests ``x`` against
  the mask shifted left, which drops the top bit of our high-bit masks; here
  that test is only the necessary condition, and the rare pass (2^-(k-1))
  recomputes the first byte's hash and tests it exactly, so the cuts are
  bit-identical to the one-byte roll (chunker version 1). The warm-up folds
  two bytes per step the same way. Gear hashing is then limited by how many
  instructions the core retires per cycle, not by the hash's dependency chain.
* The gear table is a C array filled once at import from ``_chunking.GEAR``,
  so the two twins cannot drift apart.
* ``Chunker.feed`` never copies the piece it is given: chunks that lie
  inside the piece are copied once, straight into their ``bytes`` object,
  and fingerprinted (xxh3-128, the xxhash package's C function) right after
  the boundary is found, while the bytes are still in cache. Only the
  incomplete tail (< ``max_size`` bytes) is kept in an owned C buffer.
* ``cut_points`` writes chunk ends into a preallocated int64 array and makes
  no Python object per chunk.
* ``chunk_fingerprints`` is the zero-copy whole-buffer path: it fingerprints
  each chunk in place, right after its boundary is found, by handing xxhash a
  view of the chunk's bytes inside ``data`` (one reusable ``_Span`` buffer
  object re-pointed at each chunk, so not even a memoryview per chunk); the
  16-byte digest goes straight into a preallocated ``uint8[n, 16]`` array.
  The one Python object per chunk is the digest ``bytes`` xxhash returns.
* Each scan starts ``min_size - 64`` bytes past the chunk start, where the
  hardware prefetcher has no stream to follow, so the first KiB there is
  prefetched explicitly; ``feed`` also prefetches the next chunk's skipped
  bytes, which it will copy into the chunk's ``bytes`` after the scan, and
  ``chunk_fingerprints`` the current chunk's, which xxh3 reads after the scan.
* The GIL is released while each boundary is searched for (in ``cut_points``,
  for the whole buffer), so a worker thread can chunk while the event loop
  runs.
"""

from cpython.buffer cimport PyBuffer_FillInfo
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

import numpy as np
import xxhash

from meshcore.kernels._chunking import GEAR as _GEAR_PY
from meshcore.kernels._chunking import WINDOW as _WINDOW_PY
from meshcore.kernels._chunking import Chunk, byte_view, check_fingerprints, chunk_params

__all__ = ["Chunker", "chunk_fingerprints", "cut_points"]

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define MESHCORE_PREFETCH(p) __builtin_prefetch((const void*)(p), 0, 3)
    #else
    #define MESHCORE_PREFETCH(p) ((void)(p))
    #endif
    """
    void MESHCORE_PREFETCH(const void* p) noexcept nogil

cdef enum:
    WINDOW = 64  # bytes seen by one gear-hash value; checked against _chunking below
    PF_SCAN = 1024  # bytes prefetched where a scan starts after the skipped region
    PF_HASH = 65536  # skipped bytes prefetched for xxh3 at most (it streams on from there)
    FP_SIZE = 16  # bytes of one xxh3-128 digest

if WINDOW != _WINDOW_PY:
    raise ImportError(f"_chunker_c was built for a {WINDOW}-byte window, _chunking says {_WINDOW_PY}")

cdef uint64_t GEAR[256]
cdef uint64_t GEAR_LS[256]  # GEAR << 1 mod 2**64: the two-byte roll's first byte
for _i in range(256):
    GEAR[_i] = _GEAR_PY[_i]
    GEAR_LS[_i] = GEAR[_i] << 1
del _i

cdef object _xxh3_128 = xxhash.xxh3_128_digest
# A NamedTuple's own __new__ is a Python function; tuple.__new__ builds the same object in C.
cdef object _tuple_new = tuple.__new__
cdef object _Chunk = Chunk


cdef uint8_t _NOTHING[1]


cdef class _Span:
    """A read-only buffer over ``size`` bytes at ``ptr``, owned by someone else (private).

    ``chunk_fingerprints`` re-points one span at each chunk and hands it to
    xxhash, which takes the buffer, hashes it and releases it inside the call:
    no memoryview (two GC-tracked allocations) per chunk. Whoever sets ``ptr``
    keeps the memory alive while the span can be read; a span never leaves
    the call that made it.
    """

    cdef const uint8_t* ptr
    cdef Py_ssize_t size

    def __cinit__(self):
        self.ptr = _NOTHING
        self.size = 0

    def __getbuffer__(self, Py_buffer* buf, int flags):
        PyBuffer_FillInfo(buf, self, <void*>self.ptr, self.size, 1, flags)


cdef struct Params:
    Py_ssize_t min_size
    Py_ssize_t max_size
    Py_ssize_t normal_size
    uint64_t mask_s
    uint64_t mask_l


cdef int _load_params(Params* P, object params) except -1:
    P.min_size = params.min_size
    P.max_size = params.max_size
    P.normal_size = params.normal_size
    P.mask_s = params.mask_s
    P.mask_l = params.mask_l
    return 0


cdef inline void _prefetch(const uint8_t* p, Py_ssize_t n, Py_ssize_t want) noexcept nogil:
    # Ask for the first min(n, want) bytes of p, one request per 64-byte line.
    cdef Py_ssize_t k = 0
    if want > n:
        want = n
    while k < want:
        MESHCORE_PREFETCH(p + k)
        k += 64


cdef inline uint64_t _hash(const uint8_t* p, const uint8_t* stop, uint64_t fp) noexcept nogil:
    # Warm-up bytes: folded in, never a cut candidate; two per step.
    while stop - p >= 2:
        fp = (fp << 2) + GEAR_LS[p[0]] + GEAR[p[1]]
        p += 2
    if p < stop:
        fp = (fp << 1) + GEAR[p[0]]
    return fp


cdef inline const uint8_t* _hash_until(const uint8_t* p, const uint8_t* stop, uint64_t* fp_io,
                                       uint64_t mask) noexcept nogil:
    # Return the byte after which fp & mask == 0 (the chunk's last byte), or NULL with
    # fp_io advanced over [p, stop). fp_io is left stale on a hit: the caller resets it.
    cdef uint64_t fp = fp_io[0]
    cdef uint64_t x
    cdef uint64_t mask_ls = mask << 1  # necessary condition on the shifted hash
    cdef const uint64_t* g = GEAR
    cdef const uint64_t* gl = GEAR_LS
    while stop - p >= 4:
        x = (fp << 2) + gl[p[0]]
        if (x & mask_ls) == 0 and (((fp << 1) + g[p[0]]) & mask) == 0:
            return p
        fp = x + g[p[1]]
        if (fp & mask) == 0:
            return p + 1
        x = (fp << 2) + gl[p[2]]
        if (x & mask_ls) == 0 and (((fp << 1) + g[p[2]]) & mask) == 0:
            return p + 2
        fp = x + g[p[3]]
        if (fp & mask) == 0:
            return p + 3
        p += 4
    while p < stop:
        fp = (fp << 1) + g[p[0]]
        if (fp & mask) == 0:
            return p
        p += 1
    fp_io[0] = fp
    return NULL


cdef inline Py_ssize_t _scan(const Params* P, const uint8_t* p, Py_ssize_t n,
                             Py_ssize_t* clen_io, uint64_t* fp_io) noexcept nogil:
    # Continue the chunk whose first clen bytes were already scanned (hash fp) over p[0:n].
    # Return how many bytes of p complete it, or -1 when all of p[0:n] belongs to it
    # (then clen/fp are advanced). Offsets i, e, end count from the chunk's first byte;
    # byte at offset i is p[i - clen].
    cdef Py_ssize_t clen = clen_io[0]
    cdef Py_ssize_t lim = P.max_size - clen
    if lim > n:
        lim = n
    cdef Py_ssize_t end = clen + lim
    cdef Py_ssize_t i = clen
    cdef Py_ssize_t e
    cdef uint64_t fp = fp_io[0]
    cdef const uint8_t* hit
    e = P.min_size - WINDOW  # cut-point skipping: never hashed
    cdef Py_ssize_t k
    if i < e:
        i = e if e < end else end
        k = i
        while k < end and k < i + PF_SCAN:
            MESHCORE_PREFETCH(p + (k - clen))
            k += 64
    e = P.min_size - 1  # warm-up: fill the 64-byte window before the first candidate
    if e > end:
        e = end
    if i < e:
        fp = _hash(p + (i - clen), p + (e - clen), fp)
        i = e
    e = P.normal_size - 1  # candidates L = offset + 1 < normal_size: the stricter mask
    if e > end:
        e = end
    if i < e:
        hit = _hash_until(p + (i - clen), p + (e - clen), &fp, P.mask_s)
        if hit != NULL:
            return hit - p + 1
        i = e
    if i < end:
        hit = _hash_until(p + (i - clen), p + (end - clen), &fp, P.mask_l)
        if hit != NULL:
            return hit - p + 1
    if end == P.max_size:
        return lim
    clen_io[0] = end
    fp_io[0] = fp
    return -1


cdef Py_ssize_t _cut_all(const Params* P, const uint8_t* p, Py_ssize_t n, Py_ssize_t* pos_io,
                         int64_t* out, Py_ssize_t count, Py_ssize_t cap) noexcept nogil:
    # Write chunk ends into out[count:cap] from pos_io on; return the new count.
    cdef Py_ssize_t pos = pos_io[0]
    cdef Py_ssize_t clen, r
    cdef uint64_t fp
    while pos < n and count < cap:
        clen = 0
        fp = 0
        r = _scan(P, p + pos, n - pos, &clen, &fp)
        if r < 0:
            r = n - pos  # the stream's last chunk
        pos += r
        out[count] = pos
        count += 1
    pos_io[0] = pos
    return count


cdef inline Py_ssize_t _first_cap(const Params* P, Py_ssize_t avg_size, Py_ssize_t n) noexcept:
    # Every chunk but the last has >= min_size bytes, so n // min + 1 always fits; start
    # smaller (about twice the expected count) so huge inputs with tiny min do not
    # reserve n / 8 bytes, and double when needed.
    return min(n // P.min_size + 1, 2 * (n // avg_size) + 64)


def cut_points(data, min_size=4096, avg_size=16384, max_size=65536, *, normalization=2):
    """Chunk END offsets of one whole buffer, as a numpy int64 array.

    Exactly the boundaries of ``feed(data)`` + ``finish()``: the last element
    is ``len(data)`` (in bytes); empty input gives an empty array. Raises like
    :class:`Chunker` (TypeError/ValueError naming the argument).
    """
    cdef Params P
    params = chunk_params(min_size, avg_size, max_size, normalization)
    _load_params(&P, params)
    cdef const uint8_t[::1] view = byte_view(data)
    cdef Py_ssize_t n = view.shape[0]
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t cap = _first_cap(&P, params.avg_size, n)
    out = np.empty(cap, dtype=np.int64)
    cdef int64_t[::1] ends = out
    while pos < n:
        with nogil:
            count = _cut_all(&P, &view[0], n, &pos, &ends[0], count, cap)
        if pos < n:
            cap *= 2
            grown = np.empty(cap, dtype=np.int64)
            grown[:count] = out[:count]
            out = grown
            ends = out
    return out[:count].copy()


def chunk_fingerprints(data, min_size=4096, avg_size=16384, max_size=65536, *, normalization=2):
    """Chunk ends and xxh3-128 fingerprints of one whole buffer, without copying chunks.

    Returns ``(ends, fingerprints)``: ``ends`` is what :func:`cut_points`
    gives (numpy int64, END offsets in bytes); ``fingerprints`` is a
    C-contiguous numpy ``uint8`` array of shape ``(len(ends), 16)`` whose row
    ``i`` is ``xxhash.xxh3_128_digest`` of chunk ``i``'s bytes. Empty input
    gives shapes ``(0,)`` and ``(0, 16)``. Raises like :func:`cut_points`.
    """
    cdef Params P
    params = chunk_params(min_size, avg_size, max_size, normalization)
    _load_params(&P, params)
    cdef const uint8_t[::1] view = byte_view(data)
    cdef Py_ssize_t n = view.shape[0]
    cdef Py_ssize_t cap = _first_cap(&P, params.avg_size, n)
    ends_out = np.empty(cap, dtype=np.int64)
    fps_out = np.empty((cap, FP_SIZE), dtype=np.uint8)
    cdef int64_t[::1] ends = ends_out
    cdef uint8_t[:, ::1] fps = fps_out
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t r, clen
    cdef uint64_t fp
    cdef const uint8_t* p = NULL
    cdef bytes digest
    cdef _Span span = _Span()
    if n:
        p = &view[0]
    while pos < n:
        if count == cap:
            cap *= 2
            grown = np.empty(cap, dtype=np.int64)
            grown[:count] = ends_out
            ends_out = grown
            ends = ends_out
            grown = np.empty((cap, FP_SIZE), dtype=np.uint8)
            grown[:count] = fps_out
            fps_out = grown
            fps = fps_out
        clen = 0
        fp = 0
        with nogil:
            # The scan jumps over the chunk's first min_size - 64 bytes; xxh3 reads them
            # right after it, so ask for (the start of) them now, behind the scan.
            _prefetch(p + pos, n - pos, min(P.min_size - WINDOW, PF_HASH))
            r = _scan(&P, p + pos, n - pos, &clen, &fp)
        if r < 0:
            r = n - pos  # the buffer's last chunk
        # xxhash reads the chunk in place (view keeps data alive), while it is in cache.
        span.ptr = p + pos
        span.size = r
        digest = _xxh3_128(span)
        memcpy(&fps[count, 0], PyBytes_AS_STRING(digest), FP_SIZE)
        pos += r
        ends[count] = pos
        count += 1
    return ends_out[:count].copy(), fps_out[:count].copy()


cdef class Chunker:
    """Streaming content-defined chunker (FastCDC-style gear hash, normalized chunking).

    ``min_size``, ``avg_size``, ``max_size`` are in bytes with
    ``64 <= min_size <= avg_size <= max_size <= 2**30``; ``normalization`` is
    0..3. ``fingerprints=False`` skips the xxh3-128 fingerprints (``None`` in
    each :class:`Chunk`). Raises TypeError/ValueError naming the bad argument.

    :meth:`feed` pieces of a stream, then :meth:`finish` it; chunks come out in
    order with absolute offsets. At most one incomplete chunk (< ``max_size``
    bytes) is held between calls, and bytes are hashed once, however the
    stream is split. Not thread-safe: one stream, one thread.
    """

    cdef Params _p
    cdef object _params
    cdef bint _fingerprints
    cdef uint8_t* _buf  # the incomplete chunk, all of it already scanned
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _len
    cdef uint64_t _fp  # gear hash of the bytes scanned in the incomplete chunk
    cdef int64_t _offset  # stream offset of the incomplete chunk's first byte

    def __cinit__(self):
        self._buf = NULL
        self._cap = 0

    def __dealloc__(self):
        PyMem_Free(self._buf)

    def __init__(self, min_size=4096, avg_size=16384, max_size=65536, *, normalization=2,
                 fingerprints=True):
        params = chunk_params(min_size, avg_size, max_size, normalization)
        self._fingerprints = check_fingerprints(fingerprints)
        self._params = params
        _load_params(&self._p, params)
        self._release()

    cdef void _release(self) noexcept:
        PyMem_Free(self._buf)
        self._buf = NULL
        self._cap = 0
        self._len = 0
        self._fp = 0
        self._offset = 0

    @property
    def min_size(self):
        """Minimum chunk length in bytes (except the last chunk of a stream)."""
        return self._params.min_size

    @property
    def avg_size(self):
        """Configured average chunk length in bytes."""
        return self._params.avg_size

    @property
    def max_size(self):
        """Maximum chunk length in bytes."""
        return self._params.max_size

    @property
    def normalization(self):
        """Normalized-chunking level, 0..3."""
        return self._params.normalization

    @property
    def fingerprints(self):
        """Whether chunks carry xxh3-128 fingerprints."""
        return bool(self._fingerprints)

    @property
    def buffered(self):
        """Bytes held for the incomplete chunk (always < ``max_size`` between calls)."""
        return self._len

    cdef int _keep(self, const uint8_t* src, Py_ssize_t k) except -1:
        # Append k scanned bytes to the incomplete chunk; _len + k < max_size here.
        cdef Py_ssize_t need = self._len + k
        cdef Py_ssize_t cap
        cdef void* grown
        if need > self._cap:
            cap = 2 * self._cap
            if cap < 4096:
                cap = 4096
            if cap < need:
                cap = need
            if cap > self._p.max_size:
                cap = self._p.max_size
            grown = PyMem_Realloc(self._buf, <size_t>cap)
            if grown == NULL:
                raise MemoryError()
            self._buf = <uint8_t*>grown
            self._cap = cap
        memcpy(self._buf + self._len, src, <size_t>k)
        self._len = need
        return 0

    cdef int _emit(self, list out, bytes data) except -1:
        cdef Py_ssize_t n = len(data)
        fingerprint = _xxh3_128(data) if self._fingerprints else None
        out.append(_tuple_new(_Chunk, (self._offset, n, fingerprint, data)))
        self._offset += n
        return 0

    def feed(self, data):
        """Add the next piece of the stream; return the chunks it completed, in order.

        ``data`` is any C-contiguous buffer (TypeError naming ``data`` otherwise).
        """
        if self._params is None:
            # Zeroed sizes would emit empty chunks forever.
            raise RuntimeError("Chunker.__init__ was not called")
        cdef const uint8_t[::1] view = byte_view(data)
        cdef Py_ssize_t n = view.shape[0]
        cdef list out = []
        if n == 0:
            return out
        cdef const uint8_t* p = &view[0]
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t r
        cdef bytes chunk
        cdef char* dst
        cdef Py_ssize_t clen
        while pos < n:
            clen = self._len  # _keep appends at _len, so _scan advances a copy
            with nogil:
                r = _scan(&self._p, p + pos, n - pos, &clen, &self._fp)
            if r < 0:
                self._keep(p + pos, n - pos)
                break
            _prefetch(p + pos + r, n - pos - r, self._p.min_size - WINDOW + PF_SCAN)
            if self._len:
                chunk = PyBytes_FromStringAndSize(NULL, self._len + r)
                dst = PyBytes_AS_STRING(chunk)
                memcpy(dst, self._buf, <size_t>self._len)
                memcpy(dst + self._len, p + pos, <size_t>r)
            else:
                chunk = PyBytes_FromStringAndSize(<char*>(p + pos), r)
            self._len = 0
            self._fp = 0
            self._emit(out, chunk)
            pos += r
        return out

    def finish(self):
        """End the stream: return the incomplete tail as one chunk (or nothing) and reset.

        The next :meth:`feed` starts a new stream at offset 0.
        """
        cdef list out = []
        if self._len:
            self._emit(out, PyBytes_FromStringAndSize(<char*>self._buf, self._len))
        self._release()
        return out

    def __repr__(self):
        p = self._params
        return (
            f"Chunker(min_size={p.min_size}, avg_size={p.avg_size}, max_size={p.max_size}, "
            f"normalization={p.normalization}, fingerprints={bool(self._fingerprints)})"
        )
