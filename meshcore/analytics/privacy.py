"""Pseudonyms for principals and k-suppression of per-content counts.

Theory of operation
-------------------
No raw MAC address, IP address or user name leaves a node in any export or
report (issue 7, "Privacy"). Two mechanisms:

* **Salted hashing.** A principal (user, household, device) is replaced at
  the collector by ``HMAC-SHA256(salt, raw)`` truncated to its first 8 bytes
  and written as 16 lowercase hex digits. The salt is per community (the
  ``[analytics] salt`` config key), so pseudonyms agree across the community's
  nodes (unique-user counts merge mesh-wide) but cannot be joined with another
  community's data, and a dictionary attack over all MAC addresses (2**48)
  needs the salt. HMAC rather than ``sha256(salt + raw)`` avoids
  length-extension ambiguity between salt and input. 64 bits make an
  accidental collision among a community's few thousand principals
  vanishingly unlikely (birthday bound ~ n**2 / 2**65).
* **k-suppression.** In shared reports, a per-content count below ``k`` is
  not shown: a content item requested by one or two people would otherwise
  say who watched it in a small neighbourhood. Suppressed rows are dropped
  and only their number is reported.

HMAC is computed from two SHA-256 states keyed once (RFC 2104: the key,
padded to the 64-byte block, XOR ``0x36`` and XOR ``0x5c``) and copied per
pseudonym, the same bytes as :func:`hmac.new` without its per-call key
set-up, which costs more than the hashing for a 17-byte MAC address.

The pseudonym cache is bounded (``max_cache`` entries, cleared when full) so
that a flood of spoofed MACs cannot grow memory without limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["Pseudonymizer", "suppress_below_k"]


_IPAD = bytes(b ^ 0x36 for b in range(256))  # RFC 2104 inner and outer pads
_OPAD = bytes(b ^ 0x5C for b in range(256))


class Pseudonymizer:
    """Maps raw principal strings to salted 64-bit pseudonyms (16 hex digits).

    ``salt``: the community's secret (str, UTF-8 encoded, or bytes), at least
    8 bytes; raises ValueError otherwise.
    """

    __slots__ = ("_cache", "_inner", "_key", "_outer", "max_cache")

    def __init__(self, salt: str | bytes, *, max_cache: int = 65536) -> None:
        key = salt.encode("utf-8") if isinstance(salt, str) else salt
        if not isinstance(key, bytes | bytearray) or len(key) < 8:
            raise ValueError("salt: expected a secret of at least 8 bytes")
        if isinstance(max_cache, bool) or not isinstance(max_cache, int) or max_cache < 1:
            raise ValueError(f"max_cache: expected an integer >= 1, got {max_cache!r}")
        self._key = bytes(key)
        block = hashlib.sha256(self._key).digest() if len(key) > 64 else self._key
        block = block.ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))
        self._cache: dict[str, str] = {}
        self.max_cache = max_cache

    def __call__(self, raw: str) -> str:
        """The pseudonym of ``raw`` (the empty string maps to itself: "no principal")."""
        cached = self._cache.get(raw)
        if cached is not None:
            return cached
        if not isinstance(raw, str):
            raise TypeError(f"raw: expected a string, got {type(raw).__name__}")
        if not raw:
            return ""
        inner = self._inner.copy()
        inner.update(raw.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        value = outer.digest()[:8].hex()  # = hmac.new(key, raw, sha256).digest()[:8]
        if len(self._cache) >= self.max_cache:
            self._cache.clear()
        self._cache[raw] = value
        return value


def suppress_below_k(
    items: Iterable[tuple[str, int]], k: int
) -> tuple[list[tuple[str, int]], int]:
    """Drop ``(key, count)`` rows with ``count < k``; return kept rows and how many were dropped.

    ``k`` must be an integer >= 1 (k = 1 keeps everything).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected an integer >= 1, got {k!r}")
    kept = []
    dropped = 0
    for key, count in items:
        if count >= k:
            kept.append((key, count))
        else:
            dropped += 1
    return kept, dropped
