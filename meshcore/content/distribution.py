"""Distribution policies: what should this node do with an item? (sans-I/O)

Theory of operation
-------------------
Every manifest names a distribution policy and a retention (see
:mod:`meshcore.content._policy_names`). :func:`evaluate` turns that, plus what
the node knows about itself (:class:`DistributionContext`), into one
:class:`Placement`: an :class:`Action` and the reason for it.

* ``FETCH_NOW``: the node is a designated holder and lacks chunks: fetch them
  now (background class), even if nobody asked.
* ``KEEP``: hold the item; do not evict it while the reason stands
  (``pinned_until`` says until when, ``None`` = no end date).
* ``MAY_EVICT``: ordinary cache content: store on demand, evict under
  pressure (the cache policy decides).
* ``MUST_NOT_STORE``: do not write it to disk (delete it if held).

Rules, first match wins (docs/content/policies.md has the table):

1. expired (``expires <= now``) -> MUST_NOT_STORE;
2. ``no-store`` -> MUST_NOT_STORE (relays may pass it on from memory only);
3. ``local-only`` -> KEEP on the publishing node (``origin``), MUST_NOT_STORE elsewhere;
4. retention pin in force and the item fully held -> KEEP until the pin ends
   (``pin-until-expiry``: until ``expires``, forever without one;
   ``ttl:<s>``: until ``stored_at + s``);
5. (a lapsed ``ttl`` pin protects nothing more: the policy below decides;)
6. ``push-all`` (every node), ``push-tier`` (nodes whose locality tier
   relative to the publisher is within ``push_tier_scope``), ``replicate:k``
   (the ``k`` nodes ranked highest by rendezvous hashing among the known
   nodes and this one): designated nodes KEEP when complete, FETCH_NOW when the
   missing bytes fit in ``free_bytes``, else MAY_EVICT (reason says the budget
   is short); other nodes MAY_EVICT;
7. ``on-demand`` -> MAY_EVICT.

Rendezvous (highest-random-weight) hashing: node ``n`` scores
``xxh3_64(content_id || utf8(n))`` (seed 0, as an unsigned integer); nodes
are ranked by descending score, ties by node id; this node is designated when
its rank is below ``k``. Every node that knows the same node set reaches the
same answer with no coordination, and a node joining or leaving moves only
the items it gains or loses (Thaler and Ravishankar, "Using name-based
mappings to increase hit rates", IEEE/ACM ToN 6(1), 1998).

Locality tiers are :class:`meshcore.tiers.Tier` (the one vocabulary shared
with routing and analytics); their labels (``"one-hop"``) and names
(``"ONE_HOP"``) are accepted too, and tiers compare nearest first.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from enum import Enum

import xxhash

from ..tiers import Tier
from ._policy_names import parse_distribution, parse_retention

__all__ = [
    "Action",
    "DistributionContext",
    "Placement",
    "evaluate",
    "normalize_tier",
    "rendezvous_rank",
]

class Action(Enum):
    """What a node should do with an item (see the module docstring)."""

    FETCH_NOW = "fetch-now"
    KEEP = "keep"
    MAY_EVICT = "may-evict"
    MUST_NOT_STORE = "must-not-store"


def normalize_tier(tier: object) -> Tier:
    """The :class:`~meshcore.tiers.Tier` for ``tier`` (a Tier, label or name).

    Raises TypeError for another type, ValueError for an unknown name.
    """
    return Tier.parse(tier)


@dataclass(frozen=True, slots=True)
class DistributionContext:
    """What a node knows about itself when it evaluates an item.

    * ``node_id``: this node's id; ``known_nodes``: the other nodes it knows
      (for ``replicate:k``; this node is added if missing);
    * ``tier``: this node's locality tier relative to the publisher;
      ``origin``: this node is the one the item was published on;
    * ``free_bytes``: bytes the store can still take (budget minus used);
    * ``held``: digests of chunks present here (any container: set, store);
    * ``stored_at``: unix seconds the item was stored here (``None``: not held),
      the start of a ``ttl`` retention;
    * ``push_tier_scope``: the widest tier ``push-tier`` reaches (default ``one-hop``).
    """

    node_id: str
    tier: Tier | str = Tier.UNREACHABLE
    origin: bool = False
    free_bytes: int = 0
    held: Container[bytes] = field(default_factory=frozenset)
    known_nodes: Iterable[str] = ()
    stored_at: float | None = None
    push_tier_scope: Tier | str = Tier.ONE_HOP


@dataclass(frozen=True, slots=True)
class Placement:
    """The decision: ``action``, a human ``reason``, and ``pinned_until`` (unix s) for KEEP.

    ``missing_bytes`` is how many bytes of the item this node lacks.
    """

    action: Action
    reason: str
    pinned_until: float | None = None
    missing_bytes: int = 0


def rendezvous_rank(content_id: bytes, node_id: str, nodes: Iterable[str]) -> int:
    """0-based rank of ``node_id`` among ``nodes`` (plus itself) by rendezvous score."""
    everyone = set(nodes)
    everyone.add(node_id)

    def score(n: str) -> tuple[int, str]:
        return -xxhash.xxh3_64_intdigest(bytes(content_id) + n.encode("utf-8")), n

    mine = score(node_id)
    return sum(1 for n in everyone if score(n) < mine)


def _missing(manifest, held: Container[bytes]) -> int:
    seen: set[bytes] = set()
    missing = 0
    for ref in manifest.chunks:
        if ref.digest not in seen and ref.digest not in held:
            missing += ref.size
        seen.add(ref.digest)
    return missing


def evaluate(manifest, context: DistributionContext, *, now: float) -> Placement:
    """Decide what this node does with the item ``manifest`` describes (rules in module doc).

    ``manifest`` is a :class:`~meshcore.content.manifest.Manifest` (or any
    object with ``content_id``, ``chunks``, ``distribution``, ``retention``,
    ``expires``); ``now`` is unix seconds. Raises ValueError for an unknown
    tier or policy string.
    """
    policy = parse_distribution(manifest.distribution)
    retention = parse_retention(manifest.retention)
    tier = normalize_tier(context.tier)
    scope = normalize_tier(context.push_tier_scope)
    missing = _missing(manifest, context.held)
    complete = missing == 0
    expires = manifest.expires
    if expires is not None and expires <= now:
        return Placement(Action.MUST_NOT_STORE, f"expired at {expires}", None, missing)
    if policy.kind == "no-store":
        return Placement(Action.MUST_NOT_STORE, "policy no-store: relay only", None, missing)
    if policy.kind == "local-only":
        if context.origin:
            return Placement(Action.KEEP, "policy local-only: this is the publishing node",
                             expires, missing)
        return Placement(Action.MUST_NOT_STORE, "policy local-only: not the publishing node",
                         None, missing)
    if retention is not None and complete:
        if retention.kind == "pin-until-expiry":
            return Placement(Action.KEEP, "retention pin-until-expiry", expires, 0)
        start = now if context.stored_at is None else context.stored_at
        until = start + (retention.ttl or 0)
        if now < until:
            return Placement(Action.KEEP, f"retention ttl:{retention.ttl}s until {until:g}",
                             until, 0)
        lapsed = f"retention ttl:{retention.ttl}s lapsed at {until:g}; "
    else:
        lapsed = ""
    designated, why = _designated(policy, manifest, context, tier, scope)
    why = lapsed + why
    if not designated:
        return Placement(Action.MAY_EVICT, why, None, missing)
    if complete:
        return Placement(Action.KEEP, why, expires, 0)
    if missing <= context.free_bytes:
        return Placement(Action.FETCH_NOW, f"{why}; {missing} bytes missing", None, missing)
    return Placement(
        Action.MAY_EVICT,
        f"{why}, but {missing} bytes missing and only {context.free_bytes} free",
        None,
        missing,
    )


def _designated(policy, manifest, context: DistributionContext, tier: Tier, scope: Tier):
    kind = policy.kind
    if kind == "push-all":
        return True, "policy push-all: every node holds it"
    if kind == "push-tier":
        if context.origin or tier <= scope:
            return True, f"policy push-tier: this node is {tier.label}, within {scope.label}"
        return False, f"policy push-tier: this node is {tier.label}, beyond {scope.label}"
    if kind == "replicate":
        k = policy.replicas or 0
        rank = rendezvous_rank(manifest.content_id, context.node_id, context.known_nodes)
        if rank < k:
            return True, f"policy replicate:{k}: rendezvous rank {rank} < {k}"
        return False, f"policy replicate:{k}: rendezvous rank {rank} >= {k}"
    return False, "policy on-demand: cache on request"
