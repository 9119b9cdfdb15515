"""``meshcore fairness check CONFIG``: validate the ``[fairness]`` section and print it.

Thin: loads the TOML file, runs :func:`~meshcore.fairness.settings.parse_fairness`
(which raises ``ConfigError`` naming file, key and problem; the CLI prints it as
``meshcore: ...`` and exits 1) and prints the classes and rules in precedence
order. Exit codes: 0 valid, 1 invalid, 2 usage.
"""

from __future__ import annotations

import argparse
import sys

from ..config import load_config
from ..errors import ConfigError
from .settings import SPECIFICITY, parse_fairness

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``fairness`` and its ``check`` subcommand to the ``meshcore`` parser."""
    fairness = subparsers.add_parser("fairness", help="bandwidth fairness configuration")
    sub = fairness.add_subparsers(dest="fairness_command", metavar="SUBCOMMAND")
    fairness.set_defaults(handler=lambda args: _usage(fairness))
    p = sub.add_parser("check", help="validate [fairness] of a node config and print it")
    p.add_argument("config", help="node TOML file")
    p.set_defaults(handler=_check)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 8 / 1e6:g} Mbit/s"


def _size(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e9:g} GB"


def _check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if "fairness" not in config:
        # The defaults are valid, but a file without the table is almost always
        # the wrong file: saying "valid" would hide it.
        raise ConfigError(config.path, "fairness",
                          "no [fairness] table: nothing to check (the node would run with one "
                          "default class)")
    settings = parse_fairness(config)
    print(f"{settings.path}: [fairness] is valid")
    print(
        f"default class: {settings.default_class}; quantum {settings.quantum} B; "
        f"chunk {settings.chunk} B"
    )
    for spec in settings.classes.values():
        print(
            f"class {spec.name}: weight {spec.weight:g}, down {_rate(spec.rate_down)}, "
            f"up {_rate(spec.rate_up)}, daily {_size(spec.daily_soft_quota)} soft / "
            f"{_size(spec.daily_quota)} hard, monthly {_size(spec.monthly_soft_quota)} soft / "
            f"{_size(spec.monthly_quota)} hard"
        )
    for rule in sorted(settings.rules, key=lambda r: -SPECIFICITY[r.key]):
        print(f"rule {rule.where}: {rule.key} = {rule.value!r} -> {rule.class_name}")
    return 0
