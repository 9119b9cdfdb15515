"""The one protocol every policy core follows (sans-I/O), and the effect base classes.

Theory of operation (h11, aioquic, hyper-h2): a *core* is a plain object that
never does I/O and never reads a clock. Its host (the asyncio daemon, the
simulator, or a test) drives it with three calls:

* ``core.handle(event, now=...)`` — one input (a datagram, a client request,
  a chunk that arrived, a link change...). Returns a list of effects.
* ``core.handle_timer(now=...)`` — the deadline the core asked for has come.
  Returns a list of effects.
* ``core.get_timer()`` — the next deadline (same clock as ``now``), or None.
  The host re-arms its one timer after every call.

``now`` is always **monotonic seconds** (see :mod:`meshcore.clock` for the one
place where calendar time enters). Events are frozen dataclasses; so are
effects, split into two kinds:

* :class:`Command` — something the host (or, inside a :class:`~meshcore.router.Router`,
  another core) must carry out: send a datagram, send a message to a peer,
  store or free a chunk, deliver bytes to a client, fetch a URL.
* :class:`Fact` — something that happened, for analytics and logs: a peer
  joined, an item was evicted, a request was served from a tier.

A host applies commands and may log facts; it never needs to know which core
produced them, and never uses ``inspect`` to learn how to drive one.

Cores keep their specific, typed methods (``Discovery.receive_datagram``,
``ContentCache.request``, ``FairScheduler.next_send``...) for direct use on hot
paths and in tests; ``handle`` dispatches an event to the method that owns it
through a table built once per class by :func:`dispatches`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = [
    "Command",
    "Core",
    "Effect",
    "Event",
    "Fact",
    "UnknownEventError",
    "commands",
    "dispatches",
    "facts",
    "handler",
]


class Event:
    """Base class of every input a core accepts through ``handle``."""

    __slots__ = ()


class Command:
    """Base class of effects the host (or another core) must carry out."""

    __slots__ = ()


class Fact:
    """Base class of effects that report what happened (analytics, logs)."""

    __slots__ = ()


Effect = Command | Fact


class UnknownEventError(TypeError):
    """``handle`` was given an event type the core does not accept (a caller bug)."""


@runtime_checkable
class Core(Protocol):
    """What a host needs from a policy core: events in, effects out, one timer."""

    def handle(self, event: Any, *, now: float) -> list[Any]:
        """Process one input event; return effects."""
        ...

    def handle_timer(self, *, now: float) -> list[Any]:
        """Do what is due at ``now``; return effects."""
        ...

    def get_timer(self) -> float | None:
        """The next deadline (monotonic seconds), or None."""
        ...


_F = TypeVar("_F", bound=Callable[..., Any])
_HANDLES = "__meshcore_handles__"


def handler(*event_types: type) -> Callable[[_F], _F]:
    """Mark a core method as the handler of ``event_types`` (see :func:`dispatches`).

    The method is called as ``method(self, event, now=now)`` and returns effects.
    """

    def mark(fn: _F) -> _F:
        setattr(fn, _HANDLES, event_types)
        return fn

    return mark


_C = TypeVar("_C", bound=type)


def dispatches(cls: _C) -> _C:
    """Class decorator: give ``cls`` a ``handle(event, now=...)`` built from its handlers.

    Every method marked with :func:`handler` (in the class or its bases) is
    registered for its event types; ``handle`` looks the event's exact type
    up in that table (one dict lookup), so dispatch costs no ``isinstance``
    chain. An event type no handler accepts raises :class:`UnknownEventError`.
    """
    table: dict[type, str] = {}
    for klass in reversed(cls.__mro__):
        for name, attr in vars(klass).items():
            for event_type in getattr(attr, _HANDLES, ()):
                table[event_type] = name
    cls._handlers = table  # type: ignore[attr-defined]

    def handle(self: Any, event: Any, *, now: float) -> list[Any]:
        name = table.get(type(event))
        if name is None:
            raise UnknownEventError(
                f"event: {type(self).__name__} does not handle {type(event).__name__}"
            )
        return getattr(self, name)(event, now=now)

    handle.__doc__ = f"Dispatch one event to the {cls.__name__} method that handles it."
    handle.__qualname__ = f"{cls.__qualname__}.handle"
    cls.handle = handle  # type: ignore[attr-defined]
    return cls


def commands(effects: list[Any]) -> list[Any]:
    """The :class:`Command` effects of ``effects``, in order."""
    return [e for e in effects if isinstance(e, Command)]


def facts(effects: list[Any]) -> list[Any]:
    """The :class:`Fact` effects of ``effects``, in order."""
    return [e for e in effects if isinstance(e, Fact)]
