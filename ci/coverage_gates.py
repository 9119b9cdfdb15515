"""Enforce the coverage gates on the combined (compiled + pure) coverage data.

Gates: the DRR kernel's Python face at 100% of lines and the rest of the
kernels and top-level modules at >= 90% (issue "Foundation"); the node cache
package at >= 85% (issue "Cache retention"). Exits 1 and says which gate failed.
"""

from __future__ import annotations

import io
import sys

import coverage

GATES = [
    # (label, include patterns, omit patterns, minimum percent)
    ("DRR kernel, Python face", ["*/meshcore/kernels/_drr_*.py"], [], 100.0),
    (
        "kernels and top-level modules",
        ["*/meshcore/*"],
        ["*/meshcore/kernels/_drr_*.py", "*/meshcore/cache/*"],
        90.0,
    ),
    ("node cache (meshcore/cache)", ["*/meshcore/cache/*"], [], 85.0),
]


def main() -> int:
    """Print each gate's report and return 1 if any is below its minimum."""
    cov = coverage.Coverage()
    cov.load()
    failed = False
    for label, include, omit, minimum in GATES:
        buf = io.StringIO()
        try:
            percent = cov.report(include=include, omit=omit, file=buf, show_missing=True)
        except coverage.exceptions.NoDataError:
            print(f"coverage gate {label!r}: no data", file=sys.stderr)
            failed = True
            continue
        verdict = "ok" if percent >= minimum else "FAILED"
        print(f"-- {label}: {percent:.1f}% (gate {minimum:.0f}%) {verdict}")
        if percent < minimum:
            print(buf.getvalue())
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
