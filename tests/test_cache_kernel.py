"""The cache kernel: both twins' behaviour, argument checks, and differential runs."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import kernel_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import meshcore.kernels as kernels

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def cache(backend):
    """The cache kernel module of the backend under test."""
    return kernel_module("cache", backend)


def test_public_names_come_from_the_loaded_backend():
    suffix = "_c" if kernels.BACKEND == "compiled" else "_py"
    for name in ("AdaptiveTinyLFU", "FrequencySketch", "key_hash"):
        assert getattr(kernels, name).__module__.endswith("_cache" + suffix)


# ---------------------------------------------------------------------------
# behaviour, on each backend


def test_hits_misses_and_accounting(cache):
    evicted = []
    p = cache.AdaptiveTinyLFU(100, on_evict=evicted.append)
    assert p.request("a", 10) is False
    assert p.request("a", 10) is True
    assert "a" in p and len(p) == 1 and p.size_of("a") == 10 and p.used_bytes == 10
    assert p.request("a", 20) is False  # a new version: a miss, re-accounted
    assert p.size_of("a") == 20 and p.used_bytes == 20
    assert p.request("huge", 101) is False and "huge" not in p
    assert p.remove("a") is True and p.remove("a") is False
    assert p.used_bytes == 0 and evicted == []
    assert p.size_of("a") is None and list(p) == []


def test_budget_is_kept_and_every_departure_is_reported(cache):
    evicted = []
    p = cache.AdaptiveTinyLFU(1000, on_evict=evicted.append)
    rng = random.Random(3)
    admitted = set()
    for _ in range(5000):
        k = int(rng.paretovariate(0.8)) % 400
        if not p.request(k, 1 + k % 37):
            admitted.add(k)
        assert p.used_bytes <= 1000
    assert p.used_bytes == sum(p.size_of(k) for k in p)
    assert p.evictions == len(evicted)
    p.resize(100)
    assert p.used_bytes <= 100 and p.capacity_bytes == 100
    p.resize(0)
    assert len(p) == 0 and p.used_bytes == 0


def test_window_opens_when_the_workload_turns_to_recency(cache):
    # First a static Zipf catalogue: frequency wins, the window stays small.
    p = cache.AdaptiveTinyLFU(500)
    keys = np.random.default_rng(2).zipf(1.2, 30_000) % 50_000
    for k in keys.tolist():
        p.request(k, 1)
    before = p.window_share
    assert before < 0.2
    # Then every object is requested twice, 200 requests apart: LRU's 500
    # slots would hit the second request, frequency alone never. The
    # refused newcomers come back while they are still in the window's ghost,
    # which opens the window.
    hits = 0
    for i in range(1, 20_001):
        p.request(10**7 + i, 1)
        hits += p.request(10**7 + i - 100, 1) if i > 100 else 0
    assert p.window_share > 0.3  # enough to hold 200 requests' newcomers
    assert hits > 0.9 * 20_000  # every second request, once the window is open


def test_window_closes_again_when_frequency_returns(cache):
    p = cache.AdaptiveTinyLFU(500, window=0.8)
    keys = np.random.default_rng(3).zipf(1.1, 60_000) % 20_000
    for k in keys.tolist():
        p.request(k, 1)
    assert p.window_share < 0.3


def test_fixed_window_does_not_move(cache):
    p = cache.AdaptiveTinyLFU(200, window=0.3, adaptive=False)
    for i in range(20_000):
        p.request(i % 250, 1)
    assert p.window_share == 0.3


def test_byte_weighting_keeps_the_large_popular_object(cache):
    # One 500-byte object requested twice as often as each of 50 ten-byte
    # ones: weighting by bytes keeps it (more bytes of hits), weighting by
    # objects keeps the small ones (more hits per byte).
    def run(weighting):
        p = cache.AdaptiveTinyLFU(600, weighting=weighting, window=0.0, adaptive=False)
        for _ in range(20):
            for k in range(50):
                p.request(k, 10)
            p.request("video", 500)
            p.request("video", 500)
        return "video" in p

    assert run("bytes") is True
    assert run("objects") is False


def test_sketch_basics(cache):
    s = cache.FrequencySketch(64, max_count=15, sample_size=10**6)
    assert s.width == 64 and s.depth == 4 and s.memory_bytes == 4 * 64 + 16
    for _ in range(40):
        s.increment(b"x")
    assert s.estimate(b"x") == 16  # 15 in the counters + the doorkeeper bit
    assert s.top(1) == [(b"x", 16)]
    s.grow(256)
    assert s.width == 256 and s.estimate(b"x") == 16
    s.clear()
    assert s.estimate(b"x") == 0 and s.top() == []
    assert cache.key_hash("a") == cache.key_hash(b"a") == kernels.key_hash(b"a")


# ---------------------------------------------------------------------------
# argument checks: same exceptions and messages on both twins

BAD_CONSTRUCTORS = [
    ({"capacity_bytes": -1}, ValueError, "capacity_bytes: expected an integer >= 0"),
    ({"capacity_bytes": 1.5}, ValueError, "capacity_bytes"),
    ({"capacity_bytes": True}, ValueError, "capacity_bytes"),
    ({"weighting": "hits"}, ValueError, "weighting: expected one of bytes, objects"),
    ({"size_exponent": 2.0}, ValueError, "size_exponent: expected a number in"),
    ({"window": 0.9}, ValueError, "window: expected a number in \\[0, 0.8\\]"),
    ({"max_window": -0.1}, ValueError, "max_window"),
    ({"adaptive": 1}, TypeError, "adaptive: expected a bool, got int"),
    ({"sketch_factor": 0}, ValueError, "sketch_factor: expected an integer >= 1"),
    ({"sample_factor": "x"}, ValueError, "sample_factor"),
    ({"sketch_depth": 9}, ValueError, "depth: expected an integer between 1 and 8"),
    ({"max_count": 256}, ValueError, "max_count"),
    ({"top_k": -1}, ValueError, "top_k"),
    ({"on_evict": 3}, TypeError, "on_evict: expected a callable or None, got int"),
]


@pytest.mark.parametrize(("kwargs", "exc", "message"), BAD_CONSTRUCTORS)
def test_constructor_errors_name_the_argument(cache, kwargs, exc, message):
    kwargs = dict(kwargs)
    capacity = kwargs.pop("capacity_bytes", 100)
    with pytest.raises(exc, match=message):
        cache.AdaptiveTinyLFU(capacity, **kwargs)


@pytest.mark.parametrize("size", [-1, 1.0, True, "3", None, 2**62 + 1])
def test_bad_sizes_raise_and_change_nothing(cache, size):
    p = cache.AdaptiveTinyLFU(100)
    p.request("a", 1)
    with pytest.raises(ValueError, match="size: expected an integer >= 0"):
        p.request("a", size)
    assert p.size_of("a") == 1 and p.request("a", 1) is True


@pytest.mark.parametrize("key", [1.5, None, ("a",), ["a"]])
def test_bad_keys_raise_type_error(cache, key):
    p = cache.AdaptiveTinyLFU(100)
    with pytest.raises(TypeError, match="key: expected int, str or bytes"):
        p.request(key, 1)
    with pytest.raises(TypeError, match="key: expected int, str or bytes"):
        cache.key_hash(key)
    assert len(p) == 0


def test_numpy_sizes_and_keys_of_every_type(cache):
    p = cache.AdaptiveTinyLFU(1000)
    for key in (7, -7, 2**70, "é\ud800", b"raw", bytearray(b"ba"), True):
        p.request(key if not isinstance(key, bytearray) else bytes(key), np.int64(3))
    assert len(p) == 7


# ---------------------------------------------------------------------------
# differential: compiled == pure, exactly


def _run(mod, ops, capacity, params):
    log = []
    evicted = []
    p = mod.AdaptiveTinyLFU(capacity, on_evict=evicted.append, **params)
    for op, key, size in ops:
        try:
            if op == "request":
                log.append(p.request(key, size))
            elif op == "remove":
                log.append(p.remove(key))
            else:
                p.resize(size)
                log.append(None)
        except (TypeError, ValueError) as exc:
            log.append((type(exc), str(exc)))
        log.append((p.used_bytes, len(p), p.clock, p.window_share, p.rejections, p.evictions))
    return log, evicted, list(p), [p.size_of(k) for k in p], p.sketch.top(8)


KEYS = st.one_of(st.integers(-3, 60), st.sampled_from(["a", "b", "ü", b"c", 2**64 + 5]))
SIZES = st.one_of(st.integers(0, 120), st.sampled_from([-1, 1.5, 2**62]))
OPS = st.lists(
    st.tuples(st.sampled_from(["request"] * 8 + ["remove", "resize"]), KEYS, SIZES),
    max_size=300,
)
PARAMS = st.sampled_from(
    [
        {},
        {"weighting": "bytes"},
        {"window": 0.0, "adaptive": False},
        {"size_exponent": 0.5, "window": 0.4, "max_window": 0.5},
        {"max_count": 3, "sample_factor": 1, "sketch_factor": 1, "top_k": 2},
    ]
)


@FAST
@given(capacity=st.integers(0, 400), params=PARAMS, ops=OPS)
def test_twins_agree_on_random_operations(twins, capacity, params, ops):
    pure, compiled = twins("cache")
    assert _run(pure, ops, capacity, params) == _run(compiled, ops, capacity, params)


@pytest.mark.slow
def test_twins_agree_on_long_skewed_runs(twins):
    # Long enough for many climber periods, sketch growth and agings.
    pure, compiled = twins("cache")
    for seed in range(6):
        rng = random.Random(seed)
        n = rng.randint(50, 3000)
        sizes = {k: rng.choice([1, rng.randint(0, 60), rng.randint(1, 5000)]) for k in range(n)}
        ops = []
        for _ in range(20_000):
            k = int(rng.paretovariate(0.7)) % n
            ops.append(("request", k, sizes[k] if rng.random() > 0.01 else rng.randint(0, 99)))
        capacity = rng.randint(10, 50_000)
        params = rng.choice([{}, {"weighting": "bytes"}, {"window": 0.2}])
        assert _run(pure, ops, capacity, params) == _run(compiled, ops, capacity, params)


SKETCH_OPS = st.lists(
    st.tuples(st.sampled_from(["inc"] * 6 + ["est", "reset", "grow", "top", "clear"]), KEYS),
    max_size=300,
)


@FAST
@given(
    width=st.integers(1, 200),
    depth=st.integers(1, 8),
    max_count=st.integers(1, 255),
    sample=st.one_of(st.none(), st.integers(1, 50)),
    top_k=st.integers(0, 5),
    ops=SKETCH_OPS,
)
def test_sketch_twins_agree(twins, width, depth, max_count, sample, top_k, ops):
    pure, compiled = twins("cache")

    def run(mod):
        s = mod.FrequencySketch(
            width, depth=depth, max_count=max_count, sample_size=sample, top_k=top_k
        )
        out = []
        for op, key in ops:
            try:
                if op == "inc":
                    out.append(s.increment(key))
                elif op == "est":
                    out.append(s.estimate(key))
                elif op == "reset":
                    s.reset()
                elif op == "grow":
                    s.grow(s.width * 2)
                elif op == "top":
                    out.append(s.top(3))
                else:
                    s.clear()
            except TypeError as exc:
                out.append(str(exc))
            out.append((s.width, s.sample_size, s.resets, s.memory_bytes))
        return out

    assert run(pure) == run(compiled)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "width"),
        ({"depth": 9}, "depth"),
        ({"top_k": -1}, "top_k"),
        ({"max_count": 0}, "max_count"),
        ({"sample_size": 0}, "sample_size"),
    ],
)
def test_sketch_errors_are_the_same_on_both_twins(twins, kwargs, message):
    pure, compiled = twins("cache")
    errors = []
    for mod in (pure, compiled):
        with pytest.raises(ValueError, match=message) as info:
            mod.FrequencySketch(**kwargs)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    s = compiled.FrequencySketch(64)
    with pytest.raises(ValueError, match="width: expected at least the current 64"):
        s.grow(16)
