"""Tags and classification rules: what a node adds to an item it publishes (sans-I/O).

Theory of operation
-------------------
A publisher gives an item a name, a media type, a size and optional tags,
access level, distribution policy and retention. The node's config adds rules
(``[[content.rules]]``) that match on

* ``name``: a glob (``fnmatch``: ``*``, ``?``, ``[...]``), case-insensitive;
* ``media_type``: exact (``video/mp4``) or a major type (``video/*``), case-insensitive;
* ``min_size`` / ``max_size``: sizes with a unit, both inclusive;
* ``publisher``: one public key (hex or base64);

and that add ``tags`` and set default ``access``, ``distribution`` and
``retention``. A rule's *specificity* is the number of criteria it names
(size bounds count once), 0 to 4.

Evaluation, per item:

* tags: the publisher's tags plus the tags of every matching rule, normalised,
  de-duplicated and sorted;
* access, distribution, retention, each on its own: the publisher's explicit
  value if given; else the value of the most specific matching rule that sets
  it; else the node default (``[content] default_access`` = ``community``,
  ``default_distribution`` = ``on-demand``, ``default_retention`` unset).
* Two matching rules of the same specificity that set different values for the
  same field are a :class:`~meshcore.errors.ConfigError` naming both (refused
  at load when their criteria are identical, at classification otherwise:
  whether two globs overlap is only known once a name is seen).

Tag normalisation (:func:`normalize_tag`, shared with the manifest code in
:mod:`meshcore.content._policy_names` so a tag in a rule and a tag in a signed
manifest compare equal): Unicode NFKC, case-folded (to a fixed point),
surrounding white space trimmed, inner runs of white space replaced by ``-``;
the result must be 1 to :data:`MAX_TAG_LENGTH` (64) characters, each a letter
or digit of any script or one of ``-_.:/+``. NFKC folds compatibility forms
(full-width letters, ligatures) so that the same word typed on two keyboards
is one tag (Unicode TR #15); letters of every script are kept because
community content is not all in English.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ._policy_names import MAX_TAG_CHARS as MAX_TAG_LENGTH
from ._policy_names import normalize_tag, normalize_tags

__all__ = [
    "MAX_TAG_LENGTH",
    "Classification",
    "ClassificationRule",
    "Classifier",
    "ItemFacts",
    "normalize_tag",
    "normalize_tags",
]

_FIELDS = ("access", "distribution", "retention")


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What rules match on: ``name``, ``media_type``, ``size`` in bytes, ``publisher`` key."""

    name: str
    media_type: str
    size: int
    publisher: bytes


@dataclass(frozen=True, slots=True)
class ClassificationRule:
    """One ``[[content.rules]]`` entry (see the module docstring).

    Criteria left ``None`` match anything. ``where`` is the config key
    (``content.rules[1]``), used with ``name`` in error messages.
    """

    name: str
    name_glob: str | None = None
    media_type: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    publisher: bytes | None = None
    tags: tuple[str, ...] = ()
    access: str | None = None
    distribution: str | None = None
    retention: str | None = None
    where: str = ""

    @property
    def specificity(self) -> int:
        """Number of criteria named (size bounds count once), 0..4."""
        return (
            (self.name_glob is not None)
            + (self.media_type is not None)
            + (self.min_size is not None or self.max_size is not None)
            + (self.publisher is not None)
        )

    def criteria(self) -> tuple:
        """The match criteria as a comparable tuple (two rules with equal tuples match alike)."""
        return (
            None if self.name_glob is None else self.name_glob.lower(),
            None if self.media_type is None else self.media_type.lower(),
            self.min_size,
            self.max_size,
            self.publisher,
        )

    def matches(self, item: ItemFacts) -> bool:
        """Whether every criterion this rule names holds for ``item``."""
        if self.publisher is not None and item.publisher != self.publisher:
            return False
        if self.min_size is not None and item.size < self.min_size:
            return False
        if self.max_size is not None and item.size > self.max_size:
            return False
        if self.media_type is not None:
            want = self.media_type.lower()
            have = item.media_type.lower()
            if want.endswith("/*"):
                if have.partition("/")[0] != want[:-2]:
                    return False
            elif have != want:
                return False
        return self.name_glob is None or fnmatch.fnmatchcase(
            item.name.lower(), self.name_glob.lower()
        )

    def label(self) -> str:
        """``'name' (content.rules[1])`` for messages."""
        return f"{self.name!r} ({self.where})" if self.where else repr(self.name)


@dataclass(frozen=True, slots=True)
class Classification:
    """The result: final ``tags``, ``access``, ``distribution``, ``retention``.

    ``rules`` names every rule that matched (in config order); ``sources``
    says, per field, where its value came from (``"publisher"``, a rule name,
    or ``"default"``).
    """

    tags: tuple[str, ...]
    access: str
    distribution: str
    retention: str | None
    rules: tuple[str, ...]
    sources: tuple[tuple[str, str], ...]


class Classifier:
    """Applies classification rules (sans-I/O, immutable).

    Raises :class:`ConfigError` (``path``) when two rules with identical
    criteria set different values for one field.
    """

    def __init__(
        self,
        rules: Sequence[ClassificationRule] = (),
        *,
        default_access: str = "community",
        default_distribution: str = "on-demand",
        default_retention: str | None = None,
        path: str = "<config>",
    ) -> None:
        self.rules = tuple(rules)
        self.path = path
        self.defaults = {
            "access": default_access,
            "distribution": default_distribution,
            "retention": default_retention,
        }
        for i, a in enumerate(self.rules):
            for b in self.rules[i + 1 :]:
                if a.criteria() == b.criteria():
                    self._check_pair(a, b)

    def _check_pair(self, a: ClassificationRule, b: ClassificationRule) -> None:
        for name in _FIELDS:
            va, vb = getattr(a, name), getattr(b, name)
            if va is not None and vb is not None and va != vb:
                raise ConfigError(
                    self.path,
                    b.where or "content.rules",
                    f"rules {a.label()} and {b.label()} conflict: both match the same items "
                    f"with specificity {a.specificity} but set {name} to {va!r} and {vb!r}; "
                    "make one more specific or remove one",
                )

    def classify(
        self,
        item: ItemFacts,
        *,
        tags: Iterable[str] = (),
        access: str | None = None,
        distribution: str | None = None,
        retention: str | None = None,
    ) -> Classification:
        """Classify ``item`` with the publisher's ``tags`` and explicit choices.

        Raises ValueError for a bad publisher tag and :class:`ConfigError` when
        two equally specific matching rules disagree on a field.
        """
        matched = [r for r in self.rules if r.matches(item)]
        all_tags = list(tags)
        for rule in matched:
            all_tags.extend(rule.tags)
        given = {"access": access, "distribution": distribution, "retention": retention}
        values: dict[str, str | None] = {}
        sources: list[tuple[str, str]] = []
        for name in _FIELDS:
            if given[name] is not None:
                values[name] = given[name]
                sources.append((name, "publisher"))
                continue
            setting = [r for r in matched if getattr(r, name) is not None]
            if not setting:
                values[name] = self.defaults[name]
                sources.append((name, "default"))
                continue
            top = max(r.specificity for r in setting)
            best = [r for r in setting if r.specificity == top]
            for other in best[1:]:
                if getattr(other, name) != getattr(best[0], name):
                    raise ConfigError(
                        self.path,
                        other.where or "content.rules",
                        f"rules {best[0].label()} and {other.label()} conflict on {item.name!r}: "
                        f"both match with specificity {top} but set {name} to "
                        f"{getattr(best[0], name)!r} and {getattr(other, name)!r}",
                    )
            values[name] = getattr(best[0], name)
            sources.append((name, best[0].name))
        return Classification(
            tags=normalize_tags(all_tags),
            access=str(values["access"]),
            distribution=str(values["distribution"]),
            retention=values["retention"],
            rules=tuple(r.name for r in matched),
            sources=tuple(sources),
        )
