"""The one exception hierarchy of meshcore.

Callers catch :class:`MeshcoreError` for anything meshcore raises on purpose.
Bad bytes from a peer or a file raise :class:`DecodeError` (drivers log and
drop); a bad argument from the caller raises ``ValueError``/``TypeError`` at
once. Classes that callers expect to be ``ValueError`` also derive from it.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DecodeError", "MeshcoreError"]


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
