"""``meshcore node``: run the node daemon, or show what a running node knows.

* ``meshcore node run --config node.toml [--once | --duration S] [--log-level L]``
  runs discovery (and the babeld adapter when ``[net.babeld]`` is set) until
  SIGTERM/SIGINT; ``--duration`` stops after S seconds, ``--once`` after the
  announce-on-join phase (one second) and prints the peer table.
* ``meshcore node peers --config node.toml [--json]`` prints the peer table
  from the running node's ``[node] status_file``.

A config error (missing ``net.community_key``, a bad value) exits 1 with
``meshcore: <file>: <key>: <problem>`` before any socket is opened.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from meshcore.cli import finite_float
from meshcore.config import load_config
from meshcore.errors import ConfigError, MeshcoreError

__all__ = ["register"]

ONCE_SECONDS = 1.0
"""How long ``--once`` runs: the announce-on-join burst and the replies it draws."""


def register(subparsers: Any) -> None:
    """Add ``node run`` and ``node peers`` to the ``meshcore`` command."""
    parser = subparsers.add_parser("node", help="run the node daemon, show its peers")
    sub = parser.add_subparsers(dest="node_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: _usage(parser))

    run = sub.add_parser("run", help="run discovery (and the babeld adapter) until stopped")
    run.add_argument("--config", "-c", required=True, help="the node's TOML file")
    stop = run.add_mutually_exclusive_group()
    stop.add_argument("--once", action="store_true",
                      help="stop after the join phase (1 s) and print the peers")
    stop.add_argument("--duration", type=finite_float, metavar="S",
                      help="stop after S seconds (> 0)")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                     help="override [node] log_level")
    run.set_defaults(handler=_run)

    peers = sub.add_parser("peers", help="print the peers a running node knows")
    peers.add_argument("--config", "-c", required=True, help="the node's TOML file")
    peers.add_argument("--json", action="store_true", help="print the status file as is")
    peers.set_defaults(handler=_peers)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    from .daemon import NodeDaemon, NodeSettings

    settings = NodeSettings.from_config(load_config(args.config))
    level = args.log_level or settings.log_level
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.duration is not None and args.duration <= 0:
        print("meshcore: node run: --duration must be > 0", file=sys.stderr)
        return 2
    daemon = NodeDaemon(settings)
    duration = ONCE_SECONDS if args.once else args.duration
    try:
        code = asyncio.run(daemon.run(duration=duration))
    except OSError as exc:
        raise MeshcoreError(
            f"cannot open UDP port {settings.discovery.port}: {exc.strerror or exc}"
        ) from None
    if args.once:
        _print_peers(daemon.status())
    return code


def _peers(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    node = config.section("node")
    path = node.get_str("status_file", "")
    if not path:
        raise ConfigError(config.path, "node.status_file",
                          "not set: the running node writes no status to read")
    try:
        with open(path, encoding="utf-8") as f:
            status = json.load(f)
    except OSError as exc:
        raise MeshcoreError(f"{path}: cannot read the node status: {exc.strerror or exc} "
                            "(is the node running?)") from None
    except ValueError as exc:
        raise MeshcoreError(f"{path}: not a node status file: {exc}") from None
    if args.json:
        print(json.dumps(status, indent=1, sort_keys=True))
    else:
        _print_peers(status)
    return 0


def _print_peers(status: dict[str, Any]) -> None:
    peers = status.get("peers", [])
    print(f"node {status.get('node_id')}: {len(peers)} peer{'s' * (len(peers) != 1)}")
    if not peers:
        return
    print(f"{'NODE':<18} {'STATE':<8} {'HOPS':>4} {'ADDRESS':<22} {'ETX':>6} {'RTT ms':>7}  HOW")
    for p in peers:
        addr = ":".join(str(x) for x in p["addr"]) if p.get("addr") else "-"
        etx = f"{p['etx']:.2f}" if p.get("etx") is not None else "-"
        rtt = f"{p['rtt'] * 1000:.1f}" if p.get("rtt") is not None else "-"
        if p.get("via"):
            how = f"via {p['via']}"
        elif p.get("via_multicast"):
            how = f"multicast {p.get('interface') or ''}".rstrip()
        else:
            how = "unicast"
        print(f"{p['node_id']:<18} {p['state']:<8} {p['hops']:>4} {addr:<22} {etx:>6} {rtt:>7}  "
              f"{how}")
