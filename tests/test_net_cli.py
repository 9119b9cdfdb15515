"""``meshcore topology import|diff``, run in-process through ``meshcore.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshcore.cli import main
from meshcore.net.topology import Topology

TOPOLOGIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "topologies"
needs_data = pytest.mark.skipif(
    not TOPOLOGIES.is_dir(), reason=f"shared topology samples not found at {TOPOLOGIES}"
)

DOT_OLD = 'digraph topology\n{\n"a" -> "b"[label="1.000"];\n"b" -> "a"[label="1.000"];\n}\n'
DOT_NEW = (
    'digraph topology\n{\n"a" -> "b"[label="2.500"];\n"b" -> "c"[label="1.000"];\n'
    '"a" -> "d"[label="INFINITE"];\n}\n'
)


@pytest.fixture
def dots(tmp_path):
    old, new = tmp_path / "old.dot", tmp_path / "new.dot"
    old.write_text(DOT_OLD)
    new.write_text(DOT_NEW)
    return old, new


def test_import_writes_netjson_to_stdout(dots, capsys):
    assert main(["topology", "import", str(dots[0])]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["type"] == "NetworkGraph"
    assert [(lk["source"], lk["target"], lk["cost"]) for lk in doc["links"]] == [
        ("a", "b", 1.0),
        ("b", "a", 1.0),
    ]


def test_import_to_file_with_self_and_format(dots, tmp_path, capsys):
    out = tmp_path / "map.json"
    rc = main(
        [
            "topology",
            "import",
            str(dots[1]),
            "--format",
            "olsr1",
            "-o",
            str(out),
            "--self",
            "a",
            "--exclude-broken",
        ]
    )
    assert rc == 0
    assert f"wrote {out}: 4 nodes, 3 links" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["router_id"] == "a"
    loc = {n["id"]: n["properties"]["locality"] for n in doc["nodes"]}
    assert loc["a"] == "self" and loc["b"] == "one_hop" and loc["c"] == "multi_hop"
    assert loc["d"] == "unreachable"
    assert all(lk["target"] != "d" for lk in doc["links"])
    assert not list(tmp_path.glob(".topology-*"))  # no temp file left


def test_self_renames_the_802_11s_placeholder(tmp_path, capsys):
    dump = tmp_path / "mpath.txt"
    dump.write_text(
        "DEST ADDR         NEXT HOP          IFACE\tSN\tMETRIC\tQLEN\tEXPTIME\n"
        "02:00:00:00:00:01 02:00:00:00:00:01 mesh0\t4\t152\t0\t10\n"
    )
    assert main(["topology", "import", str(dump), "--self", "02:00:00:00:00:aa"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["router_id"] == "02:00:00:00:00:aa"
    dump.write_text(dump.read_text().replace("152", "304"))
    assert (
        main(["topology", "import", str(dump), "--self", "02:00:00:00:00:bb", "-f", "802.11s"]) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["router_id"] == "02:00:00:00:00:bb"
    assert {n["id"] for n in doc["nodes"]} == {"02:00:00:00:00:bb", "02:00:00:00:00:01"}
    assert doc["links"][0]["cost"] == 2.0


def test_errors_exit_1_with_file_format_and_position(tmp_path, dots, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "NetworkGraph", "nodes": [], "links": [{"source": "a"}]}')
    assert main(["topology", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"meshcore: {bad}: netjson: links[0].target: ")
    assert main(["topology", "import", str(dots[0]), "--format", "nope"]) == 1
    assert "unknown topology format" in capsys.readouterr().err
    assert main(["topology", "import", str(dots[0]), "--self", "zz"]) == 1
    assert "--self" in capsys.readouterr().err
    assert main(["topology", "import"]) == 1
    assert "exactly one" in capsys.readouterr().err
    assert main(["topology", "import", str(dots[0]), "-o", str(tmp_path / "no" / "x.json")]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert main(["topology", "diff", str(dots[0]), str(dots[1]), "--rel-tol", "-1"]) == 1
    assert "--rel-tol" in capsys.readouterr().err


def test_topology_without_action_prints_usage(capsys):
    assert main(["topology"]) == 2
    assert "import" in capsys.readouterr().err


def test_diff_human_and_json(dots, capsys):
    assert main(["topology", "diff", str(dots[0]), str(dots[1])]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "nodes: +2 -0; links: +2 -1 ~1"
    assert "+ node c" in out and "+ node d" in out
    assert "+ link a -> d cost inf" in out
    assert "- link b -> a cost 1.000" in out
    assert "~ link a -> b cost 1.000 -> 2.500" in out
    assert main(["topology", "diff", str(dots[0]), str(dots[1]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["added_nodes"] == ["c", "d"]
    assert doc["changed_links"] == [
        {"source": "a", "target": "b", "old_cost": 1.0, "new_cost": 2.5}
    ]
    assert main(["topology", "diff", str(dots[1]), str(dots[0])]) == 0
    assert "- node c" in capsys.readouterr().out.splitlines()
    assert main(["topology", "diff", str(dots[0]), str(dots[0])]) == 0
    assert capsys.readouterr().out == "nodes: +0 -0; links: +0 -0 ~0\n"


def test_babeld_input_calls_the_driver(monkeypatch, capsys):
    babeld = pytest.importorskip("meshcore.node.babeld")
    calls = []

    def fake_fetch(address, *, timeout):
        calls.append((address, timeout))
        topo = Topology(protocol="babel", metric="babel", router_id="me")
        topo.add_link("me", "peer", 0.375, origin="daemon:babel")
        return topo

    monkeypatch.setattr(babeld, "fetch_topology", fake_fetch)
    assert main(["topology", "import", "--babeld", "[::1]:33123", "--timeout", "2"]) == 0
    assert calls == [("[::1]:33123", 2.0)]
    doc = json.loads(capsys.readouterr().out)
    assert doc["protocol"] == "babel" and doc["router_id"] == "me"
    assert doc["links"][0]["properties"]["origins"] == ["daemon:babel"]


@needs_data
def test_import_a_directory_and_diff_real_samples(capsys, tmp_path):
    folder = TOPOLOGIES / "olsr2" / "battlemesh-v11-olsrd2-netjsoninfo-routes-t1526144253"
    assert main(["topology", "import", str(folder), "-o", str(tmp_path / "o.json")]) == 0
    assert "14 nodes" in capsys.readouterr().err
    two = [str(f) for f in sorted(folder.iterdir())[:2]]
    assert main(["topology", "import", *two]) == 0
    assert json.loads(capsys.readouterr().out)["type"] == "NetworkGraph"
    base = TOPOLOGIES / "cnml"
    assert (
        main(
            [
                "topology",
                "diff",
                str(base / "guifi-zone-26494-detail-1.cnml"),
                str(base / "guifi-zone-26494-detail-2.cnml"),
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["added_links"] and not doc["added_nodes"]


def test_babeld_bad_address_is_a_usage_error_not_a_traceback(capsys):
    assert main(["topology", "import", "--babeld", "nowhere"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("meshcore: ") and "babeld address" in err
