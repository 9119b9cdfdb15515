"""One router's cores wired together, and the vocabulary its hosts speak.

* :class:`Router`, :class:`RouterSettings` — the composition (discovery,
  routes, cache, fair scheduler, congestion, analytics) behind one protocol.
* :mod:`.events` — what a host feeds a router and the commands it carries out.
* :mod:`.messages` — what routers say to each other on the content path.
* :class:`Directory` — who holds what (a plain directory until cache
  coordination).

See ``docs/architecture.md``.
"""

from meshcore._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".directory": ("Directory",),
        ".events": (
            "ChunkArrived",
            "ClientRequest",
            "Deliver",
            "EgressIdle",
            "Holding",
            "ItemPublished",
            "MessageFailed",
            "MessageReceived",
            "RequestCompleted",
            "RequestRefused",
            "SendMessage",
            "SendSlice",
            "WallClock",
        ),
        ".messages": (
            "ChunkRequest",
            "ChunkSlice",
            "ChunkUnavailable",
            "ItemInfo",
            "ItemQuery",
            "Message",
        ),
        ".router": ("Router", "RouterSettings", "RouterStats"),
    },
)
