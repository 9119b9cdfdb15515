"""Regressions of issue 14 in the node daemon and its drivers: one node per state folder
(7), kernel receive drops (14), SIGHUP, the default status file and rollups, quiet
retries of missing interfaces."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_node_daemon import _babeld_dump, _fake_babeld

from meshcore.analytics.rollups import RollupStore
from meshcore.config import parse_config
from meshcore.net.discovery import Discovery, DiscoverySettings
from meshcore.node.daemon import NodeDaemon, NodeSettings
from meshcore.node.udp import UdpDriver

REPO = Path(__file__).resolve().parents[1]
KEY = 'community_key = "hex:00112233445566778899aabbccddeeff"'
SALT = 'salt = "a long random per-community secret"'


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp_path: Path, *, port: int, state: Path, extra: str = "",
            status_interval: str = "0.1s") -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f"[node]\nid = 'solo'\nbind = '127.0.0.1'\nstate_dir = '{state}'\n"
                    f"status_interval = '{status_interval}'\n{extra}"
                    f"[net]\n{KEY}\nmulticast = false\nport = {port}\n")
    return path


def _spawn(config: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "meshcore", "node", "run", "--config",
                             str(config), "--log-level", "info", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.05)


# -- 7. one node per state folder -----------------------------------------------------------


def test_a_second_node_on_the_same_state_folder_exits_1_naming_the_first(tmp_path):
    state = tmp_path / "state"
    config = _config(tmp_path, port=_free_udp_port(), state=state)
    first = _spawn(config, "--duration", "30")
    try:
        _wait_for(lambda: (state / "status.json").exists())
        second = _spawn(config, "--duration", "5")
        _out, err = second.communicate(timeout=30)
        assert second.returncode == 1, err
        lines = [line for line in err.splitlines() if line.startswith("meshcore:")]
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and "node run" in lines[0]
        assert "Traceback" not in err
        assert first.poll() is None  # the first one runs on
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0


def test_two_daemons_in_one_process_cannot_share_a_state_folder(tmp_path):
    from meshcore.errors import StateLockedError

    port = _free_udp_port()
    text = (f"[node]\nid = 'a'\nbind = '127.0.0.1'\nstate_dir = '{tmp_path}'\n"
            f"[net]\n{KEY}\nmulticast = false\nport = {port}\n")

    async def main():
        a = NodeDaemon(NodeSettings.from_config(parse_config(text, "a.toml")))
        b = NodeDaemon(NodeSettings.from_config(parse_config(
            text.replace("'a'", "'b'").replace(str(port), str(_free_udp_port())), "b.toml")))
        task = asyncio.create_task(a.run(duration=5))
        while a.driver is None:
            await asyncio.sleep(0.01)
        try:
            with pytest.raises(StateLockedError, match="node run"):
                await b.run(duration=1)
        finally:
            a.stop()
            await task

    asyncio.run(main())


def test_a_second_node_on_the_same_port_exits_1_port_in_use(tmp_path):
    # Before: SO_REUSEADDR let both bind 127.0.0.1:port; the second took the
    # first one's unicast traffic and both exited 0.
    port = _free_udp_port()
    first = _spawn(_config(tmp_path, port=port, state=tmp_path / "a"), "--duration", "30")
    try:
        _wait_for(lambda: (tmp_path / "a" / "status.json").exists())
        other = tmp_path / "other"
        other.mkdir()
        second = _spawn(_config(other, port=port, state=tmp_path / "b"), "--duration", "5")
        _out, err = second.communicate(timeout=30)
        assert second.returncode == 1, err
        assert err.strip() == f"meshcore: cannot open UDP port {port}: Address already in use"
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0


def test_the_port_check_still_lets_one_node_bind_beside_its_multicast_group():
    async def main():
        port = _free_udp_port()
        core = Discovery(DiscoverySettings(community_key=b"community-key-16", port=port,
                                           interfaces=("lo",)),
                         node_id="00000000000000aa", service_port=0, rng=random.Random(1),
                         now=asyncio.get_running_loop().time())
        driver = UdpDriver(core, bind_host="0.0.0.0")
        await driver.start()
        try:
            assert driver.address == ("0.0.0.0", port)
            assert driver._mcast is not None  # group:port bound beside 0.0.0.0:port
        finally:
            driver.close()

    asyncio.run(main())


# -- SIGHUP: a clean stop with a last status ------------------------------------------------


def test_sighup_stops_the_node_cleanly_with_a_last_status(tmp_path):
    state = tmp_path / "state"
    # The periodic rewrite is an hour away: only the exit can write it again.
    config = _config(tmp_path, port=_free_udp_port(), state=state, status_interval="3600s")
    node = _spawn(config)
    status = state / "status.json"
    _wait_for(status.exists)
    first = json.loads(status.read_text())["time"]
    time.sleep(0.2)
    node.send_signal(signal.SIGHUP)
    _out, err = node.communicate(timeout=30)
    assert node.returncode == 0, err
    assert "node solo stopped" in err
    assert json.loads(status.read_text())["time"] > first  # written again on the way out


# -- docs: the status file and the rollups live in the state folder ------------------------


def test_the_daemon_writes_status_and_rollups_a_report_can_read(tmp_path, capsys):
    # The README's `analytics report --config node.toml` after a node has run,
    # with no rollup_path set: both use <state folder>/analytics/rollups.sqlite.
    from meshcore.cli import main

    port = _free_udp_port()

    def config(name: str, me: str, extra: str = "") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(f"[node]\nid = '{name}'\nbind = '{me}'\nstate_dir = '{tmp_path / name}'\n"
                        f"status_interval = '0.1s'\n[net]\n{KEY}\nmulticast = false\n"
                        f"port = {port}\nneighbour_interval = '0.2s'\n{extra}"
                        f"[analytics]\n{SALT}\n")
        return path

    async def run():
        # alpha follows a babeld whose neighbour is beta: the link's cost is a
        # LinkChange, which the minute's counters hold.
        server, babel_port = await _fake_babeld(_babeld_dump("127.0.0.3"), [])
        alpha = config("alpha", "127.0.0.2", f"[net.babeld]\naddress = '127.0.0.1:{babel_port}'\n")
        a = NodeDaemon(NodeSettings.from_config(parse_config(alpha.read_text(), str(alpha))))
        b = NodeDaemon(NodeSettings.from_config(parse_config(
            config("beta", "127.0.0.3").read_text(), str(tmp_path / "beta.toml"))))
        tasks = [asyncio.create_task(d.run(duration=10)) for d in (a, b)]
        loop = asyncio.get_running_loop()
        end = loop.time() + 8
        while not (a.core and a.core.peers.get("beta") and b.core and b.core.peers.get("alpha")
                   and a.analytics.totals()["link_changes"] > 0):
            assert loop.time() < end, "the daemons did not meet"
            await asyncio.sleep(0.02)
        for d in (a, b):
            d.stop()
        await asyncio.gather(*tasks)
        server.close()
        await server.wait_closed()

    asyncio.run(run())
    state = tmp_path / "alpha"
    assert json.loads((state / "status.json").read_text())["node_id"] == "alpha"
    store = RollupStore(state / "analytics" / "rollups.sqlite", create=False)
    try:
        assert store.count("minute") >= 1  # the last (partial) minute, flushed at exit
        assert store.nodes() == ["alpha"]
    finally:
        store.close()
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    after = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 2 * 86400))
    out = tmp_path / "report"
    assert main(["analytics", "report", "--config", str(tmp_path / "alpha.toml"), "--from", day,
                 "--to", after, "--out", str(out)]) == 0, capsys.readouterr().err
    assert any(out.iterdir())
    capsys.readouterr()
    assert main(["node", "peers", "--config", str(tmp_path / "alpha.toml")]) == 0
    assert capsys.readouterr().out.startswith("node alpha: 1 peer")


# -- 14. kernel receive drops ----------------------------------------------------------------


def test_kernel_receive_drops_are_counted_and_in_the_status():
    async def main():
        loop = asyncio.get_running_loop()
        port = _free_udp_port()
        core = Discovery(DiscoverySettings(community_key=b"community-key-16", port=port,
                                           multicast=False),
                         node_id="00000000000000aa", service_port=0, rng=random.Random(1),
                         now=loop.time())
        driver = UdpDriver(core, bind_host="127.0.0.1")
        await driver.start()
        try:
            assert driver.kernel_drops_supported
            driver._ucast.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            # The loop does not read while this runs: the small buffer overflows.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for _ in range(400):
                    sender.sendto(b"x" * 1000, ("127.0.0.1", port))
            end = loop.time() + 5
            while driver.stats.received == 0:
                assert loop.time() < end, "nothing received"
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # the queue is read out
            # The kernel attaches the count to datagrams queued after the drops.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.sendto(b"y" * 10, ("127.0.0.1", port))
            while driver.stats.kernel_drops == 0:
                assert loop.time() < end, "no drops reported"
                await asyncio.sleep(0.01)
        finally:
            driver.close()
        return driver.stats

    stats = asyncio.run(main())
    assert stats.kernel_drops > 0
    assert stats.kernel_drops + stats.received <= 401
    assert "kernel_drops" in stats.as_dict()


# -- docs: a missing interface warns once, then at a slow backoff ---------------------------


def test_a_missing_interface_warns_once_then_backs_off(caplog):
    async def main():
        loop = asyncio.get_running_loop()
        core = Discovery(DiscoverySettings(community_key=b"community-key-16",
                                           port=_free_udp_port(), interfaces=("nosuch0",)),
                         node_id="00000000000000aa", service_port=0, rng=random.Random(1),
                         now=loop.time())
        driver = UdpDriver(core, bind_host="127.0.0.1", rejoin_interval=0.01)
        with caplog.at_level(logging.INFO, logger="meshcore.node.udp"):
            await driver.start()
            try:
                while driver.stats.join_failures < 30:
                    await asyncio.sleep(0.005)
            finally:
                driver.close()
        return driver

    driver = asyncio.run(main())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    # 30 failed lookups (and failed beacons on it) within a second: one warning;
    # the next would come a minute later.
    assert len(warnings) == 1 and "nosuch0" in warnings[0].getMessage()
    assert driver.stats.join_failures >= 30


def test_an_absent_babeld_warns_once_then_backs_off(caplog):
    # Before: the example config's [net.babeld] off OpenWrt warned on every retry.
    from test_node_babeld import _client, _free_port, _run_until

    port = _free_port()

    async def main():
        client, _, _ = _client(f"127.0.0.1:{port}", backoff_initial=0.005, backoff_max=0.01)
        with caplog.at_level(logging.INFO, logger="meshcore.node.babeld"):
            await _run_until(client, lambda: client.stats.connect_failures >= 20)
        return client

    client = asyncio.run(main())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert client.stats.connect_failures >= 20
    assert len(warnings) == 1 and "cannot connect to babeld" in warnings[0].getMessage()
