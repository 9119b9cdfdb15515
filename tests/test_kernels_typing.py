"""meshcore.kernels as a typed primitive library: ``mypy --strict`` on downstream code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def _mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy")
    # follow-imports=silent: errors are reported for the downstream file only,
    # as for any installed typed package.
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--no-incremental",
            "--cache-dir=/dev/null",
            *map(str, paths),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_package_is_marked_typed_and_compiled_kernels_have_stubs():
    assert (ROOT / "meshcore" / "py.typed").is_file()
    for kernel in ("bloom", "cache", "chunker", "drr", "routes"):
        assert (ROOT / "meshcore" / "kernels" / f"_{kernel}_c.pyi").is_file(), kernel


def test_mypy_strict_passes_on_a_downstream_user_of_meshcore_kernels():
    # The second file imports the compiled modules directly: their stubs.
    done = _mypy(DATA / "downstream_kernels.py", DATA / "downstream_compiled_stubs.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout


def test_mypy_strict_catches_a_misuse():
    # The check is real: a wrong argument type is an error.
    bad = DATA / "downstream_kernels.py"
    text = bad.read_text().replace(
        'AdaptiveTinyLFU(1 << 20, weighting="bytes")', 'AdaptiveTinyLFU("big", weighting=1)'
    )
    assert text != bad.read_text()
    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "misuse.py"
    path.write_text(text)
    done = _mypy(path)
    assert done.returncode == 1
    assert "AdaptiveTinyLFU" in done.stdout and "arg-type" in done.stdout


def test_downstream_file_runs():
    done = subprocess.run(
        [sys.executable, str(DATA / "downstream_kernels.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
