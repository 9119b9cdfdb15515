"""The ``meshcore`` command's shell: help, version, exit codes and error printing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from meshcore import cli
from meshcore.errors import ConfigError


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: meshcore" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert "meshcore 0.1.0" in capsys.readouterr().out


def test_meshcore_errors_print_one_line_and_exit_1(monkeypatch, capsys):
    def register(subparsers):
        parser = subparsers.add_parser("boom")

        def handler(args):
            raise ConfigError("node.toml", "net.community_key", "required key is missing")

        parser.set_defaults(handler=handler)

    fake = type(sys)("meshcore._fake_cli")
    fake.register = register
    monkeypatch.setitem(sys.modules, "meshcore._fake_cli", fake)
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("meshcore._fake_cli", "meshcore._absent_cli"))
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert err == "meshcore: node.toml: net.community_key: required key is missing\n"


def test_python_dash_m_runs_the_command():
    out = subprocess.run(
        [sys.executable, "-m", "meshcore", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "meshcore 0.1.0"
