"""Print the ratio table from a pytest-benchmark JSON file.

Usage: ``python bench/report.py RESULTS.json [--markdown]``

Rows are grouped by ``benchmark.group``. In each group the row whose role is
``peer`` is the yardstick: ``vs peer`` is the row's throughput divided by the
peer's (medians), so ``1.8x`` means 1.8 times the peer's throughput.
``paired``, where a benchmark measured it, is the median of per-pair ratios
with ours and the peer timed back to back (robust to a drifting machine; see
``paired_ratio`` in ``bench/_harness.py``, with the other conventions).

A row with a bound (``against_bound`` in ``bench/_harness.py``) gets a line
under it: its figure, the bound, met or missed, and figure / bound. That line
is the row's verdict; such rows need no peer and print no time ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROLE_ORDER = {"ours": 0, "twin": 1, "peer": 2, "bound": 3}


def _si(value: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f}{suffix}"
    return f"{value:.2f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}x"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def _metric(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _figure(value: float) -> str:
    return _si(value) if abs(value) >= 1e3 else f"{value:.4g}"


def _judge(row: dict, metric: str, spec: dict) -> dict:
    """One bound of a row: the figure it names, met or not, and figure / bound."""
    special = {"throughput": row["rate"], "time": row["median"], "paired_vs_peer": row["paired"]}
    value = row["metrics"].get(metric, special.get(metric))
    bound, better = spec["bound"], spec["better"]
    err = row["metrics"].get(spec.get("stderr") or "", 0.0)
    met = None
    if isinstance(value, (int, float)):
        # Signed margin by which the figure beats the bound; 2 stderr of slack either way.
        margin = bound - value if better == "lower" else value - bound
        met = True if margin >= 2 * err else (False if margin < -2 * err else "noise")
    return {"metric": metric, "value": value, "bound": bound, "better": better,
            "unit": spec.get("unit", ""), "met": met, "stderr": err or None,
            "fraction": value / bound if met is not None and bound else None}


def _bound_line(b: dict, markdown: bool) -> str:
    unit = f" {b['unit']}" if b["unit"] else ""
    sign = ("≤" if markdown else "<=") if b["better"] == "lower" else ("≥" if markdown else ">=")
    value = "no figure" if b["met"] is None else f"{_figure(b['value'])}{unit}"
    if b["stderr"] is not None and b["met"] is not None:
        value += f" ± {_figure(b['stderr'])}"
    verdict = {True: "met", False: "MISSED", None: "not measured",
               "noise": "within 2 stderr"}[b["met"]]
    if markdown:
        verdict = f"**{verdict}**"
    frac = f" ({b['fraction']:.3g} of the bound)" if b["fraction"] is not None else ""
    return f"{b['metric']} {value} vs bound {sign} {_figure(b['bound'])}{unit}: {verdict}{frac}"


def build_rows(data: dict) -> dict[str, list[dict]]:
    """Group benchmark entries and compute throughput and peer ratios."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        median = bench["stats"]["median"]
        items = info.get("items") or 0
        groups[bench.get("group") or bench["name"]].append(
            {
                "impl": info.get("impl", bench["name"]),
                "role": info.get("role", "ours"),
                "median": median,
                "rate": items / median if items and median > 0 else None,
                "unit": info.get("unit", "ops"),
                "metrics": dict(info.get("metrics", {})),
                "bound_specs": dict(info.get("bounds", {})),
            }
        )
    for rows in groups.values():
        for row in rows:
            row["paired"] = row["metrics"].pop("paired_vs_peer", None)
            row["bounds"] = [_judge(row, m, spec) for m, spec in row.pop("bound_specs").items()]
        # A named peer is the reference when there is one; otherwise a bound.
        peers = [r for r in rows if r["role"] == "peer"] or [
            r for r in rows if r["role"] == "bound"
        ]
        for row in rows:
            row["vs_peer"] = None
            reference = row["role"] in ("peer", "bound")
            if peers and not reference and row["rate"] and peers[0]["rate"]:
                row["vs_peer"] = row["rate"] / peers[0]["rate"]
            elif peers and not reference and row["median"] > 0:
                row["vs_peer"] = peers[0]["median"] / row["median"]
        rows.sort(key=lambda r: (ROLE_ORDER.get(r["role"], 9), r["impl"]))
    return groups


def render(groups: dict[str, list[dict]], markdown: bool) -> str:
    """The table as plain text or as Markdown."""
    out = []
    for group in sorted(groups):
        rows = groups[group]
        notes = []
        if markdown:
            out.append(f"\n#### {group}\n")
            out.append(
                "| implementation | role | median | throughput | vs peer | paired | metrics |"
            )
            out.append("|---|---|---|---|---|---|---|")
        else:
            out.append(f"\n== {group}")
        for r in rows:
            rate = f"{_si(r['rate'])} {r['unit']}/s" if r["rate"] else "-"
            ratio = _ratio(r["vs_peer"])
            paired = _ratio(r["paired"])
            metrics = ", ".join(f"{k}={_metric(v)}" for k, v in sorted(r["metrics"].items()))
            median = f"{r['median'] * 1e3:.3f} ms"
            if markdown:
                cells = (r["impl"], r["role"], median, rate, ratio, paired, metrics)
                out.append("| " + " | ".join(cells) + " |")
                notes += [f"- {r['impl']}: {_bound_line(b, True)}" for b in r["bounds"]]
            else:
                out.append(
                    f"  {r['impl']:<28} {r['role']:<5} {median:>14} {rate:>16} "
                    f"{ratio:>8} {paired:>8}  {metrics}"
                )
                out += [f"      vs bound: {_bound_line(b, False)}" for b in r["bounds"]]
        if notes:
            out += ["", *notes]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point: read the JSON file and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file", type=Path)
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.json_file.read_text())
    except (OSError, ValueError) as exc:
        print(f"{args.json_file}: cannot read benchmark results: {exc}", file=sys.stderr)
        return 2
    machine = data.get("machine_info", {})
    print(
        f"# {data.get('datetime', '?')} on {machine.get('node', '?')} "
        f"({machine.get('cpu', {}).get('brand_raw', machine.get('processor', '?'))}), "
        f"Python {machine.get('python_version', '?')}"
    )
    print(render(build_rows(data), args.markdown), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
