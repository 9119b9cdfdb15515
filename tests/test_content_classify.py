"""Classification rules: matching, precedence, conflicts, tags; and their TOML form."""

from __future__ import annotations

import pytest
from _content_util import keypair, pub, settings
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from meshcore.content.classify import (
    ClassificationRule,
    Classifier,
    ItemFacts,
    normalize_tag,
    normalize_tags,
)
from meshcore.errors import ConfigError

KEY = keypair(7).public
OTHER = keypair(8).public
MIB = 1 << 20


def facts(name="talk.mp4", media="video/mp4", size=20 * MIB, publisher=KEY):
    return ItemFacts(name, media, size, publisher)


def test_tag_normalisation():
    assert normalize_tag("  Local   News ") == "local-news"
    assert normalize_tag("ＳＣＨＯＯＬ") == "school"  # full-width folds under NFKC
    assert normalize_tag("Straße") == "strasse"  # case folding, not just lower()
    assert normalize_tags(["B", "a", "b", " A "]) == ("a", "b")
    for bad in ("", "   ", "x" * 65, "semi;colon", "quote'"):
        with pytest.raises(ValueError, match="tag"):
            normalize_tag(bad)
    with pytest.raises(TypeError):
        normalize_tag(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule", "item", "matches"),
    [
        (ClassificationRule("n", name_glob="*.MP4"), facts(), True),
        (ClassificationRule("n", name_glob="*.mkv"), facts(), False),
        (ClassificationRule("m", media_type="video/*"), facts(), True),
        (ClassificationRule("m", media_type="VIDEO/MP4"), facts(), True),
        (ClassificationRule("m", media_type="video/webm"), facts(), False),
        (ClassificationRule("m", media_type="audio/*"), facts(), False),
        (ClassificationRule("s", min_size=20 * MIB), facts(), True),
        (ClassificationRule("s", min_size=20 * MIB + 1), facts(), False),
        (ClassificationRule("s", max_size=20 * MIB), facts(), True),
        (ClassificationRule("s", max_size=MIB), facts(), False),
        (ClassificationRule("p", publisher=KEY), facts(), True),
        (ClassificationRule("p", publisher=OTHER), facts(), False),
        (ClassificationRule("all"), facts(), True),
    ],
)
def test_rule_matching(rule, item, matches):
    assert rule.matches(item) is matches


def test_specificity_counts_criteria():
    assert ClassificationRule("a").specificity == 0
    assert ClassificationRule("a", min_size=1, max_size=2).specificity == 1
    full = ClassificationRule("a", name_glob="*", media_type="a/b", min_size=1, publisher=KEY)
    assert full.specificity == 4


def test_most_specific_rule_wins_per_field_and_tags_accumulate():
    rules = [
        ClassificationRule("videos", media_type="video/*", tags=("video",),
                           access="community", distribution="on-demand"),
        ClassificationRule("big-videos", media_type="video/*", min_size=10 * MIB,
                           tags=("Large",), distribution="replicate:3"),
        ClassificationRule("anything", tags=("all",), retention="ttl:604800s"),
    ]
    c = Classifier(rules).classify(facts(), tags=["Talks"])
    assert c.tags == ("all", "large", "talks", "video")
    assert c.access == "community"  # only 'videos' sets it
    assert c.distribution == "replicate:3"  # 2 criteria beat 1
    assert c.retention == "ttl:604800s"
    assert c.rules == ("videos", "big-videos", "anything")
    assert dict(c.sources) == {"access": "videos", "distribution": "big-videos",
                               "retention": "anything"}


def test_publisher_choice_beats_rules_and_defaults_fill_the_rest():
    rules = [ClassificationRule("v", media_type="video/*", access="community")]
    clf = Classifier(rules, default_access="public", default_distribution="local-only")
    c = clf.classify(facts(), access="private")
    assert (c.access, c.distribution, c.retention) == ("private", "local-only", None)
    assert dict(c.sources) == {"access": "publisher", "distribution": "default",
                               "retention": "default"}
    c2 = clf.classify(facts(media="text/plain"))
    assert c2.access == "public" and c2.rules == ()


def test_identical_criteria_conflict_at_load_names_both():
    rules = [
        ClassificationRule("one", media_type="video/*", access="public", where="content.rules[0]"),
        ClassificationRule("two", media_type="Video/*", access="community",
                           where="content.rules[1]"),
    ]
    with pytest.raises(ConfigError) as info:
        Classifier(rules, path="node.toml")
    text = str(info.value)
    assert "'one' (content.rules[0])" in text and "'two' (content.rules[1])" in text
    assert info.value.key == "content.rules[1]"


def test_same_values_do_not_conflict():
    rules = [ClassificationRule("a", media_type="video/*", access="public"),
             ClassificationRule("b", media_type="video/*", access="public", tags=("x",))]
    assert Classifier(rules).classify(facts()).access == "public"


def test_overlapping_globs_conflict_when_an_item_matches_both():
    rules = [
        ClassificationRule("mp4", name_glob="*.mp4", distribution="on-demand"),
        ClassificationRule("talks", name_glob="talk*", distribution="push-tier"),
    ]
    clf = Classifier(rules)  # not identical: accepted at load
    assert clf.classify(facts(name="other.mp4")).distribution == "on-demand"
    with pytest.raises(ConfigError, match=r"'mp4'.*'talks'.*talk\.mp4"):
        clf.classify(facts(name="talk.mp4"))
    # a publisher choice sidesteps the conflict: no rule is consulted for it
    assert clf.classify(facts(name="talk.mp4"), distribution="no-store").distribution == "no-store"


@hsettings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 100 * MIB),
    media=st.sampled_from(["video/mp4", "text/plain", "audio/ogg"]),
    extra=st.integers(0, 3),
)
def test_more_criteria_always_beat_fewer(size, media, extra):
    # Build a chain of rules each adding one criterion that the item meets:
    # whatever the item, the deepest matching rule decides.
    item = facts(size=size, media=media)
    criteria = [
        {"publisher": KEY},
        {"publisher": KEY, "min_size": 0},
        {"publisher": KEY, "min_size": 0, "media_type": media},
        {"publisher": KEY, "min_size": 0, "media_type": media, "name_glob": "*"},
    ]
    rules = [ClassificationRule(f"r{i}", access=f"group:g{i}", **c)
             for i, c in enumerate(criteria[: extra + 1])]
    assert Classifier(rules).classify(item).access == f"group:g{extra}"


# -- TOML -----------------------------------------------------------------------------


def test_rules_from_toml(tmp_path):
    extra = f"""
[[content.rules]]
name = "videos"
match = {{ media_type = "video/*", min_size = "10 MiB", max_size = "4 GiB" }}
tags = ["Video"]
distribution = "replicate:2"
retention = "ttl:7d"

[[content.rules]]
name = "from-school"
match = {{ publisher = "{pub(keypair(7))}", name = "*.PDF" }}
tags = ["school"]
access = "public"

[content.groups]
everyone = []
"""
    s = settings(tmp_path, extra, head='default_access = "group:everyone"\n')
    clf = s.classifier
    c = clf.classify(facts())
    assert (c.access, c.distribution, c.retention, c.tags) == (
        "group:everyone", "replicate:2", "ttl:604800s", ("video",))
    c = clf.classify(facts(name="notes.pdf", media="application/pdf", size=100))
    assert (c.access, c.tags) == ("public", ("school",))


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[[content.rules]]\nname = "r"\nmatch = { size = 5 }\n', "content.rules[0].match.size"),
        ('[[content.rules]]\nname = "r"\nmatch = { media_type = "video" }\n',
         "content.rules[0].match.media_type"),
        ('[[content.rules]]\nname = "r"\nmatch = { min_size = "2 MiB", max_size = "1 MiB" }\n',
         "content.rules[0].match.max_size"),
        ('[[content.rules]]\nname = "r"\ntags = ["a;b"]\n', "content.rules[0].tags"),
        ('[[content.rules]]\nname = "r"\naccess = "everyone"\n', "content.rules[0].access"),
        ('[[content.rules]]\nname = "r"\ndistribution = "replicate:0"\n',
         "content.rules[0].distribution"),
        ('[[content.rules]]\nname = "r"\nretention = "forever"\n', "content.rules[0].retention"),
        ('[[content.rules]]\nname = "r"\nretention = 5\n', "content.rules[0].retention"),
        ('[[content.rules]]\nname = "r"\ncolour = "red"\n', "content.rules[0].colour"),
        ('[[content.rules]]\nname = "r"\nmatch = { publisher = 5 }\n',
         "content.rules[0].match.publisher"),
        ('[[content.rules]]\nmatch = {}\n', "content.rules[0].name"),
    ],
)
def test_rule_errors_name_the_key(tmp_path, extra, key):
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, extra)
    assert info.value.key == key


def test_conflicting_rules_in_toml_name_both(tmp_path):
    extra = """
[[content.rules]]
name = "a"
match = { name = "*.iso" }
distribution = "push-all"

[[content.rules]]
name = "b"
match = { name = "*.iso" }
distribution = "on-demand"
"""
    both = r"'a' \(content.rules\[0\]\).*'b' \(content.rules\[1\]\)"
    with pytest.raises(ConfigError, match=both):
        settings(tmp_path, extra)


@pytest.mark.parametrize(
    ("head", "key"),
    [
        ('default_access = "nobody"\n', "content.default_access"),
        ('default_distribution = "everywhere"\n', "content.default_distribution"),
        ('default_retention = "ttl:-1s"\n', "content.default_retention"),
        ('push_tier_scope = "galaxy"\n', "content.push_tier_scope"),
        ('curators = ["zz"]\n', "content.curators"),
        ('colour = "red"\n', "content.colour"),
    ],
)
def test_content_section_errors(tmp_path, head, key):
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, head=head)
    assert info.value.key == key


def test_chunk_sizes_must_be_ordered(tmp_path):
    from meshcore.config import parse_config
    from meshcore.content.settings import ContentSettings

    text = '[content]\nstate_dir = "/x"\nchunk_min = "1 MiB"\nchunk_avg = "64 KiB"\n'
    with pytest.raises(ConfigError) as info:
        ContentSettings.from_config(parse_config(text, "n.toml"))
    assert info.value.key == "content.chunk_max"


def test_relative_state_dir_and_missing_section(tmp_path):
    from meshcore.config import parse_config
    from meshcore.content.settings import ContentSettings, load_content_settings

    cfg = tmp_path / "node.toml"
    cfg.write_text('[content]\nstate_dir = "st"\nbudget = "1 MiB"\n')
    s = load_content_settings(cfg)
    assert s.state_dir == tmp_path.resolve() / "st"
    assert s.budget_bytes == 1 << 20
    assert s.catalog_path == s.state_dir / "content" / "catalog.sqlite"
    with pytest.raises(ConfigError, match="content"):
        ContentSettings.from_config(parse_config("[net]\n", "x.toml"))
