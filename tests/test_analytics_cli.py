"""``meshcore analytics report`` end to end on a small rollup database."""

from __future__ import annotations

import json

import pytest

from meshcore.analytics.rollups import Rollup, RollupStore
from meshcore.cli import main

DAY0 = 1_763_942_400  # 2025-11-24


@pytest.fixture
def setup(tmp_path):
    db = tmp_path / "rollups.db"
    with RollupStore(db) as store:
        store.write([
            Rollup("n1", "day", DAY0, {"req_local": 6, "req_external": 2,
                                       "bytes_local": 3 * 10**9, "bytes_external": 10**9}),
            Rollup("n2", "day", DAY0 + 86400, {"req_mesh": 2, "bytes_mesh": 10**9}),
        ])
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'[analytics]\nsalt = "0123456789abcdef"\nprice_per_gb = 2.0\n'
                   f'rollup_path = "{db}"\n')
    return tmp_path, cfg


def test_report_command_writes_every_file(setup, capsys):
    tmp, cfg = setup
    out = tmp / "out"
    code = main(["analytics", "report", "--config", str(cfg), "--from", "2025-11-24",
                 "--to", "2025-11-27", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["requests"] == 10
    assert report["uplink_cost_saved"]["amount"] == pytest.approx(8.0)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["fairness.csv", "peak_hours.csv", "per_node.csv", "report.json",
                     "series.csv", "summary.md", "top_content.csv", "traffic_by_tier.csv"]
    assert "80%" in (out / "summary.md").read_text()


def test_report_command_errors(setup, capsys, tmp_path):
    tmp, cfg = setup
    args = ["analytics", "report", "--config", str(cfg), "--out", str(tmp / "o")]
    assert main([*args, "--from", "2025-11-27", "--to", "2025-11-24"]) == 1
    assert "before it starts" in capsys.readouterr().err
    assert main([*args, "--from", "yesterday", "--to", "2025-11-24"]) == 2
    assert "--from" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[analytics]\n")
    assert main(["analytics", "report", "--config", str(bad), "--from", "0", "--to", "1",
                 "--out", str(tmp / "o")]) == 1
    assert "analytics.salt" in capsys.readouterr().err
    nodb = tmp_path / "nodb.toml"
    nodb.write_text('[analytics]\nsalt = "0123456789abcdef"\n')
    assert main(["analytics", "report", "--config", str(nodb), "--from", "0", "--to", "1",
                 "--out", str(tmp / "o")]) == 1
    assert "rollup_path" in capsys.readouterr().err
    assert main(["analytics"]) == 2


def test_report_command_with_charts(setup, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib (the 'plot' extra) is not installed")
    tmp, cfg = setup
    out = tmp / "charts"
    code = main(["analytics", "report", "--config", str(cfg), "--from", "0",
                 "--to", str(DAY0 + 3 * 86400), "--out", str(out), "--charts"])
    assert code == 0
    assert (out / "traffic.png").exists() and (out / "per_node.svg").exists()
