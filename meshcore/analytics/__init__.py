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

from meshcore._lazy import lazy_exports

# Loaded on first use (meshcore/_lazy.py): importing the package stays cheap.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".aggregate": ("MeshAggregate", "MeshView", "NodeSummary"),
        ".charts": ("render_charts",),
        ".events": (
            "CacheLookup",
            "Collector",
            "CongestionEpisode",
            "LinkChange",
            "NeighborChange",
            "PeerServed",
            "QuotaAction",
            "RequestFailed",
            "RequestServed",
            "UplinkChange",
        ),
        ".exporters": (
            "influx_from_registry",
            "influx_from_rollups",
            "influx_line",
            "netjson_device_monitoring",
            "netjson_usage_graph",
            "prometheus_text",
            "to_csv",
            "to_json",
            "write_textfile",
        ),
        ".metrics": ("Counter", "Gauge", "Histogram", "Registry", "UnknownMetricError"),
        ".privacy": ("Pseudonymizer", "suppress_below_k"),
        ".report": ("build_report", "report_csv", "report_markdown"),
        ".rollups": (
            "COUNTER_FIELDS",
            "MESH_NODE",
            "TIERS",
            "RangeTotals",
            "Recovery",
            "Rollup",
            "RollupStore",
        ),
        ".settings": ("AnalyticsSettings",),
        ".sketches": ("AccessMatrix", "HyperLogLog", "MisraGries", "SpaceSaving"),
    },
)
