"""The discovery beacon: a versioned, authenticated binary datagram (wire format v1).

Theory of operation
-------------------
One beacon is one UDP datagram of at most :data:`MAX_DATAGRAM` (1,200) bytes,
small enough to cross any mesh link without IP fragmentation (the same bound
QUIC uses, RFC 9000 section 14). All integers are big-endian. Layout::

    fixed header   magic "MC" | version | flags | node id | boot epoch | seq |
                   timestamp ms | interval ds | service port | load | capacity |
                   summary version | incarnation | digest | known count
    echo entries   count u8, then per neighbour: node id | echoed ts ms |
                   hold ms | delivery ratio u8
    sections       TLV: type u8 | length u16 | value  (unknown types skipped)
    hmac           HMAC-SHA256(community key, everything before), first 16 bytes

``docs/net/discovery.md`` gives the table byte by byte. Node ids travel in a
compact form (:func:`encode_node_id`): lower-case hex ids (the usual 16 hex
characters) as raw bytes, anything else as UTF-8.

Node ids obey one rule everywhere (:func:`check_node_id`: the config's
``[node] id``, our own beacons, and every id a peer sends, in the beacon
header, its echoes and its peer-exchange records): 1..64 bytes of UTF-8 with
no white space, no control character (newline, ESC, NUL) and no invisible
formatting character (such as U+202E RIGHT-TO-LEFT OVERRIDE). A key holder
could otherwise forge log lines ("... INFO meshcore.node: peer joined ROOT")
or terminal escapes in ``meshcore node peers``. Peer-exchange host names
obey the same rule. :func:`printable` escapes any string from outside
before it is logged or printed, as a second line of defence.

The decoder never trusts the peer: every read is bounds-checked, and any
input either decodes or raises :class:`BeaconError` (a
:class:`~meshcore.errors.DecodeError`) whose ``kind`` says why, so the caller
can count drops by cause ("malformed", "auth", "version", "oversize"). The
HMAC is checked before the body is parsed, so a stranger's bytes cost one
HMAC and never reach the parser; comparison is constant-time
(``hmac.compare_digest``).

Forward compatibility: a higher ``version`` is refused with kind "version"
(counted, not parsed: its layout is unknown); inside v1, unknown TLV section
types are skipped, so later releases may add optional sections.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from ..errors import DecodeError

__all__ = [
    "FLAG_JOINING",
    "FLAG_PARTIAL",
    "FLAG_PROBE",
    "FLAG_REPLY",
    "HEADER_MAX",
    "MAC_LEN",
    "MAGIC",
    "MAX_DATAGRAM",
    "OP_ADD",
    "OP_REMOVE",
    "OP_WITHDRAW",
    "SECTION_PADDING",
    "SECTION_PEX_DELTA",
    "SECTION_PEX_SYNC",
    "VERSION",
    "Beacon",
    "BeaconError",
    "Echo",
    "PexEntry",
    "PexSection",
    "check_node_id",
    "decode_beacon",
    "decode_node_id",
    "encode_beacon",
    "encode_node_id",
    "node_id_problem",
    "pex_entry_size",
    "printable",
]

MAGIC = b"MC"
VERSION = 1
MAX_DATAGRAM = 1200  # bytes: the hard cap on encode and decode
MAC_LEN = 16  # truncated HMAC-SHA256 (RFC 2104 section 5 allows truncation to >= 80 bits)

FLAG_PROBE = 0x01  # a scheduled periodic beacon: counts towards the receiver's delivery ratio
FLAG_REPLY = 0x02  # a unicast reply to a newcomer
FLAG_JOINING = 0x04  # part of the sender's announce-on-join burst
FLAG_PARTIAL = 0x08  # the echo list leaves some neighbours out (they rotate)

SECTION_PADDING = 0x01  # zero bytes that make a join beacon pay for the reply it asks for
SECTION_PEX_DELTA = 0x10  # peer-exchange deltas (adds and removes)
SECTION_PEX_SYNC = 0x11  # one chunk of a full sync of the sender's known-peer set

OP_ADD = 1
OP_REMOVE = 2  # the peer is gone (at this version or older)
OP_WITHDRAW = 3  # the sender no longer reaches the peer (a path withdrawal, not a death)

MAX_ID_BYTES = 64
HOLD_UNKNOWN = 0xFFFF  # hold time field value meaning "no RTT sample possible"

# magic, version, flags (node id follows)
_PRE = struct.Struct(">2sBB")
# boot, seq, ts_ms, interval_ds, service_port, load, capacity, summary_version,
# incarnation, digest, known_count
_FIXED = struct.Struct(">IIIHHffIH8sH")
_ECHO = struct.Struct(">IHB")  # echoed ts ms, hold ms, ratio/255
_TLV = struct.Struct(">BH")
_SYNC_HEAD = struct.Struct(">HBB")  # sync id, chunk index, chunk count
_U16 = struct.Struct(">H")
_VERSION = struct.Struct(">IH")  # boot epoch, incarnation
# Largest header without echo entries or sections: pre + max id + fixed + echo count + mac.
HEADER_MAX = _PRE.size + 1 + MAX_ID_BYTES + _FIXED.size + 1 + MAC_LEN


class BeaconError(DecodeError):
    """A datagram is not a valid beacon; ``kind`` is the drop counter to bump.

    ``kind`` is one of ``"malformed"``, ``"auth"`` (bad or missing HMAC, wrong
    key), ``"version"`` (a wire version this code does not speak) or
    ``"oversize"`` (more than :data:`MAX_DATAGRAM` bytes).
    """

    def __init__(self, kind: str, problem: str) -> None:
        self.kind = kind
        self.problem = problem
        super().__init__(f"beacon {kind}: {problem}")


class Echo(NamedTuple):
    """One per-neighbour entry: what the sender last heard from ``node_id``.

    ``echoed_ts_ms`` is the neighbour's own timestamp (mod 2**32) from its last
    beacon, ``hold_ms`` how long the sender held it before this beacon
    (``0xFFFF`` = unknown/too long), ``ratio`` the delivery ratio the sender
    measures for beacons from that neighbour (0..1, sent in 1/255 steps).
    """

    node_id: str
    echoed_ts_ms: int
    hold_ms: int
    ratio: float


class PexEntry(NamedTuple):
    """One peer-exchange record: an add (``op == OP_ADD``) or a remove.

    ``boot_epoch``/``incarnation`` are the peer's version (compared as a
    pair). Adds carry ``hops`` (as seen by the sender; 1 = its direct
    neighbour), ``host`` (IPv4/IPv6 text or a name) and ``service_port``.
    """

    op: int
    node_id: str
    boot_epoch: int
    incarnation: int
    hops: int = 0
    host: str = ""
    service_port: int = 0


@dataclass(frozen=True, slots=True)
class PexSection:
    """Peer-exchange records; ``sync`` is set for a full-sync chunk.

    For a full sync, ``sync_id`` names the sync and ``chunk``/``chunks`` say
    which part of it this is (0-based index, total count).
    """

    entries: tuple[PexEntry, ...]
    sync: bool = False
    sync_id: int = 0
    chunk: int = 0
    chunks: int = 1


@dataclass(frozen=True, slots=True)
class Beacon:
    """A decoded (or to-be-encoded) beacon. Field units are in the module docstring.

    ``load`` and ``capacity`` are the sender's own figures (float32 on the
    wire; the daemon decides their unit, e.g. active transfers and slots).
    ``digest``/``known_count`` summarise the sender's known-peer set.
    """

    node_id: str
    boot_epoch: int
    seq: int
    ts_ms: int
    flags: int = 0
    interval: float = 5.0
    service_port: int = 0
    load: float = 0.0
    capacity: float = 0.0
    summary_version: int = 0
    incarnation: int = 0
    digest: bytes = bytes(8)
    known_count: int = 0
    echoes: tuple[Echo, ...] = ()
    pex: PexSection | None = None
    unknown_sections: int = 0  # decode only: how many unknown TLV sections were skipped


_HEX = frozenset("0123456789abcdef")


def _bad_char(text: str) -> str | None:
    # str.isprintable() is False exactly for Unicode's "Other" categories
    # (controls, formatting such as bidi overrides and zero-width joiners,
    # surrogates, private use, unassigned) and its separators other than the
    # ASCII space; ids refuse the space too.
    if text.isprintable() and " " not in text:
        return None
    return next(ch for ch in text if ch == " " or not ch.isprintable())


def node_id_problem(node_id: object) -> str | None:
    """Why ``node_id`` breaks the id rule (see the module doc), or None when it is good."""
    if not isinstance(node_id, str) or not node_id:
        return f"expected a non-empty string, got {node_id!r}"
    if len(node_id) % 2 == 0 and set(node_id) <= _HEX:
        return None if len(node_id) // 2 <= MAX_ID_BYTES else (
            f"expected 1..{MAX_ID_BYTES} bytes on the wire, got {len(node_id) // 2}")
    try:
        size = len(node_id.encode("utf-8"))
    except UnicodeEncodeError:
        return f"not valid Unicode text: {node_id!r}"
    if size > MAX_ID_BYTES:
        return f"expected 1..{MAX_ID_BYTES} bytes on the wire, got {size}"
    bad = _bad_char(node_id)
    if bad is not None:
        return (f"white space, control and invisible characters are not allowed "
                f"(U+{ord(bad):04X} in {node_id!r})")
    return None


def check_node_id(node_id: object) -> str:
    """``node_id`` when it obeys the id rule (module doc); ValueError naming the problem."""
    problem = node_id_problem(node_id)
    if problem is not None:
        raise ValueError(f"node_id: {problem}")
    return node_id  # type: ignore[return-value]


def printable(text: object, limit: int = 200) -> str:
    """``text`` safe for a log line or a terminal: every non-printable character
    (controls, escapes, bidi overrides, line breaks, ...) as a ``\\x``/``\\u``
    escape, cut to ``limit`` characters. Non-strings are ``repr``'d first."""
    if not isinstance(text, str):
        text = repr(text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


@lru_cache(maxsize=8192)
def encode_node_id(node_id: str) -> bytes:
    """The compact wire form of a node id: header byte, then 1..64 bytes.

    Header bit 7 set: the id is lower-case hex of even length, sent as raw
    bytes; clear: UTF-8. Low 7 bits: the byte count. Raises ValueError for an
    id that breaks the id rule (:func:`check_node_id`).
    """
    check_node_id(node_id)
    raw: bytes
    hexform = len(node_id) % 2 == 0 and set(node_id) <= _HEX
    raw = bytes.fromhex(node_id) if hexform else node_id.encode("utf-8")
    if len(raw) > MAX_ID_BYTES:
        raise ValueError(f"node_id: at most {MAX_ID_BYTES} bytes on the wire, got {len(raw)}")
    return bytes([(0x80 if hexform else 0) | len(raw)]) + raw


def decode_node_id(buf: bytes | memoryview, pos: int) -> tuple[str, int]:
    """Read a node id at ``pos``; return ``(node_id, new_pos)``. Raises BeaconError."""
    if pos >= len(buf):
        raise BeaconError("malformed", f"node id header missing at byte {pos}")
    head = buf[pos]
    n = head & 0x7F
    if n == 0:
        raise BeaconError("malformed", f"empty node id at byte {pos}")
    if n > MAX_ID_BYTES:
        raise BeaconError("malformed", f"node id of {n} bytes at byte {pos}")
    end = pos + 1 + n
    if end > len(buf):
        raise BeaconError("malformed", f"node id truncated at byte {pos}")
    raw = bytes(buf[pos + 1 : end])
    if head & 0x80:
        return raw.hex(), end
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BeaconError("malformed", f"node id is not UTF-8 at byte {pos}") from None
    # An id that looks like hex must travel in hex form, so each id has one encoding.
    if len(text) % 2 == 0 and set(text) <= _HEX:
        raise BeaconError("malformed", f"hex node id sent as text at byte {pos}")
    if _bad_char(text) is not None:
        raise BeaconError("malformed", f"node id with a space, control or invisible "
                                       f"character at byte {pos}")
    return text, end


@lru_cache(maxsize=8192)
def _encode_host(host: str) -> bytes:
    # family 4 / 6 for IP literals (compact), 0 for anything else (a name, a scoped v6)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raw = host.encode("utf-8")
        if len(raw) > 255:
            raise ValueError(f"host: at most 255 bytes, got {len(raw)}") from None
        return bytes([0, len(raw)]) + raw
    return bytes([ip.version]) + ip.packed


def _decode_host(buf: bytes | memoryview, pos: int) -> tuple[str, int]:
    family = _take(buf, pos, 1)[0]
    pos += 1
    if family == 4:
        return str(ipaddress.IPv4Address(_take(buf, pos, 4))), pos + 4
    if family == 6:
        return str(ipaddress.IPv6Address(_take(buf, pos, 16))), pos + 16
    if family == 0:
        n = _take(buf, pos, 1)[0]
        raw = _take(buf, pos + 1, n)
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BeaconError("malformed", f"host name is not UTF-8 at byte {pos}") from None
        if name and _bad_char(name) is not None:
            raise BeaconError("malformed", f"host name with a space, control or invisible "
                                           f"character at byte {pos}")
        return name, pos + 1 + n
    raise BeaconError("malformed", f"unknown address family {family} at byte {pos - 1}")


def _take(buf: bytes | memoryview, pos: int, n: int) -> bytes:
    if pos + n > len(buf):
        raise BeaconError("malformed", f"truncated: need {n} bytes at byte {pos}")
    return bytes(buf[pos : pos + n])


def pex_entry_size(entry: PexEntry) -> int:
    """Bytes ``entry`` takes on the wire (for packing chunks under the cap)."""
    return len(_encode_pex_entry(entry))


def _encode_pex_entry(e: PexEntry) -> bytes:
    if e.op not in (OP_ADD, OP_REMOVE, OP_WITHDRAW):
        raise ValueError(f"op: expected OP_ADD, OP_REMOVE or OP_WITHDRAW, got {e.op!r}")
    out = bytes([e.op]) + encode_node_id(e.node_id) + _VERSION.pack(e.boot_epoch, e.incarnation)
    if e.op == OP_ADD:
        out += bytes([e.hops]) + _encode_host(e.host) + _U16.pack(e.service_port)
    return out


def _encode_pex(section: PexSection) -> bytes:
    head = _SYNC_HEAD.pack(section.sync_id, section.chunk, section.chunks) if section.sync else b""
    body = head + _U16.pack(len(section.entries))
    body += b"".join(_encode_pex_entry(e) for e in section.entries)
    kind = SECTION_PEX_SYNC if section.sync else SECTION_PEX_DELTA
    return _TLV.pack(kind, len(body)) + body


def encode_beacon(beacon: Beacon, key: bytes, *, pad_to: int = 0) -> bytes:
    """Serialise and authenticate ``beacon`` under ``key``.

    ``pad_to`` (<= :data:`MAX_DATAGRAM`) adds a padding section so that the
    datagram is that long (when there is room for the section): a node
    answers a datagram with at most as many bytes as it carried, so a join
    beacon pads itself to pay for the sync it asks for (QUIC pads its first
    packet for the same reason, RFC 9000 section 14.1). Raises ValueError
    when a field is out of range or the result would exceed
    :data:`MAX_DATAGRAM` bytes (the caller must pack fewer entries).
    """
    b = beacon
    if len(b.echoes) > 255:
        raise ValueError(f"echoes: at most 255 entries, got {len(b.echoes)}")
    if len(b.digest) != 8:
        raise ValueError(f"digest: expected 8 bytes, got {len(b.digest)}")
    try:
        parts = [
            _PRE.pack(MAGIC, VERSION, b.flags),
            encode_node_id(b.node_id),
            _FIXED.pack(
                b.boot_epoch,
                b.seq,
                b.ts_ms & 0xFFFFFFFF,
                min(0xFFFF, max(0, round(b.interval * 10))),
                b.service_port,
                b.load,
                b.capacity,
                b.summary_version,
                b.incarnation,
                b.digest,
                min(0xFFFF, b.known_count),
            ),
            bytes([len(b.echoes)]),
        ]
        for e in b.echoes:
            ratio = min(255, max(0, round(e.ratio * 255)))
            parts.append(encode_node_id(e.node_id))
            parts.append(_ECHO.pack(e.echoed_ts_ms & 0xFFFFFFFF, e.hold_ms, ratio))
        if b.pex is not None:
            parts.append(_encode_pex(b.pex))
    except struct.error as exc:
        raise ValueError(f"beacon field out of range: {exc}") from None
    body = b"".join(parts)
    if len(body) + MAC_LEN > MAX_DATAGRAM:
        raise ValueError(f"beacon of {len(body) + MAC_LEN} bytes exceeds {MAX_DATAGRAM}")
    room = min(pad_to, MAX_DATAGRAM) - len(body) - MAC_LEN - _TLV.size
    if room >= 0:
        body += _TLV.pack(SECTION_PADDING, room) + bytes(room)
    return body + hmac.new(key, body, hashlib.sha256).digest()[:MAC_LEN]


def decode_beacon(data: bytes, key: bytes) -> Beacon:
    """Verify and parse one datagram. Raises :class:`BeaconError` for anything invalid.

    Checks, in order: size cap ("oversize"), magic ("malformed"), version
    ("version"), HMAC ("auth"), then the body ("malformed"). Trailing bytes
    inside the authenticated part that do not form a section are malformed.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_DATAGRAM:
        raise BeaconError("oversize", f"{len(data)} bytes > {MAX_DATAGRAM}")
    if len(data) < _PRE.size + MAC_LEN:
        raise BeaconError("malformed", f"too short: {len(data)} bytes")
    magic, version, flags = _PRE.unpack_from(data, 0)
    if magic != MAGIC:
        raise BeaconError("malformed", "bad magic")
    if version != VERSION:
        raise BeaconError("version", f"wire version {version} (this node speaks {VERSION})")
    body, mac = data[:-MAC_LEN], data[-MAC_LEN:]
    expected = hmac.new(key, body, hashlib.sha256).digest()[:MAC_LEN]
    if not hmac.compare_digest(mac, expected):
        raise BeaconError("auth", "HMAC mismatch (forged, corrupted or another community's key)")
    return _parse_body(body, flags)


def _parse_body(body: bytes, flags: int) -> Beacon:
    node_id, pos = decode_node_id(body, _PRE.size)
    fixed = _take(body, pos, _FIXED.size)
    (boot, seq, ts, interval_ds, port, load, cap, summary, inc, digest, known) = _FIXED.unpack(
        fixed
    )
    pos += _FIXED.size
    if load != load or cap != cap:  # NaN never comes from an honest sender
        raise BeaconError("malformed", "load or capacity is NaN")
    count = _take(body, pos, 1)[0]
    pos += 1
    echoes = []
    unpack_echo = _ECHO.unpack_from
    end = len(body)
    for _ in range(count):
        # Fast path for the usual hex ids (a segment beacon may carry dozens).
        head = body[pos] if pos < end else 0
        n = head & 0x7F
        if head & 0x80 and 0 < n <= MAX_ID_BYTES and pos + 1 + n + _ECHO.size <= end:
            eid = body[pos + 1 : pos + 1 + n].hex()
            pos += 1 + n
        else:
            eid, pos = decode_node_id(body, pos)
            _take(body, pos, _ECHO.size)
        ets, hold, ratio = unpack_echo(body, pos)
        pos += _ECHO.size
        echoes.append(Echo(eid, ets, hold, ratio / 255))
    pex = None
    unknown = 0
    while pos < len(body):
        kind, length = _TLV.unpack(_take(body, pos, _TLV.size))
        pos += _TLV.size
        value = _take(body, pos, length)
        pos += length
        if kind in (SECTION_PEX_DELTA, SECTION_PEX_SYNC):
            if pex is not None:
                raise BeaconError("malformed", "more than one peer-exchange section")
            pex = _parse_pex(value, kind == SECTION_PEX_SYNC)
        elif kind != SECTION_PADDING:
            unknown += 1
    return Beacon(
        node_id=node_id,
        boot_epoch=boot,
        seq=seq,
        ts_ms=ts,
        flags=flags,
        interval=interval_ds / 10,
        service_port=port,
        load=load,
        capacity=cap,
        summary_version=summary,
        incarnation=inc,
        digest=digest,
        known_count=known,
        echoes=tuple(echoes),
        pex=pex,
        unknown_sections=unknown,
    )


def _parse_pex(value: bytes, sync: bool) -> PexSection:
    pos = 0
    sync_id = chunk = 0
    chunks = 1
    if sync:
        sync_id, chunk, chunks = _SYNC_HEAD.unpack(_take(value, 0, _SYNC_HEAD.size))
        pos = _SYNC_HEAD.size
        if chunks == 0 or chunk >= chunks:
            raise BeaconError("malformed", f"sync chunk {chunk} of {chunks}")
    (count,) = _U16.unpack(_take(value, pos, 2))
    pos += 2
    entries = []
    for _ in range(count):
        op = _take(value, pos, 1)[0]
        if op not in (OP_ADD, OP_REMOVE, OP_WITHDRAW):
            raise BeaconError("malformed", f"unknown peer-exchange op {op}")
        node_id, pos = decode_node_id(value, pos + 1)
        boot, inc = _VERSION.unpack(_take(value, pos, _VERSION.size))
        pos += _VERSION.size
        if op == OP_ADD:
            hops = _take(value, pos, 1)[0]
            host, pos = _decode_host(value, pos + 1)
            (sport,) = _U16.unpack(_take(value, pos, 2))
            pos += 2
            entries.append(PexEntry(op, node_id, boot, inc, hops, host, sport))
        else:
            entries.append(PexEntry(op, node_id, boot, inc))
    if pos != len(value):
        raise BeaconError("malformed", f"{len(value) - pos} stray bytes in peer-exchange section")
    return PexSection(tuple(entries), sync, sync_id, chunk, chunks)
