"""The UDP driver on real sockets: unicast and multicast discovery on loopback, errors."""

from __future__ import annotations

import asyncio
import logging
import random
import socket

import pytest

from meshcore.net.discovery import Discovery, DiscoverySettings, PeerJoined
from meshcore.node.udp import UdpDriver

KEY = b"community-key-16"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _core(index: int, *, port: int, now: float, **settings) -> Discovery:
    options = dict(community_key=KEY, port=port, beacon_interval=1.0)
    options.update(settings)
    return Discovery(DiscoverySettings(**options), node_id=f"{index:016x}",
                     service_port=8000 + index, rng=random.Random(index), now=now)


async def _until(predicate, timeout: float) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
    return loop.time() - start


def _knows_all(drivers) -> bool:
    ids = {d.core.node_id for d in drivers}
    return all({p.node_id for p in d.core.peers if p.state == "alive"} == ids - {d.core.node_id}
               for d in drivers)


def test_three_drivers_discover_each_other_by_unicast():
    async def main():
        loop = asyncio.get_running_loop()
        ports = [_free_udp_port() for _ in range(3)]
        events: list[tuple[int, object]] = []
        drivers = []
        for i, port in enumerate(ports):
            core = _core(i, port=port, now=loop.time(), multicast=False)
            driver = UdpDriver(core, bind_host="127.0.0.1",
                               on_event=lambda e, i=i: events.append((i, e)))
            await driver.start()
            drivers.append(driver)
        try:
            for i, driver in enumerate(drivers):
                driver.set_daemon_neighbours(
                    [("127.0.0.1", p) for j, p in enumerate(ports) if j != i])
            elapsed = await _until(lambda: _knows_all(drivers), 3.0)
        finally:
            for driver in drivers:
                driver.close()
        return drivers, events, elapsed

    drivers, events, elapsed = asyncio.run(main())
    assert elapsed < 1.0  # probes go out at once, no waiting for a beacon interval
    joined = {(i, e.peer.node_id) for i, e in events if isinstance(e, PeerJoined)}
    assert joined == {(i, f"{j:016x}") for i in range(3) for j in range(3) if i != j}
    for driver in drivers:
        assert driver.stats.sent > 0 and driver.stats.received > 0
        assert driver.stats.send_errors == 0
        assert driver.address[0] == "127.0.0.1"
        for peer in driver.core.peers:
            assert peer.addr[0] == "127.0.0.1" and not peer.via_multicast


def test_multicast_on_loopback_with_a_late_joiner():
    # IP_MULTICAST_LOOP on lets several nodes share one host; each binds its
    # own 127.0.0.x so unicast replies reach the right one.
    async def main():
        loop = asyncio.get_running_loop()
        port = _free_udp_port()
        drivers = []

        async def add(i):
            core = _core(i, port=port, now=loop.time(), interfaces=("lo",))
            driver = UdpDriver(core, bind_host=f"127.0.0.{i + 2}", multicast_loop=True)
            await driver.start()
            drivers.append(driver)

        try:
            for i in range(3):
                await add(i)
            await _until(lambda: _knows_all(drivers), 3.0)
            await add(3)
            late = await _until(lambda: _knows_all(drivers), 3.0)
        finally:
            for driver in drivers:
                driver.close()
        return drivers, late

    drivers, late = asyncio.run(main())
    assert late < 1.0  # the announce-on-join burst plus replies, not a beacon interval
    for driver in drivers:
        assert driver.stats.join_failures == 0
        for peer in driver.core.peers:
            if peer.node_id == f"{3:016x}":  # everyone heard the late joiner's burst
                assert peer.via_multicast and peer.hops == 1
            if peer.hops == 1:
                assert peer.interface == "lo"
            # The beacon's source is the sender's bound address, so replies reach it.
            assert peer.addr[0] == f"127.0.0.{int(peer.node_id, 16) + 2}"


def test_garbage_datagrams_are_counted_drops():
    async def main():
        loop = asyncio.get_running_loop()
        port = _free_udp_port()
        driver = UdpDriver(_core(0, port=port, now=loop.time(), multicast=False),
                           bind_host="127.0.0.1")
        await driver.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for payload in (b"", b"\x00" * 3, b"garbage" * 50, bytes(range(256)) * 4):
                    s.sendto(payload, ("127.0.0.1", port))
            await _until(lambda: driver.stats.received >= 4, 2.0)
        finally:
            driver.close()
        return driver

    driver = asyncio.run(main())
    assert driver.core.stats.received == 4
    assert driver.core.stats.dropped == 4
    assert driver.core.stats.accepted == 0
    assert len(driver.core.peers) == 0


def test_send_errors_are_counted_not_raised(caplog):
    async def main():
        loop = asyncio.get_running_loop()
        port = _free_udp_port()
        driver = UdpDriver(_core(0, port=port, now=loop.time(), interfaces=("lo",)),
                           bind_host="127.0.0.1", multicast_loop=True)
        await driver.start()
        try:
            for _ in range(7):
                driver._send_unicast(("fe80::1%nowhere", 9), b"x")  # not IPv4
            driver._send_multicast("nosuchif0", b"x")
        finally:
            driver.close()
        return driver

    with caplog.at_level(logging.WARNING, logger="meshcore.node.udp"):
        driver = asyncio.run(main())
    assert driver.stats.send_errors == 8
    warnings = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(warnings) == 5  # the first five, then one in a hundred


def test_missing_interface_is_retried_not_fatal():
    async def main():
        loop = asyncio.get_running_loop()
        port = _free_udp_port()
        core = _core(0, port=port, now=loop.time(), interfaces=("lo", "nosuchif0"))
        driver = UdpDriver(core, bind_host="127.0.0.1", rejoin_interval=0.05,
                           multicast_loop=True)
        await driver.start()
        try:
            await _until(lambda: driver.stats.join_failures >= 3, 2.0)
            assert driver.stats.send_errors >= 1  # the burst on the missing interface
        finally:
            driver.close()
        return driver

    driver = asyncio.run(main())
    assert driver._joined == {"lo": socket.if_nametoindex("lo")}


def test_port_in_use_raises_at_start():
    async def main():
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
            holder.bind(("127.0.0.1", 0))
            port = holder.getsockname()[1]
            driver = UdpDriver(_core(0, port=port, now=loop.time(), multicast=False),
                               bind_host="127.0.0.1")
            with pytest.raises(OSError):
                await driver.start()

    asyncio.run(main())


def test_event_handler_errors_are_logged(caplog):
    def boom(event):
        raise RuntimeError("handler bug")

    async def main():
        loop = asyncio.get_running_loop()
        ports = [_free_udp_port() for _ in range(2)]
        drivers = []
        for i, port in enumerate(ports):
            driver = UdpDriver(_core(i, port=port, now=loop.time(), multicast=False),
                               bind_host="127.0.0.1", on_event=boom)
            await driver.start()
            drivers.append(driver)
        drivers[0].set_daemon_neighbours([("127.0.0.1", ports[1])])
        try:
            await _until(lambda: _knows_all(drivers), 2.0)
        finally:
            for driver in drivers:
                driver.close()

    with caplog.at_level(logging.ERROR, logger="meshcore.node.udp"):
        asyncio.run(main())
    assert any("handler failed" in r.getMessage() for r in caplog.records)


def test_lifecycle_errors():
    with pytest.raises(TypeError, match="core"):
        UdpDriver(object())  # type: ignore[arg-type]
    core = _core(0, port=_free_udp_port(), now=0.0, multicast=False)
    with pytest.raises(ValueError, match="rejoin_interval"):
        UdpDriver(core, rejoin_interval=0)
    driver = UdpDriver(core, bind_host="127.0.0.1")
    with pytest.raises(RuntimeError, match="not started"):
        _ = driver.address
    driver.set_daemon_neighbours([("127.0.0.1", 1)])  # ignored before start

    async def main():
        await driver.start()
        with pytest.raises(RuntimeError, match="already started"):
            await driver.start()
        driver.close()
        driver.close()
        driver.set_daemon_neighbours([("127.0.0.1", 1)])  # ignored after close

    asyncio.run(main())
    assert driver.stats.as_dict()["sent"] == 0


class _FailingSocket:
    """Stands in for a socket whose every call fails with ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def fileno(self) -> int:
        return -1

    def sendto(self, *args):
        raise self.exc

    def sendmsg(self, *args):
        raise self.exc

    def recvmsg(self, *args):
        raise self.exc

    def close(self) -> None:
        pass


def test_busy_gone_and_failing_sockets_are_counted():
    import errno

    async def main():
        loop = asyncio.get_running_loop()
        driver = UdpDriver(_core(0, port=_free_udp_port(), now=loop.time(), interfaces=("lo",)),
                           bind_host="127.0.0.1", multicast_loop=True)
        await driver.start()
        real = driver._ucast
        try:
            driver._ucast = _FailingSocket(BlockingIOError())
            driver._send_unicast(("127.0.0.1", 9), b"x")
            driver._send_multicast("lo", b"x")
            driver._ucast = _FailingSocket(OSError(errno.ENODEV, "No such device"))
            driver._send_multicast("lo", b"x")
            driver._send_multicast("", b"x")
            driver._on_readable(_FailingSocket(OSError(errno.EIO, "I/O error")), False)
            driver._on_readable(_FailingSocket(BlockingIOError()), True)
        finally:
            driver._ucast = real
            driver.close()
        return driver

    driver = asyncio.run(main())
    assert driver.stats.send_dropped_busy == 2
    assert driver.stats.send_errors == 2
    assert "lo" not in driver._joined  # gone: the rejoin tick will look it up again
    assert driver.stats.receive_errors == 1


def test_rejoin_follows_renamed_and_vanished_interfaces():
    async def main():
        loop = asyncio.get_running_loop()
        driver = UdpDriver(_core(0, port=_free_udp_port(), now=loop.time(), interfaces=("lo",)),
                           bind_host="127.0.0.1", multicast_loop=True)
        await driver.start()
        try:
            driver._joined["lo"] = 9999  # as if lo had been re-created with a new index
            driver._joined["vanished0"] = 5
            driver._rejoin_tick()
        finally:
            driver.close()
        driver._join_all()  # after close: nothing happens
        return driver

    driver = asyncio.run(main())
    assert driver._joined == {"lo": socket.if_nametoindex("lo")}


def test_arrival_interface_from_pktinfo():
    import struct

    core = _core(0, port=_free_udp_port(), now=0.0, multicast=True)
    driver = UdpDriver(core)  # no interfaces: the default one
    lo = socket.if_nametoindex("lo")
    info = struct.pack("@i4s4s", lo, b"\0" * 4, b"\0" * 4)
    cmsg = [(socket.IPPROTO_IP, 8, info)]
    assert driver._arrival_interface(cmsg, True) == ""  # the core's default interface
    assert driver._arrival_interface(cmsg, False) == "lo"
    assert driver._arrival_interface([], True) == ""
    assert driver._arrival_interface([], False) is None
    bad = [(socket.IPPROTO_IP, 8, struct.pack("@i4s4s", 999999, b"\0" * 4, b"\0" * 4))]
    assert driver._arrival_interface(bad, False) is None
