"""The Router on the simulator: the first request that crosses the mesh, and what goes wrong.

Every test runs real Routers (cache, fair scheduler, congestion, analytics)
on a seeded simulated mesh through the one host loop; items carry real bytes
(content-defined chunks named by BLAKE2b) unless the test is about scale.
"""

from __future__ import annotations

import random

import pytest

from meshcore.cache import FreeChunk
from meshcore.clock import Calendar
from meshcore.core import Core
from meshcore.fairness.settings import ClassSpec, FairnessSettings
from meshcore.identity import Account, Principal
from meshcore.net.topology import Topology
from meshcore.router import (
    ChunkArrived,
    ClientRequest,
    Deliver,
    MessageReceived,
    RequestRefused,
    Router,
    RouterSettings,
    SendMessage,
    WallClock,
)
from meshcore.router.messages import ChunkRequest, ChunkUnavailable, ItemInfo, ItemQuery
from meshcore.sim.generators import chain, random_geometric
from meshcore.sim.mesh import RouterMesh
from meshcore.tiers import Tier

SALT = "simulation-salt"


def _bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _settings(**kw) -> RouterSettings:
    return RouterSettings(analytics_salt=SALT, **kw)


def test_first_request_crosses_three_hops_then_is_a_local_hit():
    mesh = RouterMesh(chain(4), settings=_settings(), seed=1)
    a, c = "r0000", "r0003"
    data = _bytes(700_000, 1)
    chunks = mesh.publish(c, "lesson.pdf", data=data, chunk=65536)
    assert len(chunks) > 4
    first = mesh.request(a, "lesson.pdf", at=1.0)
    mesh.run(30.0)
    out = mesh.outcomes[first]
    assert out.served and out.tier is Tier.MULTI_HOP and out.source == c
    assert out.nbytes == len(data) and out.seconds > 0
    # A verified and stored every chunk: the bytes are the publisher's.
    store = mesh.hosts[a].storage
    assert b"".join(store.chunks[d] for d, _ in chunks) == data
    assert set(store.kept) >= {d for d, _ in chunks}
    second = mesh.request(a, "lesson.pdf", at=31.0, principal=Principal(device="aa:bb:cc:dd:ee:01"))
    mesh.run(40.0)
    assert mesh.outcomes[second].tier is Tier.LOCAL and mesh.outcomes[second].seconds == 0
    # Both collectors recorded it: A by tier, C as bytes served to a peer.
    totals = mesh.routers[a].collector.totals()
    assert totals["req_mesh"] == 1 and totals["req_local"] == 1
    assert totals["bytes_mesh"] == len(data)
    assert mesh.routers[c].collector.link_usage()[(c, a)]["bytes"] == len(data)
    # The chunks crossed three hops, once each (plus headers).
    assert 3 * len(data) <= mesh.network.message_bytes_hops < 3.1 * len(data)
    # C's fair scheduler sent them, charged to A's node account.
    sent = mesh.routers[c].scheduler.ledger.period_usage(Account("node", a), "day", now=40.0)
    assert sent == len(data)


def test_clients_asking_at_once_make_one_fetch():
    mesh = RouterMesh(chain(3), settings=_settings(), seed=2)
    chunks = mesh.publish("r0002", "news", data=_bytes(200_000, 2), chunk=32768)
    ids = [mesh.request("r0000", "news", at=1.0 + i * 0.001) for i in range(5)]
    mesh.run(20.0)
    assert all(mesh.outcomes[i].served for i in ids)
    stats = mesh.routers["r0000"].stats
    assert stats.fetches == 1 and stats.joined == 4
    assert mesh.routers["r0002"].stats.chunks_served == len(chunks)


def test_nearest_holder_wins_and_a_corrupt_one_is_bypassed():
    # r0001 is nearest to r0000 but serves damaged bytes; r0003 is honest.
    mesh = RouterMesh(chain(4), settings=_settings(), seed=3)
    data = _bytes(300_000, 3)
    mesh.publish("r0001", "map", data=data, chunk=65536)
    mesh.publish("r0003", "map", data=data, chunk=65536)
    mesh.hosts["r0001"].storage.corrupt = True
    rid = mesh.request("r0000", "map", at=1.0)
    mesh.run(30.0)
    out = mesh.outcomes[rid]
    assert out.served and out.source == "r0003"
    stats = mesh.routers["r0000"].stats
    assert stats.corrupt_chunks >= 1 and stats.failovers == 1
    assert mesh.hosts["r0000"].storage.rejected >= 1
    store = mesh.hosts["r0000"].storage
    kept = mesh.routers["r0000"].cache.chunks_of("map")
    assert b"".join(store.chunks[d] for d, _ in kept) == data


def _ring(n: int) -> Topology:
    """``n`` routers in a loop (a chain with its ends joined): two paths to everyone."""
    topo = chain(n)
    topo.add_link("r0000", f"r{n - 1:04d}", 1.0, origin="sim", symmetric=True,
                  latency=0.05, bandwidth=1_000_000.0, loss=0.0)
    return topo


def test_a_holder_that_dies_mid_transfer_is_replaced_and_the_fetch_resumes():
    # r0002 and r0004 are both two hops from r0000, on either side of the ring.
    mesh = RouterMesh(_ring(6), settings=_settings(fetch_window=2), seed=4)
    data = _bytes(2_000_000, 4)
    chunks = mesh.publish("r0002", "video", data=data, chunk=65536)
    mesh.publish("r0004", "video", data=data, chunk=65536)
    rid = mesh.request("r0000", "video", at=1.0)
    mesh.run(2.2)
    got_before = mesh.routers["r0000"].stats.chunks_fetched
    assert 0 < got_before < len(chunks)
    mesh.crash("r0002")
    mesh.run(120.0)
    out = mesh.outcomes[rid]
    assert out.served and out.source == "r0004"
    stats = mesh.routers["r0000"].stats
    # Resumed where it was: no chunk fetched twice.
    assert stats.chunks_fetched == len({d for d, _ in chunks})
    assert mesh.routers["r0004"].stats.chunks_served == len(chunks) - got_before
    store = mesh.hosts["r0000"].storage
    assert b"".join(store.chunks[d] for d, _ in chunks) == data


def test_no_holder_is_a_clear_refusal():
    mesh = RouterMesh(chain(2), settings=_settings(), seed=5)
    rid = mesh.request("r0000", "nowhere", at=1.0)
    mesh.run(5.0)
    assert not mesh.outcomes[rid].served and mesh.outcomes[rid].reason == "no-holder"
    assert mesh.routers["r0000"].collector.totals()["req_failed"] == 1


def test_chunks_shared_with_a_held_item_are_not_fetched_again():
    mesh = RouterMesh(chain(3), settings=_settings(), seed=6)
    v1 = _bytes(400_000, 6)
    v2 = v1[:300_000] + _bytes(100_000, 7)  # a new version: most chunks identical
    c1 = mesh.publish("r0002", "doc-v1", data=v1, chunk=16384)
    c2 = mesh.publish("r0002", "doc-v2", data=v2, chunk=16384)
    shared = {d for d, _ in c1} & {d for d, _ in c2}
    assert shared
    mesh.request("r0000", "doc-v1", at=1.0)
    mesh.run(20.0)
    before = mesh.routers["r0000"].stats.chunks_fetched
    rid = mesh.request("r0000", "doc-v2", at=21.0)
    mesh.run(40.0)
    assert mesh.outcomes[rid].served
    stats = mesh.routers["r0000"].stats
    assert stats.chunks_fetched - before == len({d for d, _ in c2} - shared)
    assert stats.chunks_deduplicated == len(shared)


def test_router_follows_the_protocol_and_refuses_what_it_does_not_hold():
    topo = Topology()
    for n in ("a", "b"):
        topo.add_node(n)
    topo.add_link("a", "b", 1.0, origin="sim", symmetric=True)
    r = Router(_settings(), node_id="a", rng=random.Random(0), now=0.0, topology=topo)
    assert isinstance(r, Core)
    out = r.handle(MessageReceived("b", ChunkRequest(7, b"x" * 32, 100)), now=1.0)
    assert out == [SendMessage("b", ChunkUnavailable(7, b"x" * 32, "not-held"))]
    out = r.handle(MessageReceived("b", ItemQuery(8, "k")), now=1.0)
    assert out == [SendMessage("b", ItemInfo(8, "k", (), False, None))]
    # An unsolicited chunk the host staged is freed, not kept.
    out = r.handle(ChunkArrived("b", 99, b"y" * 32, 10, True), now=1.0)
    assert out == [FreeChunk(b"y" * 32, 10)] and r.stats.unsolicited == 1
    # A client asking for something nobody holds is refused at once.
    out = r.handle(ClientRequest(1, "k"), now=2.0)
    assert [e for e in out if isinstance(e, RequestRefused)] == [RequestRefused(1, "k",
                                                                                "no-holder")]
    assert not [e for e in out if isinstance(e, Deliver)]


def test_a_wall_clock_step_keeps_the_quota_period():
    cal = Calendar(offset=0.0, trusted_after=1_704_067_200.0)
    fair = FairnessSettings({"default": ClassSpec("default")}, "default", chunk=16384)
    r = Router(RouterSettings(fairness=fair), node_id="a", rng=random.Random(0), now=5.0,
               calendar=cal, topology=_pair())
    ledger = r.scheduler.ledger
    house = Account("household", "flat-3")
    # Booted in 1970 (no real-time clock): usage is counted in a 1970 day.
    ledger.record(house, 5000, direction="down", now=10.0)
    assert ledger.period_usage(house, "day", now=10.0) == 5000
    (step,) = r.handle(WallClock(1_780_000_000.0), now=20.0)  # NTP answers: 2026
    assert step.delta > 50 * 365 * 86400 and not step.was_trusted and step.is_trusted
    # The usage is still this day's, and elapsed time is unchanged.
    assert ledger.period_usage(house, "day", now=20.0) == 5000
    assert ledger.window_usage(house, "minute", now=20.0) == 5000
    # An hour forward across midnight neither resets nor doubles the day.
    wall = cal.wall(30.0)
    midnight = (wall // 86400 + 1) * 86400
    r.handle(WallClock(midnight + 60.0), now=30.0)
    assert ledger.period_usage(house, "day", now=30.0) == 5000
    # Small drift is absorbed, not a step.
    assert r.handle(WallClock(cal.wall(40.0) + 0.5), now=40.0) == []


def _pair() -> Topology:
    topo = Topology()
    for n in ("a", "b"):
        topo.add_node(n)
    topo.add_link("a", "b", 1.0, origin="sim", symmetric=True)
    return topo


@pytest.mark.scenario
def test_many_clients_many_items_at_200_nodes():
    topo = random_geometric(200, seed=11)
    mesh = RouterMesh(topo, settings=_settings(cache_bytes=256 << 20), seed=11)
    rng = random.Random(11)
    ids = sorted(mesh.routers)
    items = [f"item-{i}" for i in range(60)]
    for key in items:  # a few holders each, sizes only
        for holder in rng.sample(ids, 3):
            mesh.publish(holder, key, size=rng.randint(50_000, 2_000_000), chunk=262144)
    asked = []
    t = 1.0
    for _ in range(600):
        node, key = rng.choice(ids), rng.choice(items)
        asked.append((mesh.request(node, key, at=t), node, key))
        t += rng.expovariate(10.0)
    mesh.run(t + 300.0)
    summary = mesh.summary()
    assert summary["unanswered"] == 0 and summary["refused"] == 0
    assert summary["served"] == 600
    # Every tier a mesh of this shape has, local hits included.
    assert {"local", "one-hop", "multi-hop"} <= set(summary["by_tier"])
    # A node asking again, after its first fetch of the item finished, is
    # served locally (the caches are large enough to keep everything here).
    done: dict[tuple[str, str], float] = {}
    repeats = 0
    for rid, node, key in asked:
        out = mesh.outcomes[rid]
        first = done.get((node, key))
        if first is not None and first <= out.asked_at:
            assert out.tier is Tier.LOCAL, out
            repeats += 1
        done.setdefault((node, key), out.asked_at + out.seconds)
    assert repeats > 0
    # Analytics agree with the outcomes, node by node.
    for nid, router in mesh.routers.items():
        mine = [o for o in mesh.outcomes.values() if o.node == nid and o.served]
        totals = router.collector.totals()
        assert sum(totals[f"req_{g}"] for g in ("local", "segment", "mesh")) == len(mine)
