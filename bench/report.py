"""Print the ratio table from a pytest-benchmark JSON file, or compare two runs.

Usage: ``python bench/report.py RESULTS.json [--markdown]``, or
``python bench/report.py --compare OLD NEW [--threshold 0.2]`` where ``OLD`` is a
saved run or the ``bench/history/`` folder (its newest release is taken).

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


def _version_key(path: Path) -> tuple:
    """Sort key of ``bench/history/<version>.json``: numeric parts compare as numbers."""
    parts = path.stem.replace("-", ".").split(".")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def latest_release(history: Path) -> Path | None:
    """The saved run of the highest version in ``history`` (None when empty)."""
    runs = sorted(history.glob("*.json"), key=_version_key)
    return runs[-1] if runs else None


def peer_ratios(data: dict) -> dict[tuple[str, str], float]:
    """(group, impl) -> ratio to the named peer of every ``ours`` row.

    The paired ratio where the benchmark measured one (robust to a drifting
    machine), else the ratio of medians. Ratios, not times: a release saved on
    one machine compares with a run on another.
    """
    ratios = {}
    for group, rows in build_rows(data).items():
        for row in rows:
            value = row["paired"] if row["paired"] is not None else row["vs_peer"]
            if row["role"] == "ours" and value is not None:
                ratios[(group, row["impl"])] = value
    return ratios


def compare(old: dict, new: dict, threshold: float) -> tuple[list[str], int]:
    """Lines comparing ``new``'s peer ratios with ``old``'s, and the number of regressions.

    A regression is a ratio that fell below ``(1 - threshold)`` times the saved
    one. Benchmarks present in only one run are listed, not judged.
    """
    before, after = peer_ratios(old), peer_ratios(new)
    lines = []
    regressions = 0
    for key in sorted(before.keys() | after.keys()):
        group, impl = key
        if key not in after:
            lines.append(f"  {group} / {impl}: saved {_ratio(before[key])}, not run now")
            continue
        if key not in before:
            lines.append(f"  {group} / {impl}: now {_ratio(after[key])}, not in the saved run")
            continue
        change = after[key] / before[key] - 1.0 if before[key] > 0 else 0.0
        bad = change < -threshold
        regressions += bad
        lines.append(
            f"  {group} / {impl}: saved {_ratio(before[key])}, now {_ratio(after[key])} "
            f"({change:+.1%}){'  REGRESSION' if bad else ''}"
        )
    return lines, regressions


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _compare_main(old_path: Path, new_path: Path, threshold: float) -> int:
    if old_path.is_dir():
        found = latest_release(old_path)
        if found is None:
            print(f"{old_path}: no saved release to compare with", file=sys.stderr)
            return 2
        old_path = found
    try:
        old, new = _load(old_path), _load(new_path)
    except (OSError, ValueError) as exc:
        print(f"cannot read benchmark results: {exc}", file=sys.stderr)
        return 2
    lines, regressions = compare(old, new, threshold)
    print(f"# ratios to named peers: {new_path.name} against {old_path.name}")
    print("\n".join(lines))
    print(f"{regressions} regression(s) beyond {threshold:.0%}")
    return 1 if regressions else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: read the JSON file and print the table (or compare two runs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file", type=Path, nargs="?")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("OLD", "NEW"),
        help="compare peer ratios of NEW with OLD (a JSON file or bench/history/)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.20,
        help="largest tolerated fall of a peer ratio, as a fraction (default 0.20)",
    )
    args = parser.parse_args(argv)
    if args.compare:
        return _compare_main(*args.compare, args.threshold)
    if args.json_file is None:
        parser.error("a JSON file is required (or --compare OLD NEW)")
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
