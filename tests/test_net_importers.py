"""Topology importers: every shared sample against its README counts, each format's
mapping on small inline samples, malformed input, and mutation fuzzing."""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshcore.errors import TopologyFormatError
from meshcore.net import _costs
from meshcore.net.importers import (
    FORMATS,
    batman,
    cnml,
    detect_format,
    import_topology,
    load_module,
    olsr1,
)

INF = math.inf
TOPOLOGIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "topologies"

needs_data = pytest.mark.skipif(
    not TOPOLOGIES.is_dir(), reason=f"shared topology samples not found at {TOPOLOGIES}"
)

# (path, format, nodes, directed links or None, unordered pairs or None): the figures of
# ../shared/data/topologies/README.md ("nodes", "links"/"directed edges", "pairs").
SAMPLES = [
    ("netjson/ninux-roma-olsr1-etx.json", "netjson", 147, 2 * 191, 191),  # undirected
    ("netjson/awmn-bgp.json", "netjson", 443, 2 * 600, 600),  # undirected
    ("netjson/battlemesh-v10-olsrd-netjson-10dbm.json", "netjson", 16, 114, 57),
    # pairs: see test_ffgraz_self_loops_are_skipped_and_gateway_is_a_bool
    ("netjson/ffgraz-anon-etx.json", "netjson", 244, None, None),
    ("olsr2/battlemesh-v11-olsrd2-netjsoninfo-routes-t1526144253", "netjson", 14, None, 42),
    ("olsr1/netdiff-olsr-5-links-jsoninfo.json", "olsr1", 5, 5, None),
    ("olsr1/netdiff-olsr-5-links-cost-changed-jsoninfo.json", "olsr1", 5, 5, None),
    ("olsr1/netdiff-olsr-2-links-jsoninfo-newformat.json", "olsr1", 3, 2, None),
    ("olsr1/netdiff-olsr-5-links-txtinfo.txt", "olsr1", 5, 5, None),
    ("olsr1/aredn-olsrd-dotdraw.dot", "olsr1", 23, 96, 48),
    ("batman-adv/netdiff-batadv-vis-jsondoc.json", "batman", 5, 8, 4),
    ("batman-adv/ffnord-2012-batadv-vis-json-lines.json", "batman", 23, 80, 40),
    # 8 originators plus the node whose table it is; 2 direct neighbours.
    ("batman-adv/batctl-readme-originators-batman-iv-2011.txt", "batman", 8 + 1, 2, 2),
    ("meshviewer/freifunk-ulm-2020-meshviewer.json", "meshviewer", 228, None, 234),
    ("meshviewer/freifunk-bielefeld-2020-meshviewer.json", "meshviewer", 273, None, 238),
    ("meshviewer/freifunk-leipzig-2020-meshviewer.json", "meshviewer", 279, None, 330),
    ("meshviewer/freifunk-cologne-bonn-area-2020-meshviewer.json", "meshviewer", 310, None, 646),
    ("meshviewer/freifunk-bremen-2020-meshviewer.json", "meshviewer", 891, None, 1268),
    ("meshviewer/freifunk-stuttgart-2020-meshviewer.json", "meshviewer", 1420, None, 1503),
    ("meshviewer/freifunk-munich-2020-meshviewer.json", "meshviewer", 1808, None, 2228),
    ("meshviewer/freifunk-berlin-2020-hopglass-olsr.json", "meshviewer", 976, None, 1148),
    ("bmx6/netdiff-bmx6-guifi.json", "bmx6", 7, None, 6),  # 6 nodes + 1 typo name
    ("cnml/guifi-zone-26494-detail-1.cnml", "cnml", 94, None, None),
    ("cnml/guifi-zone-26494-detail-2.cnml", "cnml", 94, None, None),
]


@needs_data
def test_every_shared_sample_is_listed():
    listed = {s[0] for s in SAMPLES}
    on_disk = set()
    for folder in TOPOLOGIES.iterdir():
        if not folder.is_dir() or folder.name == "babel":  # babel: tests/test_net_babel.py
            continue
        for entry in folder.iterdir():
            on_disk.add(f"{folder.name}/{entry.name}")
    assert on_disk == listed


@needs_data
@pytest.mark.parametrize(("name", "fmt", "nodes", "links", "pairs"), SAMPLES, ids=lambda v: v)
def test_sample_counts_match_the_readme(name, fmt, nodes, links, pairs):
    path = TOPOLOGIES / name
    if path.is_file():
        assert detect_format(path.read_text(encoding="utf-8", errors="replace")) == fmt
    topo = import_topology(path)
    assert len(topo.nodes) == nodes
    if links is not None:
        assert topo.num_links == links
    if pairs is not None:
        assert len(topo.pairs()) == pairs
    graph, ids = topo.to_cost_graph()
    assert graph.num_nodes == nodes and ids == sorted(topo.nodes)


@needs_data
def test_babel_sample_goes_through_the_dispatcher():
    topo = import_topology(TOPOLOGIES / "babel" / "babelweb2-babeld-1.8-dump-monitor.txt")
    assert "02:26:2d:ff:fe:91:ca:93" in topo.nodes  # my-id
    assert len(topo.nodes) == 2  # README: one neighbour, all routes from one router-id


@needs_data
def test_ffgraz_self_loops_are_skipped_and_gateway_is_a_bool():
    path = TOPOLOGIES / "netjson" / "ffgraz-anon-etx.json"
    raw = json.loads(path.read_text())
    loops = sum(1 for lk in raw["links"] if lk["source"] == lk["target"])
    topo = import_topology(path)
    assert len(topo.nodes) == 244
    assert topo.stats["records"] == 457
    assert topo.stats["self_loops"] == loops > 0
    assert len(topo.pairs()) == len(
        {
            frozenset((lk["source"], lk["target"]))
            for lk in raw["links"]
            if lk["source"] != lk["target"]
        }
    )
    gateways = [n for n in topo.nodes.values() if n.properties["gateway"] is True]
    assert gateways and all(isinstance(n.properties["gateway"], bool) for n in topo.nodes.values())


@needs_data
def test_ninux_broken_link_and_battlemesh_duplicates():
    ninux = import_topology(TOPOLOGIES / "netjson" / "ninux-roma-olsr1-etx.json")
    assert ninux.link("172.16.132.97", "172.16.132.99").broken
    assert ninux.link("172.16.132.99", "172.16.132.97").broken
    bm = import_topology(TOPOLOGIES / "netjson" / "battlemesh-v10-olsrd-netjson-10dbm.json")
    assert bm.stats["duplicates"] == 10  # README: 10 duplicates ending at router_id
    assert bm.router_id == "10.254.0.10"
    raw = json.loads(
        (TOPOLOGIES / "netjson" / "battlemesh-v10-olsrd-netjson-10dbm.json").read_text()
    )
    for lk in bm.links():
        costs = [
            r["cost"] for r in raw["links"] if (r["source"], r["target"]) == (lk.source, lk.target)
        ]
        assert lk.cost == min(costs)


@needs_data
def test_olsr1_json_and_txtinfo_agree_and_cost_changes_show_in_diff():
    base = TOPOLOGIES / "olsr1"
    js = import_topology(base / "netdiff-olsr-5-links-jsoninfo.json")
    txt = import_topology(base / "netdiff-olsr-5-links-txtinfo.txt")
    assert set(js.nodes) == set(txt.nodes)
    for link in js.links():
        # json: tcEdgeCost/1024 = 28334/1024 = 27.67; txtinfo prints ETX 27.669
        assert txt.link(link.source, link.target).cost == pytest.approx(link.cost, abs=0.002)
    assert js.link("10.150.0.3", "10.150.0.2").cost == pytest.approx(28334 / 1024)
    changed = import_topology(base / "netdiff-olsr-5-links-cost-changed-jsoninfo.json")
    diff = js.diff(changed)
    assert len(diff.changed_links) == 4  # README: 4 tcEdgeCost values changed
    assert not diff.added_links and not diff.removed_links


@needs_data
def test_olsr1_newformat_mid_aliases_fold_onto_main_addresses():
    topo = import_topology(TOPOLOGIES / "olsr1" / "netdiff-olsr-2-links-jsoninfo-newformat.json")
    assert topo.nodes["10.150.0.2"].properties["local_addresses"] == [
        "172.16.192.2",
        "192.168.0.2",
    ]
    assert topo.version == "0.6.6"


@needs_data
def test_dot_draw_infinite_hna_and_sub_one_costs():
    topo = import_topology(TOPOLOGIES / "olsr1" / "aredn-olsrd-dotdraw.dot")
    assert topo.link("10.42.160.90", "10.114.71.206").broken
    assert topo.link("10.42.160.90", "10.104.91.20").cost == 0.1  # AREDN-adjusted
    assert sum(lk.broken for lk in topo.links()) == 2
    hna = sum(len(n.properties.get("prefixes", [])) for n in topo.nodes.values())
    assert hna == 23  # README: 23 HNA edges, none of them a router
    assert not any("/" in n for n in topo.nodes)


@needs_data
def test_batman_secondary_interfaces_merge_and_clients_are_properties():
    topo = import_topology(TOPOLOGIES / "batman-adv" / "netdiff-batadv-vis-jsondoc.json")
    node = topo.nodes["90:f6:52:f2:8c:2c"]
    assert node.properties["local_addresses"] == ["90:f6:52:f2:8c:2b", "90:f6:52:f2:8c:2d"]
    assert "90:f6:52:f2:8c:2d" not in topo.nodes
    assert topo.link("90:f6:52:f2:8c:2c", "a0:f3:c1:96:94:06") is not None
    assert topo.stats["clients"] == 26
    lines = import_topology(TOPOLOGIES / "batman-adv" / "ffnord-2012-batadv-vis-json-lines.json")
    assert lines.stats["clients"] == 62
    # line 2 of the dump: router 56:e6:fc:b0:43:80 -> neighbor 8e:3d:c2:10:10:28, label 1.015
    assert lines.link("56:e6:fc:b0:43:80", "8e:3d:c2:10:10:28").cost == pytest.approx(1.015)
    # line 1 joins two secondaries (of b0:43:80 and of 99:58:f2): it folds onto their primaries
    assert "56:e6:fc:af:43:81" not in lines.nodes
    assert lines.link("56:e6:fc:b0:43:80", "56:e6:fc:99:58:f2").cost == 1.0


@needs_data
def test_batctl_originators_direct_links():
    topo = import_topology(
        TOPOLOGIES / "batman-adv" / "batctl-readme-originators-batman-iv-2011.txt"
    )
    me = "fe:fe:00:00:01:01"
    assert topo.router_id == me
    assert topo.neighbours(me) == ["fe:fe:00:00:02:01", "fe:fe:00:00:03:01"]
    assert topo.link(me, "fe:fe:00:00:02:01").cost == 1.0  # TQ 255
    assert topo.link(me, "fe:fe:00:00:03:01").cost == pytest.approx(255 / 81)
    assert topo.nodes["fe:fe:00:00:08:01"].properties["nexthop"] == "fe:fe:00:00:02:01"
    assert topo.nodes["fe:fe:00:00:08:01"].properties["path_cost"] == pytest.approx(255 / 194)


@needs_data
def test_meshviewer_directions_duplicates_and_gateways():
    path = TOPOLOGIES / "meshviewer" / "freifunk-ulm-2020-meshviewer.json"
    raw = json.loads(path.read_text())
    topo = import_topology(path)
    first = raw["links"][0]
    assert topo.link(first["source"], first["target"]).cost == pytest.approx(1 / first["source_tq"])
    assert topo.link(first["target"], first["source"]).cost == pytest.approx(1 / first["target_tq"])
    assert topo.link(first["source"], first["target"]).properties["type"] == first["type"]
    gateways = {n["node_id"] for n in raw["nodes"] if n["is_gateway"]}
    assert {n.id for n in topo.nodes.values() if n.properties.get("gateway")} == gateways
    munich = import_topology(TOPOLOGIES / "meshviewer" / "freifunk-munich-2020-meshviewer.json")
    assert any(lk.broken for lk in munich.links())  # tq 0 occurs there


@needs_data
def test_hopglass_uses_olsr_link_costs():
    topo = import_topology(TOPOLOGIES / "meshviewer" / "freifunk-berlin-2020-hopglass-olsr.json")
    link = topo.link("Jagow25b.olsr", "Jagow25.olsr")
    # two interface links, linkCost 1024 and 1419: the better one wins
    assert link.cost == 1.0
    assert topo.stats["records"] == 1597


@needs_data
def test_cnml_working_links_only():
    path = TOPOLOGIES / "cnml" / "guifi-zone-26494-detail-1.cnml"
    text = path.read_text()
    topo = import_topology(path)
    statuses = re.findall(r'<link [^>]*link_status="(\w+)"', text)
    assert len(statuses) == 35 and statuses.count("Working") == 6  # README
    assert topo.stats["skipped_status"] == 35 - 6
    assert all(lk.properties["status"] == "Working" for lk in topo.links())
    every = cnml.load_cnml(
        text, str(path), statuses={"Working", "Planned", "Building", "Testing", "Inactive"}
    )
    assert len({lk.properties["link_id"] for lk in every.links()}) <= 19
    assert every.num_links > topo.num_links
    newer = import_topology(TOPOLOGIES / "cnml" / "guifi-zone-26494-detail-2.cnml")
    assert topo.diff(newer).added_links


@needs_data
def test_olsr2_routes_directory_and_single_file():
    folder = TOPOLOGIES / "olsr2" / "battlemesh-v11-olsrd2-netjsoninfo-routes-t1526144253"
    topo = import_topology(folder)
    one = import_topology(folder / "mgmt-192.168.254.1.json")
    assert one.router_id == "10.0.1.1"
    assert one.neighbours("10.0.1.1") == sorted(topo.neighbours("10.0.1.1"))
    # "cost":11 -> "186.181Mbit/s": 11 * 54 / 2048 on the 54 Mbit/s reference scale
    assert one.link("10.0.1.1", "10.0.2.1").cost == pytest.approx(11 * 54 / 2048)
    assert topo.nodes["10.0.2.1"].properties["gateway"] is True
    assert "0.0.0.0/0" in topo.nodes["10.0.2.1"].properties["prefixes"]


# -- inline samples, one format at a time --------------------------------------------


def _load(text: str, fmt: str | None = None, name: str = "sample"):
    return import_topology(name, format=fmt, text=text)


def test_netjson_undirected_directed_flag_and_dangling_ends():
    doc = {
        "type": "NetworkGraph",
        "protocol": "p",
        "version": "1",
        "metric": "etx",
        "nodes": [
            {
                "id": "a",
                "label": "A",
                "local_addresses": ["10.0.0.1"],
                "properties": {"gateway": "true"},
            },
            {"id": "a"},
        ],
        "links": [
            {
                "source": "a",
                "target": "b",
                "cost": 2.0,
                "cost_text": "2",
                "properties": {"source": "weird key"},
            }
        ],
    }
    topo = _load(json.dumps(doc))
    assert topo.link("b", "a").cost == 2.0  # undirected
    assert topo.nodes["a"].properties == {"gateway": True, "local_addresses": ["10.0.0.1"]}
    assert topo.nodes["a"].label == "A"
    assert topo.stats["implicit_nodes"] == 1 and topo.stats["duplicate_nodes"] == 1
    assert topo.link("a", "b").properties == {"source": "weird key", "cost_text": "2"}
    doc["directed"] = True
    assert _load(json.dumps(doc)).link("b", "a") is None


@pytest.mark.parametrize(
    ("metric", "cost", "expected"),
    [
        ("ETX", 4096.0, INF),
        ("etx_ff", 1.5, 1.5),
        ("ff_dat_metric", 2048, 54.0),
        ("eBGP", 7.0, 1.0),
        ("airtime", 304, 2.0),
        ("babel", 512, 2.0),
        ("TQ", 1.2, 1.2),
        (None, 9.0, 1.0),
    ],
)
def test_netjson_metric_conversions(metric, cost, expected):
    doc = {
        "type": "NetworkGraph",
        "nodes": [],
        "directed": True,
        "links": [{"source": "a", "target": "b", "cost": cost}],
    }
    if metric is not None:
        doc["metric"] = metric
    assert _load(json.dumps(doc)).link("a", "b").cost == expected


def test_netjson_collection_merges_graphs():
    g1 = {
        "type": "NetworkGraph",
        "protocol": "olsr",
        "metric": "etx",
        "nodes": [],
        "links": [{"source": "a", "target": "b", "cost": 1}],
    }
    g2 = {
        "type": "NetworkGraph",
        "protocol": "batman",
        "metric": "tq",
        "nodes": [],
        "links": [
            {"source": "c", "target": "d", "cost": 1},
            {"source": "c", "target": "c", "cost": 1},
        ],
    }
    topo = _load(json.dumps({"type": "NetworkCollection", "collection": [g1, g2]}))
    assert topo.pairs() == {frozenset("ab"), frozenset("cd")}
    assert topo.protocol == "olsr" and topo.stats["self_loops"] == 1


def test_netjson_routes_with_rfc_key_and_router_id_only():
    doc = {
        "type": "NetworkRoutes",
        "protocol": "olsrv2",
        "metric": "ff_dat_metric",
        "router_id": "id_10.0.0.1",
        "routes": [
            {
                "destination": "10.0.0.2",
                "next": "fe80::2",
                "device": "wlan0",
                "cost": 2048,
                "properties": {
                    "hops": 1,
                    "next_router_addr": "10.0.0.2",
                    "destination_id": "id_10.0.0.2",
                },
            },
            {
                "destination": "10.0.0.2",
                "cost": 4096,
                "properties": {"hops": 1, "next_router_id": "id_10.0.0.2"},
            },
            {
                "destination": "10.9.0.0/16",
                "cost": 4096,
                "properties": {
                    "hops": 2,
                    "next_router_addr": "10.0.0.2",
                    "last_router_addr": "10.0.0.2",
                    "destination_id": "id_10.0.0.3",
                },
            },
        ],
    }
    topo = _load(json.dumps(doc))
    assert topo.router_id == "10.0.0.1"
    assert topo.link("10.0.0.1", "10.0.0.2").cost == 54.0  # lowest of the two
    assert topo.nodes["10.0.0.3"].properties["prefixes"] == ["10.9.0.0/16"]
    del doc["router_id"]
    with pytest.raises(TopologyFormatError, match="router_id"):
        _load(json.dumps(doc))


JSONINFO_ALL = {
    "data": [
        {
            "topology": [
                {
                    "lastHopIP": "10.0.0.1",
                    "destinationIP": "10.0.0.2",
                    "linkQuality": 1.0,
                    "neighborLinkQuality": 0.5,
                    "tcEdgeCost": 2048,
                },
                {
                    "lastHopIP": "10.0.0.2",
                    "destinationIP": "172.16.0.1",
                    "linkQuality": 1,
                    "neighborLinkQuality": 1,
                    "tcEdgeCost": 1.0,
                },
                {"lastHopIP": "10.0.0.2", "destinationIP": "10.0.0.3", "tcEdgeCost": "INFINITE"},
                {
                    "lastHopIP": "10.0.0.3",
                    "destinationIP": "10.0.0.2",
                    "linkQuality": 0.5,
                    "neighborLinkQuality": 0.5,
                },
            ],
            "links": [
                {
                    "localIP": "10.0.0.1",
                    "remoteIP": "10.0.0.2",
                    "linkQuality": 1,
                    "neighborLinkQuality": 1,
                    "linkCost": 1024,
                },
                {"localIP": "10.0.0.1", "remoteIP": "192.168.7.7", "linkCost": 1024},
            ],
            "mid": [{"ipAddress": "10.0.0.1", "aliases": ["172.16.0.1"]}],
            "hna": [{"destination": "0.0.0.0", "genmask": 0, "gateway": "10.0.0.3"}],
        }
    ]
}


def test_olsr1_jsoninfo_mid_links_hna_and_cost_forms():
    topo = _load(json.dumps(JSONINFO_ALL))
    assert set(topo.nodes) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    assert topo.link("10.0.0.1", "10.0.0.2").cost == 1.0  # local link refines TC (2.0)
    assert topo.link("10.0.0.2", "10.0.0.1").cost == 1.0  # alias folded, float ETX
    assert topo.link("10.0.0.2", "10.0.0.3").broken
    assert topo.link("10.0.0.3", "10.0.0.2").cost == 4.0  # derived from LQ * NLQ
    assert topo.stats["unknown_local_links"] == 1
    assert topo.nodes["10.0.0.3"].properties["gateway"] is True
    assert topo.nodes["10.0.0.1"].properties["local_addresses"] == ["172.16.0.1"]


def test_olsr1_links_only_dump_takes_every_local_link():
    doc = {"links": [{"localIP": "10.0.0.1", "remoteIP": "10.0.0.9", "linkCost": 3072}]}
    topo = _load(json.dumps(doc), "olsr1-jsoninfo")
    assert topo.link("10.0.0.1", "10.0.0.9").cost == 3.0


TXTINFO = """HTTP/1.0 200 OK
Content-type: text/plain

Table: Links
Local IP\tRemote IP\tHyst.\tLQ\tNLQ\tCost
10.0.0.1\t10.0.0.2\t0.00\t1.000\t1.000\t1.000

Table: Topology
Dest. IP\tLast hop IP\tLQ\tNLQ\tCost
10.0.0.2\t10.0.0.1\t0.500\t1.000\t2.000
10.0.0.1\t10.0.0.2\t1.000\t1.000\t1.000
10.0.0.3\t10.0.0.2\t0.000\t0.000\tINFINITE

Table: HNA
Destination\tGateway
0.0.0.0/0\t10.0.0.3

Table: MID
IP address\tAliases
10.0.0.1\t172.16.0.1;192.168.0.1
"""


def test_olsr1_txtinfo_tables():
    topo = _load(TXTINFO)
    assert topo.link("10.0.0.1", "10.0.0.2").cost == 1.0  # Links table refines TC
    assert topo.link("10.0.0.2", "10.0.0.1").cost == 1.0
    assert topo.link("10.0.0.2", "10.0.0.3").broken
    assert topo.nodes["10.0.0.3"].properties["gateway"] is True
    assert topo.nodes["10.0.0.1"].properties["local_addresses"] == ["172.16.0.1", "192.168.0.1"]


DOT = """digraph topology
{
graph [rankdir=LR];
"10.0.0.1" -> "10.0.0.2"[label="1.500", style=solid];
"10.0.0.1" -> "10.0.0.2"[label="1.200"];
"10.0.0.1"[shape=box];
"10.0.0.2" -> "10.0.0.1"[label=INFINITE];
"10.0.0.2" -> "10.0.0.3";
"10.0.0.2" -> "0.0.0.0/0"[label="HNA"];
"0.0.0.0/0"[shape=diamond];
}
"""


def test_olsr1_dot_draw():
    topo = _load(DOT)
    assert set(topo.nodes) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    assert topo.link("10.0.0.1", "10.0.0.2").cost == 1.2
    assert topo.link("10.0.0.2", "10.0.0.1").broken
    assert topo.link("10.0.0.2", "10.0.0.3").cost == 1.0  # unlabelled: one hop
    assert topo.nodes["10.0.0.2"].properties["gateway"] is True


_HDR = "[B.A.T.M.A.N. adv 2021.0, MainIF/MAC: mesh0/02:00:00:00:00:01 (bat0/aa:bb:cc:dd:ee:ff"
BATCTL_NEW = (
    _HDR
    + """ BATMAN_IV)]
   Originator        last-seen (#/255) Nexthop           [outgoingIF]
 * 02:00:00:00:00:02    0.370s   (255) 02:00:00:00:00:02 [     mesh0]
   02:00:00:00:00:03    0.120s   ( 80) 02:00:00:00:00:03 [     mesh0]
 * 02:00:00:00:00:03    0.120s   (200) 02:00:00:00:00:02 [     mesh0]
 * 02:00:00:00:00:04    0.990s   (150) 02:00:00:00:00:02 [     mesh0]
"""
)

BATCTL_V = (
    _HDR
    + """ BATMAN_V)]
   Originator        last-seen ( throughput)  Nexthop           [outgoingIF]
 * 02:00:00:00:00:02    0.370s (      108.0) 02:00:00:00:00:02 [     mesh0]
"""
)


def test_batctl_new_layout_and_batman_v():
    topo = _load(BATCTL_NEW)
    me = "02:00:00:00:00:01"
    assert topo.neighbours(me) == ["02:00:00:00:00:02", "02:00:00:00:00:03"]
    assert topo.link(me, "02:00:00:00:00:03").cost == pytest.approx(255 / 80)
    assert topo.nodes["02:00:00:00:00:03"].properties["nexthop"] == "02:00:00:00:00:02"
    v = _load(BATCTL_V)
    assert v.metric == "throughput"
    assert v.link(me, "02:00:00:00:00:02").cost == pytest.approx(0.5)


def test_batman_lines_and_jsondoc_v():
    lines = "\n".join(
        [
            '{ "primary" : "02:00:00:00:00:01" }',
            '{ "secondary" : "02:00:00:00:01:01", "of" : "02:00:00:00:00:01" }',
            '{ "router" : "02:00:00:00:01:01", "neighbor" : "02:00:00:00:00:02", "label" : "1.5" }',
            '{ "router" : "02:00:00:00:00:02", "neighbor" : "02:00:00:00:01:01", "label" : "1.2" }',
            '{ "router" : "02:00:00:00:00:02", "gateway" : "aa:00:00:00:00:01", "label" : "TT" }',
            '{ "something" : "new" }',
        ]
    )
    topo = _load(lines)
    assert topo.link("02:00:00:00:00:01", "02:00:00:00:00:02").cost == 1.5
    assert topo.link("02:00:00:00:00:02", "02:00:00:00:00:01").cost == 1.2
    assert topo.nodes["02:00:00:00:00:02"].properties["clients"] == ["aa:00:00:00:00:01"]
    assert topo.stats["unknown_records"] == 1
    doc = {
        "algorithm": 5,
        "vis": [
            {
                "primary": "02:00:00:00:00:01",
                "neighbors": [
                    {
                        "router": "02:00:00:00:00:01",
                        "neighbor": "02:00:00:00:00:02",
                        "metric": "27.0",
                    }
                ],
            }
        ],
    }
    v = _load(json.dumps(doc))
    assert v.link("02:00:00:00:00:01", "02:00:00:00:00:02").cost == pytest.approx(2.0)


def test_meshviewer_graph_v1_and_hopglass_quality():
    graph = {
        "version": 1,
        "batadv": {
            "directed": False,
            "nodes": [
                {"id": "02:00:00:00:00:01", "node_id": "020000000001"},
                {"id": "02:00:00:00:00:02"},
            ],
            "links": [{"source": 0, "target": 1, "tq": 1.25, "vpn": True, "bidirect": False}],
        },
    }
    topo = _load(json.dumps(graph))
    assert topo.link("020000000001", "02:00:00:00:00:02").properties == {"type": "vpn"}
    assert topo.link("02:00:00:00:00:02", "020000000001") is None
    rows = {
        "JSON": {
            "rows": [
                {
                    "id": "a.olsr",
                    "value": {
                        "hostname": "a",
                        "latlng": [1, 2],
                        "links": [{"id": "b.olsr", "quality": "0.5"}],
                    },
                }
            ]
        }
    }
    hop = _load(json.dumps(rows))
    assert hop.link("a.olsr", "b.olsr").cost == 2.0
    assert hop.nodes["a.olsr"].properties["location"] == {"latitude": 1, "longitude": 2}


def test_bmx6_single_node_and_reverse_rates():
    doc = [
        {"name": "A", "links": [{"name": "B", "rxRate": 50, "txRate": 100}]},
        {"name": "C", "links": [{"name": "A", "rxRate": 25, "txRate": 0}]},
    ]
    topo = _load(json.dumps(doc))
    assert topo.link("A", "B").cost == 1.0
    assert topo.link("B", "A").cost == 2.0  # from A's rxRate: B does not report
    assert topo.link("C", "A").broken
    assert topo.link("A", "C").cost == 4.0
    single = _load(json.dumps({"links": [{"name": "X", "rxRate": 100, "txRate": 100}]}))
    assert single.link("self", "X").cost == 1.0


IW = """Interface mesh0
\taddr 02:00:00:00:00:aa
DEST ADDR         NEXT HOP          IFACE\tSN\tMETRIC\tQLEN\tEXPTIME\tDTIM\tDRET\tFLAGS
02:00:00:00:00:01 02:00:00:00:00:01 mesh0\t4\t304\t0\t3940\t100\t0\t0x15
02:00:00:00:00:02 02:00:00:00:00:01 mesh0\t7\t456\t0\t3940\t100\t0\t0x15
Station 02:00:00:00:00:01 (on mesh0)
\tsignal:  \t-42 dBm
\ttx bitrate:\t54.0 MBit/s
\tmesh plink:\tESTAB
Station 02:00:00:00:00:03 (on mesh0)
\ttx bitrate:\t27.0 MBit/s
\tmesh plink:\tESTAB
Station 02:00:00:00:00:04 (on mesh0)
\tmesh plink:\tBLOCKED
"""


def test_iw_mpath_and_station_dump():
    topo = _load(IW)
    me = "02:00:00:00:00:aa"
    assert topo.router_id == me
    assert topo.link(me, "02:00:00:00:00:01").cost == 2.0  # airtime 304 / 152 wins
    assert topo.link(me, "02:00:00:00:00:03").cost == 2.0  # 54 / 27 Mbit/s
    assert topo.link(me, "02:00:00:00:00:04").broken
    assert topo.nodes["02:00:00:00:00:02"].properties["nexthop"] == "02:00:00:00:00:01"
    assert _load("Station 02:00:00:00:00:05 (on wlan0)\n").link("self", "02:00:00:00:00:05")


def test_cnml_refuses_doctype_and_entities():
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE cnml [<!ENTITY a "aaaa">]>\n'
        "<cnml><network>&a;</network></cnml>"
    )
    with pytest.raises(TopologyFormatError) as info:
        cnml.load(bomb, "bomb.cnml")
    assert info.value.position == "line 2"


def test_cnml_inline_links_and_other_zones():
    xml = """<?xml version="1.0"?><cnml version="0.1"><network><zone id="1">
    <node id="1" title="n1" lat="1.0" lon="2.0" status="Working"><device id="10"><radio>
      <interface id="100"><link id="7" linked_device_id="20" linked_node_id="2"
        linked_interface_id="200" link_type="wds" link_status="Working"/></interface>
    </radio></device></node>
    <node id="2" title="n2"><device id="20"><interface id="200"><link id="7"
        linked_device_id="10" linked_node_id="1" linked_interface_id="100" link_type="wds"
        link_status="Working"/><link id="8" linked_node_id="99" link_status="Working"/>
    </interface></device></node></zone></network></cnml>"""
    topo = _load(xml)
    assert topo.link("1", "2").properties == {"type": "wds", "status": "Working", "link_id": "7"}
    assert topo.nodes["1"].label == "n1"
    assert topo.nodes["1"].properties["location"] == {"latitude": 1.0, "longitude": 2.0}
    assert topo.stats["implicit_nodes"] == 1 and "99" in topo.nodes


# -- dispatcher -------------------------------------------------------------------------


def test_formats_and_aliases():
    assert set(FORMATS) >= {
        "netjson",
        "olsr1",
        "batman",
        "meshviewer",
        "iw80211s",
        "bmx6",
        "cnml",
        "babel",
    }
    assert load_module("olsr1-txtinfo") is olsr1
    assert load_module("batman-adv") is batman
    with pytest.raises(ValueError, match="unknown topology format"):
        import_topology("x", format="nope", text="")


def test_undetectable_and_unreadable_inputs(tmp_path):
    with pytest.raises(TopologyFormatError, match="unrecognised"):
        _load("hello world\n")
    with pytest.raises(TopologyFormatError, match="cannot read"):
        import_topology(tmp_path / "missing.json")
    binary = tmp_path / "bin"
    binary.write_bytes(b"\x00\xff\xfe" * 10)
    with pytest.raises(TopologyFormatError, match="binary"):
        import_topology(binary)
    with pytest.raises(TopologyFormatError, match="no files"):
        import_topology(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else "")


def test_latin1_file_and_directory_merge(tmp_path):
    (tmp_path / "a.dot").write_bytes(b'digraph topology\n{\n"r\xe9" -> "b"[label="1.0"];\n}\n')
    (tmp_path / "b.dot").write_text('digraph topology\n{\n"b" -> "c"[label="2.0"];\n}\n')
    (tmp_path / ".hidden").write_text("ignored")
    topo = import_topology(tmp_path)
    assert topo.link("ré", "b").cost == 1.0 and topo.link("b", "c").cost == 2.0
    (tmp_path / "c.json").write_text('[{"name": "A", "links": []}, "rxRate", "txRate"]')
    with pytest.raises(TopologyFormatError, match="several formats"):
        import_topology(tmp_path)
    (tmp_path / "d.txt").write_text("no format here")
    with pytest.raises(TopologyFormatError, match="unrecognised"):
        import_topology(tmp_path)


# -- malformed input ----------------------------------------------------------------------

MALFORMED = [
    (
        '{"type": "NetworkGraph", "nodes": [], "links": [{"source": "a", "target": "b", '
        '"cost": -1}]}',
        "netjson",
        "links[0].cost",
    ),
    (
        '{"type": "NetworkGraph", "nodes": [], "links": [{}, {"source": "a", "target": "b", '
        '"cost": "x"}]}',
        "netjson",
        "links[0].source",
    ),
    ('{"type": "NetworkGraph", "nodes": [{"id": 1.5}], "links": []}', "netjson", "nodes[0].id"),
    (
        '{"type": "NetworkGraph", "nodes": [{"id": "a", "properties": []}], "links": []}',
        "netjson",
        "nodes[0].properties",
    ),
    (
        '{"type": "NetworkCollection", "collection": [{"type": "Other"}]}',
        "netjson",
        "collection[0].type",
    ),
    ('{"type": "NetworkGraph",\n "nodes": [,]}', "netjson", "line 2 column 12"),
    (
        '{"type": "NetworkGraph", "nodes": [], "links": [{"source": "a", "target": "b", '
        '"cost": NaN}]}',
        "netjson",
        "line 1",
    ),
    (
        '{"topology": [{"lastHopIP": "a", "destinationIP": "b"}]}',
        "olsr1-jsoninfo",
        "topology[0].tcEdgeCost",
    ),
    (
        '{"topology": [{"lastHopIP": "a", "destinationIP": "b", "tcEdgeCost": -5}]}',
        "olsr1-jsoninfo",
        "topology[0].tcEdgeCost",
    ),
    ('{"mid": [{"main": [], "aliases": []}], "topology": []}', "olsr1-jsoninfo", "mid[0].main"),
    (
        "Table: Topology\nDest. IP\tLast hop IP\tLQ\tNLQ\tCost\n1.1.1.1\t2.2.2.2\t1\t1\tabc\n",
        "olsr1-txtinfo",
        "line 3",
    ),
    ("Table: Topology\nDest. IP\tLast hop IP\tLQ\tNLQ\tCost\n1.1.1.1\n", "olsr1-txtinfo", "line 3"),
    ('digraph topology\n{\n"a" -> "b"[label="x1"];\n}\n', "olsr1-dot", "line 3"),
    ("digraph topology\n{\nthis is not dot\n}\n", "olsr1-dot", "line 3"),
    ('{"vis": [{"primary": "not-a-mac"}]}', "batman-jsondoc", "vis[0].primary"),
    (
        '{"vis": [{"primary": "02:00:00:00:00:01", "neighbors": [{"neighbor": '
        '"02:00:00:00:00:02"}]}]}',
        "batman-jsondoc",
        "vis[0].neighbors[0].metric",
    ),
    (
        '{ "primary" : "02:00:00:00:00:01" }\n{ "router" : "02:00:00:00:00:01", "neighbor" : '
        '"02:00:00:00:00:02", "label" : "x" }\n',
        "batman-json-lines",
        "line 2.label",
    ),
    ('{ "primary" : "02:00:00:00:00:01" }\n{ broken\n', "batman-json-lines", "line 2"),
    (
        "[B.A.T.M.A.N. adv 2021.0, MainIF/MAC: eth0/02:00:00:00:00:01 (bat0)]\ngarbage row\n",
        "batman-originators",
        "line 2",
    ),
    (
        "   Originator      last-seen (#/255)           Nexthop [outgoingIF]\n",
        "batman-originators",
        "line 1",
    ),
    (
        '{"nodes": [{"node_id": "a", "is_online": true}], "links": [{"source": "a", "target": "b",'
        ' "source_tq": 1.5, "target_tq": 1}]}',
        "meshviewer",
        "links[0].source_tq",
    ),
    (
        '{"JSON": {"rows": [{"id": "a", "value": {"links": [{"id": "b", "olsr_ipv4": '
        '{"linkCost": "bad"}}]}}]}}',
        "meshviewer",
        "JSON.rows[0].value.links[0].olsr_ipv4.linkCost",
    ),
    (
        '{"batadv": {"nodes": [{"id": "a"}], "links": [{"source": 0, "target": 3, "tq": 1}]}}',
        "meshviewer",
        "batadv.links[0].target",
    ),
    (
        '[{"name": "A", "links": [{"name": "B", "rxRate": 100, "txRate": 150}]}]',
        "bmx6",
        "[0].links[0].txRate",
    ),
    (
        "DEST ADDR  NEXT HOP  IFACE  SN  METRIC\n02:00:00:00:00:01 02:00:00:00:00:01 mesh0 1 x\n",
        "iw80211s",
        "line 2",
    ),
    ("DEST ADDR  NEXT HOP  IFACE\nnot a row at all\n", "iw80211s", "line 2"),
    ("<cnml><node id='1'><link id='2'/></node></cnml>", "cnml", "node[@id=1]/link"),
    # expat points at the name of the mismatched end tag: "cnml" in "</cnml>", 1-based
    ("<cnml><node id='1'></cnml>", "cnml", "line 1 column 22"),
]


@pytest.mark.parametrize(("text", "fmt", "position"), MALFORMED)
def test_malformed_input_names_file_format_and_position(text, fmt, position):
    with pytest.raises(TopologyFormatError) as info:
        import_topology("bad.input", text=text, format=fmt.split("-")[0])
    err = info.value
    assert err.path == "bad.input"
    assert err.format == fmt
    assert err.position == position
    assert str(err).startswith(f"bad.input: {fmt}: {position}: ")


# -- cost conversions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("func", "value", "expected"),
    [
        (_costs.babel_cost, 96, 0.375),
        (_costs.babel_cost, 256, 1.0),
        (_costs.babel_cost, 65535, INF),
        (_costs.batman_tq_cost, 255, 1.0),
        (_costs.batman_tq_cost, 0, INF),
        (_costs.ratio_cost, 0.5, 2.0),
        (_costs.ratio_cost, 0, INF),
        (_costs.olsr1_etx_cost, "INFINITE", INF),
        (_costs.olsr1_etx_cost, 4096.0, INF),
        (_costs.olsr1_etx_cost, "0.100", 0.1),
        (_costs.olsr1_cost, 1024, 1.0),
        (_costs.olsr1_cost, 4194304, INF),
        (_costs.olsr1_cost, 1, 1.0),
        (_costs.olsr1_cost, "inf", INF),
        (_costs.olsr2_dat_cost, 2048, 54.0),
        (_costs.olsr2_dat_cost, 0xFFFFFF, INF),
        (_costs.throughput_cost, 54, 1.0),
        (_costs.throughput_cost, 0, INF),
        (_costs.bmx6_rate_cost, 50, 2.0),
        (_costs.bmx6_rate_cost, 0, INF),
        (_costs.airtime_cost, 152, 1.0),
        (_costs.airtime_cost, 0, INF),
        (_costs.hop_cost, 17, 1.0),
    ],
)
def test_cost_conversions(func, value, expected):
    assert func(value) == expected


def test_olsr1_cost_uses_lq_nlq_to_pick_the_scale():
    assert _costs.olsr1_cost(4.046875, 1, 0.246) == 4.046875  # olsrd 0.9 float ETX
    assert _costs.olsr1_cost(10444, 1, 0.098) == pytest.approx(10444 / 1024)
    assert _costs.olsr1_cost(2048, "x", 1) == 2.0  # unusable LQ: magnitude rule


@pytest.mark.parametrize(
    ("func", "value"),
    [
        (_costs.babel_cost, -1),
        (_costs.batman_tq_cost, 256),
        (_costs.ratio_cost, 1.5),
        (_costs.olsr1_etx_cost, -1),
        (_costs.olsr1_cost, -1),
        (_costs.olsr2_dat_cost, -1),
        (_costs.throughput_cost, -1),
        (_costs.bmx6_rate_cost, 101),
        (_costs.airtime_cost, -1),
        (_costs.babel_cost, "abc"),
        (_costs.babel_cost, True),
        (_costs.babel_cost, None),
        (_costs.babel_cost, float("nan")),
    ],
)
def test_cost_conversions_refuse_impossible_values(func, value):
    with pytest.raises(ValueError):
        func(value)


# -- fuzzing: mutated real samples raise nothing but TopologyFormatError --------------------

_SEEDS = [
    json.dumps(JSONINFO_ALL),
    TXTINFO,
    DOT,
    BATCTL_NEW,
    IW,
    '{"type": "NetworkGraph", "protocol": "p", "version": "1", "metric": "etx", "nodes": '
    '[{"id": "a", "properties": {"gateway": "true"}}], "links": [{"source": "a", "target": '
    '"b", "cost": 1.5}]}',
    '{"nodes": [{"node_id": "a", "is_online": true, "hostname": "h"}], "links": [{"source": '
    '"a", "target": "b", "source_tq": 0.5, "target_tq": 1, "type": "vpn"}]}',
    '[{"name": "A", "links": [{"name": "B", "rxRate": 50, "txRate": 100}]}]',
    '{"vis": [{"primary": "02:00:00:00:00:01", "secondary": ["02:00:00:00:00:03"], '
    '"neighbors": [{"router": "02:00:00:00:00:03", "neighbor": "02:00:00:00:00:02", '
    '"metric": "1.0"}], "clients": ["02:00:00:00:00:09"]}]}',
    '<cnml><node id="1"><link id="2" linked_node_id="3" link_status="Working"/></node></cnml>',
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEEDS),
    edits=st.lists(
        st.tuples(
            st.integers(0, 10_000),
            st.integers(0, 4),
            st.sampled_from([*list('{}[]",:0123456789.-eE \n\tax"INFINITE'), "null", "1e999"]),
        ),
        max_size=4,
    ),
    fmt=st.sampled_from([None, *FORMATS]),
)
def test_mutated_inputs_raise_only_topology_format_errors(seed, edits, fmt):
    text = seed
    for pos, cut, insert in edits:
        pos %= len(text) + 1
        text = text[:pos] + insert + text[pos + cut :]
    try:
        topo = import_topology("fuzz", format=fmt, text=text)
    except TopologyFormatError:
        return
    for link in topo.links():
        assert link.cost >= 0  # never NaN or negative
    topo.to_cost_graph()


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.sampled_from([None, *FORMATS]))
def test_random_text_raises_only_topology_format_errors(text, fmt):
    with contextlib.suppress(TopologyFormatError):
        import_topology("fuzz", format=fmt, text=text)


# -- edge cases: self-loops, duplicates, unusual but valid records ----------------------------

M1, M2, M3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"


def test_self_loops_and_duplicates_are_skipped_and_counted():
    doc = {
        "vis": [
            {
                "primary": M1,
                "secondary": M3,
                "neighbors": [
                    {"router": M3, "neighbor": M1, "metric": "1.0"},
                    {"router": M1, "neighbor": M2, "metric": "2.0"},
                    {"router": M3, "neighbor": M2, "metric": "1.5"},
                    {"router": M1, "neighbor": M2, "metric": "3.0"},
                ],
            }
        ]
    }
    topo = _load(json.dumps(doc))
    assert topo.stats["self_loops"] == 1 and topo.stats["duplicates"] == 2
    assert topo.link(M1, M2).cost == 1.5
    mv = {
        "nodes": [{"node_id": "a", "is_online": True}, {"node_id": "a"}],
        "links": [{"source": "a", "target": "a", "source_tq": 1, "target_tq": 1}],
    }
    topo = _load(json.dumps(mv))
    assert topo.stats == {"duplicate_nodes": 1, "records": 1, "self_loops": 1}
    graph = {
        "batadv": {
            "nodes": [{"id": "x"}, {"id": "y"}],
            "links": [{"source": 0, "target": 0, "tq": 1}, {"source": 0, "target": 1, "tq": 2}],
        }
    }
    topo = _load(json.dumps(graph))
    assert topo.link("y", "x").cost == 2.0 and topo.stats["self_loops"] == 1
    rows = {"JSON": {"rows": [{"id": "a", "value": {"links": [{"id": "a", "quality": 1}]}}]}}
    assert _load(json.dumps(rows)).stats["self_loops"] == 1
    bmx = [{"name": "A", "links": [{"name": "A", "rxRate": 1, "txRate": 1}]}]
    assert _load(json.dumps(bmx)).stats["self_loops"] == 1
    jsoninfo = {
        "topology": [
            {"lastHopIP": "1.1.1.1", "destinationIP": "1.1.1.2", "tcEdgeCost": 2048},
            {"lastHopIP": "1.1.1.1", "destinationIP": "1.1.1.2", "tcEdgeCost": 3072},
            {"lastHopIP": "1.1.1.1", "destinationIP": "1.1.1.1", "tcEdgeCost": 1024},
        ],
        "links": [{"localIP": "1.1.1.2", "remoteIP": "1.1.1.2", "linkCost": 1024}],
        "hna": [{"destination": "10.0.0.0", "netmask": 8, "gateway": "9.9.9.9"}],
        "mid": [{"main": {"ipAddress": "1.1.1.1"}, "aliases": [{"ipAddress": "1.1.1.1"}]}],
    }
    topo = _load(json.dumps(jsoninfo))
    assert topo.link("1.1.1.1", "1.1.1.2").cost == 2.0
    assert topo.stats["self_loops"] == 2 and topo.stats["duplicates"] == 1
    assert topo.stats["unknown_hna"] == 1
    dot = 'digraph topology\n{\n"a" -> "a"[label="1.0"];\n"a" -> "b"[label="2.0"];\n}\n'
    assert _load(dot).stats["self_loops"] == 1
    as_list = json.dumps([{"topology": jsoninfo["topology"]}, {"mid": []}])
    assert _load(as_list, "olsr1").num_links == 1


def test_batman_unusual_but_valid_records():
    lines = "\n".join(
        [
            f'{{ "secondary" : "{M3}", "of" : "{M1}" }}',
            f'{{ "router" : "{M3}", "neighbor" : "{M2}", "label" : "1.25" }},',
            "",
        ]
    )
    topo = _load(lines)
    assert topo.link(M1, M2).cost == 1.25  # primary known only through "of"
    assert M1 in topo.nodes
    table = (
        "[B.A.T.M.A.N. adv 2021.0, MainIF/MAC: mesh0/02:00:00:00:00:01 (bat0)]\n"
        "No batman nodes in range ...\n"
    )
    assert list(_load(table).links()) == []
    bad_tq = (
        "[B.A.T.M.A.N. adv 2021.0, MainIF/MAC: mesh0/02:00:00:00:00:01 (bat0)]\n"
        f" * {M2}    0.370s   (300) {M2} [     mesh0]\n"
    )
    with pytest.raises(TopologyFormatError, match="line 2"):
        _load(bad_tq)
    with pytest.raises(TopologyFormatError, match="metric"):
        _load(
            json.dumps({"vis": [{"primary": M1, "neighbors": [{"neighbor": M2, "metric": "-1"}]}]})
        )
    with pytest.raises(TopologyFormatError, match=r"vis\[0\].clients\[0\]"):
        _load(json.dumps({"vis": [{"primary": M1, "clients": ["nope"]}]}))
    with pytest.raises(TopologyFormatError, match=r"line 1\.label"):
        _load(f'{{ "router" : "{M1}", "neighbor" : "{M2}" }}\n', "batman")


def test_olsr1_unusual_records():
    with pytest.raises(TopologyFormatError, match=r"data"):
        _load(json.dumps({"data": {"config": {}}}), "olsr1")
    with pytest.raises(TopologyFormatError, match="LQ and NLQ"):
        _load(
            json.dumps(
                {
                    "topology": [
                        {
                            "lastHopIP": "a",
                            "destinationIP": "b",
                            "linkQuality": 2,
                            "neighborLinkQuality": 1,
                        }
                    ]
                }
            ),
            "olsr1",
        )
    with pytest.raises(TopologyFormatError, match="ipAddress"):
        _load(json.dumps({"topology": [], "mid": [{"main": {"x": 1}}]}), "olsr1")
    nested = {
        "data": {
            "topology": [{"lastHopIP": "a", "destinationIP": "b", "tcEdgeCost": 1024}],
            "version": "0.9.8",
        }
    }
    topo = _load(json.dumps(nested), "olsr1")
    assert topo.version == "0.9.8" and topo.link("a", "b").cost == 1.0
    with pytest.raises(TopologyFormatError, match="before the first"):
        _load("garbage\nTable: Topology\n", "olsr1")
    with pytest.raises(TopologyFormatError, match="no 'Table:'"):
        _load("\n\n", "olsr1-txtinfo")
    with pytest.raises(TopologyFormatError, match="digraph"):
        _load('"a" -> "b";\n', "olsr1-dot")
    with pytest.raises(TopologyFormatError, match="digraph"):
        olsr1.load_dot("// only a comment\n", "x")


def test_meshviewer_cnml_netjson_iw_unusual_records():
    with pytest.raises(TopologyFormatError, match="node index"):
        _load(json.dumps({"batadv": {"nodes": [], "links": [{"source": "0", "target": 0}]}}))
    with pytest.raises(TopologyFormatError, match=r"tq"):
        _load(
            json.dumps(
                {
                    "batadv": {
                        "nodes": [{"id": "a"}, {"id": "b"}],
                        "links": [{"source": 0, "target": 1, "tq": -1}],
                    }
                }
            )
        )
    with pytest.raises(TopologyFormatError, match="not <cnml>"):
        cnml.load("<other/>", "x")
    with pytest.raises(TopologyFormatError, match="no id"):
        cnml.load("<cnml><node/></cnml>", "x")
    with pytest.raises(TopologyFormatError, match="lat/lon"):
        cnml.load('<cnml><node id="1" lat="x" lon="1"/></cnml>', "x")
    topo = _load(
        json.dumps(
            {
                "type": "NetworkGraph",
                "metric": "etx",
                "label": {"no": 1},
                "nodes": [],
                "links": [{"source": "a", "target": "b", "cost": 1}],
            }
        )
    )
    assert topo.label is None
    with pytest.raises(TopologyFormatError, match="no documents"):
        load_module("netjson").load_many([])
    iw = (
        "DEST ADDR         NEXT HOP          IFACE\tSN\tMETRIC\tQLEN\tEXPTIME\tDTIM\tDRET"
        "\tFLAGS\tHOP_COUNT\tPATH_CHANGE\n"
        "02:00:00:00:00:01 02:00:00:00:00:01 mesh0\t4\t152\t0\t3940\t100\t0\t0x15\t1\t0\n"
        "02:00:00:00:00:02 02:00:00:00:00:01 mesh0\t4\t304\t0\t3940\t100\t0\t0x15\t2\t0\n"
        "Station 02:00:00:00:00:01 (on mesh0)\n\ttx bitrate:\tunknown\n"
    )
    topo = _load(iw)
    assert topo.nodes["02:00:00:00:00:02"].properties["hop_count"] == 2
    assert topo.link("self", "02:00:00:00:00:01").cost == 1.0


def test_detectors_never_stop_detection(monkeypatch):
    # the first detector in FORMATS order breaks: it must be asked, and olsr1's after it
    first = next(iter(FORMATS))
    calls = []

    def boom(head):
        calls.append(head)
        raise RuntimeError("detector bug")

    monkeypatch.setattr(load_module(first), "detect", boom)
    assert detect_format(DOT) == "olsr1"
    assert len(calls) == 1


def test_a_missing_importer_module_is_skipped(monkeypatch):
    import meshcore.net.importers as importers

    monkeypatch.setitem(importers.FORMATS, "ghost", "ghost_module_that_is_absent")
    assert detect_format(DOT) == "olsr1"


def test_oversized_file_is_refused(tmp_path, monkeypatch):
    import meshcore.net.importers as importers

    big = tmp_path / "big.dot"
    big.write_text(DOT)
    monkeypatch.setattr(importers, "MAX_FILE_BYTES", 10)
    with pytest.raises(TopologyFormatError, match="limit"):
        import_topology(big)


def test_json_reader_checks():
    from meshcore.net.importers._common import JsonReader

    r = JsonReader("f", "fmt")
    assert r.text({}, "k", "x", required=False) == ""
    assert r.text({"k": 5}, "k", "x") == "5"
    cases = [
        (lambda: r.as_text("  ", "p"), "p: expected a non-empty string"),
        (lambda: r.as_text([], "p"), "p: expected a string, got an array"),
        (lambda: r.number({}, "k", "x"), "x.k: missing"),
        (lambda: r.as_number(True, "p"), "p: expected a number, got a boolean"),
        (lambda: r.as_number({}, "p"), "p: expected a number, got an object"),
        (lambda: r.as_number("1e999", "p"), "p: expected a finite number"),
        (lambda: r.text({"k": " "}, "k", "x"), "x.k: expected a non-empty string"),
        (lambda: r.obj(None, ""), "$: expected an object, got null"),
    ]
    for call, message in cases:
        with pytest.raises(TopologyFormatError) as info:
            call()
        assert f"f: fmt: {message}" in str(info.value)


@needs_data
def test_a_list_of_route_files_is_merged():
    folder = TOPOLOGIES / "olsr2" / "battlemesh-v11-olsrd2-netjsoninfo-routes-t1526144253"
    files = sorted(folder.iterdir())[:2]
    topo = import_topology(files)
    singles = [import_topology(f) for f in files]
    assert topo.num_links == sum(t.num_links for t in singles)
    with pytest.raises(ValueError, match="text"):
        import_topology(files, text="{}")
    with pytest.raises(TopologyFormatError, match="no files"):
        import_topology([])


def test_meshviewer_single_tq_and_graph_v1_key_order():
    mv = {
        "nodes": [{"node_id": "a", "is_online": True}],
        "links": [{"source": "a", "target": "b", "tq": 0.5}],
    }
    topo = _load(json.dumps(mv))
    assert topo.link("a", "b").cost == topo.link("b", "a").cost == 2.0
    graph = {
        "timestamp": "x",
        "batadv": {
            "links": [{"source": 0, "target": 1, "tq": 1.0}],
            "nodes": [{"id": "a"}, {"id": "b"}],
        },
        "version": 1,
    }
    assert detect_format(json.dumps(graph)) == "meshviewer"
