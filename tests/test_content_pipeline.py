"""The bounded, order-keeping thread pipeline behind ChunkStore.add_many / get_many."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.content import _pipeline
from meshcore.content._pipeline import default_threads, ordered_map


def results(gen) -> list:
    return [fut.result() for _item, fut in gen]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=40), st.integers(1, 3), st.integers(1, 6))
def test_order_is_kept_whatever_the_finishing_order(items, threads, window):
    def slow_square(x):
        time.sleep((x % 4) * 0.0005)  # later items often finish first
        return x * x

    pairs = list(ordered_map(slow_square, items, threads=threads, window=window))
    assert [i for i, _f in pairs] == items
    assert [f.result() for _i, f in pairs] == [x * x for x in items]


def test_at_most_window_items_in_flight():
    lock = threading.Lock()
    live = [0]
    peak = [0]

    def work(x):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.002)
        with lock:
            live[0] -= 1
        return x

    pulled = []

    def source():
        for i in range(30):
            pulled.append(i)
            yield i

    gen = ordered_map(work, source(), threads=2, window=3)
    for n, (item, _fut) in enumerate(gen):
        # the producer is never more than `window` items ahead of the consumer
        assert len(pulled) <= n + 3, (item, pulled)
    assert peak[0] <= 2 and pulled == list(range(30))


def test_errors_are_delivered_in_place():
    def fail_on_3(x):
        if x == 3:
            raise ValueError("three")
        return x

    for threads in (1, 2):
        pairs = list(ordered_map(fail_on_3, range(6), threads=threads, window=2))
        assert [f.exception() is None for _i, f in pairs] == [True] * 3 + [False] + [True] * 2
        with pytest.raises(ValueError, match="three"):
            pairs[3][1].result()


def test_abandoning_hands_unconsumed_results_to_discard():
    started = threading.Event()
    discarded = []

    def work(x):
        started.set()
        return x * 10

    gen = ordered_map(work, range(100), threads=2, window=4,
                      discard=lambda item, fut: discarded.append((item, fut.result())))
    first = next(gen)
    assert first[1].result() == 0
    gen.close()
    # everything submitted after item 0 and not cancelled was discarded, nothing twice
    assert discarded, "items in flight must be handed to discard"
    items = [i for i, _r in discarded]
    assert items == sorted(set(items)) and all(1 <= i <= 4 for i in items)
    assert all(r == i * 10 for i, r in discarded)


def test_an_error_in_the_producer_cleans_up():
    discarded = []

    def source():
        yield from range(5)
        raise OSError("read failed")

    ran = []
    gen = ordered_map(lambda x: ran.append(x) or x, source(), threads=2, window=8,
                      discard=lambda item, fut: discarded.append(item))
    with pytest.raises(OSError, match="read failed"):
        list(gen)
    # none was yielded before the error: what ran is discarded, the rest was cancelled
    assert ran and sorted(discarded) == sorted(ran) and set(ran) <= set(range(5))


def test_inline_mode_runs_on_the_calling_thread():
    me = threading.get_ident()
    seen = []
    out = results(ordered_map(lambda x: seen.append(threading.get_ident()) or x, range(5),
                              threads=1))
    assert out == list(range(5)) and set(seen) == {me}


def test_bad_arguments():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="threads"):
            ordered_map(lambda x: x, [], threads=bad)
        with pytest.raises(ValueError, match="window"):
            ordered_map(lambda x: x, [], threads=2, window=bad)


def test_default_threads_is_one_or_two(monkeypatch):
    assert 1 <= default_threads() <= 2
    monkeypatch.setattr(_pipeline.os, "sched_getaffinity", lambda pid: {0})
    assert default_threads() == 1
    monkeypatch.setattr(_pipeline.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert default_threads() == 2
