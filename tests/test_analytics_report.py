"""Reports: known figures, schema validation, CSV, Markdown, charts, privacy of every export."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from meshcore.analytics.aggregate import MeshAggregate
from meshcore.analytics.charts import available, render_charts
from meshcore.analytics.events import (
    Collector,
    PeerServed,
    QuotaAction,
    RequestFailed,
    RequestServed,
    UplinkChange,
)
from meshcore.analytics.exporters import (
    influx_from_registry,
    influx_from_rollups,
    netjson_device_monitoring,
    netjson_usage_graph,
    prometheus_text,
    to_json,
)
from meshcore.analytics.report import MESH_NODE, build_report, report_csv, report_markdown
from meshcore.analytics.rollups import TIERS, Rollup, RollupStore, pack_sketches
from meshcore.analytics.sketches import HyperLogLog, MisraGries

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (test dependency) not installed")

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "docs" / "analytics" / "report-schema.json").read_text())
DAY0 = 1_763_942_400  # Monday
SALT = "report-test-salt-0123"


def _validate(report: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(report)


def _known_rows():
    """Two nodes, two days, hand-made figures."""
    rows = []
    for node, scale in (("n1", 1), ("n2", 3)):
        for day in range(2):
            rows.append(Rollup(
                node, "day", DAY0 + day * 86400,
                {"req_local": 10 * scale, "req_mesh": 5 * scale, "req_external": 5 * scale,
                 "bytes_local": 10**9 * scale, "bytes_mesh": 10**9 * scale,
                 "bytes_external": 2 * 10**9 * scale, "bytes_to_peers": 100 * scale,
                 "req_to_peers": scale, "outage_seconds": 60.0, "outage_requests": 4,
                 "outage_served": 3},
                users=7, households=3, jfi=0.5 + 0.1 * day,
                hours=tuple(20 * scale if h == 19 else 0 for h in range(24)),
            ))
    return rows


def test_known_figures():
    report = build_report(_known_rows(), start=DAY0, end=DAY0 + 2 * 86400, price_per_gb=0.5,
                          currency="EUR")
    _validate(report)
    assert report["range"]["resolution"] == "day" or report["range"]["resolution"] == "hour"
    report = build_report(_known_rows(), start=DAY0, end=DAY0 + 2 * 86400, price_per_gb=0.5,
                          currency="EUR", resolution="day")
    _validate(report)
    tiers = report["traffic_by_tier"]
    # n1 + n2 over two days: requests local 2*(10+30) = 80, mesh 40, external 40
    assert tiers["local"] == {"requests": 80, "bytes": 8 * 10**9}
    assert tiers["mesh"]["requests"] == 40 and tiers["external"]["bytes"] == 16 * 10**9
    assert report["mesh_share"]["requests"] == pytest.approx(120 / 160)
    assert report["mesh_share"]["bytes"] == pytest.approx(16 / 32)
    assert report["external_avoided"] == {"requests": 120, "bytes": 16 * 10**9}
    assert report["uplink_cost_saved"]["amount"] == pytest.approx(16 * 0.5)
    assert report["outages"]["availability"] == pytest.approx(12 / 16)
    assert report["nodes"] == 2
    assert [n["node"] for n in report["per_node"]] == ["n2", "n1"]
    assert report["per_node"][0]["share_of_peer_bytes"] == pytest.approx(0.75)
    assert report["peak_hours"]["peaks"][0] == {
        "weekday": 0, "weekday_name": "Monday", "hour": 19, "requests": 80}
    assert [f["jfi"] for f in report["fairness"]] == pytest.approx([0.5, 0.6])
    # no sketches: the unique counts fall back to the largest per-window figure
    assert report["users"] == {"estimate": 7, "relative_standard_error": None}


def test_range_errors():
    with pytest.raises(ValueError, match="before it starts"):
        build_report([], start=DAY0 + 10, end=DAY0)
    with pytest.raises(ValueError, match="price_per_gb"):
        build_report([], start=0, end=1, price_per_gb=-1)
    with pytest.raises(ValueError, match="k_anonymity"):
        build_report([], start=0, end=1, k_anonymity=0)
    with pytest.raises(ValueError, match="resolution"):
        build_report([], start=0, end=1, resolution="week")
    with pytest.raises(ValueError, match="start"):
        build_report([], start=float("nan"), end=1)
    empty = build_report([], start=DAY0, end=DAY0)
    _validate(empty)
    assert empty["mesh_share"]["bytes"] is None


def _simulate(store: RollupStore, *, nodes: int = 3, hours: int = 30, seed: int = 4):
    """Collectors on several nodes; a rare item requested by only two users."""
    rnd = random.Random(seed)
    raws = []
    agg = MeshAggregate()
    cols = [Collector(f"router-{i}", now=DAY0, salt=SALT, hll_precision=10) for i in range(nodes)]
    for h in range(hours):
        for col in cols:
            for j in range(60):
                t = DAY0 + h * 3600 + j * 59
                user = rnd.randrange(120)
                mac = f"02:00:00:00:{user // 256:02x}:{user % 256:02x}"
                ip = f"10.9.{user // 256}.{user % 256 + 1}"
                name = f"alice-{user}"
                raws += [mac, ip, name]
                content = "rare-item" if user in (1, 2) and j == 0 else f"c{rnd.randrange(8)}"
                col.record(RequestServed(content, mac, TIERS[j % 4], 1000 + j,
                                         household=f"{name}@home"), now=t)
                if j == 5:
                    col.record(RequestFailed(content, ip, "no_holder"), now=t)
                    col.record(QuotaAction(name, "throttle"), now=t)
                    col.record(PeerServed("router-0", 500), now=t)
                if h == 3 and j == 1:
                    col.record(UplinkChange(False), now=t)
                if h == 4 and j == 1:
                    col.record(UplinkChange(True), now=t)
            store.write(col.drain())
    for col in cols:
        store.write(col.flush(now=DAY0 + hours * 3600))
        agg.merge(col.summary(now=DAY0 + hours * 3600))
    return cols, agg, raws


def test_report_from_collectors_and_privacy_of_every_export(tmp_path):
    store = RollupStore(tmp_path / "r.db")
    cols, agg, raws = _simulate(store)
    report = build_report(store, start=DAY0, end=DAY0 + 2 * 86400, resolution="hour",
                          k_anonymity=3, price_per_gb=1.0)
    _validate(report)
    assert report["totals"]["requests"] == 3 * 30 * 60
    assert report["totals"]["failed_requests"] == 3 * 30
    assert report["nodes"] == 3
    assert 100 <= report["users"]["estimate"] <= 140  # 120 users, p=10: 3.25% error
    listed = [i["content"] for i in report["top_content"]["items"]]
    # Without suppression (k=1) the rare item is listed below k=3; with k=3 exactly the
    # items guaranteed fewer than 3 requests are dropped, and counted.
    open_report = build_report(store, start=DAY0, end=DAY0 + 2 * 86400, resolution="hour",
                               k_anonymity=1)
    everything = {i["content"]: i["requests_at_least"] for i in open_report["top_content"]["items"]}
    assert open_report["top_content"]["suppressed"] == 0
    assert 1 <= everything["rare-item"] < 3
    below_k = {c for c, low in everything.items() if low < 3}
    assert "rare-item" not in listed
    assert set(listed) == set(everything) - below_k
    assert report["top_content"]["suppressed"] == len(below_k)
    assert report["outages"]["seconds"] == pytest.approx(3 * 3600)
    assert len(report["fairness"]) == 30
    day = build_report(store, start=DAY0, end=DAY0 + 2 * 86400, resolution="day")
    _validate(day)
    assert day["totals"]["requests"] == report["totals"]["requests"]

    view = agg.view(DAY0 + 86400, 86400)
    exports = [
        to_json(report),
        to_json(day),
        *report_csv(report).values(),
        report_markdown(report),
        *(prometheus_text(c.registry) for c in cols),
        *(influx_from_registry(c.registry, tags={"node": c.node}) for c in cols),
        influx_from_rollups(store.query("hour", 0, 2e9)),
        json.dumps(netjson_usage_graph(None, view.per_node)),
        json.dumps(netjson_device_monitoring("router-0", view.counters, local_time=0, uptime=1)),
        json.dumps(view.to_dict()),
        *(s.canonical().decode() for s in agg.entries.values()),
    ]
    blob = "\n".join(exports)
    leaked = {r for r in set(raws) if r in blob}
    assert not leaked, f"raw identifiers in exports: {sorted(leaked)[:5]}"
    assert not re.search(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", blob)  # no MAC-shaped string at all


def test_mesh_rows_supply_sketches(tmp_path):
    users = HyperLogLog(8)
    for i in range(500):
        users.add(f"u{i}")
    top = MisraGries(10)
    # "hit" 50 times and 50 distinct keys once: one reduction by the 11th
    # largest count (1) leaves hit at 49 with error 1.
    top.add_counts(Counter("hit" if i % 2 else f"c{i}" for i in range(100)))
    rows = [
        Rollup("n1", "day", DAY0, {"req_local": 4}, users=9),
        Rollup(MESH_NODE, "day", DAY0, {"req_local": 999}, users=500,
               sketch=pack_sketches(users, users, top)),
        Rollup(MESH_NODE, "day", DAY0 + 86400, {}, sketch=b"corrupt"),
    ]
    store = RollupStore(":memory:")
    store.write(rows)
    for source in (rows, store):
        rep = build_report(source, start=DAY0, end=DAY0 + 3 * 86400, k_anonymity=5)
        _validate(rep)
        assert rep["totals"]["requests"] == 4  # counters from the node rows, not "*"
        assert abs(rep["users"]["estimate"] - 500) < 500 * 4 * 1.04 / 16
        assert rep["top_content"]["items"] == [{"content": "hit", "requests": 50,
                                                "requests_at_least": 49}]
        assert rep["dropped"]["corrupt_sketches"] == 1
    only_mesh = build_report([rows[1]], start=DAY0, end=DAY0 + 86400, resolution="day")
    assert only_mesh["totals"]["requests"] == 999


def test_csv_tables_parse_and_markdown_says_the_figures():
    report = build_report(_known_rows(), start=DAY0, end=DAY0 + 2 * 86400, price_per_gb=0.5,
                          resolution="day")
    tables = report_csv(report)
    assert set(tables) == {"traffic_by_tier", "series", "top_content", "peak_hours", "fairness",
                           "per_node"}
    tiers = {r["tier"]: r for r in csv.DictReader(io.StringIO(tables["traffic_by_tier"]))}
    assert tiers["local"]["requests"] == "80"
    peak = list(csv.DictReader(io.StringIO(tables["peak_hours"])))
    assert len(peak) == 7 and peak[0]["h19"] == "80"
    md = report_markdown(report)
    assert "**50%** of what the neighbourhood fetched" in md
    assert "16.0 GB less" in md and "8.00 USD" in md
    assert "Mondays 19:00" in md
    assert "n2" in md


def test_charts_render_when_matplotlib_is_installed(tmp_path):
    if not available():
        pytest.skip("matplotlib (the 'plot' extra) is not installed")
    report = build_report(_known_rows(), start=DAY0, end=DAY0 + 2 * 86400, resolution="day")
    files = render_charts(report, tmp_path / "charts")
    assert len(files) == 8
    for f in files:
        head = f.read_bytes()[:64]
        assert head.startswith(b"\x89PNG") if f.suffix == ".png" else b"<svg" in f.read_bytes()
    with pytest.raises(ValueError, match="formats"):
        render_charts(report, tmp_path, formats=("gif",))
