"""meshcore: content distribution inside community mesh networks.

The compiled hot paths live in :mod:`meshcore.kernels`; the errors every
module raises live in :mod:`meshcore.errors` and are re-exported here.
"""

from __future__ import annotations

from .errors import (
    AccessDeniedError,
    CacheError,
    ConfigError,
    DecodeError,
    IntegrityError,
    MeshcoreError,
    PinnedOverBudgetError,
    StorageError,
    TopologyFormatError,
    TraceFormatError,
    UnknownContentError,
    UnknownItemError,
)

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
    "__version__",
]

__version__ = "0.1.0"
