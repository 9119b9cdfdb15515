"""The babeld adapter against a fake babeld: replay, reconnects with backoff, garbage, one-shot."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from pathlib import Path

import pytest

from meshcore.errors import MeshcoreError, TopologyFormatError
from meshcore.node.babeld import (
    BabeldAddress,
    BabeldClient,
    BabeldUnavailableError,
    fetch_state,
    fetch_topology,
    parse_babeld_address,
)

HERE = Path(__file__).resolve().parent
R3_DUMP = HERE / "data" / "babel" / "babeld-1.12-r3-dump.txt"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "topologies" / "babel"
SAMPLE = SHARED / "babelweb2-babeld-1.8-dump-monitor.txt"

R2, R3 = "02:00:00:00:00:00:00:02", "02:00:00:00:00:00:00:03"
GREETING, TABLE = None, None


def _split_dump(text: str) -> tuple[list[str], list[str]]:
    """(greeting lines up to its ok, object lines of the dump) of a recorded ``dump``."""
    lines = text.splitlines()
    first_ok = lines.index("ok")
    greeting = lines[: first_ok + 1]
    table = [ln for ln in lines[first_ok + 1 :] if ln != "ok"]
    return greeting, table


GREETING, TABLE = _split_dump(R3_DUMP.read_text())
NEIGHBOUR = next(ln for ln in TABLE if ln.startswith("add neighbour"))


class FakeBabeld:
    """A TCP server that plays one scripted session per connection.

    Each session is a list of steps: a ``str`` line to send, ``("wait",
    "monitor")`` to read a command and record it, ``("sleep", s)``,
    ``"<close>"`` to hang up, ``("raw", bytes)``. After the last script the
    last one repeats.
    """

    def __init__(self, sessions: list[list]) -> None:
        self.sessions = sessions
        self.commands: list[str] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self, *, path: str | None = None) -> str:
        if path:
            self.server = await asyncio.start_unix_server(self._handle, path)
            return path
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
            # An unclosed writer outlives the loop and warns when collected.
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)

    async def _handle(self, reader, writer) -> None:
        self.writers.append(writer)
        script = self.sessions[min(self.connections, len(self.sessions) - 1)]
        self.connections += 1
        try:
            for step in script:
                if step == "<close>":
                    break
                if isinstance(step, tuple) and step[0] == "wait":
                    line = await reader.readline()
                    self.commands.append(line.decode().strip())
                elif isinstance(step, tuple) and step[0] == "sleep":
                    await asyncio.sleep(step[1])
                elif isinstance(step, tuple) and step[0] == "raw":
                    writer.write(step[1])
                else:
                    writer.write(step.encode() + b"\n")
                await writer.drain()
            else:
                await reader.read()  # stay until the client hangs up
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def good_session(*after: object) -> list:
    return [*GREETING, ("wait", "monitor"), *TABLE, "ok", *after]


def _client(address: str, **kw) -> tuple[BabeldClient, list, list]:
    topologies, neighbours = [], []
    defaults = dict(discovery_port=4242, on_topology=topologies.append,
                    on_neighbours=neighbours.append, rng=random.Random(1),
                    backoff_initial=0.01, backoff_max=0.05, connect_timeout=1.0, settle=0.01)
    defaults.update(kw)
    return BabeldClient(address, **defaults), topologies, neighbours


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def _run_until(client: BabeldClient, predicate, timeout: float = 5.0) -> None:
    task = asyncio.create_task(client.run())
    try:
        await _until(predicate, timeout)
    finally:
        client.stop()
        await asyncio.wait_for(task, 2)


# -- following a live babeld -------------------------------------------------


def test_dump_is_published_then_changes_are_coalesced():
    changed = NEIGHBOUR.replace("add ", "change ", 1).replace("cost 96", "cost 65535")

    async def main():
        fake = FakeBabeld([good_session(("sleep", 0.05), changed, changed)])
        address = await fake.start()
        client, topologies, neighbours = _client(address)
        await _run_until(client, lambda: len(topologies) >= 2)
        await fake.close()
        return fake, client, topologies, neighbours

    fake, client, topologies, neighbours = asyncio.run(main())
    assert fake.commands == ["monitor"]  # monitor dumps the table itself
    first, second = topologies[:2]
    assert first.router_id == R3
    assert first.link(R3, R2).cost == 96 / 256
    assert second.link(R3, R2).broken
    assert neighbours == [[("10.99.23.2", 4242)], []]
    assert client.stats.dumps == 1
    assert client.stats.publishes == 2  # two change lines, one publication
    assert client.stats.bad_lines == 0
    assert client.topology is topologies[-1]


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared sample {SAMPLE} is absent")
def test_replays_the_babelweb2_session():
    lines = SAMPLE.read_text().splitlines()
    first_ok = lines.index("ok")
    session = [*lines[: first_ok + 1], ("wait", "monitor"), *lines[first_ok + 1 :]]

    async def main():
        fake = FakeBabeld([session])
        address = await fake.start()
        client, topologies, _ = _client(address)
        await _run_until(client, lambda: client.stats.lines >= len(lines)
                         and client.stats.publishes >= 2)
        await fake.close()
        return client, topologies

    client, topologies = asyncio.run(main())
    assert client.state.neighbours()[0].reach == 0xFFFE
    assert topologies[-1].router_id == "02:26:2d:ff:fe:91:ca:93"


def test_unix_socket(tmp_path):
    path = str(tmp_path / "babeld.sock")

    async def main():
        fake = FakeBabeld([good_session()])
        await fake.start(path=path)
        client, topologies, _ = _client(f"unix:{path}")
        await _run_until(client, lambda: topologies)
        await fake.close()
        return topologies

    assert asyncio.run(main())[0].router_id == R3


def test_server_closing_mid_stream_reconnects_and_starts_fresh():
    partial = [*GREETING, ("wait", "monitor"), *TABLE[:3], "<close>"]
    second_view = [ln for ln in TABLE if "id 02:00:00:00:00:00:00:01" not in ln]  # r1 gone

    async def main():
        fake = FakeBabeld([good_session("<close>"), partial,
                           [*GREETING, ("wait", "monitor"), *second_view, "ok"]])
        address = await fake.start()
        client, topologies, _ = _client(address)
        await _run_until(client, lambda: len(topologies) >= 2)
        await fake.close()
        return fake, client, topologies

    fake, client, topologies = asyncio.run(main())
    assert fake.connections == 3
    assert client.stats.connects == 3
    assert client.stats.disconnects >= 2
    assert client.stats.dumps == 2  # the partial session never completed its dump
    assert "02:00:00:00:00:00:00:01" in topologies[0].nodes
    assert "02:00:00:00:00:00:00:01" not in topologies[1].nodes  # state was reset
    assert "closed" in client.stats.last_error


def test_garbage_greeting_is_a_protocol_error_and_retried():
    async def main():
        fake = FakeBabeld([["HTTP/1.1 200 OK"], ["<close>"], good_session()])
        address = await fake.start()
        client, topologies, _ = _client(address)
        await _run_until(client, lambda: topologies)
        await fake.close()
        return client

    client = asyncio.run(main())
    assert client.stats.protocol_errors == 1
    assert client.stats.bad_lines == 1
    assert client.stats.connects == 3
    assert client.failures == 0  # reset after the healthy session's dump


def test_single_bad_lines_are_skipped_but_a_run_of_them_drops_the_session():
    noise = ["add neighbour 1 address nowhere", "\x00\x01garbage", "add gizmo"]

    async def main():
        fake = FakeBabeld([
            [*GREETING, ("wait", "monitor"), noise[0], *TABLE, noise[1], "ok", *noise * 3],
            good_session(),
        ])
        address = await fake.start()
        client, topologies, _ = _client(address, max_bad_lines=5)
        await _run_until(client, lambda: len(topologies) >= 2)
        await fake.close()
        return client, topologies

    client, topologies = asyncio.run(main())
    assert client.stats.bad_lines == 2 + 5
    assert client.stats.protocol_errors == 1
    assert "malformed lines in a row" in client.stats.last_error
    assert topologies[0].link(R3, R2).cost == 96 / 256  # the good lines still counted


def test_overlong_line_drops_the_session():
    async def main():
        fake = FakeBabeld([[*GREETING, ("wait", "monitor"), ("raw", b"x" * 40000)],
                           good_session()])
        address = await fake.start()
        client, topologies, _ = _client(address)
        await _run_until(client, lambda: topologies)
        await fake.close()
        return client

    client = asyncio.run(main())
    assert client.stats.protocol_errors == 1
    assert "longer than" in client.stats.last_error


def test_refused_monitor_is_a_protocol_error():
    async def main():
        fake = FakeBabeld([[*GREETING, ("wait", "monitor"), "no monitoring for you"],
                           good_session()])
        address = await fake.start()
        client, topologies, _ = _client(address)
        await _run_until(client, lambda: topologies)
        await fake.close()
        return client

    client = asyncio.run(main())
    assert "refused 'monitor'" in client.stats.last_error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connections_back_off_exponentially_with_jitter():
    port = _free_port()

    async def main():
        client, _, _ = _client(f"127.0.0.1:{port}", backoff_initial=0.01, backoff_max=0.04)
        await _run_until(client, lambda: client.stats.connect_failures >= 5)
        return client

    client = asyncio.run(main())
    assert client.stats.connects == 0
    assert "cannot connect" in client.stats.last_error
    # The backoff ceiling doubles per failure up to the cap; the jitter draws
    # from [ceiling/2, ceiling].
    probe = BabeldClient(f"127.0.0.1:{port}", discovery_port=1, rng=random.Random(7),
                         backoff_initial=1.0, backoff_max=8.0)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        probe.failures = failures
        delays = [probe.next_delay() for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not fixed


def test_callback_errors_are_counted_not_fatal():
    def boom(_):
        raise RuntimeError("consumer bug")

    async def main():
        fake = FakeBabeld([good_session()])
        address = await fake.start()
        client, _, _ = _client(address, on_topology=boom, on_neighbours=boom)
        await _run_until(client, lambda: client.stats.callback_errors >= 2)
        await fake.close()
        return client

    client = asyncio.run(main())
    assert client.stats.publishes == 1


def test_stop_interrupts_the_backoff():
    port = _free_port()

    async def main():
        client, _, _ = _client(f"127.0.0.1:{port}", backoff_initial=30.0, backoff_max=30.0)
        task = asyncio.create_task(client.run())
        await _until(lambda: client.stats.connect_failures >= 1)
        started = asyncio.get_running_loop().time()
        client.stop()
        await asyncio.wait_for(task, 2)
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(main()) < 1.0


def test_view_without_my_id_is_not_published():
    async def main():
        fake = FakeBabeld([["BABEL 1.0", "ok", ("wait", "monitor"), *TABLE, "ok"]])
        address = await fake.start()
        client, topologies, _ = _client(address)
        await _run_until(client, lambda: client.stats.dumps >= 1)
        await fake.close()
        return client, topologies

    client, topologies = asyncio.run(main())
    assert topologies == []
    assert client.stats.publishes == 0


def test_constructor_checks_arguments():
    with pytest.raises(ValueError, match="discovery_port"):
        BabeldClient("1", discovery_port=0)
    with pytest.raises(ValueError, match="backoff"):
        BabeldClient("1", discovery_port=1, backoff_initial=5, backoff_max=1)
    with pytest.raises(ValueError, match="connect_timeout"):
        BabeldClient("1", discovery_port=1, connect_timeout=0)
    with pytest.raises(ValueError, match="settle"):
        BabeldClient("1", discovery_port=1, settle=-1)
    with pytest.raises(ValueError, match="max_bad_lines"):
        BabeldClient("1", discovery_port=1, max_bad_lines=0)
    with pytest.raises(ValueError, match="family"):
        BabeldClient("1", discovery_port=1, family=5)


# -- addresses ------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected", "shown"), [
    ("33123", BabeldAddress(host="::1", port=33123), "[::1]:33123"),
    ("127.0.0.1:33123", BabeldAddress(host="127.0.0.1", port=33123), "127.0.0.1:33123"),
    ("[::1]:33123", BabeldAddress(host="::1", port=33123), "[::1]:33123"),
    ("router.lan:1", BabeldAddress(host="router.lan", port=1), "router.lan:1"),
    ("/run/babeld.sock", BabeldAddress(path="/run/babeld.sock"), "/run/babeld.sock"),
    ("unix:rel.sock", BabeldAddress(path="rel.sock"), "rel.sock"),
])
def test_parse_address(text, expected, shown):
    assert parse_babeld_address(text) == expected
    assert str(expected) == shown


@pytest.mark.parametrize("text", ["", "  ", "host", "host:", "host:0", "host:99999", "::1:33",
                                  "[::1]33", "[::1", "unix:", 42])
def test_parse_address_rejects(text):
    with pytest.raises(ValueError, match="babeld address"):
        parse_babeld_address(text)


# -- one-shot fetch ---------------------------------------------------------------


def _fetch_against(sessions, **kw):
    async def main():
        fake = FakeBabeld(sessions)
        address = await fake.start()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, lambda: fetch_topology(address, **kw)), fake
        finally:
            await fake.close()

    return asyncio.run(main())


def test_fetch_topology_sends_dump_and_quit():
    dump_session = [*GREETING, ("wait", "dump"), *TABLE, "ok", ("wait", "quit")]
    topo, fake = _fetch_against([dump_session])
    assert fake.commands == ["dump", "quit"]
    assert topo.router_id == R3
    assert topo.link(R3, R2).cost == 96 / 256


def test_fetch_state_errors():
    with pytest.raises(TopologyFormatError, match="greeting"):
        _fetch_against([["hello there", "ok"]])
    with pytest.raises(TopologyFormatError, match="unknown line"):
        _fetch_against([[*GREETING, ("wait", "dump"), "total garbage", "ok"]])
    with pytest.raises(TopologyFormatError, match="longer than"):
        _fetch_against([[("raw", b"B" * 20000)]])
    with pytest.raises(BabeldUnavailableError, match="before the dump was complete"):
        _fetch_against([[*GREETING, ("wait", "dump"), TABLE[0], "<close>"]])
    with pytest.raises(BabeldUnavailableError, match="timed out"):
        _fetch_against([[*GREETING, ("wait", "dump"), ("sleep", 2)]], timeout=0.3)
    with pytest.raises(BabeldUnavailableError, match="refused 'dump'"):
        _fetch_against([[*GREETING, ("wait", "dump"), "bad"]])
    with pytest.raises(BabeldUnavailableError, match="cannot connect") as info:
        fetch_state(f"127.0.0.1:{_free_port()}", timeout=1)
    assert isinstance(info.value, MeshcoreError)
    with pytest.raises(BabeldUnavailableError, match="cannot connect"):
        fetch_state("/nonexistent/babeld.sock", timeout=1)
    with pytest.raises(ValueError, match="timeout"):
        fetch_state("1", timeout=0)


def test_fetch_over_unix_socket(tmp_path):
    path = str(tmp_path / "b.sock")

    async def main():
        fake = FakeBabeld([[*GREETING, ("wait", "dump"), *TABLE, "ok"]])
        await fake.start(path=path)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, lambda: fetch_state(path))
        finally:
            await fake.close()

    state = asyncio.run(main())
    assert state.my_id == R3
    assert len(state.routes()) == 5
