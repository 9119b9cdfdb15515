"""Two cores composed: the cache with its content storage driver, routes with fairness.

The storage model: the cache core decides what is kept, the chunk store and
catalog persist and execute it. Routes and the fair scheduler: a holder
ranked first by locality still gets no exemption from the scheduler.
"""

from __future__ import annotations

import io
import random

from _content_util import keypair, payload, settings

from meshcore.cache import cache_budget
from meshcore.content import ContentNode
from meshcore.content.driver import ContentStorage
from meshcore.content.settings import LOCAL_ADMIN
from meshcore.fairness.policy import Policy
from meshcore.fairness.scheduler import FairScheduler, Transfer
from meshcore.fairness.settings import ClassSpec, FairnessSettings
from meshcore.identity import Principal
from meshcore.net.routing import Routes
from meshcore.net.topology import Topology
from meshcore.router import Router, RouterSettings
from meshcore.tiers import Tier


def _router(budget: int) -> Router:
    topo = Topology()
    topo.add_node("me")
    return Router(RouterSettings(cache_bytes=budget), node_id="me", rng=random.Random(0),
                  now=0.0, topology=topo)


def _import_cached(origin: ContentNode, here: ContentNode, cid: bytes) -> None:
    """Copy an item from ``origin`` to ``here`` the way a fetch does: manifest, then chunks."""
    here.import_manifest(origin.store.read_manifest(cid), now=10.0)
    for digest, _size in origin.catalog.chunks_of(cid):
        here.receive_chunk(digest, origin.store.get(digest))


def test_the_cache_decides_and_the_store_and_catalog_carry_it_out(tmp_path):
    key = keypair(1)
    with ContentNode(settings(tmp_path / "origin"), now=0.0) as origin, \
            ContentNode(settings(tmp_path / "here"), now=0.0) as here:
        own = here.publish(LOCAL_ADMIN, io.BytesIO(payload(120_000, 1)), keypair=key, now=1.0,
                           name="own.txt", access="public").content_id
        cached = []
        for i in range(2):
            cid = origin.publish(LOCAL_ADMIN, io.BytesIO(payload(150_000, 10 + i)), keypair=key,
                                 now=2.0, name=f"c{i}.txt", access="public").content_id
            _import_cached(origin, here, cid)
            cached.append(cid)
        storage = ContentStorage(here, node_id="me")
        events = storage.items(wall=20.0)
        assert {e.key for e in events} == {own, *cached}
        assert [e.pin for e in events if e.key == own] == [True]  # our own publication
        # The cache's budget holds the own item and one cached item, not both.
        router = _router(budget=120_000 + 160_000)
        effects = []
        for event in events:
            effects += router.handle(event, now=1.0)
        storage.apply(effects)
        kept = [cid for cid in cached if cid in router.cache]
        gone = [cid for cid in cached if cid not in router.cache]
        assert len(kept) == 1 and len(gone) == 1 and own in router.cache
        # What the cache let go is gone from the catalog, the manifest and the store.
        assert here.catalog.get(gone[0]) is None and not here.store.has_manifest(gone[0])
        kept_chunks = {d for cid in (own, kept[0]) for d, _ in here.catalog.chunks_of(cid)}
        for digest, _ in origin.catalog.chunks_of(gone[0]):
            assert here.store.has(digest) == (digest in kept_chunks)
        assert here.store.used_bytes <= router.cache.budget_bytes + 64 * 1024  # + manifests
        # The store's limit stays the disk's hard stop; the cache budget is below it.
        assert cache_budget(here.settings.budget_bytes) < here.settings.budget_bytes


def test_an_expired_item_on_disk_is_removed_at_start(tmp_path):
    key = keypair(2)
    with ContentNode(settings(tmp_path), now=0.0) as node:
        cid = node.publish(LOCAL_ADMIN, io.BytesIO(payload(50_000, 3)), keypair=key, now=1.0,
                           name="notice.txt", access="public", expires=100).content_id
        storage = ContentStorage(node, node_id="me")
        assert [e.key for e in storage.items(wall=50.0)] == [cid]
        assert storage.items(wall=200.0) == []
        assert node.catalog.get(cid) is None and storage.removed == 1


def test_routes_rank_locality_but_the_scheduler_grants_no_exemption():
    topo = Topology()
    for n in ("me", "near", "far", "via"):
        topo.add_node(n)
    topo.add_link("me", "near", 1.0, origin="sim", symmetric=True)
    topo.add_link("me", "via", 1.0, origin="sim", symmetric=True)
    topo.add_link("via", "far", 1.0, origin="sim", symmetric=True)
    routes = Routes(topo, self_id="me")
    ranked = routes.select_sources(["far", "near"], 1_000_000)
    assert [r.node_id for r in ranked] == ["near", "far"]
    assert ranked[0].tier is Tier.ONE_HOP and ranked[1].tier is Tier.MULTI_HOP
    # Serving both: the near peer's transfer gets the same share as the far one's.
    fair = FairnessSettings({"default": ClassSpec("default")}, "default", chunk=16384)
    sched = FairScheduler(Policy(fair), now=0.0)
    for tid, peer in enumerate(("near", "far")):
        sched.submit(Transfer(tid, 10**7, Principal(node=peer), local=(peer == "near")),
                     now=0.0)
    sent = {0: 0, 1: 0}
    for _ in range(200):
        transfer, n = sched.next_send(now=0.0)
        sent[transfer.transfer_id] += n
    assert sent[0] == sent[1]
