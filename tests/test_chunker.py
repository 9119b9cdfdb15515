"""Content-defined chunker: behaviour on both twins, the pinned format, and compiled == pure."""

from __future__ import annotations

import array
import ctypes
import hashlib
import itertools
import math
import random
import struct

import numpy as np
import pytest
import xxhash
from conftest import kernel_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshcore.kernels import _chunking as ck

M64 = (1 << 64) - 1
SMALL = (64, 256, 1024)  # many boundaries on small inputs: keeps the pure twin fast
MID = (256, 1024, 4096)
DEFAULT = (4096, 16384, 65536)


@pytest.fixture
def chunker(backend):
    """The chunker module of the backend under test."""
    return kernel_module("chunker", backend)


def rand(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def text_like(n: int, seed: int = 0) -> bytes:
    """Words from a skewed vocabulary with punctuation and newlines (low entropy, like text)."""
    rng = random.Random(seed)
    vocab = [
        "".join(rng.choice("etaoinshrdlucmfwyp") for _ in range(rng.randint(1, 9)))
        for _ in range(500)
    ]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    out = []
    size = 0
    while size < n:
        word = rng.choices(vocab, weights)[0] + rng.choice("   ,.\n")
        out.append(word)
        size += len(word)
    return "".join(out).encode()[:n]


def reference_gear() -> list[int]:
    """splitmix64 from the documented seed, written out again from the spec."""
    out, state = [], 0x6D657368636F7265  # ASCII "meshcore"
    for _ in range(256):
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        out.append(z ^ (z >> 31))
    return out


REF_GEAR = reference_gear()


def reference_ends(data: bytes, mn: int, avg: int, mx: int, nc: int = 2) -> list[int]:
    """Chunk ends from docs/kernels/chunker.md in its sliding-window form.

    Independent of both twins: one free-running gear hash over the whole input
    (which equals the hash of the last 64 bytes, the rest has shifted out), then
    for each chunk the first candidate length L in [min, max] whose window hash
    has no bit of the mask set, the mask depending on L < normal_size.
    """
    bits = min(range(40), key=lambda b: abs(math.log2(avg) - b))
    normal = mn + (avg - mn) * (16, 8, 12, 14)[nc] // 16
    mask_s = ((1 << (bits + nc)) - 1) << (64 - bits - nc)
    mask_l = ((1 << (bits - nc)) - 1) << (64 - bits + nc)
    hashes, fp = [], 0
    for b in data:
        fp = ((fp << 1) + REF_GEAR[b]) & M64
        hashes.append(fp)
    ends, start, n = [], 0, len(data)
    while start < n:
        end = min(start + mx, n)
        for length in range(mn, mx + 1):
            if start + length > n:
                break
            mask = mask_s if length < normal else mask_l
            if hashes[start + length - 1] & mask == 0:
                end = start + length
                break
        ends.append(end)
        start = end
    return ends


def stream(mod, data: bytes, splits, *args, **kwargs):
    """All chunks of ``data`` fed in pieces cut at ``splits`` (sorted offsets), then finished."""
    c = mod.Chunker(*args, **kwargs)
    out, prev = [], 0
    for s in [*splits, len(data)]:
        out += c.feed(data[prev:s])
        prev = s
    return out + c.finish()


# -- format: pinned forever (changing it renames every chunk) ------------------------------


def test_gear_table_is_splitmix64_of_the_documented_seed():
    assert list(ck.GEAR) == REF_GEAR
    assert int.from_bytes(b"meshcore", "big") == ck.GEAR_SEED
    assert ck.GEAR[0] == 0xAC3913EC8FC5747A
    assert ck.GEAR[255] == 0xACF2BA01316FC6AD
    packed = struct.pack("<256Q", *ck.GEAR)
    assert hashlib.blake2b(packed, digest_size=16).hexdigest() == "aca682971317a21230390d7bd8c7c129"


@pytest.mark.parametrize(
    ("params", "count", "first", "digest"),
    [
        ((*DEFAULT, 2), 11, [16037, 48590, 65471], "f5d7082b222cd1bc1626be25c99c3843"),
        ((*SMALL, 2), 784, [338, 615, 838], "7b91593a9246c8256cecbd87706d8c40"),
        ((*MID, 0), 150, [1961, 3132, 3465], "e6dd9fd4d7293ce3a40ed6b2f0dca335"),
        ((*MID, 3), 194, [948, 1876, 2875], "db7d3ae574b1887b1cf24a9f2611335a"),
    ],
)
def test_known_answers(chunker, params, count, first, digest):
    data = rand(200_000, 20240601)
    ends = chunker.cut_points(data, *params[:3], normalization=params[3])
    assert len(ends) == count
    assert ends[:3].tolist() == first
    assert hashlib.blake2b(ends.tobytes(), digest_size=16).hexdigest() == digest


def test_known_answer_for_reimplementers(chunker):
    # The vector in docs/kernels/chunker.md: no Python-specific random generator involved.
    data = b"".join(x.to_bytes(8, "little") for x in ck._splitmix64(1, 12500))
    ends = chunker.cut_points(data, *SMALL)
    assert len(ends) == 383
    assert ends[:8].tolist() == [131, 331, 611, 835, 1090, 1377, 1623, 1915]
    digest = hashlib.blake2b(ends.astype("<i8").tobytes(), digest_size=16).hexdigest()
    assert digest == "5da0f51f267634a7da736c66ee29e589"
    assert chunker.cut_points(data, *DEFAULT).tolist() == [
        16225,
        30866,
        46654,
        69277,
        73494,
        90536,
        100000,
    ]
    first = chunker.Chunker(*SMALL).feed(data)[0]
    assert first.fingerprint.hex() == "a7b19ff704a89954209107f4b98319d8"
    ends, fingerprints = chunker.chunk_fingerprints(data, *SMALL)
    assert ends.tolist() == chunker.cut_points(data, *SMALL).tolist()
    assert fingerprints[0].tobytes().hex() == "a7b19ff704a89954209107f4b98319d8"


@pytest.mark.parametrize(
    ("params", "nc"),
    [
        (SMALL, 0),
        (SMALL, 1),
        (SMALL, 2),
        (SMALL, 3),
        ((64, 64, 64), 2),
        ((64, 100, 5000), 1),
        ((300, 1000, 1000), 3),
        ((200, 3000, 9000), 2),
    ],
)
@pytest.mark.parametrize("kind", ["random", "text", "zeros", "period64", "period3"])
def test_matches_the_written_out_spec(chunker, params, nc, kind):
    n = 12_000
    data = {
        "random": rand(n, 7),
        "text": text_like(n, 7),
        "zeros": bytes(n),
        "period64": (rand(64, 3) * (n // 64 + 1))[:n],
        "period3": b"abc" * (n // 3),
    }[kind]
    expected = reference_ends(data, *params, nc)
    assert chunker.cut_points(data, *params, normalization=nc).tolist() == expected
    assert [
        c.offset + c.length for c in stream(chunker, data, [], *params, normalization=nc)
    ] == expected


def test_parameters():
    p = ck.chunk_params(4096, 16384, 65536, 2)
    assert (p.bits, p.normal_size) == (14, 4096 + 12288 * 12 // 16)
    assert p.mask_s == ((1 << 16) - 1) << 48
    assert p.mask_l == ((1 << 12) - 1) << 52
    assert ck.chunk_params(64, 64, 64, 0).normal_size == 64
    assert ck.chunk_params(100, 200, 300, 1).normal_size == 150
    assert ck.chunk_params(64, 23170, 2**20, 0).bits == 14  # 2**14.5 = 23170.48
    assert ck.chunk_params(64, 23171, 2**20, 0).bits == 15
    assert ck.chunk_params(64, 2**30, 2**30, 3).bits == 30
    assert ck.high_mask(1) == 1 << 63
    assert ck.high_mask(63) == M64 - 1


def test_expected_mean_is_near_the_configured_average():
    for avg in (16384, 65536):
        assert abs(ck.expected_chunk_size(avg // 4, avg, avg * 4, 2) / avg - 1) < 0.02
    # nc=0 has no normalization to steer with: the classic "min + avg" mean.
    assert 1.2 < ck.expected_chunk_size(4096, 16384, 65536, 0) / 16384 < 1.25
    assert ck.expected_chunk_size(64, 64, 64, 2) == 64.0


@pytest.mark.parametrize("nc", [1, 2, 3])
def test_measured_mean_on_random_data(chunker, nc):
    data = rand(200_000, nc)
    ends = chunker.cut_points(data, *MID, normalization=nc)
    mean = len(data) / len(ends)
    assert abs(mean / ck.expected_chunk_size(*MID, nc) - 1) < 0.1
    assert abs(mean / MID[1] - 1) < 0.15


# -- behaviour ------------------------------------------------------------------------------


def test_exports(chunker):
    assert set(chunker.__all__) == {"Chunker", "chunk_fingerprints", "cut_points"}
    import meshcore.kernels as kernels

    assert kernels.Chunk is ck.Chunk
    assert kernels.blake2b_256 is ck.blake2b_256


def test_boundaries_respect_min_and_max(chunker):
    for data in (rand(60_000, 1), text_like(60_000, 1), bytes(5000)):
        chunks = stream(chunker, data, [], *MID)
        assert chunks
        for c in chunks[:-1]:
            assert MID[0] <= c.length <= MID[2]
        assert 1 <= chunks[-1].length <= MID[2]
        assert sum(c.length for c in chunks) == len(data)


def test_deterministic(chunker):
    data = rand(50_000, 2)
    first = stream(chunker, data, [], *SMALL)
    # a fresh chunker fed other pieces cuts the same chunks, at the whole-buffer cut points
    assert stream(chunker, data, [1, 4097, 30_000], *SMALL) == first
    ends = list(itertools.accumulate(c.length for c in first))
    assert len(first) > 1 and chunker.cut_points(data, *SMALL).tolist() == ends


@pytest.mark.parametrize("prefix", [1, 7, 100, 1000])
def test_shift_resistance(chunker, prefix):
    data = rand(150_000, 3)
    before = {c.data for c in stream(chunker, data, [], *MID)}
    after = stream(chunker, rand(prefix, 4) + data, [], *MID)
    shared = sum(c.data in before for c in after)
    assert shared >= len(after) - 3
    assert shared / len(after) > 0.9


def test_empty_input(chunker):
    ends = chunker.cut_points(b"")
    assert ends.dtype == np.int64 and ends.shape == (0,)
    c = chunker.Chunker()
    assert c.feed(b"") == []
    assert c.buffered == 0
    assert c.finish() == []


def test_single_byte(chunker):
    assert chunker.cut_points(b"x").tolist() == [1]
    c = chunker.Chunker(*SMALL)
    assert c.feed(b"x") == []
    assert c.buffered == 1
    [chunk] = c.finish()
    assert chunk == ck.Chunk(0, 1, xxhash.xxh3_128_digest(b"x"), b"x")


def test_shorter_than_min(chunker):
    data = rand(4095, 5)
    assert chunker.cut_points(data).tolist() == [4095]
    c = chunker.Chunker()
    assert c.feed(data) == []
    assert [x.length for x in c.finish()] == [4095]


def test_exactly_max_and_one_more(chunker):
    # The gear hash of 64 zero bytes has its top bits set: zeros never cut before max.
    assert (-ck.GEAR[0]) & M64 & ck.high_mask(3) != 0
    mx = SMALL[2]
    assert chunker.cut_points(bytes(mx), *SMALL).tolist() == [mx]
    assert chunker.cut_points(bytes(mx + 1), *SMALL).tolist() == [mx, mx + 1]
    c = chunker.Chunker(*SMALL)
    [chunk] = c.feed(bytes(mx))  # the forced cut comes out at once, not at finish()
    assert (chunk.offset, chunk.length, c.buffered) == (0, mx, 0)
    assert c.finish() == []
    c = chunker.Chunker(*SMALL)
    assert c.feed(bytes(mx - 1)) == []
    assert [x.length for x in c.feed(b"\0\0")] == [mx]
    assert [(x.offset, x.length) for x in c.finish()] == [(mx, 1)]


def test_min_equals_max_gives_fixed_size_chunks(chunker):
    data = rand(1000, 6)
    assert chunker.cut_points(data, 100, 100, 100).tolist() == [*range(100, 1001, 100)]


@pytest.mark.parametrize("kind", ["random", "text", "zeros"])
def test_streaming_equivalence(chunker, kind):
    data = {"random": rand(30_000, 8), "text": text_like(30_000, 8), "zeros": bytes(30_000)}[kind]
    whole = stream(chunker, data, [], *SMALL)
    rng = random.Random(9)
    for _ in range(5):
        splits = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(1, 60)))
        assert stream(chunker, data, splits, *SMALL) == whole  # repeats give empty pieces
    head = data[:3000]
    assert stream(chunker, head, range(1, len(head)), *SMALL) == stream(chunker, head, [], *SMALL)


def test_chunks_are_contiguous_and_fingerprinted(chunker):
    data = text_like(40_000, 10)
    chunks = stream(chunker, data, [5000, 5001, 20000], *SMALL)
    offset = 0
    for c in chunks:
        assert isinstance(c, ck.Chunk)
        assert c.offset == offset
        assert type(c.data) is bytes
        assert c.data == data[offset : offset + c.length]
        assert c.fingerprint == xxhash.xxh3_128_digest(c.data)
        assert len(c.fingerprint) == 16
        offset += c.length
    assert offset == len(data)


def test_fingerprints_false(chunker):
    data = rand(5000, 11)
    chunks = stream(chunker, data, [100], *SMALL, fingerprints=False)
    assert all(c.fingerprint is None for c in chunks)
    with_fp = stream(chunker, data, [], *SMALL)
    assert [c[:2] + c[3:] for c in chunks] == [c[:2] + c[3:] for c in with_fp]


def test_cut_points_equal_streaming_boundaries(chunker):
    for params in (SMALL, MID, DEFAULT):
        data = rand(150_000, 12)
        ends = chunker.cut_points(data, *params)
        assert ends.dtype == np.int64
        assert ends.tolist() == [c.offset + c.length for c in stream(chunker, data, [], *params)]
        assert ends[-1] == len(data)


def test_cut_points_output_grows_past_its_first_guess(chunker):
    # A 64-byte block whose window hash passes the small-mask test, repeated: every chunk is
    # min_size long, far more chunks than the 2 * n / avg the output is first sized for.
    rng = random.Random(13)
    mask = ck.chunk_params(64, 1024, 4096, 0).mask_s
    while True:
        block = rng.randbytes(64)
        fp = 0
        for b in block:
            fp = ((fp << 1) + ck.GEAR[b]) & M64
        if fp & mask == 0:
            break
    data = block * 200
    ends = chunker.cut_points(data, 64, 1024, 4096, normalization=0)
    assert ends.tolist() == [*range(64, len(data) + 1, 64)]
    ends, fingerprints = chunker.chunk_fingerprints(data, 64, 1024, 4096, normalization=0)
    assert ends.tolist() == [*range(64, len(data) + 1, 64)]
    assert fingerprints.shape == (200, 16)
    assert {row.tobytes() for row in fingerprints} == {xxhash.xxh3_128_digest(block)}


# -- chunk_fingerprints: the zero-copy whole-buffer path -------------------------------------


def check_fingerprint_rows(data: bytes, ends, fingerprints) -> None:
    """``fingerprints`` is a C-contiguous uint8 (n, 16) array of xxh3-128s of the chunks."""
    assert fingerprints.dtype == np.uint8
    assert fingerprints.shape == (len(ends), 16)
    assert fingerprints.flags.c_contiguous
    starts = [0, *ends.tolist()[:-1]]
    for row, start, end in zip(fingerprints, starts, ends.tolist(), strict=True):
        assert row.tobytes() == xxhash.xxh3_128_digest(data[start:end])


@pytest.mark.parametrize("params", [SMALL, MID, DEFAULT, (64, 64, 64), (300, 1000, 1000)])
@pytest.mark.parametrize("kind", ["random", "text", "zeros"])
def test_chunk_fingerprints_equal_streaming_chunks(chunker, params, kind):
    n = 150_000 if params == DEFAULT else 20_000
    data = {"random": rand(n, 22), "text": text_like(n, 22), "zeros": bytes(n)}[kind]
    ends, fingerprints = chunker.chunk_fingerprints(data, *params)
    chunks = stream(chunker, data, [7777], *params)
    assert ends.dtype == np.int64
    assert ends.tolist() == [c.offset + c.length for c in chunks]
    assert ends.tolist() == chunker.cut_points(data, *params).tolist()
    assert [row.tobytes() for row in fingerprints] == [c.fingerprint for c in chunks]
    check_fingerprint_rows(data, ends, fingerprints)


@pytest.mark.parametrize("nc", [0, 1, 3])
def test_chunk_fingerprints_normalization(chunker, nc):
    data = text_like(30_000, 23)
    ends, fingerprints = chunker.chunk_fingerprints(data, *SMALL, normalization=nc)
    assert ends.tolist() == chunker.cut_points(data, *SMALL, normalization=nc).tolist()
    check_fingerprint_rows(data, ends, fingerprints)


def test_chunk_fingerprints_small_inputs(chunker):
    ends, fingerprints = chunker.chunk_fingerprints(b"")
    assert (ends.dtype, ends.shape) == (np.int64, (0,))
    assert (fingerprints.dtype, fingerprints.shape) == (np.uint8, (0, 16))
    assert fingerprints.flags.c_contiguous
    ends, fingerprints = chunker.chunk_fingerprints(b"x")
    assert ends.tolist() == [1]
    assert fingerprints.tobytes() == xxhash.xxh3_128_digest(b"x")
    data = rand(4095, 24)  # shorter than min_size: one chunk
    ends, fingerprints = chunker.chunk_fingerprints(data)
    assert ends.tolist() == [4095]
    assert fingerprints.tobytes() == xxhash.xxh3_128_digest(data)
    mx = SMALL[2]
    ends, fingerprints = chunker.chunk_fingerprints(bytes(mx + 1), *SMALL)
    assert ends.tolist() == [mx, mx + 1]
    assert [row.tobytes() for row in fingerprints] == [
        xxhash.xxh3_128_digest(bytes(mx)),
        xxhash.xxh3_128_digest(b"\0"),
    ]


@pytest.mark.parametrize(
    "make",
    [
        bytes,
        bytearray,
        memoryview,
        lambda b: np.frombuffer(b, np.uint8),
        lambda b: array.array("B", b),
        lambda b: memoryview(b).cast("B", (len(b) // 4, 4)),
        lambda b: np.frombuffer(b, np.int32),
    ],
)
def test_chunk_fingerprints_buffer_types(chunker, make):
    data = rand(8000, 25)
    expected = stream(chunker, data, [], *SMALL)
    ends, fingerprints = chunker.chunk_fingerprints(make(data), *SMALL)
    assert ends.tolist() == [c.offset + c.length for c in expected]
    assert [row.tobytes() for row in fingerprints] == [c.fingerprint for c in expected]
    ends, fingerprints = chunker.chunk_fingerprints(np.zeros((0, 4), np.float64))
    assert (ends.shape, fingerprints.shape) == ((0,), (0, 16))


def test_chunk_fingerprints_leave_the_input_alone(chunker):
    data = bytearray(rand(20_000, 26))
    before = bytes(data)
    ends, fingerprints = chunker.chunk_fingerprints(data, *SMALL)
    assert data == before
    data += b"more"  # no buffer export outlives the call (a bytearray cannot resize while one is)
    assert ends.flags.writeable and fingerprints.flags.writeable
    fingerprints[0] = 0  # fresh arrays: scribbling on them affects no later call
    again = chunker.chunk_fingerprints(before, *SMALL)[1]
    assert again[0].tobytes() == xxhash.xxh3_128_digest(before[: ends[0]])


def test_compiled_span_is_a_read_only_buffer(twins):
    # The compiled path hands xxhash a private _Span re-pointed at each chunk: it must never
    # let a consumer write into the caller's data, and a fresh one is a valid empty buffer.
    span = twins("chunker")[1]._Span()
    view = memoryview(span)
    assert view.readonly and view.tobytes() == b""
    with pytest.raises(TypeError, match="not writable"):
        ctypes.c_char.from_buffer(span)


@pytest.mark.parametrize(
    "make",
    [
        bytes,
        bytearray,
        memoryview,
        lambda b: np.frombuffer(b, np.uint8),
        lambda b: array.array("B", b),
        lambda b: memoryview(b).cast("B", (len(b) // 4, 4)),
        lambda b: np.frombuffer(b, np.int32),
    ],
)
def test_buffer_types(chunker, make):
    data = rand(8000, 14)
    expected = stream(chunker, data, [], *SMALL)
    c = chunker.Chunker(*SMALL)
    assert c.feed(make(data)) + c.finish() == expected
    ends = chunker.cut_points(make(data), *SMALL)
    assert ends.tolist() == [x.offset + x.length for x in expected]


def test_empty_numpy_and_zero_size_buffers(chunker):
    assert chunker.cut_points(np.zeros((0, 4), np.float64)).tolist() == []
    assert chunker.Chunker().feed(np.zeros(0, np.uint8)) == []


def test_feed_after_finish_starts_a_new_stream(chunker):
    a, b = rand(9000, 15), rand(7000, 16)
    c = chunker.Chunker(*SMALL)
    first = c.feed(a) + c.finish()
    second = c.feed(b[:3000]) + c.feed(b[3000:]) + c.finish()
    assert second[0].offset == 0
    assert first == stream(chunker, a, [], *SMALL)
    assert second == stream(chunker, b, [], *SMALL)
    assert c.finish() == []


def test_memory_bound(chunker):
    data = rand(100_000, 17)
    rng = random.Random(18)
    c = chunker.Chunker(*MID)
    pos = done = 0
    while pos < len(data):
        k = rng.choice([0, 1, 63, 500, 4095, 4096, 4097, 20_000])
        chunks = c.feed(data[pos : pos + k])
        pos = min(pos + k, len(data))
        done += sum(x.length for x in chunks)
        assert c.buffered == pos - done  # only the incomplete chunk is held
        assert c.buffered < MID[2]
    assert sum(x.length for x in c.finish()) == len(data) - done
    assert c.buffered == 0


def test_properties_and_repr(chunker):
    c = chunker.Chunker(100, 200, 300, normalization=1, fingerprints=False)
    assert (c.min_size, c.avg_size, c.max_size, c.normalization, c.fingerprints) == (
        100,
        200,
        300,
        1,
        False,
    )
    assert repr(c) == (
        "Chunker(min_size=100, avg_size=200, max_size=300, normalization=1, fingerprints=False)"
    )
    d = chunker.Chunker()
    assert (d.min_size, d.avg_size, d.max_size, d.normalization, d.fingerprints) == (
        *DEFAULT,
        2,
        True,
    )
    assert d.buffered == 0


def test_numpy_integer_sizes(chunker):
    data = rand(3000, 19)
    assert (
        chunker.cut_points(data, np.int64(64), np.int32(256), 1024).tolist()
        == chunker.cut_points(data, *SMALL).tolist()
    )


ORDER = "min_size, avg_size, max_size: expected 64 <= min <= avg <= max <= 1073741824, got "

BAD_ARGS = [
    ((63, 256, 1024), {}, ValueError, ORDER + "63, 256, 1024"),
    ((8192, 4096, 65536), {}, ValueError, ORDER + "8192, 4096, 65536"),
    ((64, 2048, 1024), {}, ValueError, ORDER + "64, 2048, 1024"),
    ((64, 256, 2**30 + 1), {}, ValueError, ORDER + "64, 256, 1073741825"),
    ((-1, 256, 1024), {}, ValueError, ORDER + "-1, 256, 1024"),
    ((64.0, 256, 1024), {}, TypeError, "min_size: expected an integer, got float"),
    ((64, "256", 1024), {}, TypeError, "avg_size: expected an integer, got str"),
    ((64, 256, None), {}, TypeError, "max_size: expected an integer, got NoneType"),
    ((True, 256, 1024), {}, TypeError, "min_size: expected an integer, got bool"),
    ((), {"normalization": 4}, ValueError, "normalization: expected an integer in 0..3, got 4"),
    ((), {"normalization": -1}, ValueError, "normalization: expected an integer in 0..3, got -1"),
    ((), {"normalization": 1.5}, TypeError, "normalization: expected an integer, got float"),
]


@pytest.mark.parametrize(("args", "kwargs", "exc", "message"), BAD_ARGS)
def test_argument_errors(chunker, args, kwargs, exc, message):
    with pytest.raises(exc) as info:
        chunker.Chunker(*args, **kwargs)
    assert str(info.value) == message
    with pytest.raises(exc) as info:
        chunker.cut_points(b"abc", *args, **kwargs)
    assert str(info.value) == message
    with pytest.raises(exc) as info:
        chunker.chunk_fingerprints(b"abc", *args, **kwargs)
    assert str(info.value) == message


def test_fingerprints_flag_must_be_a_bool(chunker):
    with pytest.raises(TypeError, match=r"^fingerprints: expected a bool, got int$"):
        chunker.Chunker(fingerprints=1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("text", "data: expected a C-contiguous bytes-like object, got str"),
        ([1, 2], "data: expected a C-contiguous bytes-like object, got list"),
        (None, "data: expected a C-contiguous bytes-like object, got NoneType"),
        (
            memoryview(b"abcdef")[::2],
            "data: expected a C-contiguous bytes-like object, got a strided buffer",
        ),
    ],
)
def test_data_errors(chunker, data, message):
    c = chunker.Chunker(*SMALL)
    c.feed(b"x" * 10)
    with pytest.raises(TypeError) as info:
        c.feed(data)
    assert str(info.value) == message
    assert c.buffered == 10  # a rejected piece leaves the stream untouched
    with pytest.raises(TypeError) as info:
        chunker.cut_points(data)
    assert str(info.value) == message
    with pytest.raises(TypeError) as info:
        chunker.chunk_fingerprints(data)
    assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        chunker.chunk_fingerprints(data, 63)  # the parameters are checked first
    assert str(info.value) == ORDER + "63, 16384, 65536"


def test_blake2b_256():
    assert ck.blake2b_256(b"abc") == hashlib.blake2b(b"abc", digest_size=32).digest()
    assert len(ck.blake2b_256(memoryview(b""))) == 32


# -- compiled == pure -------------------------------------------------------------------------

FAST = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)

DATA = st.one_of(
    st.binary(max_size=4000),
    st.builds(lambda n, seed: rand(n, seed), st.integers(0, 60_000), st.integers(0, 2**32)),
    st.builds(
        lambda pat, n: (pat * (n // len(pat) + 1))[:n],
        st.binary(min_size=1, max_size=80),
        st.integers(0, 20_000),
    ),
    st.integers(0, 20_000).map(bytes),
    st.builds(text_like, st.integers(0, 30_000), st.integers(0, 1000)),
)


@st.composite
def params(draw):
    mn = draw(st.integers(64, 600))
    avg = draw(st.integers(mn, 2500))
    mx = draw(st.integers(avg, 8000))
    return mn, avg, mx, draw(st.integers(0, 3))


def outcome(fn, *args, **kwargs):
    """What a call did: its result, or the type and message of what it raised."""
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    if isinstance(result, np.ndarray):
        return ("array", result.dtype.str, result.shape, result.tolist())
    if isinstance(result, tuple):  # chunk_fingerprints: (ends, fingerprints)
        return ("tuple", *(outcome(lambda a=a: a) for a in result))
    return ("value", repr(result))  # a Chunker: equal settings print alike


@FAST
@given(
    data=DATA, p=params(), cuts=st.lists(st.floats(0, 1), max_size=12), fingerprints=st.booleans()
)
def test_diff_chunks(twins, data, p, cuts, fingerprints):
    py, c = twins("chunker")
    mn, avg, mx, nc = p
    splits = sorted(int(f * len(data)) for f in cuts)
    kw = {"normalization": nc, "fingerprints": fingerprints}
    expected = stream(py, data, splits, mn, avg, mx, **kw)
    assert stream(c, data, splits, mn, avg, mx, **kw) == expected
    assert stream(c, data, [], mn, avg, mx, **kw) == expected
    ends = c.cut_points(data, mn, avg, mx, normalization=nc)
    assert ends.tolist() == py.cut_points(data, mn, avg, mx, normalization=nc).tolist()
    assert ends.tolist() == [x.offset + x.length for x in expected]


@FAST
@given(data=DATA, p=params())
def test_diff_chunk_fingerprints(twins, data, p):
    py, c = twins("chunker")
    mn, avg, mx, nc = p
    got = outcome(c.chunk_fingerprints, data, mn, avg, mx, normalization=nc)
    assert got == outcome(py.chunk_fingerprints, data, mn, avg, mx, normalization=nc)
    ends, fingerprints = c.chunk_fingerprints(data, mn, avg, mx, normalization=nc)
    chunks = stream(c, data, [], mn, avg, mx, normalization=nc)
    assert ends.tolist() == [x.offset + x.length for x in chunks]
    assert ends.tolist() == c.cut_points(data, mn, avg, mx, normalization=nc).tolist()
    assert [row.tobytes() for row in fingerprints] == [x.fingerprint for x in chunks]
    assert fingerprints.shape == (len(chunks), 16) and fingerprints.flags.c_contiguous


@FAST
@given(data=st.binary(max_size=3000), p=params(), pieces=st.lists(st.integers(0, 700), max_size=30))
def test_diff_buffered_after_each_piece(twins, data, p, pieces):
    py, c = twins("chunker")
    mn, avg, mx, nc = p
    a = py.Chunker(mn, avg, mx, normalization=nc)
    b = c.Chunker(mn, avg, mx, normalization=nc)
    pos = 0
    for k in pieces:
        assert a.feed(data[pos : pos + k]) == b.feed(data[pos : pos + k])
        assert a.buffered == b.buffered
        pos += k
    assert a.finish() == b.finish()


ANY_ARG = st.one_of(
    st.integers(-100, 2**31),
    st.sampled_from([64, 100, 256, 1024, 2**30]),
    st.none(),
    st.booleans(),
    st.floats(-10, 1e6),
    st.text(max_size=3),
)


@FAST
@given(
    args=st.lists(ANY_ARG, max_size=3),
    nc=st.one_of(st.integers(-2, 5), ANY_ARG),
    fingerprints=st.one_of(st.booleans(), ANY_ARG),
    data=st.one_of(st.binary(max_size=50), st.text(max_size=5), st.none()),
)
def test_diff_errors(twins, args, nc, fingerprints, data):
    py, c = twins("chunker")
    assert outcome(c.Chunker, *args, normalization=nc, fingerprints=fingerprints) == outcome(
        py.Chunker, *args, normalization=nc, fingerprints=fingerprints
    )
    assert outcome(c.cut_points, data, *args, normalization=nc) == outcome(
        py.cut_points, data, *args, normalization=nc
    )
    assert outcome(c.chunk_fingerprints, data, *args, normalization=nc) == outcome(
        py.chunk_fingerprints, data, *args, normalization=nc
    )


def test_diff_every_byte_value(twins):
    # Every gear entry takes part: a drifted table in the compiled module cannot hide here.
    py, c = twins("chunker")
    data = bytes(range(256)) * 64 + rand(50_000, 20)
    for nc in range(4):
        assert (
            c.cut_points(data, *SMALL, normalization=nc).tolist()
            == py.cut_points(data, *SMALL, normalization=nc).tolist()
        )
    assert outcome(c.chunk_fingerprints, data, *SMALL) == outcome(
        py.chunk_fingerprints, data, *SMALL
    )


def test_diff_default_parameters_large(twins):
    py, c = twins("chunker")
    data = rand(150_000, 21) + text_like(50_000, 21)
    assert stream(c, data, [77_777], *DEFAULT) == stream(py, data, [77_777], *DEFAULT)
    assert outcome(c.chunk_fingerprints, data) == outcome(py.chunk_fingerprints, data)


def test_compiled_chunker_refuses_to_run_uninitialised():
    """``Chunker.__new__`` without ``__init__`` raises instead of looping on zero sizes."""
    mod = kernel_module("chunker", "compiled")
    bare = mod.Chunker.__new__(mod.Chunker)
    with pytest.raises(RuntimeError, match="__init__ was not called"):
        bare.feed(b"x" * 100)
