"""A dead man's switch: ping an external URL on a schedule, so the agent's death is noticed.

Services such as healthchecks.io or Dead Man's Snitch (or Alertmanager fed by a
"watchdog" alert) alert when the pings stop. Rules cannot catch an agent that is dead,
hung or cut off, since they run inside it; this can. When the agent is alive but not
ready (scheduler stopped, pipeline backed up), ``fail_url`` is pinged instead, if set,
so the outside service can say why. A failed ping is logged and counted, never raised;
the URL usually carries a token, so it is a secret and never appears in logs or /status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from agent.durations import Duration
from agent.secrets import scrub
from agent.tasks import cancel_and_wait

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Heartbeat", "HeartbeatConfig"]

log = logging.getLogger(__name__)


class HeartbeatConfig(BaseModel):
    """`heartbeat:` — the external dead man's switch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: SecretStr = Field(description="URL pinged on every beat (e.g. https://hc-ping.com/<uuid>).")
    fail_url: SecretStr | None = Field(
        None, description="URL pinged instead while the agent is not ready (e.g. <url>/fail)."
    )
    interval: Duration = Field(60.0, gt=0, description="Time between pings.")
    timeout: Duration = Field(10.0, gt=0, description="Deadline for one ping.")
    method: Literal["GET", "POST", "HEAD"] = Field("GET")


class Heartbeat:
    """Component ``heartbeat``: one asyncio task that pings, sleeps, and pings again."""

    name = "heartbeat"

    def __init__(
        self,
        config: HeartbeatConfig,
        session: Callable[[], aiohttp.ClientSession],
        problems: Callable[[], list[str]] = list,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._session = session
        self._problems = problems
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0
        self.last_ok: float | None = None
        self.last_error: str | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def status(self) -> dict[str, Any]:
        return {"interval": self.config.interval, "sent": self.sent, "failed": self.failed,
                "last_ok": self.last_ok, "last_error": self.last_error}

    async def beat(self) -> bool:
        """Send one ping now; True when the endpoint answered 2xx."""
        import aiohttp

        problems = self._problems()
        target = self.config.fail_url if problems and self.config.fail_url else self.config.url
        body = ("; ".join(problems) or "ok").encode() if self.config.method == "POST" else None
        try:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout)
            async with self._session().request(self.config.method, target.get_secret_value(),
                                               data=body, timeout=timeout) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    self.sent += 1
                    self.last_ok = self.clock()
                    self.last_error = None
                    return True
                error = f"the heartbeat endpoint answered HTTP {resp.status}"
        except asyncio.TimeoutError:
            error = f"the heartbeat endpoint did not answer within {self.config.timeout:g}s"
        except aiohttp.ClientError as exc:
            error = f"cannot reach the heartbeat endpoint: {type(exc).__name__}: {exc}"
        self.failed += 1
        self.last_error = scrub(error)
        log.warning("heartbeat ping failed (%d so far): %s", self.failed, self.last_error)
        return False

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the heartbeat must keep beating
                self.failed += 1
                log.exception("heartbeat ping crashed")
            await asyncio.sleep(self.config.interval)
