"""Hands alerts to an Alertmanager (``POST /api/v2/alerts``) so a fleet of agents can leave
de-duplication, grouping and routing to an Alertmanager cluster.

Alertmanager considers an alert resolved when ``endsAt`` passes, so firing alerts are
re-posted on a period (``alerting.alertmanager.resend_interval``) with no ``endsAt``, and a
resolution is posted with ``endsAt`` set. Posting is idempotent: Alertmanager merges alerts
with equal labels, which is why two agents sending the same alert produce one notification.

For that the labels of an alert about a *target* (a model endpoint, a DAG, a GPU node) must
not depend on which agent saw it: the ``agent`` label (the hostname every local check adds)
is sent as an annotation instead. Alerts about an agent itself (its self-check,
``mlwarden.agent.*``, and the metrics of agent/metadata.csv: its checks' status, its
components) keep ``agent`` as a label: each agent's trouble is its own alert.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiohttp

from agent.notify.base import Alert, Notification, Notifier, NotifyError, SendContext
from agent.secrets import scrub

__all__ = ["AlertmanagerNotifier", "about_agent", "am_alert"]


# Alertmanager refuses label names outside [a-zA-Z_][a-zA-Z0-9_]* (HTTP 400 for the whole batch)
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]|^(?=[0-9])")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@lru_cache(maxsize=1)
def _agent_metrics() -> frozenset[str]:
    """The metrics declared by the agent itself (agent/metadata.csv)."""
    from agent.catalog import read_metadata_csv

    own = Path(__file__).resolve().parents[1] / "metadata.csv"
    return frozenset(spec.name for spec in read_metadata_csv(own))


def about_agent(metric: str | None) -> bool:
    """Whether an alert on ``metric`` is about the agent that sent it, not about a target."""
    return metric is not None and (metric.startswith("mlwarden.agent.")
                                   or metric in _agent_metrics())


def am_alert(alert: Alert, generator_url: str | None) -> dict[str, Any]:
    """One alert in Alertmanager's API shape (labels and annotations are strings only).

    The labels of an alert about a target are the same whichever agent sends it."""
    labels = {
        _LABEL_BAD.sub("_", k) if _LABEL_BAD.search(k) else k: str(v)
        for k, v in alert.labels.items()
        if not k.startswith("__") and k != "alert"
    }
    labels["alertname"] = alert.rule
    annotations = {k: str(v) for k, v in alert.annotations.items() if v is not None}
    if "agent" in labels and not about_agent(alert.metric):
        annotations["agent"] = labels.pop("agent")  # who saw it, not what it is about
    if alert.value is not None:
        annotations.setdefault("value", f"{alert.value:g}")
    if alert.threshold is not None:
        annotations.setdefault("threshold", f"{alert.threshold:g}")
    doc: dict[str, Any] = {"labels": labels, "annotations": annotations}
    if alert.started is not None:
        doc["startsAt"] = _iso(alert.started)
    if alert.state == "resolved" and alert.resolved_at is not None:
        doc["endsAt"] = _iso(alert.resolved_at)
    if generator_url:
        doc["generatorURL"] = generator_url
    return doc


class AlertmanagerNotifier(Notifier):
    type = "alertmanager"

    def __init__(
        self, name: str, *, url: str, timeout: float = 10.0, generator_url: str | None = None
    ) -> None:
        self.name = name
        self.description = "Alertmanager"
        self._url = url.rstrip("/") + "/api/v2/alerts"
        self._timeout = timeout
        self._generator_url = generator_url
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, note: Notification, ctx: SendContext) -> dict[str, Any]:
        body = [am_alert(a, self._generator_url) for a in note.alerts]
        if not body:
            return {"posted": 0}
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        where = f"alertmanager receiver {self.name!r}"
        try:
            async with self._session.post(self._url, json=body) as resp:
                text = await resp.text()
                status = resp.status
                after = resp.headers.get("Retry-After")
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise NotifyError(f"{where}: timed out posting to {self._url}", retryable=True,
                              reason="timeout") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise NotifyError(
                f"{where}: cannot reach {self._url}: {scrub(str(exc))[:200]}", retryable=True,
                reason="network",
            ) from exc
        if 200 <= status < 300:
            return {"posted": len(body)}
        if status == 429 or status >= 500:
            raise NotifyError(
                f"{where}: HTTP {status} from {self._url}",
                retryable=True,
                retry_after=float(after) if after and after.isdigit() else None,
                reason="rate_limited" if status == 429 else "server_error",
                status=status,
            )
        raise NotifyError(
            f"{where}: Alertmanager refused the alerts: HTTP {status} {scrub(text)[:300]}",
            retryable=False,
            reason="rejected",
            status=status,
        )
