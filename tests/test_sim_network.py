"""SimNetwork: latency, bandwidth FIFOs, loss, segments, routing, partitions, counters."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from meshcore.core import Event, dispatches, handler
from meshcore.net.discovery import Datagram, SendMulticast, SendUnicast, Start
from meshcore.net.topology import Topology
from meshcore.sim.engine import Simulator
from meshcore.sim.hosts import CoreHost
from meshcore.sim.network import SimNetwork


def line(n=3, *, latency=0.01, bandwidth=1000.0, loss=0.0):
    topo = Topology()
    for i in range(n - 1):
        topo.add_link(f"n{i}", f"n{i + 1}", 1.0, symmetric=True,
                      latency=latency, bandwidth=bandwidth, loss=loss)
    return topo


def sink(net, node, port=9):
    got = []
    net.bind(node, port, lambda data, src, iface, mcast: got.append(
        (net.sim.now, data, src, iface, mcast)))
    return got


def test_unicast_pays_serialisation_and_latency_per_hop():
    sim = Simulator()
    net = SimNetwork(sim, line(3))
    got = sink(net, "n2")
    net.send("n0", 5, (net.address("n2"), 9), b"x" * 72)  # 72 + 28 header = 100 bytes
    sim.run()
    # per hop: 100 B / 1000 B/s + 10 ms
    assert got[0][0] == pytest.approx(2 * (0.1 + 0.01))
    assert got[0][1:] == (b"x" * 72, (net.address("n0"), 5), None, False)
    assert net.counters["n0"].sent_bytes == 72
    assert net.counters["n1"].forwarded_datagrams == 1
    assert net.counters["n2"].received_bytes == 72
    assert net.route_hops("n0", "n2") == 2
    assert net.route_cost("n0", "n2") == 2.0


def test_each_link_direction_is_a_fifo():
    sim = Simulator()
    net = SimNetwork(sim, line(2))
    got = sink(net, "n1")
    back = sink(net, "n0")
    for _ in range(3):
        net.send("n0", 5, (net.address("n1"), 9), b"y" * 72)
    net.send("n1", 5, (net.address("n0"), 9), b"z" * 72)  # the other direction is free
    sim.run()
    assert [t for t, *_ in got] == pytest.approx([0.11, 0.21, 0.31])
    assert back[0][0] == pytest.approx(0.11)


def test_drop_tail_queue():
    sim = Simulator()
    net = SimNetwork(sim, line(2), queue_bytes=250)
    got = sink(net, "n1")
    for _ in range(6):
        net.send("n0", 5, (net.address("n1"), 9), b"y" * 72)
    sim.run()
    # backlog of 0, 100, 200 bytes is accepted; 300 > 250 is not
    assert len(got) == 3
    assert net.drops["queue"] == 3


def test_loss_is_seeded_bernoulli():
    def run(seed):
        sim = Simulator(seed=seed)
        net = SimNetwork(sim, line(2, bandwidth=1e9, loss=0.3))
        got = sink(net, "n1")
        for _ in range(2000):
            net.send("n0", 5, (net.address("n1"), 9), b"a")
        sim.run()
        return len(got), net.drops["loss"]

    a = run(1)
    assert a == run(1)
    assert a != run(2)
    assert a[0] + a[1] == 2000
    assert 0.25 < a[1] / 2000 < 0.35


def test_multicast_reaches_the_segment_only():
    topo = Topology()
    for nid in ("a", "b", "c"):
        topo.add_node(nid, segment="s1")
    topo.add_node("d", segment="s2")
    topo.add_link("c", "d", 1.0, symmetric=True)
    sim = Simulator()
    net = SimNetwork(sim, topo, segment_latency=0.001, segment_bandwidth=1e6)
    got = {n: sink(net, n) for n in "abcd"}
    assert net.multicast("a", "whatever", 9, b"hello") == 2
    sim.run()
    assert [len(got[n]) for n in "abcd"] == [0, 1, 1, 0]
    t, data, src, iface, mcast = got["b"][0]
    assert data == b"hello" and mcast and iface == "lan" and src == (net.address("a"), 9)
    assert t == pytest.approx((5 + 28) / 1e6 + 0.001)
    assert net.counters["a"].sent_datagrams == 1  # one broadcast
    # members of one segment talk directly even without a link in the topology
    net.send("a", 9, (net.address("b"), 9), b"direct")
    sim.run()
    assert got["b"][-1][1] == b"direct"
    assert net.route_hops("a", "b") == 1
    assert net.links[("a", "b")].implicit


def test_multicast_on_a_node_with_several_segments_needs_the_segment_name():
    topo = Topology()
    topo.add_node("r", segment=["s1", "s2"])
    topo.add_node("x", segment="s1")
    topo.add_node("y", segment="s2")
    topo.add_node("z")
    sim = Simulator()
    net = SimNetwork(sim, topo)
    got = {n: sink(net, n) for n in "xyz"}
    assert net.multicast("r", "lan", 9, b"?") == 0
    assert net.drops["no_segment"] == 1
    assert net.multicast("r", "s2", 9, b"!") == 1
    assert net.multicast("z", "lan", 9, b"!") == 0
    net.multicast("x", "lan", 9, b"up")
    sim.run()
    assert [len(got[n]) for n in "xyz"] == [0, 1, 0]
    assert net.interface_name("r", "s1") == "s1"
    assert net.segments_of("r") == ("s1", "s2")


def test_segment_loss_and_queue():
    topo = Topology()
    for i in range(11):
        topo.add_node(f"m{i}", segment="s")
    sim = Simulator(seed=3)
    net = SimNetwork(sim, topo, segment_loss=0.5, queue_bytes=1000, segment_bandwidth=1000.0)
    sent = net.multicast("m0", None, 9, b"z" * 500)
    assert 0 < sent < 10 and net.drops["loss"] == 10 - sent
    # ~528 bytes (with headers) wait before the second: it still fits the 1000-byte queue
    second = net.multicast("m0", None, 9, b"z" * 500)
    assert net.drops["queue"] == 0 and net.drops["loss"] == 20 - sent - second
    assert net.multicast("m0", None, 9, b"z" * 500) == 0  # more than 1000 bytes queued
    assert net.drops["queue"] == 1


def test_link_failure_reroutes_and_reconverge_delay_loses_packets():
    # square a-b-d and a-c-d; a-b-d is cheaper
    topo = Topology()
    topo.add_link("a", "b", 1.0, symmetric=True)
    topo.add_link("b", "d", 1.0, symmetric=True)
    topo.add_link("a", "c", 2.0, symmetric=True)
    topo.add_link("c", "d", 2.0, symmetric=True)
    sim = Simulator()
    net = SimNetwork(sim, topo, reconverge_delay=1.0, default_latency=0.01)
    got = sink(net, "d")
    assert net.route_cost("a", "d") == 2.0
    net.schedule_link(5.0, "b", "d", False)
    sim.schedule_at(5.5, net.send, "a", 1, (net.address("d"), 9), b"lost")
    sim.schedule_at(7.0, net.send, "a", 1, (net.address("d"), 9), b"rerouted")
    sim.run(until=10.0)
    assert [d for _, d, *_ in got] == [b"rerouted"]
    assert net.drops["link_down"] == 1
    assert net.route_cost("a", "d") == 4.0
    assert net.neighbours("b") == ["a"]
    net.set_link_up("b", "d", True)
    sim.run(until=12.0)
    assert net.route_cost("a", "d") == 2.0
    net.set_link_cost("a", "b", 5.0)
    sim.run(until=14.0)
    assert net.route_cost("a", "d") == 4.0
    with pytest.raises(KeyError):
        net.set_link_up("a", "d", False)


def test_packet_in_flight_over_a_link_that_goes_down_is_lost():
    sim = Simulator()
    net = SimNetwork(sim, line(2, latency=1.0))
    got = sink(net, "n1")
    net.send("n0", 1, (net.address("n1"), 9), b"x")
    sim.schedule(0.5, net.set_link_up, "n0", "n1", False)
    sim.run()
    assert got == [] and net.drops["link_down"] == 1


def test_partition_and_merge():
    topo = line(4, bandwidth=1e6)
    for nid in topo.nodes:
        topo.nodes[nid].properties["segment"] = "all"
    sim = Simulator()
    net = SimNetwork(sim, topo)
    got = {n: sink(net, n) for n in topo.nodes}
    net.set_link_up("n2", "n3", False)  # by hand: stays down across the merge
    net.schedule_partition(1.0, [["n0", "n1"]])  # n2, n3: the rest
    sim.run(until=2.0)
    assert math.isinf(net.route_cost("n0", "n2"))
    assert math.isinf(net.route_cost("n2", "n3"))  # the explicit link is down by hand
    assert net.route_cost("n1", "n0") == 1.0
    net.multicast("n0", None, 9, b"m")
    net.send("n0", 1, (net.address("n3"), 9), b"u")
    sim.run(until=3.0)
    assert [len(got[n]) for n in ("n0", "n1", "n2", "n3")] == [0, 1, 0, 0]
    assert net.drops["no_route"] == 1
    net.schedule_merge(4.0)
    sim.run(until=5.0)
    assert net.route_cost("n0", "n3") == 1.0  # the implicit l2 link (no explicit one)
    assert net.route_cost("n2", "n3") == 2.0  # n2 -> n0 or n1 -> n3, both implicit
    assert not net.links[("n2", "n3")].up
    net.multicast("n0", None, 9, b"m")
    sim.run()
    assert [len(got[n]) for n in ("n1", "n2", "n3")] == [2, 1, 1]
    with pytest.raises(ValueError, match="twice"):
        net.partition([["n0"], ["n0"]])
    with pytest.raises(KeyError):
        net.partition([["nope"]])


def test_node_down_neither_sends_forwards_nor_receives():
    sim = Simulator()
    net = SimNetwork(sim, line(3, bandwidth=1e6))
    got = sink(net, "n2")
    net.set_node_up("n1", False)
    net.send("n0", 1, (net.address("n2"), 9), b"x")
    net.send("n1", 1, (net.address("n2"), 9), b"x")
    net.multicast("n1", None, 9, b"x")
    sim.run()
    assert got == []
    assert net.drops["no_route"] == 1 and net.drops["node_down"] == 2
    net.set_node_up("n1", True)
    net.send("n0", 1, (net.address("n2"), 9), b"x")
    sim.run()
    assert len(got) == 1
    with pytest.raises(KeyError):
        net.set_node_up("zz", False)


def test_delivery_errors_are_counted_not_raised():
    sim = Simulator()
    net = SimNetwork(sim, line(2, bandwidth=1e6))
    got = sink(net, "n0")
    net.send("n0", 1, ("192.0.2.1", 9), b"x")
    net.send("n0", 1, (net.address("n1"), 9), b"x")  # nobody listens
    net.send("n0", 1, (net.address("n0"), 9), b"self")
    sim.run()
    assert net.drops["unknown_address"] == 1
    assert net.drops["no_listener"] == 1
    assert got[0][1] == b"self"
    assert net.node_at(net.address("n1")) == "n1"
    assert net.node_at("192.0.2.1") is None
    net.unbind("n0", 9)
    net.send("n1", 1, (net.address("n0"), 9), b"late")
    sim.run()
    assert net.drops["no_listener"] == 2
    snap = net.snapshot()
    assert snap["n0"].sent_datagrams == 3 and snap["n1"] is not net.counters["n1"]
    assert "SimNetwork(nodes=2" in repr(net)


def test_addresses_from_properties_and_synthetic():
    topo = Topology()
    topo.add_node("a", address="fd00::1")
    topo.add_node("b", local_addresses=["192.168.1.2", "x"])
    topo.add_node("c", address="fd00::1")  # taken: synthetic
    net = SimNetwork(Simulator(), topo)
    assert net.address("a") == "fd00::1"
    assert net.address("b") == "192.168.1.2"
    assert net.address("c") == "10.0.0.3"


def test_bind_errors_and_bad_arguments():
    net = SimNetwork(Simulator(), line(2))
    net.bind("n0", 9, print)
    with pytest.raises(ValueError, match="already bound"):
        net.bind("n0", 9, print)
    with pytest.raises(KeyError):
        net.bind("zz", 9, print)
    with pytest.raises(TypeError, match="sim"):
        SimNetwork(object(), line(2))
    for kw in ({"default_bandwidth": 0}, {"default_loss": 1.0}, {"default_latency": -1},
               {"queue_bytes": True}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            SimNetwork(Simulator(), line(2), **kw)
    topo = line(2)
    topo.add_link("n0", "n1", 1.0, origin="local", loss=2.0)
    with pytest.raises(ValueError, match="loss"):
        SimNetwork(Simulator(), topo)


def test_broken_links_are_not_simulated():
    topo = line(2)
    topo.add_link("n1", "n2", math.inf)
    net = SimNetwork(Simulator(), topo)
    assert ("n1", "n2") not in net.links
    assert math.isinf(net.route_cost("n0", "n2"))
    assert net.route_hops("n0", "n2") == -1


@dataclass(frozen=True, slots=True)
class Poke(Event):
    value: int


@dispatches
class Echo:
    """A tiny core following the protocol: answers every datagram, ticks every second."""

    def __init__(self):
        self.ticks = 0
        self.deadline = 1.0
        self.seen = []
        self.poked = None

    @handler(Start)
    def _start(self, event, *, now):
        return [SendMulticast("lan", b"hello")]

    @handler(Datagram)
    def _datagram(self, event, *, now):
        self.seen.append((event.data, event.interface, event.via_multicast))
        if event.data == b"hello":
            return [SendUnicast(event.addr, b"hi"), "event"]
        return ["got " + event.data.decode()]

    @handler(Poke)
    def _poke(self, event, *, now):
        self.poked = (event.value, now)
        return [SendUnicast(("10.0.0.1", 7), b"poke")]

    def handle_timer(self, *, now):
        self.ticks += 1
        self.deadline = now + 1.0 if self.ticks < 3 else None
        return []

    def get_timer(self):
        return self.deadline


def _pair():
    topo = Topology()
    topo.add_node("a", segment="s")
    topo.add_node("b", segment="s")
    sim = Simulator()
    return sim, SimNetwork(sim, topo)


def test_core_host_drives_a_core():
    sim, net = _pair()
    seen = []
    a = CoreHost(net, "a", Echo(), port=7, on_effect=lambda h, e: seen.append((h.node_id, e)))
    b = CoreHost(net, "b", Echo(), port=7, keep_effects=True)
    b.start()
    a.start_at(0.5)
    sim.run(until=10.0)
    # a's hello reaches b; b answers; a logs the reply as an effect
    assert b.effects == ["event"]
    assert seen == [("a", "got hi")]
    assert a.core.ticks == 3 and b.core.ticks == 3
    assert a.inputs == 5  # start, one datagram, three timers
    a.start()  # idempotent
    a.stop()
    a.stop()
    net.send("b", 7, a.address, b"x")
    sim.run()
    assert seen == [("a", "got hi")]
    assert "CoreHost('a'" in repr(a)
    with pytest.raises(KeyError):
        CoreHost(net, "zz", Echo(), port=1)


def test_core_host_feeds_events_with_their_interface():
    sim, net = _pair()
    a = CoreHost(net, "a", Echo(), port=7)
    b = CoreHost(net, "b", Echo(), port=7)
    a.start()
    b.start()
    sim.run(until=0.1)
    assert (b"hello", "lan", True) in b.core.seen  # a's multicast hello
    assert b.feed(Poke(3)) == [SendUnicast(("10.0.0.1", 7), b"poke")]
    sim.run(until=0.2)
    assert b.core.poked == (3, 0.1)
    assert (b"hi", None, False) in a.core.seen  # b's unicast answer
