"""A simulated mesh of routers: one :class:`~meshcore.router.Router` per node, clients' requests.

:class:`RouterMesh` puts a Router (with its cache, fair scheduler,
congestion controller and, with a salt, analytics) on every router node of a
topology, each driven by its :class:`~meshcore.sim.hosts.CoreHost` and the
one host loop, with a :class:`~meshcore.sim.storage.SimStorage` as its
storage driver. A plain shared :class:`~meshcore.router.Directory` tells each
router who holds what (the stand-in for cache coordination, and its oracle).

Items are published on a node (:meth:`RouterMesh.publish`) either with real
bytes (cut by the content-defined chunker, named by BLAKE2b-256, verified on
arrival) or as sizes only (synthetic digests: large workloads). Clients'
requests are injected at their router at a simulated time
(:meth:`RouterMesh.request`); every answer is recorded in
:attr:`RouterMesh.outcomes`, and :meth:`RouterMesh.summary` reports requests
served by tier, bytes times hops carried, and time to serve.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from ..identity import GUEST, Principal
from ..kernels import blake2b_256, cut_points
from ..net.routing import Routes
from ..router.directory import Directory
from ..router.events import (
    ClientRequest,
    Holding,
    ItemPublished,
    RequestCompleted,
    RequestRefused,
)
from ..router.router import Router, RouterSettings
from ..tiers import Tier
from .hosts import CoreHost
from .scenarios import Scenario
from .storage import SimStorage

__all__ = ["Outcome", "RouterMesh", "chunk_item", "synthetic_chunks"]

#: The routers' service port in the simulation (discovery datagrams use it).
PORT = 8470


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one client request ended: served from ``tier`` by ``source``, or refused."""

    request_id: int
    node: str
    key: Hashable
    asked_at: float
    served: bool
    tier: Tier | None = None
    source: str | None = None
    nbytes: int = 0
    seconds: float = 0.0
    reason: str = ""


def chunk_item(data: bytes, *, avg_size: int = 16384) -> list[tuple[bytes, int, bytes]]:
    """Cut ``data`` with the content-defined chunker: ``(digest, size, bytes)`` per chunk."""
    out = []
    start = 0
    for end in cut_points(data, avg_size // 4, avg_size, avg_size * 4).tolist():
        piece = bytes(data[start:end])
        out.append((blake2b_256(piece), len(piece), piece))
        start = end
    return out


def synthetic_chunks(key: Hashable, size: int, *, chunk: int = 262144
                     ) -> tuple[tuple[bytes, int], ...]:
    """Chunks of a sizes-only item: digests derived from ``key``, ``chunk`` bytes each."""
    out = []
    left, i = size, 0
    while left > 0 or i == 0:
        n = min(chunk, left)
        out.append((blake2b_256(f"{key!r}/{i}".encode()), n))
        left -= n
        i += 1
        if left <= 0:
            break
    return tuple(out)


class RouterMesh:
    """Routers on every node of ``topology`` (or of ``nodes``), seeded (see the module docstring).

    ``settings`` is one :class:`RouterSettings` for all, or a function of the
    node id. ``network_options`` go to :class:`~meshcore.sim.network.SimNetwork`.
    """

    def __init__(
        self,
        topology: Any,
        *,
        settings: RouterSettings | Callable[[str], RouterSettings] | None = None,
        seed: int = 0,
        nodes: Iterable[str] | None = None,
        **network_options: Any,
    ) -> None:
        self.scenario = Scenario(topology, seed=seed, **network_options)
        self.sim = self.scenario.sim
        self.network = self.scenario.network
        self.directory = Directory()
        self.outcomes: dict[int, Outcome] = {}
        self._asked: dict[int, tuple[str, Hashable, float]] = {}
        self._nearest: dict[int, int] = {}  # request -> hops to the nearest holder then
        self._ids = itertools.count(1)
        make = settings if callable(settings) else (lambda _n, s=settings: s or RouterSettings())
        self.routers: dict[str, Router] = {}
        self.hosts: dict[str, CoreHost] = {}
        ids = sorted(self.network.ids) if nodes is None else list(nodes)
        rng = self.sim.rng
        for nid in ids:
            router = Router(
                make(nid),
                node_id=nid,
                rng=random.Random(rng.getrandbits(64)),
                now=self.sim.now,
                routes=Routes(topology, self_id=nid),
                directory=self.directory,
            )
            host = CoreHost(self.network, nid, router, port=PORT, on_effect=self._on_effect,
                            storage=SimStorage())
            self.routers[nid] = router
            self.hosts[nid] = host
            self.scenario.hosts[nid] = host
            host.start()

    # -- content and clients ---------------------------------------------------------------

    def publish(self, node: str, key: Hashable, *, data: bytes | None = None, size: int = 0,
                pin: bool = True, chunk: int = 262144) -> tuple[tuple[bytes, int], ...]:
        """Publish item ``key`` on ``node`` (real ``data``, or ``size`` bytes of sizes only).

        Returns its chunks ``(digest, size)``.
        """
        host = self.hosts[node]
        if data is not None:
            pieces = chunk_item(data, avg_size=min(chunk, 1 << 20))
            for digest, n, piece in pieces:
                host.storage.keep(digest, n, piece)
            chunks = tuple((d, n) for d, n, _ in pieces)
        else:
            chunks = synthetic_chunks(key, size, chunk=chunk)
            for digest, n in chunks:
                host.storage.keep(digest, n)
        host.feed(ItemPublished(key, chunks, pin=pin))
        return chunks

    def request(self, node: str, key: Hashable, *, at: float | None = None,
                principal: Principal = GUEST) -> int:
        """A client of ``node`` asks for ``key`` at ``at`` (now by default); its request id."""
        rid = next(self._ids)
        when = self.sim.now if at is None else at
        self._asked[rid] = (node, key, when)
        self.sim.schedule_at(when, self._ask, node, rid, key, principal)
        return rid

    def _ask(self, node: str, rid: int, key: Hashable, principal: Principal) -> None:
        host = self.hosts[node]
        hops = [self.network.route_hops(node, h) for h in self.directory.holders(key)]
        reachable = [h for h in hops if h >= 0]
        if reachable:
            self._nearest[rid] = min(reachable)
        if host.running:
            host.feed(ClientRequest(rid, key, principal))
        else:
            self._asked[rid] = (node, key, self.sim.now)
            self.outcomes[rid] = Outcome(rid, node, key, self.sim.now, False,
                                         reason="router-down")

    def _on_effect(self, host: CoreHost, effect: Any) -> None:
        kind = type(effect)
        if kind is Holding:
            self.directory.apply(effect)
        elif kind is RequestCompleted:
            node, key, asked = self._asked[effect.request_id]
            self.outcomes[effect.request_id] = Outcome(
                effect.request_id, node, key, asked, True, effect.tier, effect.source,
                effect.nbytes, effect.seconds)
        elif kind is RequestRefused:
            node, key, asked = self._asked[effect.request_id]
            self.outcomes[effect.request_id] = Outcome(
                effect.request_id, node, key, asked, False, reason=effect.reason)

    # -- running and measuring ---------------------------------------------------------------

    def run(self, until: float) -> int:
        """Run the simulation to ``until`` (simulated seconds); returns events run."""
        return self.sim.run(until=until)

    def crash(self, node: str) -> None:
        """Power ``node`` off now: its host stops and the network drops it."""
        self.hosts[node].stop()
        self.network.set_node_up(node, False)

    def fetch_bound(self) -> int:
        """Least bytes x hops the served requests needed: each fetch from its nearest holder.

        A fetch is the first non-local answer of a node for a key, and any
        later one asked after the previous fetch of that pair had finished
        (requests asked while a fetch ran joined it and cost nothing more).
        The nearest holder is the one fewest hops away when the request was
        made. Message headers are not counted.
        """
        total = 0
        busy_until: dict[tuple[str, Hashable], float] = {}
        for o in sorted(self.outcomes.values(), key=lambda o: (o.asked_at, o.request_id)):
            if not o.served or o.tier is Tier.LOCAL:
                continue
            pair = (o.node, o.key)
            if o.asked_at < busy_until.get(pair, -1.0):
                continue  # joined the fetch in progress
            busy_until[pair] = o.asked_at + o.seconds
            total += o.nbytes * self._nearest.get(o.request_id, 0)
        return total

    def summary(self) -> dict[str, Any]:
        """Requests by outcome and tier, bytes x hops (and its bound), time to serve."""
        served = [o for o in self.outcomes.values() if o.served]
        by_tier = Counter(o.tier.label for o in served if o.tier is not None)
        seconds = sorted(o.seconds for o in served)
        return {
            "requests": len(self._asked),
            "served": len(served),
            "refused": sum(1 for o in self.outcomes.values() if not o.served),
            "unanswered": len(self._asked) - len(self.outcomes),
            "by_tier": dict(sorted(by_tier.items())),
            "bytes_served": sum(o.nbytes for o in served),
            "bytes_x_hops": self.network.message_bytes_hops,
            "bytes_x_hops_bound": self.fetch_bound(),
            "median_seconds": seconds[len(seconds) // 2] if seconds else None,
            "max_seconds": seconds[-1] if seconds else None,
            "events": self.sim.events_run,
        }
