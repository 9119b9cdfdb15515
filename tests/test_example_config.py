"""The example node config in docs/ loads: every area accepts its own section of one file."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshcore.analytics.settings import AnalyticsSettings
from meshcore.cache import cache_budget
from meshcore.config import load_config, parse_config
from meshcore.content.settings import ContentSettings
from meshcore.errors import ConfigError
from meshcore.fairness.settings import FairnessSettings
from meshcore.net.discovery import DiscoverySettings
from meshcore.node.daemon import NodeSettings
from meshcore.router import RouterSettings

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "node.toml"


def test_every_area_accepts_the_example_config():
    cfg = load_config(EXAMPLE)
    node = NodeSettings.from_config(cfg)
    assert node.discovery.community_key  # parsed, not just present
    # One form for every area: Settings.from_config(the whole config).
    disc = DiscoverySettings.from_config(cfg)
    assert disc.beacon_interval == 5.0
    content = ContentSettings.from_config(cfg)
    assert content.budget_bytes == 4 * 1024**3
    assert content.principal("ana").role == "curator"
    fairness = FairnessSettings.from_config(cfg)
    assert set(fairness.classes) == {"member", "guest"}
    analytics = AnalyticsSettings.from_config(cfg)
    assert analytics.k_anonymity == 5
    router = RouterSettings.from_config(cfg)
    # One byte budget: the cache's is the store's less the staging reserve.
    assert router.cache_bytes == cache_budget(content.budget_bytes) < content.budget_bytes
    assert router.fairness == fairness and router.discovery == disc
    assert router.analytics_salt == analytics.salt


def test_the_example_without_its_community_key_is_refused():
    text = EXAMPLE.read_text()
    broken = "\n".join(
        line for line in text.splitlines() if not line.startswith("community_key")
    )
    with pytest.raises(ConfigError) as info:
        NodeSettings.from_config(parse_config(broken, "node.toml"))
    assert info.value.key == "net.community_key"
