# Type stub of the compiled chunker kernel (ext/chunker.pyx): it has exactly the API of its pure
# twin, whose annotations are the types (docs/stability.md: the kernel API is stable).

from ._chunker_py import Chunker as Chunker
from ._chunker_py import chunk_fingerprints as chunk_fingerprints
from ._chunker_py import cut_points as cut_points

__all__ = ["Chunker", "chunk_fingerprints", "cut_points"]
