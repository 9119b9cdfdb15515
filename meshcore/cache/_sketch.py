"""Popularity tracking: a count-min sketch with aging and a TinyLFU doorkeeper.

Theory of operation
-------------------
Source: G. Einziger, R. Friedman, B. Manes, "TinyLFU: A Highly Efficient Cache
Admission Policy", ACM Transactions on Storage 13(4), 2017; the counting and
aging follow Caffeine's ``FrequencySketch``; count-min is Cormode and
Muthukrishnan (2005).

* ``depth`` rows of ``width`` saturating counters (one byte each, capped at
  ``max_count``: 15 like TinyLFU's 4-bit counters by default, up to 255)
  form a count-min sketch. A key is hashed once to 64 bits
  (xxh3 for ``str``/``bytes``, a SplitMix64 finaliser for ``int``: stable
  across processes, unlike :func:`hash`); row ``i`` uses column
  ``(h_lo + i * h_hi) mod width`` (Kirsch–Mitzenmacher double hashing).
  Increments are *conservative*: only the counters equal to the current
  minimum are raised, which keeps over-estimates low.
* The **doorkeeper** is a one-hash-pair Bloom filter in front of the sketch:
  the first access of a key in a period only sets its doorkeeper bits, so the
  long tail of one-hit wonders never reaches (and never pollutes) the
  counters. ``estimate`` adds 1 when the doorkeeper holds the key.
* **Aging**: after ``sample_size`` (= 10 × width) recorded accesses, every
  counter is halved and the doorkeeper is cleared, so the sketch tracks
  recent popularity, not all-time popularity (the "reset" of TinyLFU).
* ``top(n)`` reports heavy hitters from a small candidate table (``top_k``
  keys) kept beside the sketch, Space-Saving style: a key enters the table
  when its estimate beats the table's smallest estimate.

Memory is ``depth × width`` bytes of counters, ``width / 8 × 2`` bytes of
doorkeeper bits and ``top_k`` candidate entries: bounded by configuration,
independent of how many distinct keys are seen.
"""

from __future__ import annotations

from collections.abc import Hashable

import xxhash

__all__ = ["FrequencySketch", "key_hash"]

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
