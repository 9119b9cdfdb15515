"""Fairness metrics: Jain's index, weighted max-min fair shares, share ratios.

Theory of operation
-------------------
* **Jain's fairness index** (R. Jain, D. Chiu, W. Hawe, "A Quantitative
  Measure of Fairness and Discrimination for Resource Allocation in Shared
  Computer Systems", DEC-TR-301, 1984)::

      J(x_1..x_n) = (sum x_i)^2 / (n * sum x_i^2)

  It is 1 when every x_i is equal and 1/n when one user gets everything.
  With weights, x_i is replaced by the *normalised* allocation x_i / w_i
  (so a weight-2 user getting twice as much is perfectly fair).
* **Weighted max-min fairness** by water-filling (D. Bertsekas, R. Gallager,
  *Data Networks*, 2nd ed., section 6.5.2): raise a common "water level" L;
  user i receives ``min(d_i, w_i * L)``; L rises until the capacity is used
  up or every demand is met. Computed exactly in O(n log n) by visiting users
  in order of ``d_i / w_i``: a user whose normalised demand is below the
  level the remaining capacity would give everyone left is satisfied and
  removed; the rest share the remainder by weight.
* **Share ratio**: what a user got divided by its max-min fair share; the
  worst (smallest) ratio over users is the figure the issue's targets use
  (``>= 0.95``).

Pure functions on plain sequences; no I/O, no clocks. ``jain_index`` is also
imported by the analytics package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["jain_index", "max_min_fair_shares", "share_ratios", "worst_share_ratio"]


def _finite_nonneg(name: str, values: Sequence[float]) -> list[float]:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(f"{name}[{i}]: expected a number, got {v!r}")
        f = float(v)
        if not (f >= 0.0 and math.isfinite(f)):
            raise ValueError(f"{name}[{i}]: expected a finite number >= 0, got {v!r}")
        out.append(f)
    return out


def _weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0] * n
    if len(weights) != n:
        raise ValueError(f"weights: expected {n} weights (one per value), got {len(weights)}")
    out = []
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, int | float):
            raise TypeError(f"weights[{i}]: expected a number, got {w!r}")
        f = float(w)
        if not (f > 0.0 and math.isfinite(f)):
            raise ValueError(f"weights[{i}]: expected a finite number > 0, got {w!r}")
        out.append(f)
    return out


def jain_index(values: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """Jain's fairness index of ``values`` (throughputs, bytes...), in ``[1/n, 1]``.

    With ``weights``, the index of ``values[i] / weights[i]``. All-zero values
    count as perfectly fair (1.0): nobody got more than anybody else.
    Raises ValueError for an empty sequence, a negative or non-finite value,
    a weight <= 0, or a weights list of another length; TypeError for a
    non-number.
    """
    xs = _finite_nonneg("values", values)
    if not xs:
        raise ValueError("values: expected at least one value, got none")
    ws = _weights(weights, len(xs))
    norm = [x / w for x, w in zip(xs, ws, strict=True)]
    top = max(norm)
    if top == 0.0:
        return 1.0
    # Scale by the maximum so the squares cannot overflow for huge byte counts.
    scaled = [x / top for x in norm]
    total = math.fsum(scaled)
    squares = math.fsum(x * x for x in scaled)
    return min(1.0, total * total / (len(scaled) * squares))


def max_min_fair_shares(
    capacity: float,
    demands: Sequence[float],
    weights: Sequence[float] | None = None,
) -> list[float]:
    """Weighted max-min fair allocation of ``capacity`` among ``demands`` (water-filling).

    ``demands[i]`` is what user i would use if unconstrained (``math.inf`` for
    a backlogged user); units are the caller's (bytes/s or bytes over a
    window), the same for capacity and demands. Returns one share per user:
    ``min(demands[i], weights[i] * level)`` with the level chosen so the
    shares sum to ``min(capacity, sum(demands))``. Raises ValueError for a
    negative or NaN capacity or demand, or a bad weight; TypeError for a
    non-number.
    """
    if isinstance(capacity, bool) or not isinstance(capacity, int | float):
        raise TypeError(f"capacity: expected a number, got {capacity!r}")
    if not (capacity >= 0.0 and math.isfinite(capacity)):
        raise ValueError(f"capacity: expected a finite number >= 0, got {capacity!r}")
    ds = []
    for i, d in enumerate(demands):
        if isinstance(d, bool) or not isinstance(d, int | float):
            raise TypeError(f"demands[{i}]: expected a number, got {d!r}")
        if not float(d) >= 0.0:
            raise ValueError(f"demands[{i}]: expected a number >= 0 (or inf), got {d!r}")
        ds.append(float(d))
    ws = _weights(weights, len(ds))
    shares = [0.0] * len(ds)
    order = sorted(range(len(ds)), key=lambda i: ds[i] / ws[i])
    remaining = float(capacity)
    weight_left = math.fsum(ws)
    for pos, i in enumerate(order):
        level = remaining / weight_left if weight_left > 0 else 0.0
        if ds[i] / ws[i] <= level:
            shares[i] = ds[i]
            remaining = max(0.0, remaining - ds[i])
            weight_left -= ws[i]
            continue
        # Everyone from here on is limited by the level, not by demand.
        for j in order[pos:]:
            shares[j] = ws[j] * level
        break
    return shares


def share_ratios(allocations: Sequence[float], fair_shares: Sequence[float]) -> list[float]:
    """``allocations[i] / fair_shares[i]`` per user (1.0 where the fair share is 0).

    Raises ValueError when the lengths differ or a value is negative or not
    finite.
    """
    got = _finite_nonneg("allocations", allocations)
    fair = _finite_nonneg("fair_shares", fair_shares)
    if len(got) != len(fair):
        raise ValueError(
            f"fair_shares: expected {len(got)} values (one per allocation), got {len(fair)}"
        )
    return [g / f if f > 0.0 else 1.0 for g, f in zip(got, fair, strict=True)]


def worst_share_ratio(allocations: Sequence[float], fair_shares: Sequence[float]) -> float:
    """The smallest of :func:`share_ratios` (1.0 for no users)."""
    ratios = share_ratios(allocations, fair_shares)
    return min(ratios) if ratios else 1.0
