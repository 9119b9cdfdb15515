"""The ``[content]`` section of the node config: storage, principals, groups, rules.

Every key is validated at load with :class:`meshcore.config.Section` getters,
so a typo or a bad value is a :class:`~meshcore.errors.ConfigError` naming the
file, the dotted key and the problem; unknown keys are refused (a misspelt
``curators`` must not silently leave push-all open to nobody, or to everybody).

Example (every key; docs/content/policies.md explains each)::

    [content]
    state_dir = "/var/lib/meshcore"      # keys/, content/store, content/catalog.sqlite
    budget = "2 GiB"                     # chunk store byte budget (on-disk bytes)
    compress = true                      # lz4 per chunk where it saves space
    fsync = true                         # durable writes (tests may turn it off)
    chunk_min = "64 KiB"                 # content-defined chunking parameters
    chunk_avg = "256 KiB"
    chunk_max = "1 MiB"
    default_access = "community"
    default_distribution = "on-demand"
    default_retention = "ttl:30d"        # optional
    push_tier_scope = "one-hop"          # widest locality tier push-tier reaches
    curators = ["ed25519:3b6a27bc..."]   # keys allowed to sign push-all manifests

    [content.principals.alice]
    role = "member"                      # guest | member | curator | admin
    key = "ed25519:..."                  # optional: her publisher key

    [content.groups]
    teachers = ["alice", "bob"]

    [[content.rules]]                    # classification (meshcore.content.classify)
    name = "videos"
    match = { media_type = "video/*", min_size = "10 MiB" }
    tags = ["video"]
    distribution = "on-demand"

    [[content.access_rules]]             # access (meshcore.content.access)
    name = "teachers-designate"
    who = "group:teachers"
    action = "designate"
    target = "push-tier"
    effect = "allow"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, Section, load_config, state_dir
from ..errors import ConfigError
from ..tiers import Tier
from ._policy_names import check_access, check_distribution, normalize_retention, normalize_tags
from .access import ACTIONS, GUEST, ROLES, AccessPolicy, AccessRule, Principal
from .classify import ClassificationRule, Classifier
from .keys import load_public_key
from .publish import DEFAULT_CHUNK_SIZES

__all__ = ["LOCAL_ADMIN", "ContentSettings", "load_content_settings"]

#: The operator at the node's own console (the CLI's default principal).
LOCAL_ADMIN = Principal("local", "admin")

_KNOWN = (
    "state_dir", "budget", "compress", "fsync", "chunk_min", "chunk_avg", "chunk_max",
    "default_access", "default_distribution", "default_retention", "push_tier_scope",
    "curators", "principals", "groups", "rules", "access_rules",
)
_RULE_KEYS = ("name", "match", "tags", "access", "distribution", "retention")
_MATCH_KEYS = ("name", "media_type", "min_size", "max_size", "publisher")
_ACCESS_RULE_KEYS = ("name", "who", "action", "target", "effect")


@dataclass(frozen=True, slots=True)
class ContentSettings:
    """The validated ``[content]`` section (see the module docstring for the keys).

    Sizes are bytes. ``principals`` maps a name to its :class:`Principal`;
    ``access`` and ``classifier`` are ready-made policy objects.
    """

    state_dir: Path
    budget_bytes: int = 1 << 30
    compress: bool = True
    fsync: bool = True
    chunk_min: int = DEFAULT_CHUNK_SIZES[0]
    chunk_avg: int = DEFAULT_CHUNK_SIZES[1]
    chunk_max: int = DEFAULT_CHUNK_SIZES[2]
    push_tier_scope: str = "one-hop"
    principals: dict[str, Principal] = field(default_factory=dict)
    access: AccessPolicy = field(default_factory=AccessPolicy)
    classifier: Classifier = field(default_factory=Classifier)
    path: str = "<config>"

    @property
    def store_dir(self) -> Path:
        """``<state_dir>/content/store``: chunks, manifests, quarantine."""
        return self.state_dir / "content" / "store"

    @property
    def catalog_path(self) -> Path:
        """``<state_dir>/content/catalog.sqlite``."""
        return self.state_dir / "content" / "catalog.sqlite"

    def principal(self, name: str | None) -> Principal:
        """The principal called ``name`` (``"guest"``/None: :data:`GUEST`, ``"local"``: the
        console admin); :class:`ConfigError` for a name the config does not define."""
        if name is None or name == "guest":
            return GUEST
        if name in self.principals:
            return self.principals[name]
        if name == LOCAL_ADMIN.name:
            return LOCAL_ADMIN
        raise ConfigError(self.path, f"content.principals.{name}", "no such principal")

    def principal_for_key(self, key: bytes) -> Principal:
        """The configured principal whose key is ``key``; :data:`GUEST` when none is."""
        for p in self.principals.values():
            if p.key == key:
                return p
        return GUEST

    @classmethod
    def from_config(cls, config: Config, *, base_dir: Path | None = None) -> ContentSettings:
        """Validate ``config``'s ``[content]`` table; ConfigError names any bad key.

        The store lives in the node's state folder
        (:func:`meshcore.config.state_dir`: ``[content] state_dir``, else
        ``[node] state_dir``, else ``/var/lib/meshcore``); the two keys naming
        different folders is an error, since the daemon's lock and status file
        would then sit apart from the store the content commands use. A
        relative ``state_dir`` is resolved against ``base_dir`` (default: the
        config file's folder).
        """
        sec = config.section("content", required=True)
        sec.check_known(_KNOWN)
        path = config.path
        base = base_dir if base_dir is not None else Path(path).resolve().parent
        state = state_dir(config, base=base)
        chunk_min = sec.get_bytes("chunk_min", DEFAULT_CHUNK_SIZES[0], min=64)
        chunk_avg = sec.get_bytes("chunk_avg", DEFAULT_CHUNK_SIZES[1], min=64)
        chunk_max = sec.get_bytes("chunk_max", DEFAULT_CHUNK_SIZES[2], min=64)
        if not chunk_min <= chunk_avg <= chunk_max <= 1 << 24:
            raise sec.error("chunk_max", "expected chunk_min <= chunk_avg <= chunk_max <= 16 MiB")
        scope = sec.get_str("push_tier_scope", "one-hop",
                            choices=[t.label for t in Tier if Tier.LOCAL < t < Tier.EXTERNAL])
        default_access = _access(sec, "default_access", sec.get_str("default_access", "community"))
        default_dist = _distribution(
            sec, "default_distribution", sec.get_str("default_distribution", "on-demand")
        )
        default_ret = _retention(sec, "default_retention", sec.get("default_retention", None))
        curators = [_key(sec, "curators", v) for v in sec.get_str_list("curators", [])]
        groups_sec = sec.section("groups")
        groups = {g: tuple(groups_sec.get_str_list(g)) for g in groups_sec.data}
        principals = _principals(sec, groups)
        for g, members in groups.items():
            for m in members:
                if m not in principals:
                    raise groups_sec.error(g, f"member {m!r} is not in [content.principals]")
        access_rules = [_access_rule(r) for r in sec.section_list("access_rules")]
        rules = [_rule(r) for r in sec.section_list("rules")]
        _check_group_levels(sec, groups, default_access, rules, access_rules)
        access = AccessPolicy(access_rules, groups=groups, curator_keys=curators, path=path)
        classifier = Classifier(
            rules,
            default_access=default_access,
            default_distribution=default_dist,
            default_retention=default_ret,
            path=path,
        )
        return cls(
            state_dir=state,
            budget_bytes=sec.get_bytes("budget", 1 << 30),
            compress=sec.get_bool("compress", True),
            fsync=sec.get_bool("fsync", True),
            chunk_min=chunk_min,
            chunk_avg=chunk_avg,
            chunk_max=chunk_max,
            push_tier_scope=scope,
            principals=principals,
            access=access,
            classifier=classifier,
            path=path,
        )


def _check_group_levels(sec: Section, groups: dict[str, tuple[str, ...]], default_access: str,
                        rules: list[ClassificationRule], access_rules: list[AccessRule]) -> None:
    """Refuse ``group:<name>`` access levels naming a group [content.groups] lacks.

    Such an item could be read by nobody but its publisher and the admins,
    which is never what the operator meant.
    """
    def check(where: Section, key: str, level: str | None) -> None:
        if level and level.startswith("group:") and level[6:] not in groups:
            known = ", ".join(sorted(groups)) or "none"
            raise where.error(key, f"unknown group {level[6:]!r} (groups in [content.groups]: "
                                   f"{known})")

    check(sec, "default_access", default_access)
    for r in rules:
        check(Section(sec.path, r.where, {}), "access", r.access)
    for a in access_rules:
        if a.action != "designate":
            check(Section(sec.path, a.where, {}), "target", a.target)


def load_content_settings(path: str | Path) -> ContentSettings:
    """Load a node config file and validate its ``[content]`` section."""
    return ContentSettings.from_config(load_config(path))


def _access(sec: Section, key: str, value: str) -> str:
    try:
        return check_access(value)
    except ValueError as exc:
        raise sec.error(key, str(exc)) from None


def _distribution(sec: Section, key: str, value: str) -> str:
    try:
        return check_distribution(value)
    except ValueError as exc:
        raise sec.error(key, str(exc)) from None


def _retention(sec: Section, key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise sec.error(key, f"expected a string such as 'ttl:7d', got {value!r}")
    try:
        return normalize_retention(value)
    except ValueError as exc:
        raise sec.error(key, str(exc)) from None


def _key(sec: Section, key: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise sec.error(key, f"expected a public key string, got {value!r}")
    try:
        return load_public_key(value)
    except ValueError as exc:
        raise sec.error(key, str(exc)) from None


def _principals(sec: Section, groups: dict[str, tuple[str, ...]]) -> dict[str, Principal]:
    out: dict[str, Principal] = {}
    keys_seen: dict[bytes, str] = {}
    for name, p in sec.section("principals").sections():
        p.check_known(("role", "key"))
        if name in ("guest", LOCAL_ADMIN.name):
            raise sec.error(f"principals.{name}", f"{name!r} is a built-in principal name")
        role = p.get_str("role", choices=ROLES)
        key = _key(p, "key", p.get("key")) if "key" in p else None
        if key is not None:
            if key in keys_seen:
                raise p.error("key", f"the same key is given to principal {keys_seen[key]!r}")
            keys_seen[key] = name
        member_of = frozenset(g for g, members in groups.items() if name in members)
        out[name] = Principal(name, role, member_of, key)
    for name, value in sec.section("principals").data.items():
        if not isinstance(value, dict):
            raise sec.error(f"principals.{name}", f"expected a table, got {value!r}")
    return out


def _access_rule(r: Section) -> AccessRule:
    r.check_known(_ACCESS_RULE_KEYS)
    effect = r.get_str("effect", choices=("allow", "deny"))
    action = r.get_str("action", choices=ACTIONS)
    target = r.get_str("target", "*")
    if target != "*":
        if action == "designate":
            _distribution(r, "target", target)
        else:
            _access(r, "target", target)
    return AccessRule(
        name=r.get_str("name"),
        who=r.get_str("who"),
        action=action,
        target=target,
        allow=effect == "allow",
        where=r.prefix,
    )


def _rule(r: Section) -> ClassificationRule:
    r.check_known(_RULE_KEYS)
    m = r.section("match")
    m.check_known(_MATCH_KEYS)
    media = m.get_str("media_type", None) if "media_type" in m else None
    if media is not None and (media.count("/") != 1 or "*" in media.split("/")[0]):
        raise m.error("media_type", f"expected 'type/subtype' or 'type/*', got {media!r}")
    min_size = m.get_bytes("min_size") if "min_size" in m else None
    max_size = m.get_bytes("max_size") if "max_size" in m else None
    if min_size is not None and max_size is not None and min_size > max_size:
        raise m.error("max_size", f"expected max_size >= min_size ({min_size} bytes)")
    try:
        tags = normalize_tags(r.get_str_list("tags", []))
    except ValueError as exc:
        raise r.error("tags", str(exc)) from None
    return ClassificationRule(
        name=r.get_str("name"),
        name_glob=m.get_str("name") if "name" in m else None,
        media_type=media,
        min_size=min_size,
        max_size=max_size,
        publisher=_key(m, "publisher", m.get("publisher")) if "publisher" in m else None,
        tags=tags,
        access=_access(r, "access", r.get_str("access")) if "access" in r else None,
        distribution=(
            _distribution(r, "distribution", r.get_str("distribution"))
            if "distribution" in r else None
        ),
        retention=_retention(r, "retention", r.get("retention")) if "retention" in r else None,
        where=r.prefix,
    )
