"""The dead man's switch pinging a real HTTP server on loopback."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from agent.config import parse_config
from agent.heartbeat import Heartbeat, HeartbeatConfig
from agent.secrets import scrub
from tests.support.targets import Target, canned


def _recording(status: int = 200):
    seen: list[tuple[str, bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, await request.read()))
        return web.Response(status=status, text="OK")

    return handler, seen


async def test_pings_on_a_schedule_until_stopped():
    handler, seen = _recording()
    async with Target({("GET", "/ping/abc-123"): handler}) as target:
        async with aiohttp.ClientSession() as session:
            beat = Heartbeat(HeartbeatConfig(url=f"{target.url}/ping/abc-123", interval=0.05),
                             lambda: session)
            await beat.start()
            for _ in range(100):
                if len(seen) >= 3:
                    break
                await asyncio.sleep(0.05)
            await beat.stop()
            count = len(seen)
            await asyncio.sleep(0.2)
    assert count >= 3 and len(seen) == count           # it stops when told
    assert beat.status()["sent"] == count and beat.status()["failed"] == 0


async def test_not_ready_pings_the_fail_url_with_the_reason():
    ok, ok_seen = _recording()
    fail, fail_seen = _recording()
    async with Target({("POST", "/p"): ok, ("POST", "/p/fail"): fail}) as target:
        async with aiohttp.ClientSession() as session:
            problems: list[str] = []
            beat = Heartbeat(HeartbeatConfig(url=f"{target.url}/p", fail_url=f"{target.url}/p/fail",
                                             method="POST"), lambda: session, lambda: problems)
            assert await beat.beat()
            problems.append("the scheduler is not running")
            assert await beat.beat()
    assert ok_seen == [("POST", b"ok")]
    assert fail_seen == [("POST", b"the scheduler is not running")]


async def test_failures_are_counted_and_never_show_the_url():
    config = parse_config("heartbeat: {url: 'http://127.0.0.1:1/ping/s3cr3t-uuid', timeout: 2s}")
    async with aiohttp.ClientSession() as session:
        beat = Heartbeat(config.heartbeat, lambda: session)
        assert not await beat.beat()                       # connection refused
    assert beat.failed == 1
    assert "s3cr3t-uuid" not in beat.last_error and "cannot reach" in beat.last_error
    assert "s3cr3t-uuid" not in scrub(str(beat.status()))


async def test_an_http_error_is_a_failed_ping():
    async with Target({("GET", "/p"): canned("down", status=503)}) as target:
        async with aiohttp.ClientSession() as session:
            beat = Heartbeat(HeartbeatConfig(url=f"{target.url}/p"), lambda: session)
            assert not await beat.beat()
    assert beat.last_error == "the heartbeat endpoint answered HTTP 503"
