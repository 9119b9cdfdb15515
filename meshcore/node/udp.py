"""The asyncio UDP driver: real sockets around a core that speaks discovery's datagrams.

Theory of operation
-------------------
The loop is the one host loop (:class:`meshcore.host.HostLoop`, aioquic's
``asyncio/protocol.py``): every input (a datagram, a timer tick, a new
neighbour list, or any event the daemon feeds through :meth:`UdpDriver.feed`)
goes into the sans-I/O core with ``now = loop.time()``; the effects it
returns are applied (datagrams sent here, everything else handed to
``on_event``); then the one timer is re-armed at ``core.get_timer()`` with
``loop.call_at``. The core is a :class:`~meshcore.net.discovery.Discovery`
or a whole :class:`~meshcore.router.Router`; it never sees a socket or the
clock, so the same object runs here and in the simulator.

Sockets (IPv4):

* the **unicast socket**, bound to ``bind_host:port`` (``0.0.0.0`` by
  default), sends everything, unicast and multicast, so that a peer's reply
  to a beacon's source address comes back to it. ``IP_MULTICAST_TTL`` is 1
  (discovery never leaves the segment: every router would re-send it),
  ``IP_MULTICAST_LOOP`` is off (our own beacons are no news), and
  ``IP_MULTICAST_ALL`` is off so this socket never receives group traffic;
* the **multicast socket**, bound to ``group:port`` with ``SO_REUSEADDR`` so
  that several processes on one host can share it, joins the group on every
  configured interface (``IP_ADD_MEMBERSHIP`` with the interface index; the
  system's default interface when none is configured). Whatever arrives on it
  was sent to the group.

Both sockets ask for ``IP_PKTINFO``, which names the arrival interface of
each datagram: the core gets it as ``interface`` (the configured name for
multicast, the kernel's name for unicast) and ``via_multicast`` says which
socket it came from. A multicast beacon goes out on one interface by
``sendmsg`` with an ``IP_PKTINFO`` control message carrying that
interface's index, which Linux uses as the output interface for the one
datagram (``ip_cmsg_send``; no shared ``IP_MULTICAST_IF`` state to race on).
The message's ``ipi_spec_dst`` replaces the socket's bound source address,
so it carries the bound address when there is one; with ``0.0.0.0`` the
kernel picks the interface's own address, the right source on a router with
several interfaces.

Datagrams the kernel drops before they are read (a receive buffer that
filled while the loop was busy) are counted too: both sockets set
``SO_RXQ_OVFL``, so each datagram read carries the socket's drop count, and
``UdpStats.kernel_drops`` adds what is new.

Failures are counted in :class:`UdpStats` and logged (the first few, then
one in a hundred), never raised: a send that fails with ``ENETUNREACH``,
``EPERM`` (a firewall), ``ENODEV`` or ``ENXIO`` (interface gone) is a lost
datagram, which the protocol already tolerates; a full socket buffer
(``EAGAIN``) drops the datagram too. Interfaces that are missing or cannot
join are retried every ``rejoin_interval`` seconds (an OpenWrt bridge may
come up after the daemon); the warning is logged once, then again after 1,
2, 4, ... minutes (at most hourly) while it persists
(:class:`~meshcore.node._quiet.QuietWarning`). Malformed datagrams are the core's business: it
counts them in ``core.stats.dropped_*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

from meshcore.core import Core
from meshcore.host import HostLoop
from meshcore.net.discovery import (
    Addr,
    DaemonNeighbours,
    Datagram,
    Discovery,
    DiscoverySettings,
    SendMulticast,
    SendUnicast,
    Start,
)
from meshcore.node._quiet import QuietWarning

__all__ = ["UdpDriver", "UdpStats"]

log = logging.getLogger("meshcore.node.udp")

# Linux values; the socket module lacks some of them.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
_PKTINFO = struct.Struct("@i4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
_MREQN = struct.Struct("@4s4si")  # struct ip_mreqn: multiaddr, address, ifindex
_OVFL = struct.Struct("@I")  # SO_RXQ_OVFL: the socket's drop count (uint32)
_RECV_SIZE = 65535
_CMSG_SIZE = socket.CMSG_SPACE(_PKTINFO.size) + socket.CMSG_SPACE(_OVFL.size)
_BATCH = 64  # datagrams read per wake-up before yielding to the loop


@dataclass(slots=True)
class UdpStats:
    """Socket-level counters of one driver (the core keeps the protocol's)."""

    received: int = 0
    """Datagrams read from either socket."""
    sent: int = 0
    """Datagrams handed to the kernel."""
    send_errors: int = 0
    """Sends that failed (unreachable, refused by a firewall, interface gone)."""
    send_dropped_busy: int = 0
    """Sends dropped because the socket buffer was full."""
    receive_errors: int = 0
    """Errors reading a socket."""
    kernel_drops: int = 0
    """Datagrams the kernel dropped before we read them (receive buffer full),
    both sockets, as ``SO_RXQ_OVFL`` reports them with the next datagram read."""
    join_failures: int = 0
    """Failed attempts to join the group on an interface (missing, down)."""
    timer_runs: int = 0
    """Timer callbacks run."""

    def as_dict(self) -> dict[str, int]:
        """Every counter by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class UdpDriver:
    """Run one core on real UDP sockets, through the one host loop.

    ``core`` is a :class:`~meshcore.net.discovery.Discovery` (whose settings
    give the port, group and interfaces) or any core that handles
    discovery's events, with ``settings`` given. ``bind_host`` is the unicast
    socket's address (``"0.0.0.0"``; a loopback address such as
    ``"127.0.0.7"`` lets many nodes share one host). ``on_event`` receives
    every effect that is not a datagram (peer events, and whatever else the
    core returns). ``multicast_loop`` turns ``IP_MULTICAST_LOOP`` on (only
    useful to test several nodes on one host). Use :meth:`start`, then
    :meth:`close`.
    """

    def __init__(
        self,
        core: Core,
        *,
        settings: DiscoverySettings | None = None,
        bind_host: str = "0.0.0.0",
        on_event: Callable[[object], None] | None = None,
        multicast_loop: bool = False,
        rejoin_interval: float = 5.0,
    ) -> None:
        if settings is None:
            if not isinstance(core, Discovery):
                raise TypeError(
                    f"core: expected Discovery (or give settings=), got {type(core).__name__}")
            settings = core.settings
        if not isinstance(core, Core):
            raise TypeError(f"core: expected a core (handle/handle_timer/get_timer), "
                            f"got {type(core).__name__}")
        if rejoin_interval <= 0:
            raise ValueError(f"rejoin_interval: expected > 0, got {rejoin_interval!r}")
        self.core = core
        self.settings = settings
        self.bind_host = bind_host
        self.on_event = on_event
        self.multicast_loop = multicast_loop
        self.rejoin_interval = float(rejoin_interval)
        self.stats = UdpStats()
        self.port = settings.port
        self.group = settings.multicast_group
        self.interfaces: tuple[str, ...] = settings.interfaces if settings.multicast else ()
        self.multicast = settings.multicast
        self.host: HostLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._address: Addr | None = None
        self._source = b"\0\0\0\0"
        self._ucast: socket.socket | None = None
        self._mcast: socket.socket | None = None
        self._rejoin: asyncio.TimerHandle | None = None
        self._joined: dict[str, int] = {}  # interface name -> ifindex joined
        self._missing: set[str] = set()
        self._closed = False
        self._logged: dict[str, int] = {}
        self._quiet: dict[str, QuietWarning] = {}  # interface -> its join warnings
        self._drops: dict[bool, int] = {False: 0, True: 0}  # kernel count per socket
        self.kernel_drops_supported = False
        """Whether the kernel reports receive drops (``SO_RXQ_OVFL``, Linux >= 2.6.33)."""

    # -- lifecycle -----------------------------------------------------------

    @property
    def address(self) -> Addr:
        """The unicast socket's bound ``(host, port)`` (kept after :meth:`close`)."""
        if self._address is None:
            raise RuntimeError("driver not started")
        return self._address

    async def start(self) -> None:
        """Open the sockets, join the group, start the core (announce-on-join burst).

        Raises OSError when the unicast port cannot be bound (in use, no
        permission): without it the node cannot run. Joining interfaces never
        raises (see the module docstring).
        """
        if self._loop is not None:
            raise RuntimeError("driver already started")
        self._loop = asyncio.get_running_loop()
        self._ucast = self._open_unicast()
        host, port = self._ucast.getsockname()[:2]
        self._address = (host, port)
        # IP_PKTINFO's spec_dst replaces the socket's bound source address:
        # keep a specific bind; 0.0.0.0 lets the kernel use the interface's own.
        self._source = socket.inet_aton(host)
        try:
            if self.multicast:
                self._mcast = self._open_multicast()
                self._join_all()
        except OSError:
            self._ucast.close()
            raise
        self._loop.add_reader(self._ucast.fileno(), self._on_readable, self._ucast, False)
        if self._mcast is not None:
            self._loop.add_reader(self._mcast.fileno(), self._on_readable, self._mcast, True)
        self.host = HostLoop(self.core, clock=self._loop.time, call_at=self._call_at,
                             apply=self._apply_one)
        self.host.feed(Start())

    def _call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        assert self._loop is not None
        return self._loop.call_at(when, self._on_timer, callback)

    def _on_timer(self, callback: Callable[[], None]) -> None:
        if not self._closed:
            self.stats.timer_runs += 1
            callback()

    def feed(self, event: object) -> list[object]:
        """Hand any event to the core through the host loop; returns its effects."""
        if self.host is None or self._closed:
            return []
        return self.host.feed(event)

    def close(self) -> None:
        """Stop reading, cancel the timers, close the sockets. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.host is not None:
            self.host.stop()
        if self._rejoin is not None:
            self._rejoin.cancel()
        for sock in (self._ucast, self._mcast):
            if sock is None:
                continue
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(sock.fileno())
            sock.close()

    def set_daemon_neighbours(self, addrs: Iterable[Addr]) -> None:
        """Hand the routing daemon's neighbours to the core (``DaemonNeighbours``)."""
        self.feed(DaemonNeighbours(tuple(addrs)))

    # -- sockets -----------------------------------------------------------------

    def _open_unicast(self) -> socket.socket:
        self._check_port_free()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP,
                            1 if self.multicast_loop else 0)
            with contextlib.suppress(OSError):  # Linux only; elsewhere harmless
                sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            self._ask_drops(sock)
            sock.bind((self.bind_host, self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def _check_port_free(self) -> None:
        # The unicast socket needs SO_REUSEADDR to coexist with our own
        # multicast socket on group:port, but on Linux that option also lets
        # a second node bind the same address and port (it then takes the
        # first one's unicast replies, silently). A bind without the option
        # fails with EADDRINUSE while any other socket holds the port on an
        # overlapping address, so try one first and let its OSError out.
        if self.port == 0:
            return
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((self.bind_host, self.port))
        finally:
            probe.close()

    def _open_multicast(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            self._ask_drops(sock)
            # Bound to the group: only datagrams sent to it arrive here.
            sock.bind((self.group, self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def _ask_drops(self, sock: socket.socket) -> None:
        # A full receive buffer drops datagrams in the kernel, unseen by any
        # counter of ours; SO_RXQ_OVFL attaches the socket's drop count to
        # every datagram read (socket(7)).
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        except OSError:
            return
        self.kernel_drops_supported = True

    def _join_all(self) -> None:
        if self._mcast is None or self._closed:
            return
        group = socket.inet_aton(self.group)
        names = self.interfaces or ("",)
        for name in names:
            try:
                index = socket.if_nametoindex(name) if name else 0
            except OSError:
                self._missing.add(name)
                self.stats.join_failures += 1
                self._quiet_for(name).failed("interface %r not found; retrying every %.0fs",
                                             name, self.rejoin_interval)
                continue
            if self._joined.get(name) == index:
                continue
            mreq = _MREQN.pack(group, b"\0\0\0\0", index)
            try:
                self._mcast.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:  # EADDRINUSE: already a member
                    self._missing.add(name)
                    self.stats.join_failures += 1
                    self._quiet_for(name).failed("cannot join %s on %r: %s", self.group,
                                                 name or "default", exc.strerror or exc)
                    continue
            self._joined[name] = index
            self._missing.discard(name)
            quiet = self._quiet.get(name)
            if quiet is not None and quiet.failures:
                quiet.cleared("joined %s:%d on %s", self.group, self.port,
                              name or "default interface")
            else:
                log.info("joined %s:%d on %s", self.group, self.port, name or "default interface")
        if self._loop is not None:
            if self._rejoin is not None:
                self._rejoin.cancel()
            self._rejoin = self._loop.call_later(self.rejoin_interval, self._rejoin_tick)

    def _quiet_for(self, name: str) -> QuietWarning:
        quiet = self._quiet.get(name)
        if quiet is None:
            clock = self._loop.time if self._loop is not None else time.monotonic
            quiet = self._quiet[name] = QuietWarning(log, clock=clock)
        return quiet

    def _rejoin_tick(self) -> None:
        # Interfaces can be missing at boot or re-created (a new ifindex):
        # re-resolve every name and join again where needed.
        for name, index in list(self._joined.items()):
            try:
                current = socket.if_nametoindex(name) if name else 0
            except OSError:
                current = -1
            if current != index:
                del self._joined[name]
        self._join_all()

    # -- receiving -----------------------------------------------------------------

    def _on_readable(self, sock: socket.socket, via_multicast: bool) -> None:
        host = self.host
        if host is None or self._closed:
            return
        for _ in range(_BATCH):
            try:
                data, ancdata, _flags, addr = sock.recvmsg(_RECV_SIZE, _CMSG_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.stats.receive_errors += 1
                self._log("recv", "receive error: %s", exc.strerror or exc)
                break
            self.stats.received += 1
            self._count_drops(ancdata, via_multicast)
            interface = self._arrival_interface(ancdata, via_multicast)
            host.feed(Datagram(data, (addr[0], addr[1]), interface, via_multicast))

    def _count_drops(self, ancdata, via_multicast: bool) -> None:
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(payload) >= _OVFL.size:
                total = _OVFL.unpack_from(payload)[0]
                # The kernel's count since the socket opened, modulo 2**32.
                new = (total - self._drops[via_multicast]) & 0xFFFFFFFF
                if new:
                    self._drops[via_multicast] = total
                    self.stats.kernel_drops += new
                    self._log("drops", "the kernel dropped %d datagrams (receive buffer full)",
                              new)
                return

    def _arrival_interface(self, ancdata, via_multicast: bool) -> str | None:
        for level, kind, payload in ancdata:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(payload) >= _PKTINFO.size:
                index = _PKTINFO.unpack_from(payload)[0]
                for name, joined in self._joined.items():
                    if joined == index and name:
                        return name
                if via_multicast and (not self.interfaces):
                    return ""  # the core's "default interface"
                try:
                    return socket.if_indextoname(index)
                except OSError:
                    return None
        return "" if via_multicast and not self.interfaces else None

    # -- effects ------------------------------------------------------------------

    def _apply_one(self, effect: object) -> None:
        if isinstance(effect, SendUnicast):
            self._send_unicast(effect.addr, effect.data)
        elif isinstance(effect, SendMulticast):
            self._send_multicast(effect.interface, effect.data)
        elif self.on_event is not None:
            try:
                self.on_event(effect)
            except Exception:
                log.exception("effect handler failed on %r", effect)

    def _send_unicast(self, addr: Addr, data: bytes) -> None:
        sock = self._ucast
        if sock is None:
            return
        try:
            sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.stats.send_dropped_busy += 1
            return
        except (OSError, UnicodeError, ValueError, TypeError) as exc:
            self.stats.send_errors += 1
            self._log("send", "send to %s:%s failed: %s", addr[0], addr[1],
                      getattr(exc, "strerror", None) or exc)
            return
        self.stats.sent += 1

    def _send_multicast(self, interface: str, data: bytes) -> None:
        sock = self._ucast
        if sock is None:
            return
        target = (self.group, self.port)
        try:
            if interface:
                index = self._joined.get(interface) or socket.if_nametoindex(interface)
                info = _PKTINFO.pack(index, self._source, b"\0\0\0\0")
                sock.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO, info)], 0, target)
            else:
                sock.sendto(data, target)
        except (BlockingIOError, InterruptedError):
            self.stats.send_dropped_busy += 1
            return
        except OSError as exc:
            self.stats.send_errors += 1
            if interface and exc.errno in (errno.ENODEV, errno.ENXIO, errno.ENOENT):
                self._joined.pop(interface, None)  # gone: the rejoin tick looks again
            if interface in self._missing:
                # Already warned about (quietly) by the join: one warning, not two streams.
                self._quiet_for(interface).failed("multicast on %r failed: %s", interface,
                                                  exc.strerror or exc)
            else:
                self._log("send", "multicast on %s failed: %s",
                          interface or "default interface", exc.strerror or exc)
            return
        self.stats.sent += 1

    def _log(self, kind: str, message: str, *args) -> None:
        # The first five of a kind, then one in a hundred: a dead link must not
        # flood a router's small log.
        count = self._logged.get(kind, 0) + 1
        self._logged[kind] = count
        if count <= 5 or count % 100 == 0:
            log.warning(message + (f" ({count} so far)" if count > 5 else ""), *args)
