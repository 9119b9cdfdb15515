"""The ``meshcore`` command: a thin layer that parses arguments and calls the library.

Each capability contributes its subcommands from a small ``_cli`` module with a
``register(subparsers)`` function, so this file stays a list of imports.
Exit codes: 0 success, 1 a clear error (bad input file, bad config), 2 bad
command-line usage (argparse's own convention).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .errors import MeshcoreError

# Modules that provide ``register(subparsers)``; missing ones are skipped so a
# partial install (no optional extras) still has a working command.
_COMMAND_MODULES = (
    "meshcore.net._cli",
    "meshcore.node._cli",
    "meshcore.content._cli",
    "meshcore.fairness._cli",
    "meshcore.analytics._cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="meshcore", description="Content distribution for community mesh networks."
    )
    parser.add_argument("--version", action="version", version=f"meshcore {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a :class:`MeshcoreError` prints ``meshcore: <message>`` and returns 1."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except MeshcoreError as exc:
        print(f"meshcore: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover - python -m meshcore.cli
    raise SystemExit(main())
