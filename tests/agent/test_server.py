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


async def test_a_slow_status_or_metrics_render_does_not_hold_the_loop_so_health_answers_meanwhile(
        tmp_path, monkeypatch):
    """A slow serialization (1,000 checks, 10k series) must not hold the loop that runs checks:
    /status is serialized in a worker thread, /metrics is rendered on the loop a slice at a time."""
    import asyncio
    import threading
    import time

    import agent.server as server_mod

    agent, base = await _agent("agent: {listen: 127.0.0.1:PORT, history: 'DB'}\n", tmp_path)
    render_threads: list[int] = []
    real_status, real_metrics = server_mod.render_status, agent.prometheus._chunks
    rendering = threading.Event()

    def slow_status(*args):
        render_threads.append(threading.get_ident())
        rendering.set()
        time.sleep(1.0)  # stands for a big serialization; a blocked loop could answer nothing meanwhile
        return real_status(*args)

    def slow_chunks(*args):
        def chunks():
            rendering.set()
            for _ in range(20):  # a big render's second of work, in 50 ms pieces
                time.sleep(0.05)
                yield b""
            yield from real_metrics(*args)
        return chunks()

    monkeypatch.setattr(server_mod, "render_status", slow_status)
    monkeypatch.setattr(agent.prometheus, "_chunks", slow_chunks)  # the render's work
    try:
        await agent.scheduler.run_once("agent")
        await agent.pipeline.drain(2)
        for path, expect in (("/status", '"name": "agent"'), ("/metrics", "mlwarden_agent_threads")):
            rendering.clear()
            order: list[str] = []

            async def slow_get(path=path):
                code, body = await _get(base + path)
                order.append(path)
                return code, body

            task = asyncio.create_task(slow_get())
            assert await asyncio.to_thread(rendering.wait, 10)
            assert await _get(base + "/healthz") == (200, '{"status": "ok"}')
            order.append("/healthz")
            code, body = await task
            assert code == 200 and expect in body
            assert order == ["/healthz", path]
        assert len(render_threads) == 1 and threading.get_ident() not in render_threads
    finally:
        await agent.stop()


def test_status_snapshot_is_detached_from_the_running_checks(tmp_path):
    from agent.samples import Status
    from agent.scheduler import CheckState
    from agent.server import render_status

    live = CheckState(name="ep", type="model_endpoint", interval=10.0, status=Status.OK, message="fine")
    snap = live.copy()
    live.status, live.message, live.runs = Status.CRITICAL, "down", 7
    doc = json.loads(render_status({"checks": [snap]}))
    assert doc["checks"][0] | {"status": "OK", "message": "fine", "runs": 0} == doc["checks"][0]


def test_status_has_one_line_per_check_and_masks_secrets_in_every_part():
    """/status keeps its indented layout with each instance's row on one line (encoded by
    json's C encoder: the indenting one cost ~100 ms of GIL at 5,000 instances)."""
    from agent.samples import Status
    from agent.scheduler import CheckState
    from agent.secrets import MASK, clear_secrets, register_secret
    from agent.server import render_status

    register_secret("s3cr3t-token-value")
    try:
        states = [CheckState(name=f"ep-{i}", type="model_endpoint", interval=10.0, status=Status.OK,
                             message="sent s3cr3t-token-value" if i == 1 else "fine") for i in range(3)]
        doc = {"agent": {"config": "x"}, "checks": states,
               "components": {"slack": {"last_error": "invalid_auth for s3cr3t-token-value"}}}
        body = render_status(doc).decode()
    finally:
        clear_secrets()
    assert "s3cr3t" not in body and body.count(MASK) == 2
    rows = [ln for ln in body.splitlines() if ln.lstrip().startswith('{"name": "ep-')]
    assert len(rows) == 3
    parsed = json.loads(body)
    assert [c["name"] for c in parsed["checks"]] == ["ep-0", "ep-1", "ep-2"]
    assert parsed["checks"][0] == json.loads(json.dumps(states[0].as_dict()))
    assert parsed["components"]["slack"]["last_error"] == f"invalid_auth for {MASK}"
    assert json.loads(render_status({"checks": []})) == {"checks": []}


def test_metrics_render_is_safe_while_the_loop_feeds_and_forgets_series():
    """render() runs in worker threads while consume()/forget() run on the loop."""
    import threading

    from agent.export.prometheus import PrometheusExporter
    from agent.samples import CheckResult, Sample, Status

    exporter = PrometheusExporter()
    errors: list[BaseException] = []
    done = threading.Event()

    def feed() -> None:
        try:
            for round_ in range(300):
                for c in range(20):
                    check = f"c{c}"
                    exporter.consume(CheckResult(check, "model_endpoint", Status.OK, samples=[
                        Sample("mlwarden.endpoint.up", 1, (("check", check), ("n", str(round_ * 7 + i))), 1.0)
                        for i in range(10)]))
                if round_ % 10 == 0:
                    exporter.forget(f"c{round_ % 20}")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            done.set()

    def scrape() -> None:
        try:
            for _ in range(2000):
                if done.is_set():
                    return
                exporter.render()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=feed), *(threading.Thread(target=scrape) for _ in range(2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    body = exporter.render().decode()
    assert body.count("mlwarden_endpoint_up{") == 200  # 20 instances x 10 series, none forgotten last
