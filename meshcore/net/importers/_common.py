"""Shared helpers of the topology importers: JSON with positions, checked field access.

Every importer reports malformed input as
:class:`meshcore.errors.TopologyFormatError` naming the file, the format and a
position: ``line 12`` for text formats, a JSON path such as
``links[3].cost`` for JSON. :class:`JsonReader` keeps the format and file
name so each check is one call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, NoReturn

from meshcore.errors import TopologyFormatError
from meshcore.net.topology import Topology

__all__ = ["JsonReader", "clip", "count", "join", "parse_json"]


def clip(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> NoReturn:
    # JSON has no NaN/Infinity; Python's json accepts them by default.
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str, path: str, fmt: str) -> Any:
    """Parse ``text`` as JSON; a syntax error names the line and column."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise TopologyFormatError(
            path, fmt, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise TopologyFormatError(path, fmt, "line 1", f"invalid JSON: {exc}") from None


class JsonReader:
    """Checked access to decoded JSON; every failure names ``path``, ``fmt`` and a JSON path."""

    def __init__(self, path: str, fmt: str) -> None:
        self.path = path
        self.fmt = fmt

    def fail(self, where: str, problem: str) -> NoReturn:
        """Raise TopologyFormatError at JSON path ``where`` (``"$"`` is the document)."""
        raise TopologyFormatError(self.path, self.fmt, where or "$", problem)

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        """``value`` as a JSON object."""
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, got {_kind(value)}")
        return value

    def arr(self, value: Any, where: str) -> list[Any]:
        """``value`` as a JSON array."""
        if not isinstance(value, list):
            self.fail(where, f"expected an array, got {_kind(value)}")
        return value

    def text(self, obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
        """``obj[key]`` as a non-empty string (numbers are accepted and converted)."""
        at = join(where, key)
        if key not in obj or obj[key] is None:
            if required:
                self.fail(at, "missing")
            return ""
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.fail(at, f"expected a string, got {_kind(value)}")
        value = str(value).strip()
        if required and not value:
            self.fail(at, "expected a non-empty string")
        return value

    def as_text(self, value: Any, at: str) -> str:
        """``value`` as a non-empty string (a number is accepted and converted)."""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.fail(at, f"expected a string, got {_kind(value)}")
        text = str(value).strip()
        if not text:
            self.fail(at, "expected a non-empty string")
        return text

    def number(self, obj: dict[str, Any], key: str, where: str, *, strict: bool = False
               ) -> float:
        """``obj[key]`` as a finite number (a numeric string too, unless ``strict``)."""
        at = join(where, key)
        if key not in obj:
            self.fail(at, "missing")
        return self.as_number(obj[key], at, strict=strict)

    def as_number(self, value: Any, at: str, *, strict: bool = False) -> float:
        """``value`` as a finite number (a numeric string too, unless ``strict``).

        Some daemons write numbers as strings (old olsrd jsoninfo); a format
        whose schema says number (NetJSON's ``cost``) is read ``strict``.
        """
        if isinstance(value, bool):
            self.fail(at, f"expected a number, got {_kind(value)}")
        if isinstance(value, (int, float)):
            try:
                number = float(value)
            except OverflowError:  # an integer literal beyond float range
                self.fail(at, f"expected a finite number, got {clip(value)}")
        elif isinstance(value, str) and strict:
            self.fail(at, f"expected a number, got a string {clip(value)}")
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                self.fail(at, f"expected a number, got {clip(value)}")
        else:
            self.fail(at, f"expected a number, got {_kind(value)}")
        if not math.isfinite(number):
            self.fail(at, f"expected a finite number, got {clip(value)}")
        return number

    def convert(self, func: Callable[..., float], at: str, *args: Any) -> float:
        """Run a :mod:`meshcore.net._costs` conversion; its ValueError becomes a format error."""
        try:
            return func(*args)
        except (ValueError, OverflowError) as exc:
            self.fail(at, str(exc))


def join(where: str, key: str | int) -> str:
    """Extend a JSON path: ``join("links[3]", "cost") == "links[3].cost"``."""
    if where == "$":
        where = ""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def count(topo: Topology, key: str, amount: int = 1) -> None:
    """Add to one of the import counters in ``topo.stats``."""
    topo.stats[key] = topo.stats.get(key, 0) + amount
