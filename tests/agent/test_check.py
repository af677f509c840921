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
