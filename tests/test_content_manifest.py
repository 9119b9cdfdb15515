"""Manifests: canonical encoding, content ids, signatures, strict parsing, policy names."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import struct
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meshcore.content import _encoding
from meshcore.content._policy_names import (
    Access,
    Distribution,
    Retention,
    normalize_retention,
    normalize_tag,
    normalize_tags,
    parse_access,
    parse_distribution,
    parse_retention,
)
from meshcore.content.keys import KeyPair
from meshcore.content.manifest import (
    MAX_CHUNKS,
    MAX_TAGS,
    SIGNING_PREFIX,
    ChunkRef,
    Manifest,
    SignedManifest,
    parse_manifest,
    sign_manifest,
)
from meshcore.errors import DecodeError, IntegrityError

KP = KeyPair.from_seed(bytes(range(32)))
OTHER = KeyPair.from_seed(bytes(range(1, 33)))


def make(**over) -> Manifest:
    fields = dict(
        name="report.pdf",
        size=300,
        media_type="application/pdf",
        chunks=(ChunkRef(b"\x01" * 32, 100), ChunkRef(b"\x02" * 32, 200)),
        tags=("news", "edu"),
        access="community",
        distribution="replicate:3",
        retention=None,
        publisher=KP.public,
        created=1_700_000_000,
        expires=None,
    )
    fields.update(over)
    return Manifest(**fields)


# ---------------------------------------------------------------- a spec-built encoder
# Written from docs/content/format.md, independently of manifest.py, so that
# the test checks the implementation against the document.


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + leb(len(value)) + value


def spec_body(fields: list[tuple[int, bytes]]) -> bytes:
    return b"MCMF\x01" + b"".join(tlv(t, v) for t, v in fields)


def spec_fields(m: Manifest) -> list[tuple[int, bytes]]:
    out = [
        (1, m.name.encode()),
        (2, m.size.to_bytes(8, "big")),
        (3, m.media_type.encode()),
        (4, b"".join(c.digest + c.size.to_bytes(4, "big") for c in m.chunks)),
        (5, b"".join(leb(len(t.encode())) + t.encode() for t in m.tags)),
        (6, m.access.encode()),
        (7, m.distribution.encode()),
    ]
    if m.retention is not None:
        out.append((8, m.retention.encode()))
    out += [(9, m.publisher), (10, m.created.to_bytes(8, "big"))]
    if m.expires is not None:
        out.append((11, m.expires.to_bytes(8, "big")))
    return out


def spec_signed(body: bytes, kp: KeyPair = KP) -> bytes:
    return b"MCMS\x01" + leb(len(body)) + body + kp.sign(SIGNING_PREFIX + body)


def test_encoding_matches_the_document():
    m = make(retention="ttl:1h", expires=1_800_000_000)
    assert m.encode() == spec_body(spec_fields(m))
    assert m.content_id == hashlib.blake2b(m.encode(), digest_size=32).digest()
    signed = sign_manifest(m, KP)
    assert signed.to_bytes() == spec_signed(m.encode())
    assert signed.content_id == m.content_id
    # Ed25519 is deterministic: same manifest, same bytes
    assert sign_manifest(make(retention="ttl:3600s", expires=1_800_000_000), KP) == signed


def test_constructor_normalises():
    m = make(
        name=unicodedata.normalize("NFD", "café.txt"),
        media_type=" Text/Plain ",
        tags=("News", " local  news ", "news", "EDU"),
        retention="ttl:7d",
    )
    assert m.name == "café.txt" and unicodedata.is_normalized("NFC", m.name)
    assert m.media_type == "text/plain"
    assert m.tags == ("edu", "local-news", "news")
    assert m.retention == "ttl:604800s"
    assert make(chunks=[ChunkRef(b"\x01" * 32, 300)]).chunks == (ChunkRef(b"\x01" * 32, 300),)
    assert make(publisher=bytearray(KP.public)).publisher == KP.public
    # equality ignores the encoding cache
    a, b = make(), make()
    a.encode()
    assert a == b and hash(a) == hash(b)
    assert dataclasses.replace(a, name="other").encode() != a.encode()


@pytest.mark.parametrize(
    ("over", "exc", "match"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"name": "a" * 1025}, ValueError, "name"),
        ({"name": "bad\nname"}, ValueError, "control"),
        ({"name": "\ud800"}, ValueError, "UTF-8"),
        ({"name": 5}, TypeError, "name"),
        ({"size": -1}, ValueError, "size"),
        ({"size": 301}, ValueError, "sum of the chunk sizes"),
        ({"size": True}, TypeError, "size"),
        ({"media_type": "pdf"}, ValueError, "media_type"),
        ({"media_type": "text/plain; charset=utf-8"}, ValueError, "media_type"),
        ({"media_type": "/plain"}, ValueError, "media_type"),
        ({"media_type": None}, TypeError, "media_type"),
        ({"chunks": "abc"}, TypeError, "chunks"),
        ({"chunks": (("x", 1),)}, TypeError, r"chunks\[0\]"),
        ({"tags": "news"}, TypeError, "tags"),
        ({"tags": ("a b\x00",)}, ValueError, "tag"),
        ({"tags": tuple(f"t{i}" for i in range(MAX_TAGS + 1))}, ValueError, "tags"),
        ({"access": "everyone"}, ValueError, "access"),
        ({"access": "group:"}, ValueError, "access"),
        ({"distribution": "replicate:0"}, ValueError, "distribution"),
        ({"distribution": "replicate:03"}, ValueError, "distribution"),
        ({"distribution": "replicate:256"}, ValueError, "distribution"),
        ({"retention": "forever"}, ValueError, "retention"),
        ({"retention": "ttl:0s"}, ValueError, "retention"),
        ({"publisher": b"x" * 31}, ValueError, "publisher"),
        ({"publisher": "k" * 32}, TypeError, "publisher"),
        ({"created": -1}, ValueError, "created"),
        ({"created": 2**63}, ValueError, "created"),
        ({"expires": 1_700_000_000}, ValueError, "expires"),
        ({"expires": 1.5}, TypeError, "expires"),
    ],
)
def test_constructor_rejects(over, exc, match):
    with pytest.raises(exc, match=match):
        make(**over)


def test_chunkref_validation():
    with pytest.raises(ValueError, match="digest"):
        ChunkRef(b"x" * 31, 1)
    with pytest.raises(ValueError, match="chunk size"):
        ChunkRef(b"x" * 32, 0)
    with pytest.raises(TypeError, match="chunk size"):
        ChunkRef(b"x" * 32, 1.0)  # type: ignore[arg-type]
    assert ChunkRef(bytearray(32), 5).digest == bytes(32)


def test_too_many_chunks():
    with pytest.raises(ValueError, match="at most"):
        make(chunks=[ChunkRef(b"\x01" * 32, 1)] * (MAX_CHUNKS + 1), size=MAX_CHUNKS + 1)


def test_sign_requires_matching_key():
    m = make()
    with pytest.raises(ValueError, match="publisher"):
        sign_manifest(m, OTHER)
    with pytest.raises(TypeError):
        sign_manifest("m", KP)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign_manifest(m, "kp")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SignedManifest("m", b"x" * 64)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="signature"):
        SignedManifest(m, b"x" * 63)


def test_resigned_and_forged_manifests():
    m = make(distribution="push-all")
    good = sign_manifest(m, KP)
    # Same body, signature by another key: rejected, it does not name that key.
    resigned = SignedManifest(m, OTHER.sign(SIGNING_PREFIX + m.encode()))
    assert not resigned.verify()
    with pytest.raises(IntegrityError, match="signature"):
        parse_manifest(resigned.to_bytes())
    # Signature without the domain prefix: rejected.
    raw_sig = SignedManifest(m, KP.sign(m.encode()))
    with pytest.raises(IntegrityError):
        parse_manifest(raw_sig.to_bytes())
    # An attacker who names their own key gets a valid manifest -- under a
    # different content id and publisher, so it can never pass for the original.
    forged = sign_manifest(dataclasses.replace(m, publisher=OTHER.public), OTHER)
    parsed = parse_manifest(forged.to_bytes())
    assert parsed.content_id != good.content_id
    assert parsed.manifest.publisher == OTHER.public


# ------------------------------------------------------------------ hypothesis

_names = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40).filter(
    lambda s: len(unicodedata.normalize("NFC", s).encode()) <= 1024
)
_tags = st.lists(
    st.text(st.sampled_from("abcXYZ09-_.:/+ é"), min_size=1, max_size=12).filter(
        lambda t: t.strip() != ""
    ),
    max_size=6,
)
_access = st.one_of(
    st.sampled_from(["public", "community", "private"]),
    st.from_regex(r"group:[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True),
)
_dist = st.one_of(
    st.sampled_from(["push-all", "push-tier", "on-demand", "local-only", "no-store"]),
    st.integers(1, 255).map(lambda k: f"replicate:{k}"),
)
_ret = st.one_of(
    st.none(),
    st.just("pin-until-expiry"),
    st.integers(1, 2**32 - 1).map(lambda s: f"ttl:{s}s"),
)


@st.composite
def manifests(draw) -> Manifest:
    chunks = tuple(
        ChunkRef(draw(st.binary(min_size=32, max_size=32)), draw(st.integers(1, 2**32 - 1)))
        for _ in range(draw(st.integers(0, 5)))
    )
    created = draw(st.integers(0, 2**63 - 2))
    expires = draw(st.one_of(st.none(), st.integers(created + 1, 2**63 - 1)))
    return Manifest(
        name=draw(_names),
        size=sum(c.size for c in chunks),
        media_type=draw(st.from_regex(r"[a-z0-9]{1,8}/[a-z0-9][a-z0-9.+-]{0,10}", fullmatch=True)),
        chunks=chunks,
        tags=tuple(draw(_tags)),
        access=draw(_access),
        distribution=draw(_dist),
        retention=draw(_ret),
        publisher=KP.public,
        created=created,
        expires=expires,
    )


@settings(max_examples=150, deadline=None)
@given(manifests())
def test_round_trip(m):
    assert Manifest.decode(m.encode()) == m
    assert m.encode() == spec_body(spec_fields(m))
    signed = sign_manifest(m, KP)
    parsed = parse_manifest(signed.to_bytes())
    assert parsed == signed
    assert parsed.content_id == hashlib.blake2b(m.encode(), digest_size=32).digest()
    assert parse_manifest(memoryview(bytearray(signed.to_bytes()))) == signed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests(), st.data())
def test_any_single_bit_flip_is_rejected(m, data):
    raw = sign_manifest(m, KP).to_bytes()
    bit = data.draw(st.integers(0, len(raw) * 8 - 1), label="bit")
    flipped = bytearray(raw)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DecodeError):
        parse_manifest(bytes(flipped))


def test_every_bit_flip_of_one_manifest_is_rejected():
    raw = sign_manifest(make(retention="pin-until-expiry", expires=1_800_000_000), KP).to_bytes()
    for bit in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(DecodeError):
            parse_manifest(bytes(flipped))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data):
    for raw in (data, b"MCMS\x01" + data, b"MCMS\x01" + leb(len(data)) + data):
        with contextlib.suppress(DecodeError):
            parse_manifest(raw)
    with contextlib.suppress(DecodeError):
        Manifest.decode(b"MCMF\x01" + data)


# ----------------------------------------------------------- non-canonical bodies


def variants():
    m = make(retention="ttl:60s", expires=1_800_000_000, tags=("edu", "news"))
    base = spec_fields(m)
    f = dict(base)

    def with_(tag, value):
        return [(t, value if t == tag else v) for t, v in base]

    def without(tag):
        return [(t, v) for t, v in base if t != tag]

    chunk_bytes = f[4]
    yield "unsorted tags", spec_body(with_(5, leb(4) + b"news" + leb(3) + b"edu"))
    yield "duplicate tags", spec_body(with_(5, leb(3) + b"edu" + leb(3) + b"edu"))
    yield "unnormalised tag", spec_body(with_(5, leb(3) + b"EDU" + leb(4) + b"news"))
    yield "non-NFC name", spec_body(with_(1, unicodedata.normalize("NFD", "café").encode()))
    yield "upper-case media type", spec_body(with_(3, b"Application/PDF"))
    yield "non-canonical retention", spec_body(with_(8, b"ttl:1m"))
    yield "size not sum", spec_body(with_(2, (301).to_bytes(8, "big")))
    yield "short size field", spec_body(with_(2, (300).to_bytes(4, "big")))
    yield "bad UTF-8 name", spec_body(with_(1, b"\xff\xfe"))
    yield "bad UTF-8 tag", spec_body(with_(5, leb(2) + b"\xc3\x28"))
    yield "chunks not multiple of 36", spec_body(with_(4, chunk_bytes + b"\x00"))
    yield "zero-size chunk", spec_body(with_(4, b"\x01" * 32 + bytes(4)))
    yield "short publisher", spec_body(with_(9, KP.public[:31]))
    yield "missing field", spec_body(without(6))
    yield "fields out of order", spec_body([base[1], base[0], *base[2:]])
    yield "repeated field", spec_body([base[0], base[0], *base[1:]])
    yield "unknown field", spec_body([*base, (12, b"x")])
    yield "unknown field 0", spec_body([(0, b""), *base])
    yield "expires before created", spec_body(with_(11, (1).to_bytes(8, "big")))
    yield "bad access", spec_body(with_(6, b"Public"))
    yield "bad magic", b"MCMF\x02" + spec_body(base)[5:]
    long_varint = b"MCMF\x01" + bytes([1]) + b"\x8a\x00" + b"report.pdf" + spec_body(base[1:])[5:]
    yield "non-minimal varint", long_varint
    yield "truncated", spec_body(base)[:-3]


@pytest.mark.parametrize(("label", "body"), list(variants()))
def test_non_canonical_bodies_rejected(label, body):
    # Signed with the right key, so only canonical-form checks can reject them.
    with pytest.raises(DecodeError) as exc:
        parse_manifest(spec_signed(body))
    assert not isinstance(exc.value, IntegrityError), label
    with pytest.raises(DecodeError):
        Manifest.decode(body)


def test_envelope_errors():
    good = sign_manifest(make(), KP).to_bytes()
    with pytest.raises(DecodeError, match="magic"):
        parse_manifest(b"XXXX" + good[4:])
    with pytest.raises(DecodeError, match="does not match"):
        parse_manifest(good + b"\x00")
    with pytest.raises(DecodeError, match="does not match"):
        parse_manifest(good[:-1])
    with pytest.raises(DecodeError, match="truncated"):
        parse_manifest(b"MCM")
    with pytest.raises(TypeError):
        parse_manifest("text")  # type: ignore[arg-type]


# ------------------------------------------------------------------- varints


@given(st.integers(0, 2**32 - 1))
def test_varint_round_trip(n):
    raw = _encoding.encode_varint(n)
    assert raw == leb(n)
    r = _encoding.Reader(raw + b"tail", "t")
    assert r.varint("n") == n and r.remaining == 4


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\x80\x00", "shortest"),
        (b"\xff\xff\xff\xff\xff\x01", "longer than 5"),
        (b"\xff\xff\xff\xff\x1f", "exceeds"),
        (b"\x80", "truncated"),
        (b"", "truncated"),
    ],
)
def test_varint_rejects(raw, match):
    with pytest.raises(DecodeError, match=match):
        _encoding.Reader(raw, "t").varint("n")


def test_varint_range_and_reader():
    with pytest.raises(ValueError):
        _encoding.encode_varint(-1)
    with pytest.raises(ValueError):
        _encoding.encode_varint(2**32)
    r = _encoding.Reader(memoryview(b"ab"), "thing")
    assert r.take(1, "x") == b"a" and r.u8("y") == ord("b")
    with pytest.raises(DecodeError, match="thing: byte 2: z: truncated"):
        r.u8("z")


# -------------------------------------------------------------- policy names


def test_policy_name_parsers():
    assert parse_access("public") == Access("public")
    assert parse_access("group:river-side_2") == Access("group", "river-side_2")
    assert parse_distribution("replicate:255") == Distribution("replicate", 255)
    assert parse_distribution("on-demand") == Distribution("on-demand")
    assert parse_retention(None) is None
    assert parse_retention("ttl:86400s") == Retention("ttl", 86400)
    assert parse_retention("pin-until-expiry") == Retention("pin-until-expiry")
    for bad in ("group:Upper", "group:-x", "group:" + "a" * 65, "", "PUBLIC"):
        with pytest.raises(ValueError, match="access"):
            parse_access(bad)
    for bad in ("replicate:", "replicate:-1", "replicate:1.5", "push_all"):
        with pytest.raises(ValueError, match="distribution"):
            parse_distribution(bad)
    for bad in ("ttl:10", "ttl:010s", "ttl:s", f"ttl:{2**32}s", "ttl:1h"):
        with pytest.raises(ValueError, match="retention"):
            parse_retention(bad)
    for fn in (parse_access, parse_distribution, parse_retention):
        with pytest.raises(TypeError):
            fn(3)  # type: ignore[arg-type]


def test_normalize_retention():
    assert normalize_retention(None) is None
    assert normalize_retention("pin-until-expiry") == "pin-until-expiry"
    assert normalize_retention("ttl:7d") == "ttl:604800s"
    assert normalize_retention("ttl: 90 min") == "ttl:5400s"
    assert normalize_retention("ttl:300") == "ttl:300s"
    assert normalize_retention("ttl:1500ms") == "ttl:2s"  # rounded up
    assert normalize_retention("ttl:604800s") == "ttl:604800s"
    for bad in ("ttl:soon", "ttl:0s", "keep", "ttl:200y", f"ttl:{2**32}s"):
        with pytest.raises(ValueError, match="retention"):
            normalize_retention(bad)
    with pytest.raises(TypeError):
        normalize_retention(5)  # type: ignore[arg-type]


def test_normalize_tags():
    assert normalize_tag("  Local News ") == "local-news"
    assert normalize_tag("Straße") == "strasse"
    assert normalize_tag("ＥＤＵ") == "edu"  # fullwidth, NFKC
    assert normalize_tag("educación") == "educación"
    assert normalize_tags(["b", "A", "a "]) == ("a", "b")
    for bad in ("", "   ", "a" * 65, "semi;colon", "tab\there\x00"):
        with pytest.raises(ValueError, match="tag"):
            normalize_tag(bad)
    with pytest.raises(TypeError):
        normalize_tag(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        normalize_tags("abc")


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        st.one_of(
            st.characters(whitelist_categories=("L", "N", "Zs", "M")), st.sampled_from("-_.:/+")
        ),
        min_size=1,
        max_size=20,
    )
)
def test_normalize_tag_is_idempotent(text):
    try:
        once = normalize_tag(text)
    except ValueError:
        assume(False)
        return
    assert normalize_tag(once) == once
    assert once == once.strip() and " " not in once


def test_struct_sizes_are_as_documented():
    # the chunk entry is 32-byte digest + u32 size
    assert struct.calcsize(">32sI") == 36


def test_check_helpers():
    from meshcore.content._policy_names import check_access, check_distribution, check_retention

    assert check_access("group:x") == "group:x"
    assert check_distribution("push-tier") == "push-tier"
    assert check_retention("ttl:5s") == "ttl:5s" and check_retention(None) is None
    with pytest.raises(ValueError):
        check_retention("ttl:5m")
