# Type stub of the compiled drr kernel (ext/drr.pyx): it has exactly the API of its pure
# twin, whose annotations are the types (docs/stability.md: the kernel API is stable).

from ._drr_py import DRRScheduler as DRRScheduler

__all__ = ["DRRScheduler"]
