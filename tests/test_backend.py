"""Which backend loaded, and that the choice is made in one place."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

import meshcore
import meshcore.kernels as kernels

PUBLIC_MODULES = [
    "meshcore",
    "meshcore.errors",
    "meshcore.kernels",
    "meshcore.kernels._args",
    "meshcore.kernels._bloom_format",
    "meshcore.kernels._chunking",
    "meshcore.kernels._graph",
    "meshcore.kernels._drr_common",
    "meshcore.kernels._bloom_py",
    "meshcore.kernels._chunker_py",
    "meshcore.kernels._routes_py",
    "meshcore.kernels._drr_py",
    "meshcore.cache",
    "meshcore.cache._sketch",
    "meshcore.cache._policies",
    "meshcore.cache._freshness",
    "meshcore.cache._cache",
    "meshcore.cache._traces",
    "meshcore.cache._replay",
]


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


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_module_imports_alone(module):
    """Each module imports in a fresh interpreter: no import cycles."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert result.returncode == 0, result.stderr
