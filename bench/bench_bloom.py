"""Bloom filter vs rbloom (Rust, hashes Python objects with ``hash()``), 10 bits per key.

Workloads (N = 1,000,000 keys; 100,000 in quick mode):

* ``digest32``: N random 32-byte keys (what a cache summary holds: chunk
  digests), as a list of ``bytes`` and, for us, also as one N x 32 uint8 array;
* ``url``: N URL-like ``str`` keys, ``https://host{i % 500}.example.org/path/
  {64 random bits in hex}/{i}.html`` (53-61 characters). ``str`` because that
  is what callers have; we hash their UTF-8, rbloom their cached ``hash()``.

Every implementation gets the same Python objects. Filters: ours is
``from_geometry(10 * N, 7)``; rbloom's is ``Bloom(N, p)`` with
p = e^(-10 (ln 2)^2), which rbloom turns into 10 * N bits and k = 6 (it floors
k). Both sizes are reported as metrics.

Groups:

* ``bloom-add-*``: batch insert of the N keys into an empty filter
  (``add_many``; rbloom ``update``).
* ``bloom-lookup-*``: batch lookup of the N inserted keys (all k probes run):
  ``contains_many``; rbloom has no batch lookup, so ``[k in bf for k in keys]``
  (``list(map(bf.__contains__, keys))`` measured the same).
* ``bloom-absent-url``: lookup of N URLs that were never inserted, after
  inserting the N of ``url``. Metrics: the measured false-positive rate, the
  theoretical (1 - e^(-kn/m))^k and their ratio (target <= 1.2).
* ``bloom-twin-*``: the pure twin on TWIN_N keys, with the compiled kernel on
  the same keys for scale.
"""

from __future__ import annotations

import importlib
import math
import random
from functools import cache

import numpy as np
import pytest
from _harness import describe, paired_ratio, paired_ratios, scale, spread

from meshcore.kernels import _bloom_py as twin

rbloom = pytest.importorskip("rbloom")

N = scale(1_000_000, 100_000)
TWIN_N = scale(100_000, 20_000)
BITS_PER_KEY = 10
K = 7
ROUNDS = scale(5, 3)
ADD_PAIRS = scale(11, 3)
RBLOOM_FPR = math.exp(-BITS_PER_KEY * math.log(2) ** 2)


def compiled():
    try:
        return importlib.import_module("meshcore.kernels._bloom_c")
    except ImportError as exc:
        pytest.skip(f"compiled bloom kernel is not built: {exc}")


@cache
def digest_array(n: int) -> np.ndarray:
    return np.random.default_rng(20240601).integers(0, 256, size=(n, 32), dtype=np.uint8)


@cache
def digest_list(n: int) -> list[bytes]:
    return [bytes(row) for row in digest_array(n)]


@cache
def urls(n: int, salt: str = "path") -> list[str]:
    rng = random.Random(f"{salt}-{n}")
    return [
        f"https://host{i % 500}.example.org/{salt}/{rng.getrandbits(64):x}/{i}.html"
        for i in range(n)
    ]


def keys_for(kind: str, n: int):
    return {"digest32": digest_list, "digest32-2d": digest_array, "url": urls}[kind](n)


def ours_filter(mod, n: int):
    return mod.BloomFilter.from_geometry(BITS_PER_KEY * n, K)


def peer_filter(n: int):
    return rbloom.Bloom(n, RBLOOM_FPR)


def sizes(n: int) -> dict:
    """Both filters' geometry; rbloom's k is not exposed, so it is rbloom's own formula."""
    rbloom_bits = peer_filter(n).size_in_bits
    return {
        "num_bits": BITS_PER_KEY * n,
        "num_hashes": K,
        "rbloom_bits": rbloom_bits,
        "rbloom_k": int(-math.log(RBLOOM_FPR) / math.log(2) ** 2 * math.log(2)),
    }


def run(benchmark, fn, *, setup=None, **labels):
    """Label the benchmark, then time ``fn`` (after ``setup``, untimed, each round)."""
    describe(benchmark, **labels)
    if setup is None:
        return benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    return benchmark.pedantic(fn, setup=setup, rounds=ROUNDS, iterations=1)


# -- batch insert ----------------------------------------------------------------------------

ADD_CASES = [
    ("digest32", "digest32", "meshcore-compiled add_many(list of bytes)"),
    ("digest32", "digest32-2d", "meshcore-compiled add_many(N x 32 uint8 array)"),
    ("url", "url", "meshcore-compiled add_many(list of str)"),
]


@pytest.mark.parametrize(("group", "kind", "impl"), ADD_CASES, ids=[c[1] for c in ADD_CASES])
def test_add_ours(benchmark, group, kind, impl):
    mod = compiled()
    keys = keys_for(kind, N)
    state = {}

    def setup():
        state["bf"] = ours_filter(mod, N)
        return (), {}

    added = run(
        benchmark,
        lambda: state["bf"].add_many(keys),
        setup=setup,
        group=f"bloom-add-{group}",
        impl=impl,
        role="ours",
        items=N,
        unit="keys",
        **sizes(N),
    )
    assert added > 0.99 * N
    peer_keys = keys_for(group, N)
    # Issue 20 judges batch inserts by the median of paired runs and asks for
    # their spread: more pairs here than elsewhere.
    ratios = paired_ratios(
        lambda bf: bf.add_many(keys),
        lambda bf: bf.update(peer_keys),
        rounds=ADD_PAIRS,
        ours_setup=lambda: (ours_filter(mod, N),),
        peer_setup=lambda: (peer_filter(N),),
    )
    benchmark.extra_info["metrics"].update(spread(ratios))


@pytest.mark.parametrize("group", ["digest32", "url"])
def test_add_peer(benchmark, group):
    keys = keys_for(group, N)
    state = {}

    def setup():
        state["bf"] = peer_filter(N)
        return (), {}

    run(
        benchmark,
        lambda: state["bf"].update(keys),
        setup=setup,
        group=f"bloom-add-{group}",
        impl="rbloom update",
        role="peer",
        items=N,
        unit="keys",
        **sizes(N),
    )
    assert keys[0] in state["bf"]


# -- batch lookup ----------------------------------------------------------------------------

LOOKUP_CASES = [
    ("digest32", "digest32", "meshcore-compiled contains_many(list of bytes)"),
    ("digest32", "digest32-2d", "meshcore-compiled contains_many(N x 32 uint8 array)"),
    ("url", "url", "meshcore-compiled contains_many(list of str)"),
]


@pytest.mark.parametrize(("group", "kind", "impl"), LOOKUP_CASES, ids=[c[1] for c in LOOKUP_CASES])
def test_lookup_ours(benchmark, group, kind, impl):
    mod = compiled()
    keys = keys_for(kind, N)
    bf = ours_filter(mod, N)
    bf.add_many(keys)
    out = np.empty(N, dtype=bool)
    run(
        benchmark,
        lambda: bf.contains_many(keys, out=out),
        group=f"bloom-lookup-{group}",
        impl=impl,
        role="ours",
        items=N,
        unit="keys",
        **sizes(N),
    )
    assert out.all()
    peer_keys = keys_for(group, N)
    peer_bf = peer_filter(N)
    peer_bf.update(peer_keys)
    paired = paired_ratio(
        lambda: bf.contains_many(keys, out=out),
        lambda: [k in peer_bf for k in peer_keys],
        rounds=ROUNDS,
    )
    benchmark.extra_info["metrics"]["paired_vs_peer"] = paired


@pytest.mark.parametrize("group", ["digest32", "url"])
def test_lookup_peer(benchmark, group):
    keys = keys_for(group, N)
    bf = peer_filter(N)
    bf.update(keys)
    found = run(
        benchmark,
        lambda: [k in bf for k in keys],
        group=f"bloom-lookup-{group}",
        impl="rbloom [k in bf for k in keys]",
        role="peer",
        items=N,
        unit="keys",
        **sizes(N),
    )
    assert all(found)


# -- false positives -------------------------------------------------------------------------


def theoretical_fpr(m: int, k: int, n: int) -> float:
    return (1 - math.exp(-k * n / m)) ** k


def test_absent_ours(benchmark):
    mod = compiled()
    bf = ours_filter(mod, N)
    bf.add_many(urls(N))
    absent = urls(N, "miss")
    out = np.empty(N, dtype=bool)
    labels = dict(
        group="bloom-absent-url",
        impl="meshcore-compiled contains_many(list of str)",
        role="ours",
        items=N,
        unit="keys",
        **sizes(N),
    )
    run(benchmark, lambda: bf.contains_many(absent, out=out), **labels)
    measured = float(out.mean())
    theory = theoretical_fpr(bf.num_bits, bf.num_hashes, N)
    describe(
        benchmark,
        **labels,
        fpr_measured=measured,
        fpr_theoretical=theory,
        fpr_ratio=measured / theory,
    )
    assert measured <= 1.2 * theory


def test_absent_peer(benchmark):
    bf = peer_filter(N)
    bf.update(urls(N))
    absent = urls(N, "miss")
    labels = dict(
        group="bloom-absent-url",
        impl="rbloom [k in bf for k in keys]",
        role="peer",
        items=N,
        unit="keys",
        **sizes(N),
    )
    found = run(benchmark, lambda: [k in bf for k in absent], **labels)
    measured = sum(found) / N
    theory = theoretical_fpr(bf.size_in_bits, sizes(N)["rbloom_k"], N)
    describe(
        benchmark,
        **labels,
        fpr_measured=measured,
        fpr_theoretical=theory,
        fpr_ratio=measured / theory,
    )


# -- the pure twin ---------------------------------------------------------------------------

TWIN_CASES = [("digest32", "digest32"), ("url", "url")]


@pytest.mark.parametrize(("group", "kind"), TWIN_CASES, ids=[c[0] for c in TWIN_CASES])
@pytest.mark.parametrize("who", ["twin", "ours"])
def test_twin_add(benchmark, who, group, kind):
    mod = twin if who == "twin" else compiled()
    keys = keys_for(kind, TWIN_N)
    state = {}

    def setup():
        state["bf"] = ours_filter(mod, TWIN_N)
        return (), {}

    run(
        benchmark,
        lambda: state["bf"].add_many(keys),
        setup=setup,
        group=f"bloom-twin-add-{group}",
        impl=f"meshcore-{'pure' if who == 'twin' else 'compiled'} add_many",
        role=who,
        items=TWIN_N,
        unit="keys",
    )


@pytest.mark.parametrize(("group", "kind"), TWIN_CASES, ids=[c[0] for c in TWIN_CASES])
@pytest.mark.parametrize("who", ["twin", "ours"])
def test_twin_lookup(benchmark, who, group, kind):
    mod = twin if who == "twin" else compiled()
    keys = keys_for(kind, TWIN_N)
    bf = ours_filter(mod, TWIN_N)
    bf.add_many(keys)
    result = run(
        benchmark,
        lambda: bf.contains_many(keys),
        group=f"bloom-twin-lookup-{group}",
        impl=f"meshcore-{'pure' if who == 'twin' else 'compiled'} contains_many",
        role=who,
        items=TWIN_N,
        unit="keys",
    )
    assert result.all()
