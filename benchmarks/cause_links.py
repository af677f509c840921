"""What the cause graph costs the dispatcher: one round (``Dispatcher.flush``) with the
shipped graph on against the same round with ``causes: {enabled: false}``, side by side in
one run (the machine is shared and noisy, so only ratios mean much).

The alerts are ones the graph reads: on each of NODES nodes a model down and a failed
Airflow task, and an XID 79 on every tenth node (which then explains the other two), plus
as many alerts of no kind (GpuIdle) that the graph skips. Measured: the first round (every
alert new: grouping, linking, the outbox writes, the alert_links rows) and a steady round
(nothing new: what every tick of the dispatcher pays).
Run: .venv/bin/python benchmarks/cause_links.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.alerting.config import AlertingConfig  # noqa: E402
from agent.alerting.dispatch import Dispatcher  # noqa: E402
from agent.alert import Alert, AlertEvent, AlertState  # noqa: E402
from agent.causes.config import CausesConfig  # noqa: E402
from agent.history.db import create_schema, make_engine  # noqa: E402
from agent.notify.console import ConsoleNotifier  # noqa: E402

NODES = 500
ROUNDS = 30
NOW = 1_790_000_000.0


def events() -> list[AlertEvent]:
    out = []

    def add(rule: str, labels: dict[str, str]) -> None:
        alert = Alert.of(rule, labels, "firing", "critical", active_since=NOW - 30,
                         fired_at=NOW, annotations={"summary": rule})
        out.append(AlertEvent(alert, AlertState.PENDING, NOW, AlertState.FIRING))

    for n in range(NODES):
        node = f"gpu-node-{n}"
        add("EndpointDown", {"check": f"m{n}", "model": f"m{n}", "node": node})
        add("AirflowTaskFailed", {"dag_id": "train", "task_id": "fit", "run_id": f"r{n}",
                                  "hostname": node})
        add("GpuIdle", {"node": node, "gpu": "0"})
        if n % 10 == 0:
            add("GpuXidCritical", {"node": node, "gpu": "3", "xid": "79"})
    return out


def run(tmp: str, enabled: bool) -> tuple[float, list[float]]:
    engine = make_engine(f"sqlite:///{tmp}/{'on' if enabled else 'off'}.db")
    create_schema(engine)
    cfg = AlertingConfig.model_validate({"group_wait": 0, "group_by": ["alertname", "node"]})
    d = Dispatcher(cfg, engine, notifiers={"console": ConsoleNotifier()},
                   causes=CausesConfig(enabled=enabled))
    d.alerts_changed(events(), NOW)
    t = time.perf_counter()
    d.flush(NOW)
    first = time.perf_counter() - t
    steady = []
    for i in range(ROUNDS):
        t = time.perf_counter()
        d.flush(NOW + 1 + i)
        steady.append(time.perf_counter() - t)
    return first, steady


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        off_first, off = run(tmp, False)
        on_first, on = run(tmp, True)
    alerts = len(events())
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"{alerts} alerts ({NODES} nodes), median of {ROUNDS} steady rounds")
    print(f"  first round:  causes on {on_first * 1e3:8.1f} ms   off {off_first * 1e3:8.1f} ms"
          f"   {on_first / off_first:.2f}x")
    print(f"  steady round: causes on {m_on * 1e3:8.1f} ms   off {m_off * 1e3:8.1f} ms"
          f"   {m_on / m_off:.2f}x   (+{(m_on - m_off) * 1e3:.1f} ms a tick)")


if __name__ == "__main__":
    main()
