"""Popularity tracking: a count-min sketch with aging and a TinyLFU doorkeeper.

The sketch is part of the cache kernel (``meshcore.kernels``: compiled in
``ext/cache.pyx``, pure twin in ``meshcore/kernels/_cache_py.py``); this module
is where the cache core takes it from.

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

from ..kernels import FrequencySketch, key_hash

__all__ = ["FrequencySketch", "key_hash"]
