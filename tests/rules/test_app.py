"""The running agent: the rules component evaluates real check results and /status shows
firing alerts."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from agent.app import Agent
from agent.config import parse_config


async def test_status_shows_firing_alerts_from_the_self_check(tmp_path):
    config = parse_config(f"""
agent: {{listen: '127.0.0.1:0', history: 'sqlite:///{tmp_path / "m.db"}', self_check_interval: 1s}}
rules:
  - {{alert: SelfCheckRan, metric: mlwarden.check.runs, where: {{check: agent}}, op: '>=',
     threshold: 1, summary: 'the {{check}} check ran'}}
""")
    agent = Agent(config)
    await agent.start()
    try:
        url = f"http://127.0.0.1:{agent.server.bound_port}/status"
        doc: dict = {}
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                async with session.get(url) as resp:
                    doc = json.loads(await resp.text())
                if doc["components"]["rules"]["firing"]:
                    break
                await asyncio.sleep(0.1)
        firing = doc["components"]["rules"]["firing"]
        assert [(a["alert"], a["summary"]) for a in firing] == [("SelfCheckRan", "the agent check ran")]
    finally:
        await agent.stop()
    from agent.rules.state import AlertStateStore
    from agent.history.db import make_engine

    engine = make_engine(config.agent.history)
    assert [r["rule"] for r in AlertStateStore(engine).list_alerts("firing")] == ["SelfCheckRan"]
    engine.dispose()
