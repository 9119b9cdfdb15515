"""The wire form of router messages: strict, versioned JSON, bounded in size.

Router-to-router control messages (:mod:`.messages`: ``ItemQuery``,
``ItemInfo``, ``ChunkUnavailable``...) travel between daemons as the body of
an authenticated HTTP request (``docs/node.md``, "Transport"). This module is
the encoding: one JSON object per message, UTF-8, at most
:data:`MAX_MESSAGE` bytes::

    {"v": 1, "type": "item-info", "request_id": 7, "key": {"b": "<hex>"},
     "chunks": [["<64 hex>", 262144], ...], "found": true, "expires_at": null}

Keys are ``{"b": hex}`` for bytes (content ids, chunk digests) or
``{"s": text}`` for strings (a URL key); digests are 64 hex digits. JSON was
chosen over a binary layout because these messages are small and rare next
to chunk bodies (which travel raw), and a strict JSON decoder is short and
easy to audit. The decoder trusts nothing: an unknown version or type, a
missing or extra field, a wrong type, a negative size, an oversized body or
invalid UTF-8 raises :class:`~meshcore.errors.DecodeError` naming the field;
it never raises anything else (tested by fuzzing).

Chunk bodies are not messages: a ``ChunkRequest`` becomes an HTTP ``GET`` of
the chunk and its answer is the raw body, slice by slice (the sender's fair
scheduler paces it). Other modules register their own message types with
:func:`register`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable
from typing import Any

from ..errors import DecodeError
from .messages import ChunkRequest, ChunkUnavailable, ItemInfo, ItemQuery, Message

__all__ = ["MAX_MESSAGE", "VERSION", "decode_message", "encode_message", "register"]

VERSION = 1
#: Largest encoded message accepted (bytes): an item's chunk list of ~12,000
#: entries (a 3 GB item at 256 KiB chunks) fits.
MAX_MESSAGE = 1 << 20
_MAX_INT = 2**63 - 1

Encoder = Callable[[Any], dict[str, Any]]
Decoder = Callable[[dict[str, Any]], Any]
_BY_TYPE: dict[type, tuple[str, Encoder]] = {}
_BY_NAME: dict[str, tuple[Decoder, frozenset[str]]] = {}


def register(cls: type, name: str, fields: tuple[str, ...], encode: Encoder,
             decode: Decoder) -> None:
    """Register message class ``cls`` on the wire as ``name`` with exactly ``fields``."""
    if name in _BY_NAME:
        raise ValueError(f"name: message type {name!r} is already registered")
    _BY_TYPE[cls] = (name, encode)
    _BY_NAME[name] = (decode, frozenset(("v", "type", *fields)))


def encode_message(message: Message) -> bytes:
    """The wire bytes of ``message``; ValueError for a type nobody registered."""
    entry = _BY_TYPE.get(type(message))
    if entry is None:
        raise ValueError(f"message: no wire form for {type(message).__name__}")
    name, encode = entry
    body = {"v": VERSION, "type": name, **encode(message)}
    data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"message: {len(data)} bytes encoded, more than {MAX_MESSAGE}")
    return data


def decode_message(data: bytes) -> Message:
    """The message in ``data``; :class:`DecodeError` for anything malformed."""
    if len(data) > MAX_MESSAGE:
        raise DecodeError(f"message: {len(data)} bytes, more than {MAX_MESSAGE}")
    try:
        obj = json.loads(bytes(data).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError(f"message: not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError("message: expected a JSON object")
    if obj.get("v") != VERSION:
        raise DecodeError(f"message: unknown version {obj.get('v')!r}")
    name = obj.get("type")
    entry = _BY_NAME.get(name) if isinstance(name, str) else None
    if entry is None:
        raise DecodeError(f"message: unknown type {name!r}")
    decode, fields = entry
    keys = set(obj)
    if keys != fields:
        missing, extra = sorted(fields - keys), sorted(keys - fields)
        raise DecodeError(f"message {name}: missing fields {missing}, unknown fields {extra}")
    try:
        return decode(obj)
    except DecodeError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # pragma: no cover
        raise DecodeError(f"message {name}: {exc}") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


# -- field helpers ---------------------------------------------------------------------


def count(obj: dict, field: str, *, maximum: int = _MAX_INT) -> int:
    """An integer field in ``0..maximum``."""
    value = obj[field]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise DecodeError(f"{field}: expected an integer 0..{maximum}, got {value!r}")
    return value


def digest(value: object, field: str) -> bytes:
    """A 32-byte digest from its 64 hex digits."""
    if not isinstance(value, str) or len(value) != 64:
        raise DecodeError(f"{field}: expected 64 hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise DecodeError(f"{field}: expected 64 hex digits") from None


def encode_key(key: Hashable) -> dict[str, str]:
    """``{"b": hex}`` for bytes, ``{"s": text}`` for a string key."""
    if isinstance(key, bytes):
        return {"b": key.hex()}
    if isinstance(key, str):
        return {"s": key}
    raise ValueError(f"key: only bytes and str keys travel, got {type(key).__name__}")


def decode_key(value: object, field: str = "key") -> Hashable:
    """The inverse of :func:`encode_key`."""
    if isinstance(value, dict) and len(value) == 1:
        if isinstance(value.get("b"), str) and len(value["b"]) <= 128:
            try:
                return bytes.fromhex(value["b"])
            except ValueError:
                pass
        elif isinstance(value.get("s"), str) and len(value["s"]) <= 8192:
            return value["s"]
    raise DecodeError(f"{field}: expected {{\"b\": hex}} or {{\"s\": text}}")


def _seconds(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DecodeError(f"{field}: expected a finite number or null, got {value!r}")
    return float(value)


# -- the content path's messages --------------------------------------------------------


def _decode_info(o: dict) -> ItemInfo:
    chunks = o["chunks"]
    if not isinstance(chunks, list):
        raise DecodeError("chunks: expected a list")
    out = []
    for i, entry in enumerate(chunks):
        if not (isinstance(entry, list) and len(entry) == 2):
            raise DecodeError(f"chunks[{i}]: expected [digest, size]")
        size = entry[1]
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 1 << 26:
            raise DecodeError(f"chunks[{i}]: size expected 0..64 MiB, got {size!r}")
        out.append((digest(entry[0], f"chunks[{i}]"), size))
    if not isinstance(o["found"], bool):
        raise DecodeError("found: expected true or false")
    return ItemInfo(count(o, "request_id"), decode_key(o["key"]), tuple(out), o["found"],
                    _seconds(o["expires_at"], "expires_at"))


def _decode_unavailable(o: dict) -> ChunkUnavailable:
    reason = o["reason"]
    if not isinstance(reason, str) or len(reason) > 512:
        raise DecodeError("reason: expected a string of at most 512 characters")
    return ChunkUnavailable(count(o, "request_id"), digest(o["digest"], "digest"), reason)


register(ItemQuery, "item-query", ("request_id", "key"),
         lambda m: {"request_id": m.request_id, "key": encode_key(m.key)},
         lambda o: ItemQuery(count(o, "request_id"), decode_key(o["key"])))
register(ItemInfo, "item-info", ("request_id", "key", "chunks", "found", "expires_at"),
         lambda m: {"request_id": m.request_id, "key": encode_key(m.key),
                    "chunks": [[d.hex(), s] for d, s in m.chunks], "found": m.found,
                    "expires_at": m.expires_at},
         _decode_info)
register(ChunkUnavailable, "chunk-unavailable", ("request_id", "digest", "reason"),
         lambda m: {"request_id": m.request_id, "digest": m.digest.hex(), "reason": m.reason},
         _decode_unavailable)
register(ChunkRequest, "chunk-request", ("request_id", "digest", "size", "priority"),
         lambda m: {"request_id": m.request_id, "digest": m.digest.hex(), "size": m.size,
                    "priority": m.priority},
         lambda o: ChunkRequest(count(o, "request_id"), digest(o["digest"], "digest"),
                                count(o, "size", maximum=1 << 26),
                                count(o, "priority", maximum=2)))
