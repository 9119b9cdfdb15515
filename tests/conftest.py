"""Shared fixtures: the ``backend`` parameter that runs kernel tests on both twins, and a
private default state folder for every test."""

from __future__ import annotations

import importlib
import os

import pytest

PURE_ONLY = os.environ.get("MESHCORE_PURE", "").strip().lower() not in ("", "0", "false", "no")
BACKENDS = ["pure"] if PURE_ONLY else ["pure", "compiled"]


def kernel_module(kernel: str, backend: str):
    """Import one kernel's module for ``backend`` (``"pure"`` or ``"compiled"``).

    Tests are the one place that names ``_*_c``/``_*_py`` directly: they compare
    the twins. A compiled module that was not built skips the test, and
    ``test_backend.py`` fails the run when CI expected it to be built.
    """
    suffix = "_c" if backend == "compiled" else "_py"
    name = f"meshcore.kernels._{kernel}{suffix}"
    if backend == "compiled":
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            pytest.skip(f"compiled kernel {name} is not built: {exc}")
    return importlib.import_module(name)


@pytest.fixture(autouse=True)
def _default_state_dir(tmp_path_factory, monkeypatch):
    """No test touches ``/var/lib/meshcore``: the default state folder is a fresh temp dir.

    A config without ``state_dir`` (most test configs) then locks and writes
    there, as a node on a router writes ``/var/lib/meshcore``.
    """
    import meshcore.config

    monkeypatch.setattr(meshcore.config, "DEFAULT_STATE_DIR",
                        str(tmp_path_factory.mktemp("default-state")))


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """``"pure"`` and ``"compiled"`` (only ``"pure"`` when MESHCORE_PURE=1)."""
    return request.param


@pytest.fixture
def twins():
    """``(pure, compiled)`` module getter for differential tests.

    Returns a function ``get(kernel) -> (pure_module, compiled_module)``; skips
    when the compiled backend is off or not built.
    """
    if PURE_ONLY:
        pytest.skip("differential tests need the compiled backend (MESHCORE_PURE=1 is set)")

    def get(kernel: str):
        return kernel_module(kernel, "pure"), kernel_module(kernel, "compiled")

    return get
