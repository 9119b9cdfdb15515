"""Policy resolution: which class a client is in, and whether a transfer may start.

Theory of operation
-------------------
A client is described by a :class:`Principal`: its device MAC, the user
logged in on the captive portal, its household, its portal state, or, for
node-to-node traffic, the peer node. :meth:`Policy.resolve` picks the class
from the configured rules (settings.py) by **most specific principal wins**:

1. a rule on the device MAC,
2. else a rule on the user,
3. else a rule on the household,
4. else a rule on the captive-portal state (e.g. ``"Preauthenticated"``),
5. else the ``default_class``.

Two rules at the same specificity that match the same value with different
classes are refused at load time (settings.py), so resolution never has to
break a tie.

:meth:`Policy.admit` then checks the class's volume quotas against the usage of
the *charged principal*: the principal the winning rule named (a household
rule charges the household, so the household's members share its quota), or
for the default class the host principal (household, else user, else device,
else node). For each period (UTC day, UTC month):

* usage >= hard quota -> ``REFUSE``, with the reason and the reset time (the
  end of the period, :func:`accounting.period_bounds`);
* usage >= soft quota -> ``DEMOTE``: the transfer is served in the
  background class;
* otherwise ``ALLOW``.

A refusal in any period wins over a demotion in another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..identity import Account, Principal
from .accounting import period_bounds
from .settings import ClassSpec, FairnessSettings, Rule

__all__ = ["ALLOW", "DEMOTE", "REFUSE", "Admission", "Policy", "Principal", "Resolution"]

ALLOW = "allow"
DEMOTE = "demote"
REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Resolution:
    """The class of an identity, the rule that chose it and the principal its quota charges."""

    spec: ClassSpec
    rule: str
    charged: Account


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a transfer may start: ``action`` ALLOW / DEMOTE / REFUSE.

    ``reason`` is human-readable ("daily quota 2000000000 bytes used up by
    device:aa:..."), ``reset_at`` the epoch second the limit resets (None
    unless DEMOTE/REFUSE).
    """

    action: str
    class_name: str
    reason: str = ""
    reset_at: float | None = None


class Policy:
    """Resolves identities to classes and admits transfers against quotas (sans-I/O)."""

    #: Resolutions memoised at most (cleared when full: bounded memory under churn).
    cache_limit = 65536

    def __init__(self, settings: FairnessSettings) -> None:
        self.settings = settings
        self._by_key: dict[str, dict[str, Rule]] = {
            "device": {},
            "user": {},
            "household": {},
            "portal_state": {},
        }
        for rule in settings.rules:
            self._by_key[rule.key].setdefault(rule.value, rule)
        self._cache: dict[Principal, Resolution] = {}

    def resolve(self, identity: Principal) -> Resolution:
        """The class for ``identity`` by the precedence device > user > household >
        portal state > default (memoised per identity)."""
        cached = self._cache.get(identity)
        if cached is not None:
            return cached
        classes = self.settings.classes
        result = None
        for key, kind in (
            ("device", "device"),
            ("user", "user"),
            ("household", "household"),
            ("portal_state", None),
        ):
            value = getattr(identity, key)
            rule = self._by_key[key].get(value) if value else None
            if rule is not None:
                charged = Account(kind, value) if kind else identity.host()
                result = Resolution(classes[rule.class_name], rule.where, charged)
                break
        if result is None:
            default = self.settings.default_class
            result = Resolution(classes[default], "fairness.default_class", identity.host())
        if len(self._cache) >= self.cache_limit:
            self._cache.clear()
        self._cache[identity] = result
        return result

    def admit(
        self,
        identity: Principal,
        *,
        usage: Callable[[Account, str], int],
        wall: float,
    ) -> Admission:
        """ALLOW, DEMOTE (soft quota reached) or REFUSE (hard quota reached) a new transfer.

        ``usage(principal, period)`` returns bytes used in the current UTC
        ``period`` ("day" or "month"), e.g. ``UsageLedger.period_usage`` or the
        mesh-wide ``MeshUsage.usage``. ``wall`` is calendar (Unix) seconds
        (:mod:`meshcore.clock`): a quota resets at a calendar instant.
        """
        res = self.resolve(identity)
        spec = res.spec
        demote: Admission | None = None
        for period, label in (("day", "daily"), ("month", "monthly")):
            hard = spec.daily_quota if period == "day" else spec.monthly_quota
            soft = spec.daily_soft_quota if period == "day" else spec.monthly_soft_quota
            if hard is None and soft is None:
                continue
            used = usage(res.charged, period)
            reset = period_bounds(period, wall)[1]
            if hard is not None and used >= hard:
                return Admission(
                    REFUSE,
                    spec.name,
                    f"{label} quota of {hard} bytes used up by {res.charged} "
                    f"({used} bytes; class {spec.name!r} from {res.rule})",
                    reset,
                )
            if demote is None and soft is not None and used >= soft:
                demote = Admission(
                    DEMOTE,
                    spec.name,
                    f"{label} soft quota of {soft} bytes exceeded by {res.charged} "
                    f"({used} bytes): served as background",
                    reset,
                )
        return demote if demote is not None else Admission(ALLOW, spec.name)
