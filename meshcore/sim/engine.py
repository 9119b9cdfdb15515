"""The discrete-event engine: a simulated clock and a queue of timed callbacks.

Theory of operation (SimPy ``Environment.schedule``): events sit in a binary
heap keyed by ``(time, seq)``; ``seq`` comes from a counter, so two events at
the same instant run in the order they were scheduled and a run is exactly
reproducible for a given seed. ``run`` pops the earliest event, sets ``now``
to its time and calls it; callbacks schedule further events. Nothing here
reads the wall clock, and all randomness comes from ``Simulator.rng``
(seeded), so the policy cores the simulator hosts see the same inputs on
every run.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from typing import Any

__all__ = ["Simulator", "Timer"]


class Timer:
    """A handle on one scheduled callback; ``cancel()`` stops it from running."""

    __slots__ = ("args", "callback", "cancelled", "time")

    def __init__(self, time: float, callback: Callable[..., Any], args: tuple) -> None:
        self.time = time
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run this callback (cheap: it stays in the heap and is skipped)."""
        self.cancelled = True


class Simulator:
    """A simulated clock (seconds, starting at ``start``) and its event queue.

    ``rng`` is the one source of randomness for everything the run drives.
    ``events_run`` counts the events run so far; inside a ``run`` it is
    brought up to date when ``run`` returns (kept off the per-event path).
    """

    def __init__(self, *, seed: int = 0, start: float = 0.0) -> None:
        self.now = float(start)
        self.rng = random.Random(seed)
        self.events_run = 0
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()

    def schedule_at(self, time: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` at simulated ``time`` (not before ``now``)."""
        if time != time:  # NaN would corrupt the heap order
            raise ValueError("time: expected a number, got NaN")
        if time < self.now:
            raise ValueError(f"time: {time} is in the past (now is {self.now})")
        timer = Timer(time, callback, args)
        heapq.heappush(self._heap, (time, next(self._seq), timer))
        return timer

    def schedule(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` after ``delay`` simulated seconds (``delay >= 0``)."""
        if not delay >= 0:  # NaN too
            raise ValueError(f"delay: expected a number >= 0, got {delay!r}")
        # The hot path of every simulation: schedule_at's checks inlined.
        time = self.now + delay
        timer = Timer(time, callback, args)
        heapq.heappush(self._heap, (time, next(self._seq), timer))
        return timer

    def peek(self) -> float | None:
        """The time of the next pending event, or None when the queue is empty."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def step(self) -> bool:
        """Run the next event; False when there is none."""
        heap = self._heap
        while heap:
            time, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            self.now = time
            self.events_run += 1
            timer.callback(*timer.args)
            return True
        return False

    def run(self, until: float | None = None, *, max_events: int | None = None) -> int:
        """Run events in time order until ``until`` (inclusive), the queue empties, or
        ``max_events`` have run; returns the number of events run.

        With ``until`` set, the clock ends at ``until`` even if the queue ran dry
        earlier, so back-to-back ``run`` calls tile time without gaps.
        """
        count = 0
        heap = self._heap
        pop = heapq.heappop
        limit = math.inf if max_events is None else max_events
        end = math.inf if until is None else until
        try:
            while heap and count < limit:
                time, _, timer = heap[0]
                if time > end:
                    break
                pop(heap)
                if timer.cancelled:
                    continue
                self.now = time
                count += 1
                timer.callback(*timer.args)
        finally:
            self.events_run += count
        if until is not None and until > self.now and (max_events is None or count < max_events):
            self.now = float(until)
        return count

    def __len__(self) -> int:
        """Pending (not cancelled) events."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)
