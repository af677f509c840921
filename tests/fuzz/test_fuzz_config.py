"""Fuzzing the config loader: any input gives a config or a ConfigError, never a crash."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import parse_config
from agent.errors import ConfigError

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["15s", "5m", "-1s", "1h30m", "${X}", "${X:-1s}",
                                                          "127.0.0.1:1", "agent", "info"]))
keys = st.sampled_from(["agent", "checks", "exporters", "listen", "history", "type", "name",
                        "interval", "timeout", "tags", "jitter", "prometheus", "enabled", "scope",
                        "log_level", "auth_token", "bogus"])
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=5))
def test_structured_input_never_crashes(doc):
    text = yaml.safe_dump(doc)
    try:
        parse_config(text, source="fuzz.yaml", env={})
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml: ")
        assert exc.problems


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes(text):
    try:
        parse_config(text, source="fuzz.yaml", env={})
    except ConfigError as exc:
        assert exc.problems
