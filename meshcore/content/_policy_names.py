"""Parsing and normalising the policy strings a manifest carries.

Theory of operation: a manifest is signed, and a signature only means something
if every node reads the same bytes the same way. So each policy string has one
canonical spelling, and the manifest constructor normalises to it (tags) or
refuses anything else (access, distribution, retention); the decoder then
rejects any byte string that is not the canonical encoding of what it parsed.
The catalog and the classification rules (CONTENT-B) use the same helpers, so
a tag written in a config rule and a tag in a manifest compare equal.

Canonical spellings (see docs/content/format.md):

* access level: ``public`` | ``community`` | ``private`` | ``group:<name>``,
  ``<name>`` matching ``[a-z0-9][a-z0-9_-]{0,63}``.
* distribution: ``push-all`` | ``push-tier`` | ``on-demand`` | ``local-only`` |
  ``no-store`` | ``replicate:<k>`` with ``1 <= k <= 255``, decimal, no sign, no
  leading zero.
* retention: ``None`` | ``pin-until-expiry`` | ``ttl:<seconds>s`` with
  ``1 <= seconds <= 2**32 - 1`` (136 years), decimal, no leading zero.
  :func:`normalize_retention` turns ``ttl:7d`` or ``ttl:90 min`` (any
  :func:`meshcore.config.parse_duration` spelling) into ``ttl:604800s``.
* tag: NFKC, case-folded, surrounding white space stripped, inner runs of white
  space replaced by one ``-``; then 1..64 characters, each a letter or digit
  (any script) or one of ``-_.:/+``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from meshcore.config import parse_duration

__all__ = [
    "ACCESS_LEVELS",
    "DISTRIBUTIONS",
    "MAX_REPLICAS",
    "MAX_TAG_CHARS",
    "MAX_TTL_SECONDS",
    "Access",
    "Distribution",
    "Retention",
    "check_access",
    "check_distribution",
    "check_retention",
    "normalize_retention",
    "normalize_tag",
    "normalize_tags",
    "parse_access",
    "parse_distribution",
    "parse_retention",
]

#: Access levels without a parameter; ``group:<name>`` is the fourth kind.
ACCESS_LEVELS = ("public", "community", "private")
#: Distribution policies without a parameter; ``replicate:<k>`` is the sixth kind.
DISTRIBUTIONS = ("push-all", "push-tier", "on-demand", "local-only", "no-store")
MAX_REPLICAS = 255
MAX_TTL_SECONDS = 2**32 - 1
MAX_TAG_CHARS = 64

_GROUP = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_POSITIVE = re.compile(r"[1-9][0-9]{0,9}")
_TAG_PUNCT = frozenset("-_.:/+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Access:
    """A parsed access level: ``kind`` is public/community/private/group, ``group`` its name."""

    kind: str
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Distribution:
    """A parsed distribution policy: ``kind`` (``replicate`` for ``replicate:<k>``) and ``k``."""

    kind: str
    replicas: int | None = None


@dataclass(frozen=True, slots=True)
class Retention:
    """A parsed retention: ``kind`` is ``pin-until-expiry`` or ``ttl``; ``ttl`` in seconds."""

    kind: str
    ttl: int | None = None


def parse_access(text: str) -> Access:
    """Parse a canonical access level; ValueError naming the accepted forms otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"access: expected a str, got {type(text).__name__}")
    if text in ACCESS_LEVELS:
        return Access(text)
    if text.startswith("group:") and _GROUP.fullmatch(text, 6):
        return Access("group", text[6:])
    raise ValueError(
        f"access: expected 'public', 'community', 'private' or 'group:<name>' "
        f"(name: lowercase letters, digits, '_' or '-', at most 64), got {text!r}"
    )


def parse_distribution(text: str) -> Distribution:
    """Parse a canonical distribution policy; ValueError naming the accepted forms otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"distribution: expected a str, got {type(text).__name__}")
    if text in DISTRIBUTIONS:
        return Distribution(text)
    if text.startswith("replicate:") and _POSITIVE.fullmatch(text, 10):
        k = int(text[10:])
        if k <= MAX_REPLICAS:
            return Distribution("replicate", k)
    raise ValueError(
        f"distribution: expected one of {', '.join(DISTRIBUTIONS)} or 'replicate:<k>' "
        f"(1 <= k <= {MAX_REPLICAS}, no leading zero), got {text!r}"
    )


def parse_retention(text: str | None) -> Retention | None:
    """Parse a canonical retention (``None`` stays ``None``); ValueError otherwise."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"retention: expected a str or None, got {type(text).__name__}")
    if text == "pin-until-expiry":
        return Retention(text)
    if text[:4] == "ttl:" and text[-1:] == "s" and _POSITIVE.fullmatch(text, 4, len(text) - 1):
        seconds = int(text[4:-1])
        if seconds <= MAX_TTL_SECONDS:
            return Retention("ttl", seconds)
    raise ValueError(
        "retention: expected None, 'pin-until-expiry' or 'ttl:<seconds>s' "
        f"(1..{MAX_TTL_SECONDS}; normalize_retention() converts 'ttl:7d'), got {text!r}"
    )


def check_access(text: str) -> str:
    """Return ``text`` if it is a canonical access level, else raise ValueError."""
    parse_access(text)
    return text


def check_distribution(text: str) -> str:
    """Return ``text`` if it is a canonical distribution policy, else raise ValueError."""
    parse_distribution(text)
    return text


def check_retention(text: str | None) -> str | None:
    """Return ``text`` if it is a canonical retention (or None), else raise ValueError."""
    parse_retention(text)
    return text


def normalize_retention(text: str | None) -> str | None:
    """Canonical spelling of a retention: ``ttl:7d`` -> ``ttl:604800s``.

    Accepts any duration :func:`meshcore.config.parse_duration` accepts after
    ``ttl:``, rounded up to whole seconds; raises ValueError otherwise.
    """
    if text is None or text == "pin-until-expiry":
        return text
    if not isinstance(text, str):
        raise TypeError(f"retention: expected a str or None, got {type(text).__name__}")
    if not text.startswith("ttl:"):
        raise ValueError(
            f"retention: expected None, 'pin-until-expiry' or 'ttl:<duration>', got {text!r}"
        )
    spec = text[4:].strip()
    try:
        seconds = parse_duration(spec) if not spec.isdigit() else float(spec)
    except ValueError as exc:
        raise ValueError(f"retention: {exc}") from None
    whole = int(seconds) + (1 if seconds != int(seconds) else 0)
    if not 1 <= whole <= MAX_TTL_SECONDS:
        raise ValueError(f"retention: ttl must be 1 s .. {MAX_TTL_SECONDS} s, got {text!r}")
    return f"ttl:{whole}s"


def normalize_tag(tag: str) -> str:
    """Canonical spelling of one tag (see module doc); ValueError naming the tag otherwise."""
    if not isinstance(tag, str):
        raise TypeError(f"tag: expected a str, got {type(tag).__name__}")
    norm = tag
    # casefold and NFKC do not commute for a few code points; iterate to a
    # fixed point so normalize_tag(normalize_tag(t)) == normalize_tag(t).
    for _ in range(4):
        step = _SPACES.sub("-", unicodedata.normalize("NFKC", norm).casefold().strip())
        if step == norm:
            break
        norm = step
    else:  # pragma: no cover - no such input is known; refuse rather than loop
        raise ValueError(f"tag {tag!r}: has no stable normal form")
    if not 1 <= len(norm) <= MAX_TAG_CHARS:
        raise ValueError(f"tag {tag!r}: must be 1..{MAX_TAG_CHARS} characters after normalising")
    for ch in norm:
        if not (ch.isalnum() or ch in _TAG_PUNCT):
            raise ValueError(
                f"tag {tag!r}: character {ch!r} not allowed (letters, digits and -_.:/+ only)"
            )
    return norm


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Normalise every tag, drop duplicates, and sort by code point (the canonical order)."""
    if isinstance(tags, str | bytes):
        raise TypeError("tags: expected an iterable of str, not a single string")
    return tuple(sorted({normalize_tag(t) for t in tags}))
