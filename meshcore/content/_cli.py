"""``meshcore content ...``: publish, list, get, verify/scrub and rebuild-catalog.

Thin: parses arguments, loads the config, reads the clock, and calls
:class:`~meshcore.content.node.ContentNode`. Commands act as the console
principal ``local`` (an admin) unless ``--as NAME`` names a configured
principal (``--as guest`` for the anonymous view). Exit codes: 0 success, 1 a
clear error (``meshcore: ...`` on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..config import parse_duration
from ..errors import MeshcoreError, StorageError

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``content`` and its subcommands to the ``meshcore`` parser."""
    content = subparsers.add_parser("content", help="publish, list and fetch community content")
    sub = content.add_subparsers(dest="content_command", metavar="SUBCOMMAND")
    content.set_defaults(handler=lambda args: _usage(content))

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", required=True, help="node TOML file with a [content] table")
        p.add_argument("--as", dest="principal", default="local",
                       help="act as this principal (default: local, the console admin)")

    p = sub.add_parser("publish", help="publish a file")
    p.add_argument("file", type=Path)
    common(p)
    p.add_argument("--name", help="item name (default: the file's base name)")
    p.add_argument("--type", dest="media_type", help="media type (default: from the extension)")
    p.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    p.add_argument("--access", help="public, community, private or group:<name>")
    p.add_argument("--distribution",
                   help="push-all, push-tier, replicate:<k>, on-demand, local-only, no-store")
    p.add_argument("--retention", help="pin-until-expiry or ttl:<duration>")
    p.add_argument("--expires", help="lifetime from now, e.g. 30d")
    p.add_argument("--key", default="publisher",
                   help="signing key name under <state_dir>/keys (created if absent)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_publish)

    p = sub.add_parser("list", help="list items the principal may read")
    common(p)
    p.add_argument("--tag", help="only items with this tag")
    p.add_argument("--all", action="store_true", help="include incomplete items")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(handler=_list)

    p = sub.add_parser("get", help="write an item to a file")
    p.add_argument("content_id", help="content id (hex)")
    p.add_argument("-o", "--output", required=True, type=Path, help="destination file")
    common(p)
    p.set_defaults(handler=_get)

    for name in ("verify", "scrub"):
        p = sub.add_parser(name, help="check every chunk (xxh3; --full adds BLAKE2b)")
        common(p)
        p.add_argument("--full", action="store_true", help="recompute BLAKE2b digests")
        p.set_defaults(handler=_scrub)

    p = sub.add_parser("rebuild-catalog", help="rebuild the catalog from the store")
    common(p)
    p.set_defaults(handler=_rebuild)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _open(args):
    from .node import ContentNode
    from .settings import load_content_settings

    settings = load_content_settings(args.config)
    node = ContentNode(settings, now=time.time())
    for effect in node.drain_effects():
        print(f"meshcore: note: {_describe(effect)}", file=sys.stderr)
    return settings, node, settings.principal(args.principal)


def _describe(effect) -> str:
    from .catalog import CatalogRebuilt

    if isinstance(effect, CatalogRebuilt):
        where = f", old database kept at {effect.moved_to}" if effect.moved_to else ""
        return (f"catalog rebuilt ({effect.reason}): {effect.items} items, "
                f"{effect.incomplete} incomplete, {effect.bad_manifests} bad manifests{where}")
    return f"re-fetch chunk {effect.digest.hex()}: {effect.reason}"


def _row(record) -> dict:
    return {
        "content_id": record.content_id.hex(),
        "name": record.name,
        "size": record.size,
        "media_type": record.media_type,
        "tags": list(record.tags),
        "access": record.access,
        "distribution": record.distribution,
        "retention": record.retention,
        "publisher": record.publisher.hex(),
        "created": record.created,
        "expires": record.expires,
        "complete": record.complete,
    }


def _publish(args) -> int:
    from .keys import load_or_create_keypair

    settings, node, principal = _open(args)
    with node:
        now = time.time()
        expires = None
        if args.expires:
            try:
                expires = int(now + parse_duration(args.expires))
            except ValueError as exc:
                raise MeshcoreError(f"--expires: {exc}") from None
        keypair = load_or_create_keypair(settings.state_dir, args.key)
        try:
            result = node.publish(
                principal, args.file, keypair=keypair, now=now, name=args.name,
                media_type=args.media_type, tags=args.tag, access=args.access,
                distribution=args.distribution, retention=args.retention, expires=expires,
            )
        except ValueError as exc:
            if isinstance(exc, MeshcoreError):
                raise
            raise MeshcoreError(f"publish {args.file}: {exc}") from None
    if args.json:
        print(json.dumps({**_row(result.record), "new_chunks": result.new_chunks,
                          "new_bytes": result.new_bytes}))
    else:
        r = result.record
        print(f"{r.content_id.hex()}  {r.size} bytes  {r.access}  {r.distribution}  "
              f"tags={','.join(r.tags) or '-'}  ({result.new_chunks} new chunks)")
    return 0


def _list(args) -> int:
    _settings, node, principal = _open(args)
    with node:
        try:
            rows = node.list(principal, tag=args.tag, include_incomplete=args.all)
        except ValueError as exc:
            raise MeshcoreError(f"--tag: {exc}") from None
    for r in rows:
        if args.json:
            print(json.dumps(_row(r)))
        else:
            state = "" if r.complete else "  (incomplete)"
            print(f"{r.content_id.hex()}  {r.size:>12}  {r.access:<12} {r.name!r}{state}")
    return 0


def _parse_id(text: str) -> bytes:
    try:
        cid = bytes.fromhex(text)
    except ValueError:
        cid = b""
    if len(cid) != 32:
        raise MeshcoreError(f"content id: expected 64 hex digits, got {text!r}")
    return cid


def _get(args) -> int:
    from .node import UnknownContentError

    cid = _parse_id(args.content_id)
    _settings, node, principal = _open(args)
    with node:
        try:
            n = node.export(principal, cid, args.output, now=time.time())
        except UnknownContentError as exc:
            raise MeshcoreError(str(exc)) from None
        finally:
            for effect in node.drain_effects():
                print(f"meshcore: note: {_describe(effect)}", file=sys.stderr)
    print(f"wrote {n} bytes to {args.output}")
    return 0


def _scrub(args) -> int:
    _settings, node, _principal = _open(args)
    with node:
        started = time.monotonic()
        report = node.scrub(full=args.full)
        report.duration = time.monotonic() - started
        effects = node.drain_effects()
    print(report.summary())
    for effect in effects:
        print(f"  {_describe(effect)}")
    return 0 if report.clean else 1


def _rebuild(args) -> int:
    from .settings import load_content_settings

    settings = load_content_settings(args.config)
    db = settings.catalog_path
    if db.exists():
        # Moving the database aside makes the next open rebuild it and report it.
        n = 1
        while db.with_name(f"{db.name}.old-{n}").exists():
            n += 1
        try:
            db.rename(db.with_name(f"{db.name}.old-{n}"))
            for suffix in ("-wal", "-shm"):
                side = db.with_name(db.name + suffix)
                if side.exists():
                    side.rename(db.with_name(f"{db.name}.old-{n}{suffix}"))
        except OSError as exc:
            raise StorageError(f"{db}: cannot move aside: {exc.strerror}", path=str(db)) from exc
    _settings, node, _principal = _open(args)
    with node:
        print(f"catalog: {len(node.catalog)} items")
    return 0
