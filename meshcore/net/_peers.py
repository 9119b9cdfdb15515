"""The peer table: who this node knows, how, and whether they are still there.

Theory of operation
-------------------
A peer is *direct* (``hops == 1``: we hear its beacons ourselves, by
multicast on a segment or by unicast from a routing neighbour) or *indirect*
(``hops >= 2``: learned by peer exchange from the direct neighbour ``via``).

Direct peers age by missed beacons. Each beacon advertises its sender's
interval ``tau``; with ``silence = now - last_heard``::

    alive    silence <= suspect_after * tau        (default 3 intervals)
    suspect  suspect_after * tau < silence <= gone_after * tau
    gone     silence >  gone_after * tau           (default 6 intervals)

A gone peer leaves the table (event ``PeerLeft(reason="timeout")``) and
leaves a *tombstone* with its last version, so a stale peer-exchange record
cannot bring it back. Indirect peers do not age by time: they leave when a
peer-exchange remove for their version arrives (``"removed"``), or when their
``via`` neighbour leaves (``"via-gone"``; a sync with another neighbour
re-learns them if they are still reachable). This is the membership scheme of
SWIM (Das, Gupta, Motivala, DSN 2002): versions are (boot epoch,
incarnation), a higher version always wins, and a node that hears itself
declared gone refutes by bumping its incarnation.

Events are returned as frozen dataclasses (``PeerJoined``, ``PeerLeft``,
``PeerChanged``) carrying a snapshot of the peer, never the live record.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..core import Fact
from ._linkquality import LinkQuality

__all__ = [
    "ALIVE",
    "GONE",
    "SUSPECT",
    "Peer",
    "PeerChanged",
    "PeerJoined",
    "PeerLeft",
    "PeerTable",
    "digest_of",
]

ALIVE = "alive"
SUSPECT = "suspect"
GONE = "gone"

Addr = tuple[str, int]
Version = tuple[int, int]  # (boot epoch, incarnation)


@dataclass(slots=True)
class Peer:
    """One known peer. Mutable in the table; events carry copies.

    ``addr`` is its discovery address (datagram source for direct peers,
    ``(host, discovery port)`` for indirect ones); ``service_addr`` is where
    its service listens. ``etx``/``rtt``/``loss`` are set for direct peers
    (``rtt`` in seconds, ``None`` until measured; ``etx`` ``inf`` until both
    directions are measured). ``interval`` is the beacon interval the peer
    advertises (seconds); ``last_heard`` is our clock at its last beacon.
    """

    node_id: str
    addr: Addr | None = None
    service_port: int = 0
    state: str = ALIVE
    hops: int = 1
    via: str | None = None
    boot_epoch: int = 0
    incarnation: int = 0
    load: float = 0.0
    capacity: float = 0.0
    summary_version: int = 0
    etx: float = float("inf")
    rtt: float | None = None
    rtt_min: float | None = None
    loss: float = 1.0
    throughput: float | None = None
    last_heard: float = 0.0
    joined_at: float = 0.0
    interval: float = 5.0
    interface: str | None = None
    via_multicast: bool = False
    hears_us: bool = False
    link: LinkQuality | None = field(default=None, repr=False, compare=False)

    @property
    def direct(self) -> bool:
        """True when we hear this peer's beacons ourselves."""
        return self.via is None

    @property
    def version(self) -> Version:
        """``(boot_epoch, incarnation)``: higher wins in peer exchange."""
        return (self.boot_epoch, self.incarnation)

    @property
    def service_addr(self) -> Addr | None:
        """``(host, service_port)``, or None when the host is unknown."""
        return None if self.addr is None else (self.addr[0], self.service_port)

    def snapshot(self) -> Peer:
        """A shallow copy for events (the link-quality object is shared)."""
        return copy.copy(self)


@dataclass(frozen=True, slots=True)
class PeerJoined(Fact):
    """A peer became known (directly or by peer exchange)."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class PeerLeft(Fact):
    """A peer left the table; ``reason`` is "timeout", "removed" or "via-gone"."""

    node_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeerChanged(Fact):
    """Fields of a known peer changed (``fields`` names them, e.g. ("state",))."""

    peer: Peer
    fields: tuple[str, ...]


PeerEvent = PeerJoined | PeerLeft | PeerChanged


def digest_of(entries: Iterator[tuple[str, Version]] | list[tuple[str, Version]]) -> bytes:
    """8-byte BLAKE2b digest of a known-peer set given as ``(node_id, version)`` pairs.

    Order-independent (sorted first); two nodes with the same set and versions
    get the same digest, whatever their hop counts.
    """
    h = hashlib.blake2b(digest_size=8, person=b"meshcore-pex-v1")
    for node_id, (boot, inc) in sorted(entries):
        h.update(node_id.encode("utf-8") + b"\0" + boot.to_bytes(4, "big") + inc.to_bytes(2, "big"))
    return h.digest()


class PeerTable:
    """Known peers by node id, with tombstones for peers that left.

    ``suspect_after``/``gone_after`` are counts of missed beacon intervals
    (defaults 3 and 6; ``1 <= suspect_after < gone_after``); ``tombstone_ttl``
    is how long (seconds) a tombstone blocks stale re-adds. Raises ValueError
    for bad thresholds.
    """

    def __init__(
        self, *, suspect_after: float = 3, gone_after: float = 6, tombstone_ttl: float = 120.0
    ) -> None:
        if not 0 < suspect_after < gone_after:
            raise ValueError(
                f"suspect_after/gone_after: expected 0 < suspect_after < gone_after, "
                f"got {suspect_after!r}/{gone_after!r}"
            )
        if tombstone_ttl < 0:
            raise ValueError(f"tombstone_ttl: expected >= 0, got {tombstone_ttl!r}")
        self.suspect_after = suspect_after
        self.gone_after = gone_after
        self.tombstone_ttl = tombstone_ttl
        self._peers: dict[str, Peer] = {}
        self._tombstones: dict[str, tuple[Version, float]] = {}  # id -> (version, expires at)

    # -- lookups ---------------------------------------------------------------
    def get(self, node_id: str) -> Peer | None:
        """The peer named ``node_id``, or None."""
        return self._peers.get(node_id)

    def __iter__(self) -> Iterator[Peer]:
        return iter(list(self._peers.values()))

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._peers

    def direct(self) -> list[Peer]:
        """Direct peers (we hear their beacons), alive or suspect."""
        return [p for p in self._peers.values() if p.via is None]

    def indirect(self) -> list[Peer]:
        """Peers learned by peer exchange."""
        return [p for p in self._peers.values() if p.via is not None]

    def by_addr(self, addr: Addr) -> Peer | None:
        """The direct peer whose discovery address is ``addr``, if any."""
        for p in self._peers.values():
            if p.via is None and p.addr == addr:
                return p
        return None

    def tombstone(self, node_id: str, *, now: float) -> Version | None:
        """The version a live tombstone for ``node_id`` blocks, or None."""
        entry = self._tombstones.get(node_id)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._tombstones[node_id]
            return None
        return entry[0]

    # -- changes ---------------------------------------------------------------
    def add(self, peer: Peer, *, now: float) -> PeerJoined:
        """Insert a new peer (clears its tombstone); returns the join event."""
        if peer.node_id in self._peers:
            raise ValueError(f"peer {peer.node_id!r} is already in the table")
        peer.joined_at = now
        self._tombstones.pop(peer.node_id, None)
        self._peers[peer.node_id] = peer
        return PeerJoined(peer.snapshot())

    def remove(
        self,
        node_id: str,
        reason: str,
        *,
        now: float,
        version: Version | None = None,
        bury: bool = True,
    ) -> PeerLeft | None:
        """Drop ``node_id``; with ``bury``, leave a tombstone at ``version`` (default: its own).

        A path withdrawal (``bury=False``) leaves no tombstone: the peer may
        still be alive and reachable another way.
        """
        peer = self._peers.pop(node_id, None)
        if peer is None:
            if version is not None and bury:
                self.bury(node_id, version, now=now)
            return None
        if bury:
            self.bury(node_id, max(version or peer.version, peer.version), now=now)
        return PeerLeft(node_id, reason)

    def bury(self, node_id: str, version: Version, *, now: float) -> None:
        """Record a tombstone: adds of ``node_id`` at ``version`` or older are refused."""
        old = self._tombstones.get(node_id)
        if old is not None and old[0] > version and old[1] > now:
            version = old[0]
        self._tombstones[node_id] = (version, now + self.tombstone_ttl)

    def expire(self, *, now: float) -> list[PeerEvent]:
        """Age direct peers; returns suspect changes and timeouts (gone peers are removed)."""
        events: list[PeerEvent] = []
        for peer in list(self._peers.values()):
            if peer.via is not None:
                continue
            # Same expressions as next_deadline: a timer set for that instant must
            # find the change due (now - last_heard can round just below k * tau).
            if now >= peer.last_heard + self.gone_after * peer.interval:
                peer.state = GONE
                left = self.remove(peer.node_id, "timeout", now=now)
                if left is not None:
                    events.append(left)
                events.extend(self._drop_via(peer.node_id, now=now))
            elif now >= peer.last_heard + self.suspect_after * peer.interval and (
                peer.state == ALIVE
            ):
                peer.state = SUSPECT
                events.append(PeerChanged(peer.snapshot(), ("state",)))
        for node_id, (_, until) in list(self._tombstones.items()):
            if until <= now:
                del self._tombstones[node_id]
        return events

    def _drop_via(self, via: str, *, now: float) -> list[PeerEvent]:
        events: list[PeerEvent] = []
        for p in list(self._peers.values()):
            if p.via == via:
                del self._peers[p.node_id]  # no tombstone: another path may re-teach it
                events.append(PeerLeft(p.node_id, "via-gone"))
        return events

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`expire` would change something."""
        best: float | None = None
        for p in self._peers.values():
            if p.via is not None:
                continue
            k = self.suspect_after if p.state == ALIVE else self.gone_after
            t = p.last_heard + k * p.interval
            best = t if best is None or t < best else best
        for _, until in self._tombstones.values():
            best = until if best is None or until < best else best
        return best

    def versions(self) -> list[tuple[str, Version]]:
        """``(node_id, version)`` of every peer in the table."""
        return [(p.node_id, p.version) for p in self._peers.values()]
