"""Shared helpers for the content tests: configs, keys, small realistic payloads."""

from __future__ import annotations

import random
from pathlib import Path

from meshcore.config import parse_config
from meshcore.content.keys import KeyPair, format_public_key
from meshcore.content.settings import ContentSettings

# Small chunks so that a few hundred KiB make dozens of chunks, also fast
# enough under MESHCORE_PURE=1 (the pure chunker runs at ~10 MB/s).
SMALL_CHUNKS = 'chunk_min = "1 KiB"\nchunk_avg = "4 KiB"\nchunk_max = "16 KiB"\n'


def keypair(seed: int) -> KeyPair:
    """A deterministic key pair (tests only)."""
    return KeyPair.from_seed(bytes([seed]) * 32)


def pub(kp: KeyPair) -> str:
    """The config spelling of a key pair's public key."""
    return format_public_key(kp.public)


def settings(tmp_path: Path, extra: str = "", *, budget: str = "64 MiB",
             fsync: bool = False, head: str = "") -> ContentSettings:
    """Settings for a node whose state lives in ``tmp_path / 'state'``.

    ``head`` goes into ``[content]`` (plain keys), ``extra`` after it (sub-tables).
    """
    text = (
        "[content]\n"
        f'state_dir = "{tmp_path / "state"}"\n'
        f'budget = "{budget}"\n'
        f"fsync = {'true' if fsync else 'false'}\n"
        + SMALL_CHUNKS
        + head
        + "\n"
        + extra
    )
    return ContentSettings.from_config(parse_config(text, str(tmp_path / "node.toml")))


def payload(size: int, seed: int = 0) -> bytes:
    """Half random bytes, half text-like lines (compressible), ``size`` bytes."""
    rng = random.Random(seed)
    half = size // 2
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(300)
    ]
    text = bytearray()
    while len(text) < size - half:
        text += (" ".join(rng.choices(words, k=12)) + "\n").encode()
    return rng.randbytes(half) + bytes(text[: size - half])
