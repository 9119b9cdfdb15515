"""Manifests: what a piece of content is, in one canonical, signed byte string.

Theory of operation. A manifest names a file (name, size, media type), lists
its chunks in order (BLAKE2b-256 digest and size of each), and carries the
publisher's policy: tags, access level, distribution policy, retention,
creation and expiry times (unix seconds), and the publisher's Ed25519 key.

* **One encoding.** :meth:`Manifest.encode` writes a deterministic binary
  TLV (docs/content/format.md, byte by byte): a magic and version, then each
  field once, in increasing tag order, lengths as shortest LEB128, integers
  fixed-width big-endian, strings UTF-8 in one normal form, tags sorted and
  de-duplicated. The constructor normalises what has a normal form (tags,
  the NFC name, the lower-case media type, ``ttl:7d`` -> ``ttl:604800s``)
  and refuses what is invalid, so every ``Manifest`` object has exactly one
  encoding.
* **Content id** = ``blake2b_256(encode())``: two nodes that hold the same
  manifest agree on its id without trusting each other.
* **Signature** = Ed25519 by ``publisher`` over ``SIGNING_PREFIX + body``. The
  prefix separates manifest signatures from anything else the same key may
  sign (a beacon, a future format), so a signature cannot be replayed across
  protocols.
* **Parsing is strict.** :func:`parse_manifest` decodes, rebuilds the
  ``Manifest``, re-encodes it and compares bytes: anything that is not
  exactly the canonical encoding of its own value (unknown or repeated
  fields, unsorted tags, long varints, trailing bytes, bad UTF-8, a size that
  is not the sum of the chunk sizes) raises :class:`DecodeError`; a signature
  that does not verify under the key the manifest names raises
  :class:`IntegrityError`. A manifest re-signed by another key is therefore
  rejected unless the publisher field is changed too, which changes the
  content id: a forged copy can never pass for the original.

Sources: RFC 8032 (Ed25519), RFC 7693 (BLAKE2), the "re-encode and compare"
rule of canonical CBOR (RFC 8949 section 4.2) and of Bitcoin's strict DER.
"""

from __future__ import annotations

import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from meshcore.errors import DecodeError, IntegrityError
from meshcore.kernels import blake2b_256

from ._encoding import Reader, encode_varint
from ._policy_names import (
    check_access,
    check_distribution,
    normalize_retention,
    normalize_tags,
)
from .keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, KeyPair, verify_signature

__all__ = [
    "BODY_MAGIC",
    "DIGEST_SIZE",
    "MAX_CHUNKS",
    "MAX_CHUNK_SIZE",
    "MAX_NAME_BYTES",
    "MAX_TAGS",
    "SIGNED_MAGIC",
    "SIGNING_PREFIX",
    "ChunkRef",
    "Manifest",
    "SignedManifest",
    "parse_manifest",
    "sign_manifest",
]

BODY_MAGIC = b"MCMF\x01"
SIGNED_MAGIC = b"MCMS\x01"
#: Domain separation for manifest signatures (the NUL ends the label).
SIGNING_PREFIX = b"meshcore/manifest/v1\x00"
DIGEST_SIZE = 32
MAX_NAME_BYTES = 1024
MAX_MEDIA_TYPE = 255
MAX_TAGS = 64
#: 2**20 chunks of the default 16 KiB average cover a 16 GiB file (a 36 MiB manifest).
MAX_CHUNKS = 2**20
MAX_CHUNK_SIZE = 2**32 - 1
MAX_TIME = 2**63 - 1
MAX_SIZE = 2**63 - 1

# Field tags, in the order they must appear.
T_NAME, T_SIZE, T_MEDIA, T_CHUNKS, T_TAGS = 1, 2, 3, 4, 5
T_ACCESS, T_DISTRIBUTION, T_RETENTION, T_PUBLISHER, T_CREATED, T_EXPIRES = 6, 7, 8, 9, 10, 11
_FIELD_NAMES = {
    T_NAME: "name",
    T_SIZE: "size",
    T_MEDIA: "media_type",
    T_CHUNKS: "chunks",
    T_TAGS: "tags",
    T_ACCESS: "access",
    T_DISTRIBUTION: "distribution",
    T_RETENTION: "retention",
    T_PUBLISHER: "publisher",
    T_CREATED: "created",
    T_EXPIRES: "expires",
}
_OPTIONAL = frozenset({T_RETENTION, T_EXPIRES})
_U64 = struct.Struct(">Q")
_CHUNK = struct.Struct(">32sI")
_MEDIA_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789!#$&^_.+-")


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}: expected {lo}..{hi}, got {value}")
    return value


def _check_bytes(name: str, value: object, size: int) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{name}: expected bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != size:
        raise ValueError(f"{name}: expected {size} bytes, got {len(value)}")
    return value


def _normalize_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    norm = unicodedata.normalize("NFC", name)
    try:
        size = len(norm.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"name: not encodable as UTF-8 (lone surrogate?): {name!r}") from None
    if not 1 <= size <= MAX_NAME_BYTES:
        raise ValueError(f"name: expected 1..{MAX_NAME_BYTES} UTF-8 bytes, got {size}")
    for ch in norm:
        if unicodedata.category(ch) == "Cc":
            raise ValueError(f"name: control character {ch!r} not allowed: {name!r}")
    return norm


def _normalize_media_type(media_type: object) -> str:
    if not isinstance(media_type, str):
        raise TypeError(f"media_type: expected a str, got {type(media_type).__name__}")
    norm = media_type.strip().lower()
    top, slash, sub = norm.partition("/")
    ok = (
        slash
        and 1 <= len(norm) <= MAX_MEDIA_TYPE
        and top
        and sub
        and top[0].isalnum()
        and sub[0].isalnum()
        and all(c in _MEDIA_CHARS for c in top)
        and all(c in _MEDIA_CHARS for c in sub)
    )
    if not ok:
        raise ValueError(
            f"media_type: expected 'type/subtype' (RFC 6838 names, no parameters), "
            f"got {media_type!r}"
        )
    return norm


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One chunk of a file: its BLAKE2b-256 ``digest`` (32 bytes) and ``size`` in bytes (>= 1)."""

    digest: bytes
    size: int

    def __post_init__(self) -> None:
        if type(self.digest) is not bytes or len(self.digest) != DIGEST_SIZE:
            object.__setattr__(self, "digest", _check_bytes("digest", self.digest, DIGEST_SIZE))
        if type(self.size) is not int or not 1 <= self.size <= MAX_CHUNK_SIZE:
            _check_int("chunk size", self.size, 1, MAX_CHUNK_SIZE)


@dataclass(frozen=True, slots=True)
class Manifest:
    """The unsigned description of one piece of content (see the module doc).

    Sizes in bytes; ``created``/``expires`` in unix seconds (``expires`` after
    ``created``, or None). The constructor normalises ``name`` (NFC),
    ``media_type`` (lower case), ``tags`` (:func:`normalize_tags`) and
    ``retention`` (:func:`normalize_retention`), and raises ValueError or
    TypeError naming the field for anything invalid, including a ``size``
    that is not the sum of the chunk sizes.
    """

    name: str
    size: int
    media_type: str
    chunks: tuple[ChunkRef, ...]
    tags: tuple[str, ...]
    access: str
    distribution: str
    retention: str | None
    publisher: bytes
    created: int
    expires: int | None
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "name", _normalize_name(self.name))
        _check_int("size", self.size, 0, MAX_SIZE)
        setattr_(self, "media_type", _normalize_media_type(self.media_type))
        chunks = self.chunks
        if not isinstance(chunks, tuple):
            if isinstance(chunks, str | bytes) or not isinstance(chunks, Iterable):
                raise TypeError("chunks: expected a sequence of ChunkRef")
            chunks = tuple(chunks)
            setattr_(self, "chunks", chunks)
        if len(chunks) > MAX_CHUNKS:
            raise ValueError(f"chunks: at most {MAX_CHUNKS} chunks, got {len(chunks)}")
        total = 0
        for i, ref in enumerate(chunks):
            if type(ref) is not ChunkRef:
                raise TypeError(f"chunks[{i}]: expected a ChunkRef, got {type(ref).__name__}")
            total += ref.size
        if total != self.size:
            raise ValueError(f"size: {self.size} is not the sum of the chunk sizes ({total})")
        tags = normalize_tags(self.tags)
        if len(tags) > MAX_TAGS:
            raise ValueError(f"tags: at most {MAX_TAGS} tags, got {len(tags)}")
        setattr_(self, "tags", tags)
        check_access(self.access)
        check_distribution(self.distribution)
        setattr_(self, "retention", normalize_retention(self.retention))
        setattr_(self, "publisher", _check_bytes("publisher", self.publisher, PUBLIC_KEY_SIZE))
        _check_int("created", self.created, 0, MAX_TIME)
        if self.expires is not None:
            _check_int("expires", self.expires, 0, MAX_TIME)
            if self.expires <= self.created:
                raise ValueError(f"expires: {self.expires} must be after created ({self.created})")

    def encode(self) -> bytes:
        """The canonical unsigned body (docs/content/format.md); cached after the first call."""
        if self._encoded is not None:
            return self._encoded
        out = bytearray(BODY_MAGIC)

        def put(tag: int, value: bytes) -> None:
            out.append(tag)
            out.extend(encode_varint(len(value)))
            out.extend(value)

        put(T_NAME, self.name.encode("utf-8"))
        put(T_SIZE, _U64.pack(self.size))
        put(T_MEDIA, self.media_type.encode("ascii"))
        pack = _CHUNK.pack
        put(T_CHUNKS, b"".join([pack(c.digest, c.size) for c in self.chunks]))
        tags = bytearray()
        for tag in self.tags:
            raw = tag.encode("utf-8")
            tags += encode_varint(len(raw))
            tags += raw
        put(T_TAGS, bytes(tags))
        put(T_ACCESS, self.access.encode("ascii"))
        put(T_DISTRIBUTION, self.distribution.encode("ascii"))
        if self.retention is not None:
            put(T_RETENTION, self.retention.encode("ascii"))
        put(T_PUBLISHER, self.publisher)
        put(T_CREATED, _U64.pack(self.created))
        if self.expires is not None:
            put(T_EXPIRES, _U64.pack(self.expires))
        body = bytes(out)
        object.__setattr__(self, "_encoded", body)
        return body

    @property
    def content_id(self) -> bytes:
        """BLAKE2b-256 of :meth:`encode` (32 bytes): the name of this content everywhere."""
        return blake2b_256(self.encode())

    @classmethod
    def decode(cls, body: bytes | memoryview) -> Manifest:
        """Parse a canonical unsigned body; DecodeError on anything else (see module doc)."""
        return _decode_body(body, "manifest body")


@dataclass(frozen=True, slots=True)
class SignedManifest:
    """A manifest and its publisher's 64-byte Ed25519 ``signature`` over ``SIGNING_PREFIX + body``.

    Objects built by :func:`sign_manifest` or :func:`parse_manifest` are
    verified; one built by hand may not be (call :meth:`verify`).
    """

    manifest: Manifest
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.manifest, Manifest):
            raise TypeError(f"manifest: expected a Manifest, got {type(self.manifest).__name__}")
        object.__setattr__(
            self, "signature", _check_bytes("signature", self.signature, SIGNATURE_SIZE)
        )

    def to_bytes(self) -> bytes:
        """The canonical signed encoding: magic, body length, body, signature."""
        body = self.manifest.encode()
        return b"".join((SIGNED_MAGIC, encode_varint(len(body)), body, self.signature))

    @property
    def content_id(self) -> bytes:
        """The content id of the manifest (the signature is not part of it)."""
        return self.manifest.content_id

    def verify(self) -> bool:
        """True when the signature verifies under ``manifest.publisher``."""
        return verify_signature(
            self.manifest.publisher, self.signature, SIGNING_PREFIX + self.manifest.encode()
        )


def sign_manifest(manifest: Manifest, keypair: KeyPair) -> SignedManifest:
    """Sign ``manifest``; ValueError unless ``keypair.public == manifest.publisher``."""
    if not isinstance(manifest, Manifest):
        raise TypeError(f"manifest: expected a Manifest, got {type(manifest).__name__}")
    if not isinstance(keypair, KeyPair):
        raise TypeError(f"keypair: expected a KeyPair, got {type(keypair).__name__}")
    if keypair.public != manifest.publisher:
        raise ValueError(
            "keypair: its public key is not the manifest's publisher "
            f"({keypair.public.hex()[:16]}... != {manifest.publisher.hex()[:16]}...)"
        )
    return SignedManifest(manifest, keypair.sign(SIGNING_PREFIX + manifest.encode()))


def parse_manifest(data: bytes | bytearray | memoryview) -> SignedManifest:
    """Decode and verify a signed manifest from a peer or from disk.

    Raises :class:`DecodeError` naming the byte offset when ``data`` is not
    exactly the canonical encoding of a valid manifest plus a 64-byte
    signature, and :class:`IntegrityError` (a DecodeError) when the signature
    does not verify under the publisher key the manifest names.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    r = Reader(data, "manifest")
    if r.take(len(SIGNED_MAGIC), "magic") != SIGNED_MAGIC:
        raise r.error("not a signed meshcore manifest (bad magic or version)", 0)
    body_len = r.varint("body length")
    body_start = r.pos
    if r.remaining != body_len + SIGNATURE_SIZE:
        raise r.error(
            f"body length {body_len} + {SIGNATURE_SIZE}-byte signature does not match the "
            f"{r.remaining} bytes that follow"
        )
    body = data[body_start : body_start + body_len]
    signature = data[body_start + body_len :]
    manifest = _decode_body(body, "manifest", base=body_start)
    signed = SignedManifest(manifest, signature)
    if not signed.verify():
        raise IntegrityError(
            "manifest: signature does not verify under the publisher key it names "
            f"({manifest.publisher.hex()}): forged, re-signed or corrupted"
        )
    return signed


def _decode_body(body: bytes | memoryview, what: str, base: int = 0) -> Manifest:
    body = bytes(body)
    r = Reader(body, what)
    if r.take(len(BODY_MAGIC), "magic") != BODY_MAGIC:
        raise DecodeError(f"{what}: byte {base}: not a meshcore manifest body (bad magic/version)")
    values: dict[int, bytes] = {}
    last = 0
    while r.remaining:
        at = r.pos
        tag = r.u8("field tag")
        if tag not in _FIELD_NAMES:
            raise DecodeError(f"{what}: byte {base + at}: unknown field tag {tag}")
        if tag <= last:
            raise DecodeError(
                f"{what}: byte {base + at}: field {_FIELD_NAMES[tag]} repeated or out of order"
            )
        last = tag
        length = r.varint(_FIELD_NAMES[tag])
        values[tag] = r.take(length, _FIELD_NAMES[tag])
    missing = [_FIELD_NAMES[t] for t in _FIELD_NAMES if t not in values and t not in _OPTIONAL]
    if missing:
        raise DecodeError(f"{what}: missing field(s): {', '.join(missing)}")

    def text(tag: int) -> str:
        try:
            return values[tag].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{what}: field {_FIELD_NAMES[tag]}: bad UTF-8: {exc}") from None

    def u64(tag: int) -> int:
        raw = values[tag]
        if len(raw) != 8:
            raise DecodeError(
                f"{what}: field {_FIELD_NAMES[tag]}: expected 8 bytes, got {len(raw)}"
            )
        return _U64.unpack(raw)[0]

    raw_chunks = values[T_CHUNKS]
    if len(raw_chunks) % _CHUNK.size:
        raise DecodeError(
            f"{what}: field chunks: length {len(raw_chunks)} is not a multiple of {_CHUNK.size}"
        )
    raw_tags = values[T_TAGS]
    tr = Reader(raw_tags, f"{what}: field tags")
    tags = []
    while tr.remaining:
        n = tr.varint("tag length")
        try:
            tags.append(tr.take(n, "tag").decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{what}: field tags: bad UTF-8: {exc}") from None
    publisher = values[T_PUBLISHER]
    try:
        manifest = Manifest(
            name=text(T_NAME),
            size=u64(T_SIZE),
            media_type=text(T_MEDIA),
            chunks=tuple(ChunkRef(d, s) for d, s in _CHUNK.iter_unpack(raw_chunks)),
            tags=tuple(tags),
            access=text(T_ACCESS),
            distribution=text(T_DISTRIBUTION),
            retention=text(T_RETENTION) if T_RETENTION in values else None,
            publisher=publisher,
            created=u64(T_CREATED),
            expires=u64(T_EXPIRES) if T_EXPIRES in values else None,
        )
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"{what}: invalid value: {exc}") from None
    if manifest.encode() != body:
        raise DecodeError(
            f"{what}: not in canonical form (a field is not normalised: unsorted or duplicate "
            "tags, non-NFC name, upper-case media type, non-canonical retention, ...)"
        )
    return manifest
