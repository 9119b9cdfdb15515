"""PNG/SVG charts of a report, when the optional ``plot`` extra (matplotlib) is installed.

Four charts, one file per chart and format: ``traffic`` (stacked bytes by
tier over time), ``peak_hours`` (7 x 24 heat map), ``fairness`` (Jain's index
over time) and ``per_node`` (bytes each router served to others, top 30).
matplotlib is imported lazily with the non-interactive Agg backend, so a
router without it runs everything else; :func:`render_charts` raises
ImportError naming the extra when it is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from .rollups import TIERS

__all__ = ["available", "render_charts"]

_CHARTS = ("traffic", "peak_hours", "fairness", "per_node")


def available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "charts need matplotlib: install meshcore with the 'plot' extra "
            "(pip install 'meshcore[plot]')"
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def render_charts(
    report: Mapping,
    out_dir: str | os.PathLike,
    *,
    formats: Iterable[str] = ("png", "svg"),
) -> list[Path]:
    """Draw the report's charts into ``out_dir`` (created if needed); returns the files.

    ``formats`` is any subset of ``png`` and ``svg`` (ValueError otherwise).
    """
    fmts = tuple(formats)
    for f in fmts:
        if f not in ("png", "svg"):
            raise ValueError(f"formats: expected png or svg, got {f!r}")
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in _CHARTS:
        fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
        try:
            globals()[f"_draw_{name}"](ax, report)
            fig.tight_layout()
            for f in fmts:
                path = out / f"{name}.{f}"
                fig.savefig(path, format=f)
                written.append(path)
        finally:
            plt.close(fig)
    return written


def _draw_traffic(ax, report: Mapping) -> None:
    series = report["series"]
    xs = list(range(len(series)))
    ys = [[row[f"bytes_{t}"] / 1e9 for row in series] for t in TIERS]
    if xs:
        ax.stackplot(xs, ys, labels=TIERS)
        step = max(1, len(xs) // 8)
        ax.set_xticks(xs[::step], [row["start_iso"][:10] for row in series][::step],
                      rotation=30, ha="right")
        ax.legend(loc="upper left")
    ax.set_ylabel("GB served")
    ax.set_title("Traffic by source tier")


def _draw_peak_hours(ax, report: Mapping) -> None:
    image = ax.imshow(report["peak_hours"]["matrix"], aspect="auto", cmap="viridis")
    ax.set_yticks(range(7), ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
    ax.set_xlabel("hour of day (UTC)")
    ax.set_title("Requests by weekday and hour")
    ax.figure.colorbar(image, ax=ax)


def _draw_fairness(ax, report: Mapping) -> None:
    points = report["fairness"]
    ax.plot(range(len(points)), [p["jfi"] for p in points])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Jain's fairness index")
    ax.set_title("Fairness over time")


def _draw_per_node(ax, report: Mapping) -> None:
    rows = report["per_node"][:30]
    ax.bar(range(len(rows)), [r["bytes_to_peers"] / 1e9 for r in rows])
    ax.set_xticks(range(len(rows)), [r["node"] for r in rows], rotation=60, ha="right",
                  fontsize=7)
    ax.set_ylabel("GB served to other routers")
    ax.set_title("Per-router contribution")
