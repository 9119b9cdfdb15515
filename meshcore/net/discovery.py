"""Discovery core: authenticated beacons, the peer table and peer exchange (sans-I/O).

Theory of operation
-------------------
Every node sends small authenticated beacons (:mod:`meshcore.net._beacon`):

* **On the local segment**, by multicast with TTL 1 on each configured
  interface: an *announce-on-join burst* when the node starts (``burst``
  beacons at 0, 50, 150, 350 ms: ``0.05 * (2**i - 1)`` s), then one *probe*
  every ``beacon_interval`` seconds (uniformly jittered by ``±jitter``, so
  nodes do not synchronise; Floyd and Jacobson, "The Synchronization of
  Periodic Routing Messages", 1994).
* **Beyond the segment**, by unicast to the routing daemon's neighbours
  (:meth:`Discovery.set_daemon_neighbours`) every ``neighbour_interval``
  seconds. Never by mesh-wide multicast: every router would re-send it.

*Join.* An existing node that hears a beacon from a node it does not know (or
from a known node with a new boot) replies by unicast after a uniform random
delay in ``[0, reply_jitter]``. The reply carries its whole known-peer set
(a peer-exchange full sync), so one reply teaches the newcomer the segment.
The newcomer re-announces (multicast) as soon as a reply teaches it new
peers, and every pending replier checks the newcomer's latest beacon before
it sends: if the newcomer already echoes it, or its peer-set digest equals
the replier's own, the reply is suppressed (the mDNS "known answer" and
SSDP/mDNS random-delay idea, RFC 6762 sections 6 and 7.1). A newcomer on a
20-node segment therefore knows every peer after one round trip plus the
first reply's delay, and only the few nodes whose delay ran out before the
re-announce reached them reply.

*Peer exchange (PEX).* Changes of the known-peer set (a peer joined or
left, a version changed) are queued as deltas and sent ``pex_delay`` seconds
later (at most one flush every ``pex_min_gap`` s) to every channel: by
multicast on each interface and by unicast to each routing neighbour, except
back where the change came from (split horizon). A receiver applies a delta
with SWIM's rule (higher ``(boot epoch, incarnation)`` wins; a remove buries
the peer in a tombstone) and forwards what it accepted, so a change crosses
the mesh once per link. Each record is sent twice (the next flush repeats
it), so a single lost datagram on a lossy link rarely leaves a gap. Deltas can
still be lost (UDP), so every beacon also
carries an 8-byte digest of the sender's known-peer set and its size; when a
neighbour's digest differs on two successive probes and it knows no more
peers than we do, we send it a *full sync* (our set, chunked to fit the
datagram cap), at most once per ``pex_sync_interval`` per neighbour. A node
that receives a remove for itself refutes it by bumping its incarnation. A
node that hears a peer directly while that peer is declared gone (it holds a
tombstone for the peer's version, as after a healed partition, or it receives
a remove for a peer it still hears) *accuses* it: it sends the peer the
remove, and again on each of the peer's beacons that still carries the old
version, until the peer has refuted (SWIM's suspicion message, retransmitted
because the first datagrams over a link that has just come back are often
lost). A node whose tombstone refuses an add sends the remove back to the
sender (*contradiction*), which then drops the peer too or, hearing it,
accuses it. Direct observation always beats hearsay. A path that breaks (the
neighbour we learned peers through is gone) is *withdrawn*, not declared dead:
only nodes that learned those peers through us drop them, as in
distance-vector routing, and nothing is echoed back to the neighbour it came
from (split horizon), so a partition leaves no ghosts.

*Replay.* An on-path attacker may capture beacons and replay them later (to
keep a departed node "alive", or to poison RTT and ETX). Each sender's
``(boot epoch, seq)`` is tracked: a beacon is accepted only if its boot
epoch is the newest seen from that node and its seq is above the high-water
mark or, within ``replay_window`` below it, not yet seen (the sliding bitmap
of IPsec ESP, RFC 4303 section 3.4.3). A lower boot epoch is always refused.
State is forgotten ``replay_memory`` seconds after the sender's last
accepted beacon, so a node whose boot epoch went backwards (no wall clock)
can rejoin after that time; within it, a replay can only repeat what the
real node said. The HMAC keeps out anyone without the community key; it does
not protect against a community member who lies (out of scope).

Traffic at steady state (defaults, IPv4, 16-hex-digit node ids): a probe is
70 bytes plus 16 bytes per echoed neighbour. A node with 8 routing
neighbours and 5 segment peers sends 8 * 86 / 10 + (70 + 5 * 16) / 5 = 99
bytes/s; deltas only flow on change. ``docs/net/discovery.md`` has the full
account.

Node ids are short strings; 16 lower-case hex characters travel as 8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from ..config import Config, Section
from ..core import Command, Event, dispatches, handler
from ._beacon import (
    FLAG_JOINING,
    FLAG_PARTIAL,
    FLAG_PROBE,
    FLAG_REPLY,
    HOLD_UNKNOWN,
    MAC_LEN,
    MAX_DATAGRAM,
    OP_ADD,
    OP_REMOVE,
    OP_WITHDRAW,
    Beacon,
    BeaconError,
    Echo,
    PexEntry,
    PexSection,
    decode_beacon,
    encode_beacon,
    encode_node_id,
    pex_entry_size,
)
from ._linkquality import LinkQuality
from ._peers import ALIVE, Peer, PeerChanged, PeerJoined, PeerLeft, PeerTable, digest_of

__all__ = [
    "Addr",
    "Advertise",
    "DaemonNeighbours",
    "Datagram",
    "Discovery",
    "DiscoverySettings",
    "DiscoveryStats",
    "Effect",
    "Peer",
    "PeerChanged",
    "PeerJoined",
    "PeerLeft",
    "PeerTable",
    "SendMulticast",
    "SendUnicast",
    "Start",
]

Addr = tuple[str, int]

DEFAULT_PORT = 47474
DEFAULT_GROUP = "239.255.77.67"  # RFC 2365 organisation-local scope; sent with TTL 1
PASSPHRASE_SALT = b"meshcore community key v1"
PASSPHRASE_ITERATIONS = 50_000
MIN_KEY_BYTES = 16
MIN_PASSPHRASE_CHARS = 12
JOIN_PHASE = 1.0  # seconds after start during which replies trigger a re-announce
JOIN_REANNOUNCE_GAP = 0.005  # seconds between re-announces during the join phase
REPLAY_PURGE_EVERY = 60.0
_STALE = object()  # get_timer's cache marker: recompute after any input


@dataclass(frozen=True, slots=True)
class SendUnicast(Command):
    """Send ``data`` to ``addr`` (host, port) by UDP."""

    addr: Addr
    data: bytes


@dataclass(frozen=True, slots=True)
class SendMulticast(Command):
    """Send ``data`` to the discovery group on ``interface`` with TTL/hop limit 1.

    ``interface == ""`` means the system's default multicast interface.
    """

    interface: str
    data: bytes


Effect = SendUnicast | SendMulticast | PeerJoined | PeerLeft | PeerChanged


# -- events (the protocol's inputs) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start(Event):
    """Begin discovery (:meth:`Discovery.start`)."""


@dataclass(frozen=True, slots=True)
class Datagram(Event):
    """A datagram from ``addr`` arrived on ``interface`` (by multicast or not)."""

    data: bytes
    addr: Addr
    interface: str | None = None
    via_multicast: bool = False


@dataclass(frozen=True, slots=True)
class DaemonNeighbours(Event):
    """The routing daemon's neighbours now are ``addrs`` (``(host, port)`` pairs)."""

    addrs: tuple[Addr, ...]


@dataclass(frozen=True, slots=True)
class Advertise(Event):
    """Advertise ``load``/``capacity`` and the cache summary ``summary_version`` in beacons."""

    load: float
    capacity: float
    summary_version: int = 0


def parse_community_key(value: str) -> bytes:
    """Turn the ``community_key`` config string into key bytes.

    ``"hex:<digits>"`` and ``"base64:<text>"`` give raw keys (at least 16
    bytes); anything else is a passphrase of at least 12 characters, stretched
    with PBKDF2-HMAC-SHA256 (50,000 iterations, fixed salt, so every node of
    the community derives the same key). Raises ValueError saying what is wrong.
    """
    if value.startswith("hex:"):
        try:
            key = bytes.fromhex(value[4:])
        except ValueError:
            raise ValueError("hex: key is not valid hexadecimal") from None
    elif value.startswith("base64:"):
        try:
            key = base64.b64decode(value[7:], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("base64: key is not valid base64") from None
    else:
        if len(value) < MIN_PASSPHRASE_CHARS:
            raise ValueError(
                f"passphrase too short: {len(value)} characters, need at least "
                f"{MIN_PASSPHRASE_CHARS} (or give 'hex:...'/'base64:...' of >= 16 bytes)"
            )
        return hashlib.pbkdf2_hmac(
            "sha256", value.encode("utf-8"), PASSPHRASE_SALT, PASSPHRASE_ITERATIONS
        )
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"key too short: {len(key)} bytes, need at least {MIN_KEY_BYTES}")
    return key


@dataclass(frozen=True, slots=True)
class DiscoverySettings:
    """Discovery parameters; every time is in seconds. See docs/net/discovery.md.

    Construct directly (``community_key`` as bytes, >= 16) or from the
    ``[net]`` table with :meth:`from_config`. Raises ValueError naming the
    field for an out-of-range value.
    """

    community_key: bytes
    port: int = DEFAULT_PORT
    multicast_group: str = DEFAULT_GROUP
    interfaces: tuple[str, ...] = ()
    multicast: bool = True
    beacon_interval: float = 5.0
    jitter: float = 0.1
    burst: int = 3
    reply_jitter: float = 0.1
    neighbour_interval: float = 10.0
    suspect_after: int = 3
    gone_after: int = 6
    etx_window: int = 10
    pex_delay: float = 0.1
    pex_min_gap: float = 1.0
    pex_sync_interval: float = 30.0
    pex_max_hops: int = 64
    max_peers: int = 4096
    tombstone_ttl: float = 120.0
    replay_window: int = 64
    replay_memory: float = 600.0

    KEYS = (
        "community_key",
        "port",
        "multicast_group",
        "interfaces",
        "multicast",
        "beacon_interval",
        "beacon_jitter",
        "burst",
        "reply_jitter",
        "neighbour_interval",
        "suspect_after",
        "gone_after",
        "etx_window",
        "pex_delay",
        "pex_min_gap",
        "pex_sync_interval",
        "pex_max_hops",
        "max_peers",
        "tombstone_ttl",
        "replay_window",
        "replay_memory",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.community_key, bytes) or len(self.community_key) < MIN_KEY_BYTES:
            raise ValueError(f"community_key: expected >= {MIN_KEY_BYTES} bytes")
        if not 0 < self.port < 65536:
            raise ValueError(f"port: expected 1..65535, got {self.port!r}")
        _check_group(self.multicast_group)
        for name in ("beacon_interval", "neighbour_interval", "pex_min_gap", "pex_sync_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter: expected 0 <= jitter < 1, got {self.jitter!r}")
        if not 1 <= self.burst <= 8:
            raise ValueError(f"burst: expected 1..8, got {self.burst!r}")
        if not 1 <= self.suspect_after < self.gone_after:
            raise ValueError(
                f"suspect_after/gone_after: expected 1 <= suspect_after < gone_after, got "
                f"{self.suspect_after!r}/{self.gone_after!r}"
            )
        for name in ("reply_jitter", "pex_delay", "tombstone_ttl", "replay_memory"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)!r}")
        if not 1 <= self.etx_window <= 1000:
            raise ValueError(f"etx_window: expected 1..1000, got {self.etx_window!r}")
        if not 1 <= self.pex_max_hops <= 255:
            raise ValueError(f"pex_max_hops: expected 1..255, got {self.pex_max_hops!r}")
        if not 1 <= self.max_peers <= 65535:
            raise ValueError(f"max_peers: expected 1..65535, got {self.max_peers!r}")
        if not 1 <= self.replay_window <= 1024:
            raise ValueError(f"replay_window: expected 1..1024, got {self.replay_window!r}")

    @classmethod
    def from_config(cls, config: Config | Section) -> DiscoverySettings:
        """Read ``[net]`` of a loaded config (or that table itself).

        Raises :class:`~meshcore.errors.ConfigError` naming the key.
        ``community_key`` is required (``net.community_key``). Keys owned by
        other parts of ``[net]`` are left alone, so unknown keys are not
        refused here; :attr:`KEYS` lists the ones read.
        """
        section = config.section("net") if isinstance(config, Config) else config
        if "community_key" not in section:
            raise section.error(
                "community_key",
                "required key is missing: every node of a community needs the shared key "
                "('hex:...', 'base64:...' or a passphrase of >= 12 characters)",
            )
        try:
            key = parse_community_key(section.get_str("community_key"))
        except ValueError as exc:
            raise section.error("community_key", str(exc)) from None
        group = section.get_str("multicast_group", DEFAULT_GROUP)
        try:
            _check_group(group)
        except ValueError as exc:
            raise section.error("multicast_group", str(exc)) from None
        interval = section.get_duration("beacon_interval", 5.0, min=0.1)
        kwargs = dict(
            community_key=key,
            port=section.get_int("port", DEFAULT_PORT, min=1, max=65535),
            multicast_group=group,
            interfaces=tuple(section.get_str_list("interfaces", [])),
            multicast=section.get_bool("multicast", True),
            beacon_interval=interval,
            jitter=section.get_float("beacon_jitter", 0.1, min=0.0, max=0.5),
            burst=section.get_int("burst", 3, min=1, max=8),
            reply_jitter=section.get_duration("reply_jitter", 0.1),
            neighbour_interval=section.get_duration("neighbour_interval", 2 * interval, min=0.1),
            suspect_after=section.get_int("suspect_after", 3, min=1),
            gone_after=section.get_int("gone_after", 6, min=2),
            etx_window=section.get_int("etx_window", 10, min=1, max=1000),
            pex_delay=section.get_duration("pex_delay", 0.1),
            pex_min_gap=section.get_duration("pex_min_gap", 1.0, min=0.01),
            pex_sync_interval=section.get_duration("pex_sync_interval", 30.0, min=0.1),
            pex_max_hops=section.get_int("pex_max_hops", 64, min=1, max=255),
            max_peers=section.get_int("max_peers", 4096, min=1, max=65535),
            tombstone_ttl=section.get_duration("tombstone_ttl", 120.0),
            replay_window=section.get_int("replay_window", 64, min=1, max=1024),
            replay_memory=section.get_duration("replay_memory", 600.0),
        )
        if kwargs["suspect_after"] >= kwargs["gone_after"]:
            raise section.error(
                "gone_after",
                f"expected more than suspect_after ({kwargs['suspect_after']}), "
                f"got {kwargs['gone_after']}",
            )
        return cls(**kwargs)  # type: ignore[arg-type]


def _check_group(group: str) -> None:
    try:
        ip = ipaddress.ip_address(group)
    except ValueError:
        raise ValueError(f"multicast_group: not an IP address: {group!r}") from None
    if not ip.is_multicast:
        raise ValueError(f"multicast_group: {group} is not a multicast address")
    # Discovery multicast stays on the segment; an IPv6 group wider than
    # link-local (ff02::/16) would invite routers to forward it mesh-wide.
    if ip.version == 6 and (ip.packed[1] & 0x0F) != 2:
        raise ValueError(f"multicast_group: IPv6 group {group} must be link-local scope (ff02::)")


@dataclass(slots=True)
class DiscoveryStats:
    """Counters (monotonic since construction). Bytes are UDP payload bytes."""

    sent_bytes: int = 0
    sent_datagrams: int = 0
    sent_multicast: int = 0
    sent_unicast: int = 0
    received: int = 0
    received_bytes: int = 0
    accepted: int = 0
    dropped_malformed: int = 0
    dropped_auth: int = 0
    dropped_replay: int = 0
    dropped_oversize: int = 0
    dropped_version: int = 0
    dropped_self: int = 0
    unknown_sections: int = 0
    replies_sent: int = 0
    replies_suppressed: int = 0
    syncs_sent: int = 0
    deltas_sent: int = 0
    deltas_accepted: int = 0
    deltas_ignored: int = 0
    refutations: int = 0
    accusations_sent: int = 0
    contradictions_sent: int = 0

    @property
    def dropped(self) -> int:
        """All datagrams dropped for any reason."""
        return (
            self.dropped_malformed
            + self.dropped_auth
            + self.dropped_replay
            + self.dropped_oversize
            + self.dropped_version
            + self.dropped_self
        )

    def as_dict(self) -> dict[str, int]:
        """Every counter by name (for exporters)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class _Replay:
    boot: int
    hwm: int
    seen: int  # bitmap: bit i set = seq (hwm - i) accepted
    last: float


@dataclass(slots=True)
class _Delta:
    entry: PexEntry
    exclude_addr: Addr | None
    exclude_iface: str | None
    only: Addr | None = None  # a record for one peer only (a remove it must refute)
    repeats: int = 1  # sent again at the next flush: one lost datagram must not need a sync


@dataclass(slots=True)
class _Accusation:
    """A direct peer that was declared gone at ``version`` and has not refuted yet."""

    version: tuple[int, int]
    until: float  # forgotten then: tombstone_ttl after the last reason to accuse
    sent: float = -math.inf  # when we last told the peer


@dataclass(slots=True)
class _SyncRx:
    chunks: int
    got: set[int] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)


@dispatches
class Discovery:
    """The discovery core of one node. Sans-I/O: feed it datagrams and timer ticks.

    ``node_id``: this node's id (1..64 bytes as UTF-8; lower-case hex is most
    compact). ``service_port``: the port of the node's service, advertised in
    beacons. ``rng``: the only source of randomness (jitter, sync ids, the
    default boot epoch). ``boot_epoch``: a number that grows at every boot
    (drivers pass wall-clock seconds, or a persisted counter); when None a
    random 32-bit value is drawn, which is fine in simulation but may make a
    rebooted node wait ``replay_memory`` s before peers accept it again.

    Every input returns a list of effects (:class:`SendUnicast`,
    :class:`SendMulticast`, :class:`PeerJoined`, :class:`PeerLeft`,
    :class:`PeerChanged`); :meth:`get_timer` gives the next deadline. Raises
    ValueError/TypeError for bad arguments, never for bad datagrams (those
    are counted in :attr:`stats` and dropped). Protocol (:mod:`meshcore.core`):
    ``handle`` takes :class:`Start`, :class:`Datagram`, :class:`DaemonNeighbours`
    and :class:`Advertise`.
    """

    def __init__(
        self,
        settings: DiscoverySettings,
        *,
        node_id: str,
        service_port: int,
        rng: random.Random,
        now: float,
        boot_epoch: int | None = None,
    ) -> None:
        if not isinstance(settings, DiscoverySettings):
            raise TypeError(f"settings: expected DiscoverySettings, got {type(settings).__name__}")
        encode_node_id(node_id)  # validates
        if not 0 <= service_port < 65536:
            raise ValueError(f"service_port: expected 0..65535, got {service_port!r}")
        if not isinstance(rng, random.Random):
            raise TypeError(f"rng: expected random.Random, got {type(rng).__name__}")
        if boot_epoch is None:
            boot_epoch = rng.getrandbits(32)
        if not 0 <= boot_epoch < 2**32:
            raise ValueError(f"boot_epoch: expected 0..2**32-1, got {boot_epoch!r}")
        s = settings
        self.settings = s
        self.node_id = node_id
        self.service_port = service_port
        self.rng = rng
        self.boot_epoch = boot_epoch
        self.incarnation = 0
        self.load = 0.0
        self.capacity = 0.0
        self.summary_version = 0
        self.peers = PeerTable(
            suspect_after=s.suspect_after, gone_after=s.gone_after, tombstone_ttl=s.tombstone_ttl
        )
        self.stats = DiscoveryStats()
        self.started = False
        self._seq = 0
        self._created = now
        self._interfaces: tuple[str, ...] = (s.interfaces or ("",)) if s.multicast else ()
        self._replay: dict[str, _Replay] = {}
        self._replay_purge = now + REPLAY_PURGE_EVERY
        self._daemon: dict[Addr, float] = {}  # routing neighbour -> next unicast probe
        self._burst: list[float] = []
        self._next_mcast: float | None = None
        self._last_mcast = -math.inf
        self._join_until = -math.inf
        self._reannounce_due: float | None = None
        self._reannounces = 0
        self._replies: dict[str, float] = {}  # newcomer id -> reply due
        self._pending: list[_Delta] = []
        self._pex_due: float | None = None
        self._pex_last = -math.inf
        self._syncs: dict[Addr, float] = {}  # neighbour -> full sync due
        self._sync_last: dict[Addr, float] = {}
        self._mismatch: dict[str, int] = {}
        self._sync_rx: dict[tuple[str, int], _SyncRx] = {}
        self._their_echoes: dict[str, frozenset[str]] = {}
        self._their_digest: dict[str, bytes] = {}
        self._ts: dict[str, tuple[int, float]] = {}  # peer -> (its ts ms, our arrival time)
        self._digest: bytes | None = None
        self._force = False
        self._echo_rot = 0
        self._uprobe: set[str] = set()  # peers that send us unicast probes
        self._accused: dict[str, _Accusation] = {}  # direct peers that must refute
        self._contradicted: dict[tuple[str, str], float] = {}  # (peer, sender) -> last sent
        self._timer_cache: object = _STALE

    # -- public inputs ---------------------------------------------------------------------

    def start(self, *, now: float) -> list[Effect]:
        """Begin: the announce-on-join burst, then periodic beacons. Idempotent."""
        if self.started:
            return []
        self.started = True
        s = self.settings
        self._burst = [now + 0.05 * (2**i - 1) for i in range(s.burst)] if self._interfaces else []
        self._join_until = now + JOIN_PHASE
        self._next_mcast = now + s.beacon_interval * self._jitter() if self._interfaces else None
        for addr in self._daemon:
            self._daemon[addr] = now + s.reply_jitter * self.rng.random()
        return self.handle_timer(now=now)

    def receive_datagram(
        self,
        data: bytes,
        addr: Addr,
        *,
        now: float,
        interface: str | None = None,
        via_multicast: bool = False,
    ) -> list[Effect]:
        """Process one datagram from ``addr``. Bad datagrams are counted and dropped.

        ``interface`` is where it arrived; ``via_multicast`` whether it was
        sent to the group (both come from the driver's socket options).
        """
        self.stats.received += 1
        self.stats.received_bytes += len(data)
        try:
            beacon = decode_beacon(data, self.settings.community_key)
        except BeaconError as exc:
            setattr(
                self.stats, f"dropped_{exc.kind}", getattr(self.stats, f"dropped_{exc.kind}") + 1
            )
            return []
        if beacon.node_id == self.node_id:
            self.stats.dropped_self += 1  # our own multicast looped back
            return []
        if not self._replay_ok(beacon, now=now):
            self.stats.dropped_replay += 1
            return []
        self.stats.accepted += 1
        self.stats.unknown_sections += beacon.unknown_sections
        effects: list[Effect] = []
        self._on_beacon(beacon, addr, interface, via_multicast, now, effects)
        self._due(now, effects)
        return effects

    def handle_timer(self, *, now: float) -> list[Effect]:
        """Do everything due at ``now``: expiry, beacons, replies, peer exchange."""
        out: list[Effect] = []
        for ev in self.peers.expire(now=now):
            out.append(ev)
            if isinstance(ev, PeerLeft):
                self._digest = None
                self._mismatch.pop(ev.node_id, None)
                self._ts.pop(ev.node_id, None)
                self._replies.pop(ev.node_id, None)
                self._their_echoes.pop(ev.node_id, None)
                self._their_digest.pop(ev.node_id, None)
                self._uprobe.discard(ev.node_id)
                self._accused.pop(ev.node_id, None)
                if ev.reason == "timeout":
                    ver = self.peers.tombstone(ev.node_id, now=now) or (0, 0)
                    self._queue(PexEntry(OP_REMOVE, ev.node_id, *ver), None, None, now)
                elif ev.reason == "via-gone":
                    self._queue(PexEntry(OP_WITHDRAW, ev.node_id, 0, 0), None, None, now)
        if now >= self._replay_purge:
            self._replay_purge = now + REPLAY_PURGE_EVERY
            limit = now - self.settings.replay_memory
            for nid in [k for k, v in self._replay.items() if v.last < limit]:
                del self._replay[nid]
            gap = now - self.settings.pex_min_gap
            for key in [k for k, t in self._contradicted.items() if t < gap]:
                del self._contradicted[key]
            for nid in [k for k, a in self._accused.items() if a.until <= now]:
                del self._accused[nid]
        self._due(now, out)
        return out

    def _due(self, now: float, out: list[Effect]) -> None:
        """Send whatever is due at ``now`` (beacons, replies, deltas, syncs)."""
        self._timer_cache = _STALE
        if not self.started:
            return
        s = self.settings
        if self._burst and self._burst[0] <= now:
            while self._burst and self._burst[0] <= now:
                self._burst.pop(0)
            self._multicast(FLAG_JOINING, now, out)
        if self._reannounce_due is not None and self._reannounce_due <= now:
            self._reannounce_due = None
            self._reannounces += 1
            self._multicast(FLAG_JOINING, now, out)
        if self._next_mcast is not None and self._next_mcast <= now:
            self._next_mcast = now + s.beacon_interval * self._jitter()
            self._multicast(FLAG_PROBE, now, out)
        for addr, due in list(self._daemon.items()):
            if due <= now:
                self._daemon[addr] = now + s.neighbour_interval * self._jitter()
                if not self._covered_by_multicast(addr, now):
                    self._unicast(addr, FLAG_PROBE, now, out)
        for nid, due in list(self._replies.items()):
            if due <= now:
                del self._replies[nid]
                self._reply(nid, now, out)
        if self._pex_due is not None and self._pex_due <= now:
            self._flush(now, out)
        for addr, due in list(self._syncs.items()):
            if due <= now:
                del self._syncs[addr]
                self._send_sync(addr, 0, now, out)

    def get_timer(self) -> float | None:
        """The next deadline (same clock as ``now``), or None when nothing is scheduled."""
        if self._timer_cache is _STALE:
            self._timer_cache = self._compute_timer()
        return self._timer_cache  # type: ignore[return-value]

    def _compute_timer(self) -> float | None:
        cands: list[float] = []
        if self.started:
            cands.extend(self._burst[:1])
            for t in (self._reannounce_due, self._next_mcast, self._pex_due):
                if t is not None:
                    cands.append(t)
            cands.extend(self._daemon.values())
            cands.extend(self._replies.values())
            cands.extend(self._syncs.values())
        t = self.peers.next_deadline()
        if t is not None:
            cands.append(t)
        return min(cands) if cands else None

    def set_daemon_neighbours(self, addrs: Iterable[Addr], *, now: float) -> list[Effect]:
        """Replace the set of routing neighbours that get unicast beacons and deltas.

        New neighbours get a probe at once (if started). Raises TypeError for
        an address that is not a ``(host, port)`` pair.
        """
        new: dict[Addr, float] = {}
        for a in addrs:
            if not (isinstance(a, tuple) and len(a) == 2 and isinstance(a[1], int)):
                raise TypeError(f"addrs: expected (host, port) tuples, got {a!r}")
            new[a] = self._daemon.get(a, now)
        self._daemon = new
        for a in list(self._syncs):
            if a not in new and self.peers.by_addr(a) is None:
                del self._syncs[a]
        return self.handle_timer(now=now)

    @handler(Start)
    def _on_start(self, event: Start, *, now: float) -> list[Effect]:
        return self.start(now=now)

    @handler(Datagram)
    def _on_datagram(self, event: Datagram, *, now: float) -> list[Effect]:
        return self.receive_datagram(event.data, event.addr, now=now, interface=event.interface,
                                     via_multicast=event.via_multicast)

    @handler(DaemonNeighbours)
    def _on_daemon_neighbours(self, event: DaemonNeighbours, *, now: float) -> list[Effect]:
        return self.set_daemon_neighbours(event.addrs, now=now)

    @handler(Advertise)
    def _on_advertise(self, event: Advertise, *, now: float) -> list[Effect]:
        self.set_load(event.load, event.capacity)
        self.set_summary_version(event.summary_version)
        return []

    def set_load(self, load: float, capacity: float) -> None:
        """Advertise ``load`` and ``capacity`` (units are the daemon's; both >= 0)."""
        if not (load >= 0 and capacity >= 0):
            raise ValueError(f"load/capacity: expected >= 0, got {load!r}/{capacity!r}")
        self.load = float(load)
        self.capacity = float(capacity)

    def set_summary_version(self, version: int) -> None:
        """Advertise the version of this node's cache summary (0..2**32-1)."""
        if not 0 <= version < 2**32:
            raise ValueError(f"version: expected 0..2**32-1, got {version!r}")
        self.summary_version = version

    def add_throughput_sample(
        self, node_id: str, nbytes: int, seconds: float, *, now: float
    ) -> None:
        """A transfer with direct peer ``node_id`` moved ``nbytes`` in ``seconds``.

        Unknown or indirect peers are ignored (there is no link to measure).
        """
        peer = self.peers.get(node_id)
        if peer is None or peer.link is None:
            return
        peer.link.add_throughput_sample(nbytes, seconds, now=now)
        peer.throughput = peer.link.throughput

    @property
    def digest(self) -> bytes:
        """8-byte digest of this node's known-peer set (itself included)."""
        if self._digest is None:
            self._digest = digest_of(
                [*self.peers.versions(), (self.node_id, (self.boot_epoch, self.incarnation))]
            )
        return self._digest

    # -- receiving ---------------------------------------------------------------------------

    def _replay_ok(self, b: Beacon, *, now: float) -> bool:
        st = self._replay.get(b.node_id)
        if st is None or b.boot_epoch > st.boot:
            self._replay[b.node_id] = _Replay(b.boot_epoch, b.seq, 1, now)
            return True
        if b.boot_epoch < st.boot:
            return False
        window = self.settings.replay_window
        if b.seq > st.hwm:
            shift = b.seq - st.hwm
            st.seen = ((st.seen << shift) | 1) & ((1 << window) - 1) if shift < window else 1
            st.hwm = b.seq
        else:
            back = st.hwm - b.seq
            if back >= window or st.seen >> back & 1:
                return False
            st.seen |= 1 << back
        st.last = now
        return True

    def _on_beacon(
        self,
        b: Beacon,
        addr: Addr,
        interface: str | None,
        mcast: bool,
        now: float,
        out: list[Effect],
    ) -> None:
        s = self.settings
        peer = self.peers.get(b.node_id)
        version = (b.boot_epoch, b.incarnation)
        # A same-segment reply, like a multicast, is no news to the segment.
        seg = mcast or bool(b.flags & FLAG_REPLY)
        newcomer = False
        if peer is None or not peer.direct:
            newcomer = peer is None or peer.version[0] != b.boot_epoch
            fresh = Peer(
                node_id=b.node_id,
                addr=addr,
                service_port=b.service_port,
                boot_epoch=b.boot_epoch,
                incarnation=b.incarnation,
                load=b.load,
                capacity=b.capacity,
                summary_version=b.summary_version,
                last_heard=now,
                interval=b.interval or s.beacon_interval,
                interface=interface,
                via_multicast=mcast,
                link=LinkQuality(s.etx_window),
            )
            tomb = self.peers.tombstone(b.node_id, now=now)
            if tomb is not None and version <= tomb:
                # Declared gone, yet we hear it (a healed partition): it must
                # refute, or our tombstone's copies elsewhere refuse it.
                self._accuse(b.node_id, tomb, now)
            self._sync_last.pop(addr, None)
            if peer is None:
                if len(self.peers) >= s.max_peers:
                    return
                out.append(self.peers.add(fresh, now=now))
            else:  # known by hearsay, now heard directly
                self.peers.remove(b.node_id, "direct", now=now)
                self.peers.add(fresh, now=now)
                fresh.joined_at = peer.joined_at
                out.append(PeerChanged(fresh.snapshot(), ("hops", "via", "addr")))
            peer = fresh
            self._digest = None
            self._queue(
                self._add_entry(peer), None if mcast else addr, interface if seg else None, now
            )
        else:
            changed: list[str] = []
            if version != peer.version:
                if version < peer.version:
                    return  # an older incarnation of a live boot: stale, ignore
                newcomer = b.boot_epoch != peer.boot_epoch
                peer.boot_epoch, peer.incarnation = version
                changed.append("version")
                self._digest = None
                if newcomer:
                    peer.link = LinkQuality(s.etx_window)
            if peer.state != ALIVE:
                peer.state = ALIVE
                changed.append("state")
            for name, value in (
                ("addr", addr),
                ("service_port", b.service_port),
                ("load", b.load),
                ("capacity", b.capacity),
                ("summary_version", b.summary_version),
            ):
                if getattr(peer, name) != value:
                    setattr(peer, name, value)
                    changed.append(name)
            peer.last_heard = now
            if b.flags & FLAG_PROBE and b.interval > 0:
                peer.interval = b.interval  # only probes pace the liveness timers
            if mcast or not peer.via_multicast:
                peer.interface = interface
                peer.via_multicast = mcast
            if "version" in changed or "addr" in changed:
                self._queue(
                    self._add_entry(peer),
                    None if mcast else addr,
                    interface if seg else None,
                    now,
                )
            if changed:
                out.append(PeerChanged(peer.snapshot(), tuple(changed)))
        acc = self._accused.get(b.node_id)
        if acc is not None:
            if version > acc.version or acc.until <= now:
                del self._accused[b.node_id]  # refuted: its new version overrides the tombstones
            else:
                self._send_accusation(b.node_id, addr, acc, now)
        self._ts[b.node_id] = (b.ts_ms, now)
        if not mcast and b.flags & FLAG_PROBE:
            self._uprobe.add(b.node_id)
        self._measure(peer, b, mcast, now)
        echoed = frozenset(e.node_id for e in b.echoes)
        self._their_echoes[b.node_id] = echoed
        self._their_digest[b.node_id] = b.digest
        if (
            self.started
            and b.node_id not in self._replies
            and (newcomer or (b.flags & FLAG_JOINING and self.node_id not in echoed))
            # Joining ourselves, our own burst reaches a segment newcomer: after a
            # power cut a whole segment starts at once, and nobody should reply.
            and not (mcast and now < self._join_until)
        ):
            self._replies[b.node_id] = now + s.reply_jitter * self.rng.random()
        if b.pex is not None:
            self._on_pex(b.pex, peer, addr, interface, seg, now, out)
        if b.flags & FLAG_PROBE:
            self._check_digest(peer, b, now)

    def _measure(self, peer: Peer, b: Beacon, mcast: bool, now: float) -> None:
        link = peer.link
        if link is None:  # pragma: no cover - direct peers always have one
            return
        if b.flags & FLAG_PROBE and b.interval > 0:
            link.add_probe(b.interval, now=now)
        mine = next((e for e in b.echoes if e.node_id == self.node_id), None)
        if mine is not None:
            link.set_forward_ratio(mine.ratio)
            if not peer.hears_us and peer.addr is not None:
                # A sync sent while it could not hear us was probably lost (a
                # link coming back): the next divergence need not wait for the
                # pex_sync_interval rate limit.
                self._sync_last.pop(peer.addr, None)
                self._syncs.pop(peer.addr, None)  # re-scheduled by its next differing digest
            peer.hears_us = True
            if mine.hold_ms != HOLD_UNKNOWN:
                elapsed = (self._ms(now) - mine.echoed_ts_ms) & 0xFFFFFFFF
                link.add_rtt_sample((elapsed - mine.hold_ms) / 1000)
        elif mcast and not b.flags & FLAG_PARTIAL:
            peer.hears_us = False
        peer.etx = link.etx(now=now)
        peer.loss = link.loss(now=now)
        peer.rtt = link.rtt
        peer.rtt_min = link.rtt_min

    def _check_digest(self, peer: Peer, b: Beacon, now: float) -> None:
        if b.digest == self.digest:
            self._mismatch.pop(peer.node_id, None)
            return
        n = self._mismatch.get(peer.node_id, 0) + 1
        self._mismatch[peer.node_id] = n
        # Two probes in a row: a delta in flight explains one mismatch, not two.
        if n >= 2 and b.known_count <= len(self.peers) + 1 and peer.addr is not None:
            last = self._sync_last.get(peer.addr, -math.inf)
            due = max(
                now + self.settings.reply_jitter * self.rng.random(),
                last + self.settings.pex_sync_interval,
            )
            self._syncs.setdefault(peer.addr, due)

    # -- peer exchange -----------------------------------------------------------------------

    def _on_pex(
        self,
        pex: PexSection,
        sender: Peer,
        addr: Addr,
        interface: str | None,
        mcast: bool,
        now: float,
        out: list[Effect],
    ) -> None:
        ex_addr = addr  # never back to the sender
        ex_iface = interface if mcast else None
        for e in pex.entries:
            if e.op == OP_ADD:
                self._apply_add(e, sender, ex_addr, ex_iface, now, out)
            elif e.op == OP_REMOVE:
                self._apply_remove(e, sender, ex_addr, ex_iface, now, out)
            else:
                p = self.peers.get(e.node_id)
                if p is not None and p.via == sender.node_id:
                    self._withdraw(p, now, out, ex_addr, ex_iface)
                else:
                    self.stats.deltas_ignored += 1
        if not pex.sync:
            return
        key = (sender.node_id, pex.sync_id)
        rx = self._sync_rx.get(key)
        if rx is None:
            if len(self._sync_rx) > 64:  # bound state kept for half-received syncs
                self._sync_rx.clear()
            rx = self._sync_rx[key] = _SyncRx(pex.chunks)
        rx.got.add(pex.chunk)
        rx.ids.update(e.node_id for e in pex.entries if e.op == OP_ADD)
        if len(rx.got) >= rx.chunks:
            del self._sync_rx[key]
            # The sender no longer knows these: it withdrew the path we learned through it.
            for p in self.peers.indirect():
                if p.via == sender.node_id and p.node_id not in rx.ids:
                    self._withdraw(p, now, out)
        if self._join_until > now and any(isinstance(x, PeerJoined) for x in out):
            self._schedule_reannounce(now)

    def _withdraw(
        self,
        p: Peer,
        now: float,
        out: list[Effect],
        ex_addr: Addr | None = None,
        ex_iface: str | None = None,
    ) -> None:
        """Our path to indirect peer ``p`` is gone: drop it (no tombstone) and say so.

        Distance-vector route withdrawal: only nodes that learned ``p``
        through us drop it on our word, so a partition removes ghosts on the
        far side while a peer reachable another way is re-taught by a sync.
        """
        left = self.peers.remove(p.node_id, "via-gone", now=now, bury=False)
        if left is not None:
            out.append(left)
            self._digest = None
            self._queue(
                PexEntry(OP_WITHDRAW, p.node_id, p.boot_epoch, p.incarnation),
                ex_addr,
                ex_iface,
                now,
            )

    def _apply_add(
        self,
        e: PexEntry,
        sender: Peer,
        ex_addr: Addr | None,
        ex_iface: str | None,
        now: float,
        out: list[Effect],
    ) -> None:
        s = self.settings
        version = (e.boot_epoch, e.incarnation)
        hops = e.hops + 1
        if e.node_id in (self.node_id, sender.node_id) or hops > s.pex_max_hops:
            self.stats.deltas_ignored += 1
            return
        existing = self.peers.get(e.node_id)
        if existing is not None and existing.direct:
            self.stats.deltas_ignored += 1  # direct observation beats hearsay
            return
        tomb = self.peers.tombstone(e.node_id, now=now)
        if tomb is not None and version <= tomb:
            self.stats.deltas_ignored += 1
            self._contradict(e.node_id, tomb, sender, now)
            return
        addr = (e.host, s.port) if e.host else None
        if existing is None:
            if len(self.peers) >= s.max_peers:
                self.stats.deltas_ignored += 1
                return
            peer = Peer(
                node_id=e.node_id,
                addr=addr,
                service_port=e.service_port,
                hops=hops,
                via=sender.node_id,
                boot_epoch=e.boot_epoch,
                incarnation=e.incarnation,
                last_heard=now,
            )
            out.append(self.peers.add(peer, now=now))
        else:
            better = version > existing.version or (
                version == existing.version
                and (hops < existing.hops or existing.via == sender.node_id)
            )
            if not better:
                self.stats.deltas_ignored += 1
                return
            changed = [
                name
                for name, value in (
                    ("version", version),
                    ("hops", hops),
                    ("via", sender.node_id),
                    ("addr", addr),
                    ("service_port", e.service_port),
                )
                if getattr(existing, name) != value
            ]
            existing.boot_epoch, existing.incarnation = version
            existing.hops, existing.via, existing.addr = hops, sender.node_id, addr
            existing.service_port = e.service_port
            existing.last_heard = now
            if not changed:
                return
            out.append(PeerChanged(existing.snapshot(), tuple(changed)))
            if "version" not in changed:
                return  # a shorter path is news for us, not for the whole mesh
            peer = existing
        self.stats.deltas_accepted += 1
        self._digest = None
        self._queue(self._add_entry(peer), ex_addr, ex_iface, now)

    def _apply_remove(
        self,
        e: PexEntry,
        sender: Peer,
        ex_addr: Addr | None,
        ex_iface: str | None,
        now: float,
        out: list[Effect],
    ) -> None:
        version = (e.boot_epoch, e.incarnation)
        if e.node_id == self.node_id:
            if e.boot_epoch == self.boot_epoch and e.incarnation >= self.incarnation:
                # SWIM refutation: we are alive, so outbid the rumour.
                self.incarnation = min(0xFFFF, e.incarnation + 1)
                self.stats.refutations += 1
                self._digest = None
                self._force_flush(now)
            return
        existing = self.peers.get(e.node_id)
        if existing is None:
            self.peers.bury(e.node_id, version, now=now)
            self.stats.deltas_ignored += 1
            return
        if version < existing.version:
            self.stats.deltas_ignored += 1
            return
        if existing.direct and existing.state == ALIVE:
            # We still hear it: let it refute (it bumps its incarnation).
            self._accuse(e.node_id, version, now)
            self.stats.deltas_ignored += 1
            return
        left = self.peers.remove(e.node_id, "removed", now=now, version=version)
        if left is not None:
            out.append(left)
            self._digest = None
            self.stats.deltas_accepted += 1
            self._queue(e, ex_addr, ex_iface, now)

    def _accuse(self, node_id: str, version: tuple[int, int], now: float) -> None:
        """Direct peer ``node_id`` was declared gone at ``version``: tell it until it refutes.

        SWIM's "you are suspected" message, made reliable: one datagram can be
        lost (a link that just came back often drops the first packets), so
        the remove is sent again on each of its beacons that still carries
        ``version`` or older (at most once per ``pex_min_gap``), until one
        shows a higher version or ``tombstone_ttl`` has passed.
        """
        acc = self._accused.get(node_id)
        until = now + self.settings.tombstone_ttl
        if acc is None:
            acc = self._accused[node_id] = _Accusation(version, until)
        else:
            acc.version, acc.until = max(acc.version, version), until
        peer = self.peers.get(node_id)
        if peer is not None and peer.addr is not None:
            self._send_accusation(node_id, peer.addr, acc, now)

    def _send_accusation(self, node_id: str, addr: Addr, acc: _Accusation, now: float) -> None:
        if now - acc.sent < self.settings.pex_min_gap:
            return
        acc.sent = now
        self.stats.accusations_sent += 1
        # No repeat: its next beacon, if it still carries the old version, re-sends.
        entry = PexEntry(OP_REMOVE, node_id, *acc.version)
        self._queue(entry, None, None, now, only=addr, repeats=0)

    def _contradict(self, node_id: str, tomb: tuple[int, int], sender: Peer, now: float) -> None:
        """``sender`` offered ``node_id`` at a version we hold a tombstone for: tell it.

        The sender then either drops the peer too (it learned it by hearsay)
        or, if it hears the peer directly, accuses it so that it refutes. Either
        way the disagreement ends in one version for the whole mesh, instead of
        lasting until our tombstone expires.
        """
        key = (node_id, sender.node_id)
        if sender.addr is None or now - self._contradicted.get(key, -math.inf) < (
            self.settings.pex_min_gap
        ):
            return
        self._contradicted[key] = now
        self.stats.contradictions_sent += 1
        entry = PexEntry(OP_REMOVE, node_id, *tomb)
        self._queue(entry, None, None, now, only=sender.addr, repeats=0)

    def _add_entry(self, p: Peer) -> PexEntry:
        host = p.addr[0] if p.addr is not None else ""
        return PexEntry(
            OP_ADD, p.node_id, p.boot_epoch, p.incarnation, p.hops, host, p.service_port
        )

    def _queue(
        self,
        entry: PexEntry,
        ex_addr: Addr | None,
        ex_iface: str | None,
        now: float,
        *,
        only: Addr | None = None,
        repeats: int = 1,
    ) -> None:
        self._pending.append(_Delta(entry, ex_addr, ex_iface, only, repeats))
        if self._pex_due is None:
            self._pex_due = max(
                now + self.settings.pex_delay, self._pex_last + self.settings.pex_min_gap
            )

    def _force_flush(self, now: float) -> None:
        self._force = True
        self._pex_due = now

    def _schedule_reannounce(self, now: float) -> None:
        if self._reannounces >= self.settings.burst or self._reannounce_due is not None:
            return
        self._reannounce_due = max(now, self._last_mcast + JOIN_REANNOUNCE_GAP)

    # -- sending -----------------------------------------------------------------------------

    def _jitter(self) -> float:
        j = self.settings.jitter
        return 1.0 + j * (2 * self.rng.random() - 1)

    @staticmethod
    def _ms(now: float) -> int:
        return round(now * 1000) & 0xFFFFFFFF

    def _echo(self, peer: Peer, now: float) -> Echo | None:
        ts = self._ts.get(peer.node_id)
        if ts is None or peer.link is None:
            return None
        hold = round((now - ts[1]) * 1000)
        return Echo(
            peer.node_id,
            ts[0],
            hold if 0 <= hold < HOLD_UNKNOWN else HOLD_UNKNOWN,
            peer.link.dr(now=now),
        )

    def _base(
        self,
        flags: int,
        echoes: tuple[Echo, ...],
        interval: float,
        now: float,
        pex: PexSection | None = None,
    ) -> Beacon:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return Beacon(
            node_id=self.node_id,
            boot_epoch=self.boot_epoch,
            seq=self._seq,
            ts_ms=self._ms(now),
            flags=flags,
            interval=interval,
            service_port=self.service_port,
            load=self.load,
            capacity=self.capacity,
            summary_version=self.summary_version,
            incarnation=self.incarnation,
            digest=self.digest,
            known_count=len(self.peers) + 1,
            echoes=echoes,
            pex=pex,
        )

    def _encode(self, beacon: Beacon) -> bytes:
        return encode_beacon(beacon, self.settings.community_key)

    def _segment_echoes(
        self, interface: str, now: float, room: int
    ) -> tuple[tuple[Echo, ...], bool]:
        """Echo entries for a segment beacon, and whether some peers had to be left out.

        On a segment too large for one datagram the entries rotate, so every
        neighbour is echoed every few beacons (its ETX and RTT stay fresh).
        """
        peers = sorted(
            (
                p
                for p in self.peers.direct()
                if p.interface in (interface, None, "") or interface == ""
            ),
            key=lambda p: p.node_id,
        )
        n = len(peers)
        start = self._echo_rot % n if n else 0
        echoes: list[Echo] = []
        partial = False
        for i in range(n):
            p = peers[(start + i) % n]
            e = self._echo(p, now)
            if e is None:
                continue
            size = len(encode_node_id(p.node_id)) + 7
            if size > room or len(echoes) == 255:
                partial = True
                break
            room -= size
            echoes.append(e)
        self._echo_rot = start + len(echoes) if partial else 0
        return tuple(echoes), partial

    def _header_room(self) -> int:
        return MAX_DATAGRAM - (4 + len(encode_node_id(self.node_id)) + 40 + 1 + MAC_LEN)

    def _multicast(
        self,
        flags: int,
        now: float,
        out: list[Effect],
        pex: dict[str, list[PexEntry]] | None = None,
    ) -> None:
        self._last_mcast = now
        for iface in self._interfaces:
            # Leave room for peer-exchange records: echoes get at most half the datagram.
            echoes, partial = self._segment_echoes(iface, now, self._header_room() // 2)
            entries = (pex or {}).get(iface)
            if pex is not None and not entries:
                continue
            for section in self._chunks(entries, echoes, sync=False):
                data = self._encode(
                    self._base(
                        flags | (FLAG_PARTIAL if partial else 0),
                        echoes,
                        self.settings.beacon_interval,
                        now,
                        section,
                    )
                )
                self._sent(data, multicast=True)
                out.append(SendMulticast(iface, data))

    def _unicast(
        self,
        addr: Addr,
        flags: int,
        now: float,
        out: list[Effect],
        entries: list[PexEntry] | None = None,
        *,
        sync: bool = False,
    ) -> None:
        peer = self.peers.by_addr(addr)
        echo = self._echo(peer, now) if peer is not None else None
        echoes = (echo,) if echo is not None else ()
        # The interval of the channel this datagram travels on.
        interval = (
            self.settings.neighbour_interval
            if flags & FLAG_PROBE or addr in self._daemon
            else self.settings.beacon_interval
        )
        for section in self._chunks(entries, echoes, sync=sync):
            data = self._encode(self._base(flags, echoes, interval, now, section))
            self._sent(data, multicast=False)
            out.append(SendUnicast(addr, data))

    def _chunks(
        self, entries: list[PexEntry] | None, echoes: tuple[Echo, ...], *, sync: bool
    ) -> list[PexSection | None]:
        if entries is None:
            return [None]
        room = self._header_room() - sum(len(encode_node_id(e.node_id)) + 7 for e in echoes)
        room -= 3 + 2 + (4 if sync else 0)  # TLV header, count, sync header
        groups: list[list[PexEntry]] = [[]]
        used = 0
        for e in entries:
            size = pex_entry_size(e)
            if used + size > room and groups[-1]:
                groups.append([])
                used = 0
            groups[-1].append(e)
            used += size
        if not sync:
            self.stats.deltas_sent += len(entries)
            return [PexSection(tuple(g)) for g in groups]
        sync_id = self.rng.getrandbits(16)
        n = len(groups)
        return [PexSection(tuple(g), True, sync_id, i, n) for i, g in enumerate(groups)]

    def _sent(self, data: bytes, *, multicast: bool) -> None:
        self.stats.sent_bytes += len(data)
        self.stats.sent_datagrams += 1
        if multicast:
            self.stats.sent_multicast += 1
        else:
            self.stats.sent_unicast += 1

    def _covered_by_multicast(self, addr: Addr, now: float) -> bool:
        """True when ``addr`` is a segment peer that hears our multicast beacons."""
        peer = self.peers.by_addr(addr)
        return (
            peer is not None
            and peer.via_multicast
            and peer.hears_us
            and peer.state == ALIVE
            and bool(self._interfaces)
            and now - peer.last_heard < 2 * peer.interval
        )

    def _sync_entries(self, exclude: str | None) -> list[PexEntry]:
        # Split horizon: what we learned through the target is not news to it,
        # and echoing it back would keep ghosts alive after a partition.
        return [self._add_entry(p) for p in self.peers if p.node_id != exclude and p.via != exclude]

    def _send_sync(self, addr: Addr, flags: int, now: float, out: list[Effect]) -> None:
        peer = self.peers.by_addr(addr)
        self._sync_last[addr] = now
        self.stats.syncs_sent += 1
        self._unicast(
            addr, flags, now, out, self._sync_entries(peer.node_id if peer else None), sync=True
        )

    def _reply(self, node_id: str, now: float, out: list[Effect]) -> None:
        peer = self.peers.get(node_id)
        if peer is None or not peer.direct or peer.addr is None:
            return
        # On a segment an echo of us means a reply from someone already reached
        # the newcomer (it re-announces after one); a routing neighbour has no
        # other replier, so only an equal digest makes our reply redundant.
        echoes_us = self.node_id in self._their_echoes.get(node_id, frozenset())
        if (echoes_us and peer.via_multicast) or self._their_digest.get(node_id) == self.digest:
            self.stats.replies_suppressed += 1
            return
        self.stats.replies_sent += 1
        # FLAG_REPLY tells a newcomer that the records come from its own segment,
        # so it need not repeat them there; a routing neighbour's sync is news.
        self._send_sync(peer.addr, FLAG_REPLY if peer.via_multicast else 0, now, out)

    def _flush(self, now: float, out: list[Effect]) -> None:
        self._pex_due = None
        self._pex_last = now
        pending, self._pending = self._pending, []
        force, self._force = self._force, False
        targeted = [d for d in pending if d.only is not None]
        pending = [d for d in pending if d.only is None]
        # Multicast: one record per node id (the last queued wins) per interface.
        per_iface: dict[str, list[PexEntry]] = {}
        for iface in self._interfaces:
            latest: dict[str, PexEntry] = {}
            for d in pending:
                if d.exclude_iface != iface:
                    latest[d.entry.node_id] = d.entry
            per_iface[iface] = list(latest.values())
        if force:
            self._multicast(0, now, out)
        elif any(per_iface.values()):
            self._multicast(0, now, out, per_iface)
        # Routing neighbours, ours and those that treat us as theirs (they send
        # us unicast probes); segment peers get the multicast copy instead.
        targets = set(self._daemon) | {
            p.addr
            for p in self.peers.direct()
            if p.addr is not None and not p.via_multicast and p.node_id in self._uprobe
        }
        for addr in sorted(targets):
            target = self.peers.by_addr(addr)
            via_target = target.node_id if target is not None else None
            latest = {}
            for d in pending:
                if d.exclude_addr == addr:
                    continue
                if d.entry.op == OP_ADD and via_target is not None:
                    known = self.peers.get(d.entry.node_id)
                    if known is not None and known.via == via_target:
                        continue  # split horizon
                latest[d.entry.node_id] = d.entry
            if self._covered_by_multicast(addr, now):
                continue
            if latest or force:
                self._unicast(addr, 0, now, out, list(latest.values()) if latest else None)
        # Records meant for one peer only (accusations, contradictions): one
        # datagram per destination, never multicast nor forwarded as news.
        per_addr: dict[Addr, dict[str, PexEntry]] = {}
        for d in targeted:
            per_addr.setdefault(d.only, {})[d.entry.node_id] = d.entry  # type: ignore[arg-type]
        for addr, entries in per_addr.items():
            self._unicast(addr, 0, now, out, list(entries.values()))
        # Each record goes out twice, pex_min_gap apart: with 10% loss per
        # link, a lost delta then costs 1% of the time a full sync, not 10%.
        again = [d for d in pending + targeted if d.repeats > 0]
        for d in again:
            d.repeats -= 1
        if again:
            self._pending = again + self._pending
            self._pex_due = now + self.settings.pex_min_gap
