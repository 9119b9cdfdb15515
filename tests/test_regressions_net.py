"""Regressions of issue 14 in discovery and the node: hostile ids (12), amplification
and table filling (13)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random

import pytest

from meshcore.cli import main
from meshcore.net._beacon import (
    FLAG_JOINING,
    FLAG_PROBE,
    MAC_LEN,
    MAX_DATAGRAM,
    OP_ADD,
    Beacon,
    PexEntry,
    PexSection,
    decode_beacon,
    encode_beacon,
    printable,
)
from meshcore.net.discovery import Discovery, DiscoverySettings, PeerJoined, SendUnicast

KEY = bytes(range(32))
PORT = 47474
HOSTILE = ["peer\njoined", "peer\x1bjoined", "peer\x00joined", "abc\u202eabc"]


def core(node_id: str = "00000000000000aa", **kw) -> Discovery:
    me = Discovery(DiscoverySettings(community_key=KEY, **kw), node_id=node_id,
                   service_port=8080, rng=random.Random(3), now=0.0)
    me.start(now=0.0)
    me.handle_timer(now=2.0)  # past the join phase and the burst
    return me


def forged(text_id: str, *, placeholder: str, seq: int = 1, **kw) -> bytes:
    """A beacon with a valid MAC whose node id bytes are ``text_id``'s UTF-8.

    The encoder refuses such ids, so a placeholder of the same size is
    encoded and swapped, and the MAC computed again: what a key holder can send.
    """
    want = text_id.encode("utf-8")
    assert len(placeholder.encode()) == len(want)
    data = encode_beacon(Beacon(node_id=placeholder, boot_epoch=1, seq=seq, ts_ms=0, **kw),
                         KEY)
    body = data[:-MAC_LEN].replace(placeholder.encode(), want)
    return body + hmac.new(KEY, body, hashlib.sha256).digest()[:MAC_LEN]


def hexid(i: int) -> str:
    return f"{i:016x}"


# -- 12. ids from the wire follow the config's id rule -----------------------------------


@pytest.mark.parametrize("bad", HOSTILE, ids=["newline", "esc", "nul", "rlo"])
def test_a_beacon_with_a_hostile_id_is_dropped_as_malformed(bad):
    me = core()
    placeholder = "peerQjoined" if len(bad.encode()) == 11 else "abcQQQabc"
    effects = me.receive_datagram(forged(bad, placeholder=placeholder), ("10.0.0.2", PORT),
                                  now=2.0)
    assert me.stats.dropped_malformed == 1
    assert not any(isinstance(e, PeerJoined) for e in effects) and len(me.peers) == 0


@pytest.mark.parametrize("bad", HOSTILE, ids=["newline", "esc", "nul", "rlo"])
def test_peer_exchange_records_with_hostile_ids_or_hosts_are_dropped(bad):
    me = core()
    placeholder = "peerQjoined" if len(bad.encode()) == 11 else "abcQQQabc"
    entry = PexEntry(OP_ADD, placeholder, 1, 0, 1, "10.0.0.7", 1)
    data = forged("00000000000000bb".replace("b", "b"), placeholder="00000000000000bb",
                  pex=PexSection((entry,)))
    # swap the record's id (the sender's own id is left intact)
    body = data[:-MAC_LEN].replace(placeholder.encode(), bad.encode())
    data = body + hmac.new(KEY, body, hashlib.sha256).digest()[:MAC_LEN]
    me.receive_datagram(data, ("10.0.0.2", PORT), now=2.0)
    assert me.stats.dropped_malformed == 1 and len(me.peers) == 0
    host = PexEntry(OP_ADD, hexid(7), 1, 0, 1, "hostQname", 1)
    data = encode_beacon(Beacon(node_id=hexid(0xbb), boot_epoch=1, seq=2, ts_ms=0,
                                pex=PexSection((host,))), KEY)
    body = data[:-MAC_LEN].replace(b"hostQname", b"host\nname")
    with pytest.raises(ValueError, match="host name"):
        decode_beacon(body + hmac.new(KEY, body, hashlib.sha256).digest()[:MAC_LEN], KEY)


@pytest.mark.parametrize("bad", HOSTILE, ids=["newline", "esc", "nul", "rlo"])
def test_the_config_id_follows_the_same_rule(bad, tmp_path, capsys):
    from meshcore.config import parse_config
    from meshcore.errors import ConfigError
    from meshcore.node.daemon import NodeSettings

    escaped = json.dumps(bad)  # a TOML basic string accepts JSON's escapes
    text = (f'[node]\nid = {escaped}\nstate_dir = "{tmp_path}"\n'
            f'[net]\ncommunity_key = "{"p" * 12}"\n')
    with pytest.raises(ConfigError, match=r"node\.id"):
        NodeSettings.from_config(parse_config(text, "node.toml"))


def test_printable_escapes_controls_and_bidi_overrides():
    assert printable("a\nb\x1b[2J\u202ec\x00") == "a\\x0ab\\x1b[2J\\u202ec\\x00"
    assert printable("ok id") == "ok id"
    assert len(printable("x" * 1000)) == 200


def test_the_daemon_log_never_shows_a_forged_line(caplog):
    from meshcore.net.discovery import PeerLeft
    from meshcore.node.daemon import NodeDaemon

    daemon = NodeDaemon.__new__(NodeDaemon)  # only the logging of peer events is exercised
    daemon._status_dirty = False
    with caplog.at_level(logging.INFO, logger="meshcore.node"):
        daemon._on_peer_event(PeerLeft("x\n2026-01-01 INFO meshcore.node: peer joined ROOT",
                                       "timeout"))
    (record,) = caplog.records
    assert "\n" not in record.getMessage() and "\\x0a" in record.getMessage()


def test_node_peers_escapes_what_peers_sent(tmp_path, capsys):
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"node_id": "me", "peers": [
        {"node_id": "evil\x1b[2J\u202e", "state": "alive", "hops": 2, "via": "r\x1b]0;x\x07",
         "addr": ["10.0.0.1", 47474], "etx": None, "rtt": None}]}))
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'[node]\nstatus_file = "{status}"\n[net]\ncommunity_key = "{"p" * 12}"\n')
    assert main(["node", "peers", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "evil\\x1b[2J\\u202e" in out
    assert main(["node", "peers", "--config", str(cfg), "--json"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out


# -- 13. amplification and table filling ------------------------------------------------------


def _teach(me: Discovery, n: int, *, first: int = 0) -> None:
    """Give ``me`` ``n`` peers learned by peer exchange from one neighbour."""
    nb = hexid(0xbb)
    for start in range(first, first + n, 40):
        entries = tuple(PexEntry(OP_ADD, hexid(0x1000 + i), 1, 0, 1, "10.9.0.1", 1)
                        for i in range(start, min(first + n, start + 40)))
        me.receive_datagram(encode_beacon(Beacon(node_id=nb, boot_epoch=1, seq=1 + start,
                                                 ts_ms=0, pex=PexSection(entries)), KEY),
                            ("10.0.0.2", PORT), now=2.0)
    me.handle_timer(now=2.5)  # the reply to the neighbour, a newcomer, is out


def _sent_to(effects, host: str) -> int:
    return sum(len(e.data) for e in effects if isinstance(e, SendUnicast) and e.addr[0] == host)


def test_a_small_beacon_never_draws_more_bytes_than_it_carried():
    me = core()
    _teach(me, 300)
    victim = "10.0.0.66"
    # A key holder forges a newcomer's beacon with the victim as its source.
    hello = encode_beacon(Beacon(node_id=hexid(0xee), boot_epoch=5, seq=1, ts_ms=0,
                                 flags=FLAG_PROBE, interval=5.0, digest=b"\1" * 8), KEY)
    before = me.stats.replies_sent, me.stats.responses_withheld
    effects = me.receive_datagram(hello, (victim, PORT), now=3.0)
    effects += me.handle_timer(now=3.0 + me.settings.reply_jitter)
    assert me.stats.replies_sent == before[0] + 1
    assert _sent_to(effects, victim) <= len(hello)  # was about 3.6x (and 30x with 300 peers)
    assert me.stats.responses_withheld > before[1] and me.stats.response_bytes_withheld > 0


def test_a_padded_join_beacon_gets_a_reply_as_large_as_itself():
    me = core()
    _teach(me, 300)
    hello = encode_beacon(Beacon(node_id=hexid(0xee), boot_epoch=5, seq=1, ts_ms=0,
                                 flags=FLAG_JOINING, interval=5.0, digest=b"\1" * 8), KEY,
                          pad_to=MAX_DATAGRAM)
    assert len(hello) == MAX_DATAGRAM
    effects = me.receive_datagram(hello, ("10.0.0.7", PORT), now=3.0)
    effects += me.handle_timer(now=3.0 + me.settings.reply_jitter)
    sent = _sent_to(effects, "10.0.0.7")
    assert MAX_DATAGRAM // 2 < sent <= MAX_DATAGRAM


def test_replies_are_rate_limited_per_sender_and_per_interval():
    me = core(max_replies=4)
    _teach(me, 10)
    t = 10.0  # a new beacon_interval: the reply to the neighbour is not in its count
    # Ten fresh ids from one address within one interval: one reply.
    for i in range(10):
        me.receive_datagram(encode_beacon(Beacon(node_id=hexid(0x500 + i), boot_epoch=1, seq=1,
                                                 ts_ms=0, flags=FLAG_JOINING), KEY,
                                          pad_to=MAX_DATAGRAM), ("10.0.1.1", PORT), now=t)
    before = me.stats.replies_sent
    me.handle_timer(now=t + 1.0)
    assert me.stats.replies_sent == before + 1 and me.stats.replies_rate_limited == 9
    # Ten addresses: max_replies per interval in all.
    for i in range(10):
        me.receive_datagram(encode_beacon(Beacon(node_id=hexid(0x600 + i), boot_epoch=1, seq=1,
                                                 ts_ms=0, flags=FLAG_JOINING), KEY,
                                          pad_to=MAX_DATAGRAM), (f"10.0.2.{i}", PORT),
                            now=t + 1.5)
    me.handle_timer(now=t + 2.5)
    assert me.stats.replies_sent == before + 4  # 1 + 3 more in the same beacon_interval
    assert me.stats.replies_rate_limited == 9 + 7


def test_forged_records_cannot_push_out_peers_we_hear():
    me = core(max_peers=50)
    _teach(me, 200)  # a flooder fills the table with hearsay
    assert len(me.peers) == 50
    assert me.stats.peers_refused == 200 - 49  # the table holds the neighbour and 49 records
    # A peer heard directly evicts the least-trusted hearsay entry.
    direct = encode_beacon(Beacon(node_id=hexid(0xd1), boot_epoch=1, seq=1, ts_ms=0,
                                  flags=FLAG_PROBE, interval=5.0), KEY)
    effects = me.receive_datagram(direct, ("10.0.0.9", PORT), now=3.0)
    assert me.peers.get(hexid(0xd1)) is not None and len(me.peers) == 50
    assert me.stats.peers_evicted >= 1
    assert any(getattr(e, "reason", None) == "evicted" for e in effects)
    # Fill the rest with direct peers: now hearsay is refused, and counted.
    for i in range(60):
        me.receive_datagram(encode_beacon(Beacon(node_id=hexid(0xd100 + i), boot_epoch=1, seq=1,
                                                 ts_ms=0, flags=FLAG_PROBE, interval=5.0), KEY),
                            (f"10.0.3.{i}", PORT), now=3.0)
    direct_ids = {p.node_id for p in me.peers.direct()}
    refused = me.stats.peers_refused
    _teach(me, 20, first=1000)
    assert {p.node_id for p in me.peers.direct()} == direct_ids
    assert me.stats.peers_refused > refused


def test_the_new_counters_are_in_the_status():
    stats = core().stats.as_dict()
    for name in ("replies_rate_limited", "responses_withheld", "response_bytes_withheld",
                 "peers_evicted", "peers_refused"):
        assert stats[name] == 0


# -- 10. importers report wrong types and absurd nesting -------------------------------------


def test_netjson_cost_as_a_string_is_reported():
    from meshcore.errors import TopologyFormatError
    from meshcore.net.importers import import_topology

    doc = {"type": "NetworkGraph", "protocol": "olsr", "version": "1", "metric": "etx",
           "nodes": [{"id": "a"}, {"id": "b"}],
           "links": [{"source": "a", "target": "b", "cost": "1.0"}]}
    with pytest.raises(TopologyFormatError, match=r"links\[0\]\.cost.*string"):
        import_topology("map.json", text=json.dumps(doc))


def test_cnml_nested_200000_deep_is_refused_not_empty(tmp_path, capsys):
    path = tmp_path / "deep.cnml"
    path.write_text('<?xml version="1.0"?><cnml version="0.1">' + "<zone>" * 200_000
                    + "</zone>" * 200_000 + "</cnml>")
    assert main(["topology", "import", str(path), "-o", str(tmp_path / "out.json")]) == 1
    err = capsys.readouterr().err
    assert "nested more than" in err and len(err.strip().splitlines()) == 1  # was: 0 nodes, 0
    assert not (tmp_path / "out.json").exists()


def test_a_topology_file_over_the_cap_is_refused_before_it_is_read(tmp_path, capsys):
    from meshcore.net.importers import MAX_FILE_BYTES

    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    assert main(["topology", "import", str(path)]) == 1
    assert "limit" in capsys.readouterr().err


def _peak_bytes(fn) -> int:
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_topology_import_memory_is_the_graph_not_the_json_trees(tmp_path, capsys):
    # Before: the export built the whole document as dicts and then as one
    # string; at the 8 MiB cap, 685 MB RSS where the graph took 247 MB.
    from meshcore.net.importers import import_topology

    rng = random.Random(7)
    ids = [f"10.{i // 250}.{i % 250}.1" for i in range(500)]
    links = [{"source": rng.choice(ids), "target": rng.choice(ids),
              "cost": round(rng.uniform(1, 10), 3)} for _ in range(3000)]
    path = tmp_path / "graph.json"
    path.write_text(json.dumps({"type": "NetworkGraph", "protocol": "olsr", "version": "1",
                                "metric": "etx", "nodes": [{"id": i} for i in ids],
                                "links": links}))
    out = tmp_path / "map.json"
    assert main(["topology", "import", str(path), "-o", str(out)]) == 0  # modules loaded
    graph = _peak_bytes(lambda: import_topology(path))
    command = _peak_bytes(lambda: main(["topology", "import", str(path), "-o", str(out)]))
    capsys.readouterr()
    assert command < 1.3 * graph, (command, graph)  # was 3.0 x
    assert len(json.loads(out.read_text())["links"]) > 3000  # undirected: both ways


@pytest.mark.parametrize("indent", [2, None, 0, 4])
def test_the_streamed_export_is_the_text_of_the_whole_document(indent):
    from meshcore.net.netjson import from_netjson, iter_dumps, to_netjson
    from meshcore.net.topology import Topology

    topo = from_netjson(json.dumps({
        "type": "NetworkGraph", "protocol": "olsr", "version": "1", "metric": "etx",
        "nodes": [{"id": "a", "label": "A"}, {"id": "b"}],
        "links": [{"source": "a", "target": "b", "cost": 1.5},
                  {"source": "b", "target": "c", "cost": 4096.0}]}))
    for graph in (topo, Topology()):
        for broken in (True, False):
            whole = json.dumps(to_netjson(graph, include_broken=broken), indent=indent) + "\n"
            assert "".join(iter_dumps(graph, indent=indent, include_broken=broken)) == whole


# -- 2. topology import -o never replaces a device or a link ---------------------------------


def test_topology_import_to_dev_null_and_through_a_link(tmp_path, capsys):
    import os

    src = tmp_path / "map.json"
    src.write_text(json.dumps({"type": "NetworkGraph", "protocol": "olsr", "version": "1",
                               "metric": "etx", "nodes": [{"id": "a"}, {"id": "b"}],
                               "links": [{"source": "a", "target": "b", "cost": 1.0}]}))
    null = tmp_path / "null"
    os.mknod(null, 0o666 | __import__("stat").S_IFCHR, os.makedev(1, 3)) if os.geteuid() == 0 \
        else os.symlink("/dev/null", null)
    assert main(["topology", "import", str(src), "-o", str(null)]) == 0
    assert null.is_char_device() or (null.is_symlink() and os.readlink(null) == "/dev/null")
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert main(["topology", "import", str(src), "-o", str(link)]) == 0
    assert link.is_symlink() and json.loads(target.read_text())["type"] == "NetworkGraph"


# -- tracebacks: node peers on a status file of the wrong shape ------------------------------


@pytest.mark.parametrize(("content", "problem"), [
    ('{"peers": "x"}', "peers: expected a list"),
    ("[]", "expected a JSON object"),
    ('{"peers": [{"node_id": "a", "hops": 1}]}', "peers[0]: no 'state'"),
    ('{"peers": [7]}', "peers[0]: expected an object"),
    ('{"peers": [{"node_id": "a", "state": "alive", "hops": "1"}]}', "peers[0].hops"),
    ("[" * 100_000, "not a node status file"),
])
def test_node_peers_on_a_status_file_of_the_wrong_shape_is_one_line(tmp_path, capsys, content,
                                                                    problem):
    status = tmp_path / "status.json"
    status.write_text(content)
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'[node]\nstatus_file = "{status}"\n[net]\ncommunity_key = "{"p" * 12}"\n')
    assert main(["node", "peers", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert problem in err


# -- 11. a flooding babeld ---------------------------------------------------------------------


def test_the_babeld_view_is_bounded_and_counts_what_it_drops():
    from meshcore.net.importers.babel import BabelState

    state = BabelState(max_routes=1000, max_routes_per_neighbour=300)
    state.feed(["BABEL 1.0", "my-id 02:00:00:00:00:00:00:01", "ok"])
    for hop in range(5):
        for i in range(400):  # 2,000 distinct routes through 5 next hops
            state.feed_line(f"add route r{hop}-{i} prefix 10.{hop}.{i // 256}.{i % 256}/32 "
                            f"from 0.0.0.0/0 installed yes id 02:00:00:00:00:00:{hop:02x}:02 "
                            f"metric 256 refmetric 0 via fe80::{hop + 1} if eth0")
    routes = state.routes()
    assert len(routes) == 1000
    assert max(sum(1 for r in routes if r.via == f"fe80::{h + 1}") for h in range(5)) == 300
    assert state.dropped == {"route": 1000}
    # Updates of kept routes still apply, and a flush makes room.
    state.feed_line("flush route r0-0 prefix 10.0.0.0/32 from 0.0.0.0/0 installed yes "
                    "id 02:00:00:00:00:00:00:02 metric 256 refmetric 0 via fe80::1 if eth0")
    state.feed_line("add route new prefix 10.9.9.9/32 from 0.0.0.0/0 installed yes "
                    "id 02:00:00:00:00:00:00:02 metric 256 refmetric 0 via fe80::1 if eth0")
    assert len(state.routes()) == 1000 and state.dropped == {"route": 1000}


def test_a_flooding_babeld_is_read_at_a_bounded_rate():
    import asyncio

    from meshcore.node.babeld import BabeldClient

    async def run():
        lines = ["BABEL 1.0", "my-id 02:00:00:00:00:00:00:01", "ok"]
        flood = [f"add route f{i} prefix 10.1.{i // 256}.{i % 256}/32 from 0.0.0.0/0 installed "
                 f"yes id 02:00:00:00:00:00:00:02 metric 256 refmetric 0 via fe80::1 if eth0"
                 for i in range(3000)]

        async def handle(reader, writer):
            for line in lines:
                writer.write(line.encode() + b"\n")
            await reader.readline()  # monitor
            writer.write(b"ok\n")
            for line in flood:
                writer.write(line.encode() + b"\n")
            await writer.drain()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = BabeldClient(f"127.0.0.1:{port}", discovery_port=PORT, max_line_rate=2000,
                              line_burst=500)
        task = asyncio.create_task(client.run())
        loop = asyncio.get_running_loop()
        end = loop.time() + 20
        while client.stats.lines < 3000 + len(lines) + 1:
            assert loop.time() < end, client.stats
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        client.stop()
        await task
        server.close()
        await server.wait_closed()
        return client

    client = asyncio.run(run())
    assert client.stats.throttled > 0  # past the burst, reading paused (not the CPU at 100%)
    assert len(client.state.routes()) == 3000 and client.stats.dropped == 0
