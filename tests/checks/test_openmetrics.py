"""The openmetrics check and its reusable select function.

The exposition is MLServer 1.7.1's real /metrics answer (tests/fixtures/mlserver/
metrics.txt), served by a local target; a live MLServer is scraped in
test_model_endpoint_mlserver.py.
"""

from __future__ import annotations

import pytest

from agent.catalog import load_catalog, prometheus_name
from agent.check import CheckContext
from agent.samples import Kind, Status
from checks.openmetrics.check import OpenMetricsCheck
from checks.openmetrics.config import MetricSelector
from checks.openmetrics.select import FORWARD_PREFIX, forward_name, parse_families, select_samples
from tests.support.targets import Target, canned, load_fixture

pytestmark = pytest.mark.unit
EXPOSITION = load_fixture("mlserver", "metrics.txt")


@pytest.fixture
async def ctx():
    context = CheckContext()
    yield context
    await context.close()


def pick(*selectors, **kw):
    chosen = [MetricSelector(**s) for s in selectors]
    return select_samples(parse_families(EXPOSITION), chosen, **kw)


def test_counter_forwarded_as_monotonic_count_with_labels():
    got = pick({"name": "rest_server_requests_total", "rename": "mlserver.rest_requests"},
               label_map={"status_code": "code"}, drop_labels=["app_name"])
    assert got and {s.name for s in got} == {"mlwarden.openmetrics.mlserver.rest_requests"}
    assert all(s.kind is Kind.MONOTONIC_COUNT for s in got)
    first = got[0]
    assert first.tags == {"method": "GET", "path": "/v2/models/{model_name}/ready", "code": "200"}
    assert first.value == 3.0


def test_counter_matches_by_family_name_too_and_created_is_dropped():
    got = pick({"name": "model_infer_request_success"})
    assert got and all(s.source == "model_infer_request_success_total" for s in got)


def test_histogram_and_summary_parts():
    got = pick({"regex": "rest_server_request_duration_seconds|model_infer_request_duration"})
    names = {s.name for s in got}
    assert names == {
        "mlwarden.openmetrics.rest_server_request_duration_seconds.bucket",
        "mlwarden.openmetrics.rest_server_request_duration_seconds.sum",
        "mlwarden.openmetrics.rest_server_request_duration_seconds.count",
        "mlwarden.openmetrics.model_infer_request_duration.sum",
        "mlwarden.openmetrics.model_infer_request_duration.count",
    }
    buckets = [s for s in got if s.name.endswith(".bucket")]
    assert all("le" in s.tags and s.kind is Kind.MONOTONIC_COUNT for s in buckets)
    assert not any(s.source.endswith("_created") for s in got)


def test_gauge_info_nan_reserved_names_and_check_label():
    text = "\n".join([
        "# TYPE up gauge", "up 1",
        "# TYPE vllm:num_requests_running gauge",
        'vllm:num_requests_running{model_name="m",check="other"} 3',
        "# TYPE gone gauge", "gone NaN",
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge", 'DCGM_FI_DEV_GPU_UTIL{gpu="0"} 87', ""])
    got = select_samples(parse_families(text), [MetricSelector(regex=".*")])
    by = {s.name: s for s in got}
    assert set(by) == {"mlwarden.openmetrics.exported_up",
                       "mlwarden.openmetrics.vllm_num_requests_running",
                       "mlwarden.openmetrics.dcgm_fi_dev_gpu_util"}
    assert by["mlwarden.openmetrics.vllm_num_requests_running"].tags == {
        "model_name": "m", "exported_check": "other"}
    assert by["mlwarden.openmetrics.dcgm_fi_dev_gpu_util"].value == 87.0


def test_limit_and_invalid_exposition():
    assert len(pick({"regex": ".*"}, limit=5)) == 5
    with pytest.raises(ValueError, match="not a valid Prometheus text exposition"):
        parse_families('metric{label="x" 1\n')


def test_forward_names_are_valid_catalog_and_prometheus_names():
    for family in parse_families(EXPOSITION):
        name = forward_name(family.name)
        assert name.startswith(FORWARD_PREFIX)
        prometheus_name(name, Kind.GAUGE)  # raises for a name Prometheus would refuse


async def test_check_forwards_selected_series(ctx, catalog_check):
    async with Target({("GET", "/metrics"): canned(EXPOSITION)}) as t:
        cfg = OpenMetricsCheck.Config(
            type="openmetrics", name="mls", url=t.url + "/metrics",
            metrics=[{"name": "rest_server_requests_total", "rename": "mlserver.rest_requests"},
                     {"regex": "process_.*_bytes"}])
        result = await OpenMetricsCheck(cfg, ctx).run()
    assert result.status == Status.OK, result.message
    catalog = load_catalog()
    own = [s for s in result.samples if s.metric in catalog]
    forwarded = [s for s in result.samples if s.metric not in catalog]
    catalog_check(type(result)(**{**_fields(result), "samples": own}))
    assert {s.metric for s in own} == {"mlwarden.openmetrics.up",
                                      "mlwarden.openmetrics.scrape.duration",
                                      "mlwarden.openmetrics.scrape.series"}
    # everything else is forwarded: under the declared prefix, and only what was selected
    assert {s.metric for s in forwarded} == {
        "mlwarden.openmetrics.mlserver.rest_requests",
        "mlwarden.openmetrics.process_virtual_memory_bytes",
        "mlwarden.openmetrics.process_resident_memory_bytes"}
    assert all(s.tag("check") == "mls" for s in result.samples)
    series = next(s.value for s in own if s.metric == "mlwarden.openmetrics.scrape.series")
    assert series == len(forwarded)
    assert "series forwarded" in result.message


def _fields(result):
    return {k: getattr(result, k) for k in result.__slots__}


async def test_invalid_exposition_is_malformed(ctx):
    async with Target({("GET", "/metrics"): canned('metric{label="x" 1\n')}) as t:
        cfg = OpenMetricsCheck.Config(type="openmetrics", name="bad", url=t.url + "/metrics",
                                      metrics=[{"regex": ".*"}])
        result = await OpenMetricsCheck(cfg, ctx).run()
    assert result.status == Status.CRITICAL
    assert "not a valid Prometheus text exposition" in result.message
    [err] = [s for s in result.samples if s.metric == "mlwarden.openmetrics.errors"]
    assert err.tag("error_kind") == "malformed"


async def test_404_and_max_series_warning(ctx):
    async with Target({("GET", "/metrics"): canned(EXPOSITION),
                       ("GET", "/gone"): canned("404 page not found", status=404)}) as t:
        gone = await OpenMetricsCheck(OpenMetricsCheck.Config(
            type="openmetrics", name="gone", url=t.url + "/gone", metrics=[{"regex": ".*"}]),
            ctx).run()
        capped = await OpenMetricsCheck(OpenMetricsCheck.Config(
            type="openmetrics", name="capped", url=t.url + "/metrics", metrics=[{"regex": ".*"}],
            max_series=10), ctx).run()
    assert gone.status == Status.CRITICAL
    assert "answered HTTP 404: 404 page not found" in gone.message
    assert capped.status == Status.OK
    assert any("forwarded only the first 10 series" in w for w in capped.warnings)


async def test_openmetrics_format_by_content_type(ctx):
    text = "# TYPE jobs counter\njobs_total 7\njobs_created 1.7e9\n# EOF\n"
    routes = {("GET", "/m"): canned(text, content_type="application/openmetrics-text")}
    async with Target(routes) as t:
        result = await OpenMetricsCheck(OpenMetricsCheck.Config(
            type="openmetrics", name="om", url=t.url + "/m", metrics=[{"name": "jobs"}]),
            ctx).run()
    assert result.status == Status.OK, result.message
    [jobs] = [s for s in result.samples if s.metric == "mlwarden.openmetrics.jobs"]
    assert jobs.value == 7 and jobs.kind is Kind.MONOTONIC_COUNT
