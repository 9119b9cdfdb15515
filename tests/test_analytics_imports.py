"""Each analytics module imports alone (no hidden circular imports), without matplotlib."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "meshcore.analytics.metrics",
    "meshcore.analytics.sketches",
    "meshcore.analytics.privacy",
    "meshcore.analytics.rollups",
    "meshcore.analytics.events",
    "meshcore.analytics.aggregate",
    "meshcore.analytics.exporters",
    "meshcore.analytics.report",
    "meshcore.analytics.charts",
    "meshcore.analytics.settings",
    "meshcore.analytics._cli",
]


def test_each_module_imports_alone():
    script = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('meshcore')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
        "    assert 'matplotlib' not in sys.modules, name  # charts import it lazily\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
