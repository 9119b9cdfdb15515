"""The ``meshcore`` command: a thin layer that parses arguments and calls the library.

Each capability contributes its subcommands from a small ``_cli`` module with a
``register(subparsers)`` function, so this file stays a list of imports.
Exit codes: 0 success, 1 a clear error (bad input file, bad config), 2 bad
command-line usage (argparse's own convention), 130 interrupted (Ctrl-C:
``meshcore: interrupted`` on stderr, after the command's own clean-up ran),
141 the reader of standard output went away (``meshcore content list | head
-1``: quietly, as a C tool killed by SIGPIPE would).

An error meshcore raises on purpose (:class:`MeshcoreError`) and an operating
system error that escaped a command (a read-only folder, a full disk) are
printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
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


def finite_float(text: str) -> float:
    """An ``argparse`` type: a finite number (``nan``, ``inf`` and overflows are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


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


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a :class:`MeshcoreError` prints ``meshcore: <message>`` and returns 1.

    See the module docstring for the other exit codes.
    """
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return 2
        code = int(handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _broken_pipe()
    except KeyboardInterrupt:
        print("meshcore: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MeshcoreError as exc:
        print(f"meshcore: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"meshcore: {describe_os_error(exc)}", file=sys.stderr)
        return 1


def describe_os_error(exc: OSError) -> str:
    """``"<file>: <reason>"`` for an OSError (the file first, as the other errors)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason


def _broken_pipe() -> int:
    # Python would flush stdout again at exit and print "Exception ignored":
    # point it at /dev/null first (Python docs, "Note on SIGPIPE").
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout replaced by a test or closed
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover - python -m meshcore.cli
    raise SystemExit(main())
