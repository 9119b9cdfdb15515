"""Argument checks shared by every kernel's twins, so their messages cannot drift."""

from __future__ import annotations

import operator

__all__ = ["as_int"]


def as_int(value: object, message: str) -> int:
    """``value`` as a Python int; ``TypeError(message)`` for non-integers.

    numpy integers and IntEnum members are accepted (they have ``__index__``);
    ``bool`` is refused although it is an ``int``, because ``True`` passed as a
    size or a node id is always a caller's mistake.
    """
    if isinstance(value, bool):
        raise TypeError(message)
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(message) from None
