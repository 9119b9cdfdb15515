"""Node summaries and their mesh-wide merge: associative, commutative, idempotent.

Theory of operation
-------------------
Each node periodically publishes a :class:`NodeSummary` of one window (by
default the current UTC day so far): its exact counters, its HyperLogLogs of
user and household pseudonyms, its Misra-Gries top-k of content and its
histograms. A summary is keyed by ``(node, window_start, window)`` and
carries a ``version`` that grows with every summary the node publishes for
that window. Gossip may deliver summaries late, out of order, or twice.

:class:`MeshAggregate` is a state-based CRDT (Shapiro et al., "Conflict-free
replicated data types", SSS 2011): a map from key to the summary with the
greatest ``(version, digest)``, where ``digest`` is the BLAKE2b-256 of the
summary's canonical encoding. Merging one summary (or another aggregate)
keeps, per key, the maximum under that total order. Max over a total order is
a join semilattice, hence:

* **idempotent**: ``max(a, a) = a`` — a duplicate delivery changes nothing;
* **commutative** and **associative**: the result is the per-key maximum of
  all summaries ever delivered, whatever the order or grouping;
* equal versions with different contents (a node restarted and reused a
  version) resolve the same way everywhere, by digest.

Mesh-wide figures are computed from the map *at read time*
(:meth:`MeshAggregate.view`), in sorted node order, so every node that has
received the same set of summaries computes byte-identical figures:

* exact counters: the sum over nodes of each node's latest counters. Replacing
  (not adding) a node's counters is what makes a re-delivered summary harmless;
  summing is exact because each node counts only what it served itself.
* unique users/households: register-wise max of the nodes' HyperLogLogs (itself
  idempotent, so a user seen on several nodes is counted once);
* top content: Misra-Gries merge of the nodes' summaries, folded in node
  order (the merge is commutative but its reduction is not exactly
  associative, so a fixed order makes the result deterministic; the merged
  error is at most ``n / (k + 1)`` with ``n`` the mesh total, Agarwal et al.
  2012);
* histograms: bucket-wise sums (exact).
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import DecodeError
from .sketches import HyperLogLog, MisraGries

__all__ = ["MeshAggregate", "MeshView", "NodeSummary"]

_FORMAT = 1


@dataclass(frozen=True, slots=True, eq=False)
class NodeSummary:
    """One node's figures for one window (``window_start`` and ``window`` in seconds).

    Treat as immutable: the sketches are shared with whoever holds the summary.
    ``histograms`` maps a metric name to ``(bounds, counts, sum)`` with
    ``len(counts) == len(bounds) + 1`` (last = ``+Inf``).
    """

    node: str
    window_start: int
    window: int
    version: int
    counters: Mapping[str, float]
    users: HyperLogLog
    households: HyperLogLog
    top: MisraGries
    histograms: Mapping[str, tuple] = field(default_factory=dict)
    _canon: list = field(default_factory=list, repr=False)

    @property
    def key(self) -> tuple[str, int, int]:
        """``(node, window_start, window)``: what a newer version replaces."""
        return (self.node, self.window_start, self.window)

    def to_dict(self) -> dict:
        """A JSON-able, canonical form (sketches base64-encoded)."""
        return {
            "format": _FORMAT,
            "node": self.node,
            "window_start": self.window_start,
            "window": self.window,
            "version": self.version,
            "counters": {k: self.counters[k] for k in sorted(self.counters)},
            "users": base64.b64encode(self.users.to_bytes()).decode(),
            "households": base64.b64encode(self.households.to_bytes()).decode(),
            "top": self.top.to_dict(),
            "histograms": {
                name: [list(b), list(c), s] for name, (b, c, s) in sorted(self.histograms.items())
            },
        }

    def canonical(self) -> bytes:
        """Canonical JSON encoding (sorted keys, no spaces), cached."""
        if not self._canon:
            text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
            self._canon.append(text.encode())
        return self._canon[0]

    def digest(self) -> bytes:
        """BLAKE2b-256 of :meth:`canonical`: the tie-break between equal versions."""
        return hashlib.blake2b(self.canonical(), digest_size=32).digest()

    def to_bytes(self) -> bytes:
        """Wire form for gossip: zlib-compressed canonical JSON."""
        return zlib.compress(self.canonical(), 6)

    @classmethod
    def from_bytes(cls, data: bytes, *, max_size: int = 1 << 20) -> NodeSummary:
        """Decode :meth:`to_bytes` output; any malformed input raises DecodeError.

        ``max_size`` bounds the decompressed size (a zip bomb from a peer).
        """
        try:
            d = zlib.decompressobj()
            raw = d.decompress(bytes(data), max_size)
            if d.unconsumed_tail or not d.eof:
                raise DecodeError("node summary: truncated or larger than max_size")
            return cls.from_dict(json.loads(raw))
        except DecodeError:
            raise
        except (zlib.error, ValueError, UnicodeDecodeError, TypeError) as exc:
            raise DecodeError(f"node summary: malformed: {exc}") from None

    @classmethod
    def from_dict(cls, d: Mapping) -> NodeSummary:
        """Inverse of :meth:`to_dict`; raises DecodeError naming the bad field."""
        if not isinstance(d, Mapping) or d.get("format") != _FORMAT:
            raise DecodeError("node summary: not a format-1 summary object")
        try:
            node = d["node"]
            ints = [d["window_start"], d["window"], d["version"]]
            if not isinstance(node, str) or not node:
                raise DecodeError("node summary: node: expected a non-empty string")
            if any(isinstance(v, bool) or not isinstance(v, int) for v in ints) or ints[1] <= 0:
                raise DecodeError("node summary: window_start/window/version: bad integers")
            counters = d["counters"]
            if not isinstance(counters, dict) or not all(
                isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
                for k, v in counters.items()
            ):
                raise DecodeError("node summary: counters: expected name -> number")
            users = HyperLogLog.from_bytes(base64.b64decode(d["users"], validate=True))
            households = HyperLogLog.from_bytes(base64.b64decode(d["households"], validate=True))
            if users.p != households.p:
                raise DecodeError("node summary: users/households: precisions differ")
            top = MisraGries.from_dict(d["top"])
            histograms = {}
            for name, (bounds, counts, total) in d["histograms"].items():
                if len(counts) != len(bounds) + 1:
                    raise DecodeError(f"node summary: histograms.{name}: bucket count mismatch")
                histograms[name] = (tuple(bounds), tuple(counts), total)
        except DecodeError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DecodeError(f"node summary: malformed field: {exc!r}") from None
        return cls(node, ints[0], ints[1], ints[2], counters, users, households, top, histograms)


@dataclass(frozen=True, slots=True)
class MeshView:
    """Mesh-wide figures for one window, computed by :meth:`MeshAggregate.view`."""

    window_start: int
    window: int
    nodes: tuple[str, ...]
    counters: Mapping[str, float]
    per_node: Mapping[str, Mapping[str, float]]
    users: HyperLogLog | None
    households: HyperLogLog | None
    top: MisraGries | None
    histograms: Mapping[str, tuple]

    def to_dict(self) -> dict:
        """A JSON-able canonical form (for comparing views and for reports)."""
        return {
            "window_start": self.window_start,
            "window": self.window,
            "nodes": list(self.nodes),
            "counters": {k: self.counters[k] for k in sorted(self.counters)},
            "per_node": {n: dict(sorted(c.items())) for n, c in sorted(self.per_node.items())},
            "users": base64.b64encode(self.users.to_bytes()).decode() if self.users else None,
            "households": (
                base64.b64encode(self.households.to_bytes()).decode() if self.households else None
            ),
            "top": self.top.to_dict() if self.top else None,
            "histograms": {k: [list(b), list(c), s] for k, (b, c, s) in
                           sorted(self.histograms.items())},
        }


class MeshAggregate:
    """Last-writer-wins map of node summaries (a CRDT; see module doc)."""

    __slots__ = ("entries",)

    def __init__(self, summaries: Iterable[NodeSummary] = ()) -> None:
        self.entries: dict[tuple[str, int, int], NodeSummary] = {}
        for s in summaries:
            self.merge(s)

    def merge(self, summary: NodeSummary) -> bool:
        """Keep ``summary`` if it is newer than what is held for its key; True if kept."""
        if not isinstance(summary, NodeSummary):
            raise TypeError(f"summary: expected a NodeSummary, got {type(summary).__name__}")
        held = self.entries.get(summary.key)
        if held is not None:
            if summary.version < held.version:
                return False
            if summary.version == held.version and summary.digest() <= held.digest():
                return False
        self.entries[summary.key] = summary
        return True

    def join(self, other: MeshAggregate) -> None:
        """Merge every summary ``other`` holds (state-based CRDT join)."""
        for s in other.entries.values():
            self.merge(s)

    def windows(self) -> list[tuple[int, int]]:
        """The ``(window_start, window)`` pairs held, sorted."""
        return sorted({(k[1], k[2]) for k in self.entries})

    def view(self, window_start: int, window: int) -> MeshView:
        """Mesh-wide figures of one window (deterministic: nodes in sorted order)."""
        summaries = sorted(
            (s for k, s in self.entries.items() if k[1] == window_start and k[2] == window),
            key=lambda s: s.node,
        )
        counters: dict[str, float] = {}
        per_node: dict[str, dict[str, float]] = {}
        users = households = top = None
        histograms: dict[str, tuple] = {}
        for s in summaries:
            per_node[s.node] = dict(s.counters)
            for k, v in s.counters.items():
                counters[k] = counters.get(k, 0) + v
            if users is None:
                users, households, top = s.users.copy(), s.households.copy(), s.top.copy()
            else:
                users.merge(s.users)
                households.merge(s.households)
                top.merge(s.top)
            for name, (bounds, counts, total) in s.histograms.items():
                held = histograms.get(name)
                if held is None:
                    histograms[name] = (tuple(bounds), tuple(counts), total)
                elif tuple(held[0]) == tuple(bounds):
                    histograms[name] = (
                        held[0], tuple(a + b for a, b in zip(held[1], counts, strict=True)),
                        held[2] + total,
                    )
        return MeshView(
            window_start, window, tuple(s.node for s in summaries), counters, per_node,
            users, households, top, histograms,
        )

    def to_dict(self) -> dict:
        """Canonical form of the whole map (equal for equal states)."""
        return {
            f"{k[0]}|{k[1]}|{k[2]}": self.entries[k].to_dict() for k in sorted(self.entries)
        }
