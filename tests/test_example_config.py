"""The example node config in docs/ loads: every area accepts its own section of one file."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshcore.analytics.settings import AnalyticsSettings
from meshcore.config import load_config, parse_config
from meshcore.content.settings import ContentSettings
from meshcore.errors import ConfigError
from meshcore.fairness.settings import parse_fairness
from meshcore.net.discovery import DiscoverySettings
from meshcore.node.daemon import NodeSettings

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "node.toml"


def test_every_area_accepts_the_example_config():
    cfg = load_config(EXAMPLE)
    node = NodeSettings.from_config(cfg)
    assert node.discovery.community_key  # parsed, not just present
    disc = DiscoverySettings.from_config(cfg.section("net"))
    assert disc.beacon_interval == 5.0
    content = ContentSettings.from_config(cfg)
    assert content.budget_bytes == 4 * 1024**3
    assert content.principal("ana").role == "curator"
    fairness = parse_fairness(cfg)
    assert set(fairness.classes) == {"member", "guest"}
    analytics = AnalyticsSettings.from_config(cfg)
    assert analytics.k_anonymity == 5


def test_the_example_without_its_community_key_is_refused():
    text = EXAMPLE.read_text()
    broken = "\n".join(
        line for line in text.splitlines() if not line.startswith("community_key")
    )
    with pytest.raises(ConfigError) as info:
        NodeSettings.from_config(parse_config(broken, "node.toml"))
    assert info.value.key == "net.community_key"
