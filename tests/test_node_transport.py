"""Router-to-router HTTP on loopback: authentication, messages, chunks, limits, bad input."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.errors import DecodeError
from meshcore.kernels import blake2b_256
from meshcore.node.auth import AuthError, RequestSigner, RequestVerifier
from meshcore.node.transport import NodeTransport, TransportSettings
from meshcore.router.messages import ChunkRequest, ChunkSlice, ChunkUnavailable, ItemInfo, ItemQuery
from meshcore.router.wire import MAX_MESSAGE, decode_message, encode_message

KEY = b"community-key-for-tests-32-bytes"
WALL = 1_780_000_000.0


# -- authentication ----------------------------------------------------------------


def test_a_signed_request_verifies_once_and_only_once():
    signer, verifier = RequestSigner(KEY, "n1", boot=7), RequestVerifier(KEY)
    h = signer.header("GET", "/v1/chunk/ab", b"", wall=WALL)
    assert verifier.verify(h, "GET", "/v1/chunk/ab", b"", wall=WALL) == "n1"
    with pytest.raises(AuthError, match="replay"):
        verifier.verify(h, "GET", "/v1/chunk/ab", b"", wall=WALL)
    # Out of order within the window is fine; below the window is refused.
    later = [signer.header("POST", "/v1/msg", b"x", wall=WALL) for _ in range(1100)]
    verifier.verify(later[-1], "POST", "/v1/msg", b"x", wall=WALL)
    verifier.verify(later[-2], "POST", "/v1/msg", b"x", wall=WALL)
    with pytest.raises(AuthError, match="replay"):
        verifier.verify(later[0], "POST", "/v1/msg", b"x", wall=WALL)
    assert verifier.refused == {"replay": 2}


@pytest.mark.parametrize("change", ["method", "target", "body", "key", "skew", "header"])
def test_any_change_breaks_the_tag(change):
    signer, verifier = RequestSigner(KEY, "n1"), RequestVerifier(KEY)
    h = signer.header("POST", "/v1/msg", b"body", wall=WALL)
    args = {"method": "POST", "target": "/v1/msg", "body": b"body", "wall": WALL}
    if change == "method":
        args["method"] = "GET"
    elif change == "target":
        args["target"] = "/v1/msg?x=1"
    elif change == "body":
        args["body"] = b"bodz"
    elif change == "key":
        verifier = RequestVerifier(b"another-key-of-the-same-length!!")
    elif change == "skew":
        args["wall"] = WALL + 3600
    elif change == "header":
        h = h.replace("mac=", "mac=0")
    with pytest.raises(AuthError):
        verifier.verify(h, args["method"], args["target"], args["body"], wall=args["wall"])


def test_routers_without_a_set_clock_still_authenticate():
    signer, verifier = RequestSigner(KEY, "n1"), RequestVerifier(KEY)
    h = signer.header("GET", "/x", b"", wall=86400.0)  # booted in 1970
    assert verifier.verify(h, "GET", "/x", b"", wall=WALL) == "n1"


def test_sender_state_is_bounded():
    verifier = RequestVerifier(KEY, max_senders=3)
    for i in range(10):
        signer = RequestSigner(KEY, f"n{i}")
        verifier.verify(signer.header("GET", "/", b"", wall=WALL), "GET", "/", b"", wall=WALL)
    assert len(verifier._senders) == 3


# -- the wire form of messages ----------------------------------------------------------


MESSAGES = [
    ItemQuery(1, b"\x01" * 32),
    ItemQuery(2, "http://example.org/debian/pool/main/x.deb"),
    ItemInfo(3, b"\x02" * 32, ((b"\x03" * 32, 262144), (b"\x04" * 32, 5)), True, 1.8e9),
    ItemInfo(4, "k", (), False, None),
    ChunkUnavailable(5, b"\x05" * 32, "not-held"),
    ChunkRequest(6, b"\x06" * 32, 1000, 2),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_round_trip(message):
    assert decode_message(encode_message(message)) == message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_decode_or_raise_decode_error(data):
    _decodes_to_a_valid_message_or_raises(data)


def _decodes_to_a_valid_message_or_raises(data: bytes) -> None:
    try:
        message = decode_message(data)
    except DecodeError:
        return
    assert decode_message(encode_message(message)) == message  # a valid, canonical message


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MESSAGES), st.integers(0, 400), st.integers(0, 255))
def test_a_mutated_message_decodes_to_a_valid_message_or_raises(message, pos, value):
    raw = bytearray(encode_message(message))
    raw[pos % len(raw)] = value
    _decodes_to_a_valid_message_or_raises(bytes(raw))


def test_decoder_names_what_is_wrong():
    with pytest.raises(DecodeError, match="unknown type"):
        decode_message(b'{"v":1,"type":"nope"}')
    with pytest.raises(DecodeError, match="version"):
        decode_message(b'{"v":2,"type":"item-query"}')
    with pytest.raises(DecodeError, match="unknown fields"):
        decode_message(b'{"v":1,"type":"item-query","request_id":1,"key":{"s":"k"},"x":1}')
    with pytest.raises(DecodeError, match="request_id"):
        decode_message(b'{"v":1,"type":"item-query","request_id":-1,"key":{"s":"k"}}')
    with pytest.raises(DecodeError, match="more than"):
        decode_message(b" " * (MAX_MESSAGE + 1))
    with pytest.raises(DecodeError, match="not JSON"):
        decode_message(b'{"v":1,"type":"item-query","request_id":NaN,"key":{"s":"k"}}')
    with pytest.raises(ValueError, match="no wire form"):
        encode_message(ChunkSlice(1, b"", 0, 0, 0))


# -- two transports on loopback ---------------------------------------------------------


class _Node:
    """A transport with recording callbacks and a tiny chunk store."""

    def __init__(self, name: str, book: dict[str, tuple[str, int]], **kw) -> None:
        self.name = name
        self.messages: list = []
        self.chunks: list = []
        self.failed: list = []
        self.store: dict[bytes, bytes] = {}
        self.tasks: list[asyncio.Future] = []
        key = kw.pop("key", KEY)
        self.transport = NodeTransport(
            TransportSettings(bind="127.0.0.1", **kw), key=key, node_id=name,
            wall_clock=lambda: WALL, on_message=lambda p, m: self.messages.append((p, m)),
            on_chunk_request=self._serve, on_chunk=lambda *a: self.chunks.append(a),
            on_failed=lambda p, m: self.failed.append((p, m)), address_of=book.get,
            metrics=lambda: "meshcore_up 1\n")

    def _serve(self, peer, req, stream) -> None:
        data = self.store.get(req.digest)
        if data is None:
            stream.fail("not-held")
            return

        async def slices() -> None:
            for off in range(0, len(data), 16384):
                await stream.write(data[off:off + 16384])

        self.tasks.append(asyncio.ensure_future(slices()))


async def _pair(**kw):
    book: dict[str, tuple[str, int]] = {}
    a, b = _Node("a", book, **kw), _Node("b", book, **kw)
    for n in (a, b):
        await n.transport.start()
        book[n.name] = ("127.0.0.1", n.transport.port)
    return a, b, book


async def _until(predicate, timeout=5.0):
    end = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < end, "timed out"
        await asyncio.sleep(0.01)


def test_messages_and_chunks_cross_between_two_routers():
    async def run():
        a, b, _ = await _pair()
        data = random.Random(1).randbytes(100_000)
        digest = blake2b_256(data)
        b.store[digest] = data
        a.transport.send("b", ItemQuery(1, digest))
        a.transport.send("b", ChunkRequest(2, digest, len(data)))
        a.transport.send("b", ChunkRequest(3, b"\x09" * 32, 10))
        await _until(lambda: b.messages and a.chunks and a.messages)
        assert b.messages == [("a", ItemQuery(1, digest))]
        assert a.chunks == [("b", 2, digest, len(data), data)]
        assert a.messages == [("b", ChunkUnavailable(3, b"\x09" * 32, "not-held"))]
        assert b.transport.stats.chunks_sent == 1 and a.transport.stats.bytes_received == 100_000
        # Keep-alive: the connections went back to the pool.
        assert a.transport._pool["b"]
        for n in (a, b):
            await n.transport.close()

    asyncio.run(run())


async def _raw(port: int, data: bytes, *, read=True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = await asyncio.wait_for(reader.read(65536), 5.0) if read else b""
    writer.close()
    return out


def test_strangers_and_bad_requests_get_a_status_and_are_counted():
    async def run():
        a, b, _ = await _pair(max_header=2048, max_body=4096, header_timeout=0.3)
        port = b.transport.port
        got = await _raw(port, b"GET /v1/chunk/" + b"00" * 32 + b"?rid=1&size=5 HTTP/1.1\r\n"
                               b"Host: x\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 401") and b"not-held" not in got
        assert (await _raw(port, b"BLAH\r\n\r\n")).startswith(b"HTTP/1.1 400")
        big = b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 4000 + b"\r\n\r\n"
        assert (await _raw(port, big)).startswith(b"HTTP/1.1 431")
        # A slow client that never finishes its head is cut off.
        assert await _raw(port, b"GET / HTTP/1.1\r\nHo") == b""
        # Metrics are served to loopback without a tag.
        got = await _raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200") and b"meshcore_up 1" in got
        s = b.transport.stats
        assert s.unauthenticated == 1 and s.bad_requests == 1 and s.too_large == 1
        assert s.slow_clients == 1
        assert b.transport.verifier.refused == {"missing": 1}
        # An authenticated request for an unknown path or a bad digest.
        signer = a.transport.signer
        for target, status in ((b"/v1/nope", b"404"), (b"/v1/chunk/zz?rid=1&size=1", b"400")):
            h = signer.header("GET", target.decode(), b"", wall=WALL).encode()
            got = await _raw(port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                                   b"Authorization: " + h + b"\r\n\r\n")
            assert got.startswith(b"HTTP/1.1 " + status)
        for n in (a, b):
            await n.transport.close()

    asyncio.run(run())


def test_a_dead_peer_or_no_address_is_a_failure_not_a_hang():
    async def run():
        a, b, _ = await _pair(connect_timeout=0.5, response_timeout=1.0)
        await b.transport.close()
        a.transport.send("b", ItemQuery(1, b"k"))
        a.transport.send("c", ItemQuery(2, b"k"))  # nobody knows where c is
        await _until(lambda: len(a.failed) == 2)
        assert {p for p, _ in a.failed} == {"b", "c"}
        await a.transport.close()

    asyncio.run(run())


def test_a_wrong_community_key_is_refused_end_to_end():
    async def run():
        book: dict[str, tuple[str, int]] = {}
        a = _Node("a", book, key=b"x" * 32)
        b = _Node("b", book)
        for n in (a, b):
            await n.transport.start()
            book[n.name] = ("127.0.0.1", n.transport.port)
        a.transport.send("b", ItemQuery(1, b"k"))
        await _until(lambda: a.failed)
        assert b.messages == [] and b.transport.stats.unauthenticated == 1
        for n in (a, b):
            await n.transport.close()

    asyncio.run(run())
