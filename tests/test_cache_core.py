"""ContentCache: budget, chunk refcounts, pins, expiry, last-replica protection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore.cache import (
    ContentCache,
    Evicted,
    FreeChunk,
    ItemRejected,
    ItemStored,
    PinnedOverBudget,
    StoreChunk,
)
from meshcore.errors import CacheError, PinnedOverBudgetError


def chunks(*spec):
    return [(name.encode(), size) for name, size in spec]


def test_insert_stores_chunks_once_and_counts_distinct_bytes():
    c = ContentCache(1000)
    e1 = c.insert("a", chunks(("x", 100), ("y", 50)), now=0)
    assert e1 == [StoreChunk(b"x", 100), StoreChunk(b"y", 50), ItemStored("a", 150)]
    e2 = c.insert("b", chunks(("x", 100), ("z", 70)), now=0)
    assert StoreChunk(b"x", 100) not in e2
    assert StoreChunk(b"z", 70) in e2
    assert c.used_bytes == 220
    assert c.chunk_refcount(b"x") == 2
    hit, eff = c.request("a", now=1)
    assert hit and eff == []
    assert c.request("nope", now=1) == (False, [])


def test_shared_chunk_freed_only_when_last_item_goes():
    c = ContentCache(1000)
    c.insert("a", chunks(("x", 100), ("y", 50)), now=0)
    c.insert("b", chunks(("x", 100)), now=0)
    eff = c.remove("a", now=1)
    assert FreeChunk(b"y", 50) in eff
    assert FreeChunk(b"x", 100) not in eff
    assert Evicted("a", "removed") in eff
    assert c.chunk_refcount(b"x") == 1
    eff = c.remove("b", now=1)
    assert FreeChunk(b"x", 100) in eff
    assert c.used_bytes == 0
    assert c.remove("b", now=1) == []


def test_too_large_and_expired_items_are_rejected():
    c = ContentCache(100)
    assert c.insert("big", chunks(("x", 101)), now=0) == [ItemRejected("big", "too-large")]
    assert c.insert("old", chunks(("x", 1)), now=10, expires_at=5) == [
        ItemRejected("old", "expired")
    ]
    assert len(c) == 0
    with pytest.raises(ValueError, match="chunks: size of b'x': expected an integer >= 0"):
        c.insert("neg", chunks(("x", -1)), now=0)


def test_expiry_drops_items_and_timer_reports_next_deadline():
    c = ContentCache(1000)
    c.insert("a", chunks(("x", 10)), now=0, expires_at=50)
    c.insert("b", chunks(("y", 10)), now=0, expires_at=20)
    c.insert("c", chunks(("z", 10)), now=0)
    assert c.get_timer() == 20
    assert c.expire(now=19) == []
    eff = c.expire(now=20)
    assert eff == [FreeChunk(b"y", 10), Evicted("b", "expired")]
    assert c.get_timer() == 50
    hit, eff = c.request("a", now=60)  # expired but not yet swept
    assert not hit
    assert Evicted("a", "expired") in eff
    assert c.get_timer() is None
    assert "c" in c


def test_replacing_an_item_releases_its_old_chunks():
    c = ContentCache(1000)
    c.insert("a", chunks(("v1", 10)), now=0, expires_at=5)
    eff = c.insert("a", chunks(("v2", 20)), now=1)
    assert FreeChunk(b"v1", 10) in eff and StoreChunk(b"v2", 20) in eff
    assert c.used_bytes == 20
    assert c.expire(now=10) == []  # the old expiry no longer applies
    assert "a" in c


def test_pins_survive_pressure_and_lapse_back_into_the_policy():
    c = ContentCache(100)
    c.insert("pinned", chunks(("p", 60)), now=0, pin=True, pin_until=100)
    assert c.is_pinned("pinned")
    assert c.pinned_bytes == 60
    for i in range(50):
        for _ in range(3):
            c.insert(f"o{i}", chunks((f"o{i}", 10)), now=1)
            c.request(f"o{i}", now=1)
        assert c.used_bytes <= 100
        assert "pinned" in c
    hit, _ = c.request("pinned", now=2)
    assert hit
    assert c.get_timer() == 100
    c.expire(now=100)
    assert not c.is_pinned("pinned")
    assert c.pinned_bytes == 0
    assert c.used_bytes <= 100


def test_pin_and_unpin_existing_items():
    c = ContentCache(100)
    c.insert("a", chunks(("x", 30)), now=0)
    assert c.pin("a", now=0) == []
    assert c.is_pinned("a") and c.pinned_bytes == 30
    assert "a" not in c.policy
    c.pin("a", now=0, until=5)  # re-pinning only moves the deadline
    assert c.pinned_bytes == 30
    c.unpin("a", now=1)
    assert not c.is_pinned("a")
    assert "a" in c.policy
    assert c.unpin("a", now=1) == []
    with pytest.raises(KeyError):
        c.pin("missing", now=0)


def test_pinned_over_budget_raises_with_an_event_and_changes_nothing():
    c = ContentCache(100)
    c.insert("a", chunks(("x", 70)), now=0, pin=True)
    c.insert("b", chunks(("y", 20)), now=0)
    with pytest.raises(PinnedOverBudgetError) as info:
        c.insert("c", chunks(("z", 40)), now=0, pin=True)
    err = info.value
    assert isinstance(err, CacheError)
    assert err.pinned_bytes == 110 and err.budget_bytes == 100
    assert err.effects == [PinnedOverBudget(110, 100)]
    assert "c" not in c and "b" in c
    assert c.used_bytes == 90
    with pytest.raises(PinnedOverBudgetError):
        c.pin("b", now=0)  # 70 + 20 fits, but then "e" cannot
        c.insert("e", chunks(("x", 70), ("v", 11)), now=0, pin=True)
    assert c.is_pinned("b")
    assert "e" not in c
    c.unpin("b", now=0)
    # Sharing counts once: a pinned item reusing a pinned chunk costs only its new bytes.
    c.insert("f", chunks(("x", 70), ("u", 25)), now=0, pin=True)
    assert c.pinned_bytes == 95
    with pytest.raises(PinnedOverBudgetError) as info:
        c.set_budget(90, now=0)
    assert info.value.effects == [PinnedOverBudget(95, 90)]
    assert c.budget_bytes == 100


def test_set_budget_shrinks_policy_items():
    c = ContentCache(100)
    for i in range(10):
        c.insert(i, chunks((str(i), 10)), now=0)
    assert c.used_bytes == 100
    eff = c.set_budget(40, now=0)
    assert c.used_bytes <= 40
    assert sum(isinstance(e, Evicted) for e in eff) == 6
    with pytest.raises(ValueError, match="budget_bytes: expected an integer >= 0"):
        c.set_budget(-1, now=0)


def test_last_replica_hook_retains_items_until_released():
    only_copy = {"rare"}
    c = ContentCache(100, last_replica=lambda k: k in only_copy)
    c.insert("rare", chunks(("r", 40)), now=0)
    for i in range(30):
        for _ in range(3):
            c.insert(i, chunks((str(i), 10)), now=0)
    assert "rare" in c
    assert c.pinned_bytes == 40
    assert c.used_bytes <= 100
    hit, _ = c.request("rare", now=1)
    assert hit
    only_copy.clear()  # a replica appeared elsewhere
    c.recheck_protection(now=2)
    assert c.pinned_bytes == 0
    assert c.used_bytes <= 100


def test_last_replica_cannot_take_more_than_the_budget():
    c = ContentCache(100, last_replica=lambda k: True)
    for i in range(20):
        for _ in range(3):
            c.insert(i, chunks((str(i), 30)), now=0)
        assert c.used_bytes <= 100
    assert c.pinned_bytes <= 100


def test_pin_a_protected_item_and_drop_pinned():
    c = ContentCache(100, last_replica=lambda k: k == "p")
    c.insert("p", chunks(("p", 50)), now=0)
    c.insert("q", chunks(("q", 60)), now=0)
    c.insert("q", chunks(("q", 60)), now=0)
    c.insert("q", chunks(("q", 60)), now=0)
    # 50 + 60 > 100: "q" pushed "p" out of the policy, and the hook kept it (retained,
    # not pinned); the 50 bytes left to the policy cannot hold "q".
    assert "p" in c and "q" not in c
    assert c.pinned_bytes == 50 and not c.is_pinned("p")
    assert c.pin("p", now=0, until=10) == []
    assert c.is_pinned("p")
    assert c.pinned_bytes == 50  # pinning a protected item does not retain it twice
    eff = c.remove("p", now=1)
    assert eff == [FreeChunk(b"p", 50), Evicted("p", "removed")]
    assert c.pinned_bytes == 0 and c.used_bytes == 0


def test_lru_policy_and_bad_budget():
    c = ContentCache(20, policy="lru")
    c.insert("a", chunks(("a", 10)), now=0)
    c.insert("b", chunks(("b", 10)), now=0)
    c.request("a", now=0)
    eff = c.insert("c", chunks(("c", 10)), now=0)
    assert Evicted("b", "policy") in eff
    with pytest.raises(ValueError, match="budget_bytes"):
        ContentCache(-5)
    with pytest.raises(ValueError, match="unknown name 'nope'"):
        ContentCache(5, policy="nope")


OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("insert"),
            st.integers(0, 12),  # key
            st.lists(st.tuples(st.integers(0, 15), st.integers(0, 40)), min_size=1, max_size=4),
            st.one_of(st.none(), st.integers(1, 30)),  # expires_at offset
            st.booleans(),  # pin
        ),
        st.tuples(st.just("request"), st.integers(0, 12)),
        st.tuples(st.just("pin"), st.integers(0, 12), st.integers(1, 30)),
        st.tuples(st.just("unpin"), st.integers(0, 12)),
        st.tuples(st.just("remove"), st.integers(0, 12)),
        st.tuples(st.just("tick"), st.integers(0, 10)),
        st.tuples(st.just("budget"), st.integers(0, 200)),
        st.tuples(
            st.just("recheck"),
        ),
    ),
    max_size=60,
)


@pytest.mark.parametrize("policy", ["default", "default-bytes", "lru", "wtinylfu"])
@settings(max_examples=300, deadline=None)
@given(budget=st.integers(0, 150), ops=OPS, protect=st.sets(st.integers(0, 12)))
def test_budget_never_exceeded_and_needed_chunks_never_freed(policy, budget, ops, protect):
    c = ContentCache(budget, policy=policy, last_replica=lambda k: k in protect)
    stored: dict[bytes, int] = {}  # chunk -> size, as the driver would hold them
    now = 0.0

    def apply(effects):
        for e in effects:
            if isinstance(e, StoreChunk):
                assert e.digest not in stored
                stored[e.digest] = e.size
            elif isinstance(e, FreeChunk):
                assert e.digest in stored
                del stored[e.digest]

    for op in ops:
        try:
            if op[0] == "insert":
                _, key, spec, exp, pin = op
                chs = [(f"c{d}".encode(), s) for d, s in spec]
                # one digest, one size (content addressing)
                chs = [(d, (int(d[1:]) * 7) % 41) for d, _ in chs]
                apply(
                    c.insert(
                        key, chs, now=now, expires_at=None if exp is None else now + exp, pin=pin
                    )
                )
            elif op[0] == "request":
                apply(c.request(op[1], now=now)[1])
            elif op[0] == "pin":
                if op[1] in c:
                    apply(c.pin(op[1], now=now, until=now + op[2]))
            elif op[0] == "unpin":
                apply(c.unpin(op[1], now=now))
            elif op[0] == "remove":
                apply(c.remove(op[1], now=now))
            elif op[0] == "tick":
                now += op[1]
                apply(c.expire(now=now))
            elif op[0] == "budget":
                apply(c.set_budget(op[1], now=now))
            else:
                apply(c.recheck_protection(now=now))
        except PinnedOverBudgetError as exc:
            assert exc.pinned_bytes > exc.budget_bytes
        # The invariants.
        assert c.used_bytes <= c.budget_bytes
        assert sum(stored.values()) == c.used_bytes
        needed = {d for key in list(c._items) for d, _ in c._items[key].chunks}
        assert needed == set(stored)  # nothing needed is freed, nothing unneeded is kept
        assert c.pinned_bytes <= c.budget_bytes
        for key, item in c._items.items():
            if item.pinned_until is None and not item.protected:
                assert key in c.policy
            else:
                assert key not in c.policy


def test_lapsed_pin_that_loses_admission_is_evicted_but_shared_chunk_kept():
    c = ContentCache(100)
    c.insert("p1", chunks(("x", 50)), now=0, pin=True, pin_until=10)
    c.insert("p2", chunks(("x", 50)), now=0, pin=True)
    assert c.pinned_bytes == 50
    for _ in range(5):
        c.insert("a", chunks(("a", 50)), now=0)
        c.request("a", now=0)
    eff = c.expire(now=10)
    # p1 now competes in the policy charged 50 bytes and loses to the popular "a".
    assert eff == [Evicted("p1", "policy")]
    assert c.chunk_refcount(b"x") == 1  # p2 still needs it: not freed
    assert "a" in c and "p2" in c
    assert c.used_bytes == 100
