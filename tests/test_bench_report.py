"""bench/report.py: ratio tables and the release-to-release comparison of ci/bench.sh."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import report


def _run(ours_median: float, peer_median: float, paired: float | None = None) -> dict:
    ours_info = {"impl": "meshcore-compiled", "role": "ours", "items": 1000}
    if paired is not None:
        ours_info["metrics"] = {"paired_vs_peer": paired}
    return {
        "benchmarks": [
            {"group": "g", "name": "a", "stats": {"median": ours_median}, "extra_info": ours_info},
            {
                "group": "g",
                "name": "b",
                "stats": {"median": peer_median},
                "extra_info": {"impl": "peer-lib", "role": "peer", "items": 1000},
            },
        ]
    }


def test_peer_ratios_prefer_the_paired_ratio():
    assert report.peer_ratios(_run(1.0, 2.0)) == {("g", "meshcore-compiled"): 2.0}
    assert report.peer_ratios(_run(1.0, 2.0, paired=1.5)) == {("g", "meshcore-compiled"): 1.5}


def test_compare_flags_only_falls_beyond_the_threshold():
    old = _run(1.0, 2.0)  # 2.0x the peer
    lines, bad = report.compare(old, _run(1.0, 1.7), 0.2)  # 1.7x: -15%
    assert bad == 0 and "-15.0%" in lines[0]
    lines, bad = report.compare(old, _run(1.0, 1.5), 0.2)  # 1.5x: -25%
    assert bad == 1 and "REGRESSION" in lines[0]
    # Machines differ: absolute times halve, the ratio is what is compared.
    _, bad = report.compare(old, _run(0.5, 1.0), 0.2)
    assert bad == 0


def test_latest_release_orders_versions_numerically(tmp_path):
    for v in ("0.9.0", "0.10.0", "0.2.1"):
        (tmp_path / f"{v}.json").write_text("{}")
    assert report.latest_release(tmp_path).name == "0.10.0.json"
    assert report.latest_release(tmp_path / "missing") is None


def test_cli_compare_exit_codes(tmp_path, capsys):
    history = tmp_path / "history"
    history.mkdir()
    (history / "0.1.0.json").write_text(json.dumps(_run(1.0, 2.0)))
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_run(1.0, 2.1)))
    bad.write_text(json.dumps(_run(1.0, 1.0)))
    assert report.main(["--compare", str(history), str(good)]) == 0
    assert "0 regression(s)" in capsys.readouterr().out
    assert report.main(["--compare", str(history), str(bad), "--threshold", "0.2"]) == 1
    (tmp_path / "empty").mkdir()
    assert report.main(["--compare", str(tmp_path / "empty"), str(bad)]) == 2


@pytest.mark.parametrize("content", ["not json", ""])
def test_cli_reports_unreadable_files(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_text(content)
    assert report.main([str(path)]) == 2
    assert report.main(["--compare", str(path), str(path)]) == 2
