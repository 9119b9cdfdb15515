"""The ``[fairness]`` section of the node's TOML config, validated into plain objects.

Every check names the file, the dotted key and the problem (``ConfigError``),
so an operator can fix the line: a negative rate, a quota without a unit, an
unknown class, an unknown key, a soft quota above its hard quota, or two rules
that claim the same principal for different classes at the same specificity
all refuse to load. The format and the precedence are documented in
docs/fairness.md; in short::

    [fairness]
    default_class = "member"       # class of principals no rule names
    quantum = "64 KiB"             # DRR quantum (bytes per weight-1 turn)
    chunk = "64 KiB"               # largest slice the scheduler hands out

    [fairness.classes.guest]
    weight = 1                     # share relative to other hosts
    rate_up = "1 Mbit/s"           # caps (absent or "0 bit/s" = none)
    rate_down = "4 Mbit/s"
    burst = "256 KiB"              # token-bucket depth for the caps
    daily_quota = "2 GB"           # hard: refused until the period resets
    daily_soft_quota = "1 GB"      # soft: demoted to the background class
    monthly_quota = "20 GB"
    monthly_soft_quota = "15 GB"

    [[fairness.rules]]
    device = "aa:bb:cc:dd:ee:ff"   # exactly one of device/user/household/portal_state
    class = "member"

Rule precedence: a rule on the **device** beats one on the **user**, which
beats one on the **household**, which beats one on the **captive-portal
state**; with no matching rule the ``default_class`` applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Config, Section
from ..errors import ConfigError
from ..identity import normalize_mac

__all__ = [
    "MATCH_KEYS",
    "ClassSpec",
    "FairnessSettings",
    "Rule",
    "normalize_mac",
    "parse_fairness",
]

#: Rule match keys, most specific first; the index gives the specificity
#: (higher wins): device 4, user 3, household 2, portal_state 1, default 0.
MATCH_KEYS = ("device", "user", "household", "portal_state")
SPECIFICITY = {"device": 4, "user": 3, "household": 2, "portal_state": 1}

_CLASS_KEYS = (
    "weight",
    "rate_up",
    "rate_down",
    "burst",
    "daily_quota",
    "daily_soft_quota",
    "monthly_quota",
    "monthly_soft_quota",
)
_TOP_KEYS = ("default_class", "quantum", "chunk", "classes", "rules", "congestion")

#: Default token-bucket depth when a class sets a rate but no burst.
DEFAULT_BURST = 256 * 1024


@dataclass(frozen=True, slots=True)
class ClassSpec:
    """One traffic class: weight, caps (bytes/s, None = none), quotas (bytes, None = none)."""

    name: str
    weight: float = 1.0
    rate_up: float | None = None
    rate_down: float | None = None
    burst: int = DEFAULT_BURST
    daily_quota: int | None = None
    daily_soft_quota: int | None = None
    monthly_quota: int | None = None
    monthly_soft_quota: int | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """``key = value`` maps to ``class_name``; ``where`` is its key (``fairness.rules[2]``)."""

    key: str
    value: str
    class_name: str
    where: str

    @property
    def specificity(self) -> int:
        """Precedence rank: device 4 > user 3 > household 2 > portal_state 1."""
        return SPECIFICITY[self.key]


@dataclass(frozen=True, slots=True)
class FairnessSettings:
    """The validated ``[fairness]`` section."""

    classes: dict[str, ClassSpec]
    default_class: str
    rules: tuple[Rule, ...] = ()
    quantum: int = 65536
    chunk: int = 65536
    path: str = "<config>"
    congestion: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config | Section) -> FairnessSettings:
        """Read ``[fairness]`` of a loaded config (or that table): :func:`parse_fairness`."""
        return parse_fairness(config)


_CONGESTION_KEYS = {
    # key: (kind, default) -- durations in seconds, rates as fractions
    "delay_target": "duration",
    "delay_interval": "duration",
    "rtt_target": "duration",
    "loss_threshold": "fraction",
    "decrease": "fraction",
    "increase": "rate",
    "min_rate": "rate",
    "recover_after": "duration",
}


def _optional_rate(sec: Section, key: str) -> float | None:
    if key not in sec:
        return None
    rate = sec.get_rate(key)
    return rate if rate > 0 else None


def _optional_bytes(sec: Section, key: str) -> int | None:
    if key not in sec:
        return None
    size = sec.get_bytes(key)
    return size if size > 0 else None


def _parse_class(name: str, sec: Section) -> ClassSpec:
    sec.check_known(_CLASS_KEYS)
    weight = sec.get_float("weight", 1.0)
    if not weight > 0:
        raise sec.error("weight", f"expected a number > 0, got {weight!r}")
    spec = ClassSpec(
        name=name,
        weight=weight,
        rate_up=_optional_rate(sec, "rate_up"),
        rate_down=_optional_rate(sec, "rate_down"),
        burst=sec.get_bytes("burst", DEFAULT_BURST),
        daily_quota=_optional_bytes(sec, "daily_quota"),
        daily_soft_quota=_optional_bytes(sec, "daily_soft_quota"),
        monthly_quota=_optional_bytes(sec, "monthly_quota"),
        monthly_soft_quota=_optional_bytes(sec, "monthly_soft_quota"),
    )
    for period in ("daily", "monthly"):
        hard = getattr(spec, f"{period}_quota")
        soft = getattr(spec, f"{period}_soft_quota")
        if hard is not None and soft is not None and soft > hard:
            raise sec.error(
                f"{period}_soft_quota",
                f"soft quota {soft} bytes is above the hard {period}_quota {hard} bytes",
            )
    return spec


def _parse_rule(sec: Section, classes: dict[str, ClassSpec]) -> Rule:
    sec.check_known((*MATCH_KEYS, "class"))
    present = [k for k in MATCH_KEYS if k in sec]
    if len(present) != 1:
        raise sec.error(
            "class",
            "a rule needs exactly one of device, user, household, portal_state; "
            f"got {', '.join(present) or 'none'}",
        )
    key = present[0]
    value = sec.get_str(key)
    if key == "device":
        try:
            value = normalize_mac(value)
        except ValueError as exc:
            raise sec.error(key, str(exc)) from None
    elif not value:
        raise sec.error(key, "expected a non-empty string")
    class_name = sec.get_str("class")
    if class_name not in classes:
        raise sec.error(
            "class", f"unknown class {class_name!r} (defined: {', '.join(sorted(classes))})"
        )
    return Rule(key, value, class_name, sec.prefix)


def parse_fairness(config: Config | Section) -> FairnessSettings:
    """Validate ``[fairness]`` of a loaded config; raises ConfigError naming file and key.

    A config without a ``[fairness]`` table gives one class ``default``
    (weight 1, no caps, no quotas).
    """
    sec = config.section("fairness") if isinstance(config, Config) else config
    sec.check_known(_TOP_KEYS)
    classes_sec = sec.section("classes")
    classes = {name: _parse_class(name, csec) for name, csec in classes_sec.sections()}
    for key in classes_sec.data:
        if key not in classes:
            raise classes_sec.error(key, "expected a table [fairness.classes.NAME]")
    if not classes:
        classes = {"default": ClassSpec("default")}
    default = sec.get_str("default_class", next(iter(classes)))
    if default not in classes:
        raise sec.error(
            "default_class", f"unknown class {default!r} (defined: {', '.join(sorted(classes))})"
        )
    rules = tuple(_parse_rule(r, classes) for r in sec.section_list("rules"))
    seen: dict[tuple[str, str], Rule] = {}
    for rule in rules:
        other = seen.get((rule.key, rule.value))
        if other is not None and other.class_name != rule.class_name:
            raise ConfigError(
                sec.path,
                rule.where,
                f"conflicts with {other.where}: both match {rule.key} = {rule.value!r} "
                f"(same specificity) but give class {other.class_name!r} and "
                f"{rule.class_name!r}",
            )
        seen.setdefault((rule.key, rule.value), rule)
    quantum = sec.get_bytes("quantum", 65536, min=1)
    chunk = sec.get_bytes("chunk", 65536, min=1)
    if quantum > 2**48:
        raise sec.error("quantum", f"expected at most 2**48 bytes, got {quantum}")
    congestion: dict[str, float] = {}
    csec = sec.section("congestion")
    csec.check_known(_CONGESTION_KEYS)
    for key, kind in _CONGESTION_KEYS.items():
        if key not in csec:
            continue
        if kind == "duration":
            congestion[key] = csec.get_duration(key)
        elif kind == "rate":
            congestion[key] = csec.get_rate(key)
        else:
            congestion[key] = csec.get_float(key, min=0.0, max=1.0)
    return FairnessSettings(
        classes=classes,
        default_class=default,
        rules=rules,
        quantum=quantum,
        chunk=chunk,
        path=sec.path,
        congestion=congestion,
    )
