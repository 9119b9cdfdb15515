"""The fairness scheduler: host isolation, weights, priorities, caps, quotas (scheduler.py).

Runs on whichever kernel backend is loaded; CI runs the file twice (compiled
and MESHCORE_PURE=1).
"""

from __future__ import annotations

import calendar
from collections import Counter

import pytest

from meshcore.config import parse_config
from meshcore.fairness.accounting import DOWN, Account, UsageLedger
from meshcore.fairness.policy import Policy, Principal
from meshcore.fairness.scheduler import FairScheduler, Refused, Transfer
from meshcore.fairness.settings import parse_fairness
from meshcore.kernels import BACKGROUND, INTERACTIVE, ON_DEMAND

CHUNK = 16384
T0 = float(calendar.timegm((2026, 3, 15, 12, 0, 0)))
BASE = f"""
[fairness]
default_class = "member"
quantum = "64 KiB"
chunk = "{CHUNK} B"
[fairness.classes.member]
weight = 2
[fairness.classes.guest]
weight = 1
[[fairness.rules]]
household = "g1"
class = "guest"
[[fairness.rules]]
household = "g2"
class = "guest"
"""


def make(extra="", **kw):
    pol = Policy(parse_fairness(parse_config(BASE + extra, "node.toml")))
    return FairScheduler(pol, now=kw.pop("now", T0), **kw)


def H(name):
    return Principal(household=name)


def drain(s, n, now=T0, step=0.0):
    by_host = Counter()
    by_tid = Counter()
    for i in range(n):
        got = s.next_send(now=now + i * step)
        if got is None:
            break
        t, size = got
        by_host[t.identity.household] += size
        by_tid[t.transfer_id] += size
    return by_host, by_tid


BIG = 10**12


def test_per_host_share_is_independent_of_its_flow_count():
    s = make()
    tid = 0
    flows = {"a": 1, "b": 5, "c": 12}
    for host, k in flows.items():
        for _ in range(k):
            tid += 1
            assert s.submit(Transfer(tid, BIG, H(host)), now=T0).accepted
    # Kernel weights of each host's transfers sum to its class weight (2), split equally.
    for host in flows:
        assert s.host_weight(H(host)) == pytest.approx(2.0)
    by_host, by_tid = drain(s, 6000)
    total = sum(by_host.values())
    # DRR bound: a host's bytes are within about one host quantum (+ a slice) of 1/3.
    for host in flows:
        assert abs(by_host[host] - total / 3) <= 65536 + CHUNK
    # Within host b, its 5 transfers split b's share equally.
    b_flows = [by_tid[t] for t in range(2, 7)]
    assert max(b_flows) - min(b_flows) <= 2 * CHUNK


def test_host_share_survives_arrivals_and_departures():
    s = make()
    s.submit(Transfer(1, BIG, H("a")), now=T0)
    for t in range(2, 6):
        s.submit(Transfer(t, BIG, H("b")), now=T0)
    drain(s, 500)
    # b's transfers leave one by one; a new one arrives for a.
    for t in (2, 3, 4):
        assert s.complete(t, now=T0) > 0
    s.submit(Transfer(9, BIG, H("a")), now=T0)
    assert s.host_weight(H("a")) == pytest.approx(2.0)
    assert s.host_weight(H("b")) == pytest.approx(2.0)
    by_host, _ = drain(s, 3000)
    assert by_host["a"] == pytest.approx(by_host["b"], rel=0.03)


def test_class_weights_member_gets_twice_a_guest():
    s = make()
    s.submit(Transfer(1, BIG, H("m1")), now=T0)
    s.submit(Transfer(2, BIG, H("g1")), now=T0)
    s.submit(Transfer(3, BIG, H("g1")), now=T0)  # more flows do not help a guest
    s.submit(Transfer(4, BIG, H("g2")), now=T0)
    by_host, _ = drain(s, 4000)
    assert by_host["m1"] / by_host["g1"] == pytest.approx(2.0, rel=0.03)
    assert by_host["g1"] == pytest.approx(by_host["g2"], rel=0.03)


def test_no_exemption_for_local_peers():
    s = make()
    s.submit(Transfer(1, BIG, H("near"), local=True), now=T0)
    s.submit(Transfer(2, BIG, H("far"), local=False), now=T0)
    s.submit(Transfer(3, BIG, H("mixed"), local=True), now=T0)
    s.submit(Transfer(4, BIG, H("mixed"), local=False), now=T0)
    by_host, by_tid = drain(s, 3000)
    assert by_host["near"] == pytest.approx(by_host["far"], rel=0.02)
    assert by_host["near"] == pytest.approx(by_host["mixed"], rel=0.02)
    assert by_tid[3] == pytest.approx(by_tid[4], rel=0.02)


def test_strict_priority_classes():
    s = make()
    s.submit(Transfer(1, 4 * CHUNK, H("a"), priority=BACKGROUND), now=T0)
    s.submit(Transfer(2, 2 * CHUNK, H("b"), priority=ON_DEMAND), now=T0)
    s.submit(Transfer(3, CHUNK, H("c"), priority=INTERACTIVE), now=T0)
    order = []
    while (got := s.next_send(now=T0)) is not None:
        order.append(got[0].transfer_id)
    assert order == [3, 2, 2, 1, 1, 1, 1]
    assert len(s) == 0 and s.next_send(now=T0) is None


def test_slices_and_completion():
    s = make()
    d = s.submit(Transfer(1, 2 * CHUNK + 100, H("a")), now=T0)
    assert d.accepted and d.priority == ON_DEMAND and d.class_name == "member"
    assert s.pending_bytes() == 2 * CHUNK + 100 and s.pending_bytes(BACKGROUND) == 0
    sizes = [s.next_send(now=T0)[1] for _ in range(3)]
    assert sizes == [CHUNK, CHUNK, 100]
    assert len(s) == 0
    assert s.complete(1, now=T0) == 0  # already gone by itself
    # Zero-byte transfers are admitted and finish at once.
    assert s.submit(Transfer(2, 0, H("a")), now=T0).accepted and len(s) == 0


def test_many_flows_get_small_slices_not_below_min_chunk():
    s = make(min_chunk=4096)
    for t in range(40):
        s.submit(Transfer(t, BIG, H("a")), now=T0)
    drain(s, 2000)  # the first two slices of each were cut before the others arrived
    sizes = {s.next_send(now=T0)[1] for _ in range(100)}
    assert sizes == {4096}  # 2 * 64 KiB / 40 = 3276 < min_chunk


def test_sojourn_time_is_time_waiting_in_the_scheduler():
    s = make()
    s.submit(Transfer(1, 3 * CHUNK, H("a")), now=T0)
    s.next_send(now=T0 + 0.5)
    assert s.last_sojourn == pytest.approx(0.5)
    s.next_send(now=T0 + 0.75)  # second slice entered at submit too
    assert s.last_sojourn == pytest.approx(0.75)
    s.next_send(now=T0 + 1.0)  # third entered when the first left (T0 + 0.5)
    assert s.last_sojourn == pytest.approx(0.5)


def test_host_rate_cap_parks_and_resumes():
    extra = '[fairness.classes.capped]\nweight = 1\nrate_down = "1 Mbit/s"\nburst = "32 KiB"\n'
    extra += '[[fairness.rules]]\nhousehold = "slow"\nclass = "capped"\n'
    s = make(extra)
    s.submit(Transfer(1, BIG, H("slow")), now=T0)
    s.submit(Transfer(2, 10 * CHUNK, H("slow")), now=T0)
    # 32 KiB burst: two slices go, the next one puts the bucket in debt and parks the host.
    sent = [s.next_send(now=T0) for _ in range(3)]
    assert [x[1] for x in sent if x] == [CHUNK, CHUNK, CHUNK]
    assert s.next_send(now=T0) is None
    wake = s.get_timer()
    assert wake == pytest.approx(T0 + CHUNK / 125000.0)
    assert s.next_send(now=wake - 0.001) is None
    assert s.next_send(now=wake) is not None
    # Over a long run the host averages its cap.
    t, total = wake, 0
    while t < wake + 20:
        got = s.next_send(now=t)
        if got is None:
            t = s.get_timer()
            continue
        total += got[1]
    assert total / 20 == pytest.approx(125000, rel=0.05)
    # A parked host's transfers can be cancelled, and new ones join after the wait.
    s.next_send(now=t)
    s.submit(Transfer(3, CHUNK, H("slow")), now=t)
    assert s.complete(1, now=t) > 0
    assert s.pending_bytes() > 0


def test_class_rate_caps_background_and_skips_it():
    s = make()
    s.set_class_rate(BACKGROUND, 10 * CHUNK, now=T0)
    assert s.class_rate(BACKGROUND) == 10 * CHUNK
    s.submit(Transfer(1, BIG, H("a"), priority=BACKGROUND), now=T0)
    # Burst of 2 slices, the third goes into debt, then background waits.
    assert [s.next_send(now=T0)[1] for _ in range(3)] == [CHUNK] * 3
    assert s.next_send(now=T0) is None
    wake = s.get_timer()
    assert wake == pytest.approx(T0 + 0.1)
    # On-demand is not held up by background's cap.
    s.submit(Transfer(2, CHUNK, H("b")), now=T0)
    assert s.next_send(now=T0)[0].transfer_id == 2
    assert s.next_send(now=wake) is not None
    s.set_class_rate(BACKGROUND, 20 * CHUNK, now=wake)
    assert s.class_rate(BACKGROUND) == 20 * CHUNK
    s.set_class_rate(BACKGROUND, None, now=wake)
    # Uncapped, nothing waits on a rate: the only deadline left is the
    # accounting flush that is due while transfers are active.
    assert s.class_rate(BACKGROUND) is None and s.get_timer() == T0 + s.flush_interval
    assert all(s.next_send(now=wake) for _ in range(10))
    with pytest.raises(ValueError, match="priority"):
        s.set_class_rate(7, 1.0, now=T0)


QUOTAS = """
[fairness.classes.metered]
weight = 1
daily_soft_quota = "100 kB"
daily_quota = "200 kB"
[[fairness.rules]]
household = "meter"
class = "metered"
"""


def test_quota_demotes_then_refuses_mid_transfer_and_at_submit():
    s = make(QUOTAS, flush_interval=1.0)
    d = s.submit(Transfer(1, BIG, H("meter")), now=T0)
    assert d.action == "allow" and s.priority_of(1) == ON_DEMAND
    drain(s, 8)  # 8 slices = 131072 bytes, above the 100 kB soft quota
    assert s.flush(now=T0 + 0.5) == []
    assert s.priority_of(1) == BACKGROUND  # demoted mid-transfer
    assert s.submit(Transfer(2, BIG, H("meter")), now=T0 + 0.5).priority == BACKGROUND
    drain(s, 6, now=T0 + 0.6)  # now above 200 kB
    effects = s.flush(now=T0 + 0.7)
    assert [type(e) for e in effects] == [Refused, Refused]
    assert {e.transfer_id for e in effects} == {1, 2}
    assert effects[0].reset_at == calendar.timegm((2026, 3, 16, 0, 0, 0))
    assert s.drain_effects() == effects and s.drain_effects() == []
    d = s.submit(Transfer(3, CHUNK, H("meter")), now=T0 + 0.8)
    assert not d.accepted and d.priority is None and "daily quota" in d.reason
    # Tomorrow the quota has reset.
    assert s.submit(Transfer(4, CHUNK, H("meter")), now=T0 + 86400).accepted


def test_accounting_charges_every_principal_down():
    led = UsageLedger()
    s = make(ledger=led, flush_interval=5.0)
    ident = Principal(device="aa:bb:cc:dd:ee:01", user="ann", household="h")
    s.submit(Transfer(1, 3 * CHUNK, ident), now=T0)
    s.submit(Transfer(2, BIG, ident), now=T0)
    drain(s, 4)
    s.complete(2, now=T0 + 1)
    for p in ident.accounts():
        assert led.period_usage(p, "day", now=T0 + 1, direction=DOWN) == 4 * CHUNK
    # The periodic flush charges active transfers without waiting for their end.
    s.submit(Transfer(3, BIG, ident), now=T0 + 1)
    s.next_send(now=T0 + 1)
    s.next_send(now=T0 + 6)  # past the flush deadline
    assert led.period_usage(Account("user", "ann"), "day", now=T0 + 6) >= 5 * CHUNK


def test_mesh_wide_usage_function_is_used_for_quotas():
    seen = []

    def usage(principal, period):
        seen.append((principal, period))
        return 10**9

    pol = Policy(parse_fairness(parse_config(BASE + QUOTAS, "n.toml")))
    s = FairScheduler(pol, usage=usage, now=T0)
    assert not s.submit(Transfer(1, 1, H("meter")), now=T0).accepted
    assert seen[0] == (Account("household", "meter"), "day")


def test_bad_arguments():
    s = make()
    with pytest.raises(TypeError, match="transfer"):
        s.submit("x", now=T0)
    with pytest.raises(ValueError, match="transfer_id"):
        s.submit(Transfer(2**63, 1, H("a")), now=T0)
    with pytest.raises(ValueError, match="transfer_id"):
        s.submit(Transfer(True, 1, H("a")), now=T0)
    with pytest.raises(ValueError, match="size"):
        s.submit(Transfer(1, -1, H("a")), now=T0)
    with pytest.raises(ValueError, match="priority"):
        s.submit(Transfer(1, 1, H("a"), priority=5), now=T0)
    s.submit(Transfer(1, BIG, H("a")), now=T0)
    with pytest.raises(ValueError, match="already active"):
        s.submit(Transfer(1, 1, H("a")), now=T0)
    with pytest.raises(ValueError, match="not active"):
        s.sent_bytes(99)
    with pytest.raises(ValueError, match="not active"):
        s.priority_of(99)
    with pytest.raises(ValueError, match="flush_interval"):
        make(flush_interval=0)
    s.next_send(now=T0)
    assert s.sent_bytes(1) == CHUNK
    assert s.host_weight(H("nobody")) == 0.0
    assert s.complete(12345, now=T0) == 0
