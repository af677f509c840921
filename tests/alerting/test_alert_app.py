"""The `alerting` component inside the running agent (embedded default: the console receiver)."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.app import Agent
from agent.config import parse_config
from tests.alerting.helpers import fire
from tests.support.procs import free_port

pytestmark = pytest.mark.integration


async def test_agent_runs_alerting_with_console_default(tmp_path, capsys):
    config = parse_config(f"""
agent: {{history: "sqlite:///{tmp_path / 'm.db'}", listen: "127.0.0.1:{free_port()}", self_check: false}}
alerting: {{group_wait: 0s, delivery: {{tick: 0.1s}}}}
""")
    agent = Agent(config)
    assert agent.alerting is not None and agent.alerting in agent.components
    await agent.start()
    try:
        now = time.time()
        agent.alerting.alerts_changed([fire("GpuIdle", {"node": "gpu-3"}, now)], now)
        for _ in range(50):
            await asyncio.sleep(0.1)
            if "[FIRING:1] GpuIdle" in capsys.readouterr().out:
                break
        else:
            raise AssertionError("the console receiver printed nothing")
        status = agent.status()["components"]["alerting"]
        assert status["receivers"]["console"]["sent"] == 1 and status["last_error"] is None
    finally:
        await agent.stop()


async def test_embedded_defaults_alert_on_the_console_out_of_the_box(tmp_path, capsys):
    """`mlwarden run` without a config: the agent's own rule pack fires to the console receiver."""
    from agent.alerting.config import AlertingConfig
    from agent.config import default_config
    from agent.samples import CheckResult, Sample, Status

    defaults = default_config()
    assert {r.alert for r in defaults.rules} >= {"CheckStalled", "CheckTargetCritical", "CheckFailingRepeatedly"}
    assert defaults.alerting.slack is None  # so the default receiver is the console
    # only the places and the wait differ from the defaults: a test cannot wait group_wait (30 s)
    config = defaults.model_copy(update={
        "agent": defaults.agent.model_copy(update={"history": f"sqlite:///{tmp_path / 'm.db'}",
                                                   "listen": f"127.0.0.1:{free_port()}",
                                                   "self_check": False}),
        "alerting": AlertingConfig.model_validate({"group_wait": "0s", "delivery": {"tick": "0.1s"}}),
    })
    agent = Agent(config)
    await agent.start()
    try:
        agent.pipeline.submit(CheckResult("agent", "agent", Status.OK, samples=[
            Sample("mlwarden.agent.check.consecutive_failures", 3.0, (("check", "ranker"),), time.time())]))
        printed = ""
        for _ in range(100):
            await asyncio.sleep(0.1)
            printed += capsys.readouterr().out
            if "CheckFailingRepeatedly" in printed:
                break
        else:
            raise AssertionError(f"the console receiver printed no alert: {printed[-500:]!r}")
        assert "[FIRING:1] CheckFailingRepeatedly" in printed and "ranker" in printed
    finally:
        await agent.stop()
