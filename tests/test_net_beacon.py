"""The beacon wire format: round trips, one test per field, and hostile bytes."""

from __future__ import annotations

import hashlib
import hmac
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshcore.errors import DecodeError
from meshcore.net._beacon import (
    FLAG_JOINING,
    FLAG_PROBE,
    FLAG_REPLY,
    MAC_LEN,
    MAX_DATAGRAM,
    OP_ADD,
    OP_REMOVE,
    OP_WITHDRAW,
    Beacon,
    BeaconError,
    Echo,
    PexEntry,
    PexSection,
    decode_beacon,
    decode_node_id,
    encode_beacon,
    encode_node_id,
    node_id_problem,
)
from meshcore.net.discovery import Discovery, DiscoverySettings

KEY = b"0123456789abcdef0123456789abcdef"
OTHER_KEY = b"fedcba9876543210fedcba9876543210"


def make(**kw) -> Beacon:
    base = dict(node_id="00112233aabbccdd", boot_epoch=1_700_000_000, seq=7, ts_ms=123456)
    base.update(kw)
    return Beacon(**base)


def roundtrip(b: Beacon) -> Beacon:
    return decode_beacon(encode_beacon(b, KEY), KEY)


# -- one test per field -----------------------------------------------------------------


def test_node_id_hex_travels_as_raw_bytes():
    data = encode_beacon(make(), KEY)
    # magic, version, flags, then header byte 0x80 | 8 and the 8 raw bytes
    assert data[:2] == b"MC" and data[2] == 1
    assert data[4] == 0x88 and data[5:13] == bytes.fromhex("00112233aabbccdd")
    assert roundtrip(make()).node_id == "00112233aabbccdd"


def test_node_id_text_form():
    assert roundtrip(make(node_id="router-7.example")).node_id == "router-7.example"
    assert roundtrip(make(node_id="ABCD")).node_id == "ABCD"  # upper case is not the hex form
    assert roundtrip(make(node_id="abc")).node_id == "abc"  # odd length: text
    assert roundtrip(make(node_id="nœud")).node_id == "nœud"


@pytest.mark.parametrize("bad", ["", "x" * 65, "ab" * 65])
def test_node_id_refused_when_empty_or_too_long(bad):
    with pytest.raises(ValueError, match="node_id"):
        encode_node_id(bad)


def test_node_id_hex_sent_as_text_is_malformed():
    # the same id must have one encoding, or digests and replay state would split
    raw = b"\x04abcd"
    with pytest.raises(BeaconError, match="hex node id sent as text"):
        decode_node_id(raw, 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("boot_epoch", 0xFFFFFFFF),
        ("seq", 0xFFFFFFFF),
        ("ts_ms", 0xFFFFFFFF),
        ("flags", FLAG_PROBE | FLAG_REPLY | FLAG_JOINING),
        ("interval", 12.5),
        ("service_port", 65535),
        ("load", 3.5),
        ("capacity", 10.0),
        ("summary_version", 424242),
        ("incarnation", 65535),
        ("digest", b"\x01\x02\x03\x04\x05\x06\x07\x08"),
        ("known_count", 4000),
    ],
)
def test_each_header_field_round_trips(field, value):
    assert getattr(roundtrip(make(**{field: value})), field) == value


def test_timestamp_wraps_modulo_2_32():
    assert roundtrip(make(ts_ms=2**32 + 5)).ts_ms == 5


def test_interval_resolution_is_a_tenth_of_a_second():
    assert roundtrip(make(interval=5.04)).interval == 5.0


def test_echo_entries_round_trip_with_ratio_in_255ths():
    echoes = (
        Echo("0000000000000001", 99, 12, 1.0),
        Echo("peer-two", 0xFFFFFFFF, 0xFFFF, 0.5),
    )
    got = roundtrip(make(echoes=echoes)).echoes
    assert [e.node_id for e in got] == ["0000000000000001", "peer-two"]
    assert got[0].echoed_ts_ms == 99 and got[0].hold_ms == 12 and got[0].ratio == 1.0
    assert got[1].hold_ms == 0xFFFF
    assert abs(got[1].ratio - 128 / 255) < 1e-12  # 0.5 * 255 = 127.5 rounds to 128


def test_pex_delta_round_trip_all_address_families():
    entries = (
        PexEntry(OP_ADD, "00000000000000aa", 5, 1, 2, "10.1.2.3", 8080),
        PexEntry(OP_ADD, "00000000000000bb", 6, 0, 1, "fd00::1", 8081),
        PexEntry(OP_ADD, "node-c", 7, 3, 4, "node-c.mesh", 1),
        PexEntry(OP_ADD, "00000000000000dd", 8, 0, 1, "", 0),
        PexEntry(OP_REMOVE, "00000000000000ee", 9, 2),
        PexEntry(OP_WITHDRAW, "00000000000000ff", 3, 1),
    )
    got = roundtrip(make(pex=PexSection(entries))).pex
    assert got is not None and not got.sync
    assert got.entries == entries


def test_pex_sync_chunk_header_round_trips():
    sec = PexSection((PexEntry(OP_REMOVE, "aa", 1, 1),), True, 513, 2, 3)
    got = roundtrip(make(pex=sec)).pex
    assert got == sec


# -- caps and authentication -------------------------------------------------------------


def test_encode_refuses_more_than_1200_bytes():
    echoes = tuple(Echo(f"{i:016x}", 0, 0, 1.0) for i in range(80))  # 80 * 16 bytes
    with pytest.raises(ValueError, match="exceeds 1200"):
        encode_beacon(make(echoes=echoes), KEY)


def test_largest_encodable_beacon_decodes():
    echoes = tuple(Echo(f"{i:016x}", 0, 0, 1.0) for i in range(69))
    data = encode_beacon(make(echoes=echoes), KEY)
    assert len(data) <= MAX_DATAGRAM
    assert len(decode_beacon(data, KEY).echoes) == 69


def test_oversized_datagram_is_refused_before_anything_else():
    with pytest.raises(BeaconError) as info:
        decode_beacon(b"MC\x01" + bytes(MAX_DATAGRAM), KEY)
    assert info.value.kind == "oversize"


def test_wrong_key_is_an_auth_failure():
    data = encode_beacon(make(), KEY)
    with pytest.raises(BeaconError) as info:
        decode_beacon(data, OTHER_KEY)
    assert info.value.kind == "auth"


def test_forged_mac_is_an_auth_failure():
    data = bytearray(encode_beacon(make(), KEY))
    data[-1] ^= 0x01
    with pytest.raises(BeaconError) as info:
        decode_beacon(bytes(data), KEY)
    assert info.value.kind == "auth"


def test_tampered_body_is_an_auth_failure():
    data = bytearray(encode_beacon(make(), KEY))
    data[20] ^= 0x40  # inside the seq/timestamp fields
    with pytest.raises(BeaconError) as info:
        decode_beacon(bytes(data), KEY)
    assert info.value.kind == "auth"


def test_mac_is_truncated_hmac_sha256_over_everything_before_it():
    data = encode_beacon(make(), KEY)
    body = data[:-MAC_LEN]
    assert data[-MAC_LEN:] == hmac.new(KEY, body, hashlib.sha256).digest()[:16]


def test_higher_version_is_refused_as_version():
    data = bytearray(encode_beacon(make(), KEY))
    data[2] = 2
    with pytest.raises(BeaconError) as info:
        decode_beacon(bytes(data), KEY)
    assert info.value.kind == "version"


def test_bad_magic_and_short_input_are_malformed():
    for raw in (b"", b"MC", b"XX\x01\x00" + bytes(40)):
        with pytest.raises(BeaconError) as info:
            decode_beacon(raw, KEY)
        assert info.value.kind == "malformed"


def sign(body: bytes) -> bytes:
    return body + hmac.new(KEY, body, hashlib.sha256).digest()[:MAC_LEN]


def test_unknown_section_is_skipped():
    body = encode_beacon(make(), KEY)[:-MAC_LEN]
    body += bytes([0x7E]) + struct.pack(">H", 3) + b"xyz"
    got = decode_beacon(sign(body), KEY)
    assert got.unknown_sections == 1 and got.node_id == "00112233aabbccdd"


def test_section_overrunning_the_datagram_is_malformed():
    body = encode_beacon(make(), KEY)[:-MAC_LEN] + bytes([0x7E]) + struct.pack(">H", 50) + b"x"
    with pytest.raises(BeaconError, match="truncated"):
        decode_beacon(sign(body), KEY)


def test_two_pex_sections_are_malformed():
    one = encode_beacon(make(pex=PexSection(())), KEY)[:-MAC_LEN]
    sec = one[-5:]  # TLV header (3) + count (2) of the empty delta section
    with pytest.raises(BeaconError, match="more than one"):
        decode_beacon(sign(one + sec), KEY)


@pytest.mark.parametrize(
    "value",
    [
        b"\x00\x01\x09\x81\xaa",  # op 9
        b"\x00\x01\x01\x81\xaa\x00\x00\x00\x01\x00\x01\x01\x05",  # address family 5
        b"\x00\x01\x01\x81\xaa\x00\x00\x00\x01\x00\x01\x01\x00\x02\xff\xfe\x00\x01",  # bad UTF-8
        b"\x00\x00zz",  # stray bytes
    ],
)
def test_bad_pex_contents_are_malformed(value):
    body = encode_beacon(make(), KEY)[:-MAC_LEN] + bytes([0x10]) + struct.pack(">H", len(value))
    with pytest.raises(BeaconError) as info:
        decode_beacon(sign(body + value), KEY)
    assert info.value.kind == "malformed"


def test_bad_sync_chunk_numbers_are_malformed():
    value = struct.pack(">HBB", 1, 3, 3) + b"\x00\x00"  # chunk 3 of 3
    body = encode_beacon(make(), KEY)[:-MAC_LEN] + bytes([0x11]) + struct.pack(">H", len(value))
    with pytest.raises(BeaconError, match="chunk"):
        decode_beacon(sign(body + value), KEY)


def test_nan_load_is_malformed():
    data = encode_beacon(make(load=float("nan")), KEY)
    with pytest.raises(BeaconError, match="NaN"):
        decode_beacon(data, KEY)


def test_encode_argument_errors():
    with pytest.raises(ValueError, match="digest"):
        encode_beacon(make(digest=b"x"), KEY)
    with pytest.raises(ValueError, match="out of range"):
        encode_beacon(make(seq=-1), KEY)
    with pytest.raises(ValueError, match="echoes"):
        encode_beacon(make(echoes=(Echo("a", 0, 0, 0),) * 256), KEY)
    with pytest.raises(ValueError, match="op"):
        encode_beacon(make(pex=PexSection((PexEntry(7, "a", 0, 0),))), KEY)
    with pytest.raises(ValueError, match="host"):
        encode_beacon(make(pex=PexSection((PexEntry(OP_ADD, "a", 0, 0, 1, "h" * 300),))), KEY)
    with pytest.raises(TypeError):
        decode_beacon("text", KEY)  # type: ignore[arg-type]


def test_decode_error_is_a_decode_error():
    assert issubclass(BeaconError, DecodeError)


# -- fuzzing -----------------------------------------------------------------------------

SAMPLE = encode_beacon(
    make(
        echoes=(Echo("0000000000000001", 5, 6, 0.9), Echo("name", 1, 2, 0.1)),
        pex=PexSection(
            (
                PexEntry(OP_ADD, "00000000000000aa", 5, 1, 2, "10.1.2.3", 80),
                PexEntry(OP_REMOVE, "bb", 1, 1),
            ),
            True,
            9,
            0,
            2,
        ),
    ),
    KEY,
)


def _check(data: bytes, key: bytes = KEY) -> None:
    try:
        decode_beacon(data, key)
    except BeaconError as exc:
        assert exc.kind in ("malformed", "auth", "version", "oversize")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1400))
def test_random_bytes_only_raise_decode_error(data):
    _check(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_beacons_only_raise_decode_error(data):
    raw = bytearray(SAMPLE)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[i : i + data.draw(st.integers(1, 8))]
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        if not raw:
            break
    _check(bytes(raw))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_bodies_with_valid_mac_only_raise_decode_error(data):
    # Re-sign after mutating, so the parser itself (not just the HMAC) meets garbage.
    body = bytearray(SAMPLE[:-MAC_LEN])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(3, len(body) - 1))
        if data.draw(st.booleans()):
            body[i] ^= data.draw(st.integers(1, 255))
        else:
            del body[i : i + data.draw(st.integers(1, 4))]
    _check(sign(bytes(body)))


node_ids = st.one_of(
    st.binary(min_size=1, max_size=32).map(bytes.hex),
    st.text(min_size=1, max_size=20).filter(lambda s: node_id_problem(s) is None),
)


@settings(max_examples=150, deadline=None)
@given(
    node_id=node_ids,
    seq=st.integers(0, 2**32 - 1),
    flags=st.integers(0, 255),
    load=st.floats(0, 1e6, width=32),
    echoes=st.lists(
        st.tuples(node_ids, st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF), st.integers(0, 255)),
        max_size=5,
    ),
)
def test_round_trip_property(node_id, seq, flags, load, echoes):
    b = make(
        node_id=node_id,
        seq=seq,
        flags=flags,
        load=load,
        echoes=tuple(Echo(i, t, h, r / 255) for i, t, h, r in echoes),
    )
    assert roundtrip(b) == b


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_discovery_counts_garbage_as_dropped_and_survives(datagrams):
    disco = Discovery(
        DiscoverySettings(community_key=KEY),
        node_id="00000000000000ff",
        service_port=1,
        rng=random.Random(0),
        now=0.0,
    )
    for i, d in enumerate(datagrams):
        assert disco.receive_datagram(d, ("10.0.0.1", 1), now=float(i)) == []
    assert disco.stats.received == len(datagrams)
    assert disco.stats.dropped == len(datagrams)
    assert len(disco.peers) == 0


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"", "header missing"),
        (b"\x80", "empty node id"),
        (b"\x00", "empty node id"),
        (b"\x7f" + bytes(127), "127 bytes"),
        (b"\x88abc", "truncated"),
        (b"\x02\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_node_ids_are_malformed(raw, problem):
    with pytest.raises(BeaconError, match=problem) as info:
        decode_node_id(raw, 0)
    assert info.value.kind == "malformed"
