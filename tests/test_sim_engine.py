"""The discrete-event engine: ordering, cancellation, run bounds, reproducibility."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.sim.engine import Simulator, Timer


def test_events_run_in_time_order_and_fifo_within_one_instant():
    sim = Simulator()
    seen = []
    sim.schedule(2.0, seen.append, "c")
    sim.schedule(1.0, seen.append, "a")
    sim.schedule(1.0, seen.append, "b")  # same instant: scheduling order
    sim.schedule_at(0.5, seen.append, "first")
    assert sim.run() == 4
    assert seen == ["first", "a", "b", "c"]
    assert sim.now == 2.0
    assert sim.events_run == 4


def test_callbacks_schedule_more_events_and_see_the_clock():
    sim = Simulator(start=10.0)
    times = []

    def tick(n):
        times.append(sim.now)
        if n:
            sim.schedule(0.25, tick, n - 1)

    sim.schedule(0.0, tick, 3)
    sim.run()
    assert times == [10.0, 10.25, 10.5, 10.75]


def test_cancel_skips_the_callback_and_len_counts_pending_only():
    sim = Simulator()
    seen = []
    t = sim.schedule(1.0, seen.append, 1)
    sim.schedule(2.0, seen.append, 2)
    assert isinstance(t, Timer)
    assert len(sim) == 2
    t.cancel()
    assert len(sim) == 1
    assert sim.peek() == 2.0
    sim.run()
    assert seen == [2]
    assert sim.peek() is None


def test_run_until_stops_inclusive_and_advances_the_clock():
    sim = Simulator()
    seen = []
    for t in (1.0, 2.0, 3.0):
        sim.schedule_at(t, seen.append, t)
    assert sim.run(until=2.0) == 2
    assert seen == [1.0, 2.0]
    assert sim.now == 2.0
    assert sim.run(until=10.0) == 1
    assert sim.now == 10.0  # the queue ran dry at 3.0, the clock still reaches until


def test_run_max_events_and_step():
    sim = Simulator()
    seen = []
    for t in range(5):
        sim.schedule_at(float(t), seen.append, t)
    assert sim.run(max_events=2) == 2
    assert seen == [0, 1]
    assert sim.step() is True
    assert seen == [0, 1, 2]
    c = sim.schedule_at(3.5, seen.append, "x")
    c.cancel()
    assert sim.run(until=100.0, max_events=1) == 1
    assert sim.now == 3.0  # stopped by max_events: the clock stays at the last event
    sim.run()
    assert seen == [0, 1, 2, 3, 4]
    assert sim.step() is False


def test_cancelled_event_at_the_head_of_the_queue_is_skipped_by_step():
    sim = Simulator()
    seen = []
    sim.schedule(1.0, seen.append, "gone").cancel()
    sim.schedule(2.0, seen.append, "kept")
    assert sim.step() is True
    assert seen == ["kept"]


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_delays_and_times_are_refused(bad):
    sim = Simulator(start=5.0)
    with pytest.raises(ValueError, match="delay"):
        sim.schedule(bad, print)
    with pytest.raises(ValueError, match="time"):
        sim.schedule_at(bad, print)


def test_past_time_is_refused():
    sim = Simulator(start=5.0)
    with pytest.raises(ValueError, match="in the past"):
        sim.schedule_at(4.0, print)


def test_seeded_rng_is_reproducible():
    a, b = Simulator(seed=7), Simulator(seed=7)
    assert [a.rng.random() for _ in range(5)] == [b.rng.random() for _ in range(5)]
    assert Simulator(seed=8).rng.random() != Simulator(seed=7).rng.random()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=40))
def test_any_schedule_runs_sorted_and_stably(delays):
    sim = Simulator()
    seen = []
    for i, d in enumerate(delays):
        sim.schedule(d, lambda i=i: seen.append((sim.now, i)))
    sim.run()
    assert seen == sorted(((d, i) for i, d in enumerate(delays)))
