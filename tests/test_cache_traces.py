"""Trace generators and libCacheSim trace readers (meshcore.cache._traces)."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.cache._traces import (
    DAY,
    Request,
    TraceBlock,
    ZipfSampler,
    daily_blocks,
    daily_trace,
    lognormal_blocks,
    lognormal_sizes,
    lognormal_trace,
    read_csv_trace,
    read_plain_trace,
    requests_from_blocks,
    scan_blocks,
    scan_trace,
    zipf_blocks,
    zipf_trace,
)
from meshcore.errors import DecodeError, TraceFormatError


def rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# Zipf


def test_zipf_sampler_frequencies_follow_the_power_law():
    n, alpha, draws = 1000, 1.0, 400_000
    sampler = ZipfSampler(rng(), n, alpha)
    counts = np.bincount(sampler.ranks(draws), minlength=n)
    harmonic = sum(r**-alpha for r in range(1, n + 1))
    for rank in (0, 1, 9, 99):
        expected = draws * (rank + 1) ** -alpha / harmonic
        assert abs(counts[rank] - expected) < 5 * math.sqrt(expected), rank
    # the most popular rank maps to one fixed key
    keys = sampler.sample(draws)
    assert Counter(keys.tolist()).most_common(1)[0][0] == sampler.key_of_rank(0)


def test_zipf_alpha_zero_is_uniform_and_keys_cover_objects():
    sampler = ZipfSampler(rng(), 50, 0.0)
    keys = sampler.sample(50_000)
    assert set(keys.tolist()) == set(range(50))
    counts = np.bincount(keys, minlength=50)
    assert counts.min() > 800 and counts.max() < 1200


@pytest.mark.parametrize("alpha", [0.6, 0.8, 1.0, 1.2])
def test_higher_alpha_concentrates_requests(alpha):
    keys = ZipfSampler(rng(), 10_000, alpha).sample(100_000)
    top = sum(c for _, c in Counter(keys.tolist()).most_common(100)) / len(keys)
    lower = ZipfSampler(rng(), 10_000, alpha - 0.2).sample(100_000)
    top_lower = sum(c for _, c in Counter(lower.tolist()).most_common(100)) / len(lower)
    assert top > top_lower


def test_zipf_trace_is_deterministic_and_seeded_by_argument():
    a = list(zipf_trace(rng(1), 100, 1000, 0.8, size=4, interval=0.5))
    b = list(zipf_trace(rng(1), 100, 1000, 0.8, size=4, interval=0.5))
    c = list(zipf_trace(rng(2), 100, 1000, 0.8, size=4, interval=0.5))
    assert a == b and a != c
    assert len(a) == 1000
    assert all(isinstance(r, Request) and type(r.key) is int and r.size == 4 for r in a)
    assert [r.time for r in a[:3]] == [0.0, 0.5, 1.0]
    assert all(0 <= r.key < 100 for r in a)


def test_random_random_is_accepted_and_advances():
    r = random.Random(3)
    a = list(zipf_trace(r, 100, 50, 0.9))
    b = list(zipf_trace(r, 100, 50, 0.9))
    assert a != b
    assert a == list(zipf_trace(random.Random(3), 100, 50, 0.9))


def test_global_random_state_is_untouched():
    np.random.seed(5)
    random.seed(5)
    expected = (np.random.random(), random.random())
    np.random.seed(5)
    random.seed(5)
    list(zipf_trace(rng(), 100, 500, 1.0))
    list(daily_trace(rng(), 100, 500, 1.0))
    assert (np.random.random(), random.random()) == expected


def test_blocks_are_bounded_and_concatenate_to_the_trace():
    blocks = list(zipf_blocks(rng(4), 1000, 10_000, 1.0, block=3000))
    assert [len(b.keys) for b in blocks] == [3000, 3000, 3000, 1000]
    assert all(isinstance(b, TraceBlock) for b in blocks)
    flat = list(requests_from_blocks(zipf_blocks(rng(4), 1000, 10_000, 1.0, block=3000)))
    assert [r.key for r in flat] == np.concatenate([b.keys for b in blocks]).tolist()
    # the block size does not change the trace's length; an empty trace is empty
    assert list(zipf_trace(rng(), 10, 0, 1.0)) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_objects": 0}, "n_objects: expected an integer >= 1, got 0"),
        ({"n_requests": -1}, "n_requests: expected an integer >= 0, got -1"),
        ({"alpha": -0.5}, "alpha: expected a number in [0.0, 100.0], got -0.5"),
        ({"alpha": float("nan")}, "alpha: expected a number"),
        ({"alpha": "1"}, "alpha: expected a number"),
        ({"size": -3}, "size: expected an integer >= 0, got -3"),
        ({"block": 0}, "block: expected an integer >= 1, got 0"),
        ({"n_objects": True}, "n_objects: expected an integer >= 1, got True"),
    ],
)
def test_zipf_bad_arguments_name_the_argument(kwargs, message):
    args = {"n_objects": 10, "n_requests": 10, "alpha": 1.0} | kwargs
    with pytest.raises(ValueError) as info:
        zipf_blocks(rng(), args.pop("n_objects"), args.pop("n_requests"), args.pop("alpha"), **args)
    assert str(info.value).startswith(message)


def test_bad_rng_type():
    with pytest.raises(TypeError, match=r"rng: expected a numpy\.random\.Generator"):
        zipf_trace(42, 10, 10, 1.0)


# ---------------------------------------------------------------------------
# scans


def test_scans_are_periodic_and_one_time():
    n_objects, every, length = 500, 1000, 200
    trace = list(scan_trace(rng(), n_objects, 12_000, 0.8, scan_every=every, scan_length=length))
    assert len(trace) == 12_000
    keys = [r.key for r in trace]
    period = every + length
    for i, key in enumerate(keys):
        assert (key >= n_objects) == (i % period >= every)
    scanned = [k for k in keys if k >= n_objects]
    assert len(scanned) == len(set(scanned)) == 10 * length
    assert scanned == sorted(scanned)  # a scan walks new objects in order


def test_scan_blocks_continue_scans_across_block_edges():
    small = np.concatenate(
        [
            b.keys
            for b in scan_blocks(rng(9), 100, 5000, 1.0, scan_every=70, scan_length=30, block=64)
        ]
    )
    big = np.concatenate(
        [
            b.keys
            for b in scan_blocks(rng(9), 100, 5000, 1.0, scan_every=70, scan_length=30, block=5000)
        ]
    )
    scans_small = small[small >= 100]
    scans_big = big[big >= 100]
    assert scans_small.tolist() == scans_big.tolist() == list(range(100, 100 + len(scans_big)))


def test_scan_bad_arguments():
    with pytest.raises(ValueError, match="scan_every: expected an integer >= 1, got 0"):
        scan_blocks(rng(), 10, 10, 1.0, scan_every=0, scan_length=1)
    with pytest.raises(ValueError, match="scan_length: expected an integer >= 0, got -1"):
        scan_blocks(rng(), 10, 10, 1.0, scan_every=1, scan_length=-1)


# ---------------------------------------------------------------------------
# log-normal sizes


def test_lognormal_sizes_have_the_requested_median_and_bounds():
    sizes = lognormal_sizes(
        rng(), 100_000, median_size=32_768, sigma=2.0, min_size=100, max_size=700 * 2**20
    )
    assert sizes.dtype == np.int64
    assert sizes.min() >= 100 and sizes.max() <= 700 * 2**20
    assert 0.9 < np.median(sizes) / 32_768 < 1.1
    # log-sizes have the requested shape
    assert 1.9 < np.log(sizes[(sizes > 100) & (sizes < 700 * 2**20)]).std() < 2.1


def test_lognormal_trace_keeps_each_objects_size():
    trace = list(lognormal_trace(rng(), 200, 20_000, 0.8, median_size=1000, sigma=1.5))
    seen: dict[int, int] = {}
    for r in trace:
        assert seen.setdefault(r.key, r.size) == r.size
        assert r.size >= 1
    assert len(set(seen.values())) > 150  # sizes vary between objects
    blocks = list(lognormal_blocks(rng(), 200, 100, 0.8, median_size=1000, sigma=0.0))
    assert set(blocks[0].sizes.tolist()) == {1000}


def test_lognormal_bad_arguments():
    with pytest.raises(ValueError, match="sigma: expected a number in"):
        lognormal_sizes(rng(), 10, median_size=10, sigma=-1)
    with pytest.raises(ValueError, match="max_size: expected an integer >= 5, got 4"):
        lognormal_sizes(rng(), 10, median_size=10, sigma=1, min_size=5, max_size=4)
    with pytest.raises(ValueError, match="median_size"):
        lognormal_blocks(rng(), 10, 10, 1.0, median_size=0)


# ---------------------------------------------------------------------------
# daily cycle and flash crowd


def test_daily_cycle_peaks_at_peak_hour():
    blocks = list(
        daily_blocks(
            rng(), 1000, 100_000, 0.8, mean_rate=0.5, amplitude=0.8, peak_hour=20.0, flash_share=0.0
        )
    )
    times = np.concatenate([b.times for b in blocks])
    assert len(times) == 100_000
    assert np.all(np.diff(times) > 0)
    assert times[-1] > 2 * DAY
    whole_days = times[times < 2 * DAY]
    hours = np.bincount(((whole_days % DAY) // 3600).astype(int), minlength=24)
    assert hours.argmax() in (19, 20, 21)
    assert hours.argmin() in (7, 8, 9)
    assert hours.max() > 5 * hours.min()  # (1 + 0.8) / (1 - 0.8) = 9 in expectation
    # the mean rate holds over whole days
    assert abs(len(times) / times[-1] - 0.5) < 0.05
    keys = np.concatenate([b.keys for b in blocks])
    assert keys.max() < 1000  # flash_share 0: catalogue only


def test_flash_crowd_publishes_new_content_daily_and_decays():
    trace = list(
        daily_trace(
            rng(),
            10_000,
            60_000,
            0.8,
            mean_rate=0.25,
            flash_hour=6.0,
            flash_objects=20,
            flash_share=0.6,
            flash_decay=3600.0,
        )
    )
    new = [r for r in trace if r.key >= 10_000]
    assert new, "flash crowd content is requested"
    for r in new:
        day = int((r.time - 6 * 3600) // DAY)
        assert r.time >= day * DAY + 6 * 3600  # never requested before its publication
        assert 10_000 + 20 * day <= r.key < 10_000 + 20 * (day + 1)
    # decay: the first hour after publication sees far more new-content requests than hour 5
    ages = np.array([(r.time - 6 * 3600) % DAY for r in new])
    assert (ages < 3600).sum() > 5 * ((ages >= 4 * 3600) & (ages < 5 * 3600)).sum()
    assert all(r.size == 1 for r in trace)


def test_daily_blocks_may_be_short_but_the_trace_is_complete():
    # block=1 with a deep trough: most steps keep no candidate and are skipped
    blocks = list(daily_blocks(rng(), 10, 300, 1.0, mean_rate=0.01, amplitude=1.0, block=1))
    assert all(len(b.keys) == 1 for b in blocks) and len(blocks) == 300


def test_daily_bad_arguments():
    with pytest.raises(ValueError, match="amplitude: expected a number in"):
        daily_blocks(rng(), 10, 10, 1.0, amplitude=1.5)
    with pytest.raises(ValueError, match="flash_objects: expected an integer >= 1, got 0"):
        daily_blocks(rng(), 10, 10, 1.0, flash_objects=0)


# ---------------------------------------------------------------------------
# readers


def write(tmp_path, text: str | bytes, name: str = "trace.csv"):
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def test_csv_reader_default_columns(tmp_path):
    path = write(tmp_path, "time,obj_id,obj_size\n1,a,100\n2,b,200\n\n3,a,100\n")
    assert list(read_csv_trace(path)) == [
        Request("a", 100, 1.0),
        Request("b", 200, 2.0),
        Request("a", 100, 3.0),
    ]


def test_csv_reader_options_like_libcachesim(tmp_path):
    path = write(tmp_path, "5|10|999\n6|11|-\n7|10|x\n", "t.txt")
    trace = read_csv_trace(
        path,
        has_header=False,
        delimiter="|",
        obj_id_col=2,
        obj_size_col=None,
        time_col=1,
        obj_id_is_num=True,
        default_size=8,
    )
    assert list(trace) == [Request(10, 8, 5.0), Request(11, 8, 6.0), Request(10, 8, 7.0)]


def test_csv_reader_columns_by_header_name_and_quotes(tmp_path):
    path = write(tmp_path, 'ts;size;key\n1.5;7;"a;b"\n2.5;0;c\n3;9;c\n')
    trace = list(
        read_csv_trace(path, delimiter=";", obj_id_col="key", obj_size_col="size", time_col="ts")
    )
    assert trace == [Request("a;b", 7, 1.5), Request("c", 9, 3.0)]  # size 0 skipped
    kept = list(
        read_csv_trace(
            path,
            delimiter=";",
            obj_id_col="key",
            obj_size_col="size",
            time_col=None,
            skip_zero_size=False,
        )
    )
    assert [r.size for r in kept] == [7, 0, 9] and kept[0].time == 0.0


def test_csv_reader_is_streaming(tmp_path):
    lines = "".join(f"{i},{i % 7},10\n" for i in range(10_000))
    path = write(tmp_path, "t,id,size\n" + lines + "bad line\n")
    trace = read_csv_trace(path)
    first = list(itertools.islice(trace, 5))
    assert [r.key for r in first] == ["0", "1", "2", "3", "4"]
    with pytest.raises(TraceFormatError) as info:
        list(trace)
    assert info.value.line == 10_002


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        ("1,a,100\n2,b,-5\n", 3, "object size -5 is negative"),
        ("1,a,100\n2,b\n", 3, "expected at least 3 fields, got 2"),
        ("1,a,1e3\n", 2, "object size '1e3' is not an integer"),
        ("x,a,1\n", 2, "time 'x' is not a number"),
        ("inf,a,1\n", 2, "time 'inf' is not finite"),
        ("1,,1\n", 2, "empty object id"),
        ('1,"a\n', 2, "malformed CSV line"),
        (b"1,a,1\n2,\xff\xfe,1\n", 3, "not UTF-8 text"),
    ],
)
def test_csv_malformed_lines_name_path_and_line(tmp_path, body, line, problem):
    header = b"time,id,size\n"
    path = write(tmp_path, header + (body.encode() if isinstance(body, str) else body))
    with pytest.raises(TraceFormatError) as info:
        list(read_csv_trace(path))
    err = info.value
    assert isinstance(err, DecodeError) and isinstance(err, ValueError)
    assert err.path == str(path) and err.line == line
    assert problem in err.problem
    assert str(err).startswith(f"{path}:{line}: ")


def test_csv_numeric_ids(tmp_path):
    path = write(tmp_path, "1,42,1\n2,4x,1\n")
    trace = read_csv_trace(path, has_header=False, obj_id_is_num=True)
    assert next(trace) == Request(42, 1, 1.0)
    with pytest.raises(TraceFormatError, match=r":2: object id '4x' is not an integer"):
        next(trace)


def test_csv_header_problems(tmp_path):
    path = write(tmp_path, "time,id,size\n1,a,1\n")
    with pytest.raises(TraceFormatError, match=r":1: obj_id_col: no column named 'key'"):
        list(read_csv_trace(path, obj_id_col="key"))
    assert list(read_csv_trace(write(tmp_path, "", "empty.csv"))) == []
    assert list(read_csv_trace(write(tmp_path, "time,id,size\n", "h.csv"))) == []
    with pytest.raises(TraceFormatError, match=r":1: malformed CSV header"):
        list(read_csv_trace(write(tmp_path, '"a\n', "q.csv")))


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"delimiter": ";;"}, ValueError, "delimiter: expected one character"),
        ({"delimiter": "\n"}, ValueError, "delimiter: expected one character"),
        ({"obj_id_col": 0}, ValueError, "obj_id_col: expected an integer >= 1, got 0"),
        ({"obj_id_col": None}, ValueError, "obj_id_col: expected an integer >= 1, got None"),
        ({"time_col": -1}, ValueError, "time_col: expected an integer >= 1, got -1"),
        (
            {"obj_size_col": "size", "has_header": False},
            ValueError,
            "obj_size_col: column name 'size' needs has_header=True",
        ),
        ({"default_size": -1}, ValueError, "default_size: expected an integer >= 0, got -1"),
    ],
)
def test_csv_bad_options_raise_at_the_call(tmp_path, kwargs, exc, message):
    with pytest.raises(exc) as info:
        read_csv_trace(tmp_path / "never-opened.csv", **kwargs)
    assert str(info.value).startswith(message)


def test_plain_trace(tmp_path):
    path = write(tmp_path, "10\n11\n\n  10  \nabc\n", "t.txt")
    assert list(read_plain_trace(path, size=4)) == [
        Request("10", 4, 0.0),
        Request("11", 4, 1.0),
        Request("10", 4, 2.0),
        Request("abc", 4, 3.0),
    ]
    numeric = read_plain_trace(path, obj_id_is_num=True)
    assert [next(numeric).key for _ in range(3)] == [10, 11, 10]
    with pytest.raises(TraceFormatError) as info:
        next(numeric)
    assert info.value.line == 5


def test_plain_trace_malformed(tmp_path):
    with pytest.raises(TraceFormatError, match=r"t.txt:2: expected one object id, got 'a b'"):
        list(read_plain_trace(write(tmp_path, "x\na b\n", "t.txt")))
    with pytest.raises(TraceFormatError, match=r"u.txt:1: not UTF-8"):
        list(read_plain_trace(write(tmp_path, b"\xc3\x28\n", "u.txt")))
    with pytest.raises(ValueError, match="size: expected an integer >= 0, got -2"):
        read_plain_trace(tmp_path / "t.txt", size=-2)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet="abcxyz019", min_size=1, max_size=6),
            st.integers(min_value=0, max_value=10**12),
            st.integers(min_value=0, max_value=10**6),
        ),
        max_size=30,
    ),
    st.sampled_from([",", ";", "\t", " "]),
)
def test_csv_roundtrip(tmp_path_factory, rows, delimiter):
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    body = "".join(f"{t}{delimiter}{k}{delimiter}{s}\n" for k, s, t in rows)
    path.write_text("time,id,size\n".replace(",", delimiter) + body)
    got = list(read_csv_trace(path, delimiter=delimiter, skip_zero_size=False))
    assert got == [Request(k, s, float(t)) for k, s, t in rows]


# ---------------------------------------------------------------------------
# readers of real public trace formats (issue 20)

from meshcore.cache._traces import (  # noqa: E402 - grouped with their tests
    TRACE_FORMATS,
    read_cache2k_trace,
    read_tencent_photo_trace,
    read_trace,
    read_webcachesim_trace,
)

REAL_TRACES = Path(__file__).resolve().parent.parent / "bench" / "traces"


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz", ".bz2"])
def test_cache2k_reader_reads_big_endian_ids_through_any_compression(tmp_path, suffix):
    import bz2
    import gzip
    import lzma

    raw = np.array([0, 1, 2**32 - 1, 1], dtype=">u4").tobytes()
    pack = {"": bytes, ".gz": gzip.compress, ".xz": lzma.compress, ".bz2": bz2.compress}[suffix]
    path = tmp_path / f"t.trace{suffix}"
    path.write_bytes(pack(raw))
    reqs = list(read_cache2k_trace(path, size=7))
    assert reqs == [
        Request(0, 7, 0.0),
        Request(1, 7, 1.0),
        Request(2**32 - 1, 7, 2.0),
        Request(1, 7, 3.0),
    ]
    assert list(read_trace(path, "cache2k")) == [
        Request(k, 1, r.time) for k, r in zip([0, 1, 2**32 - 1, 1], reqs, strict=True)
    ]


def test_cache2k_reader_refuses_a_truncated_record(tmp_path):
    path = tmp_path / "t.trace"
    path.write_bytes(b"\x00\x00\x00\x01\x00\x00")
    it = read_cache2k_trace(path)
    assert next(it) == Request(1, 1, 0.0)
    with pytest.raises(TraceFormatError, match=r"t.trace:2: truncated record"):
        next(it)
    with pytest.raises(ValueError, match="size"):
        read_cache2k_trace(path, size=-1)


def test_webcachesim_reader_keys_by_id_and_size(tmp_path):
    path = tmp_path / "w.tr"
    path.write_text("1 5 100\n\n2 5 100 7\n3 5 200\n")
    reqs = list(read_webcachesim_trace(path))
    assert [r.size for r in reqs] == [100, 100, 200]
    assert [r.time for r in reqs] == [1.0, 2.0, 3.0]
    assert reqs[0].key == reqs[1].key == (5 << 32) | 100
    assert reqs[2].key != reqs[0].key  # one id, two sizes: two objects


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("1 5\n", 1, "expected time, id, size"),
        ("1 5 10\nx 5 10\n", 2, "time 'x' is not a number"),
        ("1 a 10\n", 1, "object id 'a' is not an integer"),
        ("1 5 -3\n", 1, "object size -3 is negative"),
        ("1 5 10\n\xff\n", 2, "not UTF-8"),
    ],
)
def test_webcachesim_reader_names_file_and_line_of_a_bad_line(tmp_path, text, line, problem):
    path = tmp_path / "w.tr"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(TraceFormatError) as info:
        list(read_webcachesim_trace(path))
    assert info.value.line == line and problem in info.value.problem
    assert info.value.path == str(path)


def test_tencent_reader_keys_photos_by_format_and_size_class(tmp_path):
    path = tmp_path / "photos"
    path.write_text(
        "20160201164604 aa 5 m 12903 1 PHONE 1\n"
        "20160201164606 aa 0 m 15000 0 PC 2\n"
        "20160201164607 bb 3 a 100 0 PC 2\n"  # neither JPEG nor WebP: skipped
        "20160201164610 aa 5 m 12903 1 PHONE 1\n"
    )
    reqs = list(read_tencent_photo_trace(path))
    assert [r.key for r in reqs] == ["aa/5/m", "aa/0/m", "aa/5/m"]
    assert [r.size for r in reqs] == [12903, 15000, 12903]
    assert [r.time for r in reqs] == [0.0, 2.0, 6.0]
    path.write_text("2016-02-01 aa 5 m 1\n")
    with pytest.raises(TraceFormatError, match="timestamp '2016-02-01' is not YYYYMMDDhhmmss"):
        list(read_tencent_photo_trace(path))
    path.write_text("20160201164604 aa 5\n")
    with pytest.raises(TraceFormatError, match=":1: expected at least 5 fields"):
        list(read_tencent_photo_trace(path))


def test_read_trace_refuses_an_unknown_format_naming_the_file(tmp_path):
    path = tmp_path / "x.log"
    path.write_text("1\n")
    with pytest.raises(TraceFormatError) as info:
        read_trace(path, "squid")
    assert info.value.path == str(path) and info.value.line == 0
    assert "unknown trace format 'squid'" in str(info.value)
    assert "cache2k, csv, plain, tencent-photo, webcachesim" in str(info.value)
    assert sorted(TRACE_FORMATS) == ["cache2k", "csv", "plain", "tencent-photo", "webcachesim"]
    assert list(read_trace(path, "plain", obj_id_is_num=True)) == [Request(1, 1, 0.0)]


@pytest.mark.parametrize(
    ("name", "requests", "objects"), [("web07", 76_118, 20_484), ("web12", 95_607, 13_756)]
)
def test_committed_real_web_traces_read_whole(name, requests, objects):
    reqs = list(read_trace(REAL_TRACES / f"cache2k-{name}.trace.xz", "cache2k"))
    assert len(reqs) == requests
    assert len({r.key for r in reqs}) == objects
