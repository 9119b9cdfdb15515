"""Shared by both route twins (skeleton: the routes helper fills this in)."""

from __future__ import annotations

__all__ = ["CostGraph", "ShortestPaths"]


class CostGraph:
    """Directed graph with float64 link costs in CSR arrays (skeleton)."""


class ShortestPaths:
    """Single-source result (skeleton)."""
