# Type stub of the compiled cache kernel (ext/cache.pyx): it has exactly the API of its pure
# twin, whose annotations are the types (docs/stability.md: the kernel API is stable).

from ._cache_py import MAX_BYTES as MAX_BYTES
from ._cache_py import WEIGHTINGS as WEIGHTINGS
from ._cache_py import AdaptiveTinyLFU as AdaptiveTinyLFU
from ._cache_py import FrequencySketch as FrequencySketch
from ._cache_py import key_hash as key_hash

__all__ = ["MAX_BYTES", "WEIGHTINGS", "AdaptiveTinyLFU", "FrequencySketch", "key_hash"]
