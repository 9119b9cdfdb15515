"""Content-defined chunker vs pyfastcdc (FastCDC 2020, Cython path), same min/avg/max.

Workloads: 256 MiB of random bytes and 64 MiB of text-like bytes (words from a
Zipf-weighted vocabulary with punctuation and newlines), each at 16 KiB and
64 KiB average chunk size with ``min = avg / 4`` and ``max = avg * 4`` and
normalization level 2 on both sides. Quick mode: 16 MiB random, 8 MiB text.

Groups per (data, avg):

* ``chunker-boundaries-*``: ``cut_points`` (ours) vs ``FastCDC.cut_buf``
  iterated to the end (peer). Boundaries alone.
* ``chunker-fingerprints-*``: boundaries plus an xxh3-128 fingerprint per
  chunk, two rows of ours against the same plain pyfastcdc pass (peer):
  ``chunk_fingerprints`` on the whole buffer (zero-copy: each chunk is hashed
  in place, fingerprints land in a ``uint8[n, 16]`` array), and ``Chunker``
  fed 1 MiB pieces (as a file reader would) plus ``finish()``, which also
  copies each chunk into its own ``bytes`` (what a store keeps). pyfastcdc
  yields memoryviews into the input and hashes nothing. The text groups also
  carry the edit-resistance figure: 100 random edits of 1-16 bytes (insert,
  delete or replace; 12 edits in quick mode, the same density), then the
  percentage of the edited file's chunks whose fingerprint is also a chunk of
  the original, for each row.
* ``chunker-twin-*``: the pure twin on the first 1 MiB (256 KiB quick), with
  the compiled kernel and pyfastcdc on the same slice for scale.

Metrics: ``mean_ratio`` = measured mean chunk size / configured avg (target
within 0.85..1.15), ``expected_ratio`` = the analytic mean / avg, ``chunks``.
pyfastcdc's cut rule differs (spread-bit masks, its switch point at avg), so
its mean and its edit figure are reported beside ours for reference.
"""

from __future__ import annotations

import importlib
import random
from functools import cache

import numpy as np
import pytest
import xxhash
from _harness import describe, paired_ratio, scale

from meshcore.kernels import _chunker_py as twin
from meshcore.kernels._chunking import expected_chunk_size

pyfastcdc = pytest.importorskip("pyfastcdc")

MiB = 1 << 20
SIZES = {"random": scale(256 * MiB, 16 * MiB), "text": scale(64 * MiB, 8 * MiB)}
EDITS = scale(100, 12)
PIECE = MiB
TWIN_SLICE = scale(MiB, 256 * 1024)
ROUNDS = scale(9, 2)
AVGS = [16384, 65536]
CASES = [(kind, avg) for kind in SIZES for avg in AVGS]
IDS = [f"{kind}-{avg // 1024}k" for kind, avg in CASES]


def compiled():
    try:
        return importlib.import_module("meshcore.kernels._chunker_c")
    except ImportError as exc:
        pytest.skip(f"compiled chunker is not built: {exc}")


@cache
def random_bytes(n: int) -> bytes:
    return np.random.default_rng(20240601).bytes(n)


@cache
def text_bytes(n: int) -> bytes:
    """Deterministic text-like bytes: Zipf-weighted words, punctuation, newlines."""
    rng = np.random.default_rng(7)
    letters = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", np.uint8)
    letter_p = 1.0 / np.arange(1, 27) ** 0.7
    letter_p /= letter_p.sum()
    words = {
        rng.choice(letters, size=int(rng.integers(1, 11)), p=letter_p).tobytes()
        for _ in range(6000)
    }
    vocab = sorted(words)
    rng.shuffle(vocab)
    seps = [b" ", b", ", b". ", b".\n", b"\n\n", b"; "]
    sep_p = np.array([0.82, 0.07, 0.05, 0.03, 0.02, 0.01])
    word_p = 1.0 / (np.arange(len(vocab)) + 2.7)
    word_p /= word_p.sum()
    tokens = [w + s for w in vocab for s in seps]
    token_p = np.outer(word_p, sep_p).ravel()
    count = n // 5 + 1000
    out = bytearray()
    while len(out) < n:
        picks = rng.choice(len(tokens), size=count, p=token_p)
        out += b"".join([tokens[i] for i in picks])
    return bytes(out[:n])


def dataset(kind: str) -> bytes:
    return random_bytes(SIZES[kind]) if kind == "random" else text_bytes(SIZES[kind])


@cache
def edited(kind: str) -> bytes:
    """The dataset after EDITS random inserts, deletes and replacements of 1-16 bytes."""
    rng = random.Random(99)
    buf = bytearray(dataset(kind))
    for _ in range(EDITS):
        pos = rng.randrange(len(buf))
        k = rng.randint(1, 16)
        op = rng.randrange(3)
        if op == 0:
            buf[pos:pos] = rng.randbytes(k)
        elif op == 1:
            del buf[pos : pos + k]
        else:
            buf[pos : pos + k] = rng.randbytes(len(buf[pos : pos + k]))
    return bytes(buf)


def ours_chunks(mod, data: bytes, avg: int):
    c = mod.Chunker(avg // 4, avg, avg * 4)
    view = memoryview(data)
    out = []
    for i in range(0, len(data), PIECE):
        out += c.feed(view[i : i + PIECE])
    return out + c.finish()


def ours_pass(mod, data: bytes, avg: int) -> int:
    """The timed streaming pass: every chunk is produced, then dropped, as a store would."""
    c = mod.Chunker(avg // 4, avg, avg * 4)
    view = memoryview(data)
    count = 0
    for i in range(0, len(data), PIECE):
        for _chunk in c.feed(view[i : i + PIECE]):
            count += 1
    return count + len(c.finish())


def peer(avg: int):
    return pyfastcdc.FastCDC(avg, min_size=avg // 4, max_size=avg * 4, normalized_chunking=2)


def peer_pass(cdc, data: bytes) -> int:
    count = 0
    for _chunk in cdc.cut_buf(data):
        count += 1
    return count


@cache
def unchanged_pct(who: str, kind: str, avg: int) -> float:
    """% of the edited data's chunks whose xxh3-128 is also a chunk of the original."""
    sizes = (avg // 4, avg, avg * 4)
    if who == "whole":
        mod = compiled()
        before = {row.tobytes() for row in mod.chunk_fingerprints(dataset(kind), *sizes)[1]}
        after = [row.tobytes() for row in mod.chunk_fingerprints(edited(kind), *sizes)[1]]
    elif who == "feed":
        mod = compiled()
        before = {c.fingerprint for c in ours_chunks(mod, dataset(kind), avg)}
        after = [c.fingerprint for c in ours_chunks(mod, edited(kind), avg)]
    else:
        before = {xxhash.xxh3_128_digest(c.data) for c in peer(avg).cut_buf(dataset(kind))}
        after = [xxhash.xxh3_128_digest(c.data) for c in peer(avg).cut_buf(edited(kind))]
    return 100.0 * sum(f in before for f in after) / len(after)


def mean_metrics(n: int, chunks: int, avg: int) -> dict:
    return {"mean_ratio": n / chunks / avg, "chunks": chunks}


def run(benchmark, fn, **labels):
    """Label the benchmark (pytest-benchmark reads the group when it starts), then time ``fn``."""
    describe(benchmark, **labels)
    return benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize(("kind", "avg"), CASES, ids=IDS)
def test_boundaries_ours(benchmark, kind, avg):
    mod = compiled()
    data = dataset(kind)
    labels = dict(
        group=f"chunker-boundaries-{kind}-{avg // 1024}k",
        impl="meshcore-compiled cut_points",
        role="ours",
        items=len(data),
        unit="B",
    )
    ends = run(benchmark, lambda: mod.cut_points(data, avg // 4, avg, avg * 4), **labels)
    assert ends[-1] == len(data)
    cdc = peer(avg)
    describe(
        benchmark,
        **labels,
        expected_ratio=expected_chunk_size(avg // 4, avg, avg * 4, 2) / avg,
        paired_vs_peer=paired_ratio(
            lambda: mod.cut_points(data, avg // 4, avg, avg * 4),
            lambda: peer_pass(cdc, data),
            rounds=ROUNDS,
        ),
        **mean_metrics(len(data), len(ends), avg),
    )


@pytest.mark.parametrize(("kind", "avg"), CASES, ids=IDS)
def test_boundaries_peer(benchmark, kind, avg):
    data = dataset(kind)
    cdc = peer(avg)
    labels = dict(
        group=f"chunker-boundaries-{kind}-{avg // 1024}k",
        impl="pyfastcdc.cy cut_buf",
        role="peer",
        items=len(data),
        unit="B",
    )
    count = run(benchmark, lambda: peer_pass(cdc, data), **labels)
    describe(benchmark, **labels, **mean_metrics(len(data), count, avg))


def fingerprint_row(benchmark, kind, avg, *, who, impl, role, fn, count_of):
    """Time one row of a ``chunker-fingerprints-*`` group; return ``fn``'s result.

    Adds the mean chunk size, the edit figure on text, and (for ours) the
    paired ratio against the pyfastcdc pass.
    """
    data = dataset(kind)
    labels = dict(
        group=f"chunker-fingerprints-{kind}-{avg // 1024}k",
        impl=impl,
        role=role,
        items=len(data),
        unit="B",
    )
    result = run(benchmark, fn, **labels)
    metrics = mean_metrics(len(data), count_of(result), avg)
    if kind == "text":
        metrics["unchanged_after_edits_pct"] = unchanged_pct(who, kind, avg)
    if role == "ours":
        cdc = peer(avg)
        metrics["paired_vs_peer"] = paired_ratio(fn, lambda: peer_pass(cdc, data), rounds=ROUNDS)
    describe(benchmark, **labels, **metrics)
    return result


@pytest.mark.parametrize(("kind", "avg"), CASES, ids=IDS)
def test_fingerprints_whole_ours(benchmark, kind, avg):
    mod = compiled()
    data = dataset(kind)
    ends, fingerprints = fingerprint_row(
        benchmark,
        kind,
        avg,
        who="whole",
        impl="meshcore-compiled chunk_fingerprints (zero-copy)",
        role="ours",
        fn=lambda: mod.chunk_fingerprints(data, avg // 4, avg, avg * 4),
        count_of=lambda result: len(result[0]),
    )
    assert ends[-1] == len(data) and fingerprints.shape == (len(ends), 16)


@pytest.mark.parametrize(("kind", "avg"), CASES, ids=IDS)
def test_fingerprints_feed_ours(benchmark, kind, avg):
    mod = compiled()
    data = dataset(kind)
    fingerprint_row(
        benchmark,
        kind,
        avg,
        who="feed",
        impl="meshcore-compiled Chunker.feed (copies chunks)",
        role="ours",
        fn=lambda: ours_pass(mod, data, avg),
        count_of=int,
    )


@pytest.mark.parametrize(("kind", "avg"), CASES, ids=IDS)
def test_fingerprints_peer(benchmark, kind, avg):
    data = dataset(kind)
    cdc = peer(avg)
    fingerprint_row(
        benchmark,
        kind,
        avg,
        who="peer",
        impl="pyfastcdc.cy cut_buf",
        role="peer",
        fn=lambda: peer_pass(cdc, data),
        count_of=int,
    )


@pytest.mark.parametrize(("kind", "avg"), CASES, ids=IDS)
@pytest.mark.parametrize("who", ["twin", "ours", "peer"])
def test_twin_slice(benchmark, who, kind, avg):
    data = dataset(kind)[:TWIN_SLICE]
    labels = dict(group=f"chunker-twin-{kind}-{avg // 1024}k", role=who, items=len(data), unit="B")
    if who == "twin":
        describe(benchmark, impl="meshcore-pure cut_points", **labels)
        ends = benchmark.pedantic(
            lambda: twin.cut_points(data, avg // 4, avg, avg * 4), rounds=1, iterations=1
        )
        impl, count = "meshcore-pure cut_points", len(ends)
    elif who == "ours":
        mod = compiled()
        impl = "meshcore-compiled cut_points"
        count = len(
            run(
                benchmark, lambda: mod.cut_points(data, avg // 4, avg, avg * 4), impl=impl, **labels
            )
        )
    else:
        cdc = peer(avg)
        impl = "pyfastcdc.cy cut_buf"
        count = run(benchmark, lambda: peer_pass(cdc, data), impl=impl, **labels)
    describe(benchmark, impl=impl, **labels, **mean_metrics(len(data), count, avg))
