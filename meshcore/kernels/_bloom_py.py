"""Skeleton: the bloom helper replaces this file."""


class BloomFilter:
    """Skeleton."""
