"""ContentCache: the node's cache core (sans-I/O).

Theory of operation
-------------------
The cache decides *which items to keep*; the chunk store (a driver) holds the
bytes. An **item** (a manifest's content, or an external resource) is a list
of chunks ``(digest, size)``; chunks are shared between items (dedup across
versions), so each chunk has a **reference count** of kept items that need it.
A chunk is stored (``StoreChunk``) when its count goes 0 → 1 and freed
(``FreeChunk``) when it goes 1 → 0: never while a kept item needs it.

The **byte budget** is the bytes of distinct chunks held. It is never exceeded
after a call returns. Items are kept in two groups:

* **retained** items are out of the eviction policy: *pinned* items (public
  push-all content, pinned until a time) and items the **last-replica hook**
  (a callable ``key -> bool``, filled by the coordination layer) refused to
  let go. Let ``R`` be the distinct chunk bytes of retained items.
* every other item lives in the eviction policy (``"default"``: size-aware
  W-TinyLFU), charged its *full* size, with policy capacity ``budget − R``.

Then held bytes ≤ ``R`` + (policy's charged bytes) ≤ ``budget``: sharing can
only make the cache hold less than it charges. Eviction is by whole items.

When pinning would make ``R`` exceed the budget, nothing is evicted silently:
the call raises :class:`~meshcore.errors.PinnedOverBudgetError` and changes
nothing; the exception's ``effects`` attribute carries a
:class:`PinnedOverBudget` event for the driver to log and export.

**Expiry**: each item may carry ``expires_at`` (HTTP freshness, TTL); a pin may
carry ``until``. Both are *calendar* (Unix) seconds, read against the node's
:class:`~meshcore.clock.Calendar` (``calendar.wall(now)``), so a wall clock
that steps moves them with it and a clock that is not set yet (a router
booting in 1970) expires nothing. :meth:`ContentCache.handle_timer` (at
:meth:`ContentCache.get_timer`, monotonic) drops expired items and releases
lapsed pins back into the policy, where they compete like any other item.

**Protocol** (:mod:`meshcore.core`): ``handle(event, now=...)`` takes
:class:`Lookup`, :class:`Offer`, :class:`Pin`, :class:`Unpin`, :class:`Remove`
and :class:`SetBudget`; :class:`StoreChunk` and :class:`FreeChunk` are
commands for the storage driver, the rest are facts. The typed methods
(:meth:`ContentCache.request`, :meth:`ContentCache.insert`...) are the same
operations, for direct use.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from ..clock import Calendar
from ..core import Command, Event, Fact, dispatches, handler
from ..errors import PinnedOverBudgetError, UnknownItemError
from ._policies import CachePolicy, make_policy

__all__ = [
    "STAGING_SHARE",
    "ContentCache",
    "Effect",
    "Evicted",
    "FreeChunk",
    "ItemRejected",
    "ItemStored",
    "Lookup",
    "LookupResult",
    "Offer",
    "Pin",
    "PinnedOverBudget",
    "Remove",
    "SetBudget",
    "StoreChunk",
    "Unpin",
    "cache_budget",
]


#: Share of a store's byte limit kept free for chunks being fetched (staged
#: before the cache decides): at least 4 MiB, never more than the limit.
STAGING_SHARE = 0.05
_MIN_STAGING = 4 << 20


def cache_budget(store_bytes: int) -> int:
    """The cache core's budget on a store limited to ``store_bytes`` (the staging reserve off).

    One budget decides what is kept (the cache's); the store's limit is the
    disk's hard stop, and the reserve between them keeps a fetch from finding
    the disk full because the cache filled it.
    """
    reserve = max(_MIN_STAGING, int(store_bytes * STAGING_SHARE))
    return max(0, store_bytes - min(reserve, store_bytes))


@dataclass(frozen=True, slots=True)
class StoreChunk(Command):
    """Keep chunk ``digest`` (``size`` bytes): a kept item needs it now."""

    digest: bytes
    size: int


@dataclass(frozen=True, slots=True)
class FreeChunk(Command):
    """Delete chunk ``digest`` (``size`` bytes): no kept item needs it any more."""

    digest: bytes
    size: int


@dataclass(frozen=True, slots=True)
class ItemStored(Fact):
    """Item ``key`` (``size`` bytes, chunks counted once) is now kept."""

    key: Hashable
    size: int


@dataclass(frozen=True, slots=True)
class ItemRejected(Fact):
    """Item ``key`` was not kept; ``reason`` is ``"too-large"`` or ``"admission"``."""

    key: Hashable
    reason: str


@dataclass(frozen=True, slots=True)
class Evicted(Fact):
    """Item ``key`` left the cache; ``reason``: ``"policy"``, ``"expired"``, ``"removed"``."""

    key: Hashable
    reason: str


@dataclass(frozen=True, slots=True)
class PinnedOverBudget(Fact):
    """Event: pinned content alone would need more than the budget (bytes)."""

    pinned_bytes: int
    budget_bytes: int


@dataclass(frozen=True, slots=True)
class LookupResult(Fact):
    """Item ``key`` was looked up: ``hit`` or miss (for analytics)."""

    key: Hashable
    hit: bool


Effect = (
    StoreChunk | FreeChunk | ItemStored | ItemRejected | Evicted | PinnedOverBudget | LookupResult
)


# -- events (the protocol's inputs) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lookup(Event):
    """A local or peer request for ``key`` (:meth:`ContentCache.request`)."""

    key: Hashable


@dataclass(frozen=True, slots=True)
class Offer(Event):
    """Item ``key`` made of ``chunks`` is available to keep (:meth:`ContentCache.insert`)."""

    key: Hashable
    chunks: tuple[tuple[bytes, int], ...]
    expires_at: float | None = None
    pin: bool = False
    pin_until: float | None = None


@dataclass(frozen=True, slots=True)
class Pin(Event):
    """Pin a kept item until ``until`` (calendar seconds; None: its expiry)."""

    key: Hashable
    until: float | None = None


@dataclass(frozen=True, slots=True)
class Unpin(Event):
    """Release the pin on ``key``."""

    key: Hashable


@dataclass(frozen=True, slots=True)
class Remove(Event):
    """Drop ``key`` (deleted content, an explicit purge)."""

    key: Hashable


@dataclass(frozen=True, slots=True)
class SetBudget(Event):
    """Change the byte budget (config reload)."""

    budget_bytes: int


@dataclass(slots=True)
class _Item:
    chunks: tuple[tuple[bytes, int], ...]
    size: int  # full size: every chunk counted, shared or not
    expires_at: float | None
    pinned_until: float | None = None  # None: not pinned; inf: until expiry
    protected: bool = False  # kept by the last-replica hook


def _check_budget(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")
    return value


@dispatches
class ContentCache:
    """The node's cache core: byte budget, chunk refcounts, pins, expiry.

    ``budget_bytes`` bounds the distinct chunk bytes held. ``policy`` names an
    eviction policy (see :func:`~meshcore.cache.make_policy`) built with
    ``policy_params``. ``last_replica(key) -> bool`` returns True when the
    mesh would lose ``key`` if this node dropped it; such items are retained
    instead of evicted while room remains. ``calendar`` turns ``now``
    (monotonic) into the calendar seconds expiries are given in (default:
    calendar time is ``now``). Raises ValueError for a bad budget or policy name.
    """

    def __init__(
        self,
        budget_bytes: int,
        *,
        policy: str = "default",
        policy_params: dict[str, object] | None = None,
        last_replica: Callable[[Hashable], bool] | None = None,
        calendar: Calendar | None = None,
    ) -> None:
        self.calendar = calendar if calendar is not None else Calendar()
        self._budget = _check_budget("budget_bytes", budget_bytes)
        self._evicted_keys: list[Hashable] = []
        self._policy: CachePolicy = make_policy(
            policy, budget_bytes, on_evict=self._evicted_keys.append, **(policy_params or {})
        )
        self._last_replica = last_replica
        self._items: dict[Hashable, _Item] = {}
        self._refs: dict[bytes, int] = {}
        self._chunk_size: dict[bytes, int] = {}
        self._held = 0
        # Distinct chunk bytes of retained items, with their own refcounts.
        self._rrefs: dict[bytes, int] = {}
        self._retained_bytes = 0
        self._timers: list[tuple[float, int, Hashable]] = []
        self._seq = 0

    # -- queries ---------------------------------------------------------------

    @property
    def budget_bytes(self) -> int:
        """The byte budget (distinct chunk bytes)."""
        return self._budget

    @property
    def used_bytes(self) -> int:
        """Distinct chunk bytes held now; never above ``budget_bytes``."""
        return self._held

    @property
    def pinned_bytes(self) -> int:
        """Distinct chunk bytes of retained (pinned or last-replica) items."""
        return self._retained_bytes

    @property
    def policy(self) -> CachePolicy:
        """The eviction policy holding the non-retained items."""
        return self._policy

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def is_pinned(self, key: Hashable) -> bool:
        """True if ``key`` is kept and pinned."""
        item = self._items.get(key)
        return item is not None and item.pinned_until is not None

    def size_of(self, key: Hashable) -> int:
        """Bytes of kept item ``key`` (every chunk counted), 0 when not kept."""
        item = self._items.get(key)
        return 0 if item is None else item.size

    def chunks_of(self, key: Hashable) -> tuple[tuple[bytes, int], ...] | None:
        """The chunks ``(digest, size)`` of kept item ``key``, or None when not kept."""
        item = self._items.get(key)
        return None if item is None else item.chunks

    def expires_at(self, key: Hashable) -> float | None:
        """When kept item ``key`` expires (calendar seconds), or None."""
        item = self._items.get(key)
        return None if item is None else item.expires_at

    def chunk_refcount(self, digest: bytes) -> int:
        """Number of kept items that need chunk ``digest``."""
        return self._refs.get(digest, 0)

    def get_timer(self) -> float | None:
        """Next (monotonic) time :meth:`handle_timer` has work, or None.

        None while the calendar is not trusted: nothing expires on an unset clock.
        """
        if not self.calendar.trusted:
            return None
        while self._timers:
            when, _, key = self._timers[0]
            item = self._items.get(key)
            if item is not None and when in (item.expires_at, item.pinned_until):
                return self.calendar.monotonic(when)
            heapq.heappop(self._timers)
        return None

    def handle_timer(self, *, now: float) -> list[Effect]:
        """Drop what expired and release lapsed pins (:meth:`expire`)."""
        return self.expire(now=now)

    # -- protocol handlers ---------------------------------------------------------

    @handler(Lookup)
    def _on_lookup(self, event: Lookup, *, now: float) -> list[Effect]:
        hit, effects = self.request(event.key, now=now)
        effects.append(LookupResult(event.key, hit))
        return effects

    @handler(Offer)
    def _on_offer(self, event: Offer, *, now: float) -> list[Effect]:
        try:
            return self.insert(event.key, event.chunks, now=now, expires_at=event.expires_at,
                               pin=event.pin, pin_until=event.pin_until)
        except PinnedOverBudgetError as exc:
            # Through the protocol a refused pin is a fact, not an exception:
            # nothing changed, and the driver reports it.
            return [*exc.effects, ItemRejected(event.key, "pinned-over-budget")]

    @handler(Pin)
    def _on_pin(self, event: Pin, *, now: float) -> list[Effect]:
        try:
            return self.pin(event.key, now=now, until=event.until)
        except PinnedOverBudgetError as exc:
            return list(exc.effects)

    @handler(Unpin)
    def _on_unpin(self, event: Unpin, *, now: float) -> list[Effect]:
        return self.unpin(event.key, now=now)

    @handler(Remove)
    def _on_remove(self, event: Remove, *, now: float) -> list[Effect]:
        return self.remove(event.key, now=now)

    @handler(SetBudget)
    def _on_set_budget(self, event: SetBudget, *, now: float) -> list[Effect]:
        try:
            return self.set_budget(event.budget_bytes, now=now)
        except PinnedOverBudgetError as exc:
            return list(exc.effects)

    def _expired(self, expires_at: float | None, now: float) -> bool:
        """True when calendar time at ``now`` is past ``expires_at`` (never on an unset clock)."""
        cal = self.calendar
        return expires_at is not None and cal.trusted and expires_at <= cal.wall(now)

    # -- requests --------------------------------------------------------------

    def request(self, key: Hashable, *, now: float) -> tuple[bool, list[Effect]]:
        """A local or peer request for ``key``: (hit?, effects).

        An expired item counts as a miss and is dropped. A hit on a policy
        item refreshes its popularity (it may evict nothing: sizes are known).
        """
        item = self._items.get(key)
        if item is None:
            return False, []
        if self._expired(item.expires_at, now):
            effects: list[Effect] = []
            self._drop(key, "expired", effects)
            return False, effects
        if item.pinned_until is None and not item.protected:
            self._policy.request(key, item.size)
        return True, []

    def insert(
        self,
        key: Hashable,
        chunks: Sequence[tuple[bytes, int]],
        *,
        now: float,
        expires_at: float | None = None,
        pin_until: float | None = None,
        pin: bool = False,
    ) -> list[Effect]:
        """Offer item ``key`` made of ``chunks`` ``(digest, size)``; return effects.

        ``expires_at`` (POSIX seconds) drops the item then. ``pin=True`` keeps
        it until ``pin_until`` (default: until it expires), bypassing the
        policy. An existing item is replaced. Raises ValueError for a negative
        chunk size, PinnedOverBudgetError when the pin does not fit.
        """
        norm = []
        for digest, size in chunks:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ValueError(
                    f"chunks: size of {digest!r}: expected an integer >= 0, got {size!r}"
                )
            norm.append((bytes(digest), size))
        effects: list[Effect] = []
        if self._expired(expires_at, now):
            return [ItemRejected(key, "expired")]
        full = sum(s for _, s in norm)
        item = _Item(tuple(norm), full, expires_at)
        if pin:
            # Check before touching anything: a refused pin changes nothing.
            after = self._retained_after(item.chunks, self._items.get(key))
            if after > self._budget:
                self._raise_over(after)
        if key in self._items:
            self._drop(key, "removed", effects)
        if pin:
            item.pinned_until = pin_until if pin_until is not None else float("inf")
            self._items[key] = item
            self._add_refs(item, effects)
            self._retain(item)
            self._schedule(key, item)
            self._policy_resize(effects)
            effects.append(ItemStored(key, self._distinct(item)))
            return effects
        if full > self._policy.capacity_bytes:
            effects.append(ItemRejected(key, "too-large"))
            return effects
        self._policy.request(key, full)
        if key not in self._policy:
            self._settle(effects)
            effects.append(ItemRejected(key, "admission"))
            return effects
        self._items[key] = item
        self._add_refs(item, effects)
        self._schedule(key, item)
        self._settle(effects)
        if key in self._items:
            effects.append(ItemStored(key, self._distinct(item)))
        return effects

    def pin(self, key: Hashable, *, now: float, until: float | None = None) -> list[Effect]:
        """Pin a kept item until ``until`` (default: its expiry); return effects.

        Raises :class:`~meshcore.errors.UnknownItemError` (a KeyError) if
        ``key`` is not kept, PinnedOverBudgetError (changing nothing) if pinned
        content would exceed the budget.
        """
        item = self._items.get(key)
        if item is None:
            raise UnknownItemError(key)
        effects: list[Effect] = []
        if item.pinned_until is None and not item.protected:
            after = self._retained_after(item.chunks, None)
            if after > self._budget:
                self._raise_over(after)
            self._policy.remove(key)
            self._retain(item)
        item.pinned_until = until if until is not None else float("inf")
        item.protected = False
        self._schedule(key, item)
        self._policy_resize(effects)
        return effects

    def unpin(self, key: Hashable, *, now: float) -> list[Effect]:
        """Release a pin: the item competes in the policy again (may be evicted)."""
        item = self._items.get(key)
        if item is None or item.pinned_until is None:
            return []
        effects: list[Effect] = []
        item.pinned_until = None
        self._release(key, item, effects)
        return effects

    def remove(self, key: Hashable, *, now: float) -> list[Effect]:
        """Drop ``key`` on request (deleted content, or an explicit purge)."""
        effects: list[Effect] = []
        if key in self._items:
            self._drop(key, "removed", effects)
        return effects

    def expire(self, *, now: float) -> list[Effect]:
        """Drop items whose expiry has passed and release pins that lapsed.

        Expiries and pins are calendar seconds (``calendar.wall(now)``);
        nothing is done while the calendar is not trusted.
        """
        effects: list[Effect] = []
        if not self.calendar.trusted:
            return effects
        wall = self.calendar.wall(now)
        while self._timers and self._timers[0][0] <= wall:
            _, _, key = heapq.heappop(self._timers)
            item = self._items.get(key)
            if item is None:
                continue
            if item.expires_at is not None and item.expires_at <= wall:
                self._drop(key, "expired", effects)
            elif item.pinned_until is not None and item.pinned_until <= wall:
                item.pinned_until = None
                self._release(key, item, effects)
        return effects

    def set_budget(self, budget_bytes: int, *, now: float) -> list[Effect]:
        """Change the budget (config reload); evicts policy items to fit.

        Raises PinnedOverBudgetError (changing nothing) if pinned content
        alone exceeds the new budget.
        """
        _check_budget("budget_bytes", budget_bytes)
        if self._retained_bytes > budget_bytes:
            pinned = self._retained_bytes
            exc = PinnedOverBudgetError(pinned, budget_bytes)
            exc.effects = [PinnedOverBudget(pinned, budget_bytes)]  # type: ignore[attr-defined]
            raise exc
        self._budget = budget_bytes
        effects: list[Effect] = []
        self._policy_resize(effects)
        return effects

    def recheck_protection(self, *, now: float) -> list[Effect]:
        """Release last-replica items the hook no longer protects (replicas appeared)."""
        effects: list[Effect] = []
        for key, item in list(self._items.items()):
            if item.protected and not (self._last_replica and self._last_replica(key)):
                item.protected = False
                self._release(key, item, effects)
        return effects

    # -- internals -------------------------------------------------------------

    def _raise_over(self, pinned: int) -> None:
        exc = PinnedOverBudgetError(pinned, self._budget)
        exc.effects = [PinnedOverBudget(pinned, self._budget)]  # type: ignore[attr-defined]
        raise exc

    def _distinct(self, item: _Item) -> int:
        seen: dict[bytes, int] = dict(item.chunks)
        return sum(seen.values())

    def _schedule(self, key: Hashable, item: _Item) -> None:
        for when in (item.expires_at, item.pinned_until):
            if when is not None and when != float("inf"):
                self._seq += 1
                heapq.heappush(self._timers, (when, self._seq, key))

    def _add_refs(self, item: _Item, effects: list[Effect]) -> None:
        refs = self._refs
        for digest in dict(item.chunks):
            n = refs.get(digest, 0)
            if n == 0:
                size = dict(item.chunks)[digest]
                self._chunk_size[digest] = size
                self._held += size
                effects.append(StoreChunk(digest, size))
            refs[digest] = n + 1

    def _del_refs(self, item: _Item, effects: list[Effect]) -> None:
        refs = self._refs
        for digest in dict(item.chunks):
            n = refs[digest] - 1
            if n == 0:
                del refs[digest]
                size = self._chunk_size.pop(digest)
                self._held -= size
                effects.append(FreeChunk(digest, size))
            else:
                refs[digest] = n

    def _retained_after(
        self, chunks: tuple[tuple[bytes, int], ...], replacing: _Item | None
    ) -> int:
        """Retained bytes if an item with ``chunks`` were retained instead of ``replacing``."""
        rrefs = self._rrefs
        old: dict[bytes, int] = {}
        if replacing is not None and (replacing.pinned_until is not None or replacing.protected):
            old = dict(replacing.chunks)
        total = self._retained_bytes
        for d, size in old.items():
            if rrefs[d] == 1:
                total -= size
        for d, size in dict(chunks).items():
            if rrefs.get(d, 0) - (1 if d in old else 0) == 0:
                total += size
        return total

    def _new_retained_bytes(self, chunks: tuple[tuple[bytes, int], ...]) -> int:
        return sum(s for d, s in dict(chunks).items() if d not in self._rrefs)

    def _retain(self, item: _Item) -> None:
        rrefs = self._rrefs
        for digest, size in dict(item.chunks).items():
            n = rrefs.get(digest, 0)
            if n == 0:
                self._retained_bytes += size
            rrefs[digest] = n + 1

    def _unretain(self, item: _Item) -> None:
        rrefs = self._rrefs
        for digest, size in dict(item.chunks).items():
            n = rrefs[digest] - 1
            if n == 0:
                del rrefs[digest]
                self._retained_bytes -= size
            else:
                rrefs[digest] = n

    def _drop(self, key: Hashable, reason: str, effects: list[Effect]) -> None:
        item = self._items.pop(key)
        if item.pinned_until is not None or item.protected:
            self._unretain(item)
            self._policy_resize(effects)
        else:
            self._policy.remove(key)
        self._del_refs(item, effects)
        effects.append(Evicted(key, reason))

    def _release(self, key: Hashable, item: _Item, effects: list[Effect]) -> None:
        """Move a retained item back into the policy (it may lose admission)."""
        self._unretain(item)
        self._policy_resize(effects)
        self._policy.request(key, item.size)
        if key not in self._policy:
            self._items.pop(key)
            self._del_refs(item, effects)
            effects.append(Evicted(key, "policy"))
        self._settle(effects)

    def _policy_resize(self, effects: list[Effect]) -> None:
        self._policy.resize(max(0, self._budget - self._retained_bytes))
        self._settle(effects)

    def _settle(self, effects: list[Effect]) -> None:
        """Apply evictions reported by the policy; retain last replicas while room lasts."""
        while self._evicted_keys:
            batch = self._evicted_keys[:]
            self._evicted_keys.clear()
            for key in batch:
                item = self._items.get(key)
                if item is None:
                    continue  # a candidate that was never stored
                if self._last_replica is not None and self._last_replica(key):
                    extra = self._new_retained_bytes(item.chunks)
                    if self._retained_bytes + extra <= self._budget:
                        item.protected = True
                        self._retain(item)
                        self._policy.resize(max(0, self._budget - self._retained_bytes))
                        continue
                del self._items[key]
                self._del_refs(item, effects)
                effects.append(Evicted(key, "policy"))
