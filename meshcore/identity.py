"""Who is asking and who is charged: the one :class:`Principal` and its :class:`Account` s.

A :class:`Principal` is whoever asks a node for something: a phone on a
router's Wi-Fi, a member's laptop, a curator's publishing script, or another
router. What the router knows about it comes from its config (a named
principal with a role and groups, ``[content.principals.<name>]``), the captive
portal (openNDS: the device MAC, the logged-in user, the portal state), the
neighbour table (IP → MAC), the fairness rules (device → household) and, for
node-to-node requests, the authenticated peer node. The same object decides
**access** (``role``, ``groups``, ``key``: :mod:`meshcore.content.access`) and
the **fair share** (``device``, ``user``, ``household``, ``portal_state``,
``node``: :mod:`meshcore.fairness`), so a request never carries two
identities that could disagree.

An :class:`Account` is one thing bytes are charged to (``device:<mac>``,
``user:<login>``, ``household:<name>``, ``node:<id>``): a request charges every
account its principal names (:meth:`Principal.accounts`), and the fair
scheduler shares the link between *hosts* (:meth:`Principal.host`, the most
inclusive account: household, else user, else device, else node; CAKE's
per-host isolation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ACCOUNT_KINDS",
    "GUEST",
    "ROLES",
    "Account",
    "Principal",
    "normalize_mac",
]

#: Roles, least to most trusted.
ROLES = ("guest", "member", "curator", "admin")

#: Kinds of account, most specific first (the fairness policy's precedence order).
ACCOUNT_KINDS = ("device", "user", "household", "node")

_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


def normalize_mac(mac: str) -> str:
    """``"AA-BB-CC-DD-EE-FF"`` -> ``"aa:bb:cc:dd:ee:ff"``; ValueError if not a MAC."""
    text = mac.strip().lower() if isinstance(mac, str) else ""
    if not _MAC.match(text):
        raise ValueError(f"mac: expected a MAC address such as 'aa:bb:cc:dd:ee:ff', got {mac!r}")
    digits = text.replace(":", "").replace("-", "")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True, slots=True)
class Account:
    """What bytes are charged to: ``kind`` is one of :data:`ACCOUNT_KINDS`, ``name`` its id.

    Raises ValueError for an unknown kind or an empty name.
    """

    kind: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in ACCOUNT_KINDS:
            raise ValueError(
                f"kind: expected one of {', '.join(ACCOUNT_KINDS)}, got {self.kind!r}"
            )
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Someone asking the node for something (see the module docstring).

    ``name`` is the config name (``"guest"`` for the anonymous principal),
    ``role`` one of :data:`ROLES`, ``groups`` the named groups it belongs to,
    ``key`` its 32-byte Ed25519 public key when the config gives one.
    ``device`` (a MAC, normalised to ``aa:bb:...``), ``user`` (a portal login),
    ``household``, ``portal_state`` and ``node`` (a peer router's id) say who
    is charged and how the link is shared; any of them may be None.
    Raises ValueError for an unknown role or a malformed MAC.
    """

    name: str = "guest"
    role: str = "guest"
    groups: frozenset[str] = field(default_factory=frozenset)
    key: bytes | None = None
    device: str | None = None
    user: str | None = None
    household: str | None = None
    portal_state: str | None = None
    node: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {self.role!r}")
        if self.device is not None:
            object.__setattr__(self, "device", normalize_mac(self.device))

    def host(self) -> Account:
        """The scheduler's host: household, else user, else device, else node.

        ValueError when nothing names an account (nobody to charge).
        """
        if self.household:
            return Account("household", self.household)
        if self.user:
            return Account("user", self.user)
        if self.device:
            return Account("device", self.device)
        if self.node:
            return Account("node", self.node)
        raise ValueError("identity: expected at least one of household, user, device, node")

    def accounts(self) -> tuple[Account, ...]:
        """Every account this principal names (each is charged for its traffic)."""
        out = []
        if self.device:
            out.append(Account("device", self.device))
        if self.user:
            out.append(Account("user", self.user))
        if self.household:
            out.append(Account("household", self.household))
        if self.node:
            out.append(Account("node", self.node))
        return tuple(out)


#: The anonymous principal: reads public items only, never publishes.
GUEST = Principal("guest", "guest")
