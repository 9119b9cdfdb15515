"""The [analytics] config table and the privacy helpers."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from meshcore.analytics.privacy import Pseudonymizer, suppress_below_k
from meshcore.analytics.settings import AnalyticsSettings
from meshcore.config import parse_config
from meshcore.errors import ConfigError


def test_defaults_with_a_salt():
    cfg = parse_config('[analytics]\nsalt = "a-long-community-secret"\n', "node.toml")
    s = AnalyticsSettings.from_config(cfg)
    assert s.salt == "a-long-community-secret"
    assert s.k_anonymity == 5 and s.label_cardinality_cap == 1000
    assert s.retention_minutes == 7 * 86400 and s.retention_days == 366 * 86400
    assert s.retention_hours == 31 * 86400
    assert AnalyticsSettings.from_config(cfg.section("analytics")) == s


def test_all_keys():
    text = """
[analytics]
enabled = true
exports_enabled = true
salt = "0123456789abcdef"
k_anonymity = 10
price_per_gb = 0.25
currency = "EUR"
label_cardinality_cap = 50
hll_precision = 10
top_k = 200
stored_top = 16
rollup_path = "/var/lib/meshcore/rollups.db"
retention_minutes = "2d"
retention_hours = "14d"
retention_days = "400d"
textfile_path = "/var/lib/node_exporter/meshcore.prom"
"""
    s = AnalyticsSettings.from_config(parse_config(text, "n.toml"))
    assert (s.k_anonymity, s.price_per_gb, s.currency) == (10, 0.25, "EUR")
    assert (s.label_cardinality_cap, s.hll_precision, s.top_k, s.stored_top) == (50, 10, 200, 16)
    assert s.retention_minutes == 2 * 86400 and s.retention_hours == 14 * 86400
    assert s.retention_days == 400 * 86400
    assert s.textfile_path.endswith(".prom") and s.rollup_path.endswith(".db")


def test_missing_salt_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"node\.toml: analytics\.salt: required when exports"):
        AnalyticsSettings.from_config(parse_config("[analytics]\n", "node.toml"))
    with pytest.raises(ConfigError, match=r"analytics\.salt"):
        AnalyticsSettings.from_config(parse_config("", "node.toml"))  # no table at all
    with pytest.raises(ConfigError, match="too short"):
        AnalyticsSettings.from_config(parse_config('[analytics]\nsalt = "abc"\n', "n.toml"))
    ok = AnalyticsSettings.from_config(
        parse_config("[analytics]\nexports_enabled = false\n", "n.toml"))
    assert ok.salt == "" and not ok.exports_enabled


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("k_anonymity = 0", "analytics.k_anonymity"),
        ("price_per_gb = -1", "analytics.price_per_gb"),
        ("hll_precision = 20", "analytics.hll_precision"),
        ('retention_minutes = "10s"', "analytics.retention_minutes"),
        ("label_cardinality_cap = true", "analytics.label_cardinality_cap"),
        ("colour = 1", "analytics.colour"),
    ],
)
def test_bad_values_name_their_key(line, key):
    text = f'[analytics]\nsalt = "0123456789abcdef"\n{line}\n'
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        AnalyticsSettings.from_config(parse_config(text, "n.toml"))


def test_pseudonyms_are_truncated_hmac_sha256():
    p = Pseudonymizer("community-salt")
    mac = "aa:bb:cc:dd:ee:ff"
    expected = hmac.new(b"community-salt", mac.encode(), hashlib.sha256).hexdigest()[:16]
    assert p(mac) == expected
    assert p(mac) == expected  # cached
    assert Pseudonymizer("other-salt-value")(mac) != expected
    assert p("") == ""
    with pytest.raises(TypeError):
        p(5)
    with pytest.raises(ValueError, match="salt"):
        Pseudonymizer("short")
    with pytest.raises(ValueError, match="max_cache"):
        Pseudonymizer("long-enough-salt", max_cache=0)


def test_pseudonym_cache_is_bounded():
    p = Pseudonymizer(b"bytes-salt-123", max_cache=10)
    values = [p(f"user{i}") for i in range(100)]
    assert len(p._cache) <= 10
    assert values[0] == p("user0")  # recomputed identically after eviction


def test_suppress_below_k():
    kept, dropped = suppress_below_k([("a", 5), ("b", 4), ("c", 1)], 5)
    assert kept == [("a", 5)] and dropped == 2
    assert suppress_below_k([("a", 1)], 1) == ([("a", 1)], 0)
    with pytest.raises(ValueError, match="k"):
        suppress_below_k([], 0)
