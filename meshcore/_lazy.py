"""Package faces that load their modules on first use (PEP 562).

``meshcore net``, ``meshcore node`` and the other packages re-export their
public API, but importing a package must not import all of it: every
``meshcore`` command imports each area's small ``_cli`` module, and on a MIPS
router pulling in numpy, sqlite3 and cryptography for ``meshcore --version``
costs seconds. A name is imported from its module when first read, then
cached on the package.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, Iterable[str]]
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` from ``{".module": names}``."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return sorted(where), __getattr__, __dir__
