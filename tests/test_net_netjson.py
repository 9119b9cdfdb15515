"""NetJSON NetworkGraph export: schema validity for every sample, round trips, locality."""

from __future__ import annotations

import enum
import json
import math
from pathlib import Path

import pytest

from meshcore.errors import TopologyFormatError
from meshcore.net.importers import import_topology
from meshcore.net.netjson import BROKEN_COST, dumps, from_netjson, to_netjson
from meshcore.net.topology import Topology

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a test dependency")

HERE = Path(__file__).resolve().parent
SCHEMA_DIR = HERE / "data" / "netjson" / "schema"
TOPOLOGIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "topologies"

INF = math.inf


class Kind(enum.Enum):
    ROUTER = 1


@pytest.fixture(scope="module")
def validate():
    schema = json.loads((SCHEMA_DIR / "network-graph.json").read_text())
    validator = jsonschema.Draft4Validator(schema)
    # jsonschema checks uniqueItems pairwise (O(n^2)): minutes for Munich's 4,456 links.
    # Large documents use a copy without it, and uniqueness is checked here by hashing.
    relaxed = json.loads(json.dumps(schema))
    relaxed["properties"]["nodes"]["uniqueItems"] = False
    relaxed["properties"]["links"]["uniqueItems"] = False
    fast_validator = jsonschema.Draft4Validator(relaxed)
    # The official schema lists nodes.items as a tuple (draft-04), which checks only the
    # first node; check every node against that Node schema too.
    node_validator = jsonschema.Draft4Validator(schema["properties"]["nodes"]["items"][0])

    def check(doc):
        if len(doc["links"]) + len(doc["nodes"]) <= 600:
            validator.validate(doc)
        else:
            fast_validator.validate(doc)
            for key in ("nodes", "links"):
                canonical = {json.dumps(item, sort_keys=True) for item in doc[key]}
                assert len(canonical) == len(doc[key])
        for node in doc["nodes"]:
            node_validator.validate(node)
        ids = [n["id"] for n in doc["nodes"]]
        assert len(ids) == len(set(ids))
        known = set(ids)
        for link in doc["links"]:
            assert link["source"] in known and link["target"] in known
        return doc

    return check


def _samples():
    if not TOPOLOGIES.is_dir():
        return []
    found = []
    for folder in sorted(TOPOLOGIES.iterdir()):
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                found.append(f"{folder.name}/{entry.name}")
    return found


def test_the_schema_rejects_a_broken_document(validate):
    with pytest.raises(jsonschema.ValidationError):
        validate(
            {
                "type": "NetworkGraph",
                "protocol": "x",
                "version": "1",
                "metric": "etx",
                "nodes": [{"id": 5}],
                "links": [],
            }
        )


@pytest.mark.skipif(not TOPOLOGIES.is_dir(), reason=f"no shared samples at {TOPOLOGIES}")
@pytest.mark.parametrize("name", _samples())
def test_every_sample_exports_valid_netjson_and_round_trips(name, validate):
    topo = import_topology(TOPOLOGIES / name)
    text = dumps(topo)
    doc = validate(json.loads(text))
    assert len(doc["nodes"]) == len(topo.nodes)
    assert len(doc["links"]) == topo.num_links
    back = from_netjson(text)
    assert set(back.nodes) == set(topo.nodes)
    assert not topo.diff(back)  # same links, same effective costs (broken stays broken)


def test_header_nodes_and_links(validate):
    topo = Topology(protocol="OLSR", version=None, metric="ETX", router_id="a", label="Net")
    topo.add_node("a", label="Alpha", local_addresses=["10.0.0.2", "10.0.0.1"], gateway=True)
    topo.add_node("b", segment="s1", seen={"x", "y"}, weird=float("nan"))
    topo.add_node("c", kind=Kind.ROUTER, obj=Path("/x"))
    topo.add_link("a", "b", 1.5, cost_text="1.500 (olsr)", type="wifi")
    topo.add_link("b", "a", 2.0, origin="local")
    topo.add_link("b", "a", 3.0, origin="gossip:b")
    topo.add_link("a", "c", INF)
    doc = validate(to_netjson(topo))
    assert doc["metric"] == "etx" and doc["source_metric"] == "ETX"
    assert doc["version"] == "" and doc["router_id"] == "a" and doc["label"] == "Net"
    assert doc["directed"] is True
    a, b, c = doc["nodes"]
    assert a == {
        "id": "a",
        "label": "Alpha",
        "local_addresses": ["10.0.0.1", "10.0.0.2"],
        "properties": {"gateway": True},
    }
    assert b["properties"] == {"segment": "s1", "seen": ["x", "y"], "weird": None, "gateway": False}
    assert c == {"id": "c", "properties": {"kind": "router", "obj": "/x", "gateway": False}}
    ab, ac, ba = doc["links"]
    assert ab == {
        "source": "a",
        "target": "b",
        "cost": 1.5,
        "cost_text": "1.500 (olsr)",
        "properties": {"type": "wifi", "origins": ["import"]},
    }
    assert ac["cost"] == BROKEN_COST and ac["cost_text"] == "INFINITE"
    assert ba["cost"] == 2.0 and ba["cost_text"] == "2.000"
    assert ba["properties"]["origins"] == ["local", "gossip:b"]
    no_broken = to_netjson(topo, include_broken=False)
    assert [(lk["source"], lk["target"]) for lk in no_broken["links"]] == [("a", "b"), ("b", "a")]


def test_locality_from_self_id_uses_the_route_view(validate):
    topo = Topology()
    topo.add_node("me", segment="lan")
    topo.add_node("same", segment="lan")
    topo.add_link("me", "same", 1.0, symmetric=True)
    topo.add_link("me", "hop", 1.0, symmetric=True)
    topo.add_link("hop", "far", 1.0, symmetric=True)
    topo.add_node("alone")
    doc = validate(to_netjson(topo, self_id="me"))
    loc = {n["id"]: n["properties"]["locality"] for n in doc["nodes"]}
    assert loc["me"] == "self"
    assert loc["alone"] == "unreachable"
    assert loc["far"] == "multi_hop"
    assert loc["same"] in ("same_segment", "one_hop")
    assert doc["router_id"] == "me"
    far = next(n for n in doc["nodes"] if n["id"] == "far")
    assert far["properties"]["hops"] == 2 and far["properties"]["route_cost"] == 2.0
    with pytest.raises(ValueError, match="self_id"):
        to_netjson(topo, self_id="nobody")


def test_locality_from_a_given_route_view():
    class Tier(enum.Enum):
        ONE_HOP = 1

    class View:
        def tier(self, node_id):
            return Tier.ONE_HOP

        def cost(self, node_id):
            raise KeyError(node_id)

    topo = Topology(router_id="a")
    topo.add_link("a", "b", 1.0)
    doc = to_netjson(topo, routes=View())
    props = {n["id"]: n["properties"] for n in doc["nodes"]}
    assert props["a"]["locality"] == "self"
    assert props["b"] == {"gateway": False, "locality": "one_hop"}


def test_dumps_is_strict_json_and_from_netjson_takes_a_dict():
    topo = Topology()
    topo.add_link("a", "b", INF)
    text = dumps(topo, indent=None)
    assert "Infinity" not in text and text.endswith("\n")
    back = from_netjson(json.loads(text))
    assert back.link("a", "b").broken
    with pytest.raises(TopologyFormatError):
        from_netjson("{}")


def test_round_trip_keeps_direction_labels_and_properties():
    topo = Topology(protocol="babel", metric="babel")
    topo.add_node("a", label="A", gateway=True, local_addresses=["fe80::1"])
    topo.add_link("a", "b", 0.375)  # one direction only: must not come back as two
    back = from_netjson(dumps(topo))
    assert back.link("b", "a") is None
    assert back.link("a", "b").cost == 0.375
    assert back.nodes["a"].label == "A"
    assert back.nodes["a"].properties["gateway"] is True
    assert back.nodes["a"].properties["local_addresses"] == ["fe80::1"]
    assert back.protocol == "babel"
