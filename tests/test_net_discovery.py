"""Discovery cores wired together in memory (fake clock, fake segments; no sockets)."""

from __future__ import annotations

import heapq
import itertools
import random

import pytest

from meshcore.config import parse_config
from meshcore.errors import ConfigError
from meshcore.net._beacon import (
    FLAG_PROBE,
    MAX_DATAGRAM,
    OP_ADD,
    OP_REMOVE,
    Beacon,
    Echo,
    PexEntry,
    PexSection,
    decode_beacon,
    encode_beacon,
)
from meshcore.net._peers import SUSPECT
from meshcore.net.discovery import (
    DEFAULT_GROUP,
    Discovery,
    DiscoverySettings,
    PeerChanged,
    PeerJoined,
    PeerLeft,
    SendMulticast,
    SendUnicast,
    parse_community_key,
)

# -- a tiny in-memory network: fake clock, segments, unicast ------------------------------
# Not the simulator (meshcore/sim belongs to SIM): just enough to wire several
# cores together. Each node has one interface "lan" on one segment; multicast
# reaches every other node of that segment, unicast reaches any address after
# ``latency``; ``loss`` drops datagrams (seeded); ``cut`` blocks node pairs,
# ``blocked`` one direction ``(src, dst)`` only.

KEY = bytes(range(32))
PORT = 47474


class FakeNet:
    def __init__(self, *, latency: float = 0.002, loss: float = 0.0, seed: int = 1) -> None:
        self.now = 0.0
        self.latency = latency
        self.loss = loss
        self.rng = random.Random(seed)
        self.queue: list = []
        self.seq = itertools.count()
        self.nodes: dict[str, Discovery] = {}
        self.addr: dict[str, tuple[str, int]] = {}
        self.by_addr: dict[tuple[str, int], str] = {}
        self.segment: dict[str, str] = {}
        self.down: set[str] = set()
        self.cut: set[frozenset[str]] = set()
        self.blocked: set[tuple[str, str]] = set()  # one-way cuts: (src, dst)
        self.events: list[tuple[float, str, object]] = []
        self.armed: dict[str, float | None] = {}

    def add(self, node_id: str, segment: str, *, start: bool = True, **kw) -> Discovery:
        settings = DiscoverySettings(community_key=KEY, interfaces=("lan",), **kw)
        core = Discovery(
            settings, node_id=node_id, service_port=8000, rng=random.Random(node_id), now=self.now
        )
        self.nodes[node_id] = core
        n = len(self.addr) + 1
        self.addr[node_id] = (f"10.{n // 250}.{n % 250}.1", PORT)
        self.by_addr[self.addr[node_id]] = node_id
        self.segment[node_id] = segment
        if start:
            self.apply(node_id, core.start(now=self.now))
            self._arm(node_id)
        return core

    def stop(self, node_id: str) -> None:
        self.down.add(node_id)

    def apply(self, src: str, effects) -> None:
        for e in effects:
            if isinstance(e, SendMulticast):
                for dst, seg in self.segment.items():
                    if dst != src and seg == self.segment[src]:
                        self._deliver(src, dst, e.data, True)
            elif isinstance(e, SendUnicast):
                dst = self.by_addr.get(tuple(e.addr))
                if dst is not None:
                    self._deliver(src, dst, e.data, False)
            else:
                self.events.append((self.now, src, e))

    def _deliver(self, src: str, dst: str, data: bytes, mcast: bool) -> None:
        if src in self.down or dst in self.down or frozenset((src, dst)) in self.cut:
            return
        if (src, dst) in self.blocked:
            return
        if self.loss and self.rng.random() < self.loss:
            return
        item = (data, self.addr[src], mcast)
        heapq.heappush(self.queue, (self.now + self.latency, next(self.seq), "rx", dst, item))

    def _arm(self, node: str) -> None:
        t = self.nodes[node].get_timer()
        self.armed[node] = t
        if t is not None:
            heapq.heappush(self.queue, (t, next(self.seq), "timer", node, t))

    def run(self, until: float) -> None:
        for node in self.nodes:
            if node not in self.down and self.armed.get(node, -1) != self.nodes[node].get_timer():
                self._arm(node)
        while self.queue and self.queue[0][0] <= until:
            t, _, kind, node, payload = heapq.heappop(self.queue)
            if node in self.down:
                continue
            core = self.nodes[node]
            if kind == "timer":
                if self.armed.get(node) != payload:
                    continue  # superseded by a later arming
                self.now = max(self.now, t)
                self.apply(node, core.handle_timer(now=self.now))
            else:
                self.now = max(self.now, t)
                data, src_addr, mcast = payload
                effects = core.receive_datagram(
                    data, src_addr, now=self.now, interface="lan", via_multicast=mcast
                )
                self.apply(node, effects)
            if self.armed.get(node, -1) != core.get_timer():
                self._arm(node)
        self.now = max(self.now, until)

    def call(self, node: str, method: str, *args, **kw):
        """Call a core method with now= and apply its effects."""
        result = getattr(self.nodes[node], method)(*args, now=self.now, **kw)
        self.apply(node, result or [])
        self._arm(node)
        return result


def hexid(i: int) -> str:
    return f"{i:016x}"


def segment(net: FakeNet, name: str, n: int, first: int = 0) -> list[str]:
    ids = [hexid(first + i) for i in range(n)]
    for nid in ids:
        net.add(nid, name)
    return ids


def core(node_id: str = "00000000000000aa", **kw) -> Discovery:
    return Discovery(
        DiscoverySettings(community_key=KEY, **kw),
        node_id=node_id,
        service_port=8080,
        rng=random.Random(3),
        now=0.0,
    )


# -- joining a segment ---------------------------------------------------------------------


def test_newcomer_learns_a_20_node_segment_within_half_a_second():
    net = FakeNet(latency=0.002)
    old = segment(net, "A", 19)
    net.run(20.0)
    assert all(len(net.nodes[n].peers) == 18 for n in old)
    replies_before = sum(net.nodes[n].stats.replies_sent for n in old)
    t0 = net.now
    new = net.add("ffffffffffffffff", "A")
    net.run(t0 + 0.5)
    assert {p.node_id for p in new.peers} == set(old)
    assert all(net.nodes[n].peers.get("ffffffffffffffff") is not None for n in old)
    replies = sum(net.nodes[n].stats.replies_sent for n in old) - replies_before
    # One reply teaches everything; only repliers whose random delay (0-100 ms)
    # ran out before the newcomer's re-announce (a few ms) reached them send.
    assert 1 <= replies <= 3
    assert sum(net.nodes[n].stats.replies_suppressed for n in old) >= len(old) - replies - 1


def test_segment_members_become_direct_after_their_next_probe():
    net = FakeNet()
    segment(net, "A", 6)
    net.run(10.0)
    new = net.add("ffffffffffffffff", "A")
    net.run(net.now + 0.3)
    net.run(net.now + 7.0)  # one beacon interval (5 s) plus jitter
    assert all(p.direct and p.hops == 1 for p in new.peers)
    assert all(p.via_multicast and p.interface == "lan" for p in new.peers)


def test_announce_burst_is_three_multicasts_at_0_50_150_ms():
    c = core(interfaces=("wlan0", "eth1"))
    first = c.start(now=100.0)
    assert [type(e) for e in first] == [SendMulticast, SendMulticast]
    assert {e.interface for e in first} == {"wlan0", "eth1"}
    assert c.get_timer() == pytest.approx(100.05)
    assert len(c.handle_timer(now=100.05)) == 2
    assert c.get_timer() == pytest.approx(100.15)
    assert len(c.handle_timer(now=100.15)) == 2
    assert c.get_timer() >= 104.5  # next: the periodic probe, 5 s +- 10%
    assert c.start(now=101.0) == []  # idempotent


def test_multicast_off_sends_only_unicast_to_daemon_neighbours():
    c = core(multicast=False)
    c.set_daemon_neighbours([("10.9.0.1", PORT)], now=0.0)
    effects = c.start(now=0.0) + c.handle_timer(now=1.0)
    sends = [e for e in effects if isinstance(e, SendUnicast | SendMulticast)]
    assert sends and all(isinstance(e, SendUnicast) for e in sends)
    assert {e.addr for e in sends} == {("10.9.0.1", PORT)}


# -- liveness -----------------------------------------------------------------------------


def test_suspect_then_gone_after_missed_beacons():
    net = FakeNet()
    a, b, c = segment(net, "A", 3)
    net.run(20.0)
    t_stop = net.now
    net.stop(c)
    last = net.nodes[a].peers.get(c).last_heard
    net.run(last + 3 * 5.0 * 0.9 - 0.01)  # earliest suspect: 3 intervals of the shortest jitter
    assert net.nodes[a].peers.get(c).state == "alive"
    net.run(last + 3 * 5.0 * 1.1 + 0.01)
    assert net.nodes[a].peers.get(c).state == SUSPECT
    net.run(last + 6 * 5.0 * 1.1 + 0.01)
    assert net.nodes[a].peers.get(c) is None
    events = [(t, n, e) for t, n, e in net.events if n == a and t >= t_stop]
    assert any(isinstance(e, PeerChanged) and e.fields == ("state",) for _, _, e in events)
    assert any(e == PeerLeft(c, "timeout") for _, _, e in events)
    assert net.nodes[a].peers.get(b).state == "alive"


def test_rebooted_node_is_welcomed_again():
    net = FakeNet()
    a, b = segment(net, "A", 2)
    net.run(10.0)
    net.stop(b)
    net.down.discard(b)
    # A new process for b: same id, a later boot epoch.
    fresh = Discovery(
        net.nodes[b].settings,
        node_id=b,
        service_port=9,
        rng=random.Random(9),
        now=net.now,
        boot_epoch=net.nodes[b].boot_epoch + 1,
    )
    net.nodes[b] = fresh
    net.apply(b, fresh.start(now=net.now))
    net.run(net.now + 0.5)
    peer = net.nodes[a].peers.get(b)
    assert peer.boot_epoch == fresh.boot_epoch and peer.service_port == 9
    assert fresh.peers.get(a) is not None


# -- link quality over the fake segment ---------------------------------------------------


def test_rtt_and_etx_of_direct_peers():
    net = FakeNet(latency=0.010)
    a, b = segment(net, "A", 2)
    net.run(60.0)
    peer = net.nodes[a].peers.get(b)
    # beacon there (10 ms) and the echo back (10 ms): 20 ms on a's clock
    assert peer.rtt == pytest.approx(0.020, abs=0.002)
    assert peer.rtt_min == pytest.approx(0.020, abs=0.002)
    assert peer.etx == pytest.approx(1.0)
    assert peer.loss == pytest.approx(0.0)


def test_lossy_segment_raises_etx():
    net = FakeNet(loss=0.3, seed=5)
    a, b = segment(net, "A", 2)
    net.run(300.0)
    peer = net.nodes[a].peers.get(b)
    # each direction delivers ~70%: ETX ~ 1 / 0.49 ~ 2; the window is only 10
    # probes, so allow a wide band around it
    assert 1.2 < peer.etx < 5.0
    assert 0.2 < peer.loss < 0.85


def test_throughput_hook_reaches_the_peer_record():
    net = FakeNet()
    a, b = segment(net, "A", 2)
    net.run(6.0)
    disco = net.nodes[a]
    disco.add_throughput_sample(b, 2_000_000, 4.0, now=net.now)
    assert disco.peers.get(b).throughput == pytest.approx(500_000)
    disco.add_throughput_sample("unknown", 1, 1.0, now=net.now)  # ignored


def test_load_and_summary_version_are_advertised():
    net = FakeNet()
    a, b = segment(net, "A", 2)
    net.run(1.0)
    net.nodes[b].set_load(3.0, 8.0)
    net.nodes[b].set_summary_version(42)
    net.run(12.0)
    peer = net.nodes[a].peers.get(b)
    assert (peer.load, peer.capacity, peer.summary_version) == (3.0, 8.0, 42)
    changed = [e for _, n, e in net.events if n == a and isinstance(e, PeerChanged)]
    assert any("summary_version" in e.fields for e in changed)
    with pytest.raises(ValueError, match="load"):
        net.nodes[b].set_load(-1, 1)
    with pytest.raises(ValueError, match="version"):
        net.nodes[b].set_summary_version(-1)


# -- beyond the segment: routing neighbours and peer exchange -----------------------------


def two_segments(net: FakeNet, n: int = 5) -> tuple[list[str], list[str]]:
    seg_a = segment(net, "A", n, first=0x100)
    seg_b = segment(net, "B", n, first=0x200)
    r1, r2 = seg_a[0], seg_b[0]
    net.call(r1, "set_daemon_neighbours", [net.addr[r2]])
    net.call(r2, "set_daemon_neighbours", [net.addr[r1]])
    return seg_a, seg_b


def test_peer_exchange_across_two_segments_joined_by_a_router_pair():
    net = FakeNet()
    seg_a, seg_b = two_segments(net)
    net.run(10.0)
    everyone = set(seg_a) | set(seg_b)
    for n in everyone:
        assert {p.node_id for p in net.nodes[n].peers} == everyone - {n}, n
    far = net.nodes[seg_a[3]].peers.get(seg_b[3])
    assert not far.direct and far.hops >= 2
    assert far.addr == (net.addr[seg_b[3]][0], PORT)
    assert far.service_port == 8000
    # Segment multicast stayed on its segment: no node of A ever heard B's multicast.
    router = net.nodes[seg_a[0]].peers.get(seg_b[0])
    assert router.direct and not router.via_multicast


def test_departure_crosses_the_router_pair():
    net = FakeNet()
    seg_a, seg_b = two_segments(net)
    net.run(10.0)
    leaver = seg_b[4]
    net.stop(leaver)
    net.run(net.now + 6 * 5.5 + 3.0)
    for n in seg_a + seg_b[:4]:
        assert net.nodes[n].peers.get(leaver) is None, n
    assert any(e == PeerLeft(leaver, "removed") for _, n, e in net.events if n == seg_a[2])


def test_newcomer_on_far_segment_reaches_everyone_quickly():
    net = FakeNet()
    seg_a, seg_b = two_segments(net)
    net.run(10.0)
    t0 = net.now
    net.add("00000000000002ff", "B")
    net.run(t0 + 3.0)
    for n in seg_a + seg_b:
        assert net.nodes[n].peers.get("00000000000002ff") is not None, n
    joined = [
        t
        for t, n, e in net.events
        if isinstance(e, PeerJoined) and e.peer.node_id == "00000000000002ff" and n == seg_a[4]
    ]
    assert joined and joined[0] - t0 < 2.5  # pex_delay + one flush gap per hop


def test_digest_mismatch_triggers_a_full_sync_after_lost_deltas():
    net = FakeNet()
    seg_a, seg_b = two_segments(net)
    net.run(10.0)
    r1, r2 = seg_a[0], seg_b[0]
    net.cut.add(frozenset((r1, r2)))
    net.run(net.now + 1.0)
    net.add("00000000000002fe", "B")  # its join delta cannot cross
    net.run(net.now + 2.0)
    net.cut.clear()  # link back before the routers time each other out
    assert net.nodes[r1].peers.get("00000000000002fe") is None
    syncs = net.nodes[r2].stats.syncs_sent + net.nodes[r1].stats.syncs_sent
    net.run(net.now + 60.0)
    for n in seg_a:
        assert net.nodes[n].peers.get("00000000000002fe") is not None, n
    assert net.nodes[r2].stats.syncs_sent + net.nodes[r1].stats.syncs_sent > syncs


def test_grid_mesh_traffic_stays_under_budget():
    # A 6x6 multi-hop grid, each router its own segment, 4 routing neighbours.
    net = FakeNet(latency=0.005)
    ids = {}
    for x in range(6):
        for y in range(6):
            ids[(x, y)] = f"{x:02x}{y:02x}000000000000"
            net.add(ids[(x, y)], ids[(x, y)])
    for (x, y), nid in ids.items():
        nbs = [(x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)]
        net.call(nid, "set_daemon_neighbours", [net.addr[ids[p]] for p in nbs if p in ids])
    net.run(60.0)
    assert all(len(c.peers) == 35 for c in net.nodes.values())
    corner = net.nodes[ids[(0, 0)]].peers.get(ids[(5, 5)])
    assert corner.hops == 10  # Manhattan distance, learned hop by hop
    before = sum(c.stats.sent_bytes for c in net.nodes.values())
    net.run(360.0)
    rate = (sum(c.stats.sent_bytes for c in net.nodes.values()) - before) / 300 / len(ids)
    assert rate <= 200.0


def test_refutation_of_a_false_remove():
    victim = core("00000000000000aa")
    liar = core("00000000000000bb")
    victim.start(now=0.0)
    rumour = Beacon(
        node_id=liar.node_id,
        boot_epoch=liar.boot_epoch,
        seq=1,
        ts_ms=0,
        pex=PexSection((PexEntry(OP_REMOVE, victim.node_id, victim.boot_epoch, 0),)),
    )
    effects = victim.receive_datagram(encode_beacon(rumour, KEY), ("10.0.0.2", PORT), now=1.0)
    assert victim.incarnation == 1 and victim.stats.refutations == 1
    effects += victim.handle_timer(now=1.0)
    sends = [e for e in effects if isinstance(e, SendMulticast)]
    assert sends  # it tells the segment at once, with the higher incarnation


def test_a_node_that_still_hears_the_peer_forwards_the_remove_to_it():
    net = FakeNet()
    a, b, c = segment(net, "A", 3)
    net.run(10.0)
    inc_before = net.nodes[b].incarnation
    # c claims b is gone (as if c lost b's beacons); a still hears b
    cc = net.nodes[c]
    rumour = Beacon(
        node_id=c,
        boot_epoch=cc.boot_epoch,
        seq=10_000,
        ts_ms=0,
        pex=PexSection((PexEntry(OP_REMOVE, b, net.nodes[b].boot_epoch, inc_before),)),
    )
    net.apply(
        a,
        net.nodes[a].receive_datagram(
            encode_beacon(rumour, KEY), net.addr[c], now=net.now, interface="lan"
        ),
    )
    net.run(net.now + 1.0)
    assert net.nodes[b].incarnation == inc_before + 1
    assert net.nodes[a].peers.get(b) is not None
    net.run(net.now + 7.0)
    assert net.nodes[c].peers.get(b).incarnation == inc_before + 1


def test_pex_records_are_applied_with_version_and_tombstone_rules():
    me = core("00000000000000aa")
    me.start(now=0.0)
    nb = "00000000000000bb"
    seq = iter(range(1, 100))

    def send(*entries, sync=False):
        b = Beacon(
            node_id=nb,
            boot_epoch=7,
            seq=next(seq),
            ts_ms=0,
            pex=PexSection(tuple(entries), sync, 1, 0, 1),
        )
        return me.receive_datagram(encode_beacon(b, KEY), ("10.0.0.2", PORT), now=1.0)

    x = "00000000000000cc"
    send(PexEntry(OP_ADD, x, 5, 0, 1, "10.0.0.3", 80))
    assert me.peers.get(x).hops == 2 and me.peers.get(x).via == nb
    send(PexEntry(OP_ADD, x, 5, 1, 3, "10.0.0.4", 81))  # newer version wins
    assert me.peers.get(x).incarnation == 1 and me.peers.get(x).addr == ("10.0.0.4", PORT)
    before = me.stats.deltas_ignored
    send(PexEntry(OP_ADD, x, 5, 0, 1, "10.0.0.3", 80))  # older: ignored
    assert me.stats.deltas_ignored == before + 1
    send(PexEntry(OP_REMOVE, x, 5, 0))  # remove of an older version: ignored
    assert me.peers.get(x) is not None
    send(PexEntry(OP_REMOVE, x, 5, 1))
    assert me.peers.get(x) is None
    send(PexEntry(OP_ADD, x, 5, 1, 1, "10.0.0.3", 80))  # blocked by the tombstone
    assert me.peers.get(x) is None
    send(PexEntry(OP_ADD, x, 5, 2, 1, "10.0.0.3", 80))  # a refutation gets through
    assert me.peers.get(x) is not None
    send(PexEntry(OP_ADD, "00000000000000dd", 1, 0, 200, "h", 1))  # beyond max hops
    assert me.peers.get("00000000000000dd") is None
    send(PexEntry(OP_ADD, me.node_id, 1, 0, 1, "h", 1))  # about myself: ignored
    assert me.peers.get(me.node_id) is None
    # a full sync that omits x withdraws the path learned through the sender
    send(PexEntry(OP_ADD, "00000000000000ee", 1, 0, 1, "10.0.0.5", 1), sync=True)
    assert me.peers.get(x) is None and me.peers.get("00000000000000ee") is not None


# -- hostile input ------------------------------------------------------------------------


def test_replayed_and_old_boot_beacons_are_dropped():
    me = core()
    sender = "00000000000000bb"

    def beacon(boot, seq):
        return encode_beacon(Beacon(node_id=sender, boot_epoch=boot, seq=seq, ts_ms=0), KEY)

    addr = ("10.0.0.2", PORT)
    me.receive_datagram(beacon(10, 5), addr, now=0.0)
    assert me.peers.get(sender) is not None
    me.receive_datagram(beacon(10, 5), addr, now=0.1)  # exact replay
    assert me.stats.dropped_replay == 1
    me.receive_datagram(beacon(10, 9), addr, now=0.2)
    me.receive_datagram(beacon(10, 7), addr, now=0.3)  # reordered, inside the window: fine
    assert me.stats.dropped_replay == 1
    me.receive_datagram(beacon(10, 7), addr, now=0.4)
    assert me.stats.dropped_replay == 2
    me.receive_datagram(beacon(10, 1000), addr, now=0.5)
    me.receive_datagram(beacon(10, 900), addr, now=0.6)  # too far behind the window
    assert me.stats.dropped_replay == 3
    me.receive_datagram(beacon(11, 1), addr, now=0.7)  # reboot: new epoch accepted
    me.receive_datagram(beacon(10, 2000), addr, now=0.8)  # the old boot, replayed later
    assert me.stats.dropped_replay == 4
    assert me.peers.get(sender).boot_epoch == 11


def test_forged_oversized_foreign_and_own_datagrams_are_counted():
    me = core()
    good = Beacon(node_id="00000000000000bb", boot_epoch=1, seq=1, ts_ms=0)
    addr = ("10.0.0.2", PORT)
    me.receive_datagram(encode_beacon(good, b"another community key!"), addr, now=0.0)
    assert me.stats.dropped_auth == 1
    me.receive_datagram(b"MC\x01" + bytes(1300), addr, now=0.0)
    assert me.stats.dropped_oversize == 1
    me.receive_datagram(b"MC\x09" + bytes(40), addr, now=0.0)
    assert me.stats.dropped_version == 1
    me.receive_datagram(b"garbage", addr, now=0.0)
    assert me.stats.dropped_malformed == 1
    mine = me.start(now=0.0)[0].data
    me.receive_datagram(mine, addr, now=0.0)  # our multicast looped back
    assert me.stats.dropped_self == 1
    assert me.stats.dropped == 5 and len(me.peers) == 0
    assert me.stats.as_dict()["dropped_auth"] == 1


def test_peer_table_is_bounded():
    me = core(max_peers=3)
    for i in range(5):
        b = Beacon(node_id=hexid(0x50 + i), boot_epoch=1, seq=1, ts_ms=0)
        me.receive_datagram(encode_beacon(b, KEY), ("10.0.0.2", PORT), now=0.0)
    assert len(me.peers) == 3


def test_every_datagram_fits_the_cap_with_a_large_peer_set():
    net = FakeNet()
    _seg_a, _seg_b = two_segments(net, n=30)  # 60 nodes: a full sync needs two chunks
    net.run(15.0)
    sizes = []
    real_apply = net.apply

    def spy(src, effects):
        sizes.extend(len(e.data) for e in effects if isinstance(e, SendUnicast | SendMulticast))
        real_apply(src, effects)

    net.apply = spy
    net.add("00000000000003ff", "A")
    net.run(net.now + 5.0)
    assert sizes and max(sizes) <= 1200
    assert len(net.nodes["00000000000003ff"].peers) == 60


# -- settings and config ------------------------------------------------------------------


def net_section(text: str):
    return parse_config(text, "node.toml").section("net")


def test_config_missing_key_names_net_community_key():
    with pytest.raises(ConfigError) as info:
        DiscoverySettings.from_config(net_section("[net]\nport = 4000\n"))
    assert info.value.key == "net.community_key" and info.value.path == "node.toml"
    assert "missing" in info.value.problem


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"hex:00ff"', "too short"),
        ('"hex:zz"', "hexadecimal"),
        ('"base64:!!!"', "base64"),
        ('"base64:AAAA"', "too short"),
        ('"short"', "passphrase too short"),
        ("42", "expected a string"),
    ],
)
def test_config_bad_key_is_refused(value, problem):
    with pytest.raises(ConfigError, match=problem) as info:
        DiscoverySettings.from_config(net_section(f"[net]\ncommunity_key = {value}\n"))
    assert info.value.key == "net.community_key"


def test_config_key_forms():
    hexkey = "hex:" + "ab" * 16
    assert parse_community_key(hexkey) == bytes.fromhex("ab" * 16)
    assert parse_community_key("base64:" + "q" * 24) == bytes([0xAA]) * 18
    pw = parse_community_key("correct horse battery staple")
    assert len(pw) == 32 and pw == parse_community_key("correct horse battery staple")
    assert pw != parse_community_key("correct horse battery stapler")


def test_config_full_table():
    s = DiscoverySettings.from_config(
        net_section(
            """
[net]
community_key = "hex:00112233445566778899aabbccddeeff"
port = 5000
multicast_group = "ff02::4d43"
interfaces = ["wlan0", "br-lan"]
beacon_interval = "2s"
beacon_jitter = 0.2
burst = 4
neighbour_interval = "8s"
suspect_after = 2
gone_after = 4
pex_delay = "50ms"
"""
        )
    )
    assert s.port == 5000 and s.multicast_group == "ff02::4d43"
    assert s.interfaces == ("wlan0", "br-lan") and s.beacon_interval == 2.0
    assert (s.jitter, s.burst, s.neighbour_interval) == (0.2, 4, 8.0)
    assert (s.suspect_after, s.gone_after, s.pex_delay) == (2, 4, 0.05)
    defaults = DiscoverySettings.from_config(
        net_section('[net]\ncommunity_key = "x" * 1\n'.replace('"x" * 1', '"' + "p" * 12 + '"'))
    )
    assert defaults.multicast_group == DEFAULT_GROUP and defaults.neighbour_interval == 10.0


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('multicast_group = "10.0.0.1"', "net.multicast_group"),
        ('multicast_group = "ff0e::1"', "net.multicast_group"),
        ('multicast_group = "nope"', "net.multicast_group"),
        ("port = 0", "net.port"),
        ("suspect_after = 6\ngone_after = 3", "net.gone_after"),
        ('beacon_interval = "-1s"', "net.beacon_interval"),
        ("burst = 20", "net.burst"),
    ],
)
def test_config_bad_values_name_their_key(line, key):
    text = '[net]\ncommunity_key = "hex:' + "00" * 16 + '"\n' + line + "\n"
    with pytest.raises(ConfigError) as info:
        DiscoverySettings.from_config(net_section(text))
    assert info.value.key == key


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"community_key": b"short"}, "community_key"),
        ({"port": 70000}, "port"),
        ({"beacon_interval": 0}, "beacon_interval"),
        ({"jitter": 1.0}, "jitter"),
        ({"burst": 0}, "burst"),
        ({"suspect_after": 3, "gone_after": 3}, "suspect_after"),
        ({"reply_jitter": -1}, "reply_jitter"),
        ({"etx_window": 0}, "etx_window"),
        ({"pex_max_hops": 0}, "pex_max_hops"),
        ({"max_peers": 0}, "max_peers"),
        ({"replay_window": 0}, "replay_window"),
    ],
)
def test_settings_validate_fields(kw, name):
    args = {"community_key": KEY, **kw}
    with pytest.raises(ValueError, match=name):
        DiscoverySettings(**args)


def test_constructor_argument_errors():
    s = DiscoverySettings(community_key=KEY)
    rng = random.Random(1)
    with pytest.raises(TypeError, match="settings"):
        Discovery(object(), node_id="a", service_port=1, rng=rng, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="node_id"):
        Discovery(s, node_id="", service_port=1, rng=rng, now=0.0)
    with pytest.raises(ValueError, match="service_port"):
        Discovery(s, node_id="a", service_port=-1, rng=rng, now=0.0)
    with pytest.raises(TypeError, match="rng"):
        Discovery(s, node_id="a", service_port=1, rng=None, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="boot_epoch"):
        Discovery(s, node_id="a", service_port=1, rng=rng, now=0.0, boot_epoch=-1)
    with pytest.raises(TypeError, match="addrs"):
        Discovery(s, node_id="a", service_port=1, rng=rng, now=0.0).set_daemon_neighbours(
            ["10.0.0.1"],
            now=0.0,  # type: ignore[list-item]
        )


def test_idle_core_has_no_timer_until_started():
    c = core()
    assert c.get_timer() is None
    assert c.handle_timer(now=1.0) == []


def test_cold_start_of_a_whole_segment_needs_no_replies():
    # After a power cut every node starts at once: the bursts alone suffice.
    net = FakeNet()
    ids = segment(net, "A", 20)
    net.run(0.5)
    assert all(len(net.nodes[n].peers) == 19 for n in ids)
    assert sum(net.nodes[n].stats.replies_sent for n in ids) == 0


def raw(node_id: str, boot: int, seq: int, **kw) -> bytes:
    return encode_beacon(Beacon(node_id=node_id, boot_epoch=boot, seq=seq, ts_ms=0, **kw), KEY)


def test_replay_state_is_forgotten_after_replay_memory():
    me = core(replay_memory=100.0)
    addr = ("10.0.0.2", PORT)
    me.receive_datagram(raw("00000000000000bb", 10, 5), addr, now=0.0)
    me.handle_timer(now=70.0)  # purge pass: still remembered
    me.receive_datagram(raw("00000000000000bb", 9, 1), addr, now=70.0)
    assert me.stats.dropped_replay == 1
    me.handle_timer(now=200.0)  # silent for 200 s > 100 s: forgotten
    me.receive_datagram(raw("00000000000000bb", 9, 1), addr, now=200.0)
    assert me.stats.dropped_replay == 1


def test_stale_incarnation_from_a_live_boot_is_ignored():
    me = core()
    addr = ("10.0.0.2", PORT)
    me.receive_datagram(raw("00000000000000bb", 10, 1, incarnation=3), addr, now=0.0)
    me.receive_datagram(raw("00000000000000bb", 10, 2, incarnation=2, service_port=9), addr, now=1)
    peer = me.peers.get("00000000000000bb")
    assert peer.incarnation == 3 and peer.service_port == 0


def test_dropping_a_daemon_neighbour_cancels_its_pending_sync():
    me = core()
    me.start(now=0.0)
    nb = ("10.0.0.9", PORT)
    me.set_daemon_neighbours([nb], now=0.0)
    me._syncs[nb] = 50.0  # as if a digest mismatch had scheduled one
    me.set_daemon_neighbours([], now=1.0)
    assert nb not in me._syncs


def test_peer_exchange_respects_max_peers_and_bounds_partial_syncs():
    me = core(max_peers=2)
    nb = "00000000000000bb"
    entries = tuple(PexEntry(OP_ADD, hexid(0x300 + i), 1, 0, 1, "10.0.0.7", 1) for i in range(3))
    me.receive_datagram(raw(nb, 1, 1, pex=PexSection(entries)), ("10.0.0.2", PORT), now=0.0)
    assert len(me.peers) == 2  # the sender plus one
    for i in range(70):  # first chunks of 70 syncs that never complete
        sec = PexSection((), True, i, 0, 2)
        me.receive_datagram(raw(nb, 1, 2 + i, pex=sec), ("10.0.0.2", PORT), now=1.0)
    assert len(me._sync_rx) <= 65


def test_large_segment_rotates_echoes_so_every_link_is_measured():
    # 45 peers do not fit in one echo list (about 35 do): entries rotate.
    net = FakeNet()
    ids = segment(net, "A", 45)
    net.run(60.0)
    a = net.nodes[ids[0]]
    assert len(a.peers) == 44
    assert all(p.etx == pytest.approx(1.0) for p in a.peers)
    assert all(p.hears_us and p.rtt is not None for p in a.peers)


def test_partition_leaves_no_ghosts_and_the_repair_reconverges():
    net = FakeNet()
    seg_a, seg_b = two_segments(net, n=4)
    net.run(15.0)
    r1, r2 = seg_a[0], seg_b[0]
    net.cut.add(frozenset((r1, r2)))
    # the routers time each other out (6 x 10 s unicast interval), then withdraw
    # the far segment from their own: nobody keeps a ghost of the other side
    net.run(net.now + 6 * 10 * 1.1 + 5.0)
    for n in seg_a:
        assert not {p.node_id for p in net.nodes[n].peers} & set(seg_b), n
    for n in seg_b:
        assert not {p.node_id for p in net.nodes[n].peers} & set(seg_a), n
    net.cut.clear()
    t_repair = net.now
    everyone = set(seg_a) | set(seg_b)

    def converged():
        return all({p.node_id for p in net.nodes[n].peers} == everyone - {n} for n in everyone)

    while not converged() and net.now < t_repair + 60:
        net.run(net.now + 0.5)
    assert converged()
    # the routers were declared gone and refuted it, so their tombstones do not block them
    assert net.nodes[r1].incarnation + net.nodes[r2].incarnation >= 1
    assert net.now - t_repair <= 25.0  # one unicast probe interval plus a sync


def chain(net: FakeNet) -> tuple[list[str], list[str], list[str]]:
    """The emulation's layout: a1 a2 a3 r1 | r2 | r3 b1 b2 b3, routers r1-r2-r3 in a chain."""
    seg_a = segment(net, "A", 4, first=0x100)  # seg_a[0] is r1
    r2 = segment(net, "R2", 1, first=0x300)[0]
    seg_b = segment(net, "B", 4, first=0x200)  # seg_b[0] is r3
    r1, r3 = seg_a[0], seg_b[0]
    net.call(r1, "set_daemon_neighbours", [net.addr[r2]])
    net.call(r2, "set_daemon_neighbours", [net.addr[r1], net.addr[r3]])
    net.call(r3, "set_daemon_neighbours", [net.addr[r2]])
    return seg_a, [r2], seg_b


def knows_everyone(net: FakeNet) -> dict[str, set[str]]:
    """Per node, the peers it lacks (empty dict when the mesh has converged)."""
    everyone = set(net.nodes)
    missing = {}
    for n, c in net.nodes.items():
        lacks = everyone - {n} - {p.node_id for p in c.peers}
        if lacks:
            missing[n] = lacks
    return missing


def test_repair_after_a_cut_reconverges_even_if_the_first_accusation_is_lost():
    # The emulation's failure, deterministically: r3 declares r2 gone and tells
    # segment B (tombstones at r2's version). At the repair r3 hears r2 first,
    # but its datagrams to r2 are lost for a while (in the emulation: "No route
    # to host" until ARP settles). r2 must still learn that it was declared gone
    # and refute, or r3's re-advertised record of r2 (same version) is refused
    # by segment B's tombstones for tombstone_ttl (120 s).
    net = FakeNet()
    _seg_a, (r2,), seg_b = chain(net)
    r3 = seg_b[0]
    net.run(20.0)
    assert knows_everyone(net) == {}
    version = (net.nodes[r2].boot_epoch, net.nodes[r2].incarnation)
    net.cut.add(frozenset((r2, r3)))
    net.run(net.now + 6 * 10 * 1.1 + 5.0)  # r3 times r2 out (6 unicast intervals)
    for b in seg_b:
        assert net.nodes[b].peers.get(r2) is None, b
    assert net.nodes[seg_b[1]].peers.tombstone(r2, now=net.now) == version
    net.cut.clear()
    net.blocked.add((r3, r2))
    while net.nodes[r3].peers.get(r2) is None:
        net.run(net.now + 0.05)
    net.run(net.now + 3.0)  # both copies of a one-shot accusation are lost
    net.blocked.clear()
    t_repair = net.now

    def b_side_knows_r2():
        return all(net.nodes[b].peers.get(r2) is not None for b in seg_b[1:])

    while not b_side_knows_r2() and net.now < t_repair + 30.0:
        net.run(net.now + 0.5)
    assert b_side_knows_r2()
    assert net.nodes[r2].incarnation > version[1]  # it refuted: the new version beats tombstones
    assert net.now - t_repair <= 15.0  # its next probe to r3 (<= 11 s) plus propagation
    # The rest follows. r3's reply to r2 was lost, but a sync sent to a peer that
    # did not hear us yet does not hold back the next one for pex_sync_interval
    # (30 s): two probes with a differing digest, 10 s apart, are enough.
    while knows_everyone(net) and net.now < t_repair + 30.0:
        net.run(net.now + 0.5)
    assert knows_everyone(net) == {}
    # The accusation is settled: r3 stops sending it once r2 has refuted.
    sent = net.nodes[r3].stats.accusations_sent
    assert sent >= 2  # the lost one and the one that got through
    net.run(net.now + 30.0)
    assert net.nodes[r3].stats.accusations_sent == sent
    assert not net.nodes[r3]._accused


def test_a_tombstone_that_refuses_an_add_is_sent_back_until_the_peer_refutes():
    # Only b1 holds a tombstone for r2 (a rumour that reached no one else, as
    # after a restart of r3 that forgot its own): r3's records of r2 at that
    # version are refused. b1 answers them with its remove; r3, which hears r2,
    # accuses it; r2 refutes and its new version reaches b1.
    net = FakeNet()
    _seg_a, (r2,), seg_b = chain(net)
    r3, b1 = seg_b[0], seg_b[1]
    net.run(20.0)
    assert knows_everyone(net) == {}
    inc = net.nodes[r2].incarnation
    liar = net.add("00000000000002ff", "B")
    net.run(net.now + 10.0)
    rumour = Beacon(
        node_id=liar.node_id,
        boot_epoch=liar.boot_epoch,
        seq=10_000,
        ts_ms=0,
        pex=PexSection((PexEntry(OP_REMOVE, r2, net.nodes[r2].boot_epoch, inc),)),
    )
    # By multicast on b1's only interface: b1 does not pass it on (split horizon).
    net.stop(liar.node_id)
    net.apply(
        b1,
        net.nodes[b1].receive_datagram(
            encode_beacon(rumour, KEY),
            net.addr[liar.node_id],
            now=net.now,
            interface="lan",
            via_multicast=True,
        ),
    )
    assert net.nodes[b1].peers.get(r2) is None
    assert net.nodes[r3].peers.get(r2) is not None
    # r3 offers r2 again (digest mismatch -> full sync); b1 refuses and contradicts.
    t0 = net.now
    while net.nodes[b1].peers.get(r2) is None and net.now < t0 + 60.0:
        net.run(net.now + 0.5)
    assert net.nodes[b1].peers.get(r2) is not None
    assert net.nodes[b1].stats.contradictions_sent >= 1
    assert net.nodes[r3].stats.accusations_sent >= 1
    assert net.nodes[r2].incarnation == inc + 1
    assert net.now - t0 <= 40.0  # two probes with a mismatched digest, a sync, a refutation


@pytest.mark.parametrize("mcast", [False, True])
def test_echo_suppresses_a_reply_on_a_segment_but_not_to_a_routing_neighbour(mcast):
    # On a segment, a newcomer that echoes us has had a reply from someone (it
    # re-announces after one). A routing neighbour has no other replier: that
    # it heard our probe says nothing about whether it has our peer set.
    me = core("00000000000000aa", interfaces=("lan",))
    me.start(now=0.0)
    me.handle_timer(now=2.0)  # past the join phase and the burst
    hello = Beacon(
        node_id="00000000000000bb",
        boot_epoch=9,
        seq=1,
        ts_ms=0,
        flags=FLAG_PROBE,
        interval=5.0,
        digest=b"\x01" * 8,  # not ours
        echoes=(Echo(me.node_id, 1000, 10, 1.0),),
    )
    # Padded, as a node pads its probes to a neighbour that does not know it yet:
    # the reply may be as large as the probe.
    effects = me.receive_datagram(
        encode_beacon(hello, KEY, pad_to=MAX_DATAGRAM), ("10.0.0.2", PORT), now=2.0,
        interface="lan", via_multicast=mcast,
    )
    effects += me.handle_timer(now=2.0 + me.settings.reply_jitter)
    replies = [e for e in effects if isinstance(e, SendUnicast) and e.addr == ("10.0.0.2", PORT)]
    assert me.stats.replies_suppressed == (1 if mcast else 0)
    assert me.stats.replies_sent == (0 if mcast else 1)
    assert bool(replies) is not mcast


def test_a_sync_sent_before_the_neighbour_heard_us_does_not_hold_back_the_next():
    # A link coming back often carries one way first: our reply (a full sync)
    # to a neighbour that did not hear us yet was probably lost, so once it
    # echoes us the next digest mismatch is repaired at once, not after
    # pex_sync_interval (30 s).
    me = core("00000000000000aa", multicast=False)
    me.start(now=0.0)
    seq = iter(range(1, 100))

    def probe(t, *, echo):
        b = Beacon(
            node_id="00000000000000bb",
            boot_epoch=9,
            seq=next(seq),
            ts_ms=0,
            flags=FLAG_PROBE,
            interval=10.0,
            digest=b"\x01" * 8,
            known_count=1,
            echoes=(Echo(me.node_id, 1000, 10, 1.0),) if echo else (),
        )
        effects = me.receive_datagram(encode_beacon(b, KEY), ("10.0.0.2", PORT), now=t)
        return effects + me.handle_timer(now=t + me.settings.reply_jitter)

    probe(1.0, echo=False)  # a newcomer: our reply goes out (and is lost)
    probe(2.0, echo=False)  # second mismatch: a sync, rate-limited to 30 s later
    assert me.stats.syncs_sent == 1
    assert me._syncs[("10.0.0.2", PORT)] > 30.0
    probe(3.0, echo=True)  # it hears us now: the earlier sync is not counted
    assert me.stats.syncs_sent == 2


def _removes_to(effects, addr):
    """The remove records (node id, version) carried by unicasts to ``addr``."""
    out = []
    for e in effects:
        if isinstance(e, SendUnicast) and e.addr == addr:
            b = decode_beacon(e.data, KEY)
            if b.pex is not None:
                out += [(x.node_id, (x.boot_epoch, x.incarnation)) for x in b.pex.entries
                        if x.op == OP_REMOVE]
    return out


def test_accusation_is_repeated_on_each_stale_beacon_until_the_peer_refutes():
    me = core("00000000000000aa", multicast=False, tombstone_ttl=50.0)
    me.start(now=0.0)
    bb, addr = "00000000000000bb", ("10.0.0.2", PORT)
    me.peers.bury(bb, (9, 3), now=0.0)  # declared gone at (9, 3)
    seq = iter(range(1, 100))

    def beacon(t, inc):
        b = Beacon(node_id=bb, boot_epoch=9, seq=next(seq), ts_ms=0, incarnation=inc)
        effects = me.receive_datagram(encode_beacon(b, KEY), addr, now=t)
        return effects + me.handle_timer(now=t + me.settings.pex_delay)

    assert _removes_to(beacon(1.0, 2), addr) == [(bb, (9, 3))]  # heard at (9, 2): accused
    assert _removes_to(beacon(1.5, 2), addr) == []  # at most once per pex_min_gap (1 s)
    assert _removes_to(beacon(2.6, 3), addr) == [(bb, (9, 3))]  # still not refuted
    assert me.stats.accusations_sent == 2
    assert _removes_to(beacon(4.0, 4), addr) == []  # (9, 4) > (9, 3): refuted
    assert bb not in me._accused
    assert _removes_to(beacon(6.0, 4), addr) == []
    assert me.stats.accusations_sent == 2


def test_an_accusation_is_forgotten_after_tombstone_ttl():
    me = core("00000000000000aa", multicast=False, tombstone_ttl=20.0)
    me.start(now=0.0)
    bb, cc = "00000000000000bb", "00000000000000cc"
    addrs = {bb: ("10.0.0.2", PORT), cc: ("10.0.0.3", PORT)}
    seq = iter(range(1, 100))

    def beacon(node, t):
        # cc advertises a long interval: it stays in the table while silent.
        b = Beacon(node_id=node, boot_epoch=9, seq=next(seq), ts_ms=0, flags=FLAG_PROBE,
                   interval=5.0 if node == bb else 30.0)
        effects = me.receive_datagram(encode_beacon(b, KEY), addrs[node], now=t)
        return effects + me.handle_timer(now=t + me.settings.pex_delay)

    for node, t in ((bb, 1.0), (cc, 3.0)):
        me.peers.bury(node, (9, 0), now=0.0)
        assert _removes_to(beacon(node, t), addrs[node]) == [(node, (9, 0))]
    for t in (6.0, 11.0, 16.0):  # bb keeps beaconing its old version, ignoring us
        assert _removes_to(beacon(bb, t), addrs[bb]) == [(bb, (9, 0))]
    assert me.stats.accusations_sent == 5
    assert _removes_to(beacon(bb, 21.5), addrs[bb]) == []  # 20 s after the accusation
    assert bb not in me._accused and cc in me._accused
    # cc went quiet (but is not gone yet); its stale accusation is purged with
    # the replay state, every 60 s
    me.handle_timer(now=65.0)
    assert me.peers.get(cc) is not None
    assert cc not in me._accused


def test_contradictions_are_rate_limited_per_peer_and_sender():
    me = core("00000000000000aa", multicast=False)
    me.start(now=0.0)
    gone, sender = "00000000000000cc", ("10.0.0.2", PORT)
    me.peers.bury(gone, (4, 1), now=0.0)
    seq = iter(range(1, 100))

    def offer(t):
        b = Beacon(node_id="00000000000000bb", boot_epoch=9, seq=next(seq), ts_ms=0,
                   pex=PexSection((PexEntry(OP_ADD, gone, 4, 1, 1, "10.0.0.9", 80),)))
        effects = me.receive_datagram(encode_beacon(b, KEY), sender, now=t)
        return effects + me.handle_timer(now=t + me.settings.pex_delay)

    assert _removes_to(offer(1.0), sender) == [(gone, (4, 1))]
    assert me.peers.get(gone) is None
    assert _removes_to(offer(1.5), sender) == []
    assert _removes_to(offer(3.0), sender) == [(gone, (4, 1))]
    assert me.stats.contradictions_sent == 2
