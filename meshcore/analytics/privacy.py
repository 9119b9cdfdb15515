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

The pseudonym cache is bounded (``max_cache`` entries, cleared when full) so
that a flood of spoofed MACs cannot grow memory without limit.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

__all__ = ["Pseudonymizer", "suppress_below_k"]


class Pseudonymizer:
    """Maps raw principal strings to salted 64-bit pseudonyms (16 hex digits).

    ``salt``: the community's secret (str, UTF-8 encoded, or bytes), at least
    8 bytes; raises ValueError otherwise.
    """

    __slots__ = ("_cache", "_key", "max_cache")

    def __init__(self, salt: str | bytes, *, max_cache: int = 65536) -> None:
        key = salt.encode("utf-8") if isinstance(salt, str) else salt
        if not isinstance(key, bytes | bytearray) or len(key) < 8:
            raise ValueError("salt: expected a secret of at least 8 bytes")
        if isinstance(max_cache, bool) or not isinstance(max_cache, int) or max_cache < 1:
            raise ValueError(f"max_cache: expected an integer >= 1, got {max_cache!r}")
        self._key = bytes(key)
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
        digest = hmac.new(self._key, raw.encode("utf-8"), hashlib.sha256).digest()
        value = digest[:8].hex()
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
