"""The babeld adapter: follow a live babeld over its local interface.

Theory of operation
-------------------
babeld serves its local interface on TCP (``-g PORT``/``local-port``, bound
to ``::1``) or a Unix socket (``-g /path``/``local-path``). On connect it
greets (``BABEL 1.0``, ``version``, ``host``, ``my-id``, ``ok``). The client
then sends ``monitor``: babeld answers with a full dump of interfaces,
neighbours, xroutes and routes, ``ok``, and from then on one line per change
(``local.c``: ``CONFIG_ACTION_MONITOR`` runs the same ``local_notify_all_1``
as ``dump`` before it sets the monitor flag, in every release since 1.8; a
separate ``dump`` first would only send the table twice and leave a gap
between the two). Lines go through :class:`meshcore.net.importers.babel.BabelState`.

After the first ``ok`` that follows ``monitor`` the view is complete and is
published: the :class:`~meshcore.net.topology.Topology`
(``BabelState.to_topology``) to ``on_topology`` and the unicast addresses of
the neighbouring routers (``BabelState.neighbour_addresses``, paired with the
discovery port) to ``on_neighbours``, which the daemon hands to
``Discovery.set_daemon_neighbours``. Later changes are coalesced for
``settle`` seconds (babeld sends a burst of route lines per event) and
published again; the neighbour list only when it changed.

Failure handling: a connection that is refused, times out, closes, greets
with something that is not ``BABEL 1.x``, or sends ``max_bad_lines``
malformed lines in a row is closed, counted in :class:`BabeldStats`, logged,
and retried after an exponential backoff with jitter (the warning is logged
once, then after 1, 2, 4, ... minutes while babeld stays away:
:class:`~meshcore.node._quiet.QuietWarning`): attempt ``n`` waits a
uniform random time in ``[d/2, d]`` with ``d = min(backoff_max,
backoff_initial * 2**(n-1))`` (the "equal jitter" of Brooker, "Exponential
backoff and jitter", AWS Architecture Blog 2015), so many nodes restarting
with their babeld do not reconnect in lockstep. A session that completed its
dump resets the backoff. A single malformed line is counted and skipped. The
last published view is kept while disconnected; a reconnect starts from a
fresh state, so routes flushed while we were away are forgotten.

:func:`fetch_state` / :func:`fetch_topology` are the one-shot, blocking form
for the command line: greet, ``dump``, read to ``ok``, ``quit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from meshcore.errors import MeshcoreError, TopologyFormatError
from meshcore.net.importers.babel import MAX_ROUTES, BabelState
from meshcore.net.topology import Topology
from meshcore.node._quiet import QuietWarning

__all__ = [
    "DEFAULT_HOST",
    "BabeldAddress",
    "BabeldClient",
    "BabeldStats",
    "BabeldUnavailableError",
    "fetch_state",
    "fetch_topology",
    "parse_babeld_address",
]

log = logging.getLogger("meshcore.node.babeld")

DEFAULT_HOST = "::1"
"""Where babeld's ``-g PORT`` listens (babeld(8): "on the given port and address ::1")."""

# babeld writes lines of at most 512 bytes; anything far longer is not babeld.
_LINE_LIMIT = 16 * 1024

Addr = tuple[str, int]


class BabeldUnavailableError(MeshcoreError, OSError):
    """babeld's local interface cannot be reached (refused, timed out, closed early)."""


@dataclass(frozen=True, slots=True)
class BabeldAddress:
    """Where babeld listens: TCP ``host``/``port``, or a Unix socket ``path``."""

    host: str | None = None
    port: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return self.path
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_babeld_address(text: str) -> BabeldAddress:
    """Parse a babeld local-interface address.

    Accepted: ``"/run/babeld.sock"``, ``"unix:/path"``, ``"33123"``,
    ``"host:33123"``, ``"[::1]:33123"``. A bare port means ``::1`` (where
    babeld binds ``-g PORT``). Raises ValueError naming the text when it is
    none of these.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"babeld address: expected 'host:port' or a socket path, got {text!r}")
    text = text.strip()
    if text.startswith("unix:"):
        text = text[5:]
        if not text:
            raise ValueError("babeld address: 'unix:' needs a path")
        return BabeldAddress(path=text)
    if text.startswith(("/", "./")):
        return BabeldAddress(path=text)
    if text.isdigit():
        host, port_text = DEFAULT_HOST, text
    elif text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise ValueError(f"babeld address: expected '[v6-address]:port', got {text!r}")
        host, port_text = text[1:close], text[close + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host or ":" in host:
            raise ValueError(
                f"babeld address: expected 'host:port', '[v6]:port', a port or a socket path, "
                f"got {text!r}"
            )
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"babeld address: port {port_text!r} is not in 1..65535 ({text!r})")
    return BabeldAddress(host=host, port=int(port_text))


@dataclass(slots=True)
class BabeldStats:
    """Counters of one :class:`BabeldClient` (monotonic over its life)."""

    connects: int = 0
    """Connections opened."""
    connect_failures: int = 0
    """Connections refused, unreachable or timed out."""
    disconnects: int = 0
    """Sessions that ended (closed by babeld, garbage, or error)."""
    protocol_errors: int = 0
    """Sessions dropped for garbage: a bad greeting, too many bad lines, an overlong line."""
    bad_lines: int = 0
    """Malformed lines counted and skipped."""
    lines: int = 0
    """Lines read."""
    dumps: int = 0
    """Full dumps completed (one per healthy session)."""
    publishes: int = 0
    """Topology publications."""
    callback_errors: int = 0
    """Exceptions raised by ``on_topology``/``on_neighbours`` (logged, not fatal)."""
    dropped: int = 0
    """New routes, neighbours, interfaces or xroutes refused by the view's bounds
    (:data:`~meshcore.net.importers.babel.MAX_ROUTES` and its siblings)."""
    throttled: int = 0
    """Pauses in reading: babeld sent lines faster than ``max_line_rate``."""
    last_error: str = ""
    """The most recent failure, for ``meshcore node`` status output."""


class _SessionFailure(Exception):
    """Internal: end this session and reconnect (the reason is the message)."""


class BabeldClient:
    """Follow one babeld, publishing its topology and neighbour list (see module docstring).

    ``address`` is a string for :func:`parse_babeld_address` or a
    :class:`BabeldAddress`. ``discovery_port`` is paired with each neighbour
    address for ``on_neighbours``. Times are seconds; ``rng`` draws the
    backoff jitter (a seeded ``random.Random`` in tests).
    """

    def __init__(
        self,
        address: str | BabeldAddress,
        *,
        discovery_port: int,
        on_topology: Callable[[Topology], None] | None = None,
        on_neighbours: Callable[[list[Addr]], None] | None = None,
        rng: random.Random | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        connect_timeout: float = 5.0,
        settle: float = 0.05,
        max_bad_lines: int = 20,
        family: int | None = 4,
        max_line_rate: float = 2000.0,
        line_burst: int = MAX_ROUTES + 8192,
        min_publish_interval: float = 1.0,
    ) -> None:
        self.address = address if isinstance(address, BabeldAddress) else parse_babeld_address(
            address)
        if not 0 < discovery_port < 65536:
            raise ValueError(f"discovery_port: expected 1..65535, got {discovery_port!r}")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError(
                f"backoff_initial/backoff_max: need 0 < initial <= max, got {backoff_initial!r}, "
                f"{backoff_max!r}"
            )
        if connect_timeout <= 0:
            raise ValueError(f"connect_timeout: expected > 0, got {connect_timeout!r}")
        if settle < 0:
            raise ValueError(f"settle: expected >= 0, got {settle!r}")
        if max_bad_lines < 1:
            raise ValueError(f"max_bad_lines: expected >= 1, got {max_bad_lines!r}")
        if family not in (4, 6, None):
            raise ValueError(f"family: expected 4, 6 or None, got {family!r}")
        if not (math.isfinite(max_line_rate) and max_line_rate > 0) or line_burst < 1:
            raise ValueError(f"max_line_rate/line_burst: expected > 0 and >= 1, got "
                             f"{max_line_rate!r}, {line_burst!r}")
        if not 0 <= min_publish_interval < math.inf:
            raise ValueError(f"min_publish_interval: expected >= 0, got {min_publish_interval!r}")
        self.discovery_port = discovery_port
        self.on_topology = on_topology
        self.on_neighbours = on_neighbours
        self.rng = rng if rng is not None else random.Random()
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.connect_timeout = float(connect_timeout)
        self.settle = float(settle)
        self.max_bad_lines = max_bad_lines
        self.family = family
        self.max_line_rate = float(max_line_rate)
        self.line_burst = int(line_burst)
        self.min_publish_interval = float(min_publish_interval)
        self._tokens = float(line_burst)  # token bucket of lines (full: the first dump)
        self._tokens_at: float | None = None
        self._last_publish = -math.inf
        self.state = BabelState(f"<babeld {self.address}>")
        self.stats = BabeldStats()
        self.topology: Topology | None = None
        """The last published view (kept while disconnected)."""
        self.neighbours: list[Addr] = []
        """The last published neighbour list."""
        self.connected = False
        self.failures = 0
        """Consecutive failed attempts; the next backoff grows with it."""
        self._stopping = False
        self._wake = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._publish_handle: asyncio.TimerHandle | None = None
        self._dump_done = False
        # babeld absent (the example config off OpenWrt): warn once, then rarely.
        self._quiet = QuietWarning(log, clock=time.monotonic)

    # -- lifecycle ------------------------------------------------------

    async def run(self) -> None:
        """Connect, follow, reconnect with backoff; returns after :meth:`stop`."""
        while not self._stopping:
            try:
                reader, writer = await asyncio.wait_for(self._open(), self.connect_timeout)
            except (OSError, TimeoutError) as exc:
                self.stats.connect_failures += 1
                self._failed(f"cannot connect to babeld at {self.address}: {_describe(exc)}")
                await self._backoff()
                continue
            self.stats.connects += 1
            self._writer = writer
            self.connected = True
            log.log(logging.DEBUG if self._quiet.failures else logging.INFO,
                    "connected to babeld at %s", self.address)
            try:
                await self._session(reader, writer)
                reason = "babeld closed the connection"
            except _SessionFailure as exc:
                self.stats.protocol_errors += 1
                reason = str(exc)
            except (OSError, TimeoutError) as exc:
                reason = f"connection error: {_describe(exc)}"
            finally:
                self.connected = False
                self._writer = None
                self._cancel_publish()
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            self.stats.disconnects += 1
            if self._stopping:
                break
            self._failed(f"babeld at {self.address}: {reason}")
            await self._backoff()

    def stop(self) -> None:
        """Stop :meth:`run`: close the connection and skip any pending backoff."""
        self._stopping = True
        self._wake.set()
        self._cancel_publish()
        if self._writer is not None:
            self._writer.close()

    def next_delay(self) -> float:
        """The backoff before the next attempt, in seconds (jittered; see module docstring)."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** max(self.failures - 1, 0))
        return self.rng.uniform(ceiling / 2, ceiling)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.address.path is not None:
            return await asyncio.open_unix_connection(self.address.path, limit=_LINE_LIMIT)
        return await asyncio.open_connection(self.address.host, self.address.port,
                                             limit=_LINE_LIMIT)

    def _failed(self, reason: str) -> None:
        self.failures += 1
        self.stats.last_error = reason
        self._quiet.failed("%s; retry %d in about %.1fs", reason, self.failures,
                           min(self.backoff_max, self.backoff_initial * 2 ** (self.failures - 1)))

    async def _backoff(self) -> None:
        delay = self.next_delay()
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    # -- one session ----------------------------------------------------

    async def _readline(self, reader: asyncio.StreamReader) -> str | None:
        try:
            raw = await reader.readline()
        except ValueError:  # the stream's limit: a line longer than _LINE_LIMIT
            raise _SessionFailure(f"line longer than {_LINE_LIMIT} bytes: not babeld") from None
        if not raw:
            return None
        self.stats.lines += 1
        return raw.decode("utf-8", errors="replace")

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._dump_done = False
        self.state.reset()
        first = await asyncio.wait_for(self._readline(reader), self.connect_timeout)
        if first is None:
            return
        try:
            events = self.state.feed_line(first)
        except TopologyFormatError as exc:
            self.stats.bad_lines += 1
            raise _SessionFailure(f"bad greeting: {exc}") from None
        if not events or events[0].kind != "header" or events[0].object != "BABEL":
            self.stats.bad_lines += 1
            raise _SessionFailure(f"bad greeting {first.strip()[:60]!r}: expected 'BABEL 1.x'")
        writer.write(b"monitor\n")
        await writer.drain()
        replies = 0  # the greeting's "ok", then monitor's
        bad_run = 0
        while True:
            line = await self._readline(reader)
            if line is None:
                return
            await self._throttle()
            try:
                events = self.state.feed_line(line)
            except TopologyFormatError as exc:
                self.stats.bad_lines += 1
                bad_run += 1
                if self.stats.bad_lines <= 5 or self.stats.bad_lines % 100 == 0:
                    log.warning("skipping malformed babeld line (%d so far): %s",
                                self.stats.bad_lines, exc)
                if bad_run >= self.max_bad_lines:
                    raise _SessionFailure(f"{bad_run} malformed lines in a row") from None
                continue
            bad_run = 0
            for event in events:
                if event.kind == "dropped":
                    self.stats.dropped += 1
                    if self.stats.dropped == 1 or self.stats.dropped % 10000 == 0:
                        log.warning("babeld view full: %d new %ss dropped so far (bounds: "
                                    "%d routes, %d per neighbour, %d others)",
                                    self.stats.dropped, event.object, self.state.max_routes,
                                    self.state.max_routes_per_neighbour,
                                    self.state.max_objects)
                elif event.kind in ("ok", "no", "bad"):
                    replies += 1
                    if event.kind != "ok":
                        log.warning("babeld answered %r %s", event.kind, event.id)
                    if replies == 2:
                        if event.kind != "ok":
                            raise _SessionFailure(f"babeld refused 'monitor' ({event.kind})")
                        self._dump_done = True
                        self.failures = 0  # a healthy session: the backoff starts over
                        self._quiet.cleared("babeld at %s answers again", self.address)
                        self.stats.dumps += 1
                        self._publish()
                elif event.kind in ("add", "change", "flush") and self._dump_done:
                    self._schedule_publish()

    # -- publishing -----------------------------------------------------

    async def _throttle(self) -> None:
        """Take one line from the token bucket; sleep when babeld outruns it.

        A local babeld that floods route lines must not hold the loop at 100%
        CPU: past ``line_burst`` lines, at most ``max_line_rate`` lines a second
        are parsed (the kernel's socket buffer and babeld hold the rest).
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._tokens_at is not None:
            self._tokens = min(float(self.line_burst),
                               self._tokens + (now - self._tokens_at) * self.max_line_rate)
        self._tokens_at = now
        if self._tokens < 1.0:
            # Sleep for a batch (50 ms of lines), not for each line.
            batch = max(1.0, self.max_line_rate * 0.05)
            self.stats.throttled += 1
            await asyncio.sleep((batch - self._tokens) / self.max_line_rate)
            self._tokens, self._tokens_at = batch, loop.time()
        self._tokens -= 1.0

    def _schedule_publish(self) -> None:
        # Coalesce a burst for ``settle`` seconds, and publish at most once per
        # ``min_publish_interval``: each publication rebuilds the whole view.
        if self._publish_handle is None:
            loop = asyncio.get_running_loop()
            delay = max(self.settle, self._last_publish + self.min_publish_interval - loop.time())
            self._publish_handle = loop.call_later(delay, self._publish)

    def _cancel_publish(self) -> None:
        if self._publish_handle is not None:
            self._publish_handle.cancel()
            self._publish_handle = None

    def _publish(self) -> None:
        self._publish_handle = None
        with contextlib.suppress(RuntimeError):  # no running loop: a direct call in a test
            self._last_publish = asyncio.get_running_loop().time()
        try:
            topology = self.state.to_topology()
        except TopologyFormatError as exc:
            log.warning("babeld view not published: %s", exc)
            return
        self.topology = topology
        self.stats.publishes += 1
        self._call(self.on_topology, topology)
        neighbours = [(a, self.discovery_port)
                      for a in self.state.neighbour_addresses(family=self.family)]
        if neighbours != self.neighbours:
            self.neighbours = neighbours
            log.info("babeld neighbours: %s", ", ".join(a for a, _ in neighbours) or "none")
            self._call(self.on_neighbours, list(neighbours))

    def _call(self, callback: Callable | None, value) -> None:
        if callback is None:
            return
        try:
            callback(value)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("babeld adapter callback %r failed", callback)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# -- one-shot, blocking ----------------------------------------------------


def fetch_state(address: str | BabeldAddress, *, timeout: float = 5.0) -> BabelState:
    """Connect, ``dump``, and return the filled :class:`BabelState` (blocking).

    ``timeout`` (seconds) bounds the whole exchange. Raises
    :class:`BabeldUnavailableError` when babeld cannot be reached or stops
    answering, :class:`TopologyFormatError` when it sends something that is not
    its local-interface grammar.
    """
    addr = address if isinstance(address, BabeldAddress) else parse_babeld_address(address)
    if timeout <= 0:
        raise ValueError(f"timeout: expected > 0, got {timeout!r}")
    deadline = time.monotonic() + timeout
    state = BabelState(f"<babeld {addr}>")
    try:
        if addr.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(addr.path)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((addr.host, addr.port), timeout=timeout)
    except OSError as exc:
        raise BabeldUnavailableError(
            f"cannot connect to babeld at {addr}: {_describe(exc)}") from None
    with sock:
        buffer = b""

        def lines():
            nonlocal buffer
            while True:
                newline = buffer.find(b"\n")
                if newline >= 0:
                    line, buffer = buffer[:newline], buffer[newline + 1 :]
                    yield line.decode("utf-8", errors="replace")
                    continue
                if len(buffer) > _LINE_LIMIT:
                    raise TopologyFormatError(state.path, "babel", f"line {state.line_number + 1}",
                                              f"line longer than {_LINE_LIMIT} bytes")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionResetError("babeld closed the connection")
                buffer += chunk

        try:
            stream = lines()
            greeting = next(stream)
            try:
                first = state.feed_line(greeting)
            except TopologyFormatError:
                first = []
            if not first or first[0].object != "BABEL":
                raise TopologyFormatError(state.path, "babel", "line 1",
                                          f"expected the greeting 'BABEL 1.x', got "
                                          f"{greeting[:60]!r}")
            sent = False
            for line in stream:
                events = state.feed_line(line)
                if any(e.kind in ("ok", "no", "bad") for e in events):
                    if sent:
                        if events[0].kind != "ok":
                            raise BabeldUnavailableError(
                                f"babeld at {addr} refused 'dump' ({events[0].kind})")
                        break
                    sock.sendall(b"dump\n")
                    sent = True
            with contextlib.suppress(OSError):
                sock.sendall(b"quit\n")
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, BabeldUnavailableError):
                raise
            raise BabeldUnavailableError(
                f"babeld at {addr}: {_describe(exc)} before the dump was complete") from None
    return state


def fetch_topology(address: str | BabeldAddress, *, timeout: float = 5.0) -> Topology:
    """One babeld's current view as a :class:`Topology` (see :func:`fetch_state`)."""
    return fetch_state(address, timeout=timeout).to_topology()
