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
