"""Replay a request trace against cache policies and count hits.

Theory of operation
-------------------
A policy is any object with ``request(key, size) -> bool`` (True on a hit; on a
miss it decides admission and eviction itself), ``used_bytes`` and
``capacity_bytes`` (see :func:`meshcore.cache.make_policy`). :func:`replay` feeds
it every request of a trace, in order, and counts:

* the **object hit ratio** (OHR): hits / requests, what users feel as latency;
* the **byte hit ratio** (BHR): bytes served from cache / bytes requested, what
  the community saves on its uplink.

The first ``warmup`` requests go to the policy but are not counted, so that a
cold start does not weigh on a steady-state figure (libCacheSim reports the
whole trace; use ``warmup=0`` to compare with it). :func:`replay_many` replays one
pass of a trace against several policies at once, for traces that can be read
only once (generators, files being streamed).

A request's ``size`` must be an integer >= 0; a trace element is anything
indexable whose items 0 and 1 are the key and the size, so ``(key, size)`` pairs
and :class:`~meshcore.cache._traces.Request` tuples both work. With
``check_budget``, the policy's ``used_bytes`` is compared with its
``capacity_bytes`` after every request, and a policy that breaks its budget
raises RuntimeError naming the request index: a test harness for new policies.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["HitStats", "replay", "replay_many"]


@dataclass(frozen=True, slots=True)
class HitStats:
    """Counts of one replay (after warm-up): requests, hits, bytes requested and hit."""

    requests: int
    hits: int
    bytes_requested: int
    bytes_hit: int
    warmup_requests: int = 0

    @property
    def object_hit_ratio(self) -> float:
        """Hits / requests (0.0 when no request was counted)."""
        return self.hits / self.requests if self.requests else 0.0

    @property
    def byte_hit_ratio(self) -> float:
        """Bytes hit / bytes requested (0.0 when no byte was requested)."""
        return self.bytes_hit / self.bytes_requested if self.bytes_requested else 0.0

    @property
    def object_miss_ratio(self) -> float:
        """1 - object hit ratio (libCacheSim reports miss ratios)."""
        return 1.0 - self.object_hit_ratio

    @property
    def byte_miss_ratio(self) -> float:
        """1 - byte hit ratio."""
        return 1.0 - self.byte_hit_ratio


def _check_warmup(warmup) -> int:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: expected an integer >= 0, got {warmup!r}")
    return warmup


def _bad_size(index: int, size) -> ValueError:
    return ValueError(f"trace[{index}]: size: expected an integer >= 0, got {size!r}")


def _as_size(index: int, size) -> int:
    # numpy integers are fine; bools and floats are not sizes.
    if isinstance(size, bool):
        raise _bad_size(index, size)
    try:
        return operator.index(size)
    except TypeError:
        raise _bad_size(index, size) from None


def _over_budget(index: int, name: str, policy) -> RuntimeError:
    return RuntimeError(
        f"policy {name} holds {policy.used_bytes} bytes after request {index}, "
        f"over its capacity of {policy.capacity_bytes} bytes"
    )


def replay(policy, trace: Iterable, *, warmup: int = 0, check_budget: bool = False) -> HitStats:
    """Replay ``trace`` against ``policy`` and return its :class:`HitStats`.

    ``warmup``: how many leading requests are replayed but not counted.
    Raises ValueError for a bad ``warmup`` or a request whose size is not an
    integer >= 0, and RuntimeError (with ``check_budget``) when the policy holds
    more than ``capacity_bytes``.
    """
    warmup = _check_warmup(warmup)
    request = policy.request
    requests = hits = bytes_requested = bytes_hit = 0
    index = -1
    for index, item in enumerate(trace):
        key = item[0]
        size = item[1]
        if size.__class__ is not int:
            size = _as_size(index, size)
        if size < 0:
            raise _bad_size(index, size)
        hit = request(key, size)
        if check_budget and policy.used_bytes > policy.capacity_bytes:
            raise _over_budget(index, type(policy).__name__, policy)
        if index >= warmup:
            requests += 1
            bytes_requested += size
            if hit:
                hits += 1
                bytes_hit += size
    return HitStats(requests, hits, bytes_requested, bytes_hit, min(warmup, index + 1))


def replay_many(
    policies: Mapping[str, object],
    trace: Iterable,
    *,
    warmup: int = 0,
    check_budget: bool = False,
) -> dict[str, HitStats]:
    """Replay one pass of ``trace`` against every policy in ``policies`` (name -> policy).

    Returns name -> :class:`HitStats`; same errors as :func:`replay`.
    """
    warmup = _check_warmup(warmup)
    names = list(policies)
    calls = [policies[name].request for name in names]
    counts = [[0, 0] for _ in names]  # hits, bytes hit
    requests = bytes_requested = 0
    index = -1
    for index, item in enumerate(trace):
        key = item[0]
        size = item[1]
        if size.__class__ is not int:
            size = _as_size(index, size)
        if size < 0:
            raise _bad_size(index, size)
        counted = index >= warmup
        if counted:
            requests += 1
            bytes_requested += size
        for slot, name, request in zip(counts, names, calls, strict=True):
            hit = request(key, size)
            if check_budget:
                policy = policies[name]
                if policy.used_bytes > policy.capacity_bytes:
                    raise _over_budget(index, repr(name), policy)
            if hit and counted:
                slot[0] += 1
                slot[1] += size
    done = min(warmup, index + 1)
    return {
        name: HitStats(requests, slot[0], bytes_requested, slot[1], done)
        for name, slot in zip(names, counts, strict=True)
    }
