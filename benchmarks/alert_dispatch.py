"""What routing and grouping cost on top of the outbox write they end in.

Side by side in one run (the machine is shared and noisy, so only ratios mean much):
  A  N raw ``Outbox.enqueue`` calls (the floor: one SQLite transaction per notification)
  B  N alerts through ``Dispatcher``: route, group, mute check, enqueue, save group state
  C  rendering one 10-alert Block Kit message, per call
Run: .venv/bin/python benchmarks/alert_dispatch.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.alerting.config import AlertingConfig  # noqa: E402
from agent.alerting.dispatch import Dispatcher  # noqa: E402
from agent.alert import Alert, AlertEvent, AlertState  # noqa: E402
from agent.history.db import create_schema, make_engine  # noqa: E402
from agent.notify.base import Notification  # noqa: E402
from agent.notify.console import ConsoleNotifier  # noqa: E402
from agent.notify.render import blocks_for  # noqa: E402
from agent.history.outbox import Outbox  # noqa: E402

N = 500


def engine(tmp: str, name: str):
    e = make_engine(f"sqlite:///{tmp}/{name}.db")
    create_schema(e)
    return e


def raw(tmp: str) -> float:
    box = Outbox(engine(tmp, "raw"))
    t = time.perf_counter()
    for i in range(N):
        box.enqueue(
            "notification",
            "slack",
            {"i": i, "alerts": [{"labels": {"n": str(i)}}]},
            now=1.0,
            dedup_key=f"k{i}",
        )
    return time.perf_counter() - t


def dispatched(tmp: str) -> float:
    cfg = AlertingConfig.model_validate({"group_wait": 0, "group_by": ["alertname", "n"]})
    d = Dispatcher(cfg, engine(tmp, "disp"), notifiers={"console": ConsoleNotifier()})
    now = 1_790_000_000.0
    events = [
        AlertEvent(
            Alert.of("GpuIdle", {"n": str(i)}, "firing", fired_at=now),
            AlertState.PENDING,
            now,
            AlertState.FIRING,
        )
        for i in range(N)
    ]
    t = time.perf_counter()
    d.alerts_changed(events, now)
    queued = d.flush(now)
    took = time.perf_counter() - t
    assert queued == N, queued
    return took


def render() -> float:
    alerts = [
        Alert(
            f"f{i}",
            "GpuIdle",
            {"node": f"gpu-{i}", "alertname": "GpuIdle"},
            "firing",
            annotations={"summary": f"gpu-{i} idle", "runbook_url": "https://r.example"},
            value=0.01,
            threshold=0.05,
            fired_at=1.0,
        )
        for i in range(10)
    ]
    note = Notification("slack", "g", {"alertname": "GpuIdle"}, "firing", "i", alerts, 1.0)
    t = time.perf_counter()
    for _ in range(N):
        blocks_for(note, 100.0)
    return (time.perf_counter() - t) / N


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a = raw(tmp)
        b = dispatched(tmp)
        c = render()
    print(f"A raw outbox enqueue:      {a / N * 1e3:7.3f} ms per notification")
    print(f"B route+group+enqueue:     {b / N * 1e3:7.3f} ms per alert")
    print(f"  ratio B/A:               {b / a:7.2f}")
    print(f"C render 10-alert message: {c * 1e3:7.3f} ms ({c / (a / N):.2f}x one outbox write)")


if __name__ == "__main__":
    main()
