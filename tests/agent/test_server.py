"""The HTTP server, in-process: health, readiness, status, metrics and the bearer token."""

from __future__ import annotations

import json

import aiohttp

from agent.app import Agent
from agent.config import parse_config
from tests.support.procs import free_port


async def _get(url, headers=None):
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers=headers or {}) as r:
            return r.status, await r.text()


async def _agent(text, tmp_path):
    port = free_port()
    text = text.replace("PORT", str(port)).replace("DB", f"sqlite:///{tmp_path}/h.db")
    cfg = parse_config(text, env={"TOKEN": "tok-abc-123"})
    agent = Agent(cfg)
    await agent.start()
    return agent, f"http://127.0.0.1:{port}"


async def test_endpoints_answer(tmp_path):
    agent, base = await _agent("agent: {listen: 127.0.0.1:PORT, history: 'DB'}\n", tmp_path)
    try:
        await agent.scheduler.run_once("agent")
        await agent.pipeline.drain(2)
        assert await _get(base + "/healthz") == (200, '{"status": "ok"}')
        code, body = await _get(base + "/readyz")
        assert code == 200
        code, body = await _get(base + "/status")
        doc = json.loads(body)
        assert code == 200 and doc["checks"][0]["name"] == "agent"
        assert doc["checks"][0]["status"] == "OK"
        code, body = await _get(base + "/metrics")
        assert code == 200 and "mlwarden_agent_threads" in body
    finally:
        await agent.stop()


async def test_readyz_fails_when_scheduler_stopped(tmp_path):
    agent, base = await _agent("agent: {listen: 127.0.0.1:PORT, history: 'DB'}\n", tmp_path)
    try:
        agent.scheduler.shutdown()
        code, body = await _get(base + "/readyz")
        assert code == 503 and "scheduler is not running" in body
    finally:
        await agent.stop()


async def test_bearer_token_guards_status_and_metrics_but_not_probes(tmp_path):
    agent, base = await _agent("agent: {listen: 127.0.0.1:PORT, history: 'DB', auth_token: '${TOKEN}'}\n",
                               tmp_path)
    try:
        assert (await _get(base + "/status"))[0] == 401
        assert (await _get(base + "/metrics", {"Authorization": "Bearer wrong"}))[0] == 401
        code, body = await _get(base + "/status", {"Authorization": "Bearer tok-abc-123"})
        assert code == 200 and "tok-abc-123" not in body
        assert (await _get(base + "/healthz"))[0] == 200
        assert (await _get(base + "/readyz"))[0] == 200
    finally:
        await agent.stop()


def test_metrics_render_integer_values_from_outside_the_check_firewall():
    from agent.export.prometheus import PrometheusExporter
    from agent.samples import CheckResult, Sample, Status

    exporter = PrometheusExporter()
    exporter.consume(CheckResult("exporters", "exporters", Status.OK,
                                 samples=[Sample("mlwarden.exporter.up", 1, (("exporter", "x"),), 1.0)]))
    assert 'mlwarden_exporter_up{exporter="x"} 1.0' in exporter.render().decode()
