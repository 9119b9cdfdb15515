"""Conventions every benchmark in bench/ follows, so report.py can print ratios.

Each benchmark test calls :func:`describe` on pytest-benchmark's fixture:

* ``group``: one comparison (same workload, several implementations);
* ``impl``: who is measured (``"meshcore-compiled"``, ``"meshcore-pure"``,
  ``"rbloom"``, ...);
* ``role``: ``"ours"`` (meshcore, compiled kernels), ``"twin"`` (the pure
  twin), ``"peer"`` (the named library we compare against) or ``"bound"``
  (a target or theoretical bound, e.g. a time budget, timed or synthetic);
* ``items``: how many operations one round performs (keys, bytes, dequeues),
  so that throughput can be printed;
* ``metrics``: quality figures that are not times (false-positive rate, mean
  chunk size, ...), printed beside the timings.

A row with no peer doing the same work is judged against its target instead:
:func:`against_bound` names one of its figures (a metric, or the row's
``throughput`` or median ``time``) and the bound it must meet, and report.py
prints "figure vs bound: met/missed" under the row, with no time ratio. Never
time a no-op or a sleep to stand for a bound.

``QUICK`` (``MESHCORE_BENCH_QUICK=1``, the default of ``ci/bench.sh``) shrinks
workloads so the whole table prints in under a minute; the figures in
RESULTS.md come from full runs.
"""

from __future__ import annotations

import os
import statistics
import time

QUICK = os.environ.get("MESHCORE_BENCH_QUICK", "").strip().lower() not in ("", "0", "false", "no")


def scale(full: int, quick: int) -> int:
    """Workload size: ``full`` for recorded runs, ``quick`` for the short table."""
    return quick if QUICK else full


def describe(benchmark, *, group: str, impl: str, role: str, items: int, unit: str = "ops",
             **metrics: float) -> None:
    """Label one benchmark for the ratio table (see module docstring)."""
    if role not in ("ours", "twin", "peer", "bound"):
        raise ValueError(f"role: expected 'ours', 'twin', 'peer' or 'bound', got {role!r}")
    benchmark.group = group
    benchmark.extra_info.update(impl=impl, role=role, items=items, unit=unit)
    if metrics:
        benchmark.extra_info.setdefault("metrics", {}).update(metrics)


def against_bound(benchmark, metric: str, bound: float, *, better: str, unit: str = "",
                  stderr: str | None = None) -> None:
    """Judge this row's figure ``metric`` against ``bound`` (no time ratio).

    ``metric`` is a key of the row's metrics, or ``"throughput"`` (items per
    second) or ``"time"`` (median seconds per round). ``better`` is
    ``"lower"`` (the figure must be <= bound) or ``"higher"`` (>= bound);
    ``unit`` is printed after both numbers. ``stderr`` names the metric that
    holds the figure's standard error, if it has one: the verdict is then
    "met" or "missed" only when the figure is two standard errors clear of
    the bound, and "within 2 stderr" otherwise. Calling it again for the same
    metric replaces the earlier bound.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better: expected 'lower' or 'higher', got {better!r}")
    benchmark.extra_info.setdefault("bounds", {})[metric] = {
        "bound": bound, "better": better, "unit": unit, "stderr": stderr,
    }


def _timed(fn, setup) -> float:
    args = setup() if setup is not None else ()
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def paired_ratios(ours, peer, *, rounds: int, ours_setup=None, peer_setup=None) -> list[float]:
    """Every pair's ``peer time / ours time`` (see :func:`paired_ratio`), in run order."""
    _timed(ours, ours_setup)
    _timed(peer, peer_setup)
    ratios = []
    for i in range(rounds):
        if i % 2:
            t_peer = _timed(peer, peer_setup)
            t_ours = _timed(ours, ours_setup)
        else:
            t_ours = _timed(ours, ours_setup)
            t_peer = _timed(peer, peer_setup)
        ratios.append(t_peer / t_ours)
    return ratios


def spread(ratios: list[float]) -> dict[str, float]:
    """``paired_vs_peer`` (median) with ``paired_min`` and ``paired_max``: the spread to report."""
    return {
        "paired_vs_peer": statistics.median(ratios),
        "paired_min": min(ratios),
        "paired_max": max(ratios),
    }


def paired_ratio(ours, peer, *, rounds: int, ours_setup=None, peer_setup=None) -> float:
    """Median over ``rounds`` pairs of ``peer time / ours time``, each pair run back to back.

    A shared machine's speed drifts over seconds, so two rows timed minutes
    apart can disagree by 30%; timing ours and the peer in adjacent pairs,
    alternating which goes first, cancels most of that drift. ``*_setup``
    (untimed) returns the argument tuple for the next call. Values above 1
    mean ours is faster. Reported as the ``paired_vs_peer`` metric.
    """
    ratios = paired_ratios(ours, peer, rounds=rounds, ours_setup=ours_setup, peer_setup=peer_setup)
    return statistics.median(ratios)
