"""The daemon hosts the whole Router: content on disk reaches the cache, analytics reach disk.

A real ``NodeDaemon`` on loopback with a content state folder and a rollup
store: what was published before the start is offered to the cache core at
start (pinned: it is this node's own), a client request for it is a local
hit served through the one host loop, a request for something no router
holds is refused at once, and the analytics windows are flushed to the
rollup store at shutdown.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket

from _content_util import keypair

from meshcore.analytics.rollups import RollupStore
from meshcore.config import parse_config
from meshcore.content import ContentNode
from meshcore.content.settings import LOCAL_ADMIN, ContentSettings
from meshcore.node.daemon import NodeDaemon, NodeSettings
from meshcore.router import ClientRequest, Deliver, RequestRefused
from meshcore.tiers import Tier

KEY = 'community_key = "hex:00112233445566778899aabbccddeeff"'


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_daemon_runs_every_core_on_its_storage(tmp_path):
    state, rollups = tmp_path / "state", tmp_path / "rollups.sqlite"
    text = (f"[node]\nid = 'solo'\nbind = '127.0.0.1'\nstatus_file = '{tmp_path / 's.json'}'\n"
            f"status_interval = '0.2s'\n"
            f"[net]\n{KEY}\nmulticast = false\nport = {_free_udp_port()}\n"
            f"[content]\nstate_dir = '{state}'\nbudget = '64 MiB'\nfsync = false\n"
            f"[analytics]\nsalt = 'a-long-test-salt'\nrollup_path = '{rollups}'\n")
    cfg = parse_config(text, str(tmp_path / "node.toml"))
    with ContentNode(ContentSettings.from_config(cfg), now=1.0) as node:
        cid = node.publish(LOCAL_ADMIN, io.BytesIO(b"lesson " * 20_000), keypair=keypair(3),
                           now=2.0, name="lesson.txt", access="public").content_id
    daemon = NodeDaemon(NodeSettings.from_config(cfg))
    answers: list = []

    async def scenario() -> None:
        run = asyncio.create_task(daemon.run(duration=2.0))
        while daemon.driver is None or daemon.driver.host is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        answers.extend(daemon.driver.feed(ClientRequest(1, cid)))
        answers.extend(daemon.driver.feed(ClientRequest(2, b"\x01" * 32)))
        await run

    asyncio.run(scenario())
    # The item on disk was offered to the cache at start, pinned as our own.
    assert cid in daemon.router.cache and daemon.router.cache.is_pinned(cid)
    (deliver,) = [a for a in answers if isinstance(a, Deliver)]
    assert deliver.request_id == 1 and deliver.tier is Tier.LOCAL
    (refused,) = [a for a in answers if isinstance(a, RequestRefused)]
    assert refused.request_id == 2 and refused.reason == "no-holder"
    # The analytics windows reached the rollup store at shutdown.
    store = RollupStore(rollups)
    try:
        assert store.count("minute") >= 1
    finally:
        store.close()
    status = json.loads((tmp_path / "s.json").read_text())
    assert status["router"]["stats"]["hits"] == 1
    assert status["router"]["stats"]["refused"] == 1
    assert status["router"]["cache"]["items"] == 1
