"""Exporters parsed back by real or independent parsers: Prometheus, line protocol, NetJSON."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.analytics.exporters import (
    influx_from_registry,
    influx_from_rollups,
    influx_line,
    netjson_device_monitoring,
    netjson_usage_graph,
    prometheus_text,
    to_csv,
    to_json,
    write_textfile,
)
from meshcore.analytics.metrics import Registry
from meshcore.analytics.rollups import Rollup

parser = pytest.importorskip(
    "prometheus_client.parser", reason="prometheus-client (test dependency) is not installed"
)
jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (test dependency) not installed")

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "tests" / "data" / "netjson" / "schema"
TOPOLOGIES = REPO.parent / "shared" / "data" / "topologies" / "netjson"


def _families(text: str) -> dict:
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def _registry() -> Registry:
    reg = Registry(cap=3)
    c = reg.counter("meshcore_requests", "Requests served\nby tier \\ class", ("tier", "class"))
    c.labels("mesh", "video").inc(7)
    c.labels("local", 'a "quoted"\nvalue\\').inc(2)
    c.labels("external", "x").inc(1)
    c.labels("segment", "y").inc(4)  # beyond the cap of 3: overflow
    reg.gauge("meshcore_uplink_up", "1 when up").set(1)
    h = reg.histogram("meshcore_request_seconds", "latency", buckets=(0.1, 1.0))
    for v in (0.05, 0.5, 0.7, 3.0):
        h.observe(v)
    reg.gauge("meshcore_weird", "non-finite").set(math.inf)
    return reg


def test_prometheus_text_parses_back_with_prometheus_client():
    text = prometheus_text(_registry())
    fams = _families(text)
    req = fams["meshcore_requests"]
    assert req.type == "counter"
    assert req.documentation == "Requests served\nby tier \\ class"
    values = {(s.labels["tier"], s.labels["class"]): s.value for s in req.samples}
    assert all(s.name == "meshcore_requests_total" for s in req.samples)
    assert values[("mesh", "video")] == 7
    assert values[("local", 'a "quoted"\nvalue\\')] == 2  # escaping round-trips
    assert values[("__overflow__", "__overflow__")] == 4
    hist = fams["meshcore_request_seconds"]
    assert hist.type == "histogram"
    got = {(s.name, s.labels.get("le")): s.value for s in hist.samples}
    assert got[("meshcore_request_seconds_bucket", "0.1")] == 1
    assert got[("meshcore_request_seconds_bucket", "1")] == 3  # cumulative
    assert got[("meshcore_request_seconds_bucket", "+Inf")] == 4
    assert got[("meshcore_request_seconds_count", None)] == 4
    assert got[("meshcore_request_seconds_sum", None)] == pytest.approx(4.25)
    assert fams["meshcore_weird"].samples[0].value == math.inf
    dropped = fams["meshcore_analytics_dropped_label_sets"]
    assert dropped.samples[0].labels == {"metric": "meshcore_requests"}
    assert dropped.samples[0].value == 1


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=20), st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_any_label_value_round_trips(value, amount):
    reg = Registry()
    reg.counter("c", "h", ("v",)).labels(value).inc(amount)
    fams = _families(prometheus_text(reg))
    (sample,) = fams["c"].samples
    assert sample.labels == {"v": value}
    assert sample.value == pytest.approx(amount)


def test_textfile_is_written_atomically(tmp_path):
    path = tmp_path / "meshcore.prom"
    write_textfile(_registry(), path)
    assert "meshcore_requests_total" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["meshcore.prom"]  # no temp left
    write_textfile("# replaced\n", path, durable=False)
    assert path.read_text() == "# replaced\n"
    with pytest.raises(ValueError, match=r"\*\.prom"):
        write_textfile("x", tmp_path / "meshcore.txt")
    with pytest.raises(OSError):
        write_textfile("x", tmp_path / "missing-dir" / "m.prom")


def test_textfile_failed_rename_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.prom"
    path.write_text("old\n")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        write_textfile("new\n", path)
    assert path.read_text() == "old\n"  # the collector never sees a partial file
    assert [p.name for p in tmp_path.iterdir()] == ["m.prom"]


# -- line protocol: an independent strict parser following the documented grammar


class _Line:
    """A strict reader of one line of InfluxDB line protocol, per the documented grammar:

    measurement (escapes: comma, space), then ``,key=value`` tags (escapes: comma,
    equals, space), a space, ``key=value`` fields separated by commas (string values
    double-quoted with ``\\"`` and ``\\\\`` escapes; ``i`` suffix = integer;
    true/false; else float), then optionally a space and an integer timestamp. Two
    backslashes are one literal backslash everywhere.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def expect(self, ch: str) -> None:
        assert self.peek() == ch, f"expected {ch!r} at {self.i} in {self.text!r}"
        self.i += 1

    def until(self, stops: str, escapable: str) -> str:
        out = []
        t = self.text
        while self.i < len(t) and t[self.i] not in stops:
            ch = t[self.i]
            if ch == "\\" and self.i + 1 < len(t) and t[self.i + 1] in escapable + "\\":
                out.append(t[self.i + 1])
                self.i += 2
            else:
                assert ch not in "\n\r", "raw newline"
                out.append(ch)
                self.i += 1
        value = "".join(out)
        assert value, f"empty element at {self.i} in {t!r}"
        return value

    def string(self) -> str:
        self.expect('"')
        out = []
        t = self.text
        while True:
            assert self.i < len(t), "unterminated string"
            ch = t[self.i]
            if ch == "\\" and self.i + 1 < len(t) and t[self.i + 1] in '"\\':
                out.append(t[self.i + 1])
                self.i += 2
            elif ch == '"':
                self.i += 1
                return "".join(out)
            else:
                assert ch != '"'
                out.append(ch)
                self.i += 1


def parse_line(line: str):
    """Parse one line into (measurement, tags, fields, timestamp); AssertionError if bad."""
    r = _Line(line)
    measurement = r.until(", ", ", ")
    tags = {}
    while r.peek() == ",":
        r.i += 1
        key = r.until("=", ",= ")
        r.expect("=")
        tags[key] = r.until(", ", ",= ")
    r.expect(" ")
    fields: dict = {}
    while True:
        key = r.until("=", ",= ")
        r.expect("=")
        if r.peek() == '"':
            fields[key] = r.string()
        else:
            raw = r.until(", ", "")
            if raw in ("true", "false"):
                fields[key] = raw == "true"
            elif raw.endswith("i"):
                assert re.fullmatch(r"-?[0-9]+", raw[:-1]), raw
                fields[key] = int(raw[:-1])
            else:
                assert re.fullmatch(r"-?[0-9.]+(e[-+]?[0-9]+)?", raw), raw
                fields[key] = float(raw)
        if r.peek() != ",":
            break
        r.i += 1
    ts = None
    if r.peek() == " ":
        r.i += 1
        rest = line[r.i :]
        assert re.fullmatch(r"-?[0-9]+", rest), rest
        ts = int(rest)
    else:
        assert r.i == len(line), f"trailing text in {line!r}"
    return measurement, tags, fields, ts


@settings(max_examples=80, deadline=None)
@given(
    measurement=st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
                        min_size=1, max_size=12),
    tags=st.dictionaries(
        st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
                min_size=1, max_size=8),
        st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
                min_size=1, max_size=8),
        max_size=3,
    ),
    ivalue=st.integers(-(2**63), 2**63 - 1),
    fvalue=st.floats(allow_nan=False, allow_infinity=False),
    svalue=st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
                   max_size=10),
    flag=st.booleans(),
    ts=st.integers(0, 2**62),
)
def test_line_protocol_round_trips(measurement, tags, ivalue, fvalue, svalue, flag, ts):
    if measurement.startswith("#"):
        return  # a comment line in line protocol
    fields = {"i": ivalue, "f": fvalue, "s": svalue, "b": flag}
    line = influx_line(measurement, tags, fields, ts)
    assert "\n" not in line
    m, t, f, got_ts = parse_line(line)
    assert m == measurement
    assert t == tags
    assert f == fields
    assert got_ts == ts


def test_line_protocol_rules():
    line = influx_line("m x,y", {"b": "2", "a": "1 2", "empty": ""}, {"v": 3, "g": 0.5}, 10)
    assert line == r"m\ x\,y,a=1\ 2,b=2 v=3i,g=0.5 10"  # tags sorted, empty tag dropped
    with pytest.raises(ValueError, match="newline"):
        influx_line("m", {"a": "x\ny"}, {"v": 1})
    with pytest.raises(ValueError, match="no finite field"):
        influx_line("m", {}, {"v": math.nan})
    with pytest.raises(ValueError, match="field value"):
        influx_line("m", {}, {"v": [1]})
    with pytest.raises(ValueError, match="timestamp"):
        influx_line("m", {}, {"v": 1}, 1.5)
    with pytest.raises(ValueError, match="empty"):
        influx_line("", {}, {"v": 1})


def test_influx_from_registry_and_rollups_parse():
    text = influx_from_registry(_registry(), tags={"node": "n1"}, timestamp_ns=5)
    parsed = [parse_line(line) for line in text.splitlines()]
    hist = next(p for p in parsed if p[0] == "meshcore_request_seconds")
    assert hist[1] == {"node": "n1"}
    assert hist[2]["count"] == 4 and hist[2]["le_1"] == 3 and hist[2]["le_inf"] == 4
    req = {(p[1]["tier"], p[1]["class"]): p[2]["value"] for p in parsed
           if p[0] == "meshcore_requests"}
    assert req[("mesh", "video")] == 7
    assert all(p[3] == 5 for p in parsed)
    rolls = [Rollup("n1", "hour", 3600, {"req_local": 3, "outage_seconds": 1.5}, users=2,
                    jfi=0.5)]
    (_m, tags, fields, ts) = parse_line(influx_from_rollups(rolls).strip())
    assert tags == {"node": "n1", "resolution": "hour"}
    assert fields["req_local"] == 3 and fields["outage_seconds"] == 1.5
    assert fields["users"] == 2 and fields["jfi"] == 0.5 and fields["req_mesh"] == 0
    assert ts == 3600 * 10**9
    assert influx_from_rollups([]) == ""


# -- NetJSON -----------------------------------------------------------------------


def _validator(name: str):
    path = SCHEMAS / f"{name}.json"
    if not path.exists():
        pytest.skip(f"NetJSON schema {path} is not vendored")
    schema = json.loads(path.read_text())
    return jsonschema.Draft4Validator(schema)


def test_usage_graph_on_a_real_topology_validates():
    path = TOPOLOGIES / "ninux-roma-olsr1-etx.json"
    if not path.exists():
        pytest.skip(f"shared topology data absent: {path}")
    graph = json.loads(path.read_text())
    before = json.dumps(graph, sort_keys=True)
    ids = [n["id"] for n in graph["nodes"]]
    link = graph["links"][0]
    usage = {ids[0]: {"bytes_to_peers": 10, "requests_served": 2}}
    out = netjson_usage_graph(
        graph, usage, {(link["target"], link["source"]): {"bytes": 99}}
    )
    _validator("network-graph").validate(out)
    assert json.dumps(graph, sort_keys=True) == before  # input untouched
    node0 = next(n for n in out["nodes"] if n["id"] == ids[0])
    assert node0["properties"]["meshcore_usage"] == usage[ids[0]]
    assert out["links"][0]["properties"]["meshcore_usage"] == {"bytes": 99}  # reversed key


def test_usage_graph_from_scratch_validates_and_rejects_non_graphs():
    out = netjson_usage_graph(None, {"b": {"x": 1}, "a": {"x": 2}})
    _validator("network-graph").validate(out)
    assert [n["id"] for n in out["nodes"]] == ["a", "b"]
    with pytest.raises(ValueError, match="NetworkGraph"):
        netjson_usage_graph({"type": "NetworkRoutes"}, {})


def test_device_monitoring_validates():
    doc = netjson_device_monitoring(
        "node-1", {"req_local": 5, "bytes_local": 100}, local_time=1_700_000_000, uptime=3600,
        extra={"users": 3},
    )
    _validator("device-monitoring").validate(doc)
    assert doc["meshcore"] == {"bytes_local": 100, "req_local": 5, "users": 3}
    bad = dict(doc, general={"uptime": "long"})
    with pytest.raises(jsonschema.ValidationError):
        _validator("device-monitoring").validate(bad)


def test_csv_and_json():
    import csv
    import io

    text = to_csv([{"a": 1, "b": 'x,"y"'}, {"a": 2, "b": "z", "extra": 0}], ["a", "b"])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows == [{"a": "1", "b": 'x,"y"'}, {"a": "2", "b": "z"}]
    assert json.loads(to_json({"b": [math.inf, 1.5], "a": (1,)})) == {"a": [1], "b": [None, 1.5]}
