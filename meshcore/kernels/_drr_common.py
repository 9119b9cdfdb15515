"""Names shared by both DRR twins: the strict priority classes."""

from __future__ import annotations

__all__ = ["BACKGROUND", "DEFAULT_CLASSES", "INTERACTIVE", "ON_DEMAND"]

#: Strict priority classes, served lowest number first. DRR shares the link
#: among the flows of one class; a class is served only when every class
#: above it is empty.
INTERACTIVE = 0
ON_DEMAND = 1
BACKGROUND = 2
DEFAULT_CLASSES = 3
