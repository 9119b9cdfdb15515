"""Access control: who may read, publish and designate content (sans-I/O).

Theory of operation
-------------------
A *principal* is whoever asks: a named account from the node's config
(``[content.principals.<name>]``) with one role, or the anonymous
:data:`GUEST`. Roles are ordered ``guest < member < curator < admin``; named
groups (``[content.groups]``) list principals. Every item carries one access
level: ``public``, ``community``, ``group:<name>`` or ``private``.

Three decisions are made, always by the node that serves (DESIGN "Trust"):

* ``read`` an item (target: its access level; the item's publisher key is
  passed so that a publisher can read its own private items);
* ``publish`` an item at a level (target: the access level asked for);
* ``designate`` a distribution policy (target: the policy, e.g. ``push-all``).

Order of evaluation for one request (documented in docs/content/policies.md):

1. **Invariants**, which no rule can change: a guest reads only ``public``
   items; a ``private`` item is read only by its publisher and by admins;
   ``push-all`` is designated only with a signing key listed in
   ``[content] curators`` (:meth:`AccessPolicy.check_signer`, checked at
   publish and again when a manifest is received).
2. **Config rules** (``[[content.access_rules]]``), most specific first:
   ``principal:<n>`` beats ``group:<g>`` beats ``role:<r>`` beats ``*``; for the
   same subject, an exact target beats ``*``. Two rules of equal specificity
   that can match the same request with opposite effects are refused at load
   (:class:`~meshcore.errors.ConfigError` naming both).
3. **Built-in defaults** (the access matrix below), when no rule matches.

================  ==========  ==========  ==========  ==========
read              guest       member      curator     admin
================  ==========  ==========  ==========  ==========
public            yes         yes         yes         yes
community         no          yes         yes         yes
group:<g>         no          if in g     if in g     yes
private           no          publisher   publisher   yes
================  ==========  ==========  ==========  ==========

Publish: guests never; members and curators at ``public``, ``community``,
``private`` and the groups they belong to; admins anywhere. Designate:
``push-all`` and ``push-tier`` by curators and admins; every other policy by
whoever may publish.

The model is the classic role-based one (Sandhu et al., "Role-Based Access
Control Models", IEEE Computer 29(2), 1996) with deny-overrides replaced by
most-specific-wins, as in sudoers and most firewall rule sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import AccessDeniedError, ConfigError
from ..identity import GUEST, ROLES, Principal

__all__ = [
    "ACTIONS",
    "GUEST",
    "ROLES",
    "AccessDecision",
    "AccessPolicy",
    "AccessRule",
    "Principal",
]

ACTIONS = ("read", "publish", "designate")
_PUSH_POLICIES = ("push-all", "push-tier")
_WHO_RANK = {"*": 0, "role": 1, "group": 2, "principal": 3}


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One ``[[content.access_rules]]`` entry.

    ``who`` is ``"*"``, ``"role:<r>"``, ``"group:<g>"`` or ``"principal:<n>"``;
    ``action`` one of :data:`ACTIONS`; ``target`` ``"*"`` or an access level
    (read, publish) or a distribution policy name (designate); ``allow`` the
    effect. ``where`` is the config key (``content.access_rules[2]``) and
    ``name`` the rule's name, both used in error messages.
    """

    name: str
    who: str
    action: str
    target: str
    allow: bool
    where: str = ""

    @property
    def specificity(self) -> tuple[int, int]:
        """``(subject rank, target rank)``: compared lexicographically, larger wins."""
        kind = self.who.split(":", 1)[0]
        return _WHO_RANK[kind], 0 if self.target == "*" else 1

    def label(self) -> str:
        """``'name' (content.access_rules[2])`` for messages."""
        return f"{self.name!r} ({self.where})" if self.where else repr(self.name)


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """The outcome of one request: ``allowed``, a human ``reason``, and the rule that decided."""

    allowed: bool
    reason: str
    rule: str | None = None


def _target_matches(pattern: str, target: str) -> bool:
    return pattern in ("*", target)


class AccessPolicy:
    """Decides read/publish/designate for principals (sans-I/O, immutable after init).

    ``rules`` are config rules; ``groups`` maps a group name to its member
    principal names; ``curator_keys`` are the public keys allowed to sign
    ``push-all`` manifests; ``path`` is the config file named in errors.
    Raises :class:`ConfigError` for an ill-formed rule, a rule that would break
    an invariant, or two rules of equal specificity that conflict.
    """

    def __init__(
        self,
        rules: Iterable[AccessRule] = (),
        *,
        groups: Mapping[str, Iterable[str]] | None = None,
        curator_keys: Iterable[bytes] = (),
        path: str = "<config>",
    ) -> None:
        self.path = path
        self.groups = {g: frozenset(m) for g, m in (groups or {}).items()}
        self.curator_keys = frozenset(bytes(k) for k in curator_keys)
        self.rules = tuple(rules)
        for rule in self.rules:
            self._validate(rule)
        self._check_conflicts()

    # -- configuration checks -------------------------------------------------

    def _error(self, rule: AccessRule, problem: str) -> ConfigError:
        return ConfigError(self.path, rule.where or "content.access_rules", problem)

    def _validate(self, rule: AccessRule) -> None:
        if rule.action not in ACTIONS:
            raise self._error(rule, f"action: expected one of {', '.join(ACTIONS)}, got "
                                    f"{rule.action!r}")
        kind, _, value = rule.who.partition(":")
        if rule.who != "*" and (kind not in _WHO_RANK or not value):
            raise self._error(rule, "who: expected '*', 'role:<role>', 'group:<name>' or "
                                    f"'principal:<name>', got {rule.who!r}")
        if kind == "role" and value not in ROLES:
            raise self._error(rule, f"who: unknown role {value!r} (roles: {', '.join(ROLES)})")
        if kind == "group" and value not in self.groups:
            raise self._error(rule, f"who: unknown group {value!r}")
        if not rule.allow:
            return
        # Invariants are floors: refuse a rule that pretends to lift one, so the
        # operator learns at load time instead of wondering why it has no effect.
        guest_matched = rule.who in ("*", "role:guest", "principal:guest")
        if rule.action == "read" and rule.target != "public" and guest_matched:
            raise self._error(rule, f"rule {rule.name!r} would let guests read "
                                    f"{rule.target!r} content; guests read only public items")
        if rule.action == "read" and rule.target == "private":
            raise self._error(rule, f"rule {rule.name!r}: private items are read only by their "
                                    "publisher and admins; no rule can widen that")
        if rule.action == "publish" and guest_matched:
            raise self._error(rule, f"rule {rule.name!r} would let guests publish")

    def _who_overlap(self, a: str, b: str) -> bool:
        if a == b:
            return True
        ka, _, va = a.partition(":")
        kb, _, vb = b.partition(":")
        if ka == kb == "group":
            return bool(self.groups[va] & self.groups[vb])
        return False

    def _check_conflicts(self) -> None:
        rules = self.rules
        for i, a in enumerate(rules):
            for b in rules[i + 1 :]:
                if (
                    a.action == b.action
                    and a.allow != b.allow
                    and a.specificity == b.specificity
                    and a.target == b.target
                    and self._who_overlap(a.who, b.who)
                ):
                    raise ConfigError(
                        self.path,
                        b.where or "content.access_rules",
                        f"rules {a.label()} and {b.label()} conflict: same specificity, "
                        f"{a.who!r} vs {b.who!r} {a.action} {a.target!r}, one allows and one "
                        "denies; make one more specific or remove one",
                    )

    # -- decisions -----------------------------------------------------------------

    def _who_matches(self, who: str, principal: Principal) -> bool:
        if who == "*":
            return True
        kind, _, value = who.partition(":")
        if kind == "role":
            return principal.role == value
        if kind == "group":
            return principal.name in self.groups.get(value, ()) or value in principal.groups
        return principal.name == value

    def _in_group(self, principal: Principal, group: str) -> bool:
        return group in principal.groups or principal.name in self.groups.get(group, ())

    def decide(
        self,
        principal: Principal,
        action: str,
        target: str,
        *,
        publisher: bytes | None = None,
    ) -> AccessDecision:
        """Whether ``principal`` may do ``action`` on ``target``.

        ``target`` is an access level for ``read``/``publish`` and a
        distribution policy for ``designate``; ``publisher`` is the item's
        publisher key (read only). Raises ValueError for an unknown action.
        """
        if action not in ACTIONS:
            raise ValueError(f"action: expected one of {', '.join(ACTIONS)}, got {action!r}")
        own = publisher is not None and principal.key is not None and principal.key == publisher
        if action == "read":
            if principal.role == "guest" and target != "public":
                return AccessDecision(False, "guests read only public items", "invariant")
            if target == "private":
                if own or principal.role == "admin":
                    return AccessDecision(True, "publisher or admin reads private items",
                                          "invariant")
                return AccessDecision(False, "private items are read only by their publisher",
                                      "invariant")
        best: AccessRule | None = None
        for rule in self.rules:
            if (
                rule.action == action
                and _target_matches(rule.target, target)
                and self._who_matches(rule.who, principal)
                and (best is None or rule.specificity > best.specificity)
            ):
                best = rule
        if best is not None:
            verb = "allows" if best.allow else "denies"
            return AccessDecision(best.allow, f"rule {best.label()} {verb} it", best.name)
        return self._default(principal, action, target, own)

    def _default(self, p: Principal, action: str, target: str, own: bool) -> AccessDecision:
        role = p.role
        if role == "admin":
            return AccessDecision(True, "admins may do anything", "default")
        if action == "read":
            if own:
                return AccessDecision(True, "publishers read their own items", "default")
            if target == "public":
                return AccessDecision(True, "public items are open to all", "default")
            if target == "community":
                return AccessDecision(True, f"{role}s read community items", "default")
            group = target.partition(":")[2]
            if target.startswith("group:") and self._in_group(p, group):
                return AccessDecision(True, f"member of group {group!r}", "default")
            return AccessDecision(False, f"not a member of group {group!r}", "default")
        if role == "guest":
            return AccessDecision(False, f"guests may not {action}", "default")
        if action == "publish":
            if target.startswith("group:"):
                group = target.partition(":")[2]
                if self._in_group(p, group):
                    return AccessDecision(True, f"member of group {group!r}", "default")
                return AccessDecision(False, f"not a member of group {group!r}", "default")
            return AccessDecision(True, f"{role}s may publish {target} items", "default")
        if target in _PUSH_POLICIES and role != "curator":
            return AccessDecision(False, f"only curators and admins designate {target}",
                                  "default")
        return AccessDecision(True, f"{role}s may designate {target}", "default")

    def check(
        self,
        principal: Principal,
        action: str,
        target: str,
        *,
        publisher: bytes | None = None,
    ) -> None:
        """:meth:`decide`, raising :class:`AccessDeniedError` when denied."""
        decision = self.decide(principal, action, target, publisher=publisher)
        if not decision.allowed:
            raise AccessDeniedError(principal.name, f"{action} {target}", decision.reason)

    def may_read(self, principal: Principal, access: str, publisher: bytes | None) -> bool:
        """Shortcut for the serve path: may ``principal`` read an item at ``access``?"""
        return self.decide(principal, "read", access, publisher=publisher).allowed

    def is_curator_key(self, key: bytes) -> bool:
        """Whether ``key`` is listed in ``[content] curators``."""
        return bytes(key) in self.curator_keys

    def check_signer(self, distribution: str, signer: bytes, *, who: str = "publisher") -> None:
        """Refuse a ``push-all`` manifest unless its signing key is a curator key.

        Applied at publish and again when a manifest arrives from a peer, so a
        member key cannot make every node store its content. Raises
        :class:`AccessDeniedError` naming ``who`` (the principal or the key).
        """
        if distribution == "push-all" and not self.is_curator_key(signer):
            raise AccessDeniedError(
                who, "designate push-all",
                f"signing key {bytes(signer).hex()[:16]}... is not a curator key "
                "([content] curators)",
            )
