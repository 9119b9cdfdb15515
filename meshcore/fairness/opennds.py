"""Captive-portal adapter for openNDS: read ``ndsctl json``, write ``ndsctl auth`` calls.

Theory of operation
-------------------
Format source: openNDS v10.3.1 (github.com/openNDS/openNDS, tag v10.3.1,
commit fe7e8059d090367d8c0af0d221cd7862177a9dde; unchanged on master as of
2025-12): ``src/util.c`` ``ndsctl_json_client``/``ndsctl_json_all``/
``ndsctl_json_one`` print the JSON with ``fprintf``; ``src/ndsctl.c``
``usage()`` and ``ndsctl_lock()`` give the command line and exit codes;
``src/ndsctl_thread.c`` ``ndsctl_auth`` parses the arguments.

* ``ndsctl json`` prints ``{"client_list_length":"N", "clients":{MAC:{...}},
  ["trusted_list_length":"K", "trusted":[MAC...]]}``; ``ndsctl json MAC|IP|TOKEN``
  prints one client object, or ``{}`` when none matches. **Every value is a
  JSON string**, numbers included; ``"null"`` means unset (no rate limit, no
  quota, no session end). Per client: ``gatewayname`` (URL-encoded),
  ``gatewayaddress``, ``gatewayfqdn``, ``version``, ``client_type``, ``mac``,
  ``ip``, ``clientif``, ``session_start``/``session_end``/``last_active``
  (epoch seconds), ``token``, ``state`` (``Preauthenticated``,
  ``Authenticated``, ``AuthBlocked``, ``Trusted``), ``custom``,
  ``download_rate_limit_threshold``/``upload_rate_limit_threshold`` (kb/s),
  ``*_packet_rate``, ``*_bucket_size``, ``download_quota``/``upload_quota``
  (kB), ``download_this_session``/``upload_this_session`` (kB = bytes/1024),
  ``download_session_avg``/``upload_session_avg`` (kbit/s, 2 decimals).
  "download" is towards the client.
* ``ndsctl auth MAC|IP|TOKEN SESSIONTIMEOUT UPLOADRATE DOWNLOADRATE UPLOADQUOTA
  DOWNLOADQUOTA [CUSTOM]``: session timeout in **minutes**; rates in
  **kb/s**, which openNDS turns into packets as ``rate * 1024 / 8`` bytes/s
  (``src/fw_iptables.c``), so 1 kb/s = 128 bytes/s here; quotas in **kB**
  compared with ``bytes / 1024`` (``src/auth.c``), so 1 kB = 1024 bytes; 0
  means unlimited. ndsctl joins its arguments with commas and the daemon
  splits on commas, so no argument may contain a comma.
* Exit codes (``src/ndsctl.c``): 0 done; 1 refused ("Failed to authenticate
  client", client not found) or bad usage; 2 abnormal reply; 3 cannot reach
  the daemon's socket; **4 another ndsctl holds the lock ("ndsctl thread is
  busy, please try later") -- the caller is expected to retry**; 5/6 the lock
  file cannot be opened/locked.

We convert meshcore's bytes/s and bytes to openNDS units rounding **down**
(never grant more than the policy allows) but to at least 1 (0 would mean
unlimited): a quota that is used up is applied as ``ndsctl deauth``, not as 0.

Malformed output (not JSON, a non-string value, a missing ``mac``, a bad
number) raises :class:`~meshcore.errors.DecodeError` naming the position;
:class:`PortalView` reports it and keeps the last good view, so bad output is
never applied. Retries are sans-I/O: :class:`NdsctlCall` turns each exit code
into the next step (run again at a time, done, failed); :mod:`ndsdriver` runs
it for real.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DecodeError
from .accounting import Account, period_bounds
from .policy import Policy, Principal
from .settings import normalize_mac

__all__ = [
    "EXIT_LOCKED",
    "CallDone",
    "CallFailed",
    "NdsClient",
    "NdsSnapshot",
    "NdsctlCall",
    "PortalView",
    "Retry",
    "Runner",
    "auth_argv",
    "deauth_argv",
    "kb_per_s",
    "kbytes",
    "parse_ndsctl_json",
    "plan_client",
]

#: ndsctl's exit code when another ndsctl holds /tmp/ndsctl.lock (retry later).
EXIT_LOCKED = 4
_EXIT_MEANING = {
    1: "refused by openNDS (client not found or not authenticable) or bad usage",
    2: "openNDS sent an abnormal reply",
    3: "cannot reach the openNDS socket (is opennds running?)",
    5: "cannot open the ndsctl lock file",
    6: "cannot lock the ndsctl lock file",
}

#: A runner executes an argv and returns ``(exit code, stdout, stderr)``.
Runner = Callable[[list[str]], tuple[int, str, str]]


@dataclass(frozen=True, slots=True)
class NdsClient:
    """One openNDS client; ``None`` where openNDS printed ``"null"``.

    Rates in kb/s and quotas/usage in kB, as openNDS prints them;
    ``*_bytes``/``*_rate_bps`` properties convert.
    """

    mac: str
    ip: str
    token: str | None
    state: str
    client_type: str
    session_start: int | None
    session_end: int | None
    last_active: int | None
    custom: str | None
    download_rate_limit: int | None
    upload_rate_limit: int | None
    download_quota: int | None
    upload_quota: int | None
    download_this_session: int
    upload_this_session: int
    gateway: str = ""

    @property
    def downloaded_bytes(self) -> int:
        """Bytes towards the client this session (kB x 1024; openNDS truncates)."""
        return self.download_this_session * 1024

    @property
    def uploaded_bytes(self) -> int:
        """Bytes from the client this session (kB x 1024)."""
        return self.upload_this_session * 1024


@dataclass(frozen=True, slots=True)
class NdsSnapshot:
    """A parsed ``ndsctl json``: clients by MAC plus the trusted MACs."""

    clients: dict[str, NdsClient]
    trusted: tuple[str, ...] = ()


def _pos(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _string(obj: dict, key: str, where: str, *, required: bool = True) -> str | None:
    if key not in obj:
        if required:
            raise DecodeError(f"ndsctl json: {_pos(where, key)}: missing")
        return None
    value = obj[key]
    if not isinstance(value, str):
        raise DecodeError(
            f"ndsctl json: {_pos(where, key)}: expected a string (openNDS prints every "
            f"value as one), got {type(value).__name__}"
        )
    return None if value == "null" else value


def _int(obj: dict, key: str, where: str, *, required: bool = False) -> int | None:
    text = _string(obj, key, where, required=required)
    if text is None:
        return None
    if not text.isdigit():
        raise DecodeError(f"ndsctl json: {_pos(where, key)}: expected digits, got {text!r}")
    return int(text)


def _client(obj: object, where: str) -> NdsClient:
    if not isinstance(obj, dict):
        raise DecodeError(f"ndsctl json: {where}: expected an object")
    mac = _string(obj, "mac", where)
    try:
        mac = normalize_mac(mac or "")
    except ValueError:
        raise DecodeError(f"ndsctl json: {where}.mac: not a MAC address: {mac!r}") from None
    token = _string(obj, "token", where, required=False)
    custom = _string(obj, "custom", where, required=False)
    return NdsClient(
        mac=mac,
        ip=_string(obj, "ip", where) or "",
        token=None if token in (None, "none") else token,
        state=_string(obj, "state", where) or "",
        client_type=_string(obj, "client_type", where, required=False) or "cpd_can",
        session_start=_int(obj, "session_start", where),
        session_end=_int(obj, "session_end", where),
        last_active=_int(obj, "last_active", where),
        custom=None if custom in (None, "none") else custom,
        download_rate_limit=_int(obj, "download_rate_limit_threshold", where),
        upload_rate_limit=_int(obj, "upload_rate_limit_threshold", where),
        download_quota=_int(obj, "download_quota", where),
        upload_quota=_int(obj, "upload_quota", where),
        download_this_session=_int(obj, "download_this_session", where) or 0,
        upload_this_session=_int(obj, "upload_this_session", where) or 0,
        gateway=_string(obj, "gatewayname", where, required=False) or "",
    )


def parse_ndsctl_json(text: str | bytes) -> NdsSnapshot:
    """Parse ``ndsctl json`` (all clients) or ``ndsctl json MAC`` (one, or ``{}``).

    Raises DecodeError naming the position for anything malformed.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"ndsctl json: not UTF-8 at byte {exc.start}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"ndsctl json: not JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise DecodeError("ndsctl json: expected a JSON object at the top level")
    if not data:
        return NdsSnapshot({})
    if "clients" not in data:  # ``ndsctl json MAC``: one bare client object
        client = _client(data, "")
        return NdsSnapshot({client.mac: client})
    clients_obj = data["clients"]
    if not isinstance(clients_obj, dict):
        raise DecodeError("ndsctl json: clients: expected an object")
    clients = {}
    for key, obj in clients_obj.items():
        client = _client(obj, f"clients[{key!r}]")
        clients[client.mac] = client
    length = _int(data, "client_list_length", "")
    if length is not None and length != len(clients):
        raise DecodeError(
            f"ndsctl json: client_list_length: says {length} but {len(clients)} clients listed"
        )
    trusted_obj = data.get("trusted", [])
    if not isinstance(trusted_obj, list) or not all(isinstance(m, str) for m in trusted_obj):
        raise DecodeError("ndsctl json: trusted: expected a list of MAC strings")
    try:
        trusted = tuple(normalize_mac(m) for m in trusted_obj)
    except ValueError as exc:
        raise DecodeError(f"ndsctl json: trusted: {exc}") from None
    return NdsSnapshot(clients, trusted)


class PortalView:
    """The last good ``ndsctl json`` view: MAC/IP/token -> session and identity.

    ``user_of(client)`` names the user of a session (e.g. from its ``custom``
    string); ``household_of(mac)`` its household. ``update`` returns None on
    success or the error text; malformed output changes nothing.
    """

    def __init__(
        self,
        *,
        user_of: Callable[[NdsClient], str | None] | None = None,
        household_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self._user_of = user_of
        self._household_of = household_of
        self.snapshot = NdsSnapshot({})
        self._by_ip: dict[str, NdsClient] = {}
        self._by_token: dict[str, NdsClient] = {}
        self.errors = 0
        self.last_error: str | None = None

    def update(self, text: str | bytes) -> str | None:
        """Replace the view with a new ``ndsctl json`` output; the error text if malformed."""
        try:
            snap = parse_ndsctl_json(text)
        except DecodeError as exc:
            self.errors += 1
            self.last_error = str(exc)
            return self.last_error
        self.snapshot = snap
        self._by_ip = {c.ip: c for c in snap.clients.values()}
        self._by_token = {c.token: c for c in snap.clients.values() if c.token}
        return None

    def find(self, key: str) -> NdsClient | None:
        """The session for a MAC, IP or token (None when unknown)."""
        try:
            mac = normalize_mac(key)
        except ValueError:
            return self._by_ip.get(key) or self._by_token.get(key)
        return self.snapshot.clients.get(mac)

    def identity(self, key: str) -> Principal | None:
        """The :class:`Principal` for a MAC, IP or token, or None when unknown."""
        client = self.find(key)
        if client is None:
            return None
        return Principal(
            device=client.mac,
            user=self._user_of(client) if self._user_of else None,
            household=self._household_of(client.mac) if self._household_of else None,
            portal_state=client.state,
        )


def kb_per_s(rate: float | None) -> int:
    """bytes/s -> openNDS kb/s (x 8 / 1024, rounded down, at least 1); None/0 -> 0 (unlimited)."""
    if rate is None or rate == 0:
        return 0
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate: expected bytes/s >= 0, got {rate!r}")
    return max(1, int(rate * 8 // 1024))


def kbytes(nbytes: int | None) -> int:
    """bytes -> openNDS kB (/ 1024, rounded down, at least 1); None -> 0 (unlimited).

    A zero or negative quota cannot be expressed (0 is unlimited): ValueError.
    """
    if nbytes is None:
        return 0
    if nbytes <= 0:
        raise ValueError(f"nbytes: expected a quota > 0 bytes (0 means unlimited), got {nbytes}")
    return max(1, nbytes // 1024)


def _arg(name: str, value: str) -> str:
    if "," in value or not value.strip() or any(c in value for c in "\r\n"):
        raise ValueError(f"{name}: must be non-empty and contain no comma or newline: {value!r}")
    return value


def auth_argv(
    client: str,
    *,
    session_minutes: int = 0,
    rate_up: float | None = None,
    rate_down: float | None = None,
    quota_up: int | None = None,
    quota_down: int | None = None,
    custom: str | None = None,
    ndsctl: str = "ndsctl",
) -> list[str]:
    """The argv of ``ndsctl auth`` for a client MAC/IP/token (rates bytes/s, quotas bytes).

    ``session_minutes`` 0 is unlimited. Raises ValueError for a negative
    timeout, a comma in any argument (ndsctl joins arguments with commas) or
    a quota <= 0.
    """
    if isinstance(session_minutes, bool) or not isinstance(session_minutes, int):
        raise TypeError(f"session_minutes: expected an integer, got {session_minutes!r}")
    if session_minutes < 0:
        raise ValueError(f"session_minutes: expected >= 0, got {session_minutes}")
    argv = [
        ndsctl,
        "auth",
        _arg("client", client),
        str(session_minutes),
        str(kb_per_s(rate_up)),
        str(kb_per_s(rate_down)),
        str(kbytes(quota_up)),
        str(kbytes(quota_down)),
    ]
    if custom is not None:
        argv.append(_arg("custom", custom))
    return argv


def deauth_argv(client: str, *, ndsctl: str = "ndsctl") -> list[str]:
    """The argv of ``ndsctl deauth`` for a client MAC/IP/token."""
    return [ndsctl, "deauth", _arg("client", client)]


def plan_client(
    policy: Policy,
    identity: Principal,
    client: str,
    *,
    usage: Callable[[Account, str], int],
    now: float,
    ndsctl: str = "ndsctl",
) -> list[str]:
    """The ``ndsctl`` call applying meshcore's policy to one portal client.

    Rates are the class caps; the quotas are what remains of the tightest
    period quota (day or month; openNDS counts each direction separately, so
    the remaining total is applied to each direction as a backstop while
    meshcore enforces the sum); the session lasts until that period resets
    (minutes, rounded up), so the client is re-authenticated with a fresh
    quota. A used-up quota gives ``ndsctl deauth``.
    """
    res = policy.resolve(identity)
    spec = res.spec
    remaining: int | None = None
    ends: float | None = None
    for period, hard in (("day", spec.daily_quota), ("month", spec.monthly_quota)):
        if hard is None:
            continue
        left = hard - usage(res.charged, period)
        if remaining is None or left < remaining:
            remaining = left
            ends = period_bounds(period, now)[1]
    if remaining is not None and remaining < 1024:
        return deauth_argv(client, ndsctl=ndsctl)
    minutes = 0 if ends is None else max(1, math.ceil((ends - now) / 60))
    return auth_argv(
        client,
        session_minutes=minutes,
        rate_up=spec.rate_up,
        rate_down=spec.rate_down,
        quota_up=remaining,
        quota_down=remaining,
        ndsctl=ndsctl,
    )


@dataclass(frozen=True, slots=True)
class Retry:
    """Step: run the same argv again at ``at`` (seconds, the caller's clock)."""

    at: float
    attempt: int


@dataclass(frozen=True, slots=True)
class CallDone:
    """Step: the call succeeded; ``stdout`` is its output."""

    stdout: str


@dataclass(frozen=True, slots=True)
class CallFailed:
    """Step: the call failed for good; ``reason`` says why (exit code and meaning)."""

    exit_code: int
    reason: str


class NdsctlCall:
    """Retry logic for one ``ndsctl`` call (sans-I/O).

    Exit code 4 (lock held) is retried with exponential backoff (``base``
    seconds doubling, capped at ``cap``, full jitter from ``rng`` when given)
    up to ``attempts`` runs in all; 0 is done; anything else fails at once.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        attempts: int = 6,
        base: float = 0.1,
        cap: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts: expected >= 1, got {attempts}")
        self.argv = list(argv)
        self.attempts = attempts
        self.base = base
        self.cap = cap
        self.rng = rng
        self.attempt = 0

    def on_result(self, exit_code: int, stdout: str, stderr: str, *, now: float):
        """The next step after one run: :class:`Retry`, :class:`CallDone` or :class:`CallFailed`."""
        self.attempt += 1
        if exit_code == 0:
            return CallDone(stdout)
        if exit_code == EXIT_LOCKED:
            if self.attempt >= self.attempts:
                return CallFailed(
                    exit_code, f"ndsctl lock still held after {self.attempt} attempts"
                )
            delay = min(self.cap, self.base * 2 ** (self.attempt - 1))
            if self.rng is not None:
                delay = self.rng.uniform(delay / 2, delay)
            return Retry(now + delay, self.attempt + 1)
        meaning = _EXIT_MEANING.get(exit_code, "unknown exit code")
        detail = (stderr or stdout).strip()
        return CallFailed(
            exit_code, f"exit {exit_code}: {meaning}" + (f": {detail}" if detail else "")
        )
