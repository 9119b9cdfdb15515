"""Counters, gauges and histograms with labels, cheap enough for a router's hot path.

Theory of operation
-------------------
The data model is Prometheus's (https://prometheus.io/docs/concepts/data_model/):
a *metric family* has a name, a help text, a kind and a fixed tuple of label
names; each distinct tuple of label values is one *child* holding the value.

* **Pre-bound children.** ``family.labels(tier="mesh")`` looks the child up
  once; the caller keeps it and records with ``child.inc(n)``, which is one
  comparison and one attribute increment on a ``__slots__`` object. There is
  no lock: a policy core runs on one thread (sans-I/O), so prometheus-client's
  per-value mutex is pure cost here.
* **Histograms** have fixed, sorted upper bounds chosen at creation (no
  dynamic buckets: memory must be known in advance). ``observe(v)`` bisects
  the bounds (``v <= le`` goes into bucket ``le``, Prometheus's rule) and
  increments one per-bucket count; the exporter makes them cumulative.
* **Cardinality cap.** A family keeps at most ``cap`` children. The label
  set that would exceed it is not stored: its records go to one shared
  *overflow* child whose label values are all ``"__overflow__"`` (so totals
  stay right) and the family's ``dropped`` counter counts the refused label
  sets. Memory per family is therefore bounded by ``cap`` whatever the input.
* **Registry.** Families are registered by name; :meth:`Registry.get` of an
  unknown name raises :class:`UnknownMetricError` listing the known names,
  never returns a fresh empty metric (a typo must not silently count nowhere).

Names follow the Prometheus grammar (``[a-zA-Z_:][a-zA-Z0-9_:]*``; label names
``[a-zA-Z_][a-zA-Z0-9_]*`` not starting with ``__``). Counter names are given
without the ``_total`` suffix; the exporter adds it.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Sequence

from ..errors import MeshcoreError

__all__ = [
    "DEFAULT_BUCKETS",
    "OVERFLOW",
    "Counter",
    "CounterChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "MetricFamily",
    "Registry",
    "UnknownMetricError",
]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
#: Label value given to every label of the shared overflow child.
OVERFLOW = "__overflow__"
#: prometheus-client's default buckets (seconds), for latency histograms.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class UnknownMetricError(MeshcoreError, LookupError):
    """A metric name that was never registered was asked for; ``name`` says which."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        names = sorted(known)
        super().__init__(
            f"unknown metric name {name!r} (registered: {', '.join(names) or 'none'})"
        )


class CounterChild:
    """One labelled counter value: only goes up (``inc`` with ``n >= 0``)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: float = 1) -> None:
        """Add ``n`` (default 1). Raises ValueError for a negative ``n``."""
        if n < 0:
            raise ValueError(f"n: counters only go up, got {n!r}")
        self.value += n


class GaugeChild:
    """One labelled gauge value: set, raised or lowered freely."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def set(self, value: float) -> None:
        """Set the gauge to ``value``."""
        self.value = value

    def inc(self, n: float = 1) -> None:
        """Add ``n`` (may be negative)."""
        self.value += n

    def dec(self, n: float = 1) -> None:
        """Subtract ``n``."""
        self.value -= n


class HistogramChild:
    """One labelled histogram: per-bucket counts (last slot is ``+Inf``), sum and count."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Record one observation: it lands in the first bucket whose bound is >= value."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        """Number of observations."""
        return sum(self.counts)

    def cumulative(self) -> list[int]:
        """Cumulative counts per bound, ``+Inf`` last (the exposition format's buckets)."""
        out = []
        running = 0
        for c in self.counts:
            running += c
            out.append(running)
        return out


class MetricFamily:
    """A named metric with label names and a bounded set of children (see module doc)."""

    kind = "untyped"
    __slots__ = ("_default", "cap", "children", "dropped", "help", "labelnames", "name",
                 "overflow")

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (), *, cap: int) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"name: not a valid metric name: {name!r}")
        if not isinstance(help, str):
            raise TypeError(f"help: expected a string, got {help!r}")
        names = tuple(labelnames)
        for label in names:
            if not isinstance(label, str) or not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"labelnames: not a valid label name: {label!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"labelnames: duplicate label name in {names!r}")
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ValueError(f"cap: expected an integer >= 1, got {cap!r}")
        self.name = name
        self.help = help
        self.labelnames = names
        self.cap = cap
        self.children: dict[tuple[str, ...], object] = {}
        self.dropped = 0
        self.overflow = None
        self._default = self._new_child() if not names else None
        if self._default is not None:
            self.children[()] = self._default

    def _new_child(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def labels(self, *values: str, **kw: str):
        """The child for these label values (positional in label order, or by name).

        Keep the result for the hot path. Raises ValueError when labels are
        missing, extra or not strings. Beyond the cardinality cap, returns the
        shared overflow child and counts the drop in ``dropped``.
        """
        if kw:
            if values:
                raise ValueError("labels: pass label values positionally or by name, not both")
            try:
                values = tuple(kw.pop(n) for n in self.labelnames)
            except KeyError as exc:
                raise ValueError(
                    f"labels: missing label {exc.args[0]!r} for {self.name} "
                    f"(labels: {', '.join(self.labelnames)})"
                ) from None
            if kw:
                raise ValueError(f"labels: unknown label(s) {sorted(kw)} for {self.name}")
        if not self.labelnames:
            raise ValueError(f"labels: {self.name} has no labels; record on the metric itself")
        if len(values) != len(self.labelnames):
            raise ValueError(
                f"labels: {self.name} takes {len(self.labelnames)} label values "
                f"({', '.join(self.labelnames)}), got {len(values)}"
            )
        child = self.children.get(values)
        if child is not None:
            return child
        for v in values:
            if not isinstance(v, str):
                raise ValueError(f"labels: label values must be strings, got {v!r}")
        if len(self.children) >= self.cap:
            self.dropped += 1
            if self.overflow is None:
                self.overflow = self._new_child()
            return self.overflow
        child = self._new_child()
        self.children[values] = child
        return child

    def samples(self) -> Iterator[tuple[tuple[str, ...], object]]:
        """``(label values, child)`` pairs, the overflow child last when present."""
        yield from self.children.items()
        if self.overflow is not None:
            yield (OVERFLOW,) * len(self.labelnames), self.overflow

    def _unlabelled(self):
        if self._default is None:
            raise ValueError(
                f"{self.name} has labels ({', '.join(self.labelnames)}): use .labels(...) first"
            )
        return self._default


class Counter(MetricFamily):
    """A family of monotonically increasing counters (exported as ``<name>_total``)."""

    kind = "counter"
    __slots__ = ()

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, n: float = 1) -> None:
        """Increment an unlabelled counter (ValueError if the family has labels)."""
        self._unlabelled().inc(n)


class Gauge(MetricFamily):
    """A family of gauges: values that go up and down."""

    kind = "gauge"
    __slots__ = ()

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: float) -> None:
        """Set an unlabelled gauge."""
        self._unlabelled().set(value)

    def inc(self, n: float = 1) -> None:
        """Raise an unlabelled gauge."""
        self._unlabelled().inc(n)

    def dec(self, n: float = 1) -> None:
        """Lower an unlabelled gauge."""
        self._unlabelled().dec(n)


class Histogram(MetricFamily):
    """A family of histograms over fixed bucket upper bounds (``+Inf`` is implicit)."""

    kind = "histogram"
    __slots__ = ("bounds",)

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        cap: int,
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        if bounds and bounds[-1] == math.inf:
            bounds = bounds[:-1]
        if not bounds:
            raise ValueError("buckets: need at least one finite bucket bound")
        if any(math.isnan(b) for b in bounds) or any(
            a >= b for a, b in itertools.pairwise(bounds)
        ):
            raise ValueError(f"buckets: bounds must be strictly increasing, got {buckets!r}")
        if "le" in labelnames:
            raise ValueError("labelnames: 'le' is reserved for histogram buckets")
        self.bounds = bounds
        super().__init__(name, help, labelnames, cap=cap)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def observe(self, value: float) -> None:
        """Observe on an unlabelled histogram."""
        self._unlabelled().observe(value)


class Registry:
    """The set of metric families of one node, each name registered once.

    ``cap`` is the default label-cardinality cap per family (the
    ``[analytics] label_cardinality_cap`` setting).
    """

    __slots__ = ("_families", "cap")

    def __init__(self, *, cap: int = 1000) -> None:
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ValueError(f"cap: expected an integer >= 1, got {cap!r}")
        self.cap = cap
        self._families: dict[str, MetricFamily] = {}

    def _add(self, family: MetricFamily) -> MetricFamily:
        if family.name in self._families:
            raise ValueError(f"name: metric {family.name!r} is already registered")
        self._families[family.name] = family
        return family

    def counter(self, name: str, help: str, labelnames: Sequence[str] = (), *,
                cap: int | None = None) -> Counter:
        """Register and return a :class:`Counter` (ValueError if the name is taken)."""
        return self._add(Counter(name, help, labelnames, cap=cap or self.cap))

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = (), *,
              cap: int | None = None) -> Gauge:
        """Register and return a :class:`Gauge`."""
        return self._add(Gauge(name, help, labelnames, cap=cap or self.cap))

    def histogram(self, name: str, help: str, labelnames: Sequence[str] = (), *,
                  buckets: Sequence[float] = DEFAULT_BUCKETS, cap: int | None = None) -> Histogram:
        """Register and return a :class:`Histogram` with fixed ``buckets``."""
        return self._add(Histogram(name, help, labelnames, buckets=buckets, cap=cap or self.cap))

    def get(self, name: str) -> MetricFamily:
        """The family called ``name``; :class:`UnknownMetricError` if never registered."""
        try:
            return self._families[name]
        except KeyError:
            raise UnknownMetricError(name, self._families) from None

    def __contains__(self, name: str) -> bool:
        return name in self._families

    def __iter__(self) -> Iterator[MetricFamily]:
        return iter(self._families.values())

    def dropped(self) -> dict[str, int]:
        """Label sets refused by the cardinality cap, per family (only non-zero)."""
        return {f.name: f.dropped for f in self._families.values() if f.dropped}
