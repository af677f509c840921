"""The check firewall: whatever a check does, run() returns a clear result."""

from __future__ import annotations

import asyncio

import pytest

from agent.check import CheckContext, InstanceConfig
from agent.samples import Kind, Status
from agent.secrets import register_secret
from tests.support.testchecks import CrashCheck, DownCheck, FastCheck, GarbageCheck, HangCheck


def make(cls, **kw):
    cfg = InstanceConfig(type=cls.type_name, name=kw.pop("name", "t1"), **kw)
    return cls(cfg, CheckContext())


async def test_ok_check_reports_ok_with_instance_tags():
    check = make(FastCheck, tags={"team": "ml"})
    result = await check.run()
    assert result.status is Status.OK
    assert result.message == "fast and fine"
    assert result.error is None


async def test_crash_becomes_unknown_with_scrubbed_message_and_keeps_samples():
    register_secret("hunter2-secret")
    result = await make(CrashCheck).run()
    assert result.status is Status.UNKNOWN
    assert result.error == "exception"
    assert "RuntimeError: boom" in result.message
    assert "hunter2-secret" not in result.message and "********" in result.message
    assert [s.metric for s in result.samples] == ["mlwarden.test.partial"]


async def test_check_error_means_target_down_critical():
    result = await make(DownCheck).run()
    assert result.status is Status.CRITICAL
    assert result.message == "target refused the connection"


async def test_hang_is_cut_at_timeout_as_unknown():
    result = await make(HangCheck, interval=5, timeout=0.2).run()
    assert result.status is Status.UNKNOWN
    assert result.error == "timeout"
    assert "0.2s" in result.message


async def test_garbage_values_are_dropped_with_warnings_and_an_error_status():
    result = await make(GarbageCheck).run()
    assert result.status is Status.UNKNOWN and result.error == "invalid_samples"
    assert "2 invalid sample(s)" in result.message
    values = {s.metric: s.value for s in result.samples}
    assert values == {"mlwarden.test.good": 1.5, "mlwarden.test.flag": 1.0}
    assert len(result.warnings) == 2
    assert any("mlwarden.test.nan" in w for w in result.warnings)


async def test_tags_merge_agent_instance_and_sample_tags():
    cfg = InstanceConfig(type="test_fast", name="n1", tags={"env": "prod", "team": "a"})
    check = FastCheck(cfg, CheckContext(agent_tags={"env": "dev", "region": "eu"}))
    check._now = 1.0
    check.gauge("x.y", 1, tags={"team": "b"})
    sample = check._samples[0]
    assert sample.tag_dict == {"env": "prod", "region": "eu", "team": "b", "check": "n1"}
    assert sample.kind is Kind.GAUGE and sample.metric == "mlwarden.x.y"


async def test_worst_service_check_wins():
    check = make(FastCheck)
    check.service_check(Status.OK, "fine")
    check.service_check(Status.CRITICAL, "bad")
    check.service_check(Status.WARNING, "meh")
    assert check._status is Status.CRITICAL and check._message == "bad"


def test_timeout_defaults_to_interval_capped_at_10s():
    assert InstanceConfig(type="x", name="a", interval=3).deadline == 3
    assert InstanceConfig(type="x", name="a", interval=60).deadline == 10
    assert InstanceConfig(type="x", name="a", interval=60, timeout="30s").deadline == 30


async def test_cancellation_propagates():
    check = make(HangCheck, interval=60, timeout=30)
    task = asyncio.ensure_future(check.run())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_tag_tuples_share_their_pairs_and_equal_make_tags():
    """Memory (issue #20): a check's tag tuples hold one tuple per (tag, value) pair, shared
    with the agent's other checks (agent tags) and with the tag-set cache's key; the tags
    themselves are exactly what make_tags gives."""
    from agent.samples import make_tags

    context = CheckContext(agent_tags={"region": "eu"}, agent="a1")
    one = FastCheck(InstanceConfig(type="test_fast", name="n1"), context)
    two = FastCheck(InstanceConfig(type="test_fast", name="n2", tags={"team": "a"}), context)
    assert dict(one._base_tags)["region"] is dict(two._base_tags)["region"]
    assert one._base_tags[0] is two._base_tags[0] == ("agent", "a1")
    tags = {"model": "m", "code": 7, "check": "other"}
    merged = two.merged_tags(tags)
    assert merged == make_tags(two._base_tags, tags)
    assert merged is two.merged_tags(dict(tags))  # the same tuple for the same tags
    key_pairs = {id(p) for p in next(iter(two._tag_cache))}
    shared = [p for p in merged if id(p) in key_pairs]
    assert shared == [("check", "other"), ("model", "m")]  # not ("code", "7"): made by make_tags
    assert [p for p in merged if p[0] == "code"] == [("code", "7")]


async def test_whole_number_values_become_shared_floats():
    check = make(FastCheck)
    check.gauge("a", 200)
    check.gauge("b", True)
    check.gauge("c", 10**6)
    check.gauge("d", -0.0)
    first, _ = check._validated_samples()
    check.gauge("a", 200)
    again, _ = check._validated_samples()
    values = [s.value for s in first]
    assert values == [200.0, True, 1e6, -0.0] and type(values[0]) is float
    assert str(values[3]) == "-0.0"
    assert again[0].value is first[0].value  # one float object for 200, held once


async def test_each_run_hands_over_its_own_warnings():
    """The run's warnings list goes to its result (no copy) and the check keeps none
    between runs: a later run neither adds to an earlier result nor inherits its lines."""
    check = make(GarbageCheck)
    first, second = await check.run(), await check.run()
    assert first.warnings == second.warnings and len(first.warnings) == 2
    assert first.warnings is not second.warnings and check._warnings is None
    quiet = make(FastCheck)
    one, two = await quiet.run(), await quiet.run()
    assert one.warnings == [] and two.warnings == [] and one.warnings is not two.warnings
