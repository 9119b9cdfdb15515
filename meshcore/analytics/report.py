"""Impact reports for a time range: a JSON document, CSV tables and a Markdown summary.

Theory of operation
-------------------
:func:`build_report` reads rollups (from a :class:`~.rollups.RollupStore` or
any iterable of :class:`~.rollups.Rollup`) whose window starts in
``[start, end)`` and computes the figures of issue 7, section 5. The document
layout is ``docs/analytics/report-schema.json`` (JSON Schema draft 2020-12);
every figure's formula is in ``docs/analytics.md``. In short:

* rows of ``node="*"`` are mesh-wide rows written by the aggregating node;
  counters come from the per-node rows when any exist (summing them is exact:
  each node counts what it served), otherwise from ``"*"`` rows; sketches
  (unique users, top content) come from ``"*"`` rows when any exist, else
  from every row that carries one (HyperLogLog register max, Misra-Gries
  merge);
* ``mesh_share`` = (local + segment + mesh) / all tiers, by requests and by
  bytes; ``external_avoided`` = what was served inside the mesh (each such
  request would otherwise have crossed the uplink);
  ``uplink_cost_saved`` = avoided bytes / 10**9 x ``price_per_gb``;
* top content is k-suppressed (:func:`~.privacy.suppress_below_k`): an item
  whose guaranteed count (count - error) is below ``k`` is not listed;
* peak hours: 7 x 24 requests by (weekday, hour) from day rows' ``hours`` or
  from hour rows; availability during outages = requests served while the
  uplink was down / requests made while it was down;
* fairness over time: Jain's index per window, averaged over nodes when there
  are no ``"*"`` rows; per-node contribution: bytes each node served to other
  nodes, and its share of all such bytes.

No raw principal is ever in a rollup (the collector stores pseudonyms only in
sketches), so none can reach a report. A range with ``end < start`` raises
ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from .exporters import to_csv
from .privacy import suppress_below_k
from .rollups import (
    MESH_NODE,
    RESOLUTIONS,
    TIERS,
    Rollup,
    RollupStore,
    totals_of,
    unpack_sketches,
)
from .sketches import AccessMatrix, HyperLogLog, MisraGries

__all__ = ["MESH_NODE", "REPORT_SCHEMA_ID", "build_report", "report_csv", "report_markdown"]

REPORT_SCHEMA_ID = "meshcore-analytics-report/1"
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _merge_hll(acc: HyperLogLog | None, other: HyperLogLog) -> HyperLogLog:
    if acc is None:
        return other.copy()
    if acc.p == other.p:
        acc.merge(other)
    return acc


def build_report(
    source: RollupStore | Iterable[Rollup],
    *,
    start: float,
    end: float,
    price_per_gb: float = 0.0,
    currency: str = "USD",
    k_anonymity: int = 5,
    resolution: str = "auto",
    top_n: int = 20,
) -> dict:
    """The report document for ``[start, end)`` (Unix seconds), as a JSON-able dict.

    ``resolution``: ``"minute"``, ``"hour"``, ``"day"`` or ``"auto"`` (days
    for ranges over two days, else hours). Raises ValueError when ``end`` is
    before ``start``, or for a bad price, k or resolution.
    """
    for name, v in (("start", start), ("end", end)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{name}: expected finite Unix seconds, got {v!r}")
    if end < start:
        raise ValueError(f"end: report range ends ({_iso(end)}) before it starts ({_iso(start)})")
    if isinstance(price_per_gb, bool) or not isinstance(price_per_gb, int | float) or not (
        math.isfinite(price_per_gb) and price_per_gb >= 0
    ):
        raise ValueError(f"price_per_gb: expected a number >= 0, got {price_per_gb!r}")
    if isinstance(k_anonymity, bool) or not isinstance(k_anonymity, int) or k_anonymity < 1:
        raise ValueError(f"k_anonymity: expected an integer >= 1, got {k_anonymity!r}")
    if resolution == "auto":
        resolution = "day" if end - start > 2 * 86400 else "hour"
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution: expected auto, minute, hour or day, got {resolution!r}")

    if isinstance(source, RollupStore):
        agg = source.totals(resolution, start, end)
        sketch_rows = list(
            source.query(resolution, start, end, node=MESH_NODE if agg.has_mesh_rows else None)
        )
    else:
        rows = [r for r in source if r.resolution == resolution and start <= r.start < end]
        agg = totals_of(rows, resolution, start, end)
        sketch_rows = [r for r in rows if not agg.has_mesh_rows or r.node == MESH_NODE]
    per_node = agg.per_node
    series = agg.series

    # -- exact counters ------------------------------------------------------
    totals: dict[str, float] = {}
    for counters in per_node.values():
        for k, v in counters.items():
            totals[k] = totals.get(k, 0) + v

    def t(name: str) -> float:
        return totals.get(name, 0)

    tiers = {tier: {"requests": int(t(f"req_{tier}")), "bytes": int(t(f"bytes_{tier}"))}
             for tier in TIERS}
    all_req = sum(v["requests"] for v in tiers.values())
    all_bytes = sum(v["bytes"] for v in tiers.values())
    inside_req = all_req - tiers["external"]["requests"]
    inside_bytes = all_bytes - tiers["external"]["bytes"]

    # -- sketches ------------------------------------------------------------
    users = households = None
    top: MisraGries | None = None
    bad_sketches = 0
    for r in sorted(sketch_rows, key=lambda r: (r.start, r.node)):
        if r.sketch is None:
            continue
        try:
            u, h, tk = unpack_sketches(r.sketch)
        except ValueError:
            bad_sketches += 1
            continue
        users = _merge_hll(users, u)
        households = _merge_hll(households, h)
        if top is None:
            top = tk
        else:
            top.merge(tk)
    if users is None:
        # No sketches: the best lower bound is the largest per-window estimate.
        users_est = agg.max_users
        households_est = agg.max_households
        users_err = households_err = None
    else:
        users_est = round(users.estimate())
        households_est = round(households.estimate())
        users_err = users.standard_error
        households_err = households.standard_error

    candidates = []
    if top is not None:
        for key, count, error in top.top():
            candidates.append((key, count - error, count))
    guaranteed = {key: (low, count) for key, low, count in candidates}
    kept, suppressed = suppress_below_k(((k, low) for k, low, _ in candidates), k_anonymity)
    top_items = [
        {"content": key, "requests": guaranteed[key][1], "requests_at_least": low}
        for key, low in kept[:top_n]
    ]

    # -- peak hours ----------------------------------------------------------
    matrix = AccessMatrix()
    if agg.hours:
        for day_start, profile in agg.hours.items():
            for hour, n in enumerate(profile):
                if n:
                    matrix.add(day_start + 3600 * hour, n)
    elif resolution != "day":
        for window_start, c in series.items():
            n = sum(c.get(f"req_{tier}", 0) for tier in TIERS)
            if n:
                matrix.add(window_start, n)
    peaks = [
        {"weekday": d, "weekday_name": _WEEKDAYS[d], "hour": h, "requests": int(n)}
        for d, h, n in matrix.peaks(3)
    ]

    # -- fairness over time ---------------------------------------------------
    fairness = [
        {"start": s, "start_iso": _iso(s), "jfi": mean, "nodes": n}
        for s, (mean, n) in sorted(agg.jfi.items())
    ]

    # -- per-node contribution ----------------------------------------------
    peer_total = sum(c.get("bytes_to_peers", 0) for n, c in per_node.items() if n != MESH_NODE)
    contributions = []
    for node, c in sorted(per_node.items()):
        if node == MESH_NODE:
            continue
        served = sum(c.get(f"req_{tier}", 0) for tier in TIERS)
        contributions.append(
            {
                "node": node,
                "bytes_to_peers": int(c.get("bytes_to_peers", 0)),
                "requests_to_peers": int(c.get("req_to_peers", 0)),
                "requests_served": int(served),
                "bytes_served": int(sum(c.get(f"bytes_{tier}", 0) for tier in TIERS)),
                "share_of_peer_bytes": _ratio(c.get("bytes_to_peers", 0), peer_total),
            }
        )
    contributions.sort(key=lambda x: (-x["bytes_to_peers"], x["node"]))

    series_rows = []
    for s in sorted(series):
        c = series[s]
        row: dict = {"start": s, "start_iso": _iso(s)}
        for tier in TIERS:
            row[f"requests_{tier}"] = int(c.get(f"req_{tier}", 0))
            row[f"bytes_{tier}"] = int(c.get(f"bytes_{tier}", 0))
        series_rows.append(row)

    outage_req = int(t("outage_requests"))
    return {
        "schema": REPORT_SCHEMA_ID,
        "range": {
            "start": int(start), "end": int(end), "start_iso": _iso(start), "end_iso": _iso(end),
            "resolution": resolution,
        },
        "nodes": len([n for n in per_node if n != MESH_NODE]),
        "totals": {
            "requests": int(all_req),
            "bytes": int(all_bytes),
            "failed_requests": int(t("req_failed")),
            "quota_actions": int(t("quota_actions")),
            "congestion_episodes": int(t("congestion_episodes")),
        },
        "traffic_by_tier": tiers,
        "mesh_share": {"requests": _ratio(inside_req, all_req),
                       "bytes": _ratio(inside_bytes, all_bytes)},
        "external_avoided": {"requests": int(inside_req), "bytes": int(inside_bytes)},
        "uplink_cost_saved": {
            "amount": inside_bytes / 1e9 * price_per_gb,
            "currency": currency,
            "price_per_gb": float(price_per_gb),
        },
        "users": {"estimate": int(users_est), "relative_standard_error": users_err},
        "households": {"estimate": int(households_est),
                       "relative_standard_error": households_err},
        "top_content": {"k_anonymity": k_anonymity, "items": top_items, "suppressed": suppressed},
        "peak_hours": {"matrix": matrix.rows(), "peaks": peaks},
        "outages": {
            "seconds": float(t("outage_seconds")),
            "requests": outage_req,
            "served": int(t("outage_served")),
            "availability": _ratio(t("outage_served"), outage_req),
        },
        "fairness": fairness,
        "per_node": contributions,
        "series": series_rows,
        "dropped": {"corrupt_sketches": bad_sketches},
    }


_CSV_TABLES: Mapping[str, tuple[str, ...]] = {
    "traffic_by_tier": ("tier", "requests", "bytes"),
    "series": ("start", "start_iso", *(f"requests_{t}" for t in TIERS),
               *(f"bytes_{t}" for t in TIERS)),
    "top_content": ("content", "requests", "requests_at_least"),
    "peak_hours": ("weekday", "weekday_name", *(f"h{h:02d}" for h in range(24))),
    "fairness": ("start", "start_iso", "jfi", "nodes"),
    "per_node": ("node", "bytes_to_peers", "requests_to_peers", "requests_served",
                 "bytes_served", "share_of_peer_bytes"),
}


def report_csv(report: Mapping) -> dict[str, str]:
    """The report's tables as CSV texts, by table name (``traffic_by_tier``, ``series``,
    ``top_content``, ``peak_hours``, ``fairness``, ``per_node``)."""
    tiers = [{"tier": k, **v} for k, v in report["traffic_by_tier"].items()]
    peak = [
        {"weekday": d, "weekday_name": _WEEKDAYS[d], **{f"h{h:02d}": n for h, n in enumerate(row)}}
        for d, row in enumerate(report["peak_hours"]["matrix"])
    ]
    sources = {
        "traffic_by_tier": tiers,
        "series": report["series"],
        "top_content": report["top_content"]["items"],
        "peak_hours": peak,
        "fairness": report["fairness"],
        "per_node": report["per_node"],
    }
    return {name: to_csv(sources[name], cols) for name, cols in _CSV_TABLES.items()}


def _bytes_text(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def report_markdown(report: Mapping, *, title: str = "Community network impact") -> str:
    """A short Markdown summary for funders and members (counts only, no names)."""
    r = report["range"]
    share = report["mesh_share"]
    avoided = report["external_avoided"]
    cost = report["uplink_cost_saved"]
    lines = [
        f"# {title}",
        "",
        f"Period: {r['start_iso'][:10]} to {r['end_iso'][:10]} ({report['nodes']} routers).",
        "",
        f"- **{_pct(share['bytes'])}** of what the neighbourhood fetched (by volume) came from "
        f"inside the mesh ({_pct(share['requests'])} of requests).",
        f"- The uplink carried **{_bytes_text(avoided['bytes'])} less** "
        f"({avoided['requests']:,} requests served locally)",
    ]
    if cost["price_per_gb"]:
        lines[-1] += (f", saving about **{cost['amount']:,.2f} {cost['currency']}** at "
                      f"{cost['price_per_gb']:g} {cost['currency']}/GB.")
    else:
        lines[-1] += "."
    lines.append(
        f"- About **{report['households']['estimate']:,} households** and "
        f"{report['users']['estimate']:,} users were served."
    )
    out = report["outages"]
    if out["requests"]:
        lines.append(
            f"- During {out['seconds'] / 3600:.1f} h of uplink outage, "
            f"{_pct(out['availability'])} of requests were still served from the mesh."
        )
    if report["peak_hours"]["peaks"]:
        p = report["peak_hours"]["peaks"][0]
        lines.append(f"- Busiest hour: {p['weekday_name']}s {p['hour']:02d}:00 UTC.")
    if report["fairness"]:
        mean = math.fsum(f["jfi"] for f in report["fairness"]) / len(report["fairness"])
        lines.append(f"- Fair sharing (Jain's index, 1 = perfectly even): {mean:.2f} on average.")
    if report["per_node"] and report["per_node"][0]["bytes_to_peers"]:
        top = report["per_node"][0]
        lines.append(
            f"- Router contributing most to others: {top['node']} "
            f"({_bytes_text(top['bytes_to_peers'])}, {_pct(top['share_of_peer_bytes'])})."
        )
    lines.append("")
    return "\n".join(lines)

