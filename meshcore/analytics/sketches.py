"""Mergeable sketches: unique counts (HyperLogLog), top-k (Space-Saving), access matrix.

Theory of operation
-------------------
**HyperLogLog** (Flajolet, Fusy, Gandouet, Meunier, "HyperLogLog: the analysis
of a near-optimal cardinality estimation algorithm", AofA 2007; small-range
correction as in the paper, 64-bit hash so no large-range correction, as in
Heule, Nunkesser, Hall, "HyperLogLog in practice", EDBT 2013). An item is
hashed with xxh64 (seed 0) to 64 bits; the top ``p`` bits pick one of
``m = 2**p`` registers, and the register keeps the maximum over its items of
``rank`` = 1 + the number of leading zeros of the remaining ``64 - p`` bits.
The estimate is ``alpha_m * m**2 / sum(2**-M[j])``, replaced by linear
counting ``m * ln(m / V)`` when it is below ``2.5 m`` and ``V`` registers are
still zero. Relative standard error: ``1.04 / sqrt(m)`` (p=10: 3.25%,
p=12: 1.63%, p=14: 0.81%). Memory: ``m`` bytes. **Merge** is the register-wise
maximum, which is associative, commutative and idempotent (max is a
semilattice join), so adding one sketch twice changes nothing.

**Space-Saving** (for per-item streams; Metwally, Agrawal, El Abbadi, "Efficient computation of
frequent and top-k elements in data streams", ICDT 2005). ``k`` monitored keys
with a count and an over-estimation error. A monitored key's count goes up by
one; an unmonitored key replaces the key with the smallest count ``min``,
inheriting ``count = min + 1`` and ``error = min``. Guarantees, for a stream
of ``N`` items: every key's true count ``f`` satisfies
``count - error <= f <= count`` while monitored; ``min <= N / k``; every key
with ``f > N / k`` is monitored. **Merge** (Agarwal, Cormode, Huang, Phillips,
Wei, Yi, "Mergeable summaries", PODS 2012; the Space-Saving form of Berinde
et al. TODS 2010): each key's count in the union is its count in each summary,
or that summary's ``min`` where it is not monitored (an upper bound on its
true count there); the same for errors; then the ``k`` largest counts are kept
(ties broken by key, so the result is deterministic). The merged summary
keeps both guarantees with ``N = N1 + N2``. Truncation makes it commutative
but not exactly associative, which is why :mod:`.aggregate` merges whole
per-node summaries at read time in a fixed order rather than folding
summaries in arrival order.

The min-count key is found with a lazy heap: increments do not touch the
heap; when a replacement is needed, stale heap entries (whose count has since
grown) are re-pushed with their current count until the top is exact, so each
replacement costs amortised ``O(log k)``.

**Misra-Gries** (Misra, Gries, "Finding repeated elements", 1982; batch and
merge form of Agarwal et al. 2012), used by the collector because it takes
whole batches at C speed. ``k`` counters hold *lower* bounds. A batch of
exact counts (a ``collections.Counter``) is added to the counters; if more
than ``k`` keys are then held, the ``(k+1)``-th largest value ``cut`` is
subtracted from every counter, counters that reach 0 are dropped, and
``error += cut``. Each key loses at most ``cut`` per reduction, so
``count <= f <= count + error``. At least ``k + 1`` counters lose ``cut``
each, so the held total drops by at least ``(k+1) cut``; summing over
reductions, ``error <= (n - sum(counts)) / (k + 1)``, hence every key with
``f > n / (k + 1)`` is held. Merging two summaries adds counters and errors
and reduces the same way (the same telescoping argument: Agarwal et al.,
Theorem 1). Keeping only the ``j`` largest counters is a reduction with
``k = j``, so truncated summaries (rollup rows) keep the guarantees. It is
isomorphic to Space-Saving with ``k + 1`` counters (Agarwal et al. §2).
Cost of a batch of ``b`` distinct keys: only the ``<= k`` held keys are summed
in Python, the rest go in with one C-level ``dict.update``; the ``(k+1)``-th
largest count is found with ``numpy.partition`` (O(size), when numpy is
present and at least 256 counters are held; a heap otherwise) and only the
``<= k`` survivors are touched in Python. Both paths give the same counters
in the same order (tested).

**Access matrix**: 7 x 24 request counts by (day of week, hour of day) in
UTC, Monday = 0; merge is element-wise addition (exact counts, so merge is
used only where each source is counted once, see :mod:`.aggregate`).

Why not a library: Apache ``datasketches`` (C++ with Python bindings) has
HLL and frequent-items sketches with the same guarantees, but ships
~1 MB wheels for x86_64/aarch64 only (no armv7 musl, no MIPS), and its
serialisation ties every node to one library version; ``hyperloglog``
(PyPI) uses SHA-1 and per-instance Python lists. The code here is ~200
lines, stdlib plus ``xxhash`` (already a runtime dependency), and tested
against the bounds above.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Iterable, Mapping

import xxhash

from ..errors import DecodeError

try:  # numpy makes merges ~50x faster; routers without it use the plain loop
    import numpy as _np
except ImportError:  # pragma: no cover - numpy is a dependency where wheels exist
    _np = None

#: Misra-Gries reductions of at least this many counters use numpy when present.
_NP_REDUCE = 256

__all__ = [
    "AccessMatrix",
    "HyperLogLog",
    "MisraGries",
    "SpaceSaving",
    "hour_and_weekday",
    "item_hash",
]

_xxh64 = xxhash.xxh64_intdigest
_HLL_MAGIC = b"HL1"


def item_hash(item: str | bytes) -> int:
    """The 64-bit xxh64 (seed 0) of ``item`` (``str`` is UTF-8 encoded) used by HyperLogLog."""
    if isinstance(item, str):
        item = item.encode("utf-8")
    return _xxh64(item)


def _alpha(m: int) -> float:
    if m == 16:
        return 0.673
    if m == 32:
        return 0.697
    if m == 64:
        return 0.709
    return 0.7213 / (1 + 1.079 / m)


class HyperLogLog:
    """Distinct-count sketch with ``2**p`` one-byte registers (``4 <= p <= 16``).

    Relative standard error ``1.04 / sqrt(2**p)``. Items are ``str`` or
    ``bytes`` (``str`` is UTF-8 encoded), so every node hashes the same
    pseudonym to the same register.
    """

    __slots__ = ("_shift", "_wmask", "p", "registers")

    def __init__(self, p: int = 12) -> None:
        if isinstance(p, bool) or not isinstance(p, int) or not 4 <= p <= 16:
            raise ValueError(f"p: expected an integer in [4, 16], got {p!r}")
        self.p = p
        self.registers = bytearray(1 << p)
        self._shift = 64 - p
        self._wmask = (1 << (64 - p)) - 1

    @property
    def m(self) -> int:
        """Number of registers."""
        return 1 << self.p

    @property
    def standard_error(self) -> float:
        """Relative standard error of :meth:`estimate`: ``1.04 / sqrt(m)``."""
        return 1.04 / math.sqrt(1 << self.p)

    def add(self, item: str | bytes) -> None:
        """Count ``item`` (idempotent: adding it again changes nothing)."""
        self.add_hash(item_hash(item))

    def add_hash(self, h: int) -> None:
        """Count an item by its 64-bit xxh64 hash (for callers that cache hashes)."""
        idx = h >> self._shift
        rank = self._shift - (h & self._wmask).bit_length() + 1
        regs = self.registers
        if regs[idx] < rank:
            regs[idx] = rank

    def estimate(self) -> float:
        """Estimated number of distinct items added."""
        regs = self.registers
        m = len(regs)
        total = 0.0
        for r in set(regs):
            total += regs.count(r) * 2.0**-r
        e = _alpha(m) * m * m / total
        if e <= 2.5 * m:
            zeros = regs.count(0)
            if zeros:
                return m * math.log(m / zeros)
        return e

    def merge(self, other: HyperLogLog) -> None:
        """Register-wise maximum with ``other`` (same ``p``; ValueError otherwise)."""
        if not isinstance(other, HyperLogLog) or other.p != self.p:
            raise ValueError(f"other: expected a HyperLogLog with p={self.p}")
        if _np is not None:
            u8 = _np.uint8
            merged = _np.maximum(
                _np.frombuffer(self.registers, u8), _np.frombuffer(other.registers, u8)
            )
            self.registers = bytearray(merged.tobytes())
        else:  # pragma: no cover - exercised where numpy is absent
            self.registers = bytearray(map(max, self.registers, other.registers))

    def copy(self) -> HyperLogLog:
        """An independent copy."""
        new = HyperLogLog(self.p)
        new.registers[:] = self.registers
        return new

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HyperLogLog)
            and other.p == self.p
            and other.registers == self.registers
        )

    __hash__ = None  # type: ignore[assignment]

    def to_bytes(self) -> bytes:
        """Serialise: ``b"HL1"``, one byte ``p``, then the ``2**p`` registers."""
        return _HLL_MAGIC + bytes((self.p,)) + bytes(self.registers)

    @classmethod
    def from_bytes(cls, data: bytes) -> HyperLogLog:
        """Inverse of :meth:`to_bytes`; raises DecodeError on malformed input."""
        data = bytes(data)
        if len(data) < 4 or data[:3] != _HLL_MAGIC:
            raise DecodeError("HyperLogLog: bad header")
        p = data[3]
        if not 4 <= p <= 16 or len(data) != 4 + (1 << p):
            raise DecodeError(f"HyperLogLog: p={p} does not match length {len(data)}")
        # Deleting every valid register value must leave nothing (C speed).
        if data[4:].translate(None, bytes(range(64 - p + 2))):
            raise DecodeError("HyperLogLog: register value out of range")
        new = cls(p)
        new.registers[:] = data[4:]
        return new


class SpaceSaving:
    """Top-k heavy hitters over a stream with at most ``k`` monitored keys.

    ``counts[key]`` over-estimates the key's true count by at most
    ``errors[key]``, itself at most ``N / k``.
    """

    __slots__ = ("_heap", "counts", "errors", "k", "n")

    def __init__(self, k: int = 100) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected an integer >= 1, got {k!r}")
        self.k = k
        self.n = 0
        self.counts: dict[Hashable, int] = {}
        self.errors: dict[Hashable, int] = {}
        self._heap: list[tuple[int, str, Hashable]] = []

    def add(self, key: Hashable, count: int = 1) -> None:
        """Count ``key`` ``count`` times (``count >= 1``)."""
        self.n += count
        counts = self.counts
        c = counts.get(key)
        if c is not None:
            counts[key] = c + count
            return
        if len(counts) < self.k:
            counts[key] = count
            self.errors[key] = 0
            heapq.heappush(self._heap, (count, str(key), key))
            return
        heap = self._heap
        while True:
            low, _, victim = heap[0]
            current = counts[victim]
            if current == low:
                break
            heapq.heapreplace(heap, (current, str(victim), victim))
        del counts[victim]
        del self.errors[victim]
        counts[key] = low + count
        self.errors[key] = low
        heapq.heapreplace(heap, (low + count, str(key), key))

    @property
    def min_count(self) -> int:
        """Smallest monitored count when full (0 while fewer than ``k`` keys are monitored).

        Any unmonitored key occurred at most this many times.
        """
        if len(self.counts) < self.k:
            return 0
        return min(self.counts.values())

    def top(self, n: int | None = None) -> list[tuple[Hashable, int, int]]:
        """``(key, count, error)`` by decreasing count (ties by key), at most ``n``."""
        items = sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        if n is not None:
            items = items[:n]
        return [(key, c, self.errors[key]) for key, c in items]

    def merge(self, other: SpaceSaving) -> None:
        """Merge ``other`` into this summary (Agarwal et al.; see module doc)."""
        if not isinstance(other, SpaceSaving):
            raise TypeError(f"other: expected a SpaceSaving, got {type(other).__name__}")
        m1, m2 = self.min_count, other.min_count
        keys = set(self.counts) | set(other.counts)
        merged = []
        for key in keys:
            c = self.counts.get(key, m1) + other.counts.get(key, m2)
            e = self.errors.get(key, m1) + other.errors.get(key, m2)
            merged.append((c, e, key))
        merged.sort(key=lambda t: (-t[0], str(t[2])))
        merged = merged[: self.k]
        self.n += other.n
        self.counts = {key: c for c, _, key in merged}
        self.errors = {key: e for _, e, key in merged}
        self._heap = [(c, str(key), key) for c, _, key in merged]
        heapq.heapify(self._heap)

    def copy(self) -> SpaceSaving:
        """An independent copy."""
        new = SpaceSaving(self.k)
        new.merge(self)
        return new

    def to_list(self) -> list[list]:
        """Serialisable form: ``[[key, count, error], ...]`` (keys must be str)."""
        return [[k, c, e] for k, c, e in self.top()]

    @classmethod
    def from_list(cls, k: int, n: int, items: Iterable) -> SpaceSaving:
        """Inverse of :meth:`to_list`; raises DecodeError on malformed or duplicate items."""
        new = cls(k)
        try:
            for key, c, e in items:
                if not isinstance(key, str) or not isinstance(c, int) or not isinstance(e, int):
                    raise TypeError
                if c < 1 or not 0 <= e <= c or key in new.counts:
                    raise ValueError
                new.counts[key] = c
                new.errors[key] = e
        except (TypeError, ValueError):
            raise DecodeError("SpaceSaving: malformed item list") from None
        if len(new.counts) > k or isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise DecodeError("SpaceSaving: more items than k, or bad n")
        new.n = n
        new._heap = [(c, key, key) for key, c in new.counts.items()]
        heapq.heapify(new._heap)
        return new


class MisraGries:
    """Frequent items with batch updates: at most ``k`` counters, mergeable.

    ``counts[key]`` is a *lower* bound on the key's true count ``f``, and
    ``error`` bounds the under-count: ``counts[key] <= f <= counts[key] + error``
    (``f <= error`` for a key not held). ``error <= (n - sum(counts)) / (k + 1)
    <= n / (k + 1)``, so every key with ``f > n / (k + 1)`` is held. See the
    module doc ("Misra-Gries") for the proof sketch. :meth:`top` reports the
    same ``(key, count, error)`` triples as :class:`SpaceSaving` (``count`` the
    upper bound), so the two are interchangeable in reports.
    """

    __slots__ = ("counts", "error", "k", "n")

    def __init__(self, k: int = 100) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected an integer >= 1, got {k!r}")
        self.k = k
        self.n = 0
        self.error = 0
        self.counts: dict[Hashable, int] = {}

    def add_counts(self, batch: Mapping[Hashable, int]) -> None:
        """Add a batch of exact counts (e.g. a ``collections.Counter``; values >= 1)."""
        counts = self.counts
        total = sum(batch.values())
        # At most k keys are held, so only they need a Python-level sum; the
        # batch's other keys are inserted by one C-level dict update.
        common = counts.keys() & batch.keys()
        if common:
            batch = dict(batch)  # never modify the caller's mapping
            for key in common:
                batch[key] += counts[key]
        counts.update(batch)
        self.n += total
        if len(counts) > self.k:
            self._reduce(self.k)

    def add(self, key: Hashable, count: int = 1) -> None:
        """Count ``key`` ``count`` times (``count >= 1``); batches are cheaper."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count: expected an integer >= 1, got {count!r}")
        self.add_counts({key: count})

    def _reduce(self, k: int) -> None:
        # Subtract the (k+1)-th largest count from every counter and drop the
        # ones that reach 0 (Agarwal et al. 2012, MG merge).
        counts = self.counts
        size = len(counts)
        if _np is not None and size >= _NP_REDUCE and self.n < 2**62:
            # Same result as the loop below (same keys, values and order): a
            # selection instead of a heap, and Python touches only survivors.
            keys = list(counts)
            vals = _np.fromiter(counts.values(), dtype=_np.int64, count=size)
            cut = int(_np.partition(vals, size - k - 1)[size - k - 1])
            keep = _np.flatnonzero(vals > cut)
            self.counts = {keys[i]: v - cut
                           for i, v in zip(keep.tolist(), vals[keep].tolist(), strict=True)}
        else:
            cut = heapq.nlargest(k + 1, counts.values())[-1]
            self.counts = {key: v - cut for key, v in counts.items() if v > cut}
        self.error += cut

    def merge(self, other: MisraGries) -> None:
        """Merge ``other`` into this summary; the result keeps the smaller ``k``
        (the guarantee of a merge is that of its coarsest input)."""
        if not isinstance(other, MisraGries):
            raise TypeError(f"other: expected a MisraGries, got {type(other).__name__}")
        self.k = min(self.k, other.k)
        counts = self.counts
        for key, v in other.counts.items():
            counts[key] = counts.get(key, 0) + v
        self.n += other.n
        self.error += other.error
        if len(counts) > self.k:
            self._reduce(self.k)

    def truncated(self, k: int) -> MisraGries:
        """A copy with at most ``k`` counters (a valid summary with that ``k``)."""
        new = self.copy()
        new.k = k
        if len(new.counts) > k:
            new._reduce(k)
        return new

    @property
    def min_count(self) -> int:
        """Upper bound on the true count of any key not held (= :attr:`error`)."""
        return self.error

    def top(self, n: int | None = None) -> list[tuple[Hashable, int, int]]:
        """``(key, upper bound, error)`` by decreasing count (ties by key), at most ``n``."""
        items = sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        if n is not None:
            items = items[:n]
        e = self.error
        return [(key, c + e, e) for key, c in items]

    def copy(self) -> MisraGries:
        """An independent copy."""
        new = MisraGries(self.k)
        new.n = self.n
        new.error = self.error
        new.counts = dict(self.counts)
        return new

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MisraGries)
            and (self.k, self.n, self.error, self.counts)
            == (other.k, other.n, other.error, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict:
        """Serialisable form ``{"k", "n", "error", "counts": [[key, lower count], ...]}``."""
        items = sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        return {"k": self.k, "n": self.n, "error": self.error,
                "counts": [[k, c] for k, c in items]}

    @classmethod
    def from_dict(cls, d: Mapping) -> MisraGries:
        """Inverse of :meth:`to_dict`; raises DecodeError on malformed input."""
        try:
            new = cls(d["k"])
            n, error, items = d["n"], d["error"], d["counts"]
            for v in (n, error):
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise ValueError
            for key, c in items:
                if not isinstance(key, str) or isinstance(c, bool) or not isinstance(c, int):
                    raise ValueError
                if c < 1 or key in new.counts:
                    raise ValueError
                new.counts[key] = c
        except (KeyError, TypeError, ValueError):
            raise DecodeError("MisraGries: malformed summary") from None
        # The invariant every operation keeps: sum(counts) + (k + 1) * error <= n.
        if len(new.counts) > new.k or sum(new.counts.values()) + (new.k + 1) * error > n:
            raise DecodeError("MisraGries: more counters than k, or counts above n")
        new.n = n
        new.error = error
        return new


def hour_and_weekday(now: float) -> tuple[int, int]:
    """``(hour of day 0-23, day of week 0-6 with Monday = 0)`` of a Unix time, in UTC."""
    seconds = int(now // 1)
    days, rest = divmod(seconds, 86400)
    # 1970-01-01 was a Thursday (weekday 3).
    return rest // 3600, (days + 3) % 7


class AccessMatrix:
    """Request counts by day of week (rows, Monday = 0) and hour of day (columns), UTC."""

    __slots__ = ("cells",)

    def __init__(self) -> None:
        self.cells = [0] * (7 * 24)

    def add(self, now: float, count: int = 1) -> None:
        """Count ``count`` requests at Unix time ``now``."""
        hour, day = hour_and_weekday(now)
        self.cells[day * 24 + hour] += count

    def merge(self, other: AccessMatrix) -> None:
        """Element-wise sum with ``other``."""
        self.cells = [a + b for a, b in zip(self.cells, other.cells, strict=True)]

    def rows(self) -> list[list[int]]:
        """The 7 x 24 matrix as lists."""
        return [self.cells[d * 24 : d * 24 + 24] for d in range(7)]

    def peaks(self, n: int = 3) -> list[tuple[int, int, int]]:
        """The ``n`` busiest ``(weekday, hour, count)`` cells, busiest first (ties: earliest)."""
        order = sorted(range(7 * 24), key=lambda i: (-self.cells[i], i))
        return [(i // 24, i % 24, self.cells[i]) for i in order[:n] if self.cells[i]]

