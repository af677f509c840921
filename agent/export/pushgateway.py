"""Push the latest values to a Prometheus Pushgateway, for agents nothing scrapes.

The body is exactly what /metrics serves (one renderer). Each push replaces this agent's
group (HTTP PUT), whose grouping key is ``job`` plus ``instance`` = the agent's hostname,
so series a check stopped reporting disappear from the gateway too. A failed push is
counted and logged once per outage (the next push carries the latest values anyway:
nothing to queue — the Pushgateway only ever keeps the last push).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from agent.export.config import PushgatewayConfig
from agent.export.health import ExporterHealth
from agent.export.prometheus import CONTENT_TYPE, PrometheusExporter
from agent.tasks import cancel_and_wait

__all__ = ["PushgatewayPusher", "group_path"]

log = logging.getLogger(__name__)


def group_path(job: str, instance: str) -> str:
    """``/metrics/job/<job>/instance/<instance>``, base64-encoding values with a ``/``."""
    def part(name: str, value: str) -> str:
        if "/" in value or not value:
            enc = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=") or "="
            return f"{name}@base64/{enc}"
        return f"{name}/{quote(value, safe='')}"

    return f"/metrics/{part('job', job)}/{part('instance', instance)}"


class PushgatewayPusher:
    """Component pushing the Prometheus exporter's exposition on a timer."""

    name = "pushgateway"

    def __init__(self, config: PushgatewayConfig, prometheus: PrometheusExporter, instance: str) -> None:
        self.config = config
        self.prometheus = prometheus
        self.instance = instance
        self.url = config.url.rstrip("/") + group_path(config.job, instance)
        self.health = ExporterHealth("pushgateway")
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pushgateway")
        log.info("pushing metrics to %s every %gs", self.url, self.config.interval)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._session is not None:
            if self.config.delete_on_stop:
                await self._request("DELETE", b"")
            else:
                await self.push()  # the last values before the agent stops
            await self._session.close()
            self._session = None

    def status(self) -> dict[str, Any]:
        return {"url": self.url, "interval_seconds": self.config.interval, **self.health.as_dict()}

    async def _run(self) -> None:
        while True:
            await self.push()
            await asyncio.sleep(self.config.interval)

    async def push(self) -> bool:
        """One push of the latest values; False (counted, logged) when it failed."""
        return await self._request("PUT", await self.prometheus.render_async())

    async def _request(self, method: str, body: bytes) -> bool:
        assert self._session is not None
        try:
            async with self._session.request(method, self.url, data=body,
                                             headers={"Content-Type": CONTENT_TYPE}) as resp:
                if 200 <= resp.status < 300:
                    if self.health.state != "ok" and self.health.failures:
                        log.info("pushgateway %s accepts pushes again", self.url)
                    self.health.success(body.count(b"\n") - 2 * body.count(b"# TYPE"))
                    return True
                text = (await resp.text())[:300]
                error = f"pushgateway {self.url} answered HTTP {resp.status} to a {method}: {text.strip()}"
        except asyncio.TimeoutError:
            error = f"pushgateway {self.url}: no answer within {self.config.timeout:g}s"
        except aiohttp.ClientError as exc:
            error = f"pushgateway {self.url} is unreachable: {exc}"
        if self.health.state != "failing":
            log.warning("%s (retrying every %gs)", error, self.config.interval)
        self.health.failure(error)
        return False
