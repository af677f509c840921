"""The where: spellings: equals, not-equals, regex, negative regex, glob; missing tags."""

from __future__ import annotations

import pytest

from agent.rules.matchers import Selector
from agent.tagmatch import parse_tag_matcher
from agent.samples import make_tags


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("ranker", "ranker", True),
        ("ranker", "ranker2", False),
        ("!=dev", "prod", True),
        ("!=dev", "dev", False),
        ("!=dev", "", True),                # a missing tag reads as "" and is not "dev"
        ("=~train_.*", "train_daily", True),
        ("=~train_.*", "pretrain_daily", False),   # anchored: the whole value must match
        ("!~tmp_.*", "tmp_x", False),
        ("!~tmp_.*", "prod_x", True),
        ("gpu-*", "gpu-07", True),
        ("gpu-*", "cpu-07", False),
        ("node-?", "node-1", True),
        ("node-?", "node-12", False),
        ("", "", True),                     # `tag: ""` selects series without the tag
        ("", "x", False),
    ],
)
def test_matcher(spec, value, expected):
    assert parse_tag_matcher("t", spec).matches(value) is expected


def test_a_bad_regex_names_itself():
    with pytest.raises(ValueError, match=r"invalid regular expression '\('"):
        parse_tag_matcher("dag_id", "=~(")


def test_selector_is_a_conjunction_and_reads_missing_tags_as_empty():
    sel = Selector({"model": "ranker", "env": "!=dev", "node": "gpu-*"})
    assert sel.matches(make_tags({"model": "ranker", "env": "prod", "node": "gpu-1"}))
    assert sel.matches(make_tags({"model": "ranker", "node": "gpu-1"}))
    assert not sel.matches(make_tags({"model": "ranker", "env": "dev", "node": "gpu-1"}))
    assert not sel.matches(make_tags({"model": "ranker", "env": "prod"}))
    assert Selector({}).matches(make_tags({"anything": "x"}))


def test_equalities_feed_the_store_prefilter():
    sel = Selector({"model": "ranker", "env": "!=dev", "node": "gpu-*", "x": ""})
    assert sel.equalities() == {"model": "ranker"}
