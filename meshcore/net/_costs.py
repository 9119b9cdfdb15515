"""Metric to cost conversions: every routing daemon's metric on one ETX-like scale.

Theory of operation
-------------------
meshcore routes on one cost scale, *ETX-like*: the expected number of
transmissions of a frame over a link (Couto et al., "A high-throughput path
metric for multi-hop wireless routing", MobiCom 2003), so ``1.0`` is a
perfect link, ``2.0`` a link that needs two tries on average, and ``inf`` a
broken link. Path costs add up. Each daemon measures something close to it:

================== ============================================ =====================
metric             conversion                                   broken
================== ============================================ =====================
Babel              ``metric / 256`` (256 = perfect wireless      ``>= 65535``
                   ETX link, RFC 8966 A.2.2; 96 wired -> 0.375)
batman-adv IV TQ   ``255 / TQ`` (TQ in 0..255, 255 perfect)     ``TQ == 0``
meshviewer tq      ``1 / tq`` (tq = TQ/255 in [0, 1])           ``tq == 0``
OLSRv1 ETX         ETX as is; jsoninfo fixed point / 1024       ``>= 4096`` (ETX),
                                                                ``"INFINITE"``
olsrd2 DAT         ``c * 54 / 2048`` (see below)                ``>= 0xFFFFFF``
batman-adv V       ``54 / throughput_Mbit``                     ``throughput == 0``
bmx6               ``100 / rate`` (rate in %, 100 perfect)       ``rate == 0``
802.11s airtime    ``metric / 152`` (see below)                 ``metric == 0`` or
                                                                ``>= 0xFFFFFFFF``
BGP, unknown       ``1.0`` per hop                              never
================== ============================================ =====================

Rate-based metrics (olsrd2's Directional Airtime metric, batman-adv V
throughput, 802.11s airtime) do not count transmissions but the time a frame
takes. They are mapped to *expected transmission time relative to a
loss-free 54 Mbit/s link* (the top rate of 802.11a/g, the slowest rate of a
healthy mesh link), so ``1.0`` is a perfect 54 Mbit/s link, a faster link
costs less than ``1.0`` and a slower or lossy one more, the way ETT (Draves et
al., MobiCom 2004) extends ETX. The constants:

* olsrd2 ``ff_dat_metric``: OONF prints a link cost ``c`` as ``2048/c``
  Mbit/s in ``cost_text`` (``c = 11`` is "186.181Mbit/s"), so the time
  relative to 54 Mbit/s is ``54 / (2048 / c) = c * 54 / 2048``. OONF's
  infinite metric is ``0xFFFFFF`` (RFC 7181 MAXIMUM_METRIC).
* 802.11s airtime (``iw mpath dump`` column METRIC): Linux mac80211
  (``net/mac80211/mesh_hwmp.c``, ``airtime_link_metric_get``) computes
  ``(1 + 8192 * 10 / rate_100kbps) * 1 / (1 - err)`` in units of about
  1 µs; a loss-free 54 Mbit/s link gives 152, hence ``metric / 152``.

Every function raises ValueError naming the value when it cannot be a metric
of that kind (negative, NaN, out of range); importers turn that into a
:class:`meshcore.errors.TopologyFormatError` with the file position.
"""

from __future__ import annotations

import math

__all__ = [
    "AIRTIME_PERFECT_54M",
    "BABEL_INFINITY",
    "OLSR2_DAT_RATE",
    "OLSR2_INFINITY",
    "OLSR_BROKEN_ETX",
    "OLSR_FIXED_POINT",
    "REFERENCE_RATE_MBIT",
    "airtime_cost",
    "babel_cost",
    "batman_tq_cost",
    "bmx6_rate_cost",
    "hop_cost",
    "olsr1_cost",
    "olsr1_etx_cost",
    "olsr2_dat_cost",
    "ratio_cost",
    "throughput_cost",
]

INF = math.inf

#: Babel's infinite metric (RFC 8966 section 2.1).
BABEL_INFINITY = 0xFFFF
#: olsrd's fixed-point ETX scale in jsoninfo (``tcEdgeCost``, ``linkCost``): 1024 = ETX 1.0.
OLSR_FIXED_POINT = 1024
#: olsrd's "broken link" ETX (``LINK_COST_BROKEN`` 4194304 / 1024).
OLSR_BROKEN_ETX = 4096.0
#: Rate that costs 1.0 for rate-based metrics, in Mbit/s.
REFERENCE_RATE_MBIT = 54.0
#: mac80211 airtime metric of a loss-free 54 Mbit/s link.
AIRTIME_PERFECT_54M = 152.0
#: OONF (olsrd2) infinite metric, RFC 7181 MAXIMUM_METRIC.
OLSR2_INFINITY = 0xFFFFFF
#: olsrd2 DAT: a cost ``c`` is a rate of ``OLSR2_DAT_RATE / c`` Mbit/s.
OLSR2_DAT_RATE = 2048.0


def _number(value: object, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a number, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{what}: expected a number, got {value!r}") from None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise ValueError(f"{what}: expected a number, got {type(value).__name__}")
    if math.isnan(number):
        raise ValueError(f"{what}: expected a number, got NaN")
    return number


def babel_cost(metric: object) -> float:
    """Babel metric (0..65535) to cost: ``metric / 256``; 65535 and above is broken."""
    m = _number(metric, "babel metric")
    if m < 0:
        raise ValueError(f"babel metric: expected a value >= 0, got {metric!r}")
    if m >= BABEL_INFINITY:
        return INF
    return m / 256.0


def batman_tq_cost(tq: object) -> float:
    """batman-adv IV TQ (0..255, 255 perfect) to cost ``255 / TQ``; TQ 0 is broken."""
    q = _number(tq, "batman TQ")
    if not 0 <= q <= 255:
        raise ValueError(f"batman TQ: expected a value in 0..255, got {tq!r}")
    if q == 0:
        return INF
    return 255.0 / q


def ratio_cost(quality: object) -> float:
    """A delivery ratio in [0, 1] (meshviewer tq, hopglass quality) to ``1 / q``; 0 is broken."""
    q = _number(quality, "link quality")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"link quality: expected a value in [0, 1], got {quality!r}")
    if q == 0.0:
        return INF
    return 1.0 / q


def olsr1_etx_cost(etx: object) -> float:
    """OLSRv1 ETX (a float, or ``"INFINITE"``) to cost: as is; >= 4096 is broken.

    ETX below 1 is kept (AREDN lowers some link costs on purpose); it must be >= 0.
    """
    if isinstance(etx, str) and etx.strip().lower() in ("infinite", "inf", "infinity"):
        return INF
    e = _number(etx, "OLSR ETX")
    if e < 0:
        raise ValueError(f"OLSR ETX: expected a value >= 0, got {etx!r}")
    if e >= OLSR_BROKEN_ETX:
        return INF
    return e


def olsr1_cost(value: object, lq: object = None, nlq: object = None) -> float:
    """An olsrd jsoninfo ``linkCost``/``tcEdgeCost`` to cost.

    olsrd 0.6 writes ETX x 1024 as an integer (1024 = perfect, 4194304 =
    broken); olsrd 0.9 writes ETX as a float (``4.046875``). When the
    record's LQ and NLQ are known the interpretation closest to
    ``1 / (LQ * NLQ)`` is chosen; otherwise an integral value >= 1024 is read
    as fixed point and anything else as ETX.
    """
    if isinstance(value, str) and value.strip().lower() in ("infinite", "inf", "infinity"):
        return INF
    v = _number(value, "OLSR link cost")
    if v < 0:
        raise ValueError(f"OLSR link cost: expected a value >= 0, got {value!r}")
    if v >= OLSR_BROKEN_ETX * OLSR_FIXED_POINT:
        return INF
    fixed = v / OLSR_FIXED_POINT
    etx: float | None = None
    try:
        if lq is not None and nlq is not None:
            product = _number(lq, "LQ") * _number(nlq, "NLQ")
            if product > 0:
                etx = 1.0 / product
    except ValueError:
        etx = None
    if etx is not None and v > 0 and fixed > 0:
        chosen = fixed if abs(math.log(fixed / etx)) < abs(math.log(v / etx)) else v
    else:
        chosen = fixed if (v >= OLSR_FIXED_POINT and v == int(v)) else v
    return INF if chosen >= OLSR_BROKEN_ETX else chosen


def olsr2_dat_cost(metric: object) -> float:
    """olsrd2 ``ff_dat_metric`` to cost ``c * 54 / 2048``; ``0xFFFFFF`` and above is broken."""
    c = _number(metric, "olsrd2 metric")
    if c < 0:
        raise ValueError(f"olsrd2 metric: expected a value >= 0, got {metric!r}")
    if c >= OLSR2_INFINITY:
        return INF
    return c * REFERENCE_RATE_MBIT / OLSR2_DAT_RATE


def throughput_cost(mbit: object) -> float:
    """A throughput in Mbit/s (batman-adv V) to cost ``54 / throughput``; 0 is broken."""
    t = _number(mbit, "throughput")
    if t < 0:
        raise ValueError(f"throughput: expected a value >= 0, got {mbit!r}")
    if t == 0:
        return INF
    return REFERENCE_RATE_MBIT / t


def bmx6_rate_cost(rate: object) -> float:
    """A bmx6 link rate in percent (0..100, 100 perfect) to cost ``100 / rate``; 0 is broken."""
    r = _number(rate, "bmx6 rate")
    if not 0 <= r <= 100:
        raise ValueError(f"bmx6 rate: expected a value in 0..100, got {rate!r}")
    if r == 0:
        return INF
    return 100.0 / r


def airtime_cost(metric: object) -> float:
    """An 802.11s airtime metric (``iw mpath dump``) to cost ``metric / 152``.

    0 (no measurement, the path is not active) and 0xFFFFFFFF are broken.
    """
    m = _number(metric, "airtime metric")
    if m < 0:
        raise ValueError(f"airtime metric: expected a value >= 0, got {metric!r}")
    if m == 0 or m >= 0xFFFFFFFF:
        return INF
    return m / AIRTIME_PERFECT_54M


def hop_cost(_value: object = None) -> float:
    """BGP and unknown metrics: every link costs 1.0 (hop count)."""
    return 1.0
