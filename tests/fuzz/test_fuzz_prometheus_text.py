"""Fuzzing the Prometheus-text readers: the openmetrics check's parse/select and the GPU
check's dcgm-exporter parser. Any text gives readings or a ValueError naming the problem
(which the checks turn into a CRITICAL status with the URL), never another exception."""

from __future__ import annotations

import math

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.gpu.dcgm import parse_exposition
from checks.openmetrics.config import MetricSelector
from checks.openmetrics.select import parse_families, select_samples
from tests.checks.gpu_dcgm_samples import DcgmGpu, exposition

pytestmark = pytest.mark.unit

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.sampled_from(["up", "http_requests", "http_requests_total", "DCGM_FI_DEV_GPU_UTIL",
                         "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
                         "DCGM_EXP_XID_ERRORS_COUNT", "DCGM_FI_DEV_FB_USED", "lat_seconds",
                         "lat_seconds_bucket", "lat_seconds_sum", "lat_seconds_count", "x"]) | \
    st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)
label_names = st.sampled_from(["UUID", "gpu", "Hostname", "GPU_I_ID", "xid", "le", "check",
                               "quantile", "pod", "modelName"]) | \
    st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,6}", fullmatch=True)
label_values = st.text(max_size=12) | st.sampled_from(["0", "1", "+Inf", "GPU-1", "", "\\", '"'])
values = st.sampled_from(["0", "1", "-1", "NaN", "+Inf", "-Inf", "1e308", "1e309", "-0",
                          "9223372036854775794", "140737488355330", "0x10", "1_0", "", "abc"]) | \
    st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.integers().map(str)
types = st.sampled_from(["counter", "gauge", "histogram", "summary", "untyped", "info",
                         "stateset", "unknown", "bogus", ""])


@st.composite
def sample_line(draw: st.DrawFn) -> str:
    labels = draw(st.dictionaries(label_names, label_values, max_size=4))
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    ts = draw(st.sampled_from(["", " 1700000000000", " -5", " x"]))
    return f"{draw(names)}{{{body}}} {draw(values)}{ts}" if labels or draw(st.booleans()) \
        else f"{draw(names)} {draw(values)}{ts}"


@st.composite
def exposition_text(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 5))
        if kind == 0:
            lines.append(f"# TYPE {draw(names)} {draw(types)}")
        elif kind == 1:
            lines.append(f"# HELP {draw(names)} {draw(st.text(max_size=10))}")
        elif kind == 2:
            lines.append(draw(st.text(max_size=30)))
        else:
            lines.append(draw(sample_line()))
    end = draw(st.sampled_from(["\n", "", "\n# EOF\n", "\r\n"]))
    return "\n".join(lines) + end


DCGM = exposition([DcgmGpu(0, "GPU-aaaa"), DcgmGpu(1, "GPU-bbbb", mig_profile="1g.10gb", mig_id="3")])


@st.composite
def mutated_dcgm(draw: st.DrawFn) -> str:
    """The recorded dcgm-exporter output with lines dropped, duplicated, replaced or cut."""
    lines = DCGM.splitlines()
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.integers(0, 4))
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            lines[i] = draw(sample_line())
        elif op == 3:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        else:
            head, _, _ = lines[i].rpartition(" ")
            lines[i] = f"{head} {draw(values)}"
        if not lines:
            break
    return "\n".join(lines) + "\n"


def _check_selected(text: str, openmetrics: bool) -> None:
    try:
        families = parse_families(text, openmetrics=openmetrics)
    except ValueError as exc:
        assert str(exc).startswith("not a valid "), exc
        return
    out = select_samples(families, [MetricSelector(regex=".*")], label_map={"gpu": "device"},
                         drop_labels=["pod"], limit=1000)
    for s in out:
        assert s.name.startswith("mlwarden.openmetrics."), s.name
        assert isinstance(s.value, float) and not math.isnan(s.value)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in s.tags.items())
        assert "check" not in s.tags  # a source label never replaces the instance's tag


@FAST
@given(exposition_text(), st.booleans())
def test_openmetrics_parse_and_select_never_crash(text: str, openmetrics: bool) -> None:
    _check_selected(text, openmetrics)


@FAST
@given(mutated_dcgm())
def test_openmetrics_on_mutated_dcgm_output(text: str) -> None:
    _check_selected(text, False)


def _check_dcgm(text: str) -> None:
    try:
        nodes, blanks = parse_exposition(text, "fallback-node")
    except ValueError:
        return  # DcgmSource reports it as "<url> is not Prometheus text exposition: ..."
    assert blanks >= 0
    for node in nodes:
        assert node.node
        for gpu in node.gpus:
            assert gpu.uuid


@FAST
@given(exposition_text())
def test_dcgm_parser_never_crashes(text: str) -> None:
    _check_dcgm(text)


@FAST
@given(mutated_dcgm())
def test_dcgm_parser_on_mutated_exporter_output(text: str) -> None:
    _check_dcgm(text)


def test_dcgm_parser_reads_the_unmutated_output() -> None:
    """The fuzz above starts from output this parser reads in full (so mutations matter)."""
    nodes, _ = parse_exposition(DCGM, "fallback-node")
    assert sorted(g.uuid for n in nodes for g in n.gpus) == ["GPU-aaaa", "GPU-bbbb/gi3"]


def test_dcgm_infinite_integer_fields_are_dropped_not_crashing() -> None:
    """Found while writing these tests: ``int(-inf)`` raised OverflowError out of the parser
    (the check then reported "check crashed" instead of reading the other fields)."""
    lines = [ln if not ln.startswith("DCGM_FI_DEV_XID_ERRORS{") else ln.rpartition(" ")[0] + " -Inf"
             for ln in DCGM.splitlines()]
    nodes, blanks = parse_exposition("\n".join(lines) + "\n", "n")
    assert {g.uuid for n in nodes for g in n.gpus} == {"GPU-aaaa", "GPU-bbbb/gi3"}
    assert all(g.last_xid is None for n in nodes for g in n.gpus)
    assert blanks >= 2


def test_dcgm_xid_label_that_is_a_digit_but_not_a_number() -> None:
    """``"²".isdigit()`` is true but ``int("²")`` raises: such a series is skipped."""
    gpu = DcgmGpu(0, "GPU-aaaa")
    text = exposition([gpu], extra={"DCGM_EXP_XID_ERRORS_COUNT": [(gpu, {"xid": "²"}, 2.0),
                                                                   (gpu, {"xid": "13"}, 1.0)]})
    nodes, _ = parse_exposition(text, "n")
    assert nodes[0].gpus[0].xid_window_counts == {13: 1.0}
