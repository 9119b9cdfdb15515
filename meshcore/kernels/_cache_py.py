"""The cache kernel's pure twin: popularity sketch and adaptive size-aware TinyLFU.

This module is the executable specification of ``ext/cache.pyx`` (compiled as
``meshcore.kernels._cache_c``): same names, signatures, exceptions and
byte-identical results, stdlib and xxhash only, so it runs on MIPS routers.
docs/kernels/cache.md has the exact algorithm.

Theory of operation
-------------------
:class:`FrequencySketch` is TinyLFU's popularity tracker (G. Einziger,
R. Friedman, B. Manes, "TinyLFU: A Highly Efficient Cache Admission Policy",
ACM Transactions on Storage 13(4), 2017) with Caffeine's counting and aging: a
count-min sketch (Cormode and Muthukrishnan 2005) of saturating byte counters
behind a one-hash-pair doorkeeper, halved every ``sample_size`` accesses.

:class:`AdaptiveTinyLFU` is the per-request work of the default cache policy:

* a **window** LRU takes newcomers; when the window holds more than its
  share of the bytes, its least recent object is the *candidate* for the main
  area (weighting by objects, a newcomer larger than the mean resident is a
  candidate at once: recency cannot pay for its bytes);
* the **main area** is GreedyDual-Size-Frequency (Cherkasova, HP Labs 1998):
  priority ``L + v / size`` with ``v = f × size^(1−β)`` (``f`` the sketch
  estimate at the last access), eviction takes the lowest (priority, push
  order) and raises the inflation value ``L`` to it;
* a candidate that does not fit duels (TinyLFU's admission, size-aware): it is
  refused at once if its own priority would be the lowest; otherwise the
  lowest-priority residents are taken until they free the bytes it needs, and
  it is admitted only if ``v_c × freed > (Σ v_victims) × need``;
* the window's share **adapts online** by ARC's rule (N. Megiddo, D. Modha,
  "ARC: A Self-Tuning, Low Overhead Replacement Cache", FAST 2003) applied to
  the window/main split: two *ghost* lists remember only keys — those the
  window let go (refused by the duel or pushed out of the window) and those
  evicted from main, each at most as many as there are residents. A miss on a
  window ghost says a larger window would have hit, a miss on a main ghost
  that a larger main would have; the share moves towards the side that was
  short by the request's bytes over the capacity, times the other ghost's
  length over this one's (at least 1). A recency-heavy workload (a news
  morning, a web portal) opens the window towards LRU; a frequency-heavy one
  (a video catalogue, scans of one-time objects) closes it to pure TinyLFU
  admission. Unlike a hill climber comparing the hit ratios of successive
  periods, the signal comes from each request, so a short trace or a changing
  workload moves it at once, and a flat one does not make it wander.

Every float is computed with the same IEEE-754 double operations, in the same
order, as in the compiled module; the heap order is (priority, push counter),
unique, so both backends evict the very same objects.
"""

from __future__ import annotations

import heapq
import operator
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator

import xxhash

__all__ = ["MAX_BYTES", "WEIGHTINGS", "AdaptiveTinyLFU", "FrequencySketch", "key_hash"]

_MASK64 = 0xFFFFFFFFFFFFFFFF
#: Maps each counter byte to its half; ``bytes.translate`` halves a whole row
#: in C speed during the aging reset.
_HALVE = bytes(i >> 1 for i in range(256))
_xxh3 = xxhash.xxh3_64_intdigest


def key_hash(key: Hashable) -> int:
    """64-bit stable hash of a cache key (``int``, ``str`` or ``bytes``).

    Stable across processes and machines, so two nodes agree on sketch
    layouts. Raises TypeError for any other key type.
    """
    if type(key) is int:
        # SplitMix64 finaliser: cheap, and spreads consecutive ids well.
        z = (key + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)
    if isinstance(key, str):
        return _xxh3(key.encode("utf-8", "surrogatepass"))
    if isinstance(key, (bytes, bytearray, memoryview)):
        return _xxh3(bytes(key))
    if isinstance(key, int):  # bool and int subclasses
        return key_hash(int(key))
    raise TypeError(f"key: expected int, str or bytes, got {type(key).__name__}")


def _check_int(name: str, value: object, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return value


class FrequencySketch:
    """Aging count-min sketch with a doorkeeper; estimates recent access counts.

    ``width`` is rounded up to a power of two (columns per row, at least 16);
    ``depth`` rows (1–8); ``sample_size`` accesses between halvings (default
    10 × width); ``top_k`` heavy-hitter candidates kept for :meth:`top`
    (0 disables them); ``max_count`` caps each counter (1–255). Raises
    ValueError naming a bad argument.
    """

    __slots__ = (
        "_additions",
        "_depth",
        "_door",
        "_door_mask",
        "_mask",
        "_max",
        "_rows",
        "_sample_size",
        "_top",
        "_top_k",
        "_top_min",
        "_width",
        "resets",
    )

    def __init__(
        self,
        width: int = 1024,
        *,
        depth: int = 4,
        sample_size: int | None = None,
        top_k: int = 32,
        max_count: int = 15,
    ) -> None:
        _check_int("width", width, 1)
        _check_int("depth", depth, 1)
        if depth > 8:
            raise ValueError(f"depth: expected an integer between 1 and 8, got {depth!r}")
        _check_int("top_k", top_k, 0)
        _check_int("max_count", max_count, 1)
        if max_count > 255:
            raise ValueError(f"max_count: expected an integer between 1 and 255, got {max_count!r}")
        self._max = max_count
        w = 16
        while w < width:
            w <<= 1
        self._width = w
        self._mask = w - 1
        self._depth = depth
        self._sample_size = (
            10 * w if sample_size is None else _check_int("sample_size", sample_size, 1)
        )
        self._rows = bytearray(depth * w)
        # Doorkeeper: 2 bits per key in a bitmap of 2 × width bits.
        self._door = bytearray(w // 4)
        self._door_mask = 2 * w - 1
        self._additions = 0
        self._top_k = top_k
        self._top: dict[Hashable, int] = {}
        self._top_min = 0
        #: Number of aging resets (halvings) so far.
        self.resets = 0

    @property
    def width(self) -> int:
        """Counters per row (a power of two)."""
        return self._width

    @property
    def depth(self) -> int:
        """Number of rows (hash functions)."""
        return self._depth

    @property
    def sample_size(self) -> int:
        """Recorded accesses between two agings."""
        return self._sample_size

    @property
    def memory_bytes(self) -> int:
        """Bytes of counter and doorkeeper storage (the bounded part)."""
        return len(self._rows) + len(self._door)

    def _door_test_set(self, h: int) -> bool:
        """Set the key's doorkeeper bits; return True if both were already set."""
        door = self._door
        m = self._door_mask
        a = h & m
        b = (h >> 21) & m
        ia, ba = a >> 3, 1 << (a & 7)
        ib, bb = b >> 3, 1 << (b & 7)
        if door[ia] & ba and door[ib] & bb:
            return True
        door[ia] |= ba
        door[ib] |= bb
        return False

    def _door_contains(self, h: int) -> bool:
        door = self._door
        m = self._door_mask
        a = h & m
        b = (h >> 21) & m
        return bool(door[a >> 3] & (1 << (a & 7)) and door[b >> 3] & (1 << (b & 7)))

    def _count(self, h: int) -> int:
        rows = self._rows
        mask = self._mask
        w = self._width
        lo = h & 0xFFFFFFFF
        hi = (h >> 32) | 1
        best = 255
        for i in range(self._depth):
            c = rows[i * w + ((lo + i * hi) & mask)]
            if c < best:
                best = c
        return best

    def increment(self, key: Hashable) -> int:
        """Record one access of ``key``; return its new estimate.

        Raises TypeError for a key that is not int, str or bytes.
        """
        h = key_hash(key)
        if self._door_test_set(h):
            rows = self._rows
            mask = self._mask
            w = self._width
            lo = h & 0xFFFFFFFF
            hi = (h >> 32) | 1
            idx = [i * w + ((lo + i * hi) & mask) for i in range(self._depth)]
            best = min(rows[j] for j in idx)
            if best < self._max:
                for j in idx:
                    if rows[j] == best:
                        rows[j] = best + 1
                best += 1
            est = best + 1
        else:
            est = self._count(h) + 1
        if self._top_k and est > self._top_min:
            self._offer(key, est)
        self._additions += 1
        if self._additions >= self._sample_size:
            self.reset()
        return est

    def estimate(self, key: Hashable) -> int:
        """Estimated recent access count of ``key`` (0 for a key never seen).

        Never below the true count since the last aging (count-min property),
        saturating at ``max_count + 1``. Raises TypeError for a bad key type.
        """
        h = key_hash(key)
        return self._count(h) + (1 if self._door_contains(h) else 0)

    def _offer(self, key: Hashable, est: int) -> None:
        top = self._top
        if key in top or len(top) < self._top_k:
            top[key] = est
            if len(top) == self._top_k:
                self._top_min = min(top.values())
            return
        # Replace the weakest candidate (ties: the oldest entry loses).
        weakest = min(top, key=top.__getitem__)
        del top[weakest]
        top[key] = est
        self._top_min = min(top.values())

    def top(self, n: int = 10) -> list[tuple[Hashable, int]]:
        """The ``n`` most popular keys seen recently, as ``(key, estimate)``.

        Ordered by estimate, highest first; ties keep the order in which keys
        entered the candidate table. At most ``top_k`` keys can be reported.
        Raises ValueError if ``n`` is negative.
        """
        _check_int("n", n, 0)
        ranked = [(k, self.estimate(k)) for k in self._top]
        ranked.sort(key=lambda kv: -kv[1])
        return ranked[:n]

    def reset(self) -> None:
        """Age the sketch now: halve every counter and clear the doorkeeper."""
        self._rows = bytearray(bytes(self._rows).translate(_HALVE))
        self._door = bytearray(len(self._door))
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

    def grow(self, width: int, *, sample_size: int | None = None) -> None:
        """Widen the sketch to ``width`` columns (rounded up) without losing counts.

        Each row is tiled: a key's new column ``c & (new_width − 1)`` reduces
        to its old column modulo the old width, so every estimate is
        unchanged right after growing and collisions only get rarer as new
        accesses spread out. The doorkeeper is tiled the same way.
        ``sample_size`` defaults to 10 × the new width. Raises ValueError if
        ``width`` is smaller than the current width.
        """
        _check_int("width", width, 1)
        w = 16
        while w < width:
            w <<= 1
        if w < self._width:
            raise ValueError(f"width: expected at least the current {self._width}, got {width!r}")
        k = w // self._width
        old = self._width
        rows = bytes(self._rows)
        self._rows = bytearray(
            b"".join(rows[i * old : (i + 1) * old] * k for i in range(self._depth))
        )
        self._door = bytearray(bytes(self._door) * k)
        self._width = w
        self._mask = w - 1
        self._door_mask = 2 * w - 1
        self._sample_size = (
            10 * w if sample_size is None else _check_int("sample_size", sample_size, 1)
        )

    def clear(self) -> None:
        """Forget everything (counters, doorkeeper, candidates)."""
        self._rows = bytearray(len(self._rows))
        self._door = bytearray(len(self._door))
        self._additions = 0
        self._top.clear()
        self._top_min = 0


#: Hit-ratio weightings of :class:`AdaptiveTinyLFU` and the β each implies.
WEIGHTINGS = {"objects": 1.0, "bytes": 0.0}
#: Ghost lists hold at least this many keys (else as many as there are residents).
_GHOST_MIN = 64


#: Largest size or capacity in bytes (4 EiB): both backends keep them in int64.
MAX_BYTES = 1 << 62


def _check_capacity(capacity_bytes: object) -> int:
    if (
        not isinstance(capacity_bytes, int)
        or isinstance(capacity_bytes, bool)
        or not 0 <= capacity_bytes <= MAX_BYTES
    ):
        raise ValueError(f"capacity_bytes: expected an integer >= 0, got {capacity_bytes!r}")
    return int(capacity_bytes)


def _bad_size(size: object) -> ValueError:
    return ValueError(f"size: expected an integer >= 0, got {size!r}")


def _coerce_size(size: object) -> int:
    # Integer-like sizes (numpy integers from a trace reader), not bools or floats.
    if isinstance(size, bool):
        raise _bad_size(size)
    try:
        size = operator.index(size)  # type: ignore[arg-type]
    except TypeError:
        raise _bad_size(size) from None
    if not 0 <= size <= MAX_BYTES:
        raise _bad_size(size)
    return size


def _check_share(name: str, value: object, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= high:
        raise ValueError(f"{name}: expected a number in [0, {high:g}], got {value!r}")
    return float(value)


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return value


def _check_params(
    capacity_bytes: object,
    weighting: object,
    size_exponent: object,
    window: object,
    adaptive: object,
    max_window: object,
    sketch_factor: object,
    sample_factor: object,
    on_evict: object,
) -> tuple[int, float, bool, float, float]:
    """:class:`AdaptiveTinyLFU`'s argument checks, shared by both backends.

    Returns ``(capacity, beta, adaptive, max_window, window)``; raises
    ValueError or TypeError naming the bad argument.
    """
    capacity = _check_capacity(capacity_bytes)
    if not isinstance(weighting, str) or weighting not in WEIGHTINGS:
        known = ", ".join(sorted(WEIGHTINGS))
        raise ValueError(f"weighting: expected one of {known}, got {weighting!r}")
    beta = WEIGHTINGS[weighting] if size_exponent is None else size_exponent
    beta = _check_share("size_exponent", beta)
    flag = _check_flag("adaptive", adaptive)
    top = _check_share("max_window", max_window)
    start = _check_share("window", window, top)
    _check_int("sketch_factor", sketch_factor, 1)
    _check_int("sample_factor", sample_factor, 1)
    if on_evict is not None and not callable(on_evict):
        raise TypeError(f"on_evict: expected a callable or None, got {type(on_evict).__name__}")
    return capacity, beta, flag, top, start


class AdaptiveTinyLFU:
    """Adaptive size-aware TinyLFU over a byte budget: the default policy's core.

    ``capacity_bytes`` is the budget. ``weighting`` is ``"objects"`` (aim at
    object hit ratio, β = 1) or ``"bytes"`` (byte hit ratio, β = 0);
    ``size_exponent`` overrides β (0–1). ``window`` is the window's starting
    share of the bytes (0–``max_window``), ``adaptive`` lets the ghost lists
    move it within ``[0, max_window]`` (``max_window`` ≤ 1). The sketch has
    ``sketch_factor`` columns per resident object (regrown as the cache
    fills), ``sketch_depth`` rows, counters capped at ``max_count``, aging
    every ``sample_factor`` × width requests, and ``top_k`` heavy-hitter
    candidates. ``on_evict(key)`` is called for every key that leaves other
    than by :meth:`remove` (a refused newcomer included). Raises ValueError or
    TypeError naming a bad argument.
    """

    __slots__ = (
        "_adaptive",
        "_capacity",
        "_freq",
        "_gen",
        "_ghost_main",
        "_ghost_window",
        "_heap",
        "_main",
        "_max_window",
        "_on_evict",
        "_sizes",
        "_sketch_args",
        "_sketch_items",
        "_unit",
        "_used",
        "_weight",
        "_window",
        "_window_bytes",
        "_window_cap",
        "_window_share",
        "clock",
        "evictions",
        "rejections",
        "sketch",
    )

    def __init__(
        self,
        capacity_bytes: int,
        *,
        weighting: str = "objects",
        size_exponent: float | None = None,
        window: float = 0.01,
        adaptive: bool = True,
        max_window: float = 0.8,
        sketch_factor: int = 8,
        sketch_depth: int = 4,
        max_count: int = 63,
        top_k: int = 32,
        sample_factor: int = 10,
        on_evict: Callable[[Hashable], object] | None = None,
    ) -> None:
        (
            self._capacity,
            beta,
            self._adaptive,
            self._max_window,
            self._window_share,
        ) = _check_params(
            capacity_bytes,
            weighting,
            size_exponent,
            window,
            adaptive,
            max_window,
            sketch_factor,
            sample_factor,
            on_evict,
        )
        self._unit = beta == 1.0
        self._weight = 1.0 - beta
        self._on_evict = on_evict
        self._used = 0
        self._sizes: dict[Hashable, int] = {}
        self._window: OrderedDict[Hashable, int] = OrderedDict()
        self._window_bytes = 0
        self._window_cap = int(self._capacity * self._window_share)
        # Main: key -> push counter of its live heap entry; stale entries are
        # skipped when popped and swept when they outnumber live ones.
        self._main: dict[Hashable, int] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._freq: dict[Hashable, float] = {}
        self._gen = 0
        #: GreedyDual inflation value L: highest priority evicted so far.
        self.clock = 0.0
        #: Objects evicted or refused (every ``on_evict`` call).
        self.evictions = 0
        #: Candidates refused by the duel.
        self.rejections = 0
        # Ghosts (keys only, oldest first): objects the window let go (refused
        # by the duel or pushed out of it) and objects evicted from main.
        self._ghost_window: OrderedDict[Hashable, None] = OrderedDict()
        self._ghost_main: OrderedDict[Hashable, None] = OrderedDict()
        self._sketch_args = (sketch_factor, sample_factor)
        self._sketch_items = 64
        width = self._sketch_items * sketch_factor
        #: The popularity sketch (its ``top()`` gives the node's hottest content).
        self.sketch = FrequencySketch(
            width,
            depth=sketch_depth,
            top_k=top_k,
            max_count=max_count,
            sample_size=sample_factor * width,
        )

    # -- introspection -----------------------------------------------------

    @property
    def capacity_bytes(self) -> int:
        """The byte budget; ``used_bytes`` never exceeds it after a call returns."""
        return self._capacity

    @property
    def used_bytes(self) -> int:
        """Bytes of all resident objects."""
        return self._used

    @property
    def window_share(self) -> float:
        """The window's current share of the bytes (moved by the ghost lists)."""
        return self._window_share

    def __contains__(self, key: object) -> bool:
        return key in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._sizes))

    def size_of(self, key: Hashable) -> int | None:
        """Bytes recorded for a resident ``key``, or None when not resident."""
        return self._sizes.get(key)

    # -- requests ----------------------------------------------------------

    def request(self, key: Hashable, size: int) -> bool:
        """One access of ``key`` of ``size`` bytes; True on a hit.

        A hit with another size is a miss of the new version. Raises
        ValueError for a size that is not an integer >= 0 and TypeError for a
        key that is not int, str or bytes.
        """
        if type(size) is not int or not 0 <= size <= MAX_BYTES:
            size = _coerce_size(size)
        freq = self.sketch.increment(key)
        hit = False
        old = self._sizes.get(key)
        if old is not None:
            if old == size:
                hit = True
                if key in self._main:
                    self._push(key, size, freq)
                else:
                    self._window.move_to_end(key)
            else:
                self.remove(key)
        if not hit:
            if self._adaptive:
                self._adapt(key, size)
            if size <= self._capacity:
                self._admit(key, size, freq)
        return hit

    def _value(self, freq: int, size: int) -> float:
        if self._unit:
            return float(freq)
        return freq * float(size or 1) ** self._weight

    def _push(self, key: Hashable, size: int, freq: int) -> None:
        self._gen += 1
        self._main[key] = self._gen
        value = self._value(freq, size)
        self._freq[key] = value
        heapq.heappush(self._heap, (self.clock + value / (size or 1), self._gen, key))
        if len(self._heap) > 2 * len(self._main) + 64:
            main = self._main
            self._heap = [e for e in self._heap if main.get(e[2]) == e[1]]
            heapq.heapify(self._heap)

    def _admit(self, key: Hashable, size: int, freq: int) -> None:
        self._sizes[key] = size
        self._used += size
        if len(self._sizes) > self._sketch_items:
            self._grow_sketch()
        others = len(self._sizes) - 1
        if self._unit and others and size > (self._used - size) // others:
            # Weighting by objects, an object larger than the mean resident
            # costs more bytes per hit than recency alone can justify: it is
            # judged by the duel at once instead of waiting in the window.
            self._used -= size
            self._place(key, size, freq)
        else:
            self._window[key] = size
            self._window_bytes += size
        window = self._window
        while self._window_bytes > self._window_cap and window:
            cand, csize = window.popitem(last=False)
            self._window_bytes -= csize
            self._used -= csize
            # The key just counted needs no second estimate.
            self._place(cand, csize, freq if cand is key else self.sketch.estimate(cand))
        if self._used > self._capacity:
            self._evict_until(self._capacity)

    def _place(self, cand: Hashable, csize: int, cfreq: int) -> None:
        """Move a candidate (its bytes not counted in ``used``) into main, or duel."""
        if self._used + csize <= self._capacity:
            self._used += csize
            self._push(cand, csize, cfreq)
        else:
            self._duel(cand, csize, cfreq)

    def _grow_sketch(self) -> None:
        # Caffeine sizes its sketch to the entry count; a byte budget learns it.
        while self._sketch_items < len(self._sizes):
            self._sketch_items *= 2
        factor, sample = self._sketch_args
        width = self._sketch_items * factor
        self.sketch.grow(width, sample_size=sample * width)

    def _pop_min(self) -> tuple[float, int, Hashable] | None:
        heap = self._heap
        main = self._main
        while heap:
            entry = heapq.heappop(heap)
            if main.get(entry[2]) == entry[1]:
                return entry
        return None

    def _duel(self, cand: Hashable, csize: int, cfreq: int) -> None:
        """Admit ``cand`` only if it brings more hits than its victims take away."""
        need = self._used + csize - self._capacity
        cvalue = self._value(cfreq, csize)
        heap = self._heap
        main = self._main
        while heap and main.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)  # stale entry
        popped: list[tuple[float, int, Hashable]] = []
        freed = 0
        total = 0.0
        if not heap or self.clock + cvalue / (csize or 1) > heap[0][0]:
            sizes = self._sizes
            freqs = self._freq
            while freed < need:
                entry = self._pop_min()
                if entry is None:
                    break
                popped.append(entry)
                freed += sizes[entry[2]]
                total += freqs[entry[2]]
            if freed >= need and cvalue * freed > total * need:
                for prio, _, k in popped:
                    del main[k]
                    del freqs[k]
                    self._used -= sizes.pop(k)
                    if prio > self.clock:
                        self.clock = prio
                    self._ghost(self._ghost_main, k)
                    self._evicted(k)
                self._used += csize
                self._push(cand, csize, cfreq)
                return
            for entry in popped:
                heapq.heappush(heap, entry)
        del self._sizes[cand]
        self.rejections += 1
        self._ghost(self._ghost_window, cand)
        self._evicted(cand)

    def _evicted(self, key: Hashable) -> None:
        self.evictions += 1
        if self._on_evict is not None:
            self._on_evict(key)

    def _evict_until(self, limit: int) -> None:
        while self._used > limit:
            entry = self._pop_min()
            if entry is None:
                break
            prio, _, k = entry
            del self._main[k]
            del self._freq[k]
            self._used -= self._sizes.pop(k)
            if prio > self.clock:
                self.clock = prio
            self._ghost(self._ghost_main, k)
            self._evicted(k)
        window = self._window
        while self._used > limit and window:
            k, s = window.popitem(last=False)
            self._window_bytes -= s
            self._used -= s
            del self._sizes[k]
            self._ghost(self._ghost_window, k)
            self._evicted(k)

    def _shrink_window(self) -> None:
        # Objects beyond the window's share move to main as they are: the
        # bytes held do not change, so nothing has to duel or leave.
        window = self._window
        while self._window_bytes > self._window_cap and window:
            k, s = window.popitem(last=False)
            self._window_bytes -= s
            self._push(k, s, self.sketch.estimate(k))

    def _ghost(self, ghost: OrderedDict[Hashable, None], key: Hashable) -> None:
        # Only keys: what an object would have earned had it stayed.
        if not self._adaptive:
            return
        ghost[key] = None
        ghost.move_to_end(key)
        limit = max(_GHOST_MIN, len(self._sizes))
        while len(ghost) > limit:
            ghost.popitem(last=False)

    def _adapt(self, key: Hashable, size: int) -> None:
        """ARC's rule on the window's share: a miss on a ghost says which side was short.

        A key the window let go means a larger window would have hit; a key
        evicted from main means a larger main would have. The share moves by
        the request's bytes over the capacity, times the other ghost's size
        over this one's (at least 1), as ARC moves its target.
        """
        gw = self._ghost_window
        gm = self._ghost_main
        if key in gw:
            ratio = len(gm) / len(gw)
            del gw[key]
            direction = 1.0
        elif key in gm:
            ratio = len(gw) / len(gm)
            del gm[key]
            direction = -1.0
        else:
            return
        if ratio < 1.0:
            ratio = 1.0
        share = self._window_share + direction * ratio * float(size or 1) / float(
            self._capacity or 1
        )
        if share < 0.0:
            share = 0.0
        elif share > self._max_window:
            share = self._max_window
        self._window_share = share
        self._window_cap = int(self._capacity * share)
        self._shrink_window()

    # -- maintenance -------------------------------------------------------

    def remove(self, key: Hashable) -> bool:
        """Drop ``key`` without reporting it as evicted; True if it was resident."""
        size = self._sizes.pop(key, None)
        if size is None:
            return False
        self._used -= size
        if self._main.pop(key, None) is None:
            del self._window[key]
            self._window_bytes -= size
        else:
            del self._freq[key]
        return True

    def resize(self, capacity_bytes: int) -> None:
        """Change the budget; evicts lowest-priority objects, then window LRU, to fit."""
        self._capacity = _check_capacity(capacity_bytes)
        self._window_cap = int(self._capacity * self._window_share)
        self._evict_until(self._capacity)
        self._shrink_window()
