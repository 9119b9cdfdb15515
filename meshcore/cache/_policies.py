"""Admission and eviction policies over a byte budget.

Theory of operation
-------------------
A policy tracks which keys are resident and how many bytes they hold; it
never stores content. ``request(key, size)`` is one access: a hit refreshes
the key's standing, a miss decides admission and evicts whole objects until
the bytes held fit ``capacity_bytes`` again. An object larger than the
capacity is never admitted. Every key that leaves the policy other than by
:meth:`CachePolicy.remove` is reported to the optional ``on_evict`` callback,
which is how :class:`meshcore.cache.ContentCache` frees chunks.

``"default"`` is **adaptive size-aware TinyLFU** (:class:`SizeAwareTinyLFUPolicy`,
whose per-request work is the cache kernel
:class:`meshcore.kernels.AdaptiveTinyLFU`): an admission window LRU whose share
of the bytes adapts online by ARC's rule on two ghost lists (workloads change
from recency to frequency and back), then TinyLFU admission
(Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache Admission
Policy", ACM ToS 2017) in front of a GreedyDual-Size-Frequency
main area (Cherkasova, "Improving WWW Proxies Performance with
Greedy-Dual-Size-Frequency Caching Policy", HP Labs 1998):

* popularity comes from a :class:`~meshcore.cache.FrequencySketch` fed by
  every request (hits and misses), sized to 8 counters per resident object and
  regrown as the cache fills, counters capped at 63, halved every
  10 × width requests;
* each resident object has priority ``L + f / size`` (``f`` its estimate at
  its last access); eviction takes the lowest priority and sets the
  inflation value ``L`` to it, so objects that stopped being requested age
  out. Hits per byte is what object hit ratio rewards: a cold 700 MB video
  goes long before the popular 2 KB pages;
* a new object enters the window LRU; the window's least recent object,
  once the window exceeds its share, is admitted to main at once if it fits. Otherwise it
  duels: if its own priority ``L + f / size`` would be the lowest in the
  cache it is refused at once; else the lowest-priority residents are taken
  as victims until they free the ``need`` bytes, and it is admitted only if
  ``f × freed > (Σ victims' f) × need``: it must bring more hits than the
  victims take away, counting only the share of the freed bytes it uses.
  A 700 MB video must be more popular than all the 2 KB pages it would push
  out together (their bytes add up to its size), while a one-hit page may
  replace a cold video (it needs a sliver of the bytes that video frees). A
  scan of one-time objects never displaces anything popular. With equal
  sizes this is exactly TinyLFU's candidate-versus-victim duel (admit iff
  ``f > f_victim``) over an LFU-with-aging main area.
* the window's share starts at 1 % and adapts as ARC's target does: a miss
  on a key the window let go (refused, or pushed out of the window) grows it,
  a miss on a key evicted from main shrinks it (ghost lists of keys only). A
  recency-heavy workload opens it towards LRU, a frequency-heavy one closes
  it to pure TinyLFU admission. ``weighting`` (``"objects"`` or ``"bytes"``,
  the per-node setting) chooses the size exponent.

``"wtinylfu"`` is Caffeine's W-TinyLFU layout (window LRU 1 %, segmented LRU
main with 80 % protected, the same sum-of-victims duel): kept for comparison
and for workloads with strong recency.

``"lru"`` is plain least-recently-used, the baseline.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator

from ..kernels import AdaptiveTinyLFU
from ._sketch import FrequencySketch

__all__ = [
    "POLICIES",
    "ByteHitTinyLFUPolicy",
    "CachePolicy",
    "LRUPolicy",
    "SizeAwareTinyLFUPolicy",
    "WTinyLFUPolicy",
    "make_policy",
]

EvictCallback = Callable[[Hashable], None]


def _check_capacity(capacity_bytes: object) -> int:
    if (
        not isinstance(capacity_bytes, int)
        or isinstance(capacity_bytes, bool)
        or capacity_bytes < 0
    ):
        raise ValueError(f"capacity_bytes: expected an integer >= 0, got {capacity_bytes!r}")
    return capacity_bytes


def _bad_size(size: object) -> ValueError:
    return ValueError(f"size: expected an integer >= 0, got {size!r}")


def _coerce_size(size: object) -> int:
    # Accept integer-like sizes (numpy integers from a trace reader), not bools or floats.
    if isinstance(size, bool):
        raise _bad_size(size)
    try:
        return operator.index(size)  # type: ignore[arg-type]
    except TypeError:
        raise _bad_size(size) from None


def _check_share(name: str, value: object, *, closed: bool, what: str = "a fraction") -> None:
    """ValueError naming ``name`` unless ``value`` is a number in [0, 1] (or [0, 1))."""
    upper = "]" if closed else ")"
    ok = isinstance(value, (int, float)) and (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0)
    if not ok:
        raise ValueError(f"{name}: expected {what} in [0, 1{upper}, got {value!r}")


def _check_count(name: str, value: object) -> None:
    """ValueError naming ``name`` unless ``value`` is an integer >= 1."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")


class CachePolicy:
    """Interface of every policy: residency and byte accounting of keys.

    Subclasses implement :meth:`request`, :meth:`remove`, :meth:`resize` and
    keep ``_sizes`` (key → bytes) and ``_used`` up to date.
    """

    name = "abstract"

    def __init__(self, capacity_bytes: int, *, on_evict: EvictCallback | None = None) -> None:
        self._capacity = _check_capacity(capacity_bytes)
        self._used = 0
        self._sizes: dict[Hashable, int] = {}
        self._on_evict = on_evict
        #: Number of objects evicted (or rejected after a stay in the window).
        self.evictions = 0

    @property
    def capacity_bytes(self) -> int:
        """The byte budget; ``used_bytes`` never exceeds it after a call returns."""
        return self._capacity

    @property
    def used_bytes(self) -> int:
        """Bytes of all resident objects."""
        return self._used

    def __contains__(self, key: object) -> bool:
        return key in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._sizes))

    def size_of(self, key: Hashable) -> int | None:
        """Bytes recorded for a resident ``key``, or None when not resident."""
        return self._sizes.get(key)

    def request(self, key: Hashable, size: int) -> bool:  # pragma: no cover - interface
        """One access of ``key`` of ``size`` bytes; True on a hit.

        Raises ValueError for a negative or non-integer size.
        """
        raise NotImplementedError

    def remove(self, key: Hashable) -> bool:  # pragma: no cover - interface
        """Drop ``key`` without reporting it as evicted; True if it was resident."""
        raise NotImplementedError

    def resize(self, capacity_bytes: int) -> None:  # pragma: no cover - interface
        """Change the budget, evicting (and reporting) objects until they fit."""
        raise NotImplementedError

    def _evicted(self, key: Hashable) -> None:
        self.evictions += 1
        if self._on_evict is not None:
            self._on_evict(key)


class LRUPolicy(CachePolicy):
    """Least-recently-used over a byte budget: the baseline.

    Admits every object that fits the capacity and evicts from the cold end.
    """

    name = "lru"

    def __init__(self, capacity_bytes: int, *, on_evict: EvictCallback | None = None) -> None:
        super().__init__(capacity_bytes, on_evict=on_evict)
        self._order: OrderedDict[Hashable, int] = OrderedDict()

    def request(self, key: Hashable, size: int) -> bool:
        """One access; a hit moves ``key`` to the hot end. See :class:`CachePolicy`."""
        if type(size) is not int:
            size = _coerce_size(size)
        if size < 0:
            raise _bad_size(size)
        order = self._order
        old = order.get(key)
        if old is not None:
            if old == size:
                order.move_to_end(key)
                return True
            # The object changed size: account for the new size as a fresh insert.
            self.remove(key)
        if size > self._capacity:
            return False
        order[key] = size
        self._sizes[key] = size
        self._used += size
        self._shrink()
        return False

    def _shrink(self) -> None:
        order = self._order
        while self._used > self._capacity:
            victim, vsize = order.popitem(last=False)
            del self._sizes[victim]
            self._used -= vsize
            self._evicted(victim)

    def remove(self, key: Hashable) -> bool:
        """Drop ``key`` silently; True if it was resident."""
        size = self._order.pop(key, None)
        if size is None:
            return False
        del self._sizes[key]
        self._used -= size
        return True

    def resize(self, capacity_bytes: int) -> None:
        """Change the budget; evicts from the cold end until the objects fit."""
        self._capacity = _check_capacity(capacity_bytes)
        self._shrink()


_WINDOW, _PROBATION, _PROTECTED = 0, 1, 2


class WTinyLFUPolicy(CachePolicy):
    """Size-aware W-TinyLFU: window LRU + segmented main with sketch admission.

    ``window`` is the window's share of the bytes (default 0.01),
    ``protected`` the protected segment's share of main (default 0.8),
    ``sketch_factor`` the sketch columns per resident object (default 8),
    ``sketch_depth`` its rows (default 4). See the module docstring.
    Raises ValueError naming a bad parameter.
    """

    name = "wtinylfu"

    def __init__(
        self,
        capacity_bytes: int,
        *,
        window: float = 0.01,
        protected: float = 0.8,
        sketch_factor: int = 8,
        sketch_depth: int = 4,
        top_k: int = 32,
        sample: int = 8,
        on_evict: EvictCallback | None = None,
    ) -> None:
        super().__init__(capacity_bytes, on_evict=on_evict)
        _check_share("window", window, closed=False)
        _check_share("protected", protected, closed=True)
        _check_count("sketch_factor", sketch_factor)
        self._window_share = float(window)
        self._protected_share = float(protected)
        self._sketch_factor = sketch_factor
        self._sketch_depth = sketch_depth
        self._top_k = top_k
        _check_count("sample", sample)
        self._sample = sample
        self._window: OrderedDict[Hashable, int] = OrderedDict()
        self._probation: OrderedDict[Hashable, int] = OrderedDict()
        self._protected: OrderedDict[Hashable, int] = OrderedDict()
        self._seg: dict[Hashable, int] = {}
        self._window_bytes = 0
        self._protected_bytes = 0
        self._set_limits()
        self._sketch_items = 64
        self.sketch = FrequencySketch(
            self._sketch_items * sketch_factor, depth=sketch_depth, top_k=top_k
        )
        #: Candidates refused by the frequency duel.
        self.rejections = 0

    def _set_limits(self) -> None:
        cap = self._capacity
        self._window_cap = int(cap * self._window_share)
        self._protected_cap = int((cap - self._window_cap) * self._protected_share)

    def _grow_sketch(self) -> None:
        # Caffeine sizes its sketch to the cache's entry count; here the count
        # is learnt as the cache fills (objects have very different sizes).
        while self._sketch_items < len(self._sizes):
            self._sketch_items *= 2
        self.sketch.grow(self._sketch_items * self._sketch_factor)

    def request(self, key: Hashable, size: int) -> bool:
        """One access; see the module docstring for the admission rule.

        Raises ValueError for a negative or non-integer size, TypeError for a
        key that is not int, str or bytes.
        """
        if type(size) is not int:
            size = _coerce_size(size)
        if size < 0:
            raise _bad_size(size)
        self.sketch.increment(key)
        seg = self._seg.get(key)
        if seg is not None:
            if self._sizes[key] == size:
                if seg == _WINDOW:
                    self._window.move_to_end(key)
                elif seg == _PROTECTED:
                    self._protected.move_to_end(key)
                else:
                    del self._probation[key]
                    self._protected[key] = size
                    self._seg[key] = _PROTECTED
                    self._protected_bytes += size
                    self._demote()
                return True
            self.remove(key)
        if size > self._capacity:
            return False
        self._window[key] = size
        self._seg[key] = _WINDOW
        self._sizes[key] = size
        self._window_bytes += size
        self._used += size
        if len(self._sizes) > self._sketch_items:
            self._grow_sketch()
        self._overflow_window()
        return False

    def _demote(self) -> None:
        # Protected overflow goes back to the hot end of probation (SLRU).
        protected = self._protected
        while self._protected_bytes > self._protected_cap and protected:
            k, s = protected.popitem(last=False)
            self._protected_bytes -= s
            self._probation[k] = s
            self._seg[k] = _PROBATION

    def _overflow_window(self) -> None:
        window = self._window
        while self._window_bytes > self._window_cap and window:
            cand, csize = window.popitem(last=False)
            self._window_bytes -= csize
            self._used -= csize
            if self._used + csize <= self._capacity:
                self._probation[cand] = csize
                self._seg[cand] = _PROBATION
                self._used += csize
            else:
                self._duel(cand, csize)
        if self._used > self._capacity:
            # Only the window is left to shrink (a tiny capacity, or a resize).
            self._evict_until(self._capacity)

    def _duel(self, cand: Hashable, csize: int) -> None:
        """Admit ``cand`` only if it brings more hits than its victims take away."""
        need = self._used + csize - self._capacity
        estimate = self.sketch.estimate
        cfreq = estimate(cand)
        victims: list[Hashable] = []
        freed = 0
        total = 0
        sample = self._sample
        for segment in (self._probation, self._protected, self._window):
            if not segment:
                continue
            it = iter(segment.items())
            done = False
            while not done:
                # Look at the next few objects at the cold end and offer the
                # ones that give the most bytes per unit of popularity first:
                # a cold video goes before the cold pages behind it.
                batch = []
                for k, s in it:
                    batch.append((estimate(k) / s if s else 0.0, len(batch), k, s))
                    if len(batch) >= sample:
                        break
                if not batch:
                    break
                batch.sort()
                for _, _, k, s in batch:
                    victims.append(k)
                    freed += s
                    total += estimate(k)
                    if total >= cfreq or freed >= need:
                        done = True
                        break
            if done:
                break
        if freed < need or total >= cfreq:
            # Rejected: the candidate leaves; residents keep their place.
            del self._seg[cand]
            del self._sizes[cand]
            self.rejections += 1
            self._evicted(cand)
            return
        for k in victims:
            self._drop(k)
            self._evicted(k)
        self._probation[cand] = csize
        self._seg[cand] = _PROBATION
        self._used += csize

    def _drop(self, key: Hashable) -> int:
        seg = self._seg.pop(key)
        size = self._sizes.pop(key)
        if seg == _WINDOW:
            del self._window[key]
            self._window_bytes -= size
        elif seg == _PROBATION:
            del self._probation[key]
        else:
            del self._protected[key]
            self._protected_bytes -= size
        self._used -= size
        return size

    def _evict_until(self, limit: int) -> None:
        for segment in (self._probation, self._protected, self._window):
            while self._used > limit and segment:
                k = next(iter(segment))
                self._drop(k)
                self._evicted(k)

    def remove(self, key: Hashable) -> bool:
        """Drop ``key`` silently; True if it was resident."""
        if key not in self._seg:
            return False
        self._drop(key)
        return True

    def resize(self, capacity_bytes: int) -> None:
        """Change the budget; evicts probation, then protected, then window LRU first."""
        self._capacity = _check_capacity(capacity_bytes)
        self._set_limits()
        self._evict_until(self._capacity)
        self._demote()
        while self._window_bytes > self._window_cap and self._window:
            k, s = self._window.popitem(last=False)
            self._window_bytes -= s
            self._probation[k] = s
            self._seg[k] = _PROBATION


class SizeAwareTinyLFUPolicy(CachePolicy):
    """The default: adaptive size-aware TinyLFU, run by the cache kernel.

    The per-request work is :class:`meshcore.kernels.AdaptiveTinyLFU`
    (compiled, or its pure twin): a window LRU whose share of the bytes
    adapts online (ARC's rule on ghost lists), TinyLFU admission (a size-aware duel) and a
    GreedyDual-Size-Frequency main area. Parameters (all optional):
    ``weighting`` (``"objects"``, the default, or ``"bytes"``: the node
    setting that says whether hits or uplink bytes matter), ``size_exponent``
    (β, overrides ``weighting``), ``window`` (starting share, default 0.01),
    ``adaptive`` (default True), ``max_window`` (default 0.8),
    ``sketch_factor`` (8), ``sketch_depth`` (4), ``max_count`` (63), ``top_k``
    (32), ``sample_factor`` (10). See docs/cache.md. Raises ValueError naming
    a bad parameter.
    """

    name = "default"

    def __init__(
        self, capacity_bytes: int, *, on_evict: EvictCallback | None = None, **params: object
    ) -> None:
        self._on_evict = on_evict
        self._core = AdaptiveTinyLFU(capacity_bytes, on_evict=on_evict, **params)  # type: ignore[arg-type]
        # The kernel's bound methods, not wrappers: one call per request.
        self.request = self._core.request  # type: ignore[method-assign]
        self.remove = self._core.remove  # type: ignore[method-assign]
        self.resize = self._core.resize  # type: ignore[method-assign]
        self.size_of = self._core.size_of  # type: ignore[method-assign]

    @property
    def capacity_bytes(self) -> int:
        """The byte budget; ``used_bytes`` never exceeds it after a call returns."""
        return self._core.capacity_bytes

    @property
    def used_bytes(self) -> int:
        """Bytes of all resident objects."""
        return self._core.used_bytes

    @property
    def evictions(self) -> int:  # type: ignore[override]
        """Objects evicted or refused admission."""
        return self._core.evictions

    @property
    def rejections(self) -> int:
        """Candidates refused by the frequency duel."""
        return self._core.rejections

    @property
    def clock(self) -> float:
        """GreedyDual inflation value L."""
        return self._core.clock

    @property
    def window_share(self) -> float:
        """The admission window's current share of the bytes (adapted online)."""
        return self._core.window_share

    @property
    def sketch(self) -> FrequencySketch:
        """The popularity sketch (``top()`` gives the node's hottest content)."""
        return self._core.sketch

    def __contains__(self, key: object) -> bool:
        return key in self._core

    def __len__(self) -> int:
        return len(self._core)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._core)


class ByteHitTinyLFUPolicy(SizeAwareTinyLFUPolicy):
    """``"default-bytes"``: the default policy with ``weighting="bytes"``.

    An object's value is ``f × size`` (bytes of hits), its priority ``L + f``:
    what saves the most uplink bytes, at the cost of object hit ratio.
    """

    name = "default-bytes"

    def __init__(self, capacity_bytes: int, **params: object) -> None:
        params.setdefault("weighting", "bytes")
        super().__init__(capacity_bytes, **params)  # type: ignore[arg-type]


POLICIES: dict[str, type[CachePolicy]] = {
    "default": SizeAwareTinyLFUPolicy,
    "default-bytes": ByteHitTinyLFUPolicy,
    "lru": LRUPolicy,
    "wtinylfu": WTinyLFUPolicy,
}


def make_policy(name: str, capacity_bytes: int, **params: object) -> CachePolicy:
    """Build the policy called ``name`` with a budget of ``capacity_bytes``.

    ``params`` go to the policy's constructor (e.g. ``window=0.02``,
    ``on_evict=callback``). Raises ValueError naming the unknown name and
    the known ones, or a bad capacity or parameter.
    """
    cls = POLICIES.get(name) if isinstance(name, str) else None
    if cls is None:
        known = ", ".join(sorted(POLICIES))
        raise ValueError(f"policy: unknown name {name!r}; known policies: {known}")
    try:
        return cls(capacity_bytes, **params)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ValueError(f"policy {name!r}: bad parameters: {exc}") from None
