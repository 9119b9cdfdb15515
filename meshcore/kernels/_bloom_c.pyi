# Type stub of the compiled bloom kernel (ext/bloom.pyx): it has exactly the API of its pure
# twin, whose annotations are the types (docs/stability.md: the kernel API is stable).

from ._bloom_py import BloomFilter as BloomFilter

__all__ = ["BloomFilter"]
