"""The node's TOML configuration: loading, typed lookups, and unit parsing.

One TOML file per node (DESIGN "Config"). This module only reads the file and
offers typed accessors; each package (``net``, ``content``, ``fairness``,
``analytics``) validates its own section with them, so every error names the
file, the dotted key and the problem::

    cfg = load_config("/etc/meshcore/node.toml")
    net = cfg.section("net")
    key = net.get_str("community_key")          # ConfigError if missing
    interval = net.get_duration("beacon_interval", default=2.0)

Sizes, rates and durations are strings with a unit (``"64 MiB"``,
``"2 Mbit/s"``, ``"30s"``): a bare number is refused for sizes and rates,
because "100" could mean bytes, kB or MB and operators have been bitten by it.
Durations accept a bare number as seconds.

Every number must be finite (TOML allows ``nan`` and ``inf``; no setting
means either) and inside a range: each getter takes ``min``/``max``, and sizes,
rates and durations have a ceiling even when the caller gives none
(:data:`MAX_BYTES`, :data:`MAX_RATE`, :data:`MAX_DURATION`), so a value such
as ``1e308`` or ``"99999999999999999999999 s"`` is refused at load instead
of overflowing later in a scheduler or a timer.

The file itself is bounded: :func:`load_config` reads at most
:data:`MAX_CONFIG_BYTES` (1 MiB; a node config is a few KiB) and refuses a
larger file or stream (``/dev/zero``) after that many bytes, refuses TOML
nested too deep for the parser, and refuses top-level keys and tables it does
not know (:data:`KNOWN_SECTIONS`): a misspelt ``[fairnes]`` must not leave a
node running with default fairness.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "DEFAULT_STATE_DIR",
    "KNOWN_SECTIONS",
    "MAX_BYTES",
    "MAX_CONFIG_BYTES",
    "MAX_DURATION",
    "MAX_RATE",
    "Config",
    "Section",
    "did_you_mean",
    "load_config",
    "parse_bytes",
    "parse_config",
    "parse_duration",
    "parse_rate",
    "read_bounded",
    "state_dir",
]

_MISSING: Any = object()

#: Largest config file read (bytes). A node config is a few KiB; the cap keeps
#: ``fairness check /dev/zero`` from filling a router's RAM.
MAX_CONFIG_BYTES = 1 << 20
#: The tables a node config may have at its top level (one per area).
KNOWN_SECTIONS = ("node", "net", "cache", "content", "fairness", "analytics")
#: Where a node keeps its state when the config names no folder (FHS: /var/lib).
DEFAULT_STATE_DIR = "/var/lib/meshcore"
#: Ceilings of every size, rate and duration (a caller may set a lower ``max``).
MAX_BYTES = 1 << 60  # 1 EiB
MAX_RATE = 1e12  # bytes/s (8 Tbit/s)
MAX_DURATION = float(2**32)  # seconds: about 136 years, a 32-bit count of seconds

# Decimal (SI) and binary (IEC) prefixes, both common in operator configs.
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
# Rates in bits per second (network convention) or bytes per second ("B/s").
_RATE_UNITS = {
    "bit/s": 1 / 8,
    "kbit/s": 1000 / 8,
    "mbit/s": 1000**2 / 8,
    "gbit/s": 1000**3 / 8,
    "bps": 1 / 8,
    "kbps": 1000 / 8,
    "mbps": 1000**2 / 8,
    "gbps": 1000**3 / 8,
    "b/s": 1,
    "kb/s": 1000,
    "mb/s": 1000**2,
    "gb/s": 1000**3,
    "kib/s": 1024,
    "mib/s": 1024**2,
}
_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z/]+)\s*$")


def _split(text: str) -> tuple[float, str] | None:
    match = _NUMBER_UNIT.match(text)
    if match is None:
        return None
    return float(match.group(1)), match.group(2)


def parse_bytes(value: object) -> int:
    """Parse a size such as ``"64 MiB"`` or ``"1.5 GB"`` into bytes.

    Raises ValueError with the accepted units when the unit is missing or
    unknown, or the value is negative. Case matters only for bits vs bytes in
    rates; sizes are always bytes, so ``"64mib"`` is accepted.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a size with a unit such as '64 MiB', got {value!r}")
    parts = _split(value)
    if parts is None:
        raise ValueError(
            f"expected a size with a unit such as '64 MiB' (units: B, kB, MB, GB, TB, "
            f"KiB, MiB, GiB, TiB), got {value!r}"
        )
    number, unit = parts
    _check_finite(number, value)
    scale = _SIZE_UNITS.get(unit.lower())
    if scale is None:
        raise ValueError(
            f"unknown size unit {unit!r} in {value!r} "
            "(units: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    result = number * scale
    if not result <= MAX_BYTES:
        raise ValueError(f"expected a size of at most 1 EiB, got {value!r}")
    return round(result)


def _check_finite(number: float, value: object) -> None:
    # A digit string of a few hundred characters is float("inf").
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")


def parse_rate(value: object) -> float:
    """Parse a rate such as ``"2 Mbit/s"`` or ``"500 kB/s"`` into bytes per second.

    ``bit/s`` units (and ``bps`` spellings) are bits; ``B/s`` units are bytes.
    Raises ValueError naming the accepted units when the unit is missing.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a rate with a unit such as '2 Mbit/s', got {value!r}")
    parts = _split(value)
    if parts is None:
        raise ValueError(
            f"expected a rate with a unit such as '2 Mbit/s' or '250 kB/s', got {value!r}"
        )
    number, unit = parts
    _check_finite(number, value)
    key = unit.lower()
    # "MB/s" (bytes) and "Mbit/s" (bits) differ only by spelling, so keep the
    # bytes units case-sensitive on the "B".
    if key.endswith("b/s") and not key.endswith("bit/s") and unit[-3] != "B":
        raise ValueError(
            f"ambiguous rate unit {unit!r} in {value!r}: write 'bit/s' for bits or 'B/s' for bytes"
        )
    scale = _RATE_UNITS.get(key)
    if scale is None:
        raise ValueError(
            f"unknown rate unit {unit!r} in {value!r} "
            "(units: bit/s, kbit/s, Mbit/s, Gbit/s, B/s, kB/s, MB/s, KiB/s, MiB/s)"
        )
    result = number * scale
    if not result <= MAX_RATE:
        raise ValueError(f"expected a rate of at most 8 Tbit/s, got {value!r}")
    return result


def parse_duration(value: object) -> float:
    """Parse a duration such as ``"30s"``, ``"250 ms"`` or ``"7d"`` into seconds.

    A bare non-negative number (int or float) is taken as seconds. NaN,
    infinities and anything above :data:`MAX_DURATION` (2**32 s, 136 years) are
    refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30s', got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite duration, got {value!r}")
        if value < 0:
            raise ValueError(f"expected a duration >= 0, got {value!r}")
        if value > MAX_DURATION:
            raise ValueError(f"expected a duration of at most 2**32 s (136 years), got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '30s', got {value!r}")
    parts = _split(value)
    if parts is None:
        raise ValueError(f"expected a duration such as '30s' or '250 ms', got {value!r}")
    number, unit = parts
    _check_finite(number, value)
    scale = _DURATION_UNITS.get(unit.lower())
    if scale is None:
        raise ValueError(f"unknown duration unit {unit!r} in {value!r} (units: ms, s, m, h, d, w)")
    result = number * scale
    if not result <= MAX_DURATION:
        raise ValueError(f"expected a duration of at most 2**32 s (136 years), got {value!r}")
    return result


class Section:
    """One table of the config, with typed getters that raise :class:`ConfigError`.

    ``prefix`` is the dotted path of this table (``"fairness.classes.guest"``);
    error messages name ``prefix.key``.
    """

    __slots__ = ("data", "path", "prefix")

    def __init__(self, path: str, prefix: str, data: Mapping[str, Any]) -> None:
        self.path = path
        self.prefix = prefix
        self.data = data

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, problem: str) -> ConfigError:
        """A :class:`ConfigError` for ``key`` in this section (for callers' own checks)."""
        return ConfigError(self.path, self._key(key), problem)

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def keys(self) -> list[str]:
        """The keys present in this table, in file order."""
        return list(self.data)

    def _raw(self, key: str, default: Any) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise self.error(key, "required key is missing")
        return default

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """The raw TOML value of ``key`` (``default`` when absent; required if none)."""
        return self._raw(key, default)

    def get_str(self, key: str, default: Any = _MISSING, *, choices: Iterable[str] = ()) -> str:
        """A string value; with ``choices``, one of them."""
        value = self._raw(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {value!r}")
        allowed = tuple(choices)
        if allowed and value not in allowed:
            raise self.error(key, f"expected one of {', '.join(allowed)}; got {value!r}")
        return value

    def get_int(
        self, key: str, default: Any = _MISSING, *, min: int | None = None, max: int | None = None
    ) -> int:
        """An integer value within ``[min, max]``."""
        value = self._raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {value!r}")
        self._check_range(key, value, min, max)
        return value

    def get_float(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        min: float | None = None,
        max: float | None = None,
    ) -> float:
        """A finite number (int or float) within ``[min, max]``, as float.

        NaN and infinities are refused whatever the range: TOML can spell them,
        but no setting means them.
        """
        value = self._raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            raise self.error(key, f"expected a number of at most 1.8e308, got {value!r}") from None
        self._check_range(key, number, min, max)
        return number

    def get_bool(self, key: str, default: Any = _MISSING) -> bool:
        """A boolean value (TOML ``true``/``false`` only)."""
        value = self._raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def get_str_list(self, key: str, default: Any = _MISSING) -> list[str]:
        """A list of strings."""
        value = self._raw(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, f"expected a list of strings, got {value!r}")
        return list(value)

    def get_bytes(
        self, key: str, default: Any = _MISSING, *, min: int | None = 0, max: int | None = None
    ) -> int:
        """A size with a unit (``"64 MiB"``), in bytes, within ``[min, max]`` (max <= 1 EiB)."""
        if key not in self.data and default is not _MISSING:
            return default
        value = self._raw(key, default)
        try:
            parsed = parse_bytes(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        self._check_range(key, parsed, min, max)
        return parsed

    def get_rate(
        self, key: str, default: Any = _MISSING, *, min: float | None = 0,
        max: float | None = None,
    ) -> float:
        """A rate with a unit (``"2 Mbit/s"``), in bytes per second, within ``[min, max]``
        (max <= 8 Tbit/s)."""
        if key not in self.data and default is not _MISSING:
            return default
        value = self._raw(key, default)
        if isinstance(value, str) and value.lstrip().startswith("-"):
            raise self.error(key, f"expected a rate >= 0, got {value!r}")
        try:
            parsed = parse_rate(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        self._check_range(key, parsed, min, max)
        return parsed

    def get_duration(
        self, key: str, default: Any = _MISSING, *, min: float | None = 0,
        max: float | None = None,
    ) -> float:
        """A duration (``"30s"``, or a bare number of seconds), in seconds, within
        ``[min, max]`` (max <= 2**32 s); NaN and infinities are refused."""
        value = self._raw(key, default)
        if isinstance(value, str) and value.lstrip().startswith("-"):
            raise self.error(key, f"expected a duration >= 0, got {value!r}")
        try:
            parsed = parse_duration(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        self._check_range(key, parsed, min, max)
        return parsed

    def section(self, name: str, *, required: bool = False) -> Section:
        """The sub-table ``name`` (an empty section when absent and not required)."""
        value = self.data.get(name, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(name, "required table is missing")
            value = {}
        if not isinstance(value, dict):
            raise self.error(name, f"expected a table, got {value!r}")
        return Section(self.path, self._key(name), value)

    def sections(self) -> list[tuple[str, Section]]:
        """Every sub-table of this table, as ``(name, section)`` in file order."""
        return [(k, self.section(k)) for k, v in self.data.items() if isinstance(v, dict)]

    def section_list(self, name: str) -> list[Section]:
        """An array of tables (``[[name]]``), each as a section named ``name[i]``."""
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(name, f"expected an array of tables ([[{name}]]), got {value!r}")
        return [Section(self.path, f"{self._key(name)}[{i}]", v) for i, v in enumerate(value)]

    def check_known(self, known: Iterable[str]) -> None:
        """Refuse keys this section does not define: a typo must not be silently ignored.

        The error names the file, the table and the key, and the closest known
        key when there is one (``did you mean 'budget'?``).
        """
        allowed = set(known)
        for key in self.data:
            if key not in allowed:
                where = f"[{self.prefix}]" if self.prefix else "the top level"
                raise self.error(key, f"unknown key {key!r} in {where}{did_you_mean(key, allowed)} "
                                      f"(known keys: {', '.join(sorted(allowed))})")

    def _check_range(self, key: str, value: float, lo: float | None, hi: float | None) -> None:
        if lo is not None and value < lo:
            raise self.error(key, f"expected a value >= {lo}, got {value!r}")
        if hi is not None and value > hi:
            raise self.error(key, f"expected a value <= {hi}, got {value!r}")


class Config(Section):
    """The whole node config file: the root :class:`Section` plus its ``path``."""

    __slots__ = ()

    def __init__(self, path: str, data: Mapping[str, Any]) -> None:
        super().__init__(path, "", data)

    def check_sections(self, known: Iterable[str] = KNOWN_SECTIONS) -> None:
        """Refuse top-level keys that are not tables, and tables not in ``known``."""
        allowed = tuple(known)
        for key, value in self.data.items():
            if not isinstance(value, dict):
                raise self.error(key, "unknown top-level key: every setting belongs in a table "
                                      f"({', '.join(f'[{k}]' for k in allowed)})")
            if key not in allowed:
                raise self.error(key, f"unknown table [{key}]{did_you_mean(key, allowed, '[{}]')} "
                                      f"(known tables: {', '.join(f'[{k}]' for k in allowed)})")


def did_you_mean(word: str, choices: Iterable[str], form: str = "{!r}") -> str:
    """``"; did you mean 'budget'?"`` for the choice closest to a misspelt ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {form.format(close[0])}?" if close else ""


def parse_config(text: str, path: str = "<config>", *,
                 known_sections: Iterable[str] | None = None) -> Config:
    """Parse TOML text; syntax errors become :class:`ConfigError` naming the position.

    TOML nested deeper than the parser's recursion limit is refused the same
    way. With ``known_sections`` the top level is checked
    (:meth:`Config.check_sections`).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(file)", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(path, "(file)", "not valid TOML: nested too deeply") from None
    config = Config(path, data)
    if known_sections is not None:
        config.check_sections(known_sections)
    return config


def read_bounded(path: str | Path, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path``; ValueError when it holds more.

    Reads in pieces, never more than ``limit + 1`` bytes, so a device such as
    ``/dev/zero`` or a huge file costs no more memory than the limit (and
    Ctrl-C is seen between pieces). OSError as ``open``/``read`` raise it.
    """
    pieces: list[bytes] = []
    total = 0
    with open(path, "rb", buffering=0) as f:
        while total <= limit:
            piece = f.read(min(65536, limit + 1 - total))
            if not piece:
                break
            pieces.append(piece)
            total += len(piece)
    if total > limit:
        raise ValueError(f"larger than the {limit}-byte limit")
    return b"".join(pieces)


def load_config(path: str | Path, *, known_sections: Iterable[str] | None = KNOWN_SECTIONS
                ) -> Config:
    """Read and parse the node's TOML file; unreadable or invalid files raise ConfigError.

    The file is read with a bound (:data:`MAX_CONFIG_BYTES`) and its top level
    checked against ``known_sections`` (None: not checked).
    """
    name = str(path)
    try:
        raw = read_bounded(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise ConfigError(name, "(file)", f"cannot read: {exc.strerror or exc}") from None
    except ValueError:
        raise ConfigError(name, "(file)", f"larger than {MAX_CONFIG_BYTES // 1024} KiB: "
                                          "not a node config") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(name, "(file)", f"not UTF-8 at byte {exc.start}") from None
    return parse_config(text, name, known_sections=known_sections)


def state_dir(config: Config, *, base: Path | None = None) -> Path:
    """The node's state folder: ``[node] state_dir``, else ``[content] state_dir``, else
    :data:`DEFAULT_STATE_DIR`.

    A relative path is taken from ``base`` (default: the config file's
    folder, as ``[content]`` does). The folder holds the daemon's lock and
    status file, the rollup database and the content store, so one setting
    moves all of them; both keys naming different folders is a ConfigError
    (the daemon's lock would sit apart from the store the content commands use).
    """
    if base is None:
        base = Path(config.path).resolve().parent
    folders: dict[str, Path] = {}
    for table in ("node", "content"):
        sec = config.section(table)
        if "state_dir" in sec:
            text = sec.get_str("state_dir")
            if not text:
                raise sec.error("state_dir", "expected a folder, got ''")
            folders[table] = base / text  # an absolute path stays as it is
    if len(set(folders.values())) > 1:
        raise config.section("content").error(
            "state_dir", f"names {folders['content']} but [node] state_dir names "
                         f"{folders['node']}: a node has one state folder (set one of them)")
    return next(iter(folders.values()), Path(DEFAULT_STATE_DIR))
