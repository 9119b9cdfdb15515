"""The babeld local-interface parser: real recordings, every line type, garbage, fuzzing."""

from __future__ import annotations

import contextlib
import heapq
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.errors import TopologyFormatError
from meshcore.net.importers import babel
from meshcore.net.importers.babel import (
    BabelNeighbour,
    BabelRoute,
    BabelState,
    detect,
    load,
    metric_to_cost,
)

HERE = Path(__file__).resolve().parent
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "topologies" / "babel"
SAMPLE = SHARED / "babelweb2-babeld-1.8-dump-monitor.txt"
R3_DUMP = HERE / "data" / "babel" / "babeld-1.12-r3-dump.txt"
R2_MONITOR = HERE / "data" / "babel" / "babeld-1.12-r2-monitor-linkcut.txt"

R1, R2, R3 = (f"02:00:00:00:00:00:00:0{i}" for i in (1, 2, 3))

GREETING = ["BABEL 1.0", "version babeld-1.12.1", "host h", "my-id 02:00:00:00:00:00:00:aa", "ok"]
ME = "02:00:00:00:00:00:00:aa"
NB_LINE = ("add neighbour 1 address fe80::1 if eth0 reach ffff ureach 0000 rxcost 96 "
           "txcost 96 cost 96")
ROUTE_LINE = ("add route 10 prefix 10.0.0.1/32 from 0.0.0.0/0 installed yes "
              "id 02:00:00:00:00:00:00:01 metric 96 refmetric 0 via fe80::1 if eth0")


def _state(*lines: str) -> BabelState:
    state = BabelState("test")
    state.feed(GREETING)
    state.feed(lines)
    return state


def _dijkstra(topo, source: str) -> dict[str, float]:
    """Shortest path costs from ``source`` over finite links (the test's own oracle)."""
    dist = {source: 0.0}
    heap = [(0.0, source)]
    while heap:
        d, node = heapq.heappop(heap)
        if d > dist.get(node, math.inf):
            continue
        for target in topo.neighbours(node):
            nd = d + topo.link(node, target).cost
            if nd < dist.get(target, math.inf):
                dist[target] = nd
                heapq.heappush(heap, (nd, target))
    return dist


# -- real recordings --------------------------------------------------------


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared sample {SAMPLE} is absent")
def test_babelweb2_sample_counts_match_the_readme():
    # README: 1 interface, 1 neighbour (rxcost/txcost 96), 5 routes from 1
    # router, 4 xroutes, then `change neighbour` updates.
    state = BabelState(str(SAMPLE))
    events = state.feed(SAMPLE.read_text().splitlines())
    assert state.protocol_version == "1.0"
    assert state.version == "babeld-1.8.0-13-gafdc3e1-dirty"
    assert state.host == "omelet"
    assert state.my_id == "02:26:2d:ff:fe:91:ca:93"
    assert len(state.interfaces()) == 1
    assert len(state.neighbours()) == 1
    assert len(state.routes()) == 5
    assert {r.router_id for r in state.routes()} == {"e2:46:9a:ff:fe:4e:91:2f"}
    assert len(state.xroutes()) == 4
    assert [e.kind for e in events].count("ok") == 2
    assert state.neighbours()[0].reach == 0xFFFE  # the last change line
    assert state.neighbours()[0].ureach is None  # 1.8 predates ureach


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared sample {SAMPLE} is absent")
def test_babelweb2_sample_topology():
    topo = load(SAMPLE.read_text(), str(SAMPLE))
    me, other = "02:26:2d:ff:fe:91:ca:93", "e2:46:9a:ff:fe:4e:91:2f"
    assert topo.protocol == "babel"
    assert topo.router_id == me
    assert set(topo.nodes) == {me, other}
    link = topo.link(me, other)
    assert link.cost == 96 / 256  # wired neighbour, cost 96
    assert link.origins == ("daemon:babel",)
    assert link.properties["interface"] == "enp3s0"
    assert "172.28.175.26" in topo.nodes[me].properties["local_addresses"]
    assert "fd1f:f88c:e207::/48" in topo.nodes[other].properties["prefixes"]
    assert topo.num_links == 1  # every route is to the neighbour itself


def test_r3_dump_path_costs_equal_babeld_metrics():
    state = BabelState(str(R3_DUMP))
    state.feed(R3_DUMP.read_text().splitlines())
    topo = state.to_topology()
    assert topo.router_id == R3
    dist = _dijkstra(topo, R3)
    best: dict[str, int] = {}
    for route in state.routes():
        if route.installed:
            best[route.router_id] = min(best.get(route.router_id, 1 << 20), route.metric)
    assert best == {R1: 192, R2: 96}
    for router, metric in best.items():
        assert dist[router] == pytest.approx(metric / 256)
    # r1 is two hops away: through r2, not a direct link.
    assert topo.link(R3, R1) is None
    assert topo.link(R2, R1).properties["via"] == "fe80::fccb:70ff:febb:acc8"
    assert topo.nodes[R1].properties["local_addresses"] == ["10.1.0.1", "10.99.12.1"]
    assert state.neighbour_addresses() == ["10.99.23.2"]  # r2's address on the shared link


def test_r2_monitor_link_cut_and_repair_are_cost_changes_with_stable_ids():
    state = BabelState(str(R2_MONITOR))
    lines = R2_MONITOR.read_text().splitlines()
    previous = None
    changes = []
    neighbour_sets = []
    oks = 0
    for number, line in enumerate(lines, start=1):
        oks += sum(e.kind == "ok" for e in state.feed_line(line))
        if oks < 2:  # the greeting's ok, then the dump's
            continue
        topo = state.to_topology()
        if previous is not None:
            diff = previous.diff(topo)
            assert not diff.added_nodes and not diff.removed_nodes, number
            changes.extend((c.source, c.target, c.old_cost, c.new_cost) for c in
                           diff.changed_links)
            addrs = state.neighbour_addresses()
            if not neighbour_sets or neighbour_sets[-1] != addrs:
                neighbour_sets.append(addrs)
        previous = topo
    assert changes == [(R2, R3, 0.375, math.inf), (R2, R3, math.inf, 0.375)]
    assert neighbour_sets == [["10.99.12.1", "10.99.23.3"], ["10.99.12.1"],
                              ["10.99.12.1", "10.99.23.3"]]
    flushed = [r for r in state.routes() if r.id == "558394636860"]
    assert flushed == []  # flushed at the cut, never re-added under that handle


# -- every line type ----------------------------------------------------------


def test_header_and_replies():
    state = BabelState()
    events = state.feed([*GREETING, "no unknown command", "bad", "", "ok"])
    kinds = [(e.kind, e.object, e.id) for e in events]
    assert kinds == [
        ("header", "BABEL", "1.0"),
        ("header", "version", "babeld-1.12.1"),
        ("header", "host", "h"),
        ("header", "my-id", ME),
        ("ok", "", ""),
        ("no", "", "unknown command"),
        ("bad", "", ""),
        ("ok", "", ""),
    ]
    assert state.line_number == 9


def test_interface_lines():
    state = _state("add interface eth0 up true ipv6 fe80::1 ipv4 10.0.0.1",
                   "add interface wlan0 up false")
    eth, wlan = state.interfaces()
    assert (eth.name, eth.up, eth.ipv6, eth.ipv4) == ("eth0", True, "fe80::1", "10.0.0.1")
    assert (wlan.up, wlan.ipv6, wlan.ipv4) == (False, None, None)
    event = state.feed_line("flush interface wlan0 up false")[0]
    assert event.record == wlan
    assert [i.name for i in state.interfaces()] == ["eth0"]


def test_neighbour_line_with_rtt_and_unknown_keys():
    (event,) = _state().feed_line(
        "add neighbour 5a address fe80::2 if wlan0 reach ff00 ureach 00f0 rxcost 256 "
        "txcost 300 rtt 12.345 rttcost 20 cost 576 future 1"
    )
    nb = event.record
    assert isinstance(nb, BabelNeighbour)
    assert (nb.reach, nb.ureach, nb.rxcost, nb.txcost, nb.cost) == (0xFF00, 0xF0, 256, 300, 576)
    assert (nb.rtt, nb.rttcost) == (12.345, 20)
    assert nb.extra == (("future", "1"),)


def test_route_and_xroute_lines_with_and_without_from():
    state = _state(
        "add route 1 prefix 10.9.0.0/16 installed no id 02:00:00:00:00:00:00:09 metric 300 "
        "refmetric 200 via fe80::9 if eth0",
        "add xroute 10.0.0.1/32-0.0.0.0/0 prefix 10.0.0.1/32 from 0.0.0.0/0 metric 0",
        "add xroute x prefix ::/0 metric 128",
    )
    (route,) = state.routes()
    assert isinstance(route, BabelRoute)
    assert (route.source_prefix, route.installed, route.metric, route.refmetric) == (
        None, False, 300, 200)
    x1, x2 = state.xroutes()
    assert (x1.prefix, x1.source_prefix, x1.metric) == ("10.0.0.1/32", "0.0.0.0/0", 0)
    assert (x2.prefix, x2.source_prefix) == ("::/0", None)
    assert state.to_topology().nodes[ME].properties["gateway"] is True


def test_change_replaces_and_flush_removes():
    state = _state(NB_LINE, ROUTE_LINE)
    state.feed_line(ROUTE_LINE.replace("add", "change").replace("metric 96", "metric 200"))
    assert state.routes()[0].metric == 200
    assert state.feed_line("flush route 10")[0].record.metric == 200
    assert state.routes() == []
    unknown = state.feed_line("flush neighbour nope")[0]
    assert (unknown.kind, unknown.record) == ("flush", None)
    state.feed_line("flush neighbour 1")
    assert state.neighbours() == []
    assert state.neighbour_router_ids() == {}


def test_reset_forgets_objects_but_keeps_counting():
    state = _state(NB_LINE)
    state.reset()
    assert (state.my_id, state.neighbours()) == (None, [])
    with pytest.raises(TopologyFormatError, match="line 7"):
        state.feed_line("nonsense")


# -- graph construction ----------------------------------------------------------


def test_unresolved_neighbour_and_next_hop():
    # A neighbour that originates nothing keeps its link-local name; a route
    # via an unknown next hop becomes a direct link with the full metric.
    state = _state(
        NB_LINE,
        "add route 2 prefix 10.5.0.0/24 from 0.0.0.0/0 installed yes "
        "id 02:00:00:00:00:00:00:05 metric 400 refmetric 304 via fe80::7 if eth1",
    )
    topo = state.to_topology()
    assert topo.link(ME, "fe80::1%eth0").cost == 96 / 256
    assert topo.nodes["fe80::1%eth0"].properties == {"babel_address": "fe80::1"}
    assert topo.link(ME, "02:00:00:00:00:00:00:05").cost == 400 / 256
    assert state.neighbour_addresses() == []
    assert state.neighbour_addresses(family=6) == ["fe80::1%eth0"]
    assert state.neighbour_addresses(family=None) == ["fe80::1%eth0"]
    with pytest.raises(ValueError, match="family"):
        state.neighbour_addresses(family=5)


def test_lowest_metric_installed_route_wins_and_unreachable_is_skipped():
    rid = "02:00:00:00:00:00:00:07"
    state = _state(
        NB_LINE, ROUTE_LINE,
        f"add route 3 prefix 10.7.0.1/32 installed yes id {rid} metric 500 refmetric 404 "
        "via fe80::1 if eth0",
        f"add route 4 prefix 10.7.0.2/32 installed yes id {rid} metric 300 refmetric 204 "
        "via fe80::1 if eth0",
        f"add route 5 prefix 10.7.0.3/32 installed no id {rid} metric 100 refmetric 4 "
        "via fe80::1 if eth0",
        "add route 6 prefix 10.8.0.1/32 installed yes id 02:00:00:00:00:00:00:08 metric 65535 "
        "refmetric 65535 via fe80::1 if eth0",
    )
    topo = state.to_topology()
    neighbour = "02:00:00:00:00:00:00:01"
    assert topo.link(neighbour, rid).cost == (300 - 96) / 256
    assert "02:00:00:00:00:00:00:08" not in topo.nodes
    assert _dijkstra(topo, ME)[rid] == 300 / 256
    assert state.neighbour_addresses() == ["10.0.0.1"]


def test_neighbour_address_prefers_the_shared_link():
    state = _state(
        "add interface eth0 up true ipv6 fe80::a ipv4 10.99.1.2",
        NB_LINE,
        ROUTE_LINE.replace("10.0.0.1/32", "10.1.0.1/32"),
        ROUTE_LINE.replace("route 10", "route 11").replace("10.0.0.1/32", "10.99.1.1/32"),
        ROUTE_LINE.replace("route 10", "route 12").replace("10.0.0.1/32", "fd00::1/128"),
    )
    assert state.neighbour_addresses() == ["10.99.1.1"]
    assert state.neighbour_addresses(family=6) == ["fd00::1"]
    assert state.router_addresses("02:00:00:00:00:00:00:01") == ["10.1.0.1", "10.99.1.1",
                                                                 "fd00::1"]


def test_unreachable_neighbour_is_a_broken_link():
    state = _state(NB_LINE.replace("cost 96", "cost 65535"), ROUTE_LINE)
    topo = state.to_topology()
    assert topo.link(ME, "02:00:00:00:00:00:00:01").broken
    assert state.neighbour_addresses() == []


def test_to_topology_needs_my_id():
    state = BabelState("x.txt")
    state.feed_line(NB_LINE)
    with pytest.raises(TopologyFormatError, match="my-id"):
        state.to_topology()
    with pytest.raises(TopologyFormatError) as info:
        load(NB_LINE + "\n", "x.txt")
    assert (info.value.path, info.value.format) == ("x.txt", "babel")


def test_metric_to_cost():
    assert metric_to_cost(256) == 1.0
    assert metric_to_cost(96) == 0.375
    assert metric_to_cost(0) == 0.0
    assert metric_to_cost(65535) == math.inf
    with pytest.raises(ValueError):
        metric_to_cost(-1)


def test_detect():
    assert detect("\n\nBABEL 1.0\nversion x\n")
    assert detect(NB_LINE + "\n")
    assert not detect('{"type": "NetworkGraph"}')
    assert not detect("")


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared sample {SAMPLE} is absent")
def test_detect_the_real_sample():
    assert detect(SAMPLE.read_text()[:65536])


def test_registry_finds_babel(tmp_path):
    importers = pytest.importorskip("meshcore.net.importers")
    path = tmp_path / "r3.txt"
    path.write_text(R3_DUMP.read_text())
    topo = importers.import_topology(path)
    assert topo.protocol == "babel"
    assert topo.router_id == R3


# -- garbage ----------------------------------------------------------------

BAD_LINES = [
    ("hello world", "unknown line"),
    ("add", "expected"),
    ("add neighbour", "expected"),
    ("add gizmo 1 a b", "unknown object"),
    ("add neighbour 1 address", "no value"),
    ("add neighbour 1 address fe80::1 address fe80::2", "twice"),
    ("add neighbour 1 address fe80::1 if eth0", "reach"),
    (NB_LINE.replace("cost 96", "cost lots"), "number"),
    (NB_LINE.replace("reach ffff", "reach zz"), "hex"),
    (NB_LINE.replace("fe80::1", "fe80::zz"), "IP address"),
    (NB_LINE.replace("cost 96", "cost 99999999999"), "number"),
    (NB_LINE.replace("rxcost 96", "rxcost 96 rtt 1e3"), "milliseconds"),
    (ROUTE_LINE.replace("installed yes", "installed maybe"), "yes or no"),
    (ROUTE_LINE.replace("id 02:00:00:00:00:00:00:01", "id 7"), "EUI-64"),
    (ROUTE_LINE.replace("10.0.0.1/32", "10.0.0.1"), "prefix"),
    (ROUTE_LINE.replace("10.0.0.1/32", "10.0.0.1/99"), "prefix"),
    ("add interface eth0 up perhaps", "true or false"),
    ("BABEL 2.0", "unsupported"),
    ("BABEL one", "header"),
    ("version a b", "exactly one"),
    ("my-id nope", "EUI-64"),
    ("ok then", "unknown line"),
    ("add neighbour 1 address \x00", "control"),
    ("x" * 5000, "characters long"),
]


@pytest.mark.parametrize(("line", "problem"), BAD_LINES)
def test_garbage_raises_format_error_naming_the_line(line, problem):
    state = _state(NB_LINE)
    before = (state.neighbours(), state.routes(), state.interfaces(), state.my_id)
    with pytest.raises(TopologyFormatError, match=problem) as info:
        state.feed_line(line)
    assert info.value.format == "babel"
    assert info.value.path == "test"
    assert info.value.position == "line 7"
    assert (state.neighbours(), state.routes(), state.interfaces(), state.my_id) == before


def test_non_str_line_is_a_type_error():
    with pytest.raises(TypeError, match="line"):
        BabelState().feed_line(b"ok")


def test_load_stops_at_the_first_bad_line():
    text = "\n".join([*GREETING, NB_LINE, "garbage here", ROUTE_LINE])
    with pytest.raises(TopologyFormatError) as info:
        babel.load(text, "dump.txt")
    assert info.value.position == "line 7"


# -- fuzzing ------------------------------------------------------------------

_TOKENS = st.sampled_from([
    "add", "change", "flush", "neighbour", "route", "xroute", "interface", "BABEL", "1.0",
    "ok", "no", "bad", "my-id", "version", "host", "address", "if", "reach", "ureach", "rxcost",
    "txcost", "cost", "rtt", "rttcost", "prefix", "from", "installed", "yes", "id", "metric",
    "refmetric", "via", "up", "true", "ipv4", "ipv6", "fe80::1", "10.0.0.1/32", "::/0",
    "02:00:00:00:00:00:00:01", "ffff", "96", "65535", "-1", "1.5", "eth0", "",
])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_format_error(line):
    state = _state(NB_LINE, ROUTE_LINE)
    with contextlib.suppress(TopologyFormatError):
        state.feed_line(line)
    state.to_topology()  # whatever got in, the graph can be built


@settings(max_examples=400, deadline=None)
@given(st.lists(_TOKENS, max_size=24))
def test_token_soup_only_raises_format_error(tokens):
    state = _state(NB_LINE, ROUTE_LINE)
    with contextlib.suppress(TopologyFormatError):
        state.feed_line(" ".join(tokens))
    state.to_topology()
    state.neighbour_addresses(family=None)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([NB_LINE, ROUTE_LINE, GREETING[3],
                        "add interface eth0 up true ipv6 fe80::1 ipv4 10.0.0.1",
                        "add xroute a prefix 10.0.0.0/8 from 0.0.0.0/0 metric 0"]),
       st.integers(0, 200), st.text(max_size=5))
def test_mutated_real_lines_only_raise_format_error(line, position, insert):
    position = min(position, len(line))
    mutated = line[:position] + insert + line[position + len(insert):]
    state = _state()
    with contextlib.suppress(TopologyFormatError):
        state.feed_line(mutated)
    state.to_topology()


def test_a_neighbour_announcing_our_own_router_id_is_not_a_link():
    # Found by hypothesis: a neighbour whose routes carry this router's id (a
    # cloned image with a duplicated id) must not become a self-loop.
    own_route = ROUTE_LINE.replace("id 02:00:00:00:00:00:00:01", f"id {ME}")
    topo = _state(NB_LINE, own_route).to_topology()
    assert topo.stats["self_loops"] == 1
    assert topo.link(ME, ME) is None
    assert list(topo.links()) == []
