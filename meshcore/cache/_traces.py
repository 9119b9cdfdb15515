"""Request traces for the cache simulator: synthetic generators and libCacheSim readers.

Theory of operation
-------------------
A trace is a stream of :class:`Request` tuples ``(key, size, time)``: one access
of object ``key`` of ``size`` bytes at ``time`` seconds. :func:`meshcore.cache.replay`
reads only ``req[0]`` and ``req[1]``, so plain ``(key, size)`` pairs are traces too.

The synthetic families are the workloads a community cache sees, each built on
an independent-reference Zipf model (Breslau et al., "Web caching and Zipf-like
distributions", INFOCOM 1999): the object of popularity rank ``r`` (1-based) is
requested with probability proportional to ``r ** -alpha``; measured web and video
workloads have ``alpha`` between 0.6 and 1.2.

* :func:`zipf_trace`: unit (or fixed) sizes, the classic hit-ratio workload.
* :func:`scan_trace`: Zipf with periodic one-time scans (a crawler, a backup, a
  new user's bulk download): every ``scan_every`` Zipf requests, ``scan_length``
  objects that are never requested again, the pattern that flushes LRU and that
  scan-resistant policies (ARC, LIRS, S3-FIFO, TinyLFU) are built for.
* :func:`lognormal_trace`: Zipf popularity, each object's size drawn once from a
  log-normal (sizes independent of popularity), from a few hundred bytes to
  hundreds of MB: pages and videos in one cache.
* :func:`daily_trace`: arrivals follow a daily sinusoidal cycle (a
  non-homogeneous Poisson process sampled by thinning, Lewis & Shedler 1979), and
  each day at ``flash_hour`` a batch of newly published objects takes a share of
  requests that decays exponentially: a flash crowd.

Every generator takes a seeded ``numpy.random.Generator`` (or a ``random.Random``,
from which a numpy generator is seeded) and never touches global random state,
so a trace is a pure function of its arguments. Generators draw ``block``
requests at a time with numpy and hold O(``n_objects`` + ``block``) memory, never
the whole trace; the ``*_blocks`` functions expose those blocks
(:class:`TraceBlock`, arrays of keys, sizes and times) for fast bulk consumers such
as the benchmark. Keys are ints; ranks are mapped to keys by a random
permutation so that key order says nothing about popularity.

The readers stream libCacheSim's text formats (https://github.com/1a1a11a/libCacheSim,
``traceReader``): CSV with configurable columns (1-based, like libCacheSim's
``time-col=``, ``obj-id-col=``, ``obj-size-col=`` options, or header names),
``has-header`` and ``delimiter``; and the plain-text trace of one object id per
line. Three more readers take the formats real public traces come in
(docs/cache_harness.md names the traces): cache2k's binary traces (one
big-endian 32-bit id per request), webcachesim/AdaptSize text traces
(``time id size``) and the Tencent Photo CDN log. Every reader opens
``.gz``, ``.xz`` and ``.bz2`` files transparently; :func:`read_trace` picks a
reader by format name. A malformed line raises
:class:`~meshcore.errors.TraceFormatError` naming the file and the 1-based line
number; negative sizes are malformed; an unknown format name raises it with
line 0 (the file as a whole).
"""

from __future__ import annotations

import bz2
import csv
import datetime
import gzip
import lzma
import math
import os
import random
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np

from ..errors import TraceFormatError

__all__ = [
    "TRACE_FORMATS",
    "Request",
    "TraceBlock",
    "ZipfSampler",
    "daily_blocks",
    "daily_trace",
    "lognormal_blocks",
    "lognormal_sizes",
    "lognormal_trace",
    "read_cache2k_trace",
    "read_csv_trace",
    "read_plain_trace",
    "read_tencent_photo_trace",
    "read_trace",
    "read_webcachesim_trace",
    "requests_from_blocks",
    "scan_blocks",
    "scan_trace",
    "zipf_blocks",
    "zipf_trace",
]

DAY = 86_400.0
_DEFAULT_BLOCK = 65_536


class Request(NamedTuple):
    """One access: object ``key`` (int, str or bytes) of ``size`` bytes at ``time`` seconds."""

    key: int | str | bytes
    size: int
    time: float = 0.0


class TraceBlock(NamedTuple):
    """A run of consecutive requests as three equal-length numpy arrays.

    ``keys`` (int64), ``sizes`` (int64, bytes), ``times`` (float64, seconds).
    """

    keys: np.ndarray
    sizes: np.ndarray
    times: np.ndarray


# ---------------------------------------------------------------------------
# argument checks (messages name the argument)


def _as_generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, random.Random):
        # Seed a numpy generator from the caller's Random: deterministic, and the
        # caller's Random advances, so two traces from one Random differ.
        return np.random.default_rng(rng.getrandbits(128))
    raise TypeError(
        f"rng: expected a numpy.random.Generator or random.Random, got {type(rng).__name__}"
    )


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name: str, value, minimum: float, maximum: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise ValueError(f"{name}: expected a number in [{minimum}, {maximum}], got {value!r}")
    value = float(value)
    if not (minimum <= value <= maximum):  # also rejects NaN
        raise ValueError(f"{name}: expected a number in [{minimum}, {maximum}], got {value!r}")
    return value


# ---------------------------------------------------------------------------
# Zipf sampling


class ZipfSampler:
    """Draws object keys with Zipf(``alpha``) popularity over ``n_objects`` objects.

    Inverse-CDF sampling: the normalised cumulative weights of ranks 1..N are kept
    (8 bytes per object) and each draw is a binary search of a uniform variate,
    so any ``alpha >= 0`` works (``numpy``'s own ``zipf`` needs ``alpha > 1`` and
    has no upper bound on N). Rank ``r`` maps to key ``first_key + perm[r - 1]``
    for a random permutation ``perm`` drawn at construction.
    Raises ValueError for ``n_objects < 1`` or a negative or non-finite ``alpha``.
    """

    def __init__(self, rng, n_objects: int, alpha: float, *, first_key: int = 0) -> None:
        self._rng = _as_generator(rng)
        self.n_objects = _check_int("n_objects", n_objects, 1)
        self.alpha = _check_float("alpha", alpha, 0.0, 100.0)
        self.first_key = _check_int("first_key", first_key, 0)
        weights = np.arange(1, self.n_objects + 1, dtype=np.float64) ** -self.alpha
        cdf = np.cumsum(weights)
        self._cdf = cdf / cdf[-1]
        self._keys = self._rng.permutation(self.n_objects).astype(np.int64) + self.first_key

    def ranks(self, n: int) -> np.ndarray:
        """``n`` popularity ranks, 0-based (0 is the most popular), as int64."""
        u = self._rng.random(n)
        ranks = np.searchsorted(self._cdf, u, side="right")
        # u < 1 always, but rounding in the normalised cdf may leave cdf[-1] < u.
        np.minimum(ranks, self.n_objects - 1, out=ranks)
        return ranks.astype(np.int64, copy=False)

    def sample(self, n: int) -> np.ndarray:
        """``n`` keys drawn independently, as an int64 array."""
        return self._keys[self.ranks(n)]

    def key_of_rank(self, rank: int) -> int:
        """The key of 0-based popularity ``rank``."""
        return int(self._keys[rank])


# ---------------------------------------------------------------------------
# block generators


def _request_times(start: int, n: int, interval: float) -> np.ndarray:
    return (np.arange(start, start + n, dtype=np.float64)) * interval


def zipf_blocks(
    rng,
    n_objects: int,
    n_requests: int,
    alpha: float,
    *,
    size: int = 1,
    interval: float = 1.0,
    block: int = _DEFAULT_BLOCK,
) -> Iterator[TraceBlock]:
    """Blocks of a Zipf(``alpha``) trace over ``n_objects`` objects of ``size`` bytes.

    Request ``i`` is at ``i * interval`` seconds. Raises ValueError on a bad argument.
    """
    sampler = ZipfSampler(rng, n_objects, alpha)
    n_requests = _check_int("n_requests", n_requests, 0)
    size = _check_int("size", size, 0)
    interval = _check_float("interval", interval, 0.0)
    block = _check_int("block", block, 1)
    return _sampled_blocks(
        sampler, n_requests, interval, block, lambda keys: np.full(len(keys), size, np.int64)
    )


def _sampled_blocks(sampler, n_requests, interval, block, sizes_of):
    """Blocks of ``n_requests`` keys drawn from ``sampler``; ``sizes_of(keys)`` sizes them."""
    done = 0
    while done < n_requests:
        n = min(block, n_requests - done)
        keys = sampler.sample(n)
        yield TraceBlock(keys, sizes_of(keys), _request_times(done, n, interval))
        done += n


def scan_blocks(
    rng,
    n_objects: int,
    n_requests: int,
    alpha: float,
    *,
    scan_every: int,
    scan_length: int,
    size: int = 1,
    interval: float = 1.0,
    block: int = _DEFAULT_BLOCK,
) -> Iterator[TraceBlock]:
    """Blocks of a Zipf trace interrupted by one-time scans.

    After every ``scan_every`` Zipf requests come ``scan_length`` requests for
    objects never seen before or after (keys ``n_objects``, ``n_objects + 1``, ...
    in order). ``n_requests`` counts scan requests too. Raises ValueError on a
    bad argument.
    """
    sampler = ZipfSampler(rng, n_objects, alpha)
    n_requests = _check_int("n_requests", n_requests, 0)
    scan_every = _check_int("scan_every", scan_every, 1)
    scan_length = _check_int("scan_length", scan_length, 0)
    size = _check_int("size", size, 0)
    interval = _check_float("interval", interval, 0.0)
    block = _check_int("block", block, 1)
    return _scan_blocks(sampler, n_requests, scan_every, scan_length, size, interval, block)


def _scan_blocks(sampler, n_requests, scan_every, scan_length, size, interval, block):
    period = scan_every + scan_length
    next_scan_key = sampler.n_objects
    done = 0
    while done < n_requests:
        n = min(block, n_requests - done)
        phase = np.arange(done, done + n, dtype=np.int64) % period
        is_scan = phase >= scan_every
        keys = np.empty(n, np.int64)
        n_scan = int(is_scan.sum())
        keys[~is_scan] = sampler.sample(n - n_scan)
        keys[is_scan] = np.arange(next_scan_key, next_scan_key + n_scan, dtype=np.int64)
        next_scan_key += n_scan
        yield TraceBlock(keys, np.full(n, size, np.int64), _request_times(done, n, interval))
        done += n


def lognormal_sizes(
    rng,
    n_objects: int,
    *,
    median_size: float,
    sigma: float,
    min_size: int = 1,
    max_size: int | None = None,
) -> np.ndarray:
    """``n_objects`` object sizes in bytes from a log-normal, clipped to [min_size, max_size]."""
    gen = _as_generator(rng)
    n_objects = _check_int("n_objects", n_objects, 1)
    median_size = _check_float("median_size", median_size, 1.0, 1e15)
    sigma = _check_float("sigma", sigma, 0.0, 10.0)
    min_size = _check_int("min_size", min_size, 1)
    if max_size is not None:
        max_size = _check_int("max_size", max_size, min_size)
    raw = gen.lognormal(mean=math.log(median_size), sigma=sigma, size=n_objects)
    sizes = np.rint(raw)
    np.clip(sizes, min_size, max_size if max_size is not None else 2.0**62, out=sizes)
    return sizes.astype(np.int64)


def lognormal_blocks(
    rng,
    n_objects: int,
    n_requests: int,
    alpha: float,
    *,
    median_size: float = 32_768,
    sigma: float = 2.0,
    min_size: int = 1,
    max_size: int | None = None,
    interval: float = 1.0,
    block: int = _DEFAULT_BLOCK,
) -> Iterator[TraceBlock]:
    """Blocks of a Zipf trace whose objects have log-normal sizes (bytes).

    Each object's size is drawn once (median ``median_size``, shape ``sigma``,
    clipped to ``[min_size, max_size]``) and is the same at every request.
    Raises ValueError on a bad argument.
    """
    gen = _as_generator(rng)
    sizes = lognormal_sizes(
        gen, n_objects, median_size=median_size, sigma=sigma, min_size=min_size, max_size=max_size
    )
    sampler = ZipfSampler(gen, n_objects, alpha)
    n_requests = _check_int("n_requests", n_requests, 0)
    interval = _check_float("interval", interval, 0.0)
    block = _check_int("block", block, 1)
    return _sampled_blocks(sampler, n_requests, interval, block, lambda keys: sizes[keys])


def daily_blocks(
    rng,
    n_objects: int,
    n_requests: int,
    alpha: float,
    *,
    mean_rate: float = 10.0,
    amplitude: float = 0.8,
    peak_hour: float = 20.0,
    flash_hour: float = 18.0,
    flash_objects: int = 100,
    flash_share: float = 0.5,
    flash_decay: float = 3_600.0,
    size: int = 1,
    block: int = _DEFAULT_BLOCK,
) -> Iterator[TraceBlock]:
    """Blocks of a trace with a daily cycle and a daily flash crowd of new content.

    Arrivals: Poisson with rate ``mean_rate * (1 + amplitude * cos(2π (t/DAY -
    peak_hour/24)))`` requests per second (busiest at ``peak_hour``), sampled by
    thinning; times in seconds from midnight of day 0. Catalogue: ``n_objects``
    long-lived objects with Zipf(``alpha``) popularity. Each day at ``flash_hour``,
    ``flash_objects`` new objects are published (fresh keys from ``n_objects`` up);
    a request at ``age`` seconds after the latest publication goes to that batch
    with probability ``flash_share * exp(-age / flash_decay)``, Zipf-distributed
    within the batch. Raises ValueError on a bad argument.
    """
    gen = _as_generator(rng)
    catalogue = ZipfSampler(gen, n_objects, alpha)
    flash = ZipfSampler(gen, _check_int("flash_objects", flash_objects, 1), alpha)
    params = (
        _check_int("n_requests", n_requests, 0),
        _check_float("mean_rate", mean_rate, 1e-9, 1e12),
        _check_float("amplitude", amplitude, 0.0, 1.0),
        _check_float("peak_hour", peak_hour, 0.0, 24.0),
        _check_float("flash_hour", flash_hour, 0.0, 24.0),
        _check_float("flash_share", flash_share, 0.0, 1.0),
        _check_float("flash_decay", flash_decay, 1e-9),
        _check_int("size", size, 0),
        _check_int("block", block, 1),
    )
    return _daily_blocks(gen, catalogue, flash, *params)


def _daily_blocks(
    gen,
    catalogue,
    flash,
    n_requests,
    mean_rate,
    amplitude,
    peak_hour,
    flash_hour,
    flash_share,
    flash_decay,
    size,
    block,
):
    rate_max = mean_rate * (1.0 + amplitude)
    flash_offset = flash_hour * 3600.0
    n_flash = flash.n_objects
    t = 0.0
    done = 0
    while done < n_requests:
        # Thinning: candidates at the peak rate, each kept with rate(t)/rate_max.
        gaps = gen.exponential(1.0 / rate_max, size=block)
        cand = t + np.cumsum(gaps)
        t = float(cand[-1])
        rate = mean_rate * (1.0 + amplitude * np.cos(2 * np.pi * (cand / DAY - peak_hour / 24.0)))
        times = cand[gen.random(block) * rate_max < rate]
        times = times[: n_requests - done]
        n = len(times)
        if n == 0:
            continue
        keys = catalogue.sample(n)
        # Batch d is published at d*DAY + flash_offset; its keys follow the catalogue's.
        batch = np.floor((times - flash_offset) / DAY)
        age = times - (batch * DAY + flash_offset)
        to_flash = (batch >= 0) & (gen.random(n) < flash_share * np.exp(-age / flash_decay))
        n_to = int(to_flash.sum())
        if n_to:
            keys[to_flash] = (
                catalogue.first_key
                + catalogue.n_objects
                + batch[to_flash].astype(np.int64) * n_flash
                + flash.sample(n_to)
            )
        yield TraceBlock(keys, np.full(n, size, np.int64), times)
        done += n


# ---------------------------------------------------------------------------
# per-request views


def requests_from_blocks(blocks: Iterable[TraceBlock]) -> Iterator[Request]:
    """Flatten blocks into one :class:`Request` (Python ints and floats) per access."""
    for keys, sizes, times in blocks:
        yield from map(Request, keys.tolist(), sizes.tolist(), times.tolist())


def zipf_trace(rng, n_objects: int, n_requests: int, alpha: float, **options) -> Iterator[Request]:
    """Requests of :func:`zipf_blocks` (same arguments), one at a time."""
    return requests_from_blocks(zipf_blocks(rng, n_objects, n_requests, alpha, **options))


def scan_trace(rng, n_objects: int, n_requests: int, alpha: float, **options) -> Iterator[Request]:
    """Requests of :func:`scan_blocks` (same arguments), one at a time."""
    return requests_from_blocks(scan_blocks(rng, n_objects, n_requests, alpha, **options))


def lognormal_trace(
    rng, n_objects: int, n_requests: int, alpha: float, **options
) -> Iterator[Request]:
    """Requests of :func:`lognormal_blocks` (same arguments), one at a time."""
    return requests_from_blocks(lognormal_blocks(rng, n_objects, n_requests, alpha, **options))


def daily_trace(rng, n_objects: int, n_requests: int, alpha: float, **options) -> Iterator[Request]:
    """Requests of :func:`daily_blocks` (same arguments), one at a time."""
    return requests_from_blocks(daily_blocks(rng, n_objects, n_requests, alpha, **options))


# ---------------------------------------------------------------------------
# libCacheSim trace readers


_OPENERS = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}


def _open_binary(path: str):
    """``path`` opened for binary reading, decompressed by its suffix (.gz, .xz, .bz2)."""
    opener = _OPENERS.get(os.path.splitext(path)[1].lower(), open)
    return opener(path, "rb")


def _decoded_lines(path: str, fh, counter: list[int]) -> Iterator[str]:
    for raw in fh:
        counter[0] += 1
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TraceFormatError(path, counter[0], f"not UTF-8 text ({exc.reason})") from None


def _parse_key(path: str, line: int, text: str, numeric: bool):
    if not text:
        raise TraceFormatError(path, line, "empty object id")
    if not numeric:
        return text
    try:
        return int(text)
    except ValueError:
        raise TraceFormatError(path, line, f"object id {text!r} is not an integer") from None


def _parse_size(path: str, line: int, text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        raise TraceFormatError(path, line, f"object size {text!r} is not an integer") from None
    if size < 0:
        raise TraceFormatError(path, line, f"object size {size} is negative")
    return size


def _parse_time(path: str, line: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceFormatError(path, line, f"time {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceFormatError(path, line, f"time {text!r} is not finite")
    return value


def _resolve_column(name: str, col, header: list[str] | None, path: str) -> int | None:
    """0-based index of a column given 1-based ``col`` or a header name (None stays None)."""
    if col is None:
        return None
    if isinstance(col, str):  # read_csv_trace checked that a header exists
        try:
            return header.index(col)
        except ValueError:
            raise TraceFormatError(
                path, 1, f"{name}: no column named {col!r} in header {header!r}"
            ) from None
    return _check_int(name, col, 1) - 1


def read_csv_trace(
    path: str | os.PathLike,
    *,
    obj_id_col: int | str = 2,
    obj_size_col: int | str | None = 3,
    time_col: int | str | None = 1,
    has_header: bool = True,
    delimiter: str = ",",
    obj_id_is_num: bool = False,
    default_size: int = 1,
    skip_zero_size: bool = True,
) -> Iterator[Request]:
    """Stream a libCacheSim-style CSV trace as :class:`Request` tuples.

    Columns are 1-based numbers (libCacheSim's ``obj-id-col=2`` and friends) or,
    with ``has_header``, names from the header row; ``time_col`` and
    ``obj_size_col`` may be None (time 0.0, size ``default_size``). Keys are the
    id text, or ints with ``obj_id_is_num``. Requests of size 0 are skipped when
    ``skip_zero_size`` (libCacheSim's ``ignore_size_zero_req``). Blank lines are
    skipped. Raises ValueError for bad options (checked at the call), and
    :class:`~meshcore.errors.TraceFormatError` (path and 1-based line number)
    while iterating over a malformed line: too few fields, a non-integer or
    negative size, a bad time, a non-integer id with ``obj_id_is_num``.
    """
    path = os.fspath(path)
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
        raise ValueError(
            f"delimiter: expected one character (not a quote or newline), got {delimiter!r}"
        )
    default_size = _check_int("default_size", default_size, 0)
    for name, col in (
        ("obj_id_col", obj_id_col),
        ("obj_size_col", obj_size_col),
        ("time_col", time_col),
    ):
        if isinstance(col, str):
            if not has_header:
                raise ValueError(f"{name}: column name {col!r} needs has_header=True")
        elif col is not None or name == "obj_id_col":
            _check_int(name, col, 1)
    return _read_csv(
        path,
        obj_id_col,
        obj_size_col,
        time_col,
        has_header,
        delimiter,
        obj_id_is_num,
        default_size,
        skip_zero_size,
    )


def _read_csv(
    path, id_col, size_col, time_col, has_header, delimiter, numeric, default_size, skip_zero
):
    counter = [0]
    with _open_binary(path) as fh:
        reader = csv.reader(_decoded_lines(path, fh, counter), delimiter=delimiter, strict=True)
        header = None
        if has_header:
            try:
                header = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise TraceFormatError(path, counter[0], f"malformed CSV header: {exc}") from None
            header = [h.strip() for h in header]
        i_id = _resolve_column("obj_id_col", id_col, header, path)
        i_size = _resolve_column("obj_size_col", size_col, header, path)
        i_time = _resolve_column("time_col", time_col, header, path)
        need = 1 + max(i for i in (i_id, i_size, i_time) if i is not None)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise TraceFormatError(path, counter[0], f"malformed CSV line: {exc}") from None
            line = counter[0]
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) < need:
                raise TraceFormatError(
                    path, line, f"expected at least {need} fields, got {len(row)}"
                )
            key = _parse_key(path, line, row[i_id].strip(), numeric)
            size = default_size if i_size is None else _parse_size(path, line, row[i_size].strip())
            if size == 0 and skip_zero:
                continue
            t = 0.0 if i_time is None else _parse_time(path, line, row[i_time].strip())
            yield Request(key, size, t)


def read_plain_trace(
    path: str | os.PathLike,
    *,
    size: int = 1,
    obj_id_is_num: bool = False,
) -> Iterator[Request]:
    """Stream libCacheSim's plain-text trace (one object id per line) as requests.

    Every request has ``size`` bytes and time equal to its 0-based index (virtual
    time). Blank lines are skipped. Raises ValueError for a bad ``size``, and
    :class:`~meshcore.errors.TraceFormatError` while iterating over a line that
    holds more than one field, is not UTF-8, or (with ``obj_id_is_num``) is not an
    integer.
    """
    path = os.fspath(path)
    size = _check_int("size", size, 0)
    return _read_plain(path, size, obj_id_is_num)


def _read_plain(path, size, numeric):
    counter = [0]
    index = 0
    with _open_binary(path) as fh:
        for text in _decoded_lines(path, fh, counter):
            text = text.strip()
            if not text:
                continue
            if len(text.split()) != 1:
                raise TraceFormatError(path, counter[0], f"expected one object id, got {text!r}")
            yield Request(_parse_key(path, counter[0], text, numeric), size, float(index))
            index += 1


def read_cache2k_trace(path: str | os.PathLike, *, size: int = 1) -> Iterator[Request]:
    """Stream a cache2k binary trace: one big-endian unsigned 32-bit object id per request.

    The format of the traces published with cache2k-benchmark (``web07``,
    ``web12``, ``orm-busy``, ...). Every request has ``size`` bytes and time
    equal to its 0-based index. Raises ValueError for a bad ``size``, and
    :class:`~meshcore.errors.TraceFormatError` while iterating when the file
    ends inside a record (the "line" is the 1-based record number).
    """
    path = os.fspath(path)
    size = _check_int("size", size, 0)
    return _read_cache2k(path, size)


def _read_cache2k(path, size):
    index = 0
    with _open_binary(path) as fh:
        while True:
            block = fh.read(1 << 16)
            if not block:
                return
            truncated = False
            while len(block) % 4 and not truncated:
                more = fh.read(4 - len(block) % 4)
                truncated = not more
                block += more
            whole = len(block) - len(block) % 4
            for key in np.frombuffer(block[:whole], dtype=">u4").tolist():
                yield Request(key, size, float(index))
                index += 1
            if truncated:
                raise TraceFormatError(path, index + 1, "truncated record (expected 4 bytes)")


def read_webcachesim_trace(path: str | os.PathLike) -> Iterator[Request]:
    """Stream a webcachesim/AdaptSize text trace: ``time id size [extra ...]`` per line.

    Fields are separated by blanks; ``id`` and ``size`` are integers, ``time``
    a number. The key is the int ``id * 2**32 + size``: webcachesim treats one
    id seen with two sizes as two objects, and so does this reader. Blank lines are
    skipped. Raises :class:`~meshcore.errors.TraceFormatError` while iterating
    over a malformed line.
    """
    return _read_webcachesim(os.fspath(path))


def _blank_separated(path: str, need: int, what: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-blank line, with at least ``need`` fields."""
    counter = [0]
    with _open_binary(path) as fh:
        for text in _decoded_lines(path, fh, counter):
            fields = text.split()
            if not fields:
                continue
            if len(fields) < need:
                raise TraceFormatError(
                    path, counter[0], f"expected {what}, got {len(fields)} field(s)"
                )
            yield counter[0], fields


def _read_webcachesim(path):
    for line, fields in _blank_separated(path, 3, "time, id, size"):
        t = _parse_time(path, line, fields[0])
        key = _parse_key(path, line, fields[1], True)
        size = _parse_size(path, line, fields[2])
        # One int per (id, size) pair: exact as a dict key, hashed mod 2**64.
        yield Request((key << 32) | size, size, t)


#: Image formats the Tencent Photo CDN log names (the cache stores both).
_TENCENT_FORMATS = frozenset({"0", "5"})


def read_tencent_photo_trace(path: str | os.PathLike) -> Iterator[Request]:
    """Stream the Tencent Photo CDN log (Zhou et al., ICS 2018; SNIA IOTTA).

    Each line is ``timestamp photo_id format size_class bytes ...`` separated by
    blanks; the timestamp reads ``YYYYMMDDhhmmss`` (UTC) and is returned as
    seconds since the trace's first request. A stored object is one photo in
    one format and one size class, so the key is ``"photo_id/format/size_class"``
    and the size the returned bytes. Lines of other formats than JPEG (0) and
    WebP (5) are skipped, as the photo cache does not hold them. Raises
    :class:`~meshcore.errors.TraceFormatError` while iterating over a malformed line.
    """
    return _read_tencent(os.fspath(path))


def _tencent_seconds(path: str, line: int, text: str) -> float:
    try:
        stamp = datetime.datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        raise TraceFormatError(path, line, f"timestamp {text!r} is not YYYYMMDDhhmmss") from None
    return stamp.replace(tzinfo=datetime.UTC).timestamp()


def _read_tencent(path):
    start = None
    for line, fields in _blank_separated(path, 5, "at least 5 fields"):
        t = _tencent_seconds(path, line, fields[0])
        if start is None:
            start = t
        if fields[2] not in _TENCENT_FORMATS:
            continue
        size = _parse_size(path, line, fields[4])
        yield Request(f"{fields[1]}/{fields[2]}/{fields[3]}", size, t - start)


#: Format name -> reader, for :func:`read_trace`.
TRACE_FORMATS = {
    "cache2k": read_cache2k_trace,
    "csv": read_csv_trace,
    "plain": read_plain_trace,
    "tencent-photo": read_tencent_photo_trace,
    "webcachesim": read_webcachesim_trace,
}


def read_trace(path: str | os.PathLike, format: str, **options) -> Iterator[Request]:
    """Stream the trace at ``path`` with the reader named ``format`` (see ``TRACE_FORMATS``).

    ``options`` go to that reader. An unknown ``format`` raises
    :class:`~meshcore.errors.TraceFormatError` with line 0 (the file as a
    whole) and the known names; the reader's own errors otherwise.
    """
    path = os.fspath(path)
    reader = TRACE_FORMATS.get(format) if isinstance(format, str) else None
    if reader is None:
        known = ", ".join(sorted(TRACE_FORMATS))
        raise TraceFormatError(path, 0, f"unknown trace format {format!r}; known formats: {known}")
    return reader(path, **options)
