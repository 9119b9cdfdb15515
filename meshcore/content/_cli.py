"""``meshcore content ...``: publish, list, get, verify/scrub and rebuild-catalog.

Thin: parses arguments, loads the config, reads the clock, and calls
:class:`~meshcore.content.node.ContentNode`. Commands act as the console
principal ``local`` (an admin) unless ``--as NAME`` names a configured
principal (``--as guest`` for the anonymous view). Exit codes: 0 success, 1 a
clear error (``meshcore: ...`` on stderr), 2 usage.

Everything the library reports (a rebuilt catalog, a recovered crash, a
quarantined chunk) is said once, as a ``meshcore: note:`` line or in the
error; the library's log lines are not printed a second time. Names that
come from files (item names) are printed with :func:`repr`, so control
characters cannot reach the terminal.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from ..config import parse_duration
from ..errors import IntegrityError, MeshcoreError, StateLockedError

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

    p = sub.add_parser("scrub", help="check every chunk (xxh3; --full adds BLAKE2b) "
                                     "and every manifest")
    common(p)
    p.add_argument("--full", action="store_true", help="recompute BLAKE2b digests")
    p.set_defaults(handler=_scrub)
    p = sub.add_parser("verify", help="check everything a read checks: scrub --full")
    common(p)
    p.add_argument("--full", action="store_true", default=True,
                   help="accepted for compatibility: verify always checks BLAKE2b")
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

    _quiet_library_log()
    settings = load_content_settings(args.config)
    node = ContentNode(settings, now=time.time())
    _notes(node.drain_effects())
    report = node.open_report
    if report.interrupted:
        print(f"meshcore: note: recovered from {len(report.interrupted)} interrupted "
              f"operation(s): {report.recovered} items listed, {report.dropped} dropped, "
              f"{report.orphans_removed} orphan chunks removed", file=sys.stderr)
    if report.bad_manifests:
        print(f"meshcore: note: {report.bad_manifests} manifest(s) failed verification and "
              "were quarantined (their chunks are kept)", file=sys.stderr)
    return settings, node, settings.principal(args.principal)


def _quiet_library_log() -> None:
    # Every warning of the content library is also an effect, a report or an
    # error, which the commands print; Python's last-resort handler would print
    # it a second time.
    logger = logging.getLogger("meshcore.content")
    if not logger.handlers and not logging.getLogger().handlers:
        logger.addHandler(logging.NullHandler())


def _notes(effects) -> None:
    for effect in effects:
        print(f"meshcore: note: {_describe(effect)}", file=sys.stderr)


def _describe(effect) -> str:
    from .catalog import CatalogRebuilt

    if isinstance(effect, CatalogRebuilt):
        where = f", old database kept at {effect.moved_to}" if effect.moved_to else ""
        return (f"catalog rebuilt ({effect.reason}): {effect.items} items, "
                f"{effect.incomplete} incomplete, {effect.bad_manifests} bad manifests "
                f"(quarantined){where}")
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
        try:
            keypair = load_or_create_keypair(settings.state_dir, args.key)
        except ValueError as exc:
            if isinstance(exc, MeshcoreError):
                raise
            raise MeshcoreError(f"--key: {exc}") from None
        _wait_for_writer(node)
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


def _wait_for_writer(node) -> None:
    """Say so when another writer holds the state folder (the publish then waits for it)."""
    lock = node.catalog.writer_lock
    if lock.held:
        return
    try:
        lock.acquire(wait=False)
    except StateLockedError as exc:
        print(f"meshcore: waiting: {exc}", file=sys.stderr)
    else:
        lock.release()


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
            record = node.info(principal, cid)
            if not record.complete:
                lost = {d for d, _note in node.catalog.missing_chunks()}
                n = sum(1 for d, _size in node.catalog.chunks_of(cid) if d in lost)
                raise MeshcoreError(
                    f"item {cid.hex()} is incomplete: {n} of its chunks are missing or were "
                    "quarantined as corrupt; a running node fetches them again from its "
                    "peers (`meshcore content scrub` lists them)")
            n = node.export(principal, cid, args.output, now=time.time())
        except UnknownContentError as exc:
            raise MeshcoreError(str(exc)) from None
        except IntegrityError as exc:
            raise MeshcoreError(f"item {cid.hex()}: {exc}; the item is incomplete until the "
                                "chunk is fetched again or restored") from None
        finally:
            # The error above already names the chunk; other effects are news.
            from .effects import RefetchChunk

            _notes(e for e in node.drain_effects() if not isinstance(e, RefetchChunk))
    print(f"wrote {n} bytes to {args.output}")
    return 0


def _scrub(args) -> int:
    _settings, node, _principal = _open(args)
    with node, node.catalog.writer_lock:
        started = time.monotonic()
        report = node.scrub(full=args.full)
        report.duration = time.monotonic() - started
        effects = node.drain_effects()
        still = node.catalog.missing_chunks()
    print(report.summary())
    for effect in effects:
        print(f"  {_describe(effect)}")
    for cid, problem in sorted(report.bad_manifests.items()):
        print(f"  bad manifest {cid.hex()}: {problem} (quarantined; its chunks are kept)")
    found = {e.digest for e in effects if hasattr(e, "digest")}
    earlier = [(d, note) for d, note in still if d not in found]
    if earlier:
        print(f"  {len(earlier)} chunk(s) found missing or corrupt earlier are still missing "
              "(their items are incomplete):")
        for digest, note in earlier:
            print(f"  missing chunk {digest.hex()}: {note or 'not received yet'}")
    return 0 if report.clean and not still else 1


def _rebuild(args) -> int:
    from .catalog import open_catalog, writer_lock
    from .settings import load_content_settings
    from .store import ChunkStore

    _quiet_library_log()
    settings = load_content_settings(args.config)
    with writer_lock(settings.catalog_path):
        store = ChunkStore(settings.store_dir, budget_bytes=settings.budget_bytes,
                           compress=settings.compress, fsync=settings.fsync)
        catalog, report = open_catalog(settings.catalog_path, store, now=time.time(),
                                       rebuild="requested")
        catalog.close()
    r = report.rebuilt
    assert r is not None
    where = f"; old database kept at {r.moved_to}" if r.moved_to else " (there was no database)"
    print(f"catalog rebuilt: {r.items} items, {r.incomplete} incomplete, {r.bad_manifests} "
          f"bad manifests (quarantined, their chunks kept){where}")
    return 0
