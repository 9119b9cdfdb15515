"""Package faces load their modules on first use and behave like eager imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

import meshcore.net


def test_names_resolve_to_the_defining_module_and_are_cached():
    from meshcore.net.routing import Routes

    assert meshcore.net.Routes is Routes
    assert "Routes" in vars(meshcore.net)  # cached: __getattr__ is not asked again
    assert "Routes" in dir(meshcore.net) and "Topology" in dir(meshcore.net)
    assert meshcore.net.__all__ == sorted(meshcore.net.__all__)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match=r"module 'meshcore\.net' has no attribute 'Nope'"):
        _ = meshcore.net.Nope


def test_the_command_does_not_import_numpy_or_the_policy_modules():
    code = (
        "import sys; from meshcore import cli; cli.build_parser(); "
        "print(sorted(m for m in ('numpy', 'sqlite3', 'cryptography', 'meshcore.net.routing') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
