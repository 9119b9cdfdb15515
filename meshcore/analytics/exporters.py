"""Exporters: Prometheus text format, node_exporter textfile, InfluxDB line protocol,
NetJSON (NetworkGraph usage, DeviceMonitoring), CSV and JSON.

Formats and their sources
-------------------------
* **Prometheus text exposition format 0.0.4**
  (https://prometheus.io/docs/instrumenting/exposition_formats/): per family a
  ``# HELP name text`` line (help escapes ``\\`` and newline) and a
  ``# TYPE name kind`` line (for counters ``name`` is the exposed
  ``<name>_total``, as prometheus-client writes it), then samples ``name{label="value"} number``.
  Label values escape ``\\`` as ``\\\\``, ``"`` as ``\\"`` and newline as
  ``\\n``. Counters are exposed as ``<name>_total``; histograms as cumulative
  ``<name>_bucket{le="<bound>"}`` lines ending with ``le="+Inf"`` (equal to the
  count), then ``<name>_sum`` and ``<name>_count``. Numbers are Go-style:
  ``+Inf``, ``-Inf``, ``NaN``. Label sets refused by the cardinality cap
  appear as ``meshcore_analytics_dropped_label_sets_total{metric="..."}``.
* **textfile collector**: node_exporter (and OpenWrt's
  prometheus-node-exporter-lua) reads ``*.prom`` files from a folder; a file
  must appear whole, so :func:`write_textfile` writes ``<path>.<pid>.tmp``
  (ignored by the collector: wrong suffix), fsyncs, and renames it over
  ``path`` (atomic on POSIX).
* **InfluxDB line protocol**
  (https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/):
  ``measurement,tag=v,tag=v field=v,field=v timestamp``. Measurement escapes
  ``,`` and space; tag keys, tag values and field keys escape ``,``, ``=``
  and space (each with a backslash); string field values are double-quoted
  with ``"`` and ``\\`` escaped; integers carry an ``i`` suffix; timestamps
  are integer nanoseconds. Tags are sorted by key (InfluxData's advice);
  empty tag values are omitted (the protocol has no empty tag). Newlines
  cannot be escaped in line protocol, so a newline in any name, tag or
  string value is a ValueError, and non-finite floats (not representable) are skipped.
* **NetJSON** (https://netjson.org/rfc.html): :func:`netjson_usage_graph`
  copies a NetworkGraph dict (e.g. from ``meshcore.net``) and adds, under
  each node's and link's ``properties``, a ``meshcore_usage`` object;
  :func:`netjson_device_monitoring` builds a DeviceMonitoring object whose
  ``general`` carries ``local_time`` and ``uptime`` and whose ``meshcore``
  member carries the node's usage counters.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from meshcore._files import write_atomic

from .metrics import Counter, Histogram, Registry
from .rollups import COUNTER_FIELDS, Rollup

__all__ = [
    "influx_from_registry",
    "influx_from_rollups",
    "influx_line",
    "netjson_device_monitoring",
    "netjson_usage_graph",
    "prometheus_text",
    "to_csv",
    "to_json",
    "write_textfile",
]


# -- Prometheus --------------------------------------------------------------


def _prom_number(value: float) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def prometheus_text(registry: Registry) -> str:
    """The registry in Prometheus text format 0.0.4 (for ``/metrics`` or a textfile).

    Content type: ``text/plain; version=0.0.4; charset=utf-8``.
    """
    out: list[str] = []
    for fam in registry:
        kind = fam.kind
        # Counters are announced under their exposed name, as prometheus-client does.
        shown = f"{fam.name}_total" if isinstance(fam, Counter) else fam.name
        out.append(f"# HELP {shown} {_escape_help(fam.help)}")
        out.append(f"# TYPE {shown} {kind}")
        names = fam.labelnames
        if isinstance(fam, Counter):
            for values, child in fam.samples():
                out.append(f"{fam.name}_total{_labels(names, values)} {_prom_number(child.value)}")
        elif isinstance(fam, Histogram):
            bounds = [_prom_number(b) for b in fam.bounds]
            for values, child in fam.samples():
                cumulative = child.cumulative()
                for le, c in zip([*bounds, "+Inf"], cumulative, strict=True):
                    le_label = 'le="' + le + '"'
                    out.append(f"{fam.name}_bucket{_labels(names, values, le_label)} {c}")
                out.append(f"{fam.name}_sum{_labels(names, values)} {_prom_number(child.sum)}")
                out.append(f"{fam.name}_count{_labels(names, values)} {cumulative[-1]}")
        else:
            for values, child in fam.samples():
                out.append(f"{fam.name}{_labels(names, values)} {_prom_number(child.value)}")
    dropped = registry.dropped()
    if dropped:
        name = "meshcore_analytics_dropped_label_sets"
        out.append(f"# HELP {name}_total Label sets refused by the cardinality cap, per metric")
        out.append(f"# TYPE {name}_total counter")
        for metric, n in sorted(dropped.items()):
            out.append(f'{name}_total{{metric="{_escape_label(metric)}"}} {n}')
    return "\n".join(out) + "\n"


def write_textfile(
    text: str | Registry, path: str | os.PathLike, *, durable: bool = True
) -> Path:
    """Write ``text`` (or a registry's exposition) to ``path`` atomically for node_exporter.

    ``path`` must end in ``.prom`` (the collector reads only those). Raises
    ValueError for another suffix and OSError when the folder is not writable
    (the temp file is removed). ``durable=False`` skips the fsyncs: a file
    rewritten every few seconds on router flash should not wear it out, and
    losing the last copy in a power cut costs one scrape.
    """
    target = Path(path)
    if target.suffix != ".prom":
        raise ValueError(f"path: the textfile collector reads only *.prom files, got {str(path)!r}")
    if isinstance(text, Registry):
        text = prometheus_text(text)
    # The temp name ends in .tmp, which the collector ignores.
    return write_atomic(target, text, durable=durable)


# -- InfluxDB line protocol ----------------------------------------------------


def _no_newline(kind: str, text: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{kind}: expected a string, got {text!r}")
    if "\n" in text or "\r" in text:
        raise ValueError(f"{kind}: line protocol cannot carry a newline: {text!r}")
    return text


def _esc_measurement(text: str) -> str:
    return _no_newline("measurement", text).replace("\\", "\\\\").replace(",", "\\,").replace(
        " ", "\\ "
    )


def _esc_key(kind: str, text: str) -> str:
    return (
        _no_newline(kind, text)
        .replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace("=", "\\=")
        .replace(" ", "\\ ")
    )


def _field_value(value) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return repr(value)
    if isinstance(value, str):
        _no_newline("string field value", value)
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise ValueError(f"field value: expected int, float, bool or str, got {value!r}")


def influx_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, int | float | bool | str],
    timestamp_ns: int | None = None,
) -> str:
    """One line of InfluxDB line protocol (no trailing newline).

    Raises ValueError when no field is left (every value non-finite or none
    given), for a newline in a name or tag, or a bad value type.
    """
    if not measurement:
        raise ValueError("measurement: must not be empty")
    head = _esc_measurement(measurement)
    for k in sorted(tags):
        v = tags[k]
        if v == "":
            continue
        head += f",{_esc_key('tag key', k)}={_esc_key('tag value', v)}"
    parts = []
    for k, v in fields.items():
        text = _field_value(v)
        if text is not None:
            parts.append(f"{_esc_key('field key', k)}={text}")
    if not parts:
        raise ValueError(f"fields: no finite field to write for {measurement!r}")
    line = f"{head} {','.join(parts)}"
    if timestamp_ns is not None:
        if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, int):
            raise ValueError(f"timestamp_ns: expected an integer, got {timestamp_ns!r}")
        line += f" {timestamp_ns}"
    return line


def influx_from_registry(
    registry: Registry, *, tags: Mapping[str, str] | None = None, timestamp_ns: int | None = None
) -> str:
    """Every sample of the registry as line protocol, one measurement per family.

    Counters and gauges have a field ``value``; histograms have ``count``,
    ``sum`` and cumulative ``le_<bound>`` / ``le_inf`` fields. Labels become
    tags (a newline in a label value becomes a space), plus ``tags`` (e.g.
    ``{"node": "n1"}``). Samples whose value is infinite or NaN are skipped.
    """
    base = dict(tags or {})
    lines = []
    for fam in registry:
        for values, child in fam.samples():
            # A label value may hold a newline (Prometheus allows it); line
            # protocol cannot, so it becomes a space rather than losing the sample.
            t = {**base, **{n: v.replace("\n", " ").replace("\r", " ")
                            for n, v in zip(fam.labelnames, values, strict=True)}}
            if isinstance(fam, Histogram):
                cumulative = child.cumulative()
                fields: dict = {"count": cumulative[-1], "sum": float(child.sum)}
                for b, c in zip(fam.bounds, cumulative, strict=False):
                    fields[f"le_{_prom_number(b)}"] = c
                fields["le_inf"] = cumulative[-1]
            else:
                value = child.value
                if isinstance(value, float) and not math.isfinite(value):
                    continue  # not representable in line protocol
                fields = {"value": value}
            lines.append(influx_line(fam.name, t, fields, timestamp_ns))
    return "\n".join(lines) + ("\n" if lines else "")


def influx_from_rollups(rollups: Iterable[Rollup], measurement: str = "meshcore_rollup") -> str:
    """Rollups as line protocol: tags ``node`` and ``resolution``; every counter,
    ``users``, ``households`` and ``jfi`` as fields; timestamp = window start."""
    lines = []
    for r in rollups:
        fields: dict = {}
        for name in COUNTER_FIELDS:
            v = r.get(name)
            fields[name] = v if isinstance(v, int) else float(v)
        fields["users"] = int(r.users)
        fields["households"] = int(r.households)
        if r.jfi is not None:
            fields["jfi"] = float(r.jfi)
        lines.append(
            influx_line(measurement, {"node": r.node, "resolution": r.resolution}, fields,
                        int(r.start) * 1_000_000_000)
        )
    return "\n".join(lines) + ("\n" if lines else "")


# -- NetJSON -------------------------------------------------------------------


def netjson_usage_graph(
    graph: Mapping | None,
    node_usage: Mapping[str, Mapping[str, float]],
    link_usage: Mapping[tuple[str, str], Mapping[str, float]] | None = None,
    *,
    label: str = "meshcore usage",
) -> dict:
    """A NetJSON NetworkGraph with ``properties.meshcore_usage`` on nodes and links.

    ``graph``: a NetworkGraph dict (not modified; a deep copy is returned),
    or None to build one from ``node_usage`` alone (no links). Link usage is
    matched on ``(source, target)`` in either direction. Nodes of
    ``node_usage`` missing from ``graph`` are added. Raises ValueError when
    ``graph`` is not a NetworkGraph.
    """
    if graph is None:
        out: dict = {
            "type": "NetworkGraph",
            "protocol": "meshcore",
            "version": "1",
            "metric": "etx",
            "label": label,
            "nodes": [],
            "links": [],
        }
    else:
        if not isinstance(graph, Mapping) or graph.get("type") != "NetworkGraph":
            raise ValueError("graph: expected a NetJSON NetworkGraph object")
        out = copy.deepcopy(dict(graph))
    nodes = out.setdefault("nodes", [])
    seen = set()
    for node in nodes:
        seen.add(node.get("id"))
        usage = node_usage.get(node.get("id"))
        if usage is not None:
            node.setdefault("properties", {})["meshcore_usage"] = dict(usage)
    for node_id in sorted(set(node_usage) - seen):
        nodes.append({"id": node_id, "properties": {"meshcore_usage": dict(node_usage[node_id])}})
    if link_usage:
        for link in out.setdefault("links", []):
            key = (link.get("source"), link.get("target"))
            usage = link_usage.get(key) or link_usage.get((key[1], key[0]))
            if usage is not None:
                link.setdefault("properties", {})["meshcore_usage"] = dict(usage)
    return out


def netjson_device_monitoring(
    node: str,
    counters: Mapping[str, float],
    *,
    local_time: int,
    uptime: int,
    extra: Mapping | None = None,
) -> dict:
    """A NetJSON DeviceMonitoring object for one node.

    ``general`` holds ``hostname`` (the node id), ``local_time`` (Unix
    seconds) and ``uptime`` (seconds); ``meshcore`` holds ``counters`` (and
    ``extra``, e.g. users served).
    """
    stats = {k: counters[k] for k in sorted(counters)}
    if extra:
        stats.update(extra)
    return {
        "type": "DeviceMonitoring",
        "general": {"hostname": node, "local_time": int(local_time), "uptime": int(uptime)},
        "meshcore": stats,
    }


# -- CSV and JSON --------------------------------------------------------------


def to_csv(rows: Iterable[Mapping], columns: Sequence[str]) -> str:
    """Rows (mappings) as CSV text with a header line (RFC 4180 quoting, ``\\r\\n``)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()


def to_json(obj) -> str:
    """Deterministic JSON (sorted keys, 2-space indent); non-finite floats become null."""
    return json.dumps(_finite(obj), sort_keys=True, indent=2, allow_nan=False)


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
