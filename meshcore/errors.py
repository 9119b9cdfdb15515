"""The one exception hierarchy of meshcore.

Callers catch :class:`MeshcoreError` for anything meshcore raises on purpose.
Bad bytes from a peer or a file raise :class:`DecodeError` (drivers log and
drop); a bad argument from the caller raises ``ValueError``/``TypeError`` at
once. Classes that callers expect to be ``ValueError`` also derive from it.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "CacheError",
    "ConfigError",
    "DecodeError",
    "IntegrityError",
    "MeshcoreError",
    "PinnedOverBudgetError",
    "StorageError",
    "TopologyFormatError",
    "TraceFormatError",
    "UnknownContentError",
    "UnknownItemError",
]


class MeshcoreError(Exception):
    """Base class of every error meshcore raises on purpose."""


class DecodeError(MeshcoreError, ValueError):
    """Bytes from a peer or from disk are malformed, truncated or corrupt."""


class ConfigError(MeshcoreError, ValueError):
    """A configuration file is missing a key, has a bad value, or contradicts itself.

    ``path``, ``key`` and ``problem`` are kept as attributes so that tools can
    point at the offending line.
    """

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        super().__init__(f"{path}: {key}: {problem}")


class TraceFormatError(DecodeError):
    """A request-trace file has a malformed line; ``path`` and ``line`` say where."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path}:{line}: {problem}")


class CacheError(MeshcoreError):
    """The node cache cannot do what was asked without breaking a retention rule."""


class UnknownItemError(CacheError, KeyError):
    """The cache holds no item ``key`` (a ``KeyError`` too, for mapping-style callers)."""

    def __init__(self, key: object) -> None:
        self.key = key
        super().__init__(f"the cache holds no item {key!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class PinnedOverBudgetError(CacheError):
    """Pinned content alone needs more bytes than the cache budget allows.

    Raised instead of evicting anything pinned; ``pinned_bytes`` and
    ``budget_bytes`` say by how much.
    """

    def __init__(self, pinned_bytes: int, budget_bytes: int) -> None:
        self.pinned_bytes = pinned_bytes
        self.budget_bytes = budget_bytes
        super().__init__(
            f"pinned content needs {pinned_bytes} bytes but the cache budget is "
            f"{budget_bytes} bytes: unpin something or raise [cache] max_bytes"
        )


class TopologyFormatError(DecodeError):
    """A topology file or routing-daemon output cannot be parsed.

    ``path`` (file name or ``"<babeld socket>"``), ``format`` (``"olsr1-jsoninfo"``,
    ``"netjson"``, ...) and ``position`` (``"line 12"``, ``"links[3].cost"``) say where.
    """

    def __init__(self, path: str, format: str, position: str, problem: str) -> None:
        self.path = path
        self.format = format
        self.position = position
        self.problem = problem
        super().__init__(f"{path}: {format}: {position}: {problem}")


class StorageError(MeshcoreError):
    """The node's store cannot write: disk full (ENOSPC), byte budget exhausted, or I/O error.

    Nothing partial is left behind when this is raised; ``path`` names the
    file or folder concerned (empty when not applicable).
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        super().__init__(message)


class IntegrityError(DecodeError):
    """Data does not match its digest or signature: a corrupt chunk, a forged manifest."""


class AccessDeniedError(MeshcoreError):
    """A principal asked for something its access level does not allow.

    ``principal``, ``action`` and ``reason`` are kept as attributes.
    """

    def __init__(self, principal: str, action: str, reason: str) -> None:
        self.principal = principal
        self.action = action
        self.reason = reason
        super().__init__(f"{principal} may not {action}: {reason}")


class UnknownContentError(MeshcoreError, KeyError):
    """No item with this content id is in the catalog (``content_id`` attribute).

    A ``KeyError`` too, for mapping-style callers.
    """

    def __init__(self, content_id: bytes) -> None:
        self.content_id = bytes(content_id)
        super().__init__(f"no item {self.content_id.hex()} in the catalog")

    def __str__(self) -> str:
        return str(self.args[0])
