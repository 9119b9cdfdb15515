"""Cache kernel, compiled (``meshcore.kernels._cache_c``).

The popularity sketch and the default cache policy's per-request work. The
pure twin ``meshcore/kernels/_cache_py.py`` is the specification this module
must match bit for bit (its docstring has the theory of operation and
docs/kernels/cache.md the exact algorithm); argument checks and messages are
the twin's own functions, so they cannot drift.

What is compiled here and why:

* ``key_hash`` of an int is SplitMix64 in C; str and bytes keys go through the
  xxhash package's xxh3 (one C call), as in the twin.
* Sketch counters and doorkeeper bits are C arrays; ``increment`` and
  ``estimate`` touch ``depth`` bytes and two bits, with no Python object.
* Each resident object lives in a *slot* of C arrays (size, value,
  priority, push counter, heap position, window links); one Python dict maps
  keys to slots and one list keeps each slot's key object. The window LRU is a
  doubly linked list over slots and the GreedyDual main area an indexed binary
  heap ordered by (priority, push counter): the twin's lazy ``heapq`` pops the
  very same order, because that pair is unique.
* The two ghost lists are ``collections.OrderedDict`` objects, as in the
  twin: they are touched on misses only.
* Floats are computed with the same IEEE-754 operations in the same order as
  the twin (setup.py builds with ``-ffp-contract=off`` so no fused
  multiply-add changes a rounding).
"""

from cpython.dict cimport PyDict_DelItem, PyDict_GetItem, PyDict_SetItem, PyDict_Size
from cpython.object cimport PyObject
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_AsUnsignedLongLongMask
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport pow
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, memset

from collections import OrderedDict

import xxhash

from meshcore.kernels import _cache_py as _twin

__all__ = ["MAX_BYTES", "WEIGHTINGS", "AdaptiveTinyLFU", "FrequencySketch", "key_hash"]

MAX_BYTES = _twin.MAX_BYTES
WEIGHTINGS = _twin.WEIGHTINGS
cdef int64_t _MAX_BYTES = _twin.MAX_BYTES

cdef object _xxh3 = xxhash.xxh3_64_intdigest
cdef object _check_int = _twin._check_int
cdef object _check_capacity = _twin._check_capacity
cdef object _coerce_size = _twin._coerce_size
cdef object _check_params = _twin._check_params

cdef Py_ssize_t _GHOST_MIN = _twin._GHOST_MIN


cdef inline uint64_t _splitmix(uint64_t z) noexcept nogil:
    z = z + <uint64_t>0x9E3779B97F4A7C15ULL
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef uint64_t _hash(object key) except? 0:
    # The twin's key_hash; `except? 0` because 0 is also a valid hash.
    if type(key) is int:
        return _splitmix(PyLong_AsUnsignedLongLongMask(key))
    if isinstance(key, str):
        return _xxh3((<str>key).encode("utf-8", "surrogatepass"))
    if isinstance(key, (bytes, bytearray, memoryview)):
        return _xxh3(bytes(key))
    if isinstance(key, int):  # bool and int subclasses
        return _splitmix(PyLong_AsUnsignedLongLongMask(int(key)))
    raise TypeError(f"key: expected int, str or bytes, got {type(key).__name__}")


def key_hash(key):
    """64-bit stable hash of a cache key (``int``, ``str`` or ``bytes``); TypeError otherwise."""
    return _hash(key)


cdef class FrequencySketch:
    """Aging count-min sketch with a doorkeeper; estimates recent access counts.

    Same constructor, methods and results as the twin's ``FrequencySketch``
    (see ``meshcore/kernels/_cache_py.py``). Raises ValueError naming a bad argument.
    """

    cdef uint8_t* _rows
    cdef uint8_t* _door
    cdef Py_ssize_t _width
    cdef uint64_t _mask
    cdef uint64_t _door_mask
    cdef int _depth
    cdef int _max
    cdef Py_ssize_t _sample_size
    cdef Py_ssize_t _additions
    cdef Py_ssize_t _top_k
    cdef dict _top
    cdef int _top_min
    cdef public Py_ssize_t resets

    def __cinit__(self):
        self._rows = NULL
        self._door = NULL

    def __dealloc__(self):
        PyMem_Free(self._rows)
        PyMem_Free(self._door)

    def __init__(self, width=1024, *, depth=4, sample_size=None, top_k=32, max_count=15):
        _check_int("width", width, 1)
        _check_int("depth", depth, 1)
        if depth > 8:
            raise ValueError(f"depth: expected an integer between 1 and 8, got {depth!r}")
        _check_int("top_k", top_k, 0)
        _check_int("max_count", max_count, 1)
        if max_count > 255:
            raise ValueError(f"max_count: expected an integer between 1 and 255, got {max_count!r}")
        cdef Py_ssize_t w = 16
        while w < width:
            w <<= 1
        if sample_size is not None:
            _check_int("sample_size", sample_size, 1)
        self._max = max_count
        self._depth = depth
        self._alloc(w)
        memset(self._rows, 0, depth * w)
        memset(self._door, 0, w // 4)
        self._sample_size = 10 * w if sample_size is None else sample_size
        self._additions = 0
        self._top_k = top_k
        self._top = {}
        self._top_min = 0
        self.resets = 0

    cdef int _alloc(self, Py_ssize_t w) except -1:
        cdef uint8_t* rows = <uint8_t*>PyMem_Malloc(self._depth * w)
        cdef uint8_t* door = <uint8_t*>PyMem_Malloc(w // 4)
        if rows == NULL or door == NULL:
            PyMem_Free(rows)
            PyMem_Free(door)
            raise MemoryError()
        PyMem_Free(self._rows)
        PyMem_Free(self._door)
        self._rows = rows
        self._door = door
        self._width = w
        self._mask = w - 1
        self._door_mask = 2 * w - 1
        return 0

    @property
    def width(self):
        """Counters per row (a power of two)."""
        return self._width

    @property
    def depth(self):
        """Number of rows (hash functions)."""
        return self._depth

    @property
    def sample_size(self):
        """Recorded accesses between two agings."""
        return self._sample_size

    @property
    def memory_bytes(self):
        """Bytes of counter and doorkeeper storage (the bounded part)."""
        return self._depth * self._width + self._width // 4

    cdef inline bint _door_contains(self, uint64_t h) noexcept:
        cdef uint64_t a = h & self._door_mask
        cdef uint64_t b = (h >> 21) & self._door_mask
        return (self._door[a >> 3] & (1 << (a & 7))) and (self._door[b >> 3] & (1 << (b & 7)))

    cdef inline int _count(self, uint64_t h) noexcept:
        cdef uint64_t lo = h & 0xFFFFFFFF
        cdef uint64_t hi = (h >> 32) | 1
        cdef int best = 255
        cdef int i, c
        for i in range(self._depth):
            c = self._rows[i * self._width + ((lo + i * hi) & self._mask)]
            if c < best:
                best = c
        return best

    cdef int _increment_hash(self, object key, uint64_t h) except -1:
        cdef uint64_t a = h & self._door_mask
        cdef uint64_t b = (h >> 21) & self._door_mask
        cdef uint8_t* door = self._door
        cdef uint8_t ba = 1 << (a & 7)
        cdef uint8_t bb = 1 << (b & 7)
        cdef uint64_t lo, hi
        cdef Py_ssize_t idx[8]
        cdef int i, best, est
        if (door[a >> 3] & ba) and (door[b >> 3] & bb):
            lo = h & 0xFFFFFFFF
            hi = (h >> 32) | 1
            best = 255
            for i in range(self._depth):
                idx[i] = i * self._width + <Py_ssize_t>((lo + i * hi) & self._mask)
                if self._rows[idx[i]] < best:
                    best = self._rows[idx[i]]
            if best < self._max:
                for i in range(self._depth):
                    if self._rows[idx[i]] == best:
                        self._rows[idx[i]] = best + 1
                best += 1
            est = best + 1
        else:
            door[a >> 3] |= ba
            door[b >> 3] |= bb
            est = self._count(h) + 1
        if self._top_k and est > self._top_min:
            self._offer(key, est)
        self._additions += 1
        if self._additions >= self._sample_size:
            self.reset()
        return est

    cdef int _estimate_hash(self, uint64_t h) noexcept:
        return self._count(h) + (1 if self._door_contains(h) else 0)

    def increment(self, key):
        """Record one access of ``key``; return its new estimate (TypeError for a bad key)."""
        return self._increment_hash(key, _hash(key))

    def estimate(self, key):
        """Estimated recent access count of ``key`` (0 for a key never seen)."""
        return self._estimate_hash(_hash(key))

    cdef int _offer(self, object key, int est) except -1:
        cdef dict top = self._top
        if key in top or len(top) < self._top_k:
            top[key] = est
            if len(top) == self._top_k:
                self._top_min = min(top.values())
            return 0
        weakest = min(top, key=top.__getitem__)
        del top[weakest]
        top[key] = est
        self._top_min = min(top.values())
        return 0

    def top(self, n=10):
        """The ``n`` most popular keys seen recently, as ``(key, estimate)``, highest first."""
        _check_int("n", n, 0)
        ranked = [(k, self.estimate(k)) for k in self._top]
        ranked.sort(key=lambda kv: -kv[1])
        return ranked[:n]

    def reset(self):
        """Age the sketch now: halve every counter and clear the doorkeeper."""
        cdef Py_ssize_t j
        for j in range(self._depth * self._width):
            self._rows[j] >>= 1
        memset(self._door, 0, self._width // 4)
        self._additions = 0
        self.resets += 1
        if self._top:
            for k in list(self._top):
                e = self.estimate(k)
                if e == 0:
                    del self._top[k]
                else:
                    self._top[k] = e
            self._top_min = min(self._top.values()) if len(self._top) >= self._top_k else 0

    def grow(self, width, *, sample_size=None):
        """Widen the sketch to ``width`` columns (rounded up) without losing counts.

        Rows and doorkeeper are tiled, so every estimate is unchanged right
        after growing. Raises ValueError if ``width`` is below the current one.
        """
        _check_int("width", width, 1)
        cdef Py_ssize_t w = 16
        while w < width:
            w <<= 1
        if w < self._width:
            raise ValueError(f"width: expected at least the current {self._width}, got {width!r}")
        if sample_size is not None:
            _check_int("sample_size", sample_size, 1)
        cdef Py_ssize_t old = self._width
        cdef Py_ssize_t k = w // old
        cdef Py_ssize_t i, t
        cdef uint8_t* rows = <uint8_t*>PyMem_Malloc(self._depth * w)
        cdef uint8_t* door = <uint8_t*>PyMem_Malloc(w // 4)
        if rows == NULL or door == NULL:
            PyMem_Free(rows)
            PyMem_Free(door)
            raise MemoryError()
        for i in range(self._depth):
            for t in range(k):
                memcpy(rows + i * w + t * old, self._rows + i * old, old)
        for t in range(k):
            memcpy(door + t * (old // 4), self._door, old // 4)
        PyMem_Free(self._rows)
        PyMem_Free(self._door)
        self._rows = rows
        self._door = door
        self._width = w
        self._mask = w - 1
        self._door_mask = 2 * w - 1
        self._sample_size = 10 * w if sample_size is None else sample_size

    def clear(self):
        """Forget everything (counters, doorkeeper, candidates)."""
        memset(self._rows, 0, self._depth * self._width)
        memset(self._door, 0, self._width // 4)
        self._additions = 0
        self._top.clear()
        self._top_min = 0


cdef enum:
    FREE = 0
    IN_WINDOW = 1
    IN_MAIN = 2


cdef class AdaptiveTinyLFU:
    """Adaptive size-aware TinyLFU over a byte budget: the default policy's core.

    Same constructor, attributes, methods, exceptions and results as the
    twin's ``AdaptiveTinyLFU`` (see ``meshcore/kernels/_cache_py.py``).
    """

    # slot arrays
    cdef int64_t* _size
    cdef double* _value
    cdef double* _prio
    cdef uint64_t* _gen_of
    cdef int32_t* _hpos
    cdef int32_t* _prev
    cdef int32_t* _next
    cdef uint8_t* _seg
    cdef int32_t* _heap
    cdef int32_t* _free
    cdef int32_t* _popped  # victims under examination in a duel
    cdef Py_ssize_t _nslots
    cdef Py_ssize_t _nfree
    cdef Py_ssize_t _heap_len
    cdef dict _slot
    cdef list _keys
    # window list (head: least recent)
    cdef int32_t _whead
    cdef int32_t _wtail
    cdef int64_t _window_bytes
    cdef int64_t _window_cap
    cdef double _window_share
    cdef double _max_window
    cdef int64_t _capacity
    cdef int64_t _used
    cdef uint64_t _gen
    cdef bint _unit
    cdef double _weight
    cdef bint _adaptive
    cdef object _on_evict
    cdef Py_ssize_t _sketch_items
    cdef Py_ssize_t _sketch_factor
    cdef Py_ssize_t _sample_factor
    cdef FrequencySketch _sketch
    # ghosts (keys only, oldest first): let go by the window / evicted from main
    cdef object _ghost_window
    cdef object _ghost_main
    cdef public double clock
    cdef public Py_ssize_t evictions
    cdef public Py_ssize_t rejections

    def __cinit__(self):
        self._size = NULL
        self._value = NULL
        self._prio = NULL
        self._gen_of = NULL
        self._hpos = NULL
        self._prev = NULL
        self._next = NULL
        self._seg = NULL
        self._heap = NULL
        self._free = NULL
        self._popped = NULL
        self._nslots = 0

    def __dealloc__(self):
        PyMem_Free(self._size)
        PyMem_Free(self._value)
        PyMem_Free(self._prio)
        PyMem_Free(self._gen_of)
        PyMem_Free(self._hpos)
        PyMem_Free(self._prev)
        PyMem_Free(self._next)
        PyMem_Free(self._seg)
        PyMem_Free(self._heap)
        PyMem_Free(self._free)
        PyMem_Free(self._popped)

    def __init__(self, capacity_bytes, *, weighting="objects", size_exponent=None, window=0.01,
                 adaptive=True, max_window=0.8, sketch_factor=8, sketch_depth=4, max_count=63,
                 top_k=32, sample_factor=10, on_evict=None):
        capacity, beta, flag, top, start = _check_params(
            capacity_bytes, weighting, size_exponent, window, adaptive, max_window,
            sketch_factor, sample_factor, on_evict)
        self._capacity = capacity
        self._adaptive = flag
        self._max_window = top
        self._window_share = start
        self._unit = beta == 1.0
        self._weight = 1.0 - beta
        self._on_evict = on_evict
        self._used = 0
        self._slot = {}
        self._keys = []
        self._nfree = 0
        self._heap_len = 0
        self._whead = -1
        self._wtail = -1
        self._window_bytes = 0
        self._window_cap = <int64_t>(self._capacity * self._window_share)
        self._gen = 0
        self.clock = 0.0
        self.evictions = 0
        self.rejections = 0
        self._ghost_window = OrderedDict()
        self._ghost_main = OrderedDict()
        self._sketch_factor = sketch_factor
        self._sample_factor = sample_factor
        self._sketch_items = 64
        width = self._sketch_items * sketch_factor
        self._sketch = FrequencySketch(width, depth=sketch_depth, top_k=top_k,
                                       max_count=max_count, sample_size=sample_factor * width)
        self._reserve(64)

    # -- slots -------------------------------------------------------------

    cdef int _reserve(self, Py_ssize_t n) except -1:
        if n <= self._nslots:
            return 0
        cdef Py_ssize_t cap = self._nslots * 2 if self._nslots else 64
        if cap < n:
            cap = n
        if cap > 0x7FFFFFFF:
            raise MemoryError("cache kernel: too many resident objects")
        cdef void* p
        p = PyMem_Realloc(self._size, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self._size = <int64_t*>p
        p = PyMem_Realloc(self._value, cap * sizeof(double))
        if p == NULL:
            raise MemoryError()
        self._value = <double*>p
        p = PyMem_Realloc(self._prio, cap * sizeof(double))
        if p == NULL:
            raise MemoryError()
        self._prio = <double*>p
        p = PyMem_Realloc(self._gen_of, cap * sizeof(uint64_t))
        if p == NULL:
            raise MemoryError()
        self._gen_of = <uint64_t*>p
        p = PyMem_Realloc(self._hpos, cap * sizeof(int32_t))
        if p == NULL:
            raise MemoryError()
        self._hpos = <int32_t*>p
        p = PyMem_Realloc(self._prev, cap * sizeof(int32_t))
        if p == NULL:
            raise MemoryError()
        self._prev = <int32_t*>p
        p = PyMem_Realloc(self._next, cap * sizeof(int32_t))
        if p == NULL:
            raise MemoryError()
        self._next = <int32_t*>p
        p = PyMem_Realloc(self._seg, cap * sizeof(uint8_t))
        if p == NULL:
            raise MemoryError()
        self._seg = <uint8_t*>p
        p = PyMem_Realloc(self._heap, cap * sizeof(int32_t))
        if p == NULL:
            raise MemoryError()
        self._heap = <int32_t*>p
        p = PyMem_Realloc(self._free, cap * sizeof(int32_t))
        if p == NULL:
            raise MemoryError()
        self._free = <int32_t*>p
        p = PyMem_Realloc(self._popped, cap * sizeof(int32_t))
        if p == NULL:
            raise MemoryError()
        self._popped = <int32_t*>p
        self._nslots = cap
        return 0

    cdef int32_t _new_slot(self, object key, int64_t size) except -1:
        cdef int32_t s
        if self._nfree:
            self._nfree -= 1
            s = self._free[self._nfree]
            self._keys[s] = key
        else:
            s = <int32_t>len(self._keys)
            self._reserve(s + 1)
            self._keys.append(key)
        self._size[s] = size
        self._seg[s] = IN_WINDOW
        self._hpos[s] = -1
        PyDict_SetItem(self._slot, key, s)
        return s

    cdef int _free_slot(self, int32_t s) except -1:
        # The caller has unlinked the slot from the window or the heap.
        key = self._keys[s]
        PyDict_DelItem(self._slot, key)
        self._keys[s] = None
        self._seg[s] = FREE
        self._free[self._nfree] = s
        self._nfree += 1
        return 0

    # -- window list ---------------------------------------------------------

    cdef inline void _w_append(self, int32_t s) noexcept:
        self._prev[s] = self._wtail
        self._next[s] = -1
        if self._wtail >= 0:
            self._next[self._wtail] = s
        else:
            self._whead = s
        self._wtail = s
        self._seg[s] = IN_WINDOW

    cdef inline void _w_unlink(self, int32_t s) noexcept:
        cdef int32_t p = self._prev[s]
        cdef int32_t n = self._next[s]
        if p >= 0:
            self._next[p] = n
        else:
            self._whead = n
        if n >= 0:
            self._prev[n] = p
        else:
            self._wtail = p

    # -- heap ordered by (prio, gen) ------------------------------------------

    cdef inline bint _less(self, int32_t a, int32_t b) noexcept:
        if self._prio[a] != self._prio[b]:
            return self._prio[a] < self._prio[b]
        return self._gen_of[a] < self._gen_of[b]

    cdef void _sift_up(self, Py_ssize_t i) noexcept:
        cdef int32_t* heap = self._heap
        cdef int32_t s = heap[i]
        cdef Py_ssize_t parent
        while i > 0:
            parent = (i - 1) >> 1
            if not self._less(s, heap[parent]):
                break
            heap[i] = heap[parent]
            self._hpos[heap[i]] = <int32_t>i
            i = parent
        heap[i] = s
        self._hpos[s] = <int32_t>i

    cdef void _sift_down(self, Py_ssize_t i) noexcept:
        cdef int32_t* heap = self._heap
        cdef Py_ssize_t n = self._heap_len
        cdef int32_t s = heap[i]
        cdef Py_ssize_t child
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and self._less(heap[child + 1], heap[child]):
                child += 1
            if not self._less(heap[child], s):
                break
            heap[i] = heap[child]
            self._hpos[heap[i]] = <int32_t>i
            i = child
        heap[i] = s
        self._hpos[s] = <int32_t>i

    cdef void _heap_insert(self, int32_t s) noexcept:
        self._heap[self._heap_len] = s
        self._heap_len += 1
        self._sift_up(self._heap_len - 1)

    cdef void _heap_delete(self, int32_t s) noexcept:
        cdef Py_ssize_t i = self._hpos[s]
        cdef int32_t last
        self._heap_len -= 1
        self._hpos[s] = -1
        if i == self._heap_len:
            return
        last = self._heap[self._heap_len]
        self._heap[i] = last
        self._hpos[last] = <int32_t>i
        self._sift_up(i)
        self._sift_down(self._hpos[last])

    cdef int32_t _heap_pop(self) noexcept:
        cdef int32_t s = self._heap[0]
        self._heap_delete(s)
        return s

    # -- introspection -------------------------------------------------------

    @property
    def capacity_bytes(self):
        """The byte budget; ``used_bytes`` never exceeds it after a call returns."""
        return self._capacity

    @property
    def used_bytes(self):
        """Bytes of all resident objects."""
        return self._used

    @property
    def window_share(self):
        """The window's current share of the bytes (moved by the ghost lists)."""
        return self._window_share

    @property
    def sketch(self):
        """The popularity sketch (its ``top()`` gives the node's hottest content)."""
        return self._sketch

    def __contains__(self, key):
        return key in self._slot

    def __len__(self):
        return len(self._slot)

    def __iter__(self):
        return iter(list(self._slot))

    def size_of(self, key):
        """Bytes recorded for a resident ``key``, or None when not resident."""
        s = self._slot.get(key)
        if s is None:
            return None
        return self._size[<int32_t>s]

    # -- requests ------------------------------------------------------------

    def request(self, key, size):
        """One access of ``key`` of ``size`` bytes; True on a hit.

        A hit with another size is a miss of the new version. Raises
        ValueError for a size that is not an integer >= 0 and TypeError for a
        key that is not int, str or bytes.
        """
        cdef int overflow = 0
        cdef int64_t n = -1
        if type(size) is int:
            n = PyLong_AsLongLongAndOverflow(size, &overflow)
        if overflow or not 0 <= n <= _MAX_BYTES:
            n = _coerce_size(size)
        cdef uint64_t h = _hash(key)
        cdef int freq = self._sketch._increment_hash(key, h)
        cdef bint hit = False
        cdef int32_t s
        cdef PyObject* found = PyDict_GetItem(self._slot, key)
        if found != NULL:
            s = <object>found
            if self._size[s] == n:
                hit = True
                if self._seg[s] == IN_MAIN:
                    self._push(s, freq)
                else:
                    self._w_unlink(s)
                    self._w_append(s)
            else:
                self.remove(key)
        if not hit:
            if self._adaptive:
                self._adapt(key, n)
            if n <= self._capacity:
                self._admit(key, n, freq)
        return hit

    cdef inline double _value_of(self, int freq, int64_t size) noexcept:
        if self._unit:
            return <double>freq
        return freq * pow(<double>(size if size else 1), self._weight)

    cdef void _push(self, int32_t s, int freq) noexcept:
        # Into main, or a new priority for an object already there.
        cdef int64_t size = self._size[s]
        self._gen += 1
        self._gen_of[s] = self._gen
        cdef double value = self._value_of(freq, size)
        self._value[s] = value
        self._prio[s] = self.clock + value / <double>(size if size else 1)
        if self._seg[s] == IN_MAIN:
            self._sift_up(self._hpos[s])
            self._sift_down(self._hpos[s])
        else:
            self._seg[s] = IN_MAIN
            self._heap_insert(s)

    cdef int _admit(self, object key, int64_t size, int freq) except -1:
        cdef int32_t s = self._new_slot(key, size)
        cdef int32_t c
        cdef int64_t csize
        cdef int cfreq
        self._used += size
        cdef Py_ssize_t others = PyDict_Size(self._slot)
        if others > self._sketch_items:
            self._grow_sketch()
        others -= 1
        if self._unit and others and size > (self._used - size) // others:
            # Larger than the mean resident, weighting by objects: duel at once.
            self._used -= size
            self._place(s, freq)
        else:
            self._w_append(s)
            self._window_bytes += size
        while self._window_bytes > self._window_cap and self._whead >= 0:
            c = self._whead
            self._w_unlink(c)
            csize = self._size[c]
            self._window_bytes -= csize
            self._used -= csize
            if c == s:
                cfreq = freq
            else:
                cfreq = self._sketch._estimate_hash(_hash(self._keys[c]))
            self._place(c, cfreq)
        if self._used > self._capacity:
            self._evict_until(self._capacity)
        return 0

    cdef int _place(self, int32_t c, int cfreq) except -1:
        # A candidate whose bytes are not counted in used: into main, or a duel.
        if self._used + self._size[c] <= self._capacity:
            self._used += self._size[c]
            self._push(c, cfreq)
        else:
            self._duel(c, cfreq)
        return 0

    cdef int _grow_sketch(self) except -1:
        while self._sketch_items < len(self._slot):
            self._sketch_items *= 2
        width = self._sketch_items * self._sketch_factor
        self._sketch.grow(width, sample_size=self._sample_factor * width)
        return 0

    cdef int _duel(self, int32_t c, int cfreq) except -1:
        cdef int64_t csize = self._size[c]
        cdef int64_t need = self._used + csize - self._capacity
        cdef double cvalue = self._value_of(cfreq, csize)
        cdef int64_t freed = 0
        cdef double total = 0.0
        cdef Py_ssize_t npop = 0
        cdef Py_ssize_t j
        cdef int32_t v
        cdef int32_t* popped = self._popped
        if self._heap_len == 0 or self.clock + cvalue / <double>(csize if csize else 1) > self._prio[self._heap[0]]:
            while freed < need and self._heap_len:
                v = self._heap_pop()
                popped[npop] = v
                npop += 1
                freed += self._size[v]
                total += self._value[v]
            if freed >= need and cvalue * <double>freed > total * <double>need:
                for j in range(npop):
                    v = popped[j]
                    self._used -= self._size[v]
                    if self._prio[v] > self.clock:
                        self.clock = self._prio[v]
                    key = self._keys[v]
                    self._free_slot(v)
                    self._ghost(self._ghost_main, key)
                    self._evicted(key)
                self._used += csize
                self._push(c, cfreq)
                return 0
            for j in range(npop):
                self._heap_insert(popped[j])
        key = self._keys[c]
        self._free_slot(c)
        self.rejections += 1
        self._ghost(self._ghost_window, key)
        self._evicted(key)
        return 0

    cdef int _evicted(self, object key) except -1:
        self.evictions += 1
        if self._on_evict is not None:
            self._on_evict(key)
        return 0

    cdef int _evict_until(self, int64_t limit) except -1:
        cdef int32_t v
        while self._used > limit and self._heap_len:
            v = self._heap_pop()
            self._used -= self._size[v]
            if self._prio[v] > self.clock:
                self.clock = self._prio[v]
            key = self._keys[v]
            self._free_slot(v)
            self._ghost(self._ghost_main, key)
            self._evicted(key)
        while self._used > limit and self._whead >= 0:
            v = self._whead
            self._w_unlink(v)
            self._window_bytes -= self._size[v]
            self._used -= self._size[v]
            key = self._keys[v]
            self._free_slot(v)
            self._ghost(self._ghost_window, key)
            self._evicted(key)
        return 0

    cdef int _shrink_window(self) except -1:
        cdef int32_t v
        while self._window_bytes > self._window_cap and self._whead >= 0:
            v = self._whead
            self._w_unlink(v)
            self._window_bytes -= self._size[v]
            self._push(v, self._sketch._estimate_hash(_hash(self._keys[v])))
        return 0

    cdef int _ghost(self, object ghost, object key) except -1:
        if not self._adaptive:
            return 0
        ghost[key] = None
        ghost.move_to_end(key)
        cdef Py_ssize_t limit = PyDict_Size(self._slot)
        if limit < _GHOST_MIN:
            limit = _GHOST_MIN
        while len(ghost) > limit:
            ghost.popitem(last=False)
        return 0

    cdef int _adapt(self, object key, int64_t size) except -1:
        # ARC's rule on the window's share (see the twin's _adapt).
        cdef double ratio, direction, share
        gw = self._ghost_window
        gm = self._ghost_main
        if key in gw:
            ratio = <double>len(gm) / <double>len(gw)
            del gw[key]
            direction = 1.0
        elif key in gm:
            ratio = <double>len(gw) / <double>len(gm)
            del gm[key]
            direction = -1.0
        else:
            return 0
        if ratio < 1.0:
            ratio = 1.0
        share = self._window_share + direction * ratio * <double>(size if size else 1) / <double>(
            self._capacity if self._capacity else 1)
        if share < 0.0:
            share = 0.0
        elif share > self._max_window:
            share = self._max_window
        self._window_share = share
        self._window_cap = <int64_t>(self._capacity * share)
        self._shrink_window()
        return 0

    # -- maintenance ---------------------------------------------------------

    def remove(self, key):
        """Drop ``key`` without reporting it as evicted; True if it was resident."""
        found = self._slot.get(key)
        if found is None:
            return False
        cdef int32_t s = found
        self._used -= self._size[s]
        if self._seg[s] == IN_MAIN:
            self._heap_delete(s)
        else:
            self._w_unlink(s)
            self._window_bytes -= self._size[s]
        self._free_slot(s)
        return True

    def resize(self, capacity_bytes):
        """Change the budget; evicts lowest-priority objects, then window LRU, to fit."""
        self._capacity = _check_capacity(capacity_bytes)
        self._window_cap = <int64_t>(self._capacity * self._window_share)
        self._evict_until(self._capacity)
        self._shrink_window()
