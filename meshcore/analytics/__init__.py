"""Usage analytics: metrics, mergeable aggregates, reports and exporters (issue 7).

* :mod:`.metrics` — counters, gauges, histograms with bound handles and a label cap.
* :mod:`.events`, :class:`Collector` — what other modules emit, turned into metrics.
* :mod:`.sketches` — HyperLogLog, Misra-Gries / Space-Saving top-k, hour-of-week matrix.
* :mod:`.aggregate` — node summaries and the idempotent mesh-wide merge.
* :mod:`.rollups` — minute/hour/day history in SQLite with bounded size.
* :mod:`.report`, :mod:`.charts` — impact reports (JSON, CSV, Markdown; charts with matplotlib).
* :mod:`.exporters` — Prometheus text/textfile, InfluxDB line protocol, NetJSON, CSV, JSON.
* :mod:`.privacy` — salted pseudonyms and k-suppression.

See docs/analytics.md.
"""

from .aggregate import MeshAggregate, MeshView, NodeSummary
from .charts import render_charts
from .events import (
    CacheLookup,
    Collector,
    CongestionEpisode,
    LinkChange,
    NeighborChange,
    PeerServed,
    QuotaAction,
    RequestFailed,
    RequestServed,
    UplinkChange,
)
from .exporters import (
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
from .metrics import Counter, Gauge, Histogram, Registry, UnknownMetricError
from .privacy import Pseudonymizer, suppress_below_k
from .report import build_report, report_csv, report_markdown
from .rollups import COUNTER_FIELDS, MESH_NODE, TIERS, RangeTotals, Recovery, Rollup, RollupStore
from .settings import AnalyticsSettings
from .sketches import AccessMatrix, HyperLogLog, MisraGries, SpaceSaving

__all__ = [
    "COUNTER_FIELDS",
    "MESH_NODE",
    "TIERS",
    "AccessMatrix",
    "AnalyticsSettings",
    "CacheLookup",
    "Collector",
    "CongestionEpisode",
    "Counter",
    "Gauge",
    "Histogram",
    "HyperLogLog",
    "LinkChange",
    "MeshAggregate",
    "MeshView",
    "MisraGries",
    "NeighborChange",
    "NodeSummary",
    "PeerServed",
    "Pseudonymizer",
    "QuotaAction",
    "RangeTotals",
    "Recovery",
    "Registry",
    "RequestFailed",
    "RequestServed",
    "Rollup",
    "RollupStore",
    "SpaceSaving",
    "UnknownMetricError",
    "UplinkChange",
    "build_report",
    "influx_from_registry",
    "influx_from_rollups",
    "influx_line",
    "netjson_device_monitoring",
    "netjson_usage_graph",
    "prometheus_text",
    "render_charts",
    "report_csv",
    "report_markdown",
    "suppress_below_k",
    "to_csv",
    "to_json",
    "write_textfile",
]
