"""openNDS adapter: ``ndsctl json`` parsing, ``ndsctl auth`` argv, retries (no openNDS needed)."""

from __future__ import annotations

import calendar
import contextlib
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.config import parse_config
from meshcore.errors import DecodeError
from meshcore.fairness.ndsdriver import run_ndsctl, subprocess_runner
from meshcore.fairness.opennds import (
    EXIT_LOCKED,
    CallDone,
    CallFailed,
    NdsctlCall,
    PortalView,
    Retry,
    auth_argv,
    deauth_argv,
    kb_per_s,
    kbytes,
    parse_ndsctl_json,
    plan_client,
)
from meshcore.fairness.policy import Policy, Principal
from meshcore.fairness.settings import parse_fairness

DATA = Path(__file__).resolve().parent / "data" / "opennds"
T0 = float(calendar.timegm((2026, 3, 15, 12, 0, 0)))


def sample(name):
    return (DATA / name).read_text()


def test_parse_all_clients_sample():
    snap = parse_ndsctl_json(sample("json_all.txt"))
    assert sorted(snap.clients) == ["3c:22:fb:7a:10:5e", "a4:c3:f0:12:9e:01", "f0:9f:c2:aa:00:17"]
    assert snap.trusted == ("00:1a:2b:3c:4d:5e",)
    a = snap.clients["a4:c3:f0:12:9e:01"]
    assert (a.ip, a.token, a.state, a.custom) == (
        "192.168.1.140",
        "5a7e3c1d",
        "Authenticated",
        "user%3dalice",
    )
    assert (a.session_start, a.session_end) == (1732521600, 1732608000)
    assert (a.download_rate_limit, a.upload_rate_limit) == (4000, 1000)
    assert a.download_quota == 1953125 and a.downloaded_bytes == 182734 * 1024
    assert a.uploaded_bytes == 9120 * 1024 and a.gateway.startswith("meshcore%20Node")
    pre = snap.clients["3c:22:fb:7a:10:5e"]
    # "null" means unset; "none" means no custom string.
    assert pre.session_end is None and pre.download_rate_limit is None
    assert pre.download_quota is None and pre.custom is None and pre.state == "Preauthenticated"
    assert snap.clients["f0:9f:c2:aa:00:17"].client_type == "preemptive"


def test_optional_fields_may_be_missing():
    text = _mutate(["clients", MAC, "token"], KeyError)
    assert parse_ndsctl_json(text).clients[MAC].token is None


def test_parse_other_shapes():
    assert parse_ndsctl_json(sample("json_all_no_trusted.txt")).trusted == ()
    one = parse_ndsctl_json(sample("json_one.txt").encode())
    assert list(one.clients) == ["a4:c3:f0:12:9e:01"]
    assert parse_ndsctl_json(sample("json_one_unknown.txt")).clients == {}


def _mutate(path, value):
    data = json.loads(sample("json_all.txt"))
    obj = data
    for key in path[:-1]:
        obj = obj[key]
    if value is KeyError:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value
    return json.dumps(data)


MAC = "a4:c3:f0:12:9e:01"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (sample("json_truncated.txt"), "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        ("[1, 2]", "top level"),
        ("ndsctl thread is busy, please try later.\n", "not JSON"),
        (_mutate(["clients", MAC, "download_quota"], 1953125), "download_quota"),
        (_mutate(["clients", MAC, "session_start"], "yesterday"), "session_start"),
        (_mutate(["clients", MAC, "mac"], KeyError), "mac: missing"),
        (_mutate(["clients", MAC, "mac"], "not-a-mac"), "not a MAC"),
        (_mutate(["clients", MAC], "x"), "expected an object"),
        (_mutate(["clients"], []), "clients"),
        (_mutate(["client_list_length"], "7"), "client_list_length"),
        (_mutate(["trusted"], "00:1a:2b:3c:4d:5e"), "trusted"),
        (_mutate(["trusted"], ["garbage"]), "trusted"),
    ],
)
def test_malformed_output_raises_decode_error_naming_the_position(text, where):
    with pytest.raises(DecodeError, match=where):
        parse_ndsctl_json(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_decode_error(data):
    with contextlib.suppress(DecodeError):
        parse_ndsctl_json(data)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(sample("json_all.txt").rstrip()) - 1))
def test_every_truncation_is_rejected(cut):
    with pytest.raises(DecodeError):
        parse_ndsctl_json(sample("json_all.txt")[:cut])


def test_portal_view_maps_mac_ip_token_and_ignores_malformed_output():
    view = PortalView(
        user_of=lambda c: c.custom.split("%3d")[1] if c.custom else None,
        household_of=lambda mac: "h7" if mac.endswith("01") else None,
    )
    assert view.update(sample("json_all.txt")) is None
    for key in ("A4-C3-F0-12-9E-01", "192.168.1.140", "5a7e3c1d"):
        assert view.find(key).mac == MAC
    ident = view.identity("192.168.1.140")
    assert ident == Principal(
        device=MAC, user="alice", household="h7", portal_state="Authenticated"
    )
    assert view.identity("10.0.0.9") is None
    plain = PortalView()
    plain.update(sample("json_all.txt"))
    assert plain.identity("3c:22:fb:7a:10:5e").user is None
    # Malformed output is reported and not applied: the last good view stays.
    err = view.update(sample("json_truncated.txt"))
    assert err is not None and "not JSON" in err
    assert view.errors == 1 and view.last_error == err
    assert view.find(MAC) is not None


def test_units_follow_opennds():
    # 4 Mbit/s = 500000 B/s -> 500000 * 8 / 1024 = 3906 kb/s (openNDS: kb/s * 1024 / 8 B/s)
    assert kb_per_s(500000) == 3906
    assert kb_per_s(None) == 0 and kb_per_s(0) == 0
    assert kb_per_s(10) == 1  # never 0: that would mean unlimited
    assert kbytes(2 * 10**9) == 1953125 and kbytes(None) == 0 and kbytes(1) == 1
    with pytest.raises(ValueError, match="rate"):
        kb_per_s(-5)
    with pytest.raises(ValueError, match="nbytes"):
        kbytes(0)


def test_auth_argv_order_and_units():
    argv = auth_argv(
        MAC,
        session_minutes=1440,
        rate_up=125000,
        rate_down=500000,
        quota_up=10**9,
        quota_down=2 * 10**9,
        custom="meshcore",
    )
    # ndsctl auth mac sessiontimeout(min) uploadrate downloadrate uploadquota downloadquota custom
    assert argv == ["ndsctl", "auth", MAC, "1440", "976", "3906", "976562", "1953125", "meshcore"]
    assert auth_argv("10.0.0.2") == ["ndsctl", "auth", "10.0.0.2", "0", "0", "0", "0", "0"]
    assert deauth_argv(MAC, ndsctl="/usr/bin/ndsctl") == ["/usr/bin/ndsctl", "deauth", MAC]
    with pytest.raises(ValueError, match="comma"):
        auth_argv(MAC, custom="a,b")
    with pytest.raises(ValueError, match="client"):
        auth_argv("")
    with pytest.raises(ValueError, match="session_minutes"):
        auth_argv(MAC, session_minutes=-1)
    with pytest.raises(TypeError, match="session_minutes"):
        auth_argv(MAC, session_minutes=1.5)


POLICY = """
[fairness]
default_class = "member"
[fairness.classes.member]
weight = 2
[fairness.classes.guest]
rate_up = "1 Mbit/s"
rate_down = "4 Mbit/s"
daily_quota = "2 GB"
monthly_quota = "10 GB"
[[fairness.rules]]
portal_state = "Preauthenticated"
class = "guest"
"""


def test_plan_client_applies_class_caps_and_remaining_quota():
    pol = Policy(parse_fairness(parse_config(POLICY, "node.toml")))
    view = PortalView()
    view.update(sample("json_all.txt"))
    guest = view.identity("3c:22:fb:7a:10:5e")
    used = {"day": 5 * 10**8, "month": 3 * 10**9}
    argv = plan_client(pol, guest, "3c:22:fb:7a:10:5e", usage=lambda p, per: used[per], now=T0)
    # 12 h to UTC midnight = 720 min; 1.5 GB left today (the tighter period).
    assert argv == [
        "ndsctl",
        "auth",
        "3c:22:fb:7a:10:5e",
        "720",
        "976",
        "3906",
        str(15 * 10**8 // 1024),
        str(15 * 10**8 // 1024),
    ]
    # Monthly left is tighter: the session runs to the month's end.
    used = {"day": 0, "month": 95 * 10**8}
    argv = plan_client(pol, guest, "x", usage=lambda p, per: used[per], now=T0)
    assert argv[3] == str((calendar.timegm((2026, 4, 1, 0, 0, 0)) - int(T0)) // 60)
    assert argv[6] == str(5 * 10**8 // 1024)
    # Used up: deauth instead of a 0 (= unlimited) quota.
    used = {"day": 2 * 10**9, "month": 0}
    assert plan_client(pol, guest, "x", usage=lambda p, per: used[per], now=T0)[1] == "deauth"
    # A member without caps or quotas: unlimited everything.
    member = Principal(device=MAC, portal_state="Authenticated")
    assert plan_client(pol, member, MAC, usage=lambda p, per: 0, now=T0)[3:] == ["0"] * 5


def test_retry_on_lock_held_with_backoff():
    call = NdsctlCall(["ndsctl", "json"], attempts=4, base=0.1, cap=0.25)
    busy = sample("busy_stdout.txt")
    assert call.on_result(EXIT_LOCKED, busy, "", now=10.0) == Retry(10.1, 2)
    assert call.on_result(EXIT_LOCKED, busy, "", now=10.1) == Retry(pytest.approx(10.3), 3)
    assert call.on_result(EXIT_LOCKED, busy, "", now=10.3) == Retry(pytest.approx(10.55), 4)
    step = call.on_result(EXIT_LOCKED, busy, "", now=10.6)
    assert isinstance(step, CallFailed) and "4 attempts" in step.reason
    jittered = NdsctlCall(["ndsctl"], rng=random.Random(3))
    step = jittered.on_result(EXIT_LOCKED, busy, "", now=0.0)
    assert 0.05 <= step.at <= 0.1
    with pytest.raises(ValueError, match="attempts"):
        NdsctlCall(["x"], attempts=0)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (1, "refused"),
        (2, "abnormal"),
        (3, "socket"),
        (5, "lock file"),
        (6, "lock file"),
        (99, "unknown"),
    ],
)
def test_other_exit_codes_fail_at_once(code, text):
    step = NdsctlCall(["ndsctl", "auth", MAC]).on_result(
        code, "", "Failed to authenticate client", now=0.0
    )
    assert isinstance(step, CallFailed) and step.exit_code == code and text in step.reason
    assert NdsctlCall(["x"]).on_result(code, "", "", now=0).reason.startswith(f"exit {code}")


def test_blocking_driver_retries_with_a_fake_runner():
    calls, sleeps = [], []
    results = iter([(4, "busy", ""), (4, "busy", ""), (0, sample("json_one.txt"), "")])

    def runner(argv):
        calls.append(list(argv))
        return next(results)

    clock = iter(range(100))
    step = run_ndsctl(
        NdsctlCall(["ndsctl", "json", MAC], base=0.5),
        runner,
        sleep=sleeps.append,
        clock=lambda: float(next(clock)),
    )
    assert isinstance(step, CallDone) and parse_ndsctl_json(step.stdout).clients
    assert len(calls) == 3 and sleeps == [0.0, 0.0]  # the fake clock had already moved on
    fail = run_ndsctl(NdsctlCall(["x"]), lambda argv: (3, "", "no socket"), sleep=sleeps.append)
    assert isinstance(fail, CallFailed) and "no socket" in fail.reason


def test_subprocess_runner_never_raises(tmp_path):
    code, _, err = subprocess_runner([str(tmp_path / "no-ndsctl")])
    assert code == 127 and "not found" in err
    code, out, _ = subprocess_runner(["sh", "-c", "echo hi; exit 4"])
    assert (code, out) == (4, "hi\n")
    code, _, err = subprocess_runner(["sleep", "5"], timeout=0.05)
    assert code == 124 and "timed out" in err
