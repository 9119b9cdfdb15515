"""Regressions of issue 14 in the config: finite numbers with ranges (8), silent
acceptance (10), bounded reads (11) and the TOML tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshcore.cli import main
from meshcore.config import MAX_CONFIG_BYTES, parse_config
from meshcore.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
KEY = 'community_key = "hex:00112233445566778899aabbccddeeff"'
FAIRNESS = "[fairness]\ndefault_class = 'member'\n[fairness.classes.member]\nweight = 1\n"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- tracebacks: TOML nested too deep ------------------------------------------------------


def test_toml_nested_2000_deep_is_one_line(tmp_path, capsys):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 2000 + "]" * 2000 + "\n")
    assert main(["fairness", "check", str(path)]) == 1
    assert "nested too deeply" in _one_line_error(capsys)


# -- 11. a config file is read with a bound ----------------------------------------------------


def test_fairness_check_of_dev_zero_stops_at_the_cap(capsys):
    # Before: read the whole device (24 GB and counting).
    code = subprocess.run(
        [sys.executable, "-c", "import resource, sys; "
         "resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20)); "
         "from meshcore.cli import main; sys.exit(main(['fairness', 'check', '/dev/zero']))"],
        env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=60)
    assert code.returncode == 1, code.stderr
    assert "larger than 1024 KiB" in code.stderr and "Traceback" not in code.stderr


def test_a_config_just_over_the_cap_is_refused(tmp_path, capsys):
    path = tmp_path / "big.toml"
    path.write_text(FAIRNESS + "#" * MAX_CONFIG_BYTES + "\n")
    assert main(["fairness", "check", str(path)]) == 1
    assert "larger than" in _one_line_error(capsys)


# -- 10. nothing accepted silently ------------------------------------------------------------


@pytest.mark.parametrize(("text", "key"), [
    ("fairnes = 1\n" + FAIRNESS, "fairnes"),
    ("[fairnes]\nquantum = '64 KiB'\n" + FAIRNESS, "fairnes"),
    (f"[net]\n{KEY}\nbeacon_intervall = '5s'\n" + FAIRNESS, "net.beacon_intervall"),
])
def test_unknown_top_level_keys_tables_and_net_keys_are_refused(tmp_path, capsys, text, key):
    path = tmp_path / "node.toml"
    path.write_text(text)
    assert main(["node", "run", "--config", str(path), "--duration", "1"]) == 1
    line = _one_line_error(capsys)
    assert f"node.toml: {key}: unknown" in line


def test_every_table_of_the_example_config_is_known():
    from meshcore.config import load_config

    load_config(REPO / "docs" / "examples" / "node.toml")  # raises on an unknown table


def test_fairness_check_of_a_file_without_fairness_is_not_valid(tmp_path, capsys):
    path = tmp_path / "empty.toml"
    path.write_text("")
    assert main(["fairness", "check", str(path)]) == 1  # was: "[fairness] is valid"
    assert "no [fairness] table" in _one_line_error(capsys)


# -- 8. finite numbers, each with a range ------------------------------------------------------


@pytest.mark.parametrize("weight", ["inf", "1e308", "nan", "2e6"])
def test_a_class_weight_must_be_finite_and_in_range(tmp_path, capsys, weight):
    path = tmp_path / "node.toml"
    path.write_text(FAIRNESS.replace("weight = 1", f"weight = {weight}"))
    assert main(["fairness", "check", str(path)]) == 1  # inf and 1e308 passed before
    assert "fairness.classes.member.weight" in _one_line_error(capsys)


def test_a_weight_that_overflows_the_round_is_refused(tmp_path, capsys):
    path = tmp_path / "node.toml"
    path.write_text("[fairness]\ndefault_class = 'member'\nquantum = '1 GiB'\n"
                    "[fairness.classes.member]\nweight = 1e6\n")
    assert main(["fairness", "check", str(path)]) == 1
    assert "over 2**48" in _one_line_error(capsys)


@pytest.mark.parametrize(("table", "line", "key"), [
    ("node", "status_interval = nan", "node.status_interval"),
    ("node", "status_interval = inf", "node.status_interval"),
    ("net", "beacon_interval = inf", "net.beacon_interval"),
    ("net", "beacon_interval = '99999999999999999999999 s'", "net.beacon_interval"),
    ("net", "beacon_jitter = nan", "net.beacon_jitter"),
    ("net", "pex_sync_interval = 1e308", "net.pex_sync_interval"),
    ("analytics", "price_per_gb = nan", "analytics.price_per_gb"),
])
def test_node_numbers_refuse_nan_and_infinities(tmp_path, capsys, table, line, key):
    from meshcore.node.daemon import NodeSettings

    tables = {"node": "", "net": KEY + "\n",
              "analytics": "salt = 'a long random per-community secret'\n"}
    tables[table] += line + "\n"
    text = "".join(f"[{name}]\n{body}" for name, body in tables.items())
    with pytest.raises(ConfigError) as info:
        NodeSettings.from_config(parse_config(text, "node.toml"))
    assert info.value.key == key


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_duration_option_refuses_nan_and_infinities(tmp_path, capsys, value):
    path = tmp_path / "node.toml"
    path.write_text(f"[net]\n{KEY}\nmulticast = false\n")
    with pytest.raises(SystemExit) as info:  # argparse: a usage error
        main(["node", "run", "--config", str(path), "--duration", value])
    assert info.value.code == 2
    assert "--duration" in capsys.readouterr().err


# -- 10. an unknown key in any table names file, table and key, with the closest one ----------

EVERY_TABLE = """\
[node]
id = "n1"
state_dir = "state"
[net]
community_key = "hex:00112233445566778899aabbccddeeff"
multicast = false
[net.babeld]
address = "33123"
[cache]
policy = "default"
[content]
state_dir = "state"
budget = "10 MiB"
[content.principals.ana]
role = "member"
[fairness]
default_class = "member"
[fairness.classes.member]
weight = 1
[fairness.congestion]
[analytics]
salt = "a long random per-community secret"
"""


def _with_line(table: str, line: str) -> str:
    head = f"[{table}]\n"
    assert head in EVERY_TABLE
    return EVERY_TABLE.replace(head, head + line + "\n", 1)


@pytest.mark.parametrize(("table", "typo", "meant", "command"), [
    ("node", "stat_dir", "state_dir", None),
    ("net", "beacon_intervall", "beacon_interval", None),
    ("net.babeld", "adress", "address", None),
    ("cache", "polcy", "policy", None),
    ("content", "bugdet", "budget", ["content", "list", "--config"]),
    ("content.principals.ana", "rol", "role", ["content", "list", "--config"]),
    ("fairness", "quantm", "quantum", ["fairness", "check"]),
    ("fairness.classes.member", "weigth", "weight", ["fairness", "check"]),
    ("fairness.congestion", "delay_targt", "delay_target", ["fairness", "check"]),
    ("analytics", "k_anonimity", "k_anonymity",
     ["analytics", "report", "--from", "0", "--to", "60", "--out", "-", "--config"]),
])
def test_an_unknown_key_in_every_table_is_refused_with_the_closest_key(
        tmp_path, capsys, table, typo, meant, command):
    path = tmp_path / "node.toml"
    path.write_text(_with_line(table, f"{typo} = 1"))
    expected = (f"node.toml: {table}.{typo}: unknown key {typo!r} in [{table}]; "
                f"did you mean {meant!r}?")
    # The daemon reads every table; the area's own command reads its table.
    assert main(["node", "run", "--config", str(path), "--duration", "0.2"]) == 1
    assert expected in _one_line_error(capsys)
    if command is not None:
        assert main([*command, str(path)]) == 1
        assert expected in _one_line_error(capsys)


def test_an_unknown_key_far_from_every_known_one_gets_no_guess(tmp_path, capsys):
    path = tmp_path / "node.toml"
    path.write_text(_with_line("cache", "zzzz = 1"))
    assert main(["node", "run", "--config", str(path), "--duration", "0.2"]) == 1
    line = _one_line_error(capsys)
    assert "cache.zzzz: unknown key 'zzzz' in [cache] (known keys: policy)" in line
    assert "did you mean" not in line


def test_a_misspelt_table_gets_the_closest_table(tmp_path, capsys):
    path = tmp_path / "node.toml"
    path.write_text(EVERY_TABLE.replace("[analytics]", "[analytic]"))
    assert main(["fairness", "check", str(path)]) == 1
    assert "unknown table [analytic]; did you mean [analytics]?" in _one_line_error(capsys)
