"""HTTP freshness (RFC 9111): lifetimes, age, storability, validators."""

from __future__ import annotations

import pytest

from meshcore.cache import Freshness, evaluate, parse_cache_control, parse_http_date, refresh

T0 = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
DATE = "Tue, 14 Nov 2023 22:13:20 GMT"


def test_parse_cache_control():
    cc = parse_cache_control('Max-Age=60, no-cache="Set-Cookie, X", private, max-age=5,, public')
    assert cc == {"max-age": "60", "no-cache": "Set-Cookie, X", "private": None, "public": None}
    assert parse_cache_control(None) == {}
    assert parse_cache_control("") == {}
    assert parse_cache_control("=5, s-maxage=10") == {"s-maxage": "10"}


def test_parse_http_date_formats():
    assert parse_http_date(DATE) == T0
    assert parse_http_date("Tuesday, 14-Nov-23 22:13:20 GMT") == T0
    assert parse_http_date("Tue Nov 14 22:13:20 2023") == T0
    assert parse_http_date("0") is None
    assert parse_http_date("") is None
    assert parse_http_date(None) is None


def test_max_age_wins_over_expires_and_age_counts():
    f = evaluate(
        {
            "Date": DATE,
            "Cache-Control": "max-age=100",
            "Expires": "Tue, 14 Nov 2023 23:13:20 GMT",
            "Age": "30",
        },
        now=T0 + 2,
        request_time=T0,
    )
    assert f.storable
    assert f.lifetime == 100
    # corrected initial age = max(apparent 2, Age 30 + delay 2)
    assert f.initial_age == 32
    assert f.current_age(now=T0 + 12) == 42
    assert f.is_fresh(now=T0 + 69)
    assert not f.is_fresh(now=T0 + 70)
    assert f.expires_at == T0 + 2 - 32 + 100


def test_s_maxage_for_shared_caches_only():
    h = {"Date": DATE, "Cache-Control": "max-age=10, s-maxage=300"}
    assert evaluate(h, now=T0).lifetime == 300
    assert evaluate(h, now=T0).must_revalidate  # s-maxage implies proxy-revalidate
    private = evaluate(h, now=T0, shared=False)
    assert private.lifetime == 10
    assert not private.must_revalidate


def test_expires_relative_to_date_and_invalid_expires_is_stale():
    f = evaluate({"Date": DATE, "Expires": "Tue, 14 Nov 2023 22:23:20 GMT"}, now=T0)
    assert f.lifetime == 600
    assert f.is_fresh(now=T0 + 599)
    bad = evaluate({"Date": DATE, "Expires": "0"}, now=T0)
    assert bad.lifetime == 0
    assert not bad.is_fresh(now=T0)


def test_heuristic_ten_percent_of_last_modified_capped():
    f = evaluate({"Date": DATE, "Last-Modified": "Tue, 14 Nov 2023 12:13:20 GMT"}, now=T0)
    assert f.heuristic
    assert f.lifetime == 3600  # 10 % of 10 hours
    old = evaluate({"Date": DATE, "Last-Modified": "Sun, 01 Jan 2023 00:00:00 GMT"}, now=T0)
    assert old.lifetime == 86400
    capped = evaluate(
        {"Date": DATE, "Last-Modified": "Tue, 14 Nov 2023 12:13:20 GMT"},
        now=T0,
        heuristic_fraction=0.2,
        heuristic_cap=1000,
    )
    assert capped.lifetime == 1000


def test_no_explicit_lifetime_means_stale():
    f = evaluate({"Date": DATE}, now=T0)
    assert f.lifetime == 0 and not f.heuristic
    assert not f.is_fresh(now=T0)
    assert f.may_serve_stale()
    assert not f.can_revalidate()
    assert f.revalidation_headers() == {}


def test_no_store_private_and_no_cache():
    assert not evaluate({"Cache-Control": "no-store, max-age=60"}, now=T0).storable
    assert not evaluate({"cache-control": "private, max-age=60"}, now=T0).storable
    assert evaluate({"cache-control": "private, max-age=60"}, now=T0, shared=False).storable
    req = evaluate(
        {"Cache-Control": "max-age=60"}, now=T0, request_headers=[("Cache-Control", "no-store")]
    )
    assert not req.storable
    assert not req.is_fresh(now=T0)
    nc = evaluate({"Cache-Control": "no-cache, max-age=60"}, now=T0)
    assert nc.storable and nc.no_cache
    assert not nc.is_fresh(now=T0)
    assert not nc.may_serve_stale()


def test_must_revalidate_forbids_stale_serving():
    f = evaluate({"Cache-Control": "max-age=1, must-revalidate"}, now=T0)
    assert f.must_revalidate and not f.may_serve_stale()
    p = evaluate({"Cache-Control": "max-age=1, proxy-revalidate"}, now=T0)
    assert p.must_revalidate


def test_validators_are_kept_for_revalidation():
    f = evaluate(
        [
            ("ETag", '"v1"'),
            ("Last-Modified", "Tue, 14 Nov 2023 12:13:20 GMT"),
            ("Cache-Control", "max-age=10"),
        ],
        now=T0,
    )
    assert f.etag == '"v1"'
    assert f.can_revalidate()
    assert f.revalidation_headers() == {
        "If-None-Match": '"v1"',
        "If-Modified-Since": "Tue, 14 Nov 2023 12:13:20 GMT",
    }


def test_refresh_after_304_merges_headers():
    stored = {"ETag": '"v1"', "Cache-Control": "max-age=10", "Date": DATE}
    merged, f = refresh(
        stored,
        {"Cache-Control": "max-age=500", "Date": "Tue, 14 Nov 2023 23:13:20 GMT"},
        now=T0 + 3600,
    )
    assert merged["etag"] == '"v1"'
    assert f.etag == '"v1"'
    assert f.lifetime == 500
    assert f.is_fresh(now=T0 + 3600 + 499)
    assert isinstance(f, Freshness)


def test_repeated_fields_combine():
    f = evaluate([("Cache-Control", "max-age=60"), ("Cache-Control", "no-store")], now=T0)
    assert not f.storable
    assert f.lifetime == 60


def test_bad_arguments():
    with pytest.raises(ValueError, match="request_time: expected a time <= now"):
        evaluate({}, now=T0, request_time=T0 + 1)
    with pytest.raises(ValueError, match="heuristic_fraction/heuristic_cap"):
        evaluate({}, now=T0, heuristic_fraction=-1)
    # A malformed max-age is ignored (falls through to Expires / nothing).
    assert evaluate({"Cache-Control": "max-age=abc"}, now=T0).lifetime == 0
    assert evaluate({"Cache-Control": "max-age=99999999999"}, now=T0).lifetime == 2**31
