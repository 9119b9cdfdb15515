"""The node daemon: config validation, the CLI, a short run of two daemons fed by a fake babeld."""

from __future__ import annotations

import asyncio
import contextlib
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

from meshcore import cli
from meshcore.config import parse_config
from meshcore.errors import ConfigError
from meshcore.net.discovery import PeerChanged, PeerLeft
from meshcore.node.daemon import NodeDaemon, NodeSettings, default_node_id

REPO = Path(__file__).resolve().parents[1]
KEY = 'community_key = "hex:00112233445566778899aabbccddeeff"'
R_ME, R_NB = "02:00:00:00:00:00:00:0a", "02:00:00:00:00:00:00:0b"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(text: str) -> NodeSettings:
    return NodeSettings.from_config(parse_config(text, "node.toml"))


# -- configuration ----------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "[node]\nid = 'x'\n", "[net]\nport = 4000\n"])
def test_missing_community_key_is_refused_naming_the_key(text):
    with pytest.raises(ConfigError) as info:
        _settings(text)
    assert info.value.key == "net.community_key"
    assert info.value.path == "node.toml"


@pytest.mark.parametrize(("text", "key", "problem"), [
    ("[node]\nidd = 'x'\n", "node.idd", "unknown key"),
    ("[node]\nid = 'has space'\n", "node.id", "without spaces"),
    ("[node]\nid = '" + "x" * 65 + "'\n", "node.id", "1..64"),
    ("[node]\nbind = 'everywhere'\n", "node.bind", "IPv4"),
    ("[node]\nstatus_interval = 0\n", "node.status_interval", "> 0"),
    ("[node]\nservice_port = 70000\n", "node.service_port", "<= 65535"),
    ("[node]\nlog_level = 'loud'\n", "node.log_level", "one of"),
    ("[net.babeld]\nport = 1\n", "net.babeld.port", "unknown key"),
    ("[net.babeld]\nreconnect_max = '1s'\n", "net.babeld.address", "missing"),
    ("[net.babeld]\naddress = 'nowhere'\n", "net.babeld.address", "host:port"),
    ("[net.babeld]\naddress = '1'\nreconnect_initial = 0\n", "net.babeld.reconnect_initial",
     "> 0"),
    ("[net.babeld]\naddress = '1'\nreconnect_initial = '2s'\nreconnect_max = '1s'\n",
     "net.babeld.reconnect_max", ">= reconnect_initial"),
    ("[net.babeld]\naddress = '1'\nconnect_timeout = 0\n", "net.babeld.connect_timeout", "> 0"),
])
def test_bad_values_name_their_key(text, key, problem):
    # [net.babeld] tables need the [net] key too: put it first.
    if text.startswith("[net.babeld]"):
        text = f"[net]\n{KEY}\n" + text
    else:
        text = text + f"\n[net]\n{KEY}\n"
    with pytest.raises(ConfigError, match=problem) as info:
        _settings(text)
    assert info.value.key == key


def test_defaults_and_full_config():
    plain = _settings(f"[net]\n{KEY}\n")
    assert plain.babeld is None
    assert plain.node_id == default_node_id()
    assert plain.bind == "0.0.0.0"
    full = _settings(f"""
[node]
id = "n1"
service_port = 8080
bind = "127.0.0.1"
status_file = "/tmp/s.json"
status_interval = "500 ms"
log_level = "debug"
[net]
{KEY}
[net.babeld]
address = "/run/babeld.sock"
reconnect_initial = "1s"
reconnect_max = "1m"
connect_timeout = "2s"
""")
    assert (full.node_id, full.service_port, full.bind, full.status_interval) == (
        "n1", 8080, "127.0.0.1", 0.5)
    assert str(full.babeld.address) == "/run/babeld.sock"
    assert (full.babeld.reconnect_initial, full.babeld.reconnect_max,
            full.babeld.connect_timeout) == (1.0, 60.0, 2.0)


def test_default_node_id_is_stable_hex():
    node_id = default_node_id()
    assert node_id == default_node_id()
    assert len(node_id) == 16
    int(node_id, 16)


# -- the command line ---------------------------------------------------------------


def test_cli_refuses_missing_key_with_exit_1(tmp_path, capsys):
    path = tmp_path / "node.toml"
    path.write_text("[net]\nport = 4000\n")
    assert cli.main(["node", "run", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("meshcore: ")
    assert "net.community_key" in err


def test_cli_usage_and_bad_duration(tmp_path, capsys):
    assert cli.main(["node"]) == 2
    path = tmp_path / "node.toml"
    path.write_text(f"[net]\n{KEY}\nmulticast = false\n")
    assert cli.main(["node", "run", "--config", str(path), "--duration", "0"]) == 2
    assert "--duration" in capsys.readouterr().err


def test_cli_once_prints_the_peer_table(tmp_path, capsys):
    path = tmp_path / "node.toml"
    status = tmp_path / "status.json"
    path.write_text(f"[node]\nid = 'solo'\nbind = '127.0.0.1'\nstatus_file = '{status}'\n"
                    f"[net]\n{KEY}\nmulticast = false\nport = {_free_udp_port()}\n")
    assert cli.main(["node", "run", "--config", str(path), "--once",
                     "--log-level", "warning"]) == 0
    assert "node solo: 0 peers" in capsys.readouterr().out
    saved = json.loads(status.read_text())
    assert saved["node_id"] == "solo" and saved["peers"] == []
    assert cli.main(["node", "peers", "--config", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["node_id"] == "solo"


def test_cli_port_in_use_is_a_clear_error(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        path = tmp_path / "node.toml"
        path.write_text(f"[node]\nbind = '127.0.0.1'\n[net]\n{KEY}\nmulticast = false\n"
                        f"port = {port}\n")
        assert cli.main(["node", "run", "--config", str(path), "--duration", "1",
                         "--log-level", "error"]) == 1
    assert f"cannot open UDP port {port}" in capsys.readouterr().err


def test_cli_peers_errors(tmp_path, capsys):
    path = tmp_path / "node.toml"
    path.write_text(f"[net]\n{KEY}\n")
    assert cli.main(["node", "peers", "--config", str(path)]) == 1
    assert "node.status_file" in capsys.readouterr().err
    status = tmp_path / "status.json"
    path.write_text(f"[node]\nstatus_file = '{status}'\n[net]\n{KEY}\n")
    assert cli.main(["node", "peers", "--config", str(path)]) == 1
    assert "is the node running" in capsys.readouterr().err
    status.write_text("{not json")
    assert cli.main(["node", "peers", "--config", str(path)]) == 1
    assert "not a node status file" in capsys.readouterr().err


def test_cli_peers_prints_each_kind_of_peer(tmp_path, capsys):
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"node_id": "me", "peers": [
        {"node_id": "m", "addr": ["10.0.0.2", 47474], "state": "alive", "hops": 1, "via": None,
         "via_multicast": True, "interface": "br-lan", "etx": 1.05, "rtt": 0.0021},
        {"node_id": "u", "addr": ["10.9.0.1", 47474], "state": "suspect", "hops": 1, "via": None,
         "via_multicast": False, "interface": "wan", "etx": None, "rtt": None},
        {"node_id": "far", "addr": None, "state": "alive", "hops": 3, "via": "u",
         "via_multicast": False, "interface": None, "etx": None, "rtt": None},
    ]}))
    path = tmp_path / "node.toml"
    path.write_text(f"[node]\nstatus_file = '{status}'\n[net]\n{KEY}\n")
    assert cli.main(["node", "peers", "--config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "node me: 3 peers"
    rows = {line.split()[0]: line for line in out[2:]}
    assert rows["m"].endswith("multicast br-lan") and "1.05" in rows["m"] and "2.1" in rows["m"]
    assert rows["u"].endswith("unicast") and "suspect" in rows["u"]
    assert rows["far"].endswith("via u") and " 3 " in rows["far"]


# -- running -----------------------------------------------------------------------


def _babeld_dump(neighbour_host: str) -> list[str]:
    """A babeld view with one neighbour whose router originates ``neighbour_host``/32."""
    return [
        "BABEL 1.0", "version babeld-fake", "host fake", f"my-id {R_ME}", "ok", "monitor",
        "add interface eth0 up true ipv6 fe80::a ipv4 127.0.0.2",
        "add neighbour 1 address fe80::b if eth0 reach ffff ureach 0000 rxcost 96 txcost 96 "
        "cost 96",
        f"add route 2 prefix {neighbour_host}/32 from 0.0.0.0/0 installed yes id {R_NB} "
        "metric 96 refmetric 0 via fe80::b if eth0",
        "ok",
    ]


async def _fake_babeld(lines: list[str], later: list[str]) -> tuple[asyncio.Server, int]:
    async def handle(reader, writer):
        try:
            for line in lines:
                if line == "monitor":
                    await reader.readline()
                    continue
                writer.write(line.encode() + b"\n")
            await writer.drain()
            await asyncio.sleep(0.3)
            for line in later:
                writer.write(line.encode() + b"\n")
            await writer.drain()
            await reader.read()
        finally:
            # An unclosed writer outlives the loop and warns when collected.
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_two_daemons_meet_through_the_babeld_neighbour_list(tmp_path, caplog):
    port = _free_udp_port()
    change = ("change neighbour 1 address fe80::b if eth0 reach ffff ureach 0000 rxcost 96 "
              "txcost 96 cost 192")

    async def main():
        server, babel_port = await _fake_babeld(_babeld_dump("127.0.0.3"), [change])
        common = f"[net]\n{KEY}\nmulticast = false\nport = {port}\nneighbour_interval = '0.2s'\n"
        a = NodeDaemon(_settings(
            f"[node]\nid = 'alpha'\nbind = '127.0.0.2'\nstatus_file = '{tmp_path / 'a.json'}'\n"
            f"status_interval = '0.1s'\n{common}"
            f"[net.babeld]\naddress = '127.0.0.1:{babel_port}'\nreconnect_initial = '0.1s'\n"
        ), rng=random.Random(1))
        b = NodeDaemon(_settings(f"[node]\nid = 'beta'\nbind = '127.0.0.3'\n{common}"),
                       rng=random.Random(2))
        tasks = [asyncio.create_task(a.run(duration=10)), asyncio.create_task(b.run(duration=10))]
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() - start < 5:
            known_a = a.core is not None and a.core.peers.get("beta")
            known_b = b.core is not None and b.core.peers.get("alpha")
            topo = a.topology
            if known_a and known_b and topo is not None and topo.link(R_ME, R_NB).cost == 0.75:
                break
            await asyncio.sleep(0.02)
        met = loop.time() - start
        await asyncio.sleep(0.2)  # a status write after the events
        a.stop()
        b.stop()
        await asyncio.gather(*tasks)
        server.close()
        await server.wait_closed()
        return a, b, met

    with caplog.at_level(logging.INFO, logger="meshcore.node"):
        a, b, met = asyncio.run(main())
    assert met < 5
    assert a.core.peers.get("beta").addr == ("127.0.0.3", port)
    assert b.core.peers.get("alpha").addr == ("127.0.0.2", port)
    status = json.loads((tmp_path / "a.json").read_text())
    assert status["babeld"]["neighbours"] == [["127.0.0.3", port]]
    assert status["babeld"]["router_id"] == R_ME
    assert {(lk["source"], lk["target"], lk["cost"]) for lk in status["babeld"]["links"]} == {
        (R_ME, R_NB, 0.75)}
    assert [p["node_id"] for p in status["peers"]] == ["beta"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("peer joined beta at 127.0.0.3" in m and "unicast" in m for m in messages)
    assert any(f"babeld link {R_ME} -> {R_NB}: cost 0.375 -> 0.750" in m for m in messages)
    assert any(m == "node alpha stopped" for m in messages)


def test_peer_events_and_topology_changes_are_logged(caplog):
    daemon = NodeDaemon(_settings(f"[node]\nid = 'me'\n[net]\n{KEY}\n"))
    from meshcore.net.discovery import Peer
    from meshcore.net.topology import Topology

    with caplog.at_level(logging.DEBUG, logger="meshcore.node"):
        daemon._on_peer_event(PeerChanged(Peer("p1", state="suspect"), ("state",)))
        daemon._on_peer_event(PeerChanged(Peer("p1"), ("load",)))
        daemon._on_peer_event(PeerLeft("p1", "timeout"))
        one, two = Topology(), Topology()
        one.add_link("x", "y", 1.0)
        two.add_link("x", "z", 1.0)
        daemon._on_topology(one)
        daemon._on_topology(two)
        daemon._on_neighbours([("10.0.0.1", 1)])  # no driver yet: ignored
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert levels["peer p1 changed state (state suspect)"] == logging.INFO
    assert levels["peer p1 changed load (state alive)"] == logging.DEBUG
    assert "peer left p1 (timeout)" in levels
    assert "babeld topology: 2 routers, 1 links" in levels
    assert "babeld routers added ['z'], removed ['y']" in levels


def test_unwritable_status_file_is_a_warning(tmp_path, caplog):
    daemon = NodeDaemon(_settings(
        f"[node]\nstatus_file = '{tmp_path / 'no' / 'such' / 'dir.json'}'\n[net]\n{KEY}\n"))
    with caplog.at_level(logging.WARNING, logger="meshcore.node"):
        daemon.write_status()
    assert any("cannot write status file" in r.getMessage() for r in caplog.records)


def test_sigterm_stops_the_daemon_cleanly(tmp_path):
    status = tmp_path / "status.json"
    path = tmp_path / "node.toml"
    path.write_text(f"[node]\nid = 'sig'\nbind = '127.0.0.1'\nstatus_file = '{status}'\n"
                    f"[net]\n{KEY}\nmulticast = false\nport = {_free_udp_port()}\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with subprocess.Popen([sys.executable, "-m", "meshcore", "node", "run", "--config",
                           str(path), "--duration", "60"], env=env,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 20
            while not status.exists():
                assert time.monotonic() < deadline, "the daemon never wrote its status"
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr = proc.stderr.read()
    assert code == 0
    assert "node sig stopped" in stderr


def test_example_config_is_valid():
    from meshcore.config import load_config

    settings = NodeSettings.from_config(load_config(REPO / "docs" / "examples" / "node.toml"))
    assert settings.node_id == "6a1f00c3e2b4d5f7"
    assert settings.discovery.interfaces == ("br-lan",)
    assert str(settings.babeld.address) == "[::1]:33123"


# -- analytics ---------------------------------------------------------------------

SALT = "salt = 'a-long-test-community-salt'"


def _families(path: Path) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(path.read_text())}


def _sample(fam, **labels) -> float:
    (value,) = [s.value for s in fam.samples if s.labels == labels]
    return value


def test_cli_once_with_analytics_writes_a_prometheus_textfile(tmp_path, capsys):
    prom = tmp_path / "meshcore.prom"
    path = tmp_path / "node.toml"
    path.write_text(f"[node]\nid = 'solo'\nbind = '127.0.0.1'\n"
                    f"[net]\n{KEY}\nmulticast = false\nport = {_free_udp_port()}\n"
                    f"[analytics]\n{SALT}\ntextfile_path = '{prom}'\n")
    start = time.monotonic()
    assert cli.main(["node", "run", "--config", str(path), "--once",
                     "--log-level", "warning"]) == 0
    assert time.monotonic() - start < 5
    fams = _families(prom)
    # Families named by the collector (docs/analytics.md) and by the daemon (docs/node.md).
    for name in ("meshcore_neighbors", "meshcore_neighbor_changes", "meshcore_link_changes",
                 "meshcore_node_peers", "meshcore_node_discovery_datagrams",
                 "meshcore_node_discovery_dropped", "meshcore_node_textfile_errors"):
        assert name in fams, name
    assert fams["meshcore_node_discovery_datagrams"].type == "counter"
    assert _sample(fams["meshcore_node_peers"], state="alive") == 0
    assert _sample(fams["meshcore_neighbors"]) == 0
    assert _sample(fams["meshcore_node_textfile_errors"]) == 0
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, no leftovers


def test_two_daemons_report_each_other_in_their_textfiles(tmp_path):
    port = _free_udp_port()
    common = (f"[net]\n{KEY}\nmulticast = false\nport = {port}\nneighbour_interval = '0.2s'\n"
              "beacon_interval = '0.2s'\n")

    def config(name: str, me: str, other: str) -> str:
        return (f"[node]\nid = '{name}'\nbind = '{me}'\nstatus_interval = '0.1s'\n{common}"
                f"[analytics]\n{SALT}\ntextfile_path = '{tmp_path / name}.prom'\n")

    async def main():
        a = NodeDaemon(_settings(config("alpha", "127.0.0.2", "127.0.0.3")),
                       rng=random.Random(1))
        b = NodeDaemon(_settings(config("beta", "127.0.0.3", "127.0.0.2")),
                       rng=random.Random(2))
        tasks = [asyncio.create_task(a.run(duration=10)), asyncio.create_task(b.run(duration=10))]
        while a.driver is None or b.driver is None:
            await asyncio.sleep(0.01)
        # No babeld here: point each at the other as a routing neighbour.
        a._on_neighbours([("127.0.0.3", port)])
        b._on_neighbours([("127.0.0.2", port)])
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() - start < 4:
            if a.core.peers.get("beta") and b.core.peers.get("alpha"):
                break
            await asyncio.sleep(0.02)
        a.stop()
        b.stop()
        await asyncio.gather(*tasks)
        return a, b

    a, b = asyncio.run(main())
    assert a.core.peers.get("beta") and b.core.peers.get("alpha")
    fams = _families(tmp_path / "alpha.prom")
    assert _sample(fams["meshcore_neighbors"]) == 1
    assert _sample(fams["meshcore_neighbor_changes"], change="up") == 1
    assert _sample(fams["meshcore_node_peers"], state="alive") + _sample(
        fams["meshcore_node_peers"], state="suspect") == 1
    # The counters mirror Discovery.stats as of the last write (at shutdown).
    stats = a.core.stats
    assert _sample(fams["meshcore_node_discovery_datagrams"], direction="sent") == (
        stats.sent_datagrams) > 0
    assert _sample(fams["meshcore_node_discovery_datagrams"], direction="received") == (
        stats.received) > 0
    assert _sample(fams["meshcore_node_discovery_dropped"], reason="auth") == stats.dropped_auth


def test_no_analytics_table_means_no_collector_and_no_textfile(tmp_path, capsys):
    path = tmp_path / "node.toml"
    path.write_text(f"[node]\nid = 'solo'\nbind = '127.0.0.1'\n"
                    f"[net]\n{KEY}\nmulticast = false\nport = {_free_udp_port()}\n")
    settings = NodeSettings.from_config(parse_config(path.read_text(), "node.toml"))
    assert settings.analytics is None
    daemon = NodeDaemon(settings)
    assert daemon.analytics is None
    daemon.update_analytics()  # a no-op without [analytics]
    assert "analytics" not in daemon.status()
    assert cli.main(["node", "run", "--config", str(path), "--once",
                     "--log-level", "warning"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["node.toml"]


def test_analytics_config_errors_and_disabled_table():
    base = f"[node]\nid = 'n'\n[net]\n{KEY}\n"
    with pytest.raises(ConfigError) as info:
        _settings(base + "[analytics]\ntextfile_path = '/tmp/x.prom'\n")
    assert info.value.key == "analytics.salt"
    with pytest.raises(ConfigError, match=r"\.prom") as info:
        _settings(base + f"[analytics]\n{SALT}\ntextfile_path = '/tmp/metrics.txt'\n")
    assert info.value.key == "analytics.textfile_path"
    assert _settings(base + "[analytics]\nenabled = false\n").analytics is None
    # Exports off: no salt needed; the daemon still counts (with a private random salt).
    quiet = _settings(base + "[analytics]\nexports_enabled = false\n")
    assert quiet.analytics is not None and NodeDaemon(quiet).analytics is not None


def test_unwritable_textfile_is_logged_once_counted_and_not_fatal(tmp_path, caplog):
    bad = tmp_path / "no" / "such" / "dir" / "m.prom"
    daemon = NodeDaemon(_settings(
        f"[node]\nid = 'n'\nbind = '127.0.0.1'\nstatus_interval = '0.05s'\n"
        f"[net]\n{KEY}\nmulticast = false\nport = {_free_udp_port()}\n"
        f"[analytics]\n{SALT}\ntextfile_path = '{bad}'\n"))
    with caplog.at_level(logging.INFO, logger="meshcore.node"):
        assert asyncio.run(daemon.run(duration=0.3)) == 0
        failures = daemon.textfile_errors
        assert failures >= 2  # every interval plus the last write at shutdown
        warnings = [r for r in caplog.records if "cannot write Prometheus textfile" in
                    r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
        assert daemon.status()["analytics"] == {"textfile_errors": failures}
        # The folder appears: the next write succeeds, says so, and carries the count.
        bad.parent.mkdir(parents=True)
        daemon.update_analytics()
    assert any("written again" in r.getMessage() for r in caplog.records)
    assert _sample(_families(bad)["meshcore_node_textfile_errors"]) == failures


def _value(fam, *labels: str) -> float:
    return dict(fam.samples())[labels].value


def test_babeld_costs_become_analytics_events_through_the_router():
    from meshcore.net.topology import Topology

    clock = [1_700_000_000.0]
    daemon = NodeDaemon(_settings(f"[node]\nid = 'me'\n[net]\n{KEY}\n[analytics]\n{SALT}\n"),
                        wall_clock=lambda: clock[0])
    reg = daemon.analytics.registry
    etx, link_changes = reg.get("meshcore_link_etx"), reg.get("meshcore_link_changes")

    # babeld: only this router's own links; first view, a cost change, a lost link.
    one, two, three = Topology(router_id="A"), Topology(router_id="A"), Topology(router_id="A")
    one.add_link("A", "B", 0.375)  # cheaper than one ideal hop: reads as ETX 1
    one.add_link("B", "C", 3.0)  # not ours: ignored
    two.add_link("A", "B", 2.5)
    two.add_link("B", "C", 4.0)
    three.add_link("B", "C", 4.0)
    daemon._on_topology(one)
    assert _value(etx, "B") == 1.0 and _value(link_changes) == 1
    daemon._on_topology(two)
    daemon._on_topology(two)  # unchanged: no event
    assert _value(etx, "B") == 2.5 and _value(link_changes) == 2
    daemon._on_topology(three)
    assert _value(etx, "B") == float("inf") and _value(link_changes) == 3
    assert "C" not in {values[0] for values, _ in etx.samples()}
    daemon._on_topology(Topology())  # no router id known: nothing to attribute
    assert _value(link_changes) == 3
