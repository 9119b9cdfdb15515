"""HTTP/1.1 between routers: the daemon's carrier for the Router's messages and chunks.

Theory of operation
-------------------
Built on h11 (pure Python, sans-I/O HTTP/1.1, from the python-hyper
project) over asyncio streams: a router carries no HTTP framework, and h11
adds about nothing to a router's memory where aiohttp adds 16 MiB (measured
here: ``docs/node.md``). Every request is authenticated
(:mod:`meshcore.node.auth`); a request that is not is answered ``401`` with an
empty body before anything else happens.

The Router's messages map onto HTTP so that every body byte still leaves
through the sender's fair scheduler:

* ``SendMessage(peer, ChunkRequest)`` → ``GET /v1/chunk/<digest hex>?rid=&size=&prio=``
  to the holder. The holder's daemon feeds ``MessageReceived(ChunkRequest)``
  into its router and keeps the response open; each ``SendSlice`` the
  router returns for that request becomes the next piece of the response
  body (``Content-Length`` is the chunk size), written when the router's
  egress takes it, and ``EgressIdle`` is fed once the bytes have drained to
  the socket (and the egress pacing at ``egress_rate`` allows). A refusal
  (``ChunkUnavailable``) before the first byte is a ``404`` / ``429`` /
  ``503`` with the reason in ``X-Meshcore-Reason``. The asking daemon puts
  the body together and hands it to :attr:`on_chunk` (which verifies and
  stages it); a refusal becomes a ``ChunkUnavailable`` message, a broken
  connection or a timeout a failure (``on_failed``).
* Every other message → ``POST /v1/msg`` with its wire encoding
  (:mod:`meshcore.router.wire`), answered ``204``.
* ``GET /v1/manifest/<content id hex>`` returns an item's signed manifest
  (the asking daemon verifies it before it indexes anything).
* ``GET /metrics`` serves the Prometheus text (from loopback only, unless
  ``metrics_public``), for a scraper beside the node_exporter textfile.

Limits (:class:`TransportSettings`): request heads over ``max_header`` bytes
get ``431``, bodies over ``max_body`` ``413``, malformed HTTP ``400``, an
unknown path ``404``, a digest that is not hex ``400``; connections are
capped in total and per peer (``503`` with ``Retry-After`` past the cap); a
client that takes more than ``header_timeout`` to send its request head
(slowloris) or stays idle past ``idle_timeout`` is disconnected. Each drop
is counted in :attr:`NodeTransport.stats`. Outgoing requests reuse
keep-alive connections from a small pool per peer, with connect and
response timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any

import h11

from ..errors import DecodeError
from ..router.messages import ChunkRequest, ChunkUnavailable, Message
from ..router.wire import decode_message, encode_message
from .auth import AuthError, RequestSigner, RequestVerifier

__all__ = ["ChunkStream", "NodeTransport", "TransportSettings", "TransportStats"]

log = logging.getLogger("meshcore.node.transport")

_CHUNK_PATH = "/v1/chunk/"
_MANIFEST_PATH = "/v1/manifest/"
_MSG_PATH = "/v1/msg"
_REASON_STATUS = {"not-held": 404, "quota": 429, "refused": 429}


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """Limits and timeouts of the router-to-router HTTP transport (bytes, seconds)."""

    bind: str = "0.0.0.0"
    port: int = 0
    max_connections: int = 256
    max_per_peer: int = 8
    pool_per_peer: int = 4
    max_header: int = 16 * 1024
    max_body: int = 1 << 20
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    connect_timeout: float = 5.0
    response_timeout: float = 30.0
    egress_rate: float | None = None
    metrics_public: bool = False


@dataclass(slots=True)
class TransportStats:
    """What the transport did and dropped, by cause (exported in the status)."""

    requests: int = 0
    unauthenticated: int = 0
    bad_requests: int = 0
    too_large: int = 0
    not_found: int = 0
    over_capacity: int = 0
    slow_clients: int = 0
    chunks_sent: int = 0
    bytes_sent: int = 0
    chunks_received: int = 0
    bytes_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    send_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        """Every counter by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ChunkStream:
    """One open ``GET /v1/chunk`` response, fed slice by slice by the router's scheduler."""

    def __init__(self, transport: NodeTransport, conn: h11.Connection,
                 writer: asyncio.StreamWriter, size: int) -> None:
        self.transport = transport
        self.conn = conn
        self.writer = writer
        self.size = size
        self.sent = 0
        self.started = False
        #: The chunk's bytes, read once by whoever feeds the stream.
        self.payload: bytes | None = None
        self.done = asyncio.get_running_loop().create_future()

    def fail(self, reason: str) -> None:
        """Refuse the request (only before any body byte left)."""
        if self.done.done():
            return
        if self.started:
            self.writer.close()  # mid-body: the peer sees a short body and retries
            self.done.set_result(False)
            return
        status = _REASON_STATUS.get(reason.split(":")[0], 503)
        self.writer.write(self.conn.send(h11.Response(status_code=status, headers=[
            ("Content-Length", "0"), ("X-Meshcore-Reason", _header_text(reason))])))
        self.writer.write(self.conn.send(h11.EndOfMessage()))
        self.done.set_result(True)

    async def write(self, data: bytes) -> None:
        """Send the next piece of the body; resolves when it drained (and pacing allows)."""
        if self.done.done():
            return
        if not self.started:
            self.started = True
            self.writer.write(self.conn.send(h11.Response(status_code=200, headers=[
                ("Content-Length", str(self.size)), ("Content-Type",
                                                     "application/octet-stream")])))
        self.writer.write(self.conn.send(h11.Data(data=data)))
        self.sent += len(data)
        await self.writer.drain()
        rate = self.transport.settings.egress_rate
        if rate:
            await asyncio.sleep(len(data) / rate)
        if self.sent >= self.size:
            self.writer.write(self.conn.send(h11.EndOfMessage()))
            self.transport.stats.chunks_sent += 1
            self.transport.stats.bytes_sent += self.size
            self.done.set_result(True)


def _header_text(text: str) -> str:
    # Outside strings never reach a header raw: printable ASCII only.
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:200]


@dataclass(slots=True)
class _Pooled:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))


class NodeTransport:
    """The daemon's HTTP server and client for router-to-router traffic.

    Callbacks (all plain functions, called on the loop):

    * ``on_message(peer, message)`` — a message arrived (``POST /v1/msg``);
    * ``on_chunk_request(peer, request, stream)`` — a peer asks for a chunk:
      feed it to the router and route its slices to ``stream``;
    * ``on_chunk(peer, request_id, digest, size, data)`` — a chunk we asked for
      arrived whole (``data`` not yet verified);
    * ``on_failed(peer, message)`` — a request could not be completed;
    * ``address_of(peer)`` — where a peer's transport listens, or None;
    * ``metrics()`` — the Prometheus text for ``GET /metrics``;
    * ``manifest_of(peer, content_id)`` — a signed manifest to hand a peer, or None.

    ``wall_clock()`` gives Unix seconds for request signing and checking.
    """

    def __init__(
        self,
        settings: TransportSettings,
        *,
        key: bytes,
        node_id: str,
        wall_clock: Callable[[], float],
        on_message: Callable[[str, Message], None],
        on_chunk_request: Callable[[str, ChunkRequest, ChunkStream], None],
        on_chunk: Callable[[str, int, bytes, int, bytes], None],
        on_failed: Callable[[str, Message], None],
        address_of: Callable[[str], tuple[str, int] | None],
        metrics: Callable[[], str] | None = None,
        manifest_of: Callable[[str, bytes], bytes | None] | None = None,
    ) -> None:
        self.settings = settings
        self.node_id = node_id
        self.wall_clock = wall_clock
        self.signer = RequestSigner(key, node_id)
        self.verifier = RequestVerifier(key)
        self.on_message = on_message
        self.on_chunk_request = on_chunk_request
        self.on_chunk = on_chunk
        self.on_failed = on_failed
        self.address_of = address_of
        self.metrics = metrics
        self.manifest_of = manifest_of
        self.stats = TransportStats()
        self.streams: dict[tuple[str, int], ChunkStream] = {}
        self._server: asyncio.AbstractServer | None = None
        self._connections = 0
        self._per_peer: dict[str, int] = {}
        self._pool: dict[str, list[_Pooled]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (after :meth:`start`)."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Listen on ``bind:port``; OSError (port in use, no permission) is the caller's."""
        self._server = await asyncio.start_server(self._serve, self.settings.bind,
                                                  self.settings.port,
                                                  limit=self.settings.max_header)

    async def close(self) -> None:
        """Stop listening, close pooled connections, cancel requests in flight."""
        self._closed = True
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        for conns in self._pool.values():
            for c in conns:
                c.writer.close()
        self._pool.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- server ------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await self._serve_connection(reader, writer)
        except asyncio.CancelledError:
            writer.close()

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        s = self.settings
        if self._connections >= s.max_connections:
            self.stats.over_capacity += 1
            with contextlib.suppress(Exception):
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
            writer.close()
            return
        self._connections += 1
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=s.max_header)
        peer_host = (writer.get_extra_info("peername") or ("", 0))[0]
        first = True
        try:
            while not self._closed:
                try:
                    # A new connection must send its first request within
                    # header_timeout (slowloris); a kept-alive one may idle longer.
                    request, body = await asyncio.wait_for(
                        self._read_request(conn, reader),
                        s.header_timeout if first else s.idle_timeout)
                    first = False
                except TimeoutError:
                    self.stats.slow_clients += 1
                    return
                if request is None:
                    return
                keep = await self._dispatch(conn, writer, request, body, peer_host)
                if not keep or conn.our_state is not h11.DONE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except _TooLarge:
            self.stats.too_large += 1
            with contextlib.suppress(Exception):
                writer.write(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
        except (h11.RemoteProtocolError, ConnectionError, asyncio.IncompleteReadError) as exc:
            if isinstance(exc, h11.RemoteProtocolError):
                status = exc.error_status_hint
                if status == 431:
                    self.stats.too_large += 1
                else:
                    self.stats.bad_requests += 1
                with contextlib.suppress(Exception):
                    writer.write(f"HTTP/1.1 {status} Bad Request\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n".encode())
        finally:
            self._connections -= 1
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader
                            ) -> tuple[h11.Request | None, bytes]:
        request = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                return None, b""
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.settings.max_body:
                    raise _TooLarge
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)

    async def _respond(self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int,
                       body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> None:
        writer.write(conn.send(h11.Response(status_code=status, headers=[
            ("Content-Length", str(len(body))), *headers])))
        if body:
            writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    async def _dispatch(self, conn: h11.Connection, writer: asyncio.StreamWriter,
                        request: h11.Request, body: bytes, peer_host: str) -> bool:
        self.stats.requests += 1
        head = len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers)
        if head > self.settings.max_header:
            self.stats.too_large += 1
            await self._respond(conn, writer, 431, headers=(("Connection", "close"),))
            return False
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        path = target.split("?", 1)[0]
        if method == "GET" and path == "/metrics":
            return await self._serve_metrics(conn, writer, peer_host)
        auth = next((v.decode("latin-1") for k, v in request.headers if k == b"authorization"),
                    None)
        try:
            peer = self.verifier.verify(auth, method, target, body, wall=self.wall_clock())
        except AuthError:
            self.stats.unauthenticated += 1
            await self._respond(conn, writer, 401)
            return True
        if method == "POST" and path == _MSG_PATH:
            try:
                message = decode_message(body)
            except DecodeError:
                self.stats.bad_requests += 1
                await self._respond(conn, writer, 400)
                return True
            self.stats.messages_received += 1
            await self._respond(conn, writer, 204)
            self.on_message(peer, message)
            return True
        if method == "GET" and path.startswith(_CHUNK_PATH):
            req = _parse_chunk_target(path, target)
            if req is None:
                self.stats.bad_requests += 1
                await self._respond(conn, writer, 400)
                return True
            return await self._serve_chunk(conn, writer, peer, req)
        if method == "GET" and path.startswith(_MANIFEST_PATH):
            cid = _hex32(path[len(_MANIFEST_PATH):])
            if cid is None:
                self.stats.bad_requests += 1
                await self._respond(conn, writer, 400)
                return True
            raw = self.manifest_of(peer, cid) if self.manifest_of is not None else None
            if raw is not None:
                await self._respond(conn, writer, 200, raw)
                return True
        self.stats.not_found += 1
        await self._respond(conn, writer, 404)
        return True

    async def _serve_chunk(self, conn: h11.Connection, writer: asyncio.StreamWriter,
                           peer: str, req: ChunkRequest) -> bool:
        key = (peer, req.request_id)
        count = self._per_peer.get(peer, 0)
        if count >= self.settings.max_per_peer or key in self.streams:
            self.stats.over_capacity += 1
            await self._respond(conn, writer, 503, headers=(("Retry-After", "1"),))
            return True
        stream = ChunkStream(self, conn, writer, req.size)
        self.streams[key] = stream
        self._per_peer[peer] = count + 1
        try:
            self.on_chunk_request(peer, req, stream)
            ok = await asyncio.wait_for(asyncio.shield(stream.done),
                                        self.settings.response_timeout + req.size / 1000)
        except TimeoutError:
            ok = False
        finally:
            self.streams.pop(key, None)
            self._per_peer[peer] -= 1
        return bool(ok) and conn.our_state is h11.DONE

    async def _serve_metrics(self, conn: h11.Connection, writer: asyncio.StreamWriter,
                             peer_host: str) -> bool:
        local = False
        with contextlib.suppress(ValueError):
            local = ipaddress.ip_address(peer_host).is_loopback
        if self.metrics is None or not (local or self.settings.metrics_public):
            self.stats.not_found += 1
            await self._respond(conn, writer, 404)
            return True
        await self._respond(conn, writer, 200, self.metrics().encode(),
                            (("Content-Type", "text/plain; version=0.0.4"),))
        return True

    # -- client ------------------------------------------------------------------

    def send(self, peer: str, message: Message) -> None:
        """Carry one router message to ``peer`` (in the background)."""
        if isinstance(message, ChunkRequest):
            self._spawn(self._fetch_chunk(peer, message))
        else:
            self._spawn(self._post(peer, message))

    async def _post(self, peer: str, message: Message) -> None:
        body = encode_message(message)
        got = await self._request(peer, "POST", _MSG_PATH, body, message)
        if got is None:
            return
        status, _headers, _body = got
        if status == 204:
            self.stats.messages_sent += 1
        else:
            self._failed(peer, message)

    async def _fetch_chunk(self, peer: str, req: ChunkRequest) -> None:
        target = (f"{_CHUNK_PATH}{req.digest.hex()}?rid={req.request_id}&size={req.size}"
                  f"&prio={req.priority}")
        got = await self._request(peer, "GET", target, b"", req,
                                  timeout=self.settings.response_timeout + req.size / 2000)
        if got is None:
            return
        status, headers, body = got
        if status == 200 and len(body) == req.size:
            self.stats.chunks_received += 1
            self.stats.bytes_received += len(body)
            self.on_chunk(peer, req.request_id, req.digest, req.size, body)
        elif status in (404, 429, 503):
            reason = headers.get("x-meshcore-reason", f"http {status}")
            self.on_message(peer, ChunkUnavailable(req.request_id, req.digest, reason))
        else:
            self._failed(peer, req)

    async def fetch_manifest(self, peer: str, content_id: bytes) -> bytes | None:
        """``peer``'s signed manifest of ``content_id`` (unverified), or None."""
        got = await self._request(peer, "GET", f"{_MANIFEST_PATH}{content_id.hex()}", b"",
                                  None)
        if got is None or got[0] != 200:
            return None
        return got[2]

    def _failed(self, peer: str, message: Message | None) -> None:
        self.stats.send_failures += 1
        if message is not None:
            self.on_failed(peer, message)

    async def _request(self, peer: str, method: str, target: str, body: bytes,
                       message: Message | None, *, timeout: float | None = None
                       ) -> tuple[int, dict[str, str], bytes] | None:
        address = self.address_of(peer)
        if address is None or self._closed:
            self._failed(peer, message)
            return None
        try:
            pooled = await self._connect(peer, address)
            result = await asyncio.wait_for(
                self._roundtrip(pooled, method, target, body, address),
                timeout or self.settings.response_timeout)
        except (OSError, TimeoutError, h11.ProtocolError, asyncio.IncompleteReadError,
                _TooLarge):
            self._failed(peer, message)
            return None
        status, headers, data, reusable = result
        if reusable and len(self._pool.setdefault(peer, [])) < self.settings.pool_per_peer:
            pooled.conn.start_next_cycle()
            self._pool[peer].append(pooled)
        else:
            pooled.writer.close()
        return status, headers, data

    async def _connect(self, peer: str, address: tuple[str, int]) -> _Pooled:
        conns = self._pool.get(peer)
        while conns:
            pooled = conns.pop()
            if not pooled.writer.is_closing() and not pooled.reader.at_eof():
                return pooled
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*address),
                                                self.settings.connect_timeout)
        return _Pooled(reader, writer)

    async def _roundtrip(self, pooled: _Pooled, method: str, target: str, body: bytes,
                         address: tuple[str, int]
                         ) -> tuple[int, dict[str, str], bytes, bool]:
        conn, writer, reader = pooled.conn, pooled.writer, pooled.reader
        auth = self.signer.header(method, target, body, wall=self.wall_clock())
        headers = [("Host", f"{address[0]}:{address[1]}"), ("Authorization", auth),
                   ("Content-Length", str(len(body)))]
        writer.write(conn.send(h11.Request(method=method, target=target, headers=headers)))
        if body:
            writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        status = 0
        got: dict[str, str] = {}
        data = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                chunk = await reader.read(65536)
                conn.receive_data(chunk)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                got = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                data += event.data
                if len(data) > max(self.settings.max_body, 1 << 26):
                    raise _TooLarge
            elif isinstance(event, h11.EndOfMessage):
                return status, got, bytes(data), conn.our_state is h11.DONE
            elif isinstance(event, h11.ConnectionClosed):
                raise asyncio.IncompleteReadError(bytes(data), None)


class _TooLarge(Exception):
    """A body passed its limit."""


def _hex32(text: str) -> bytes | None:
    if len(text) != 64:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _parse_chunk_target(path: str, target: str) -> ChunkRequest | None:
    digest = _hex32(path[len(_CHUNK_PATH):])
    if digest is None:
        return None
    query = urllib.parse.parse_qs(target.partition("?")[2], strict_parsing=False)
    try:
        rid = int(query["rid"][0])
        size = int(query["size"][0])
        prio = int(query.get("prio", ["1"])[0])
    except (KeyError, ValueError, IndexError):
        return None
    if not (0 <= rid < 2**63 and 0 <= size <= 1 << 26 and prio in (0, 1, 2)):
        return None
    return ChunkRequest(rid, digest, size, prio)
