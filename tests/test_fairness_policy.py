"""Fairness config validation, precedence and quota admission (settings.py, policy.py)."""

from __future__ import annotations

import calendar

import pytest

from meshcore.config import load_config, parse_config
from meshcore.errors import ConfigError
from meshcore.fairness.accounting import Account, period_bounds
from meshcore.fairness.congestion import CongestionParams
from meshcore.fairness.policy import (
    ALLOW,
    DEMOTE,
    REFUSE,
    Policy,
    Principal,
)
from meshcore.fairness.settings import normalize_mac, parse_fairness

GOOD = """
[fairness]
default_class = "member"
quantum = "32 KiB"
chunk = "16 KiB"

[fairness.classes.member]
weight = 2
rate_down = "8 Mbit/s"
daily_quota = "2 GB"
daily_soft_quota = "1.5 GB"

[fairness.classes.guest]
weight = 1
rate_up = "1 Mbit/s"
rate_down = "4 Mbit/s"
burst = "128 KiB"
monthly_quota = "10 GB"
monthly_soft_quota = "8 GB"

[fairness.classes.infra]
weight = 4
rate_down = "0 bit/s"

[fairness.congestion]
rtt_target = "150 ms"
decrease = 0.7
min_rate = "64 kbit/s"

[[fairness.rules]]
portal_state = "Preauthenticated"
class = "guest"

[[fairness.rules]]
household = "h-guests"
class = "guest"

[[fairness.rules]]
user = "alice"
class = "member"

[[fairness.rules]]
device = "AA-BB-CC-DD-EE-01"
class = "infra"
"""

T0 = float(calendar.timegm((2026, 3, 15, 12, 0, 0)))


def settings_of(text, path="node.toml"):
    return parse_fairness(parse_config(text, path))


def test_good_config_parses_units():
    s = settings_of(GOOD)
    assert s.default_class == "member"
    assert (s.quantum, s.chunk) == (32768, 16384)
    m, g, i = s.classes["member"], s.classes["guest"], s.classes["infra"]
    assert m.weight == 2.0 and m.rate_down == 1e6 and m.rate_up is None
    assert m.daily_quota == 2 * 10**9 and m.daily_soft_quota == 15 * 10**8
    assert g.rate_up == 125000 and g.burst == 131072 and g.monthly_quota == 10**10
    assert i.rate_down is None  # "0 bit/s" means no cap
    assert s.congestion == {"rtt_target": 0.15, "decrease": 0.7, "min_rate": 8000.0}
    params = CongestionParams.from_settings(s.congestion)
    assert params.rtt_target == 0.15 and params.decrease == 0.7
    assert [r.where for r in s.rules][-1] == "fairness.rules[3]"
    assert [r.specificity for r in s.rules] == [1, 2, 3, 4]
    assert s.rules[-1].value == "aa:bb:cc:dd:ee:01"


def test_load_from_file(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(GOOD)
    assert parse_fairness(load_config(path)).path == str(path)


def test_missing_section_gives_one_default_class():
    s = settings_of("")
    assert list(s.classes) == ["default"] and s.default_class == "default"
    assert Policy(s).resolve(Principal(user="x")).spec.name == "default"


def _err(text, path="node.toml"):
    with pytest.raises(ConfigError) as info:
        settings_of(text, path)
    return info.value


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[fairness.classes.a]\nrate_down = "-2 Mbit/s"', "fairness.classes.a.rate_down", ">= 0"),
        ('[fairness.classes.a]\ndaily_quota = "2"', "fairness.classes.a.daily_quota", "unit"),
        ("[fairness.classes.a]\ndaily_quota = 2000", "fairness.classes.a.daily_quota", "unit"),
        ('[fairness.classes.a]\nrate_up = "2 Mb/s"', "fairness.classes.a.rate_up", "ambiguous"),
        ("[fairness.classes.a]\nweight = 0", "fairness.classes.a.weight", "> 0"),
        ("[fairness.classes.a]\nweigth = 2", "fairness.classes.a.weigth", "unknown key"),
        (
            '[fairness.classes.a]\ndaily_quota = "1 GB"\ndaily_soft_quota = "2 GB"',
            "fairness.classes.a.daily_soft_quota",
            "above the hard",
        ),
        (
            '[fairness]\ndefault_class = "vip"\n[fairness.classes.a]',
            "fairness.default_class",
            "unknown class 'vip'",
        ),
        (
            '[fairness.classes.a]\n[[fairness.rules]]\nuser = "u"\nclass = "vip"',
            "fairness.rules[0].class",
            "unknown class 'vip'",
        ),
        (
            '[fairness.classes.a]\n[[fairness.rules]]\nuser = "u"\nhousehold = "h"\nclass = "a"',
            "fairness.rules[0].class",
            "exactly one",
        ),
        (
            '[fairness.classes.a]\n[[fairness.rules]]\nclass = "a"',
            "fairness.rules[0].class",
            "exactly one",
        ),
        (
            '[fairness.classes.a]\n[[fairness.rules]]\ndevice = "nope"\nclass = "a"',
            "fairness.rules[0].device",
            "MAC",
        ),
        (
            '[fairness.classes.a]\n[[fairness.rules]]\nuser = ""\nclass = "a"',
            "fairness.rules[0].user",
            "non-empty",
        ),
        ('[fairness]\nquantum = "1 PB"', "fairness.quantum", "unit"),
        ('[fairness]\nquantum = "1000 TB"', "fairness.quantum", "2**48"),
        ("[fairness]\nclasses = 3", "fairness.classes", "table"),
        ("[fairness.classes]\nx = 3", "fairness.classes.x", "table"),
        ("[fairness]\nmystery = 1", "fairness.mystery", "unknown key"),
        ("[fairness.congestion]\ndecrease = 1.5", "fairness.congestion.decrease", "<= 1"),
        ('[fairness.congestion]\nrtt_target = "-1 s"', "fairness.congestion.rtt_target", ">= 0"),
        ("[fairness.congestion]\nfoo = 1", "fairness.congestion.foo", "unknown key"),
    ],
)
def test_bad_config_names_file_key_and_problem(text, key, problem):
    err = _err(text, "/etc/meshcore/node.toml")
    assert err.path == "/etc/meshcore/node.toml"
    assert err.key == key
    assert problem in err.problem
    assert str(err).startswith(f"/etc/meshcore/node.toml: {key}: ")


def test_conflicting_rules_same_specificity_name_both():
    text = (
        "[fairness.classes.a]\n[fairness.classes.b]\n"
        '[[fairness.rules]]\ndevice = "aa:bb:cc:dd:ee:ff"\nclass = "a"\n'
        '[[fairness.rules]]\nuser = "x"\nclass = "b"\n'
        '[[fairness.rules]]\ndevice = "AA:BB:CC:DD:EE:FF"\nclass = "b"\n'
    )
    err = _err(text)
    assert err.key == "fairness.rules[2]"
    assert "fairness.rules[0]" in err.problem and "'a'" in err.problem and "'b'" in err.problem


def test_duplicate_rules_that_agree_are_fine():
    text = (
        "[fairness.classes.a]\n"
        '[[fairness.rules]]\nuser = "x"\nclass = "a"\n'
        '[[fairness.rules]]\nuser = "x"\nclass = "a"\n'
    )
    assert len(settings_of(text).rules) == 2


def test_precedence_most_specific_wins():
    pol = Policy(settings_of(GOOD))
    # device rule (infra) beats user (member) beats household (guest) beats portal (guest)
    ident = Principal(
        device="aa:bb:cc:dd:ee:01",
        user="alice",
        household="h-guests",
        portal_state="Preauthenticated",
    )
    res = pol.resolve(ident)
    assert (res.spec.name, res.rule) == ("infra", "fairness.rules[3]")
    assert res.charged == Account("device", "aa:bb:cc:dd:ee:01")
    res = pol.resolve(
        Principal(device="aa:bb:cc:dd:ee:02", user="alice", household="h-guests")
    )
    assert (res.spec.name, res.charged) == ("member", Account("user", "alice"))
    res = pol.resolve(
        Principal(user="bob", household="h-guests", portal_state="Authenticated")
    )
    assert (res.spec.name, res.charged) == ("guest", Account("household", "h-guests"))
    res = pol.resolve(Principal(device="aa:bb:cc:dd:ee:03", portal_state="Preauthenticated"))
    assert res.spec.name == "guest" and res.charged == Account("device", "aa:bb:cc:dd:ee:03")
    res = pol.resolve(Principal(node="node-7"))
    assert (res.spec.name, res.rule) == ("member", "fairness.default_class")
    assert res.charged == Account("node", "node-7")
    assert pol.resolve(Principal(node="node-7")) is res  # memoised


def test_identity_helpers():
    ident = Principal(device="AA:BB:CC:DD:EE:01", user="u", household="h", node="n")
    assert ident.device == "aa:bb:cc:dd:ee:01"
    assert ident.host() == Account("household", "h")
    assert Principal(user="u").host() == Account("user", "u")
    assert Principal(device="aa:bb:cc:dd:ee:01").host().kind == "device"
    assert len(ident.accounts()) == 4
    with pytest.raises(ValueError, match="identity"):
        Principal().host()
    with pytest.raises(ValueError, match="mac"):
        Principal(device="zz")
    assert normalize_mac("aabbccddeeff") == "aa:bb:cc:dd:ee:ff"


def test_resolution_cache_is_bounded():
    pol = Policy(settings_of(GOOD))
    pol.cache_limit = 10
    for i in range(25):
        assert pol.resolve(Principal(user=f"u{i}")).spec.name == "member"
    assert len(pol._cache) <= 10


def _usage(table):
    return lambda principal, period: table.get((principal.name, period), 0)


def test_admission_soft_then_hard_daily():
    pol = Policy(settings_of(GOOD))
    alice = Principal(user="alice")
    assert pol.admit(alice, usage=_usage({}), wall=T0).action == ALLOW
    adm = pol.admit(alice, usage=_usage({("alice", "day"): 15 * 10**8}), wall=T0)
    assert adm.action == DEMOTE and "soft" in adm.reason and "user:alice" in adm.reason
    assert adm.reset_at == period_bounds("day", T0)[1]
    adm = pol.admit(alice, usage=_usage({("alice", "day"): 2 * 10**9}), wall=T0)
    assert adm.action == REFUSE
    assert "daily quota of 2000000000 bytes used up by user:alice" in adm.reason
    assert adm.reset_at == calendar.timegm((2026, 3, 16, 0, 0, 0))


def test_admission_monthly_and_refusal_beats_demotion():
    text = GOOD.replace('monthly_quota = "10 GB"', 'monthly_quota = "10 GB"\ndaily_quota = "1 GB"')
    pol = Policy(settings_of(text))
    guest = Principal(household="h-guests")
    adm = pol.admit(guest, usage=_usage({("h-guests", "month"): 9 * 10**9}), wall=T0)
    assert adm.action == DEMOTE and adm.reset_at == calendar.timegm((2026, 4, 1, 0, 0, 0))
    # Day over its hard quota while month is only soft: refused (day reset).
    usage = _usage({("h-guests", "month"): 9 * 10**9, ("h-guests", "day"): 10**9})
    adm = pol.admit(guest, usage=usage, wall=T0)
    assert adm.action == REFUSE and adm.reset_at == period_bounds("day", T0)[1]
    # Infra has no quotas at all.
    infra = Principal(device="aa:bb:cc:dd:ee:01")
    assert pol.admit(infra, usage=_usage({}), wall=T0).action == ALLOW


def test_cli_check(tmp_path, capsys):
    from meshcore.cli import main

    good = tmp_path / "node.toml"
    good.write_text(GOOD)
    assert main(["fairness", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "[fairness] is valid" in out and "class guest: weight 1" in out
    # Most specific rule first.
    assert out.index("device = 'aa:bb:cc:dd:ee:01'") < out.index("portal_state")
    bad = tmp_path / "bad.toml"
    bad.write_text('[fairness.classes.a]\nrate_down = "-1 Mbit/s"\n')
    assert main(["fairness", "check", str(bad)]) == 1
    assert f"meshcore: {bad}: fairness.classes.a.rate_down:" in capsys.readouterr().err
    assert main(["fairness"]) == 2
