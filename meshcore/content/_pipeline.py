"""A bounded, order-keeping thread pipeline for the store's hot paths (driver side only).

Theory of operation: publishing and verified reading spend most of their CPU
in BLAKE2b-256 (hashlib), lz4 and file system calls, all of which release the
GIL on large buffers. :func:`ordered_map` runs ``fn`` over ``items`` on a few
threads while the calling thread keeps producing items (reading and chunking
the file) and consuming results (registering writes, yielding chunks), so two
cores work at once. Results come back **in input order**; at most ``window``
items are in flight, which bounds memory (window x the largest item) whatever
the input size. Abandoning the iterator (an error, ``close()``) cancels what
has not started, waits for what has, and hands every finished but unconsumed
``(item, future)`` to ``discard`` so that nothing it made (a temp file, a
reservation) outlives the call and no error it found (a corrupt chunk already
quarantined) goes unreported.

With ``threads <= 1`` (single-core routers) ``fn`` runs inline on the calling
thread, one item at a time, and no pool is created.

This is I/O-driver code: policy cores never use it (they have no threads).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["default_threads", "ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


def default_threads() -> int:
    """Worker threads for the store's pipelines: the CPUs this process may use, at most 2.

    Two is where the measured gain stops on the 2-vCPU development VM and on
    dual-core routers; a single-core router gets 1 (inline, no pool).
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(2, n))


def _check(threads: int | None, window: int) -> int:
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected an int >= 1, got {threads!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window: expected an int >= 1, got {window!r}")
    return threads


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    threads: int | None = None,
    window: int = 4,
    discard: Callable[[T, Future[R]], None] | None = None,
) -> Iterator[tuple[T, Future[R]]]:
    """``(item, future)`` pairs in input order, ``future`` done, holding ``fn(item)`` or its error.

    At most ``window`` items are submitted ahead of the one being consumed.
    ``threads`` defaults to :func:`default_threads`. An error raised by
    ``items`` itself propagates at once (after the cleanup below). Raises
    ValueError for ``threads`` or ``window`` < 1.

    Cleanup when the iterator is closed or the consumer fails: items not
    started are cancelled, running ones are waited for, and ``discard`` is
    called with every ``(item, future)`` that finished (result or error) but
    was never yielded.
    """
    threads = _check(threads, window)
    if threads == 1:
        return _inline(fn, items)
    return _threaded(fn, items, threads, window, discard)


def _inline(fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[T, Future[R]]]:
    for item in items:
        fut: Future[R] = Future()
        try:
            fut.set_result(fn(item))
        except Exception as exc:  # handed to the consumer, as the pool would
            fut.set_exception(exc)
        yield item, fut


def _threaded(
    fn: Callable[[T], R],
    items: Iterable[T],
    threads: int,
    window: int,
    discard: Callable[[T, Future[R]], None] | None,
) -> Iterator[tuple[T, Future[R]]]:
    pool = ThreadPoolExecutor(threads, thread_name_prefix="meshcore-pipe")
    inflight: deque[tuple[T, Future[R]]] = deque()
    try:
        for item in items:
            inflight.append((item, pool.submit(fn, item)))
            if len(inflight) >= window:
                head = inflight.popleft()
                head[1].exception()  # wait, without raising here
                yield head
        while inflight:
            head = inflight.popleft()
            head[1].exception()
            yield head
    finally:
        for _item, fut in inflight:
            fut.cancel()
        pool.shutdown(wait=True)
        if discard is not None:
            for item, fut in inflight:
                if not fut.cancelled():
                    discard(item, fut)
