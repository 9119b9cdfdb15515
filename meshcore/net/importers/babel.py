"""babeld's local interface: a line parser, an incremental state, and a Topology import.

Theory of operation
-------------------
babeld (the reference Babel implementation, RFC 8966) serves a line-oriented
"local configuration interface" on a TCP port (``-g``/``-G``, ``local-port``)
or a Unix socket (``local-path``). The grammar, from babeld's ``local.c``
(1.8 to 1.14) and the ``LOCAL CONFIGURATION INTERFACE`` section of babeld(8):

* a header, once per connection::

      BABEL 1.0
      version babeld-1.12.1
      host omelet
      my-id 02:26:2d:ff:fe:91:ca:93
      ok

* replies to each request: ``ok``, ``no [message]`` or ``bad``;
* object lines, sent for ``dump`` and, after ``monitor``, whenever something
  changes: ``<kind> <object> <id> key value key value ...`` where ``kind`` is
  ``add``, ``change`` or ``flush`` and ``object`` one of::

      interface <name> up true|false [ipv6 <ll-addr>] [ipv4 <addr>]
      neighbour <h> address <ll-addr> if <ifname> reach <hex> [ureach <hex>]
                rxcost <n> txcost <n> [rtt <ms> rttcost <n>] cost <n>
      xroute <prefix>-<src> prefix <p> from <src> metric <n>
      route <h> prefix <p> [from <src>] installed yes|no id <router-id>
                metric <n> refmetric <n> via <ll-addr> if <ifname>

  ``<h>`` is an opaque handle (babeld prints a pointer); ``ureach`` appeared in
  1.9, ``from`` in 1.6, ``rtt``/``rttcost`` only when the neighbour has a valid
  RTT. ``flush`` lines repeat the object's last fields, but only the handle is
  needed to forget it. Keys this parser does not know are kept in ``extra``
  (forward compatibility); a key that it does know must have a valid value.

A line that does not fit this grammar raises
:class:`~meshcore.errors.TopologyFormatError` naming the line number; the
socket driver (``meshcore.node.babeld``) counts and skips such lines, the file
importer stops at the first one.

Costs
-----
Babel metrics are additive and 256 is one perfect wireless hop (babeld's
default ``rxcost`` for wireless interfaces; wired links cost 96), so
``cost = metric / 256`` puts Babel on meshcore's ETX-like scale (1.0 = one
perfect link). ``65535`` (``INFINITY`` in babeld) is unreachable and becomes
``float('inf')``.

Building the graph
------------------
The local interface is one router's view, not the whole mesh:

* this router is ``my-id``;
* each neighbour is a direct link ``my-id -> neighbour`` with the neighbour's
  ``cost`` (``inf`` while babeld reports its interface ``up false``). The
  local interface names a neighbour only by its link-local address, so its
  router-id is taken from the routes it originates: a route via that address
  with ``refmetric 0`` (babeld redistributes each router's own addresses with
  metric 0), remembered until the neighbour is flushed. A neighbour that
  originates nothing keeps the id ``<address>%<ifname>``;
* each other router ``R`` with a finite route gets one link from the next
  hop's router to ``R`` whose cost is the rest of the path,
  ``(metric - cost(next hop)) / 256``; the shortest path from ``my-id`` to
  ``R`` in the graph then costs exactly ``metric / 256``, babeld's own figure.
  When the next hop cannot be resolved the link is ``my-id -> R`` with
  ``metric / 256``. Of several routes to the same router the installed one
  with the lowest metric wins.

Host prefixes (``/32``, ``/128``) a router originates become its
``local_addresses`` node property, every prefix it originates its
``prefixes`` property; a router that originates a default route
(``0.0.0.0/0`` or ``::/0``) gets ``gateway = True``.

Bounds: a state keeps at most :data:`MAX_ROUTES` routes,
:data:`MAX_ROUTES_PER_NEIGHBOUR` through one next hop and :data:`MAX_OBJECTS`
interfaces, neighbours and xroutes; a new object beyond them is dropped,
counted in ``BabelState.dropped`` and reported as a ``dropped`` event
(updates and flushes of kept objects always apply).

Sources: babeld ``local.c``, ``route.h`` (``route_metric = refmetric + cost +
add_metric``), babeld(8); RFC 8966 section 3.5 (metric computation).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from meshcore.errors import TopologyFormatError
from meshcore.net._costs import BABEL_INFINITY, babel_cost
from meshcore.net.importers._common import count
from meshcore.net.topology import Topology

__all__ = [
    "FORMAT",
    "INFINITY",
    "MAX_OBJECTS",
    "MAX_ROUTES",
    "MAX_ROUTES_PER_NEIGHBOUR",
    "BabelEvent",
    "BabelInterface",
    "BabelNeighbour",
    "BabelRoute",
    "BabelState",
    "BabelXRoute",
    "detect",
    "load",
    "metric_to_cost",
]

FORMAT = "babel"
INFINITY = BABEL_INFINITY
"""babeld's unreachable metric."""

# babeld's buffers are 512 bytes per line; anything much longer is not babeld.
_MAX_LINE = 4096

# Bounds of one babeld's view (a flooding local babeld must not take a
# router's RAM: a route record is about 1 KB with its strings). A mesh of
# 4,000 routers with a few prefixes each fits.
MAX_ROUTES = 65536
"""Route records kept at most (new ones beyond are counted in ``BabelState.dropped``)."""
MAX_ROUTES_PER_NEIGHBOUR = 16384
"""Route records kept at most through one next hop."""
MAX_OBJECTS = 4096
"""Interfaces, neighbours and xroutes kept at most, each."""

_KINDS = frozenset({"add", "change", "flush"})
_HEADER_KEYS = frozenset({"version", "host", "my-id"})
_EUI64 = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){7}$")
_HEX = re.compile(r"^[0-9A-Fa-f]{1,8}$")
_DEC = re.compile(r"^[0-9]{1,9}$")
_DETECT = re.compile(
    r"^(?:BABEL \d+\.\d+|(?:add|change|flush) (?:interface|neighbour|route|xroute) \S+)",
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class BabelInterface:
    """An interface babeld runs on; ``ipv6``/``ipv4`` are its addresses when up."""

    name: str
    up: bool
    ipv6: str | None = None
    ipv4: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BabelNeighbour:
    """A Babel neighbour: one direct link.

    ``reach``/``ureach`` are the 16-bit Hello histories (multicast/unicast),
    ``rxcost``/``txcost``/``cost`` are in Babel metric units (256 = one perfect
    wireless hop, 65535 = unreachable), ``rtt`` is in milliseconds.
    """

    id: str
    address: str
    interface: str
    reach: int
    rxcost: int
    txcost: int
    cost: int
    ureach: int | None = None
    rtt: float | None = None
    rttcost: int | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BabelRoute:
    """A route learnt from a neighbour: ``prefix`` (from ``source_prefix``) to router ``router_id``.

    ``metric`` is the total path metric, ``refmetric`` the metric the next hop
    advertised, ``via`` the next hop's link-local address on ``interface``.
    ``installed`` is true for the route babeld selected and put in the kernel.
    ``source_prefix`` is ``None`` on daemons older than 1.6 (no ``from``).
    """

    id: str
    prefix: str
    installed: bool
    router_id: str
    metric: int
    refmetric: int
    via: str
    interface: str
    source_prefix: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BabelXRoute:
    """A prefix this router announces itself (redistributed), with its metric."""

    id: str
    prefix: str
    metric: int
    source_prefix: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


BabelRecord = BabelInterface | BabelNeighbour | BabelRoute | BabelXRoute


@dataclass(frozen=True, slots=True)
class BabelEvent:
    """One parsed line.

    ``kind`` is ``"add"``, ``"change"`` or ``"flush"`` for object lines (then
    ``object`` is ``"interface"``, ``"neighbour"``, ``"route"`` or ``"xroute"``,
    ``id`` the handle and ``record`` the parsed object, ``None`` for a flush of an
    object never seen); ``"header"`` for the greeting (``object`` is ``"BABEL"``,
    ``"version"``, ``"host"`` or ``"my-id"``, ``id`` the value); a reply
    ``"ok"``, ``"no"``, ``"bad"`` (``id`` holds the message of ``no``); or
    ``"dropped"`` for a new object refused by the state's bounds.
    """

    kind: str
    object: str = ""
    id: str = ""
    record: BabelRecord | None = None


def metric_to_cost(metric: int) -> float:
    """Babel metric -> meshcore cost: ``metric / 256``; ``>= 65535`` -> ``inf``.

    The one conversion of :func:`meshcore.net._costs.babel_cost`; raises
    ValueError for a negative metric.
    """
    return babel_cost(metric)


def _is_host_prefix(prefix: str) -> str | None:
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return None
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return None


def _is_default(prefix: str) -> bool:
    return prefix in ("0.0.0.0/0", "::/0")


class BabelState:
    """What one babeld has told us, kept up to date line by line.

    ``path`` names the source in errors (a file name or ``"<babeld socket>"``).
    Lines are numbered from 1 across the state's life, so an error names the
    line where the stream went wrong. :meth:`reset` forgets everything (after a
    reconnect babeld sends a full dump again) but keeps the line count.
    """

    def __init__(self, path: str = "<babeld socket>", *, max_routes: int = MAX_ROUTES,
                 max_routes_per_neighbour: int = MAX_ROUTES_PER_NEIGHBOUR,
                 max_objects: int = MAX_OBJECTS) -> None:
        for name, value in (("max_routes", max_routes),
                            ("max_routes_per_neighbour", max_routes_per_neighbour),
                            ("max_objects", max_objects)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        self.path = path
        self.max_routes = max_routes
        self.max_routes_per_neighbour = max_routes_per_neighbour
        self.max_objects = max_objects
        self.dropped: dict[str, int] = {}
        """New objects refused because their table was full, by object kind
        (``"route"``, ``"neighbour"``, ...): what a flooding babeld cost us."""
        self._per_hop: dict[tuple[str, str], int] = {}  # (via, ifname) -> routes
        self.line_number = 0
        self.protocol_version: str | None = None
        self.version: str | None = None
        self.host: str | None = None
        self.my_id: str | None = None
        self._interfaces: dict[str, BabelInterface] = {}
        self._neighbours: dict[str, BabelNeighbour] = {}
        self._routes: dict[str, BabelRoute] = {}
        self._xroutes: dict[str, BabelXRoute] = {}
        # (next-hop address, ifname) -> router id, remembered for the
        # neighbour's life: babeld flushes a neighbour's routes when the link
        # breaks, and the node must keep its name while its link is down.
        self._hop_rid: dict[tuple[str, str], str] = {}

    # -- public state ---------------------------------------------------

    def reset(self) -> None:
        """Forget the header and every object (the line counter keeps going)."""
        self.protocol_version = self.version = self.host = self.my_id = None
        self._interfaces.clear()
        self._neighbours.clear()
        self._routes.clear()
        self._xroutes.clear()
        self._hop_rid.clear()
        self._per_hop.clear()

    def interfaces(self) -> list[BabelInterface]:
        """Interfaces, sorted by name."""
        return [self._interfaces[k] for k in sorted(self._interfaces)]

    def neighbours(self) -> list[BabelNeighbour]:
        """Neighbours, sorted by (interface, address)."""
        return sorted(self._neighbours.values(), key=lambda n: (n.interface, n.address))

    def routes(self) -> list[BabelRoute]:
        """Routes (installed or not), sorted by (prefix, router id, next hop)."""
        return sorted(self._routes.values(), key=lambda r: (r.prefix, r.router_id, r.via, r.id))

    def xroutes(self) -> list[BabelXRoute]:
        """Prefixes this router announces, sorted by prefix."""
        return sorted(self._xroutes.values(), key=lambda x: (x.prefix, x.id))

    # -- parsing --------------------------------------------------------

    def feed(self, lines: Iterable[str]) -> list[BabelEvent]:
        """Feed several lines; raises at the first bad one (see :meth:`feed_line`)."""
        events: list[BabelEvent] = []
        for line in lines:
            events.extend(self.feed_line(line))
        return events

    def feed_line(self, line: str) -> list[BabelEvent]:
        """Parse one line (with or without its newline) and apply it.

        Returns the events it produced (none for a blank line). Raises
        :class:`TopologyFormatError` (format ``"babel"``, position ``"line N"``)
        when the line is not babeld's grammar; the state is then unchanged.
        """
        self.line_number += 1
        if not isinstance(line, str):
            raise TypeError(f"line: expected str, got {type(line).__name__}")
        if len(line) > _MAX_LINE:
            raise self._error(f"line is {len(line)} characters long (babeld writes <= 512)")
        text = line.rstrip("\r\n")
        if any(ord(ch) < 0x20 or ch == "\x7f" for ch in text.replace("\t", " ")):
            raise self._error("control character in line")
        words = text.split()
        if not words:
            return []
        head = words[0]
        if head in _KINDS:
            return [self._object_line(head, words)]
        if head == "ok" and len(words) == 1:
            return [BabelEvent("ok")]
        if head == "bad" and len(words) == 1:
            return [BabelEvent("bad")]
        if head == "no":
            return [BabelEvent("no", "", " ".join(words[1:]))]
        if head == "BABEL":
            if len(words) != 2 or not re.fullmatch(r"\d+\.\d+", words[1]):
                raise self._error(f"bad header {text!r}: expected 'BABEL <major>.<minor>'")
            if not words[1].startswith("1."):
                raise self._error(f"unsupported local-interface version {words[1]} (need 1.x)")
            self.protocol_version = words[1]
            return [BabelEvent("header", "BABEL", words[1])]
        if head in _HEADER_KEYS:
            if len(words) != 2:
                raise self._error(f"header line {head!r} needs exactly one value")
            value = words[1]
            if head == "version":
                self.version = value
            elif head == "host":
                self.host = value
            else:
                if not _EUI64.match(value):
                    raise self._error(f"my-id {value!r} is not an EUI-64 router id")
                self.my_id = value.lower()
                value = self.my_id
            return [BabelEvent("header", head, value)]
        raise self._error(f"unknown line {_clip(text)!r}")

    def _error(self, problem: str) -> TopologyFormatError:
        return TopologyFormatError(self.path, FORMAT, f"line {self.line_number}", problem)

    def _object_line(self, kind: str, words: list[str]) -> BabelEvent:
        if len(words) < 3:
            raise self._error(f"{' '.join(words)!r}: expected '<kind> <object> <id> ...'")
        obj, handle = words[1], words[2]
        rest = words[3:]
        if len(rest) % 2:
            raise self._error(f"{obj} {handle}: key {rest[-1]!r} has no value")
        pairs: dict[str, str] = {}
        for key, value in zip(rest[::2], rest[1::2], strict=True):
            if key in pairs:
                raise self._error(f"{obj} {handle}: key {key!r} given twice")
            pairs[key] = value
        table = self._table(obj)
        if kind == "flush":
            old = table.pop(handle, None)
            if isinstance(old, BabelNeighbour):
                self._hop_rid.pop((old.address, old.interface), None)
            elif isinstance(old, BabelRoute):
                self._count_hop(old, -1)
            return BabelEvent(kind, obj, handle, old)
        parser = getattr(self, f"_parse_{obj}")
        record = parser(handle, pairs)
        old = table.get(handle)
        if old is None and not self._room_for(obj, table, record):
            self.dropped[obj] = self.dropped.get(obj, 0) + 1
            return BabelEvent("dropped", obj, handle, record)
        if isinstance(old, BabelRoute):
            self._count_hop(old, -1)
        if isinstance(record, BabelRoute):
            self._count_hop(record, +1)
        table[handle] = record
        if isinstance(record, BabelRoute) and record.refmetric == 0:
            self._hop_rid[(record.via, record.interface)] = record.router_id
        return BabelEvent(kind, obj, handle, record)

    def _room_for(self, obj: str, table: dict, record: object) -> bool:
        # A local babeld is trusted to speak its grammar, not to be small: a
        # flood of distinct route lines must not grow the daemon without bound.
        if obj != "route":
            return len(table) < self.max_objects
        if len(table) >= self.max_routes:
            return False
        hop = (record.via, record.interface)  # type: ignore[attr-defined]
        return self._per_hop.get(hop, 0) < self.max_routes_per_neighbour

    def _count_hop(self, route: BabelRoute, delta: int) -> None:
        hop = (route.via, route.interface)
        n = self._per_hop.get(hop, 0) + delta
        if n > 0:
            self._per_hop[hop] = n
        else:
            self._per_hop.pop(hop, None)

    def _table(self, obj: str) -> dict:
        if obj == "neighbour":
            return self._neighbours
        if obj == "route":
            return self._routes
        if obj == "xroute":
            return self._xroutes
        if obj == "interface":
            return self._interfaces
        raise self._error(
            f"unknown object {_clip(obj)!r} (expected interface, neighbour, route or xroute)"
        )

    # -- field parsers --------------------------------------------------

    def _take(self, obj: str, pairs: dict[str, str], key: str) -> str:
        try:
            return pairs.pop(key)
        except KeyError:
            raise self._error(f"{obj}: required key {key!r} is missing") from None

    def _int(self, obj: str, key: str, value: str, *, base: int = 10) -> int:
        pattern = _HEX if base == 16 else _DEC
        if not pattern.match(value):
            raise self._error(
                f"{obj}: {key} {_clip(value)!r} is not a{' hex' * (base == 16)} number"
            )
        number = int(value, base)
        if base == 10 and number > 0x7FFFFFFF:
            raise self._error(f"{obj}: {key} {number} is out of range")
        return number

    def _address(self, obj: str, key: str, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise self._error(f"{obj}: {key} {_clip(value)!r} is not an IP address") from None

    def _prefix(self, obj: str, key: str, value: str) -> str:
        if "/" not in value:
            raise self._error(f"{obj}: {key} {_clip(value)!r} is not a prefix (no '/')")
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise self._error(f"{obj}: {key} {_clip(value)!r} is not a prefix") from None

    def _bool(self, obj: str, key: str, value: str, yes: str, no: str) -> bool:
        if value == yes:
            return True
        if value == no:
            return False
        raise self._error(f"{obj}: {key} {_clip(value)!r}: expected {yes} or {no}")

    def _rtt(self, value: str) -> float:
        # format_thousands prints milliseconds as "12.345".
        if not re.fullmatch(r"[0-9]{1,9}(?:\.[0-9]{1,6})?", value):
            raise self._error(f"neighbour: rtt {_clip(value)!r} is not a number of milliseconds")
        return float(value)

    @staticmethod
    def _extra(pairs: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(pairs.items()))

    def _parse_interface(self, handle: str, pairs: dict[str, str]) -> BabelInterface:
        up = self._bool("interface", "up", self._take("interface", pairs, "up"), "true", "false")
        ipv6 = pairs.pop("ipv6", None)
        ipv4 = pairs.pop("ipv4", None)
        return BabelInterface(
            name=handle,
            up=up,
            ipv6=None if ipv6 is None else self._address("interface", "ipv6", ipv6),
            ipv4=None if ipv4 is None else self._address("interface", "ipv4", ipv4),
            extra=self._extra(pairs),
        )

    def _parse_neighbour(self, handle: str, pairs: dict[str, str]) -> BabelNeighbour:
        o = "neighbour"
        address = self._address(o, "address", self._take(o, pairs, "address"))
        interface = self._take(o, pairs, "if")
        reach = self._int(o, "reach", self._take(o, pairs, "reach"), base=16)
        ureach_text = pairs.pop("ureach", None)
        ureach = None if ureach_text is None else self._int(o, "ureach", ureach_text, base=16)
        rxcost = self._int(o, "rxcost", self._take(o, pairs, "rxcost"))
        txcost = self._int(o, "txcost", self._take(o, pairs, "txcost"))
        cost = self._int(o, "cost", self._take(o, pairs, "cost"))
        rtt_text = pairs.pop("rtt", None)
        rttcost_text = pairs.pop("rttcost", None)
        return BabelNeighbour(
            id=handle,
            address=address,
            interface=interface,
            reach=reach,
            ureach=ureach,
            rxcost=rxcost,
            txcost=txcost,
            cost=cost,
            rtt=None if rtt_text is None else self._rtt(rtt_text),
            rttcost=None if rttcost_text is None else self._int(o, "rttcost", rttcost_text),
            extra=self._extra(pairs),
        )

    def _parse_xroute(self, handle: str, pairs: dict[str, str]) -> BabelXRoute:
        o = "xroute"
        prefix = self._prefix(o, "prefix", self._take(o, pairs, "prefix"))
        source = pairs.pop("from", None)
        metric = self._int(o, "metric", self._take(o, pairs, "metric"))
        return BabelXRoute(
            id=handle,
            prefix=prefix,
            source_prefix=None if source is None else self._prefix(o, "from", source),
            metric=metric,
            extra=self._extra(pairs),
        )

    def _parse_route(self, handle: str, pairs: dict[str, str]) -> BabelRoute:
        o = "route"
        prefix = self._prefix(o, "prefix", self._take(o, pairs, "prefix"))
        source = pairs.pop("from", None)
        installed = self._bool(o, "installed", self._take(o, pairs, "installed"), "yes", "no")
        router_id = self._take(o, pairs, "id")
        if not _EUI64.match(router_id):
            raise self._error(f"route: id {_clip(router_id)!r} is not an EUI-64 router id")
        metric = self._int(o, "metric", self._take(o, pairs, "metric"))
        refmetric = self._int(o, "refmetric", self._take(o, pairs, "refmetric"))
        via = self._address(o, "via", self._take(o, pairs, "via"))
        interface = self._take(o, pairs, "if")
        return BabelRoute(
            id=handle,
            prefix=prefix,
            source_prefix=None if source is None else self._prefix(o, "from", source),
            installed=installed,
            router_id=router_id.lower(),
            metric=metric,
            refmetric=refmetric,
            via=via,
            interface=interface,
            extra=self._extra(pairs),
        )

    # -- derived views --------------------------------------------------

    def neighbour_router_ids(self) -> dict[str, str]:
        """Neighbour handle -> router id, from routes it originates (``refmetric 0``).

        The last such route seen is remembered until the neighbour is flushed,
        so a neighbour whose routes were withdrawn (link down) keeps its id.
        Neighbours that never originated a route are absent.
        """
        found = {}
        for handle, nb in self._neighbours.items():
            rid = self._hop_rid.get((nb.address, nb.interface))
            if rid is not None:
                found[handle] = rid
        return found

    def router_addresses(self, router_id: str) -> list[str]:
        """Host addresses (``/32``, ``/128`` prefixes) that ``router_id`` originates.

        For this router (``my-id``) they come from its xroutes. Sorted: IPv4 first.
        """
        router_id = router_id.lower()
        if router_id == self.my_id:
            prefixes = [x.prefix for x in self._xroutes.values()]
        else:
            prefixes = [r.prefix for r in self._routes.values() if r.router_id == router_id]
        return _sorted_addresses(a for a in map(_is_host_prefix, prefixes) if a is not None)

    def neighbour_addresses(self, *, family: int | None = 4) -> list[str]:
        """One unicast address per reachable neighbouring router, for peer discovery.

        For each neighbour with a finite cost: of the host addresses its router
        originates (IPv4 only with ``family=4``, IPv6 with ``6``, either with
        ``None``), the one closest to this router's address on the shared
        interface (longest common prefix, then the smallest), since that one is
        on the link itself and needs no routing. A neighbour whose router is
        unknown contributes its link-local address ``fe80::...%ifname`` when
        IPv6 is allowed. Sorted and deduplicated.
        """
        if family not in (4, 6, None):
            raise ValueError(f"family: expected 4, 6 or None, got {family!r}")
        rids = self.neighbour_router_ids()
        out: set[str] = set()
        for handle, nb in self._neighbours.items():
            if self._neighbour_cost(nb) >= INFINITY:
                continue
            rid = rids.get(handle)
            if rid is None:
                if family != 4:
                    out.add(f"{nb.address}%{nb.interface}")
                continue
            candidates = [ipaddress.ip_address(a) for a in self.router_addresses(rid)]
            candidates = [a for a in candidates if family is None or a.version == family]
            if not candidates:
                continue
            iface = self._interfaces.get(nb.interface)
            mine = [ipaddress.ip_address(a) for a in (iface.ipv4, iface.ipv6) if a] if iface else []
            out.add(str(min(candidates, key=lambda a: (-_closeness(a, mine), a.version, a))))
        return _sorted_addresses(out)

    def to_topology(self) -> Topology:
        """This router's view as a :class:`Topology` (see the module docstring).

        Raises :class:`TopologyFormatError` when no ``my-id`` header was seen.
        """
        if self.my_id is None:
            raise TopologyFormatError(
                self.path,
                FORMAT,
                f"line {self.line_number}",
                "no 'my-id' header: cannot name this router",
            )
        me = self.my_id
        topo = Topology(
            protocol="babel", version=self.version, metric="babel", router_id=me, label=self.host
        )
        origin = "daemon:babel"
        topo.add_node(me, label=self.host, **self._node_properties(me, is_self=True))
        rids = self.neighbour_router_ids()
        hop_node: dict[tuple[str, str], str] = {}
        hop_cost: dict[tuple[str, str], int] = {}
        for handle, nb in sorted(
            self._neighbours.items(), key=lambda kv: (kv[1].interface, kv[1].address)
        ):
            node = rids.get(handle) or f"{nb.address}%{nb.interface}"
            if node == me:
                # A neighbour announcing our own router id: a duplicated id
                # (a cloned image) or a loop. Not a link; counted for the operator.
                count(topo, "self_loops")
                continue
            hop_node[(nb.address, nb.interface)] = node
            hop_cost[(nb.address, nb.interface)] = nb.cost
            if node not in topo.nodes:
                props = (
                    self._node_properties(node) if handle in rids else {"babel_address": nb.address}
                )
                topo.add_node(node, **props)
            props = {
                "interface": nb.interface,
                "address": nb.address,
                "rxcost": nb.rxcost,
                "txcost": nb.txcost,
                "reach": f"{nb.reach:04x}",
                "babel_metric": nb.cost,
            }
            if nb.rtt is not None:
                props["rtt_ms"] = nb.rtt
            cost = metric_to_cost(self._neighbour_cost(nb))
            current = topo.link(me, node)
            if current is None or cost < current.cost:
                topo.add_link(me, node, cost, origin=origin, **props)
        best: dict[str, BabelRoute] = {}
        for route in self.routes():
            if route.router_id == me or route.metric >= INFINITY or not route.installed:
                continue
            old = best.get(route.router_id)
            if old is None or route.metric < old.metric:
                best[route.router_id] = route
        for rid in sorted(best):
            route = best[rid]
            hop = (route.via, route.interface)
            source = hop_node.get(hop)
            if source == rid:
                continue  # the neighbour itself: the direct link says it all
            if rid not in topo.nodes:
                topo.add_node(rid, **self._node_properties(rid))
            props = {
                "via": route.via,
                "interface": route.interface,
                "babel_metric": route.metric,
                "babel_refmetric": route.refmetric,
            }
            if source is None:
                topo.add_link(me, rid, metric_to_cost(route.metric), origin=origin, **props)
            else:
                rest = max(route.metric - hop_cost[hop], 0)
                topo.add_link(source, rid, metric_to_cost(rest), origin=origin, **props)
        return topo

    def _neighbour_cost(self, nb: BabelNeighbour) -> int:
        # babeld reports "interface up false" at once but lets the neighbour's
        # cost decay over several Hello intervals; the link is down now.
        iface = self._interfaces.get(nb.interface)
        if iface is not None and not iface.up:
            return INFINITY
        return nb.cost

    def _node_properties(self, router_id: str, *, is_self: bool = False) -> dict:
        props: dict = {}
        addresses = self.router_addresses(router_id)
        if addresses:
            props["local_addresses"] = addresses
        if is_self:
            prefixes = [x.prefix for x in self._xroutes.values()]
        else:
            prefixes = [r.prefix for r in self._routes.values() if r.router_id == router_id]
        if any(_is_default(p) for p in prefixes):
            props["gateway"] = True
        if prefixes:
            props["prefixes"] = sorted(set(prefixes))
        return props


def _closeness(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, mine: list) -> int:
    """Longest common prefix (bits) of ``addr`` with any same-family address in ``mine``."""
    best = 0
    for own in mine:
        if own.version == addr.version:
            diff = int(own) ^ int(addr)
            best = max(best, own.max_prefixlen - diff.bit_length())
    return best


def _sorted_addresses(addresses: Iterable[str]) -> list[str]:
    def key(text: str) -> tuple[int, int, str]:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            return (7, 0, text)
        return (addr.version, int(addr), text)

    return sorted(set(addresses), key=key)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def detect(head: str) -> bool:
    """True when ``head`` (the start of a file) looks like a babeld local-interface transcript."""
    for line in head.splitlines()[:20]:
        if not line.strip():
            continue
        return _DETECT.match(line) is not None
    return False


def load(text: str, path: str) -> Topology:
    """Import a saved babeld session (``dump`` and ``monitor`` output) as a :class:`Topology`.

    Replays every line through :class:`BabelState` and returns the final view.
    Raises :class:`TopologyFormatError` at the first malformed line, or when the
    text has no ``my-id`` header.
    """
    state = BabelState(path)
    for line in text.splitlines():
        state.feed_line(line)
    return state.to_topology()
