"""Access control: the default matrix, invariants, rule precedence, and the serve path."""

from __future__ import annotations

import dataclasses
import io
import os

import pytest
from _content_util import keypair, payload, pub, settings

from meshcore.content.access import (
    GUEST,
    AccessPolicy,
    AccessRule,
    Principal,
)
from meshcore.content.manifest import Manifest, sign_manifest
from meshcore.content.node import ContentNode, UnknownContentError
from meshcore.errors import AccessDeniedError, ConfigError, DecodeError, IntegrityError

ALICE_KEY = keypair(1)
BOB_KEY = keypair(2)
CURATOR_KEY = keypair(3)
MALLORY_KEY = keypair(4)

MEMBER = Principal("m", "member")
CURATOR = Principal("c", "curator")
ADMIN = Principal("a", "admin")
TEACHER = Principal("t", "member", frozenset({"teachers"}))


# -- the default matrix (docs/content/policies.md) --------------------------------------

READ_MATRIX = {
    # level: (guest, member, curator, admin, teacher)
    "public": (True, True, True, True, True),
    "community": (False, True, True, True, True),
    "group:teachers": (False, False, False, True, True),
    "private": (False, False, False, True, False),
}


@pytest.mark.parametrize("level", sorted(READ_MATRIX))
def test_default_read_matrix(level):
    policy = AccessPolicy(groups={"teachers": ["t"]})
    who = (GUEST, MEMBER, CURATOR, ADMIN, TEACHER)
    got = tuple(policy.decide(p, "read", level).allowed for p in who)
    assert got == READ_MATRIX[level]


def test_publisher_reads_own_private_and_group_items():
    me = Principal("me", "member", key=ALICE_KEY.public)
    policy = AccessPolicy(groups={"teachers": []})
    assert policy.may_read(me, "private", ALICE_KEY.public)
    assert not policy.may_read(me, "private", BOB_KEY.public)
    assert policy.may_read(me, "group:teachers", ALICE_KEY.public)


def test_default_publish_and_designate():
    policy = AccessPolicy(groups={"teachers": ["t"]})
    assert not policy.decide(GUEST, "publish", "public").allowed
    assert policy.decide(MEMBER, "publish", "community").allowed
    assert not policy.decide(MEMBER, "publish", "group:teachers").allowed
    assert policy.decide(TEACHER, "publish", "group:teachers").allowed
    assert not policy.decide(MEMBER, "designate", "push-all").allowed
    assert not policy.decide(MEMBER, "designate", "push-tier").allowed
    assert policy.decide(MEMBER, "designate", "replicate:3").allowed
    assert policy.decide(CURATOR, "designate", "push-all").allowed
    assert policy.decide(ADMIN, "designate", "push-all").allowed
    assert not policy.decide(GUEST, "designate", "on-demand").allowed
    with pytest.raises(ValueError, match="action"):
        policy.decide(MEMBER, "delete", "public")


def test_check_raises_access_denied_with_attributes():
    with pytest.raises(AccessDeniedError) as info:
        AccessPolicy().check(GUEST, "read", "community")
    assert info.value.principal == "guest"
    assert "community" in info.value.action


def test_principal_role_validated():
    with pytest.raises(ValueError, match="role"):
        Principal("x", "superuser")


# -- rules and precedence ---------------------------------------------------------------


def rule(name, who, action, target, allow):
    return AccessRule(name, who, action, target, allow, where=f"content.access_rules[{name}]")


def test_most_specific_rule_wins():
    policy = AccessPolicy(
        [
            rule("members-no-community", "role:member", "read", "community", False),
            rule("teachers-yes", "group:teachers", "read", "community", True),
            rule("t-no", "principal:t", "read", "*", False),
        ],
        groups={"teachers": ["t", "u"]},
    )
    u = Principal("u", "member", frozenset({"teachers"}))
    # principal rule (rank 3) beats group rule (rank 2) even with a '*' target
    assert not policy.decide(TEACHER, "read", "community").allowed
    assert policy.decide(u, "read", "community").allowed  # group beats role
    d = policy.decide(MEMBER, "read", "community")
    assert not d.allowed and d.rule == "members-no-community"
    assert policy.decide(MEMBER, "read", "public").allowed  # no rule: default


def test_exact_target_beats_wildcard_at_same_subject():
    policy = AccessPolicy(
        [
            rule("members-nothing", "role:member", "publish", "*", False),
            rule("members-public", "role:member", "publish", "public", True),
        ]
    )
    assert policy.decide(MEMBER, "publish", "public").allowed
    assert not policy.decide(MEMBER, "publish", "community").allowed


def test_conflicting_rules_same_specificity_name_both():
    with pytest.raises(ConfigError) as info:
        AccessPolicy(
            [
                rule("first", "role:member", "read", "community", True),
                rule("second", "role:member", "read", "community", False),
            ],
            path="node.toml",
        )
    text = str(info.value)
    assert "'first'" in text and "'second'" in text and "node.toml" in text


def test_overlapping_groups_conflict_only_when_they_share_a_member():
    rules = [
        rule("a-allow", "group:a", "designate", "push-tier", True),
        rule("b-deny", "group:b", "designate", "push-tier", False),
    ]
    AccessPolicy(rules, groups={"a": ["x"], "b": ["y"]})  # disjoint: fine
    with pytest.raises(ConfigError, match=r"'a-allow'.*'b-deny'"):
        AccessPolicy(rules, groups={"a": ["x", "z"], "b": ["y", "z"]})


@pytest.mark.parametrize(
    ("who", "action", "target", "problem"),
    [
        ("*", "read", "community", "guests"),
        ("role:guest", "read", "group:g", "guests"),
        ("role:member", "read", "private", "private"),
        ("*", "publish", "public", "guests"),
        ("role:wizard", "read", "public", "unknown role"),
        ("group:nope", "read", "public", "unknown group"),
        ("somebody", "read", "public", "who"),
        ("role:member", "fly", "public", "action"),
    ],
)
def test_rules_that_break_invariants_or_are_malformed(who, action, target, problem):
    with pytest.raises(ConfigError, match=problem):
        AccessPolicy([rule("bad", who, action, target, True)], groups={"g": []})


def test_curator_key_rule():
    policy = AccessPolicy(curator_keys=[CURATOR_KEY.public])
    policy.check_signer("push-all", CURATOR_KEY.public)
    policy.check_signer("on-demand", MALLORY_KEY.public)
    with pytest.raises(AccessDeniedError, match="not a curator key"):
        policy.check_signer("push-all", MALLORY_KEY.public)


# -- settings: principals, groups, rules from TOML --------------------------------------

GROUPS = f"""
[content.principals.alice]
role = "member"
key = "{pub(ALICE_KEY)}"

[content.principals.bob]
role = "member"
key = "{pub(BOB_KEY)}"

[content.principals.carol]
role = "curator"
key = "{pub(CURATOR_KEY)}"

[content.groups]
teachers = ["alice"]
"""


def node_settings(tmp_path, extra=""):
    return settings(tmp_path, GROUPS + extra, head=f'curators = ["{pub(CURATOR_KEY)}"]\n')


def test_settings_principals(tmp_path):
    s = node_settings(tmp_path)
    alice = s.principal("alice")
    assert alice.role == "member" and alice.groups == frozenset({"teachers"})
    assert s.principal("guest") is GUEST
    assert s.principal(None) is GUEST
    assert s.principal("local").role == "admin"
    assert s.principal_for_key(BOB_KEY.public).name == "bob"
    assert s.principal_for_key(MALLORY_KEY.public) is GUEST
    with pytest.raises(ConfigError, match="no such principal"):
        s.principal("zed")
    assert s.access.is_curator_key(CURATOR_KEY.public)


def test_settings_access_rule_conflict_names_both(tmp_path):
    extra = """
[[content.access_rules]]
name = "one"
who = "role:member"
action = "read"
target = "community"
effect = "allow"

[[content.access_rules]]
name = "two"
who = "role:member"
action = "read"
target = "community"
effect = "deny"
"""
    with pytest.raises(ConfigError) as info:
        node_settings(tmp_path, extra)
    assert "'one'" in str(info.value) and "'two'" in str(info.value)
    assert "content.access_rules[1]" in str(info.value)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[content.groups]\nx = ["nobody"]\n', "content.groups.x"),
        ('[content.principals.z]\nrole = "king"\n', "content.principals.z.role"),
        ('[content.principals.guest]\nrole = "member"\n', "content.principals.guest"),
        ('[content.principals.z]\nrole = "member"\nkey = "nothex"\n', "content.principals.z.key"),
        (f'[content.principals.z]\nrole = "member"\nkey = "{pub(ALICE_KEY)}"\n'
         f'[content.principals.y]\nrole = "member"\nkey = "{pub(ALICE_KEY)}"\n',
         "content.principals.y.key"),
        ('[[content.access_rules]]\nname = "r"\nwho = "*"\naction = "designate"\n'
         'target = "push-everything"\neffect = "allow"\n', "content.access_rules[0].target"),
        ('[[content.access_rules]]\nname = "r"\nwho = "*"\naction = "read"\n'
         'target = "secret"\neffect = "allow"\n', "content.access_rules[0].target"),
        ('[content.principals]\nz = "member"\n', "content.principals.z"),
    ],
)
def test_settings_errors_name_the_key(tmp_path, extra, key):
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, extra)
    assert info.value.key == key


# -- the serve path: a guest sees nothing but public, through any API -------------------


@pytest.fixture
def node(tmp_path):
    with ContentNode(node_settings(tmp_path), now=1000.0) as n:
        yield n


def publish(node, principal, key, access, *, name="item.txt", data=None, **kw):
    data = payload(20_000, seed=len(name)) if data is None else data
    return node.publish(principal, io.BytesIO(data), keypair=key, now=1000.0, name=name,
                        access=access, tags=["shared"], **kw)


def test_guest_cannot_read_community_or_group_content_through_any_api(node):
    admin = node.settings.principal("local")
    alice = node.settings.principal("alice")
    items = {
        level: publish(node, admin if level != "group:teachers" else alice,
                       ALICE_KEY, level, name=f"{level}.txt")
        for level in ("public", "community", "group:teachers", "private")
    }
    hidden = [r.content_id for lvl, r in items.items() if lvl != "public"]
    public_id = items["public"].content_id

    assert [r.content_id for r in node.list(GUEST)] == [public_id]
    assert [r.content_id for r in node.search(GUEST, "SHARED")] == [public_id]
    assert [r.content_id for r in node.list(GUEST, include_incomplete=True)] == [public_id]
    for cid in hidden:
        with pytest.raises(AccessDeniedError):
            node.info(GUEST, cid)
        with pytest.raises(AccessDeniedError):
            node.read(GUEST, cid, now=1001.0)
        with pytest.raises(AccessDeniedError):
            node.manifest_for(GUEST, cid)
        for digest, _ in node.catalog.chunks_of(cid):
            with pytest.raises(AccessDeniedError):
                node.serve_chunk(GUEST, digest)
    assert node.read_bytes(GUEST, public_id, now=1001.0) == payload(20_000, seed=len("public.txt"))

    bob = node.settings.principal("bob")
    seen_by_bob = {r.access for r in node.list(bob)}
    assert seen_by_bob == {"public", "community"}
    seen_by_alice = {r.access for r in node.list(alice)}
    assert seen_by_alice == {"public", "community", "group:teachers", "private"}
    with pytest.raises(AccessDeniedError):
        node.read(bob, items["group:teachers"].content_id, now=1001.0)


def test_serve_chunk_shared_by_a_public_item_is_served(node):
    admin = node.settings.principal("local")
    data = payload(30_000, seed=9)
    secret = publish(node, admin, ALICE_KEY, "community", name="a", data=data)
    shared = publish(node, admin, ALICE_KEY, "public", name="b", data=data)
    digest = node.catalog.chunks_of(secret.content_id)[0][0]
    assert digest == node.catalog.chunks_of(shared.content_id)[0][0]
    assert len(node.serve_chunk(GUEST, digest)) > 0
    with pytest.raises(AccessDeniedError, match="no item"):
        node.serve_chunk(GUEST, bytes(32))


def test_unknown_content(node):
    with pytest.raises(UnknownContentError, match="no item"):
        node.info(GUEST, bytes(32))


def test_member_key_cannot_designate_push_all_at_publish(node):
    alice = node.settings.principal("alice")
    with pytest.raises(AccessDeniedError, match="designate push-all"):
        publish(node, alice, ALICE_KEY, "public", distribution="push-all")
    # even an admin principal signing with a non-curator key is refused
    admin = node.settings.principal("local")
    with pytest.raises(AccessDeniedError, match="not a curator key"):
        publish(node, admin, ALICE_KEY, "public", distribution="push-all")
    assert len(node.catalog) == 0
    assert list(node.store) == []  # nothing written
    carol = node.settings.principal("carol")
    ok = publish(node, carol, CURATOR_KEY, "public", distribution="push-all")
    assert ok.record.distribution == "push-all"


def test_guest_cannot_publish(node):
    with pytest.raises(AccessDeniedError):
        publish(node, GUEST, MALLORY_KEY, "public")


def _manifest(key, distribution="push-all", **kw):
    fields = dict(name="x", size=0, media_type="text/plain", chunks=(), tags=(),
                  access="public", distribution=distribution, retention=None,
                  publisher=key.public, created=1, expires=None)
    fields.update(kw)
    return Manifest(**fields)


def test_member_push_all_rejected_at_receive(node):
    raw = sign_manifest(_manifest(ALICE_KEY), ALICE_KEY).to_bytes()
    with pytest.raises(AccessDeniedError, match="not a curator key"):
        node.import_manifest(raw, now=5.0)
    assert len(node.catalog) == 0
    good = sign_manifest(_manifest(CURATOR_KEY), CURATOR_KEY).to_bytes()
    record = node.import_manifest(good, now=5.0)
    assert record.distribution == "push-all"
    assert node.import_manifest(good, now=6.0) == record  # idempotent


def test_forged_and_resigned_manifests_rejected_at_import(node):
    signed = sign_manifest(_manifest(CURATOR_KEY, distribution="on-demand"), CURATOR_KEY)
    raw = bytearray(signed.to_bytes())
    raw[-1] ^= 1  # forged signature
    with pytest.raises(IntegrityError):
        node.import_manifest(bytes(raw), now=5.0)
    # Mallory re-signs the curator's manifest with her own key: the manifest
    # still names the curator, so the signature does not verify.
    forged = dataclasses.replace(signed, signature=MALLORY_KEY.sign(b"x" * 10))
    with pytest.raises(IntegrityError):
        node.import_manifest(forged.to_bytes(), now=5.0)
    with pytest.raises(DecodeError):
        node.import_manifest(b"\x00not a manifest", now=5.0)
    assert len(node.catalog) == 0
    assert list(node.store.iter_manifests()) == []


def test_received_chunks_verified_and_completing(node):
    data = payload(12_000, seed=3)
    admin = node.settings.principal("local")
    src = publish(node, admin, CURATOR_KEY, "public", data=data, name="src")
    chunks = [(d, node.store.get(d)) for d, _ in node.catalog.chunks_of(src.content_id)]
    raw = node.store.read_manifest(src.content_id)
    node.delete(admin, src.content_id)
    assert list(node.store) == []
    record = node.import_manifest(raw, now=7.0)
    assert not record.complete
    assert node.list(GUEST) == [] and len(node.list(GUEST, include_incomplete=True)) == 1
    with pytest.raises(IntegrityError):
        node.receive_chunk(chunks[0][0], b"poison" + chunks[0][1])
    with pytest.raises(DecodeError, match="no item"):
        node.receive_chunk(bytes(32), b"x")
    done = []
    for digest, blob in chunks:
        done += node.receive_chunk(digest, blob)
    assert done == [src.content_id]
    assert node.read_bytes(GUEST, src.content_id, now=8.0) == data


def test_path_like_names_stored_and_served_safely(node, tmp_path):
    admin = node.settings.principal("local")
    before = set(os.listdir(tmp_path))
    evil = "../../etc/passwd"
    result = publish(node, admin, ALICE_KEY, "public", name=evil, data=b"root:x:0:0\n" * 50)
    assert result.record.name == evil
    assert set(os.listdir(tmp_path)) == before  # nothing created beside the state folder
    for path in (tmp_path / "state").rglob("*"):
        assert "passwd" not in path.name
    out = tmp_path / "out"
    out.mkdir()
    n = node.export(GUEST, result.content_id, out / "file", now=1.0)
    assert n == 550 and (out / "file").read_bytes() == b"root:x:0:0\n" * 50
    assert sorted(os.listdir(out)) == ["file"]
    assert [r.name for r in node.search(GUEST, "shared")] == [evil]


def test_delete_only_by_publisher_or_admin(node):
    alice = node.settings.principal("alice")
    bob = node.settings.principal("bob")
    r = publish(node, alice, ALICE_KEY, "community")
    with pytest.raises(AccessDeniedError, match="only its publisher"):
        node.delete(bob, r.content_id)
    assert node.delete(alice, r.content_id) > 0
    assert node.list(alice) == []
    assert list(node.store.iter_manifests()) == []
    with pytest.raises(UnknownContentError):
        node.delete(alice, r.content_id)
