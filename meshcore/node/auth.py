"""Authentication of router-to-router HTTP requests under the community key.

Every request one router makes of another carries::

    Authorization: Meshcore node=<id>, boot=<u32>, seq=<u64>, ts=<ms>, mac=<32 hex>

``mac`` is the first 16 bytes of HMAC-SHA256(community key, the canonical
string ``"meshcore-http-1\\n" METHOD "\\n" TARGET "\\n" sha256(body) hex "\\n"
node "\\n" boot "\\n" seq "\\n" ts``), where TARGET is the request's path and
query exactly as sent. A request whose tag does not verify is answered 401
before anything else is looked at, so a device without the key learns nothing,
not even whether a chunk exists.

**Replay.** ``boot`` is drawn at random by the sender at start and ``seq``
counts its requests: the receiver keeps, per sender and boot (a few boots per
sender, the most recent), a high-water mark with a window of
:data:`WINDOW` below it (IPsec ESP's sliding bitmap, RFC 4303 section 3.4.3),
and refuses a ``(boot, seq)`` it has seen or that fell below the window.
Routers often have no real-time clock, so ``ts`` (the sender's wall clock, ms)
is checked only when both clocks look set (after 2024-01-01): it must then be
within :data:`SKEW` seconds of the receiver's. State is bounded: at most
``max_senders`` senders (the least recently heard is forgotten first).

Sans-I/O: the wall clock comes in as an argument.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from ..clock import TRUSTED_AFTER
from ..errors import DecodeError

__all__ = ["SKEW", "WINDOW", "AuthError", "RequestSigner", "RequestVerifier"]

#: Requests accepted below a sender's highest seq (per boot).
WINDOW = 1024
#: Largest clock difference (s) accepted when both clocks are set.
SKEW = 600.0
_BOOTS_PER_SENDER = 4
_HEADER = re.compile(
    r"^Meshcore node=([^\s,=]{1,64}), boot=(\d{1,10}), seq=(\d{1,20}), ts=(\d{1,15}), "
    r"mac=([0-9a-f]{32})$"
)


class AuthError(DecodeError):
    """A request's authentication failed; ``reason`` says why (for counters, never the peer)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"request not authenticated: {reason}")


def _mac(key: bytes, method: str, target: str, body_digest: str, node: str, boot: int,
         seq: int, ts: int) -> str:
    text = f"meshcore-http-1\n{method}\n{target}\n{body_digest}\n{node}\n{boot}\n{seq}\n{ts}"
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()[:16].hex()


class RequestSigner:
    """Signs this router's outgoing requests (``node`` is its id)."""

    def __init__(self, key: bytes, node: str, *, boot: int | None = None) -> None:
        self.key = key
        self.node = node
        self.boot = secrets.randbits(32) if boot is None else boot
        self.seq = 0

    def header(self, method: str, target: str, body: bytes, *, wall: float) -> str:
        """The ``Authorization`` value for one request sent at calendar time ``wall``."""
        self.seq += 1
        ts = max(0, int(wall * 1000))
        digest = hashlib.sha256(body).hexdigest()
        mac = _mac(self.key, method, target, digest, self.node, self.boot, self.seq, ts)
        return (f"Meshcore node={self.node}, boot={self.boot}, seq={self.seq}, ts={ts}, "
                f"mac={mac}")


@dataclass(slots=True)
class _Window:
    high: int = 0
    seen: int = 0  # bit i: seq (high - i) was accepted


class RequestVerifier:
    """Checks incoming requests' tags and refuses replays (see the module docstring)."""

    def __init__(self, key: bytes, *, max_senders: int = 4096) -> None:
        self.key = key
        self.max_senders = max_senders
        self._senders: OrderedDict[str, OrderedDict[int, _Window]] = OrderedDict()
        self.refused: dict[str, int] = {}

    def verify(self, header: str | None, method: str, target: str, body: bytes, *,
               wall: float) -> str:
        """The sender's node id; :class:`AuthError` (counted by reason) when it fails."""
        try:
            return self._verify(header, method, target, body, wall)
        except AuthError as exc:
            self.refused[exc.reason] = self.refused.get(exc.reason, 0) + 1
            raise

    def _verify(self, header: str | None, method: str, target: str, body: bytes,
                wall: float) -> str:
        if not header:
            raise AuthError("missing")
        m = _HEADER.match(header)
        if m is None:
            raise AuthError("malformed")
        node, boot, seq, ts, mac = m.group(1), int(m.group(2)), int(m.group(3)), \
            int(m.group(4)), m.group(5)
        if boot >= 2**32 or seq >= 2**64 or seq == 0:
            raise AuthError("malformed")
        expected = _mac(self.key, method, target, hashlib.sha256(body).hexdigest(), node,
                        boot, seq, ts)
        if not hmac.compare_digest(mac, expected):
            raise AuthError("bad-mac")
        if wall >= TRUSTED_AFTER and ts / 1000 >= TRUSTED_AFTER and abs(ts / 1000 - wall) > SKEW:
            raise AuthError("clock-skew")
        self._accept(node, boot, seq)
        return node

    def _accept(self, node: str, boot: int, seq: int) -> None:
        boots = self._senders.get(node)
        if boots is None:
            boots = self._senders[node] = OrderedDict()
            while len(self._senders) > self.max_senders:
                self._senders.popitem(last=False)
        else:
            self._senders.move_to_end(node)
        win = boots.get(boot)
        if win is None:
            win = boots[boot] = _Window()
            while len(boots) > _BOOTS_PER_SENDER:
                boots.popitem(last=False)
        else:
            boots.move_to_end(boot)
        if seq > win.high:
            shift = seq - win.high
            win.seen = ((win.seen << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            win.high = seq
            return
        back = win.high - seq
        if back >= WINDOW:
            raise AuthError("replay")
        if win.seen >> back & 1:
            raise AuthError("replay")
        win.seen |= 1 << back
