"""The peer table: states, expiry, tombstones, events and the set digest."""

from __future__ import annotations

import pytest

from meshcore.net._peers import (
    ALIVE,
    GONE,
    SUSPECT,
    Peer,
    PeerChanged,
    PeerJoined,
    PeerLeft,
    PeerTable,
    digest_of,
)


def direct(node_id: str, t: float = 0.0, interval: float = 5.0) -> Peer:
    return Peer(node_id, addr=("10.0.0.1", 1), last_heard=t, interval=interval, service_port=80)


def test_join_and_lookups():
    table = PeerTable()
    ev = table.add(direct("a"), now=1.0)
    assert isinstance(ev, PeerJoined) and ev.peer.node_id == "a"
    table.add(Peer("b", hops=2, via="a"), now=1.0)
    assert len(table) == 2 and "a" in table and table.get("zz") is None
    assert [p.node_id for p in table.direct()] == ["a"]
    assert [p.node_id for p in table.indirect()] == ["b"]
    assert table.by_addr(("10.0.0.1", 1)).node_id == "a"
    assert table.by_addr(("10.0.0.9", 1)) is None
    assert table.get("a").service_addr == ("10.0.0.1", 80)
    assert table.get("b").service_addr is None
    assert table.get("a").joined_at == 1.0
    with pytest.raises(ValueError, match="already"):
        table.add(direct("a"), now=2.0)


def test_event_carries_a_snapshot_not_the_live_record():
    table = PeerTable()
    ev = table.add(direct("a"), now=0.0)
    table.get("a").load = 9.0
    assert ev.peer.load == 0.0


def test_suspect_after_three_and_gone_after_six_missed_intervals():
    table = PeerTable()  # defaults 3 and 6
    table.add(direct("a", t=0.0, interval=5.0), now=0.0)
    table.add(Peer("b", hops=2, via="a"), now=0.0)
    assert table.expire(now=14.9) == []
    assert table.next_deadline() == pytest.approx(15.0)
    events = table.expire(now=15.0)
    assert events == [PeerChanged(table.get("a").snapshot(), ("state",))]
    assert table.get("a").state == SUSPECT
    assert table.next_deadline() == pytest.approx(30.0)
    assert table.expire(now=29.0) == []
    events = table.expire(now=30.0)
    assert PeerLeft("a", "timeout") in events
    # the indirect peer learned through "a" goes with it, without a tombstone
    assert PeerLeft("b", "via-gone") in events
    assert len(table) == 0
    assert table.tombstone("a", now=30.0) == (0, 0)
    assert table.tombstone("b", now=30.0) is None


def test_expiry_is_due_exactly_at_next_deadline_despite_float_rounding():
    # 49.04809108909063 - 19.048091089090637 == 29.999999999999993 < 3 * 10: a
    # table comparing the silence would announce a deadline at which it then
    # changes nothing, so an event loop re-armed at the same instant stalls.
    table = PeerTable()
    table.add(direct("a", t=19.048091089090637, interval=10.0), now=19.0)
    deadline = table.next_deadline()
    assert deadline - 19.048091089090637 < 30.0  # the rounding this test is about
    assert table.expire(now=deadline) != []
    assert table.get("a").state == SUSPECT
    deadline = table.next_deadline()
    assert PeerLeft("a", "timeout") in table.expire(now=deadline)


def test_tombstones_expire():
    table = PeerTable(tombstone_ttl=10.0)
    table.bury("x", (5, 1), now=0.0)
    assert table.tombstone("x", now=5.0) == (5, 1)
    table.bury("x", (4, 0), now=1.0)  # an older version never lowers a live tombstone
    assert table.tombstone("x", now=5.0) == (5, 1)
    assert table.next_deadline() == pytest.approx(11.0)
    assert table.tombstone("x", now=11.0) is None
    table.bury("y", (1, 1), now=0.0)
    table.expire(now=20.0)
    assert table.next_deadline() is None


def test_remove_unknown_buries_when_given_a_version():
    table = PeerTable()
    assert table.remove("ghost", "removed", now=0.0) is None
    assert table.tombstone("ghost", now=0.0) is None
    assert table.remove("ghost", "removed", now=0.0, version=(3, 0)) is None
    assert table.tombstone("ghost", now=0.0) == (3, 0)


def test_add_clears_tombstone():
    table = PeerTable()
    table.bury("a", (1, 0), now=0.0)
    table.add(direct("a"), now=1.0)
    assert table.tombstone("a", now=1.0) is None


def test_peer_properties():
    p = Peer("a", boot_epoch=3, incarnation=2)
    assert p.version == (3, 2) and p.direct and p.state == ALIVE
    assert not Peer("b", via="a").direct
    assert GONE == "gone"


def test_threshold_validation():
    with pytest.raises(ValueError, match="suspect_after"):
        PeerTable(suspect_after=6, gone_after=3)
    with pytest.raises(ValueError, match="tombstone_ttl"):
        PeerTable(tombstone_ttl=-1)


def test_digest_is_order_independent_and_version_sensitive():
    a = [("x", (1, 0)), ("y", (2, 3))]
    assert digest_of(a) == digest_of(list(reversed(a)))
    assert digest_of(a) != digest_of([("x", (1, 0)), ("y", (2, 4))])
    assert digest_of(a) != digest_of(a[:1])
    assert len(digest_of([])) == 8
