"""Small, fast checks of the pieces: config, tags, the renderer's text format, deltas."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.config import parse_config
from agent.errors import ConfigError
from agent.export.counters import MonotonicDeltas
from agent.export.prometheus import PrometheusExporter, label_name
from agent.export.pushgateway import group_path
from agent.export.tags import dd_tag
from agent.samples import CheckResult, Kind, Sample, Status, make_tags


def test_api_mode_without_a_key_is_a_clear_config_error(monkeypatch):
    monkeypatch.delenv("DD_API_KEY", raising=False)
    with pytest.raises(ConfigError) as err:
        parse_config("exporters:\n  datadog: {mode: api}\n", source="agent.yaml")
    assert "exporters.datadog" in str(err.value) and "DD_API_KEY" in str(err.value)


def test_unknown_exporter_keys_are_named_with_a_suggestion():
    with pytest.raises(ConfigError) as err:
        parse_config("exporters:\n  datadog: {mode: dogstatsd, hots: x}\n", source="agent.yaml")
    assert "exporters.datadog.hots" in str(err.value) and "'host'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config("exporters:\n  prometheus: {pushgateway: {interval: 10s}}\n", source="agent.yaml")
    assert "exporters.prometheus.pushgateway.url: missing required key" in str(err.value)


def test_api_key_is_a_secret(monkeypatch):
    cfg = parse_config("exporters:\n  datadog: {mode: api, api_key: abcdef0123456789}\n")
    assert "abcdef0123456789" not in repr(cfg)
    site = parse_config("exporters:\n  datadog: {mode: api, api_key: k, site: datadoghq.eu}\n")
    assert site.exporters.datadog.resolved_api_url() == "https://api.datadoghq.eu"


@pytest.mark.parametrize("key,value,expected", [
    ("model", "Ranker|V2,beta", "model:ranker_v2_beta"),
    ("env", "", "env"),
    ("9lives", "x", "lives:x"),
    ("url", "http://a:80/p?q=1", "url:http://a:80/p_q_1"),
    ("k", "x" * 300, "k:" + "x" * 198),
])
def test_tags_are_normalised_like_datadog(key, value, expected):
    assert dd_tag(key, value) == expected


def test_label_names_are_valid():
    assert label_name("check-type") == "check_type"
    assert label_name("9x") == "_9x"
    assert label_name("__name__") == "name__"
    # what every scrape sets on its target is never a label of ours
    assert label_name("instance") == "exported_instance"
    assert label_name("job") == "exported_job"


def test_rendered_text_parses_with_escapes_and_special_values():
    exp = PrometheusExporter()
    tags = make_tags({"check": "c1", "model": 'a"b\\c\nd', "empty": ""})
    exp.consume(CheckResult("c1", "t", Status.OK, interval=10, samples=[
        Sample("mlwarden.check.duration", 0.5, tags),
        Sample("mlwarden.check.status", math.inf, tags),
        Sample("mlwarden.check.runs", 2.0, tags, kind=Kind.COUNT),
        Sample("mlwarden.undeclared.metric", 1e-7, tags),
    ]))
    exp.render()  # a new counter is shown at 0 first
    exp.consume(CheckResult("c1", "t", Status.OK, samples=[Sample("mlwarden.check.runs", 3.0, tags,
                                                                  kind=Kind.COUNT)]))
    fams = {f.name: f for f in text_string_to_metric_families(exp.render().decode())}
    runs = fams["mlwarden_check_runs"]
    assert runs.type == "counter" and runs.samples[0].value == 5.0
    assert runs.samples[0].labels == {"check": "c1", "model": 'a"b\\c\nd'}  # empty label absent
    assert fams["mlwarden_check_status"].samples[0].value == math.inf
    assert fams["mlwarden_check_duration_seconds"].samples[0].value == 0.5
    assert fams["mlwarden_undeclared_metric"].samples[0].value == 1e-7
    assert "not declared" in fams["mlwarden_undeclared_metric"].documentation
    exp.forget("c1")
    assert exp.render() == b""


def test_monotonic_deltas_seed_then_count_and_survive_resets():
    d = MonotonicDeltas()
    key = ("m", (("check", "a"),))
    assert d.delta(key, 10.0) is None
    assert d.delta(key, 12.5) == 2.5
    assert d.delta(key, 1.0) == 1.0  # the source restarted from zero
    d.forget("a")
    assert d.delta(key, 5.0) is None


def test_pushgateway_grouping_key_paths():
    assert group_path("mlwarden", "node-1") == "/metrics/job/mlwarden/instance/node-1"
    assert group_path("mlwarden", "a/b") == "/metrics/job/mlwarden/instance@base64/YS9i"


def test_default_datagram_size_follows_where_the_agent_is():
    from agent.export.datadog_statsd import _default_packet_size

    assert _default_packet_size("127.0.0.1", None) == 8192
    assert _default_packet_size("localhost", None) == 8192
    assert _default_packet_size("10.0.0.5", "/var/run/datadog/dsd.socket") == 8192
    assert _default_packet_size("datadog-agent.monitoring.svc", None) == 0  # the client's 1432
