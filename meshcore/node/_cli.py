"""``meshcore node``: run the node daemon, or show what a running node knows.

* ``meshcore node run --config node.toml [--once | --duration S] [--log-level L]``
  runs discovery (and the babeld adapter when ``[net.babeld]`` is set) until
  SIGTERM/SIGINT; ``--duration`` stops after S seconds, ``--once`` after the
  announce-on-join phase (one second) and prints the peer table.
* ``meshcore node peers --config node.toml [--json]`` prints the peer table
  from the running node's ``[node] status_file`` (default
  ``<state folder>/status.json``), every string from a peer escaped.

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
from meshcore.config import MAX_DURATION, load_config, read_bounded
from meshcore.errors import ConfigError, MeshcoreError
from meshcore.net._beacon import printable

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
    if args.duration is not None and not 0 < args.duration <= MAX_DURATION:
        print("meshcore: node run: --duration: expected 0 < S <= 2**32", file=sys.stderr)
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
    from .daemon import status_path

    config = load_config(args.config)
    path = status_path(config)
    if not path:
        raise ConfigError(config.path, "node.status_file",
                          "set to \"\": the running node writes no status to read")
    try:
        raw = read_bounded(path, MAX_STATUS_BYTES)
    except OSError as exc:
        raise MeshcoreError(f"{path}: cannot read the node status: {exc.strerror or exc} "
                            "(is the node running?)") from None
    except ValueError as exc:
        raise MeshcoreError(f"{path}: not a node status file: {exc}") from None
    try:
        status = json.loads(raw)
        _check_status(status)
    except (ValueError, RecursionError) as exc:
        raise MeshcoreError(f"{path}: not a node status file: {exc}") from None
    if args.json:
        # ensure_ascii: every control or invisible character of a peer's id
        # leaves as a \u escape, never raw to the terminal.
        print(json.dumps(status, indent=1, sort_keys=True))
    else:
        _print_peers(status)
    return 0


#: Largest status file read: 4096 peers are about 1.5 MB.
MAX_STATUS_BYTES = 16 << 20

_PEER_FIELDS: dict[str, tuple[type, ...]] = {
    "node_id": (str,), "state": (str,), "hops": (int,),
}
_OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "addr": (list, type(None)), "via": (str, type(None)), "interface": (str, type(None)),
    "etx": (int, float, type(None)), "rtt": (int, float, type(None)),
}


def _check_status(status: object) -> None:
    """ValueError naming the first thing in ``status`` that a node never writes."""
    if not isinstance(status, dict):
        raise ValueError(f"expected a JSON object, got {type(status).__name__}")
    peers = status.get("peers", [])
    if not isinstance(peers, list):
        raise ValueError(f"peers: expected a list, got {type(peers).__name__}")
    for i, p in enumerate(peers):
        if not isinstance(p, dict):
            raise ValueError(f"peers[{i}]: expected an object, got {type(p).__name__}")
        for key, types in _PEER_FIELDS.items():
            if key not in p:
                raise ValueError(f"peers[{i}]: no {key!r}")
            if not isinstance(p[key], types) or isinstance(p[key], bool):
                raise ValueError(f"peers[{i}].{key}: unexpected {type(p[key]).__name__}")
        for key, types in _OPTIONAL_FIELDS.items():
            if key in p and not isinstance(p[key], types):
                raise ValueError(f"peers[{i}].{key}: unexpected {type(p[key]).__name__}")


def _print_peers(status: dict[str, Any]) -> None:
    # Everything here came from peers (ids, interface names): escaped, so a
    # hostile id cannot move the cursor, recolour the terminal or fake a row.
    peers = status.get("peers", [])
    print(f"node {printable(status.get('node_id'))}: {len(peers)} peer"
          f"{'s' * (len(peers) != 1)}")
    if not peers:
        return
    print(f"{'NODE':<18} {'STATE':<8} {'HOPS':>4} {'ADDRESS':<22} {'ETX':>6} {'RTT ms':>7}  HOW")
    for p in peers:
        addr = printable(":".join(str(x) for x in p["addr"])) if p.get("addr") else "-"
        etx = f"{p['etx']:.2f}" if p.get("etx") is not None else "-"
        rtt = f"{p['rtt'] * 1000:.1f}" if p.get("rtt") is not None else "-"
        if p.get("via"):
            how = f"via {printable(p['via'])}"
        elif p.get("via_multicast"):
            how = f"multicast {printable(p.get('interface') or '')}".rstrip()
        else:
            how = "unicast"
        print(f"{printable(p['node_id']):<18} {printable(p['state']):<8} {p['hops']:>4} "
              f"{addr:<22} {etx:>6} {rtt:>7}  {how}")
