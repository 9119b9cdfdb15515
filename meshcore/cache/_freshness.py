"""HTTP freshness of external resources (RFC 9111, "HTTP Caching").

Theory of operation
-------------------
A node caches external resources fetched over the uplink. Whether a stored
response may be served without asking the origin again is decided from its
headers, as a *shared* cache (the node serves a whole neighbourhood):

* **storable** (RFC 9111 §3): not when the request or response says
  ``Cache-Control: no-store``, nor, for a shared cache, ``private``.
* **freshness lifetime** (§4.2.1), first match wins: ``s-maxage`` (shared
  caches only), ``max-age``, ``Expires − Date``; otherwise a **heuristic**
  (§4.2.2): 10 % of ``Date − Last-Modified`` (capped, one day by default).
  An unparseable ``Expires`` means "already expired" (§5.3).
* **current age** (§4.2.3): ``corrected_initial_age + (now − response_time)``
  where the initial age is ``max(apparent_age, Age + response_delay)``.
* **fresh** when ``lifetime > current_age``, unless ``no-cache`` forces a
  revalidation on every use. ``must-revalidate``/``proxy-revalidate`` (and
  ``s-maxage``) forbid serving stale content when the origin is unreachable.
* ``ETag`` and ``Last-Modified`` are kept so a stale entry can be revalidated
  with ``If-None-Match``/``If-Modified-Since`` (§4.3.1); a ``304`` refreshes
  the entry with :func:`refresh`.

Times are POSIX seconds passed in by the caller (``now`` is keyword-only): this
module never reads a clock.
"""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "Freshness",
    "evaluate",
    "parse_cache_control",
    "parse_http_date",
    "refresh",
]

#: Upper bound of a heuristic lifetime (seconds): RFC 9111 §4.2.2 leaves it to
#: the cache; one day is what common caches use.
HEURISTIC_CAP = 86400.0

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """Parse a ``Cache-Control`` header into ``{directive: argument or None}``.

    Directive names are lower-cased; quoted arguments are unquoted; the first
    occurrence of a repeated directive wins. Malformed pieces are skipped
    (RFC 9111 §4.2.1: caches ignore what they do not understand).
    """
    out: dict[str, str | None] = {}
    if not value:
        return out
    for part in _split_commas(value):
        name, sep, arg = part.partition("=")
        name = name.strip().lower()
        if not name or name in out:
            continue
        if not sep:
            out[name] = None
            continue
        arg = arg.strip()
        if len(arg) >= 2 and arg[0] == '"' and arg[-1] == '"':
            arg = arg[1:-1].replace('\\"', '"')
        out[name] = arg
    return out


def _split_commas(value: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p]


def parse_http_date(value: str | None) -> float | None:
    """POSIX seconds of an HTTP-date (IMF-fixdate, RFC 850 or asctime); None if invalid."""
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:  # pragma: no cover - older Pythons returned None
        return None
    if dt.tzinfo is None:
        # HTTP dates are always GMT (RFC 9110 §5.6.7).
        dt = dt.replace(tzinfo=datetime.UTC)
    return dt.timestamp()


def _seconds(arg: str | None) -> int | None:
    # delta-seconds (RFC 9111 §1.2.2): digits only; huge values saturate.
    if arg is None or not arg.isdigit():
        return None
    return min(int(arg), 2**31)


def _header_map(headers: Headers) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for k, v in items:
        k = k.lower()
        # Repeated fields combine with commas (RFC 9110 §5.3).
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


@dataclass(frozen=True, slots=True)
class Freshness:
    """What a cache needs to know about one stored HTTP response.

    ``lifetime`` and ``initial_age`` are seconds; ``response_time`` is the
    POSIX time the response arrived. ``etag``/``last_modified`` are the
    validators kept for revalidation.
    """

    storable: bool
    lifetime: float
    initial_age: float
    response_time: float
    no_cache: bool = False
    must_revalidate: bool = False
    heuristic: bool = False
    etag: str | None = None
    last_modified: str | None = None

    def current_age(self, *, now: float) -> float:
        """Age in seconds at ``now`` (RFC 9111 §4.2.3)."""
        return self.initial_age + max(0.0, now - self.response_time)

    @property
    def expires_at(self) -> float:
        """POSIX time at which the response turns stale."""
        return self.response_time - self.initial_age + self.lifetime

    def is_fresh(self, *, now: float) -> bool:
        """True if the response may be served at ``now`` without contacting the origin."""
        if not self.storable or self.no_cache:
            return False
        return self.lifetime > self.current_age(now=now)

    def may_serve_stale(self) -> bool:
        """True if a stale copy may be served when the origin cannot be reached (§4.2.4)."""
        return self.storable and not self.must_revalidate and not self.no_cache

    def can_revalidate(self) -> bool:
        """True if a validator (ETag or Last-Modified) was kept."""
        return self.etag is not None or self.last_modified is not None

    def revalidation_headers(self) -> dict[str, str]:
        """Conditional request headers for revalidating this response (§4.3.1)."""
        out: dict[str, str] = {}
        if self.etag is not None:
            out["If-None-Match"] = self.etag
        if self.last_modified is not None:
            out["If-Modified-Since"] = self.last_modified
        return out


def evaluate(
    headers: Headers,
    *,
    now: float,
    request_time: float | None = None,
    request_headers: Headers | None = None,
    shared: bool = True,
    heuristic_fraction: float = 0.1,
    heuristic_cap: float = HEURISTIC_CAP,
) -> Freshness:
    """Freshness of a response with ``headers`` received at ``now`` (POSIX seconds).

    ``request_time`` is when the request was sent (defaults to ``now``);
    ``request_headers`` may carry the request's own ``Cache-Control``
    (``no-store``). Raises ValueError if ``request_time`` is after ``now``
    or the heuristic parameters are negative.
    """
    if request_time is None:
        request_time = now
    if request_time > now:
        raise ValueError(f"request_time: expected a time <= now ({now!r}), got {request_time!r}")
    if heuristic_fraction < 0 or heuristic_cap < 0:
        raise ValueError(
            "heuristic_fraction/heuristic_cap: expected values >= 0, got "
            f"{heuristic_fraction!r}/{heuristic_cap!r}"
        )
    h = _header_map(headers)
    cc = parse_cache_control(h.get("cache-control"))
    req_cc = (
        parse_cache_control(_header_map(request_headers).get("cache-control"))
        if (request_headers is not None)
        else {}
    )
    storable = "no-store" not in cc and "no-store" not in req_cc
    if shared and "private" in cc:
        storable = False

    date = parse_http_date(h.get("date"))
    # Apparent age uses the origin's Date; without one, the arrival time (§4.2.3).
    date_value = date if date is not None else now
    age_value = _seconds(h.get("age")) or 0
    apparent_age = max(0.0, now - date_value)
    response_delay = now - request_time
    initial_age = max(apparent_age, age_value + response_delay)

    heuristic = False
    s_maxage = _seconds(cc.get("s-maxage")) if shared and "s-maxage" in cc else None
    max_age = _seconds(cc.get("max-age")) if "max-age" in cc else None
    if s_maxage is not None:
        lifetime = float(s_maxage)
    elif max_age is not None:
        lifetime = float(max_age)
    elif "expires" in h:
        expires = parse_http_date(h["expires"])
        # An invalid Expires (e.g. "0") means already expired (§5.3).
        lifetime = 0.0 if expires is None else max(0.0, expires - date_value)
    elif "last-modified" in h and parse_http_date(h["last-modified"]) is not None:
        last_mod = parse_http_date(h["last-modified"])
        assert last_mod is not None
        lifetime = min(heuristic_cap, max(0.0, (date_value - last_mod) * heuristic_fraction))
        heuristic = True
    else:
        lifetime = 0.0

    must_revalidate = (
        "must-revalidate" in cc or (shared and "proxy-revalidate" in cc) or s_maxage is not None
    )
    return Freshness(
        storable=storable,
        lifetime=lifetime,
        initial_age=float(initial_age),
        response_time=float(now),
        no_cache="no-cache" in cc,
        must_revalidate=must_revalidate,
        heuristic=heuristic,
        etag=h.get("etag"),
        last_modified=h.get("last-modified"),
    )


def refresh(
    stored_headers: Headers,
    not_modified_headers: Headers,
    *,
    now: float,
    request_time: float | None = None,
    shared: bool = True,
) -> tuple[dict[str, str], Freshness]:
    """Headers and freshness after a ``304 Not Modified`` (RFC 9111 §4.3.4).

    Fields of the 304 replace the stored ones of the same name (lower-cased
    names); the rest, validators included, are kept. Returns the merged
    headers (to store) and their :class:`Freshness` at ``now``.
    """
    merged = _header_map(stored_headers)
    merged.update(_header_map(not_modified_headers))
    return merged, evaluate(merged, now=now, request_time=request_time, shared=shared)
