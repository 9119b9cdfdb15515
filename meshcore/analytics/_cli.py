"""``meshcore analytics report``: write a report (JSON, CSV, Markdown, charts) for a range.

Thin: loads the config, opens the rollup store read-only, calls
:func:`~meshcore.analytics.report.build_report` and writes files. A report
never creates, changes or moves a database: a missing, foreign or corrupt
``--db`` is an error. Exit codes: 0 success, 1 a clear error (``meshcore:
...`` on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..config import load_config
from ..errors import MeshcoreError
from .settings import AnalyticsSettings, rollup_path

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``analytics`` and its ``report`` subcommand to the ``meshcore`` parser."""
    analytics = subparsers.add_parser("analytics", help="usage reports from local history")
    sub = analytics.add_subparsers(dest="analytics_command", metavar="SUBCOMMAND")
    analytics.set_defaults(handler=lambda args: _usage(analytics))
    p = sub.add_parser("report", help="write a report for a time range")
    p.add_argument("--config", required=True, help="node TOML file with an [analytics] table")
    p.add_argument("--db", help="rollup database (default: [analytics] rollup_path, else "
                                "<state folder>/analytics/rollups.sqlite)")
    p.add_argument("--from", dest="start", required=True,
                   help="range start: YYYY-MM-DD (UTC) or Unix seconds")
    p.add_argument("--to", dest="end", required=True,
                   help="range end (exclusive): YYYY-MM-DD (UTC) or Unix seconds")
    p.add_argument("--resolution", default="auto", choices=("auto", "minute", "hour", "day"))
    p.add_argument("--out", required=True, type=Path, help="folder for the report files")
    p.add_argument("--charts", action="store_true", help="also draw PNG and SVG charts")
    p.set_defaults(handler=_report)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


#: Latest accepted time: 9999-12-31T23:59:59Z (what a calendar date can name).
_MAX_WHEN = 253_402_300_799.0


def _when(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        try:
            value = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise ValueError(
                f"{option}: expected YYYY-MM-DD or Unix seconds, got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= _MAX_WHEN):
        raise ValueError(f"{option}: expected Unix seconds from 0 to {_MAX_WHEN:.0f} "
                         f"(year 9999), got {text!r}")
    return value


def _report(args: argparse.Namespace) -> int:
    # Imported here: every `meshcore` command registers this module, and the
    # report machinery pulls in numpy and sqlite3.
    from .exporters import to_json
    from .report import build_report, report_csv, report_markdown
    from .rollups import RollupStore

    cfg = load_config(args.config)
    settings = AnalyticsSettings.from_config(cfg)
    try:
        start = _when(args.start, "--from")
        end = _when(args.end, "--to")
    except ValueError as exc:
        print(f"meshcore: {exc}", file=sys.stderr)
        return 2
    db = Path(args.db) if args.db else rollup_path(cfg, settings)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise MeshcoreError(f"--out {out}: exists and is not a folder")
    with RollupStore(db, create=False) as store:
        try:
            report = build_report(
                store, start=start, end=end, price_per_gb=settings.price_per_gb,
                currency=settings.currency, k_anonymity=settings.k_anonymity,
                resolution=args.resolution,
            )
        except ValueError as exc:
            print(f"meshcore: {exc}", file=sys.stderr)
            return 1
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(to_json(report) + "\n", encoding="utf-8")
        for name, text in report_csv(report).items():
            (out / f"{name}.csv").write_text(text, encoding="utf-8")
        (out / "summary.md").write_text(report_markdown(report), encoding="utf-8")
        if args.charts:
            from .charts import render_charts

            try:
                render_charts(report, out)
            except ImportError as exc:
                print(f"meshcore: {exc}", file=sys.stderr)
                return 1
    except OSError as exc:
        where = exc.filename or out
        raise MeshcoreError(f"--out {out}: cannot write {where}: {exc.strerror or exc}") from None
    print(out)
    return 0
