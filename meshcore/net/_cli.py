"""``meshcore topology``: map a mesh with one command.

* ``meshcore topology import FILE... [--format F] [-o OUT.json] [--self NODE_ID]``
  imports a routing-daemon dump or map file (format detected unless given;
  a directory or several files of per-router dumps are merged) and writes NetJSON
  NetworkGraph (stdout without ``-o``).
* ``meshcore topology import --babeld HOST:PORT|/path/to/socket`` reads a
  live babeld's local interface instead of a file
  (:func:`meshcore.node.babeld.fetch_topology`).
* ``meshcore topology diff OLD NEW [--json]`` prints what changed.

``--self`` names the router the map is drawn from: a placeholder ``self``
node (802.11s dumps) is renamed to it, it becomes ``router_id``, and every
node gets its ``locality`` tier. Bad input exits 1 with
``meshcore: <file>: <format>: <position>: <problem>``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable
from typing import Any

from meshcore._files import write_output
from meshcore.cli import finite_float
from meshcore.errors import MeshcoreError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``topology import`` and ``topology diff`` to the ``meshcore`` command."""
    parser = subparsers.add_parser(
        "topology", help="import, export and compare mesh topologies (NetJSON)"
    )
    sub = parser.add_subparsers(dest="topology_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: _usage(parser))

    imp = sub.add_parser("import", help="import a topology dump and write NetJSON NetworkGraph")
    imp.add_argument(
        "file", nargs="*", help="dump file, directory or several files of per-router dumps"
    )
    imp.add_argument("--babeld", metavar="ADDR", help="read a live babeld (HOST:PORT or socket)")
    imp.add_argument("--timeout", type=finite_float, default=5.0,
                     help="babeld timeout, s (5; 0 < S <= 3600)")
    imp.add_argument("--format", "-f", help="input format (default: detect)")
    imp.add_argument("-o", "--output", help="write NetJSON here (default: stdout)")
    imp.add_argument("--self", dest="self_id", metavar="NODE_ID", help="this router's node id")
    imp.add_argument("--exclude-broken", action="store_true", help="leave broken links out")
    imp.set_defaults(handler=_import)

    diff = sub.add_parser("diff", help="compare two topologies")
    diff.add_argument("old")
    diff.add_argument("new")
    diff.add_argument("--format", "-f", help="input format of both (default: detect)")
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    diff.add_argument(
        "--rel-tol",
        type=finite_float,
        default=0.0,
        help="ignore relative cost changes up to this fraction (0)",
    )
    diff.set_defaults(handler=_diff)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _load(path: str, fmt: str | None) -> Any:
    from meshcore.net.importers import import_topology

    try:
        return import_topology(path, format=fmt)
    except ValueError as exc:
        if isinstance(exc, MeshcoreError):
            raise
        raise _UsageError(str(exc)) from None


class _UsageError(MeshcoreError):
    """A bad command-line value (unknown format, missing input)."""


def _import(args: argparse.Namespace) -> int:
    if bool(args.file) == (args.babeld is not None):
        raise _UsageError("topology import: give exactly one of FILE or --babeld ADDR")
    if args.babeld is not None:
        from meshcore.node.babeld import fetch_topology

        if not 0 < args.timeout <= 3600:
            raise _UsageError(f"--timeout: expected 0 < seconds <= 3600, got {args.timeout:g}")

        try:
            topo = fetch_topology(args.babeld, timeout=args.timeout)
        except ValueError as exc:  # a malformed address: a usage error, not a crash
            raise _UsageError(str(exc)) from None
    else:
        topo = _load(args.file[0] if len(args.file) == 1 else args.file, args.format)
    self_id = args.self_id
    if self_id is not None:
        if self_id not in topo.nodes:
            placeholder = topo.router_id if topo.router_id in topo.nodes else None
            if placeholder is None and "self" in topo.nodes:
                placeholder = "self"
            if placeholder is None:
                raise _UsageError(f"--self: node {self_id!r} is not in the topology")
            topo.rename_node(placeholder, self_id)
        topo.router_id = self_id
    from meshcore.net.netjson import iter_dumps

    # Written one record at a time: the whole document as dicts and text
    # would take more memory than the graph itself.
    pieces = iter_dumps(topo, self_id=self_id, include_broken=not args.exclude_broken)
    if args.output is None or args.output == "-":
        for piece in pieces:
            sys.stdout.write(piece)
    else:
        _write_atomic(args.output, pieces)
        print(
            f"wrote {args.output}: {len(topo.nodes)} nodes, {topo.num_links} links",
            file=sys.stderr,
        )
    return 0


def _write_atomic(path: str, pieces: Iterable[str]) -> None:
    # temp file + rename for a file (a crash never leaves half a map for the
    # visualiser); a device or FIFO is written as a stream, a link followed.
    try:
        write_output(path, pieces)
    except BrokenPipeError:
        raise  # `-o /dev/stdout | head`: the reader went away; the command exits quietly
    except OSError as exc:
        raise _UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _cost(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3f}"


def _diff(args: argparse.Namespace) -> int:
    old = _load(args.old, args.format)
    new = _load(args.new, args.format)
    if not args.rel_tol >= 0:
        raise _UsageError("--rel-tol: expected a number >= 0")
    diff = old.diff(new, rel_tol=args.rel_tol)
    if args.json:
        json.dump(diff.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    out = sys.stdout
    out.write(
        f"nodes: +{len(diff.added_nodes)} -{len(diff.removed_nodes)}; links: "
        f"+{len(diff.added_links)} -{len(diff.removed_links)} ~{len(diff.changed_links)}\n"
    )
    for node_id in diff.added_nodes:
        out.write(f"+ node {node_id}\n")
    for node_id in diff.removed_nodes:
        out.write(f"- node {node_id}\n")
    for link in diff.added_links:
        out.write(f"+ link {link.source} -> {link.target} cost {_cost(link.cost)}\n")
    for link in diff.removed_links:
        out.write(f"- link {link.source} -> {link.target} cost {_cost(link.cost)}\n")
    for ch in diff.changed_links:
        out.write(
            f"~ link {ch.source} -> {ch.target} cost {_cost(ch.old_cost)} -> {_cost(ch.new_cost)}\n"
        )
    return 0
