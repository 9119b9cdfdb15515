"""The Router's less travelled paths, driven in memory with a fake clock (no simulator).

Two or three routers are wired by hand: every ``SendMessage`` / ``SendSlice``
a router returns is delivered to its peer by the test (or dropped, or
answered with ``MessageFailed``), so each failure can be staged exactly.
"""

from __future__ import annotations

import itertools
import random

import pytest

from meshcore.cache import Evicted, FreeChunk
from meshcore.config import parse_config
from meshcore.errors import ConfigError
from meshcore.fairness.settings import ClassSpec, FairnessSettings
from meshcore.kernels import blake2b_256
from meshcore.net.discovery import (
    Advertise,
    DaemonNeighbours,
    DiscoverySettings,
    Peer,
    PeerChanged,
    PeerJoined,
    PeerLeft,
    Start,
)
from meshcore.net.links import LinkChange
from meshcore.net.routing import RoutesChanged, TopologyChanged
from meshcore.net.topology import Topology
from meshcore.router import (
    ChunkArrived,
    ClientRequest,
    Deliver,
    Directory,
    EgressIdle,
    Holding,
    ItemPublished,
    MessageFailed,
    MessageReceived,
    RequestRefused,
    Router,
    RouterSettings,
    SendMessage,
    SendSlice,
)
from meshcore.router.messages import ChunkRequest, ChunkUnavailable, ItemQuery

SALT = "edge-test-salt"
DATA = random.Random(5).randbytes(40_000)
DIGEST = blake2b_256(DATA)


def _topo(*names: str) -> Topology:
    t = Topology()
    for n in names:
        t.add_node(n)
    for a, b in itertools.pairwise(names):
        t.add_link(a, b, 1.0, origin="sim", symmetric=True)
    return t


def _router(name: str, topo: Topology, directory: Directory, **kw) -> Router:
    settings = RouterSettings(analytics_salt=SALT, **kw)
    return Router(settings, node_id=name, rng=random.Random(0), now=0.0, topology=topo,
                  directory=directory)


def _holding(router: Router, directory: Directory, key: str, now: float = 0.0) -> None:
    for e in router.handle(ItemPublished(key, ((DIGEST, len(DATA)),), pin=True), now=now):
        if isinstance(e, Holding):
            directory.apply(e)


def _sent(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


def test_settings_are_checked():
    for bad in (dict(cache_bytes=-1), dict(cache_bytes=True), dict(egress_rate=0),
                dict(query_timeout=float("inf")), dict(fetch_window=0), dict(max_holders=1.5)):
        with pytest.raises(ValueError):
            RouterSettings(**bad)
    with pytest.raises(TypeError, match="RouterSettings"):
        Router(object(), node_id="a", rng=random.Random(0), now=0.0)  # type: ignore[arg-type]
    cfg = parse_config('[cache]\npolicy = "fifo"\n', "node.toml")
    with pytest.raises(ConfigError, match=r"cache\.policy"):
        RouterSettings.from_config(cfg)
    cfg = parse_config('[cache]\nmax_bytes = "1 GiB"\n', "node.toml")
    with pytest.raises(ConfigError, match="unknown key"):
        RouterSettings.from_config(cfg)
    cfg = parse_config('[node]\nfetch_window = 0\n', "node.toml")
    with pytest.raises(ConfigError, match=r"node\.fetch_window"):
        RouterSettings.from_config(cfg)


def test_an_unanswered_query_times_out_and_the_next_holder_is_asked():
    d = Directory()
    topo = _topo("a", "b", "c")
    a = _router("a", topo, d, query_timeout=5.0)
    b, c = _router("b", topo, d), _router("c", topo, d)
    _holding(b, d, "k")
    _holding(c, d, "k")
    out = a.handle(ClientRequest(1, "k"), now=1.0)
    (ask,) = _sent(out, SendMessage)
    assert ask.peer == "b" and isinstance(ask.message, ItemQuery)
    assert a.get_timer() == pytest.approx(6.0)
    # b never answers: at the deadline a gives up on b and asks c.
    assert _sent(a.handle_timer(now=5.9), SendMessage) == []
    (ask2,) = _sent(a.handle_timer(now=6.0), SendMessage)
    assert ask2.peer == "c" and a.stats.timeouts == 1 and a.stats.failovers == 1
    # c answers; a asks for the chunk; c refuses (it lost it): no holder is left.
    info = _sent(c.handle(MessageReceived("a", ask2.message), now=6.1), SendMessage)[0]
    (req,) = _sent(a.handle(MessageReceived("c", info.message), now=6.2), SendMessage)
    assert isinstance(req.message, ChunkRequest)
    out = a.handle(MessageReceived("c", ChunkUnavailable(req.message.request_id, DIGEST, "gone")),
                   now=6.3)
    assert _sent(out, RequestRefused) == [RequestRefused(1, "k", "no-holder")]
    assert a.collector.totals()["req_failed"] == 1


def test_a_lost_message_fails_over_and_late_answers_are_ignored():
    d = Directory()
    topo = _topo("a", "b", "c")
    a, b, c = (_router(n, topo, d) for n in "abc")
    _holding(b, d, "k")
    _holding(c, d, "k")
    (ask,) = _sent(a.handle(ClientRequest(1, "k"), now=1.0), SendMessage)
    (ask2,) = _sent(a.handle(MessageFailed("b", ask.message), now=1.1), SendMessage)
    assert ask2.peer == "c"
    # b's answer to the first query arrives late: ignored.
    late = _sent(b.handle(MessageReceived("a", ask.message), now=1.2), SendMessage)[0]
    assert a.handle(MessageReceived("b", late.message), now=1.3) == []
    info = _sent(c.handle(MessageReceived("a", ask2.message), now=1.4), SendMessage)[0]
    (req,) = _sent(a.handle(MessageReceived("c", info.message), now=1.5), SendMessage)
    # c serves it through its scheduler: one slice, then the egress is busy.
    out = c.handle(MessageReceived("a", req.message), now=1.6)
    (piece,) = _sent(out, SendSlice)
    assert piece.message.nbytes == 16384 and c.handle(EgressIdle(), now=1.61)
    # The chunk arrives complete: a answers its client.
    out = a.handle(ChunkArrived("c", req.message.request_id, DIGEST, len(DATA), True), now=2.0)
    (deliver,) = _sent(out, Deliver)
    assert deliver.request_id == 1 and deliver.size == len(DATA)
    assert _sent(out, Holding) == [Holding("a", "k", True, len(DATA))]


def test_a_peer_that_becomes_unreachable_stops_being_sent_to():
    d = Directory()
    topo = _topo("a", "b")
    b = _router("b", topo, d)
    _holding(b, d, "k")
    out = b.handle(MessageReceived("a", ChunkRequest(9, DIGEST, len(DATA))), now=1.0)
    (piece,) = _sent(out, SendSlice)
    assert b.status()["sending"] == 1
    assert b.handle(MessageFailed("a", piece.message), now=1.1) == []
    assert b.status()["sending"] == 0 and len(b.scheduler) == 0
    assert b.handle(EgressIdle(), now=1.2) == []  # nothing left to send


def test_a_hard_quota_refuses_a_peer_with_a_reason():
    fair = FairnessSettings({"tiny": ClassSpec("tiny", daily_quota=1000)}, "tiny", chunk=16384)
    d = Directory()
    b = _router("b", _topo("a", "b"), d, fairness=fair)
    _holding(b, d, "k")
    out = b.handle(MessageReceived("a", ChunkRequest(1, DIGEST, len(DATA))), now=1.0)
    assert _sent(out, SendSlice)
    b.handle(EgressIdle(), now=1.01)
    b.handle(EgressIdle(), now=1.02)
    b.handle(EgressIdle(), now=1.03)
    out = b.handle(MessageReceived("a", ChunkRequest(2, DIGEST, len(DATA))), now=2.0)
    (no,) = _sent(out, SendMessage)
    assert isinstance(no.message, ChunkUnavailable) and "refused" in no.message.reason


def test_without_routes_holders_are_tried_in_directory_order():
    d = Directory()
    a = Router(RouterSettings(), node_id="a", rng=random.Random(0), now=0.0, directory=d)
    assert a.routes is None
    d.apply(Holding("z", "k", True, 10))
    d.apply(Holding("y", "k", True, 10))
    (ask,) = _sent(a.handle(ClientRequest(1, "k"), now=1.0), SendMessage)
    assert ask.peer == "y"
    # The routing daemon's first view builds the routes.
    assert a.handle(TopologyChanged(_topo("a", "y", "z")), now=2.0) == []
    assert a.routes is not None and a.routes.hops("z") == 2
    (changed,) = a.handle(LinkChange("a", "y", 1.0, 3.0), now=3.0)
    assert isinstance(changed, RoutesChanged)


def test_directory_forgets_a_node_and_evictions_withdraw():
    d = Directory()
    d.apply(Holding("n1", "k", True, 5))
    d.apply(Holding("n2", "k", True, 5))
    d.apply(Holding("n1", "j", True, 5))
    assert d.holders("k") == ["n1", "n2"] and d.size("k") == 5 and len(d) == 2
    assert d.forget_node("n1") == 2
    assert d.holders("k") == ["n2"] and d.holders("j") == [] and len(d) == 1
    d.apply(Holding("n2", "k", False))
    assert d.holders("k") == []
    # A router whose cache evicts an item withdraws it.
    r = _router("a", _topo("a"), Directory(), cache_bytes=50_000, cache_policy="lru")
    r.handle(ItemPublished("one", ((b"1" * 32, 30_000),)), now=0.0)
    out = r.handle(ItemPublished("two", ((b"2" * 32, 30_000),)), now=1.0)
    withdrawn = [e for e in out if isinstance(e, Holding) and not e.held]
    evicted = [e.key for e in out if isinstance(e, Evicted)]
    assert withdrawn and {w.key for w in withdrawn} == set(evicted)
    assert any(isinstance(e, FreeChunk) for e in out)


def test_discovery_runs_inside_the_router_and_feeds_analytics():
    key = b"k" * 32
    settings = RouterSettings(analytics_salt=SALT,
                              discovery=DiscoverySettings(key, interfaces=("lan",)))
    r = Router(settings, node_id="a", rng=random.Random(1), now=0.0, topology=_topo("a"))
    out = r.handle(Start(), now=0.0)
    assert out  # the announce-on-join burst
    assert r.handle(Advertise(0.5, 1.0, 7), now=0.1) == []
    assert r.discovery.summary_version == 7
    r.handle(DaemonNeighbours((("10.0.0.2", 47474),)), now=0.2)
    assert r.get_timer() is not None
    assert r.status()["node_id"] == "a"


def test_discovery_facts_become_analytics_events():
    r = _router("a", _topo("a"), Directory())
    reg = r.collector.registry
    neighbours, changes = reg.get("meshcore_neighbors"), reg.get("meshcore_neighbor_changes")
    etx, link_changes = reg.get("meshcore_link_etx"), reg.get("meshcore_link_changes")

    def value(metric, *labels):
        return dict(metric.samples())[labels].value

    out: list = []
    r._route([PeerJoined(Peer("p1", etx=1.5)), PeerJoined(Peer("p2"))], 1.0, out)
    assert value(neighbours) == 2  # p2 has no ETX measured yet: no link event
    assert value(etx, "p1") == 1.5 and value(link_changes) == 1
    r._route([PeerChanged(Peer("p1", etx=2.0), ("etx", "rtt")),
              PeerChanged(Peer("p1", state="suspect"), ("state",))], 2.0, out)
    assert value(etx, "p1") == 2.0 and value(link_changes) == 2
    r._route([PeerLeft("p2", "timeout")], 70.0, out)  # across a window boundary
    assert value(neighbours) == 1
    assert (value(changes, "up"), value(changes, "down")) == (2, 1)
    assert len(out) == 5  # every fact also reaches the host
