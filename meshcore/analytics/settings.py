"""The ``[analytics]`` table of the node config, validated into :class:`AnalyticsSettings`.

Every key, its type, default and meaning is listed in ``docs/analytics.md``.
Errors are :class:`~meshcore.errors.ConfigError` naming the file and the
dotted key (``node.toml: analytics.salt: ...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config, Section, state_dir

__all__ = ["KNOWN_KEYS", "AnalyticsSettings", "rollup_path"]

KNOWN_KEYS = (
    "enabled",
    "exports_enabled",
    "salt",
    "k_anonymity",
    "price_per_gb",
    "currency",
    "label_cardinality_cap",
    "hll_precision",
    "top_k",
    "stored_top",
    "rollup_path",
    "retention_minutes",
    "retention_hours",
    "retention_days",
    "textfile_path",
)


@dataclass(frozen=True, slots=True)
class AnalyticsSettings:
    """Validated analytics settings (durations in seconds, sizes as counts)."""

    enabled: bool = True
    exports_enabled: bool = True
    salt: str = ""
    k_anonymity: int = 5
    price_per_gb: float = 0.0
    currency: str = "USD"
    label_cardinality_cap: int = 1000
    hll_precision: int = 12
    top_k: int = 100
    stored_top: int = 32
    rollup_path: str = ""
    retention_minutes: float = 7 * 86400.0
    retention_hours: float = 31 * 86400.0
    retention_days: float = 366 * 86400.0
    textfile_path: str = ""

    @classmethod
    def from_config(cls, config: Config | Section) -> AnalyticsSettings:
        """Read ``[analytics]`` from a loaded config (all keys optional except ``salt``
        when ``exports_enabled`` is true, the default). Unknown keys are refused."""
        sec = config.section("analytics") if not _is_analytics(config) else config
        sec.check_known(KNOWN_KEYS)
        enabled = sec.get_bool("enabled", True)
        exports = sec.get_bool("exports_enabled", True)
        salt = sec.get_str("salt", "")
        if enabled and exports:
            if not salt:
                raise sec.error(
                    "salt",
                    "required when exports are enabled: a per-community secret used to "
                    "pseudonymise users (or set exports_enabled = false)",
                )
            if len(salt.encode("utf-8")) < 8:
                raise sec.error("salt", "too short: use at least 8 bytes (16+ random characters)")
        return cls(
            enabled=enabled,
            exports_enabled=exports,
            salt=salt,
            k_anonymity=sec.get_int("k_anonymity", 5, min=1, max=1_000_000),
            price_per_gb=sec.get_float("price_per_gb", 0.0, min=0.0, max=1e9),
            currency=sec.get_str("currency", "USD"),
            label_cardinality_cap=sec.get_int("label_cardinality_cap", 1000, min=1, max=1_000_000),
            hll_precision=sec.get_int("hll_precision", 12, min=4, max=16),
            top_k=sec.get_int("top_k", 100, min=1, max=100_000),
            stored_top=sec.get_int("stored_top", 32, min=1, max=100_000),
            rollup_path=sec.get_str("rollup_path", ""),
            retention_minutes=sec.get_duration("retention_minutes", "7d", min=60),
            retention_hours=sec.get_duration("retention_hours", "31d", min=3600),
            retention_days=sec.get_duration("retention_days", "366d", min=86400),
            textfile_path=sec.get_str("textfile_path", ""),
        )


def rollup_path(config: Config, settings: AnalyticsSettings) -> Path:
    """Where the rollup database is: ``[analytics] rollup_path``, else
    ``<state folder>/analytics/rollups.sqlite`` (:func:`meshcore.config.state_dir`).

    A relative ``rollup_path`` is taken from the config file's folder.
    """
    if settings.rollup_path:
        path = Path(settings.rollup_path)
        return path if path.is_absolute() else Path(config.path).resolve().parent / path
    return state_dir(config) / "analytics" / "rollups.sqlite"


def _is_analytics(section: Section) -> bool:
    return section.prefix == "analytics"
