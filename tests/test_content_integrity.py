"""Integrity: verify a chunk, verify a manifest, scrub a store and report what was repaired."""

from __future__ import annotations

import hashlib

import pytest

from meshcore.content import store as store_mod
from meshcore.content.effects import RefetchChunk
from meshcore.content.integrity import ScrubReport, scrub, verify_chunk, verify_manifest
from meshcore.content.keys import KeyPair
from meshcore.content.manifest import ChunkRef, Manifest, sign_manifest
from meshcore.content.store import ChunkStore
from meshcore.errors import DecodeError, IntegrityError


def b2(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def chunk(i: int, n: int = 3000) -> bytes:
    return hashlib.shake_256(b"chunk %d" % i).digest(n)


def test_verify_chunk():
    data = chunk(1)
    verify_chunk(b2(data), data)
    verify_chunk(bytearray(b2(data)), memoryview(data))
    with pytest.raises(IntegrityError, match=b2(data).hex()):
        verify_chunk(b2(data), data[:-1])
    with pytest.raises(ValueError, match="digest"):
        verify_chunk(b"short", data)
    with pytest.raises(ValueError, match="digest"):
        verify_chunk("x" * 32, data)  # type: ignore[arg-type]


def test_verify_manifest():
    kp = KeyPair.generate()
    m = Manifest(
        name="n",
        size=3,
        media_type="a/b",
        chunks=(ChunkRef(b2(b"abc"), 3),),
        tags=(),
        access="private",
        distribution="local-only",
        retention=None,
        publisher=kp.public,
        created=0,
        expires=None,
    )
    raw = sign_manifest(m, kp).to_bytes()
    assert verify_manifest(raw).manifest == m
    bad = bytearray(raw)
    bad[-1] ^= 1
    with pytest.raises(IntegrityError):
        verify_manifest(bytes(bad))
    with pytest.raises(DecodeError):
        verify_manifest(raw[:-70])


@pytest.fixture
def filled(tmp_path):
    s = ChunkStore(tmp_path / "s", budget_bytes=1 << 20)
    chunks = {b2(c): c for c in (chunk(i) for i in range(8))}
    for d, c in chunks.items():
        s.put(d, c)
    return s, chunks


def test_clean_scrub(filled):
    s, chunks = filled
    for full in (False, True):
        report = scrub(s, full=full, expected=list(chunks))
        assert report.clean and report.full == full
        assert report.checked == report.ok == 8
        assert report.repaired_effects == [] and report.duration is None
        assert "8 checked, 8 ok, 0 corrupt" in report.summary()


def test_fast_scrub_finds_bit_rot_and_truncation(filled):
    s, chunks = filled
    digests = sorted(chunks)
    flip, cut = digests[0], digests[1]
    p = s.chunk_path(flip)
    raw = bytearray(p.read_bytes())
    raw[100] ^= 0x04
    p.write_bytes(bytes(raw))
    p = s.chunk_path(cut)
    p.write_bytes(p.read_bytes()[:-1])
    missing = b2(b"never stored")
    report = scrub(s, expected=[*digests, missing], started=100.0, finished=102.5)
    assert not report.clean
    assert report.checked == 8 and report.ok == 6
    assert sorted(report.corrupt) == sorted([flip, cut])
    assert "xxh3" in report.reasons[flip]
    assert "truncated" in report.reasons[cut]
    assert len(report.quarantined) == 2
    assert report.missing == [missing]
    effects = {e.digest: e for e in report.repaired_effects}
    assert set(effects) == {flip, cut, missing}
    assert all(isinstance(e, RefetchChunk) for e in effects.values())
    assert effects[missing].reason == "missing from the store"
    assert effects[flip].reason.startswith("corrupt:")
    assert report.duration == 2.5 and "in 2.5 s" in report.summary()
    # quarantined chunks are gone from the store; a second scrub is clean
    assert not s.has(flip) and not s.has(cut)
    assert scrub(s).clean


def test_full_scrub_finds_what_fast_cannot(filled):
    s, chunks = filled
    d = sorted(chunks)[3]
    wrong = chunk(99)
    s.chunk_path(d).write_bytes(store_mod.encode_chunk_header(0, len(wrong), wrong) + wrong)
    assert scrub(s).clean  # header and checksum are self-consistent
    report = scrub(s, full=True)
    assert report.corrupt == [d]
    assert "BLAKE2b" in report.reasons[d]
    assert report.repaired_effects == [RefetchChunk(d, f"corrupt: {report.reasons[d]}")]


def test_effects_are_frozen():
    e = RefetchChunk(b"x" * 32, "why")
    with pytest.raises(AttributeError):
        e.reason = "other"  # type: ignore[misc]
    assert ScrubReport().clean
