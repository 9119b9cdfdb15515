"""Which backend loaded, and that the choice is made in one place."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import meshcore
import meshcore.kernels as kernels


def _all_modules() -> list[str]:
    """Every module of the meshcore package, found from the source tree."""
    root = Path(meshcore.__file__).resolve().parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts))
    return names


PUBLIC_MODULES = _all_modules()


def test_backend_loaded():
    """CI's compiled run sets MESHCORE_EXPECT_COMPILED=1: a silent pure fallback fails it."""
    if os.environ.get("MESHCORE_PURE"):
        assert kernels.BACKEND == "pure"
    elif os.environ.get("MESHCORE_EXPECT_COMPILED"):
        assert kernels.BACKEND == "compiled"
    else:
        assert kernels.BACKEND in ("compiled", "pure")


def test_exports_match_backend():
    suffix = "_c" if kernels.BACKEND == "compiled" else "_py"
    assert kernels.BloomFilter.__module__.endswith("_bloom" + suffix)
    assert kernels.Chunker.__module__.endswith("_chunker" + suffix)
    assert kernels.DRRScheduler.__module__.endswith("_drr" + suffix)
    assert kernels.shortest_paths.__module__.endswith("_routes" + suffix)
    for name in kernels.__all__:
        assert hasattr(kernels, name), name


def test_errors_reexported_and_layered():
    assert meshcore.DecodeError is meshcore.errors.DecodeError
    assert issubclass(meshcore.DecodeError, ValueError)
    assert issubclass(meshcore.ConfigError, meshcore.MeshcoreError)
    err = meshcore.ConfigError("node.toml", "[cache] max_bytes", "expected an integer >= 0, got -5")
    assert str(err) == "node.toml: [cache] max_bytes: expected an integer >= 0, got -5"
    assert (err.path, err.key) == ("node.toml", "[cache] max_bytes")


def _reload_kernels(monkeypatch, *, pure_env: str | None, block_compiled: bool):
    if pure_env is None:
        monkeypatch.delenv("MESHCORE_PURE", raising=False)
    else:
        monkeypatch.setenv("MESHCORE_PURE", pure_env)
    if block_compiled:
        # None in sys.modules makes the import raise ImportError, as on a
        # router where the wheel carried no compiled kernels.
        monkeypatch.setitem(sys.modules, "meshcore.kernels._drr_c", None)
    return importlib.reload(kernels)


@pytest.fixture
def restore_kernels():
    yield
    importlib.reload(kernels)


def test_pure_env_forces_twins(monkeypatch, restore_kernels):
    reloaded = _reload_kernels(monkeypatch, pure_env="1", block_compiled=False)
    assert reloaded.BACKEND == "pure"
    assert reloaded.DRRScheduler.__module__.endswith("_drr_py")


def test_pure_env_zero_means_off(monkeypatch, restore_kernels):
    monkeypatch.setitem(sys.modules, "meshcore.kernels._drr_c", None)
    reloaded = _reload_kernels(monkeypatch, pure_env="0", block_compiled=True)
    # "0" does not force the twins; the blocked compiled module then falls back.
    assert reloaded.BACKEND == "pure"


def test_missing_compiled_module_falls_back_to_all_pure(monkeypatch, restore_kernels):
    reloaded = _reload_kernels(monkeypatch, pure_env=None, block_compiled=True)
    assert reloaded.BACKEND == "pure"
    # All four or none: no compiled kernel may be mixed with the twins.
    for name in ("BloomFilter", "Chunker", "DRRScheduler", "shortest_paths"):
        assert getattr(reloaded, name).__module__.endswith("_py"), name


_IMPORT_EACH_ALONE = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "meshcore" or m.startswith("meshcore.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ":\\n" + traceback.format_exc())
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone():
    """Each module imports first, from a clean slate of meshcore modules: no import cycles.

    One interpreter for all modules (a fresh one each would cost seconds): before
    each import every ``meshcore`` module is dropped from ``sys.modules``.
    """
    assert "meshcore.cache._cache" in PUBLIC_MODULES
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_ALONE, *PUBLIC_MODULES],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
