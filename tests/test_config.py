"""The TOML loader: typed getters, unit parsing, and errors that name file and key."""

from __future__ import annotations

import pytest

from meshcore.config import load_config, parse_bytes, parse_config, parse_duration, parse_rate
from meshcore.errors import ConfigError

SAMPLE = """
[net]
community_key = "00112233445566778899aabbccddeeff"
port = 4242
ratio = 0.5
enabled = true
interfaces = ["br-lan", "mesh0"]
budget = "64 MiB"
uplink = "2 Mbit/s"
interval = "250 ms"

[net.babeld]
address = "127.0.0.1:33123"

[[rules]]
name = "a"

[[rules]]
name = "b"
"""


@pytest.fixture
def cfg():
    return parse_config(SAMPLE, "node.toml")


def test_typed_getters_read_values(cfg):
    net = cfg.section("net")
    assert net.get_str("community_key").startswith("0011")
    assert net.get_int("port", min=1, max=65535) == 4242
    assert net.get_float("ratio") == 0.5
    assert net.get_bool("enabled") is True
    assert net.get_str_list("interfaces") == ["br-lan", "mesh0"]
    assert net.get_bytes("budget") == 64 * 1024 * 1024
    assert net.get_rate("uplink") == 250_000.0
    assert net.get_duration("interval") == pytest.approx(0.25)
    assert net.section("babeld").get_str("address") == "127.0.0.1:33123"
    assert [name for name, _ in net.sections()] == ["babeld"]
    assert [s.get_str("name") for s in cfg.section_list("rules")] == ["a", "b"]
    assert "port" in net and "nope" not in net
    assert net.keys()[0] == "community_key"
    assert net.get("port") == 4242


def test_defaults_apply_only_when_key_is_absent(cfg):
    net = cfg.section("net")
    assert net.get_int("missing", 7) == 7
    assert net.get_bytes("missing", 5) == 5
    assert net.get_rate("missing", 1.5) == 1.5
    assert net.get_duration("missing", 3) == 3.0
    assert cfg.section("absent").keys() == []


@pytest.mark.parametrize(
    ("getter", "key", "fragment"),
    [
        ("get_str", "port", "expected a string"),
        ("get_int", "ratio", "expected an integer"),
        ("get_float", "enabled", "expected a number"),
        ("get_bool", "port", "expected true or false"),
        ("get_str_list", "port", "expected a list of strings"),
        ("get_bytes", "port", "expected a size with a unit"),
        ("get_rate", "budget", "unknown rate unit"),
        ("get_duration", "enabled", "expected a duration"),
        ("get_str", "nothing", "required key is missing"),
    ],
)
def test_errors_name_file_key_and_problem(cfg, getter, key, fragment):
    with pytest.raises(ConfigError) as info:
        getattr(cfg.section("net"), getter)(key)
    assert info.value.path == "node.toml"
    assert info.value.key == f"net.{key}"
    assert fragment in info.value.problem
    assert str(info.value).startswith(f"node.toml: net.{key}: ")


def test_ranges_choices_and_unknown_keys(cfg):
    net = cfg.section("net")
    with pytest.raises(ConfigError, match=r"net\.port: expected a value <= 100"):
        net.get_int("port", max=100)
    with pytest.raises(ConfigError, match=r"expected a value >= 0.9"):
        net.get_float("ratio", min=0.9)
    with pytest.raises(ConfigError, match="expected one of x, y"):
        net.get_str("community_key", choices=("x", "y"))
    with pytest.raises(ConfigError, match=r"net\.ratio: unknown key"):
        net.check_known(["community_key", "port"])
    with pytest.raises(ConfigError, match="required table is missing"):
        cfg.section("absent", required=True)
    with pytest.raises(ConfigError, match="expected a table"):
        net.section("port")
    with pytest.raises(ConfigError, match="expected an array of tables"):
        cfg.section_list("net")


def test_negative_rates_and_durations_are_refused():
    sec = parse_config('r = "-2 Mbit/s"\nd = "-1s"\nn = -3\n', "n.toml")
    with pytest.raises(ConfigError, match="rate >= 0"):
        sec.get_rate("r")
    with pytest.raises(ConfigError, match="duration >= 0"):
        sec.get_duration("d")
    with pytest.raises(ConfigError, match="duration >= 0"):
        sec.get_duration("n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1 B", 1), ("1kB", 1000), ("1.5 GB", 1_500_000_000), ("2 KiB", 2048), ("1 TiB", 1024**4)],
)
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["100", "5 parsecs", "", 12, True, "-1 MB"])
def test_parse_bytes_refuses_missing_or_unknown_units(bad):
    with pytest.raises(ValueError):
        parse_bytes(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8 bit/s", 1.0),
        ("1 kbit/s", 125.0),
        ("10 Mbps", 1_250_000.0),
        ("1 Gbit/s", 125_000_000.0),
        ("3 B/s", 3.0),
        ("2 kB/s", 2000.0),
        ("1 MiB/s", 1024.0**2),
    ],
)
def test_parse_rate(text, expected):
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["100", "5 mb/s", "2 furlongs/s", 3, None])
def test_parse_rate_refuses_ambiguous_or_unknown(bad):
    with pytest.raises(ValueError):
        parse_rate(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5.0), (0.5, 0.5), ("250ms", 0.25), ("2 m", 120.0), ("1h", 3600.0), ("1 w", 604800.0)],
)
def test_parse_duration(value, expected):
    assert parse_duration(value) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [True, -1, "soon", "3 fortnights", [1]])
def test_parse_duration_refuses(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_load_config_reports_syntax_and_io_errors(tmp_path):
    good = tmp_path / "node.toml"
    good.write_text('[net]\nport = 1\n')
    assert load_config(good).section("net").get_int("port") == 1
    broken = tmp_path / "broken.toml"
    broken.write_text("[net\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: \(file\): not valid TOML: .*line 1"):
        load_config(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"a = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8 at byte 5"):
        load_config(binary)
