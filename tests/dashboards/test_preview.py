"""``mlwarden dashboards preview``: PNGs drawn from the history a real agent wrote.

The agent (``mlwarden run``, temporary SQLite store) runs for a few seconds against a
TF Serving fake and a closed port; then the preview reads that store, read only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from matplotlib import image as mpimg

from agent.dashboards.preview import aggregate, panel_series
from agent.dashboards.spec import AGENT, DASHBOARDS, ENDPOINTS, Q
from agent.history.store import HistoryStore
from agent.samples import Kind
from tests.dashboards.live_targets import ThreadedTargets
from tests.dashboards.test_grafana_prometheus import tfserving
from tests.export.agent_proc import start_agent
from tests.support.procs import free_port, wait_for

MLWARDEN = Path(sys.executable).with_name("mlwarden")


def test_aggregate_splits_by_tags_and_turns_counters_into_rates():
    a, b = (("model", "a"),), (("model", "b"),)
    series = {a: [(0.0, 10.0), (10.0, 30.0), (20.0, 5.0)], b: [(0.0, 1.0), (10.0, 2.0)]}
    totals = aggregate(series, Q("mlwarden.agent.cpu.time", "model", agg="sum", rate=True),
                       Kind.MONOTONIC_COUNT, step=10)
    # running totals: (30-10)/10, then a reset (5 < 30) counts from zero: 5/10
    assert totals == {"model=a": [(10.0, 2.0), (20.0, 0.5)], "model=b": [(10.0, 0.1)]}
    deltas = aggregate({a: [(0.0, 4.0), (2.0, 4.0)]},
                       Q("mlwarden.check.runs", agg="sum", rate=True), Kind.COUNT, step=10)
    assert deltas == {"mlwarden.check.runs": [(0.0, 2.0)]}
    gauges = aggregate(series, Q("mlwarden.endpoint.up", agg="max"), Kind.GAUGE, step=60)
    assert gauges == {"mlwarden.endpoint.up": [(0.0, 5.0)]}  # each series' last value, then max


def test_preview_draws_each_dashboard_from_the_history_a_running_agent_wrote(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    with ThreadedTargets(tf=tfserving) as t:
        tf_url = t["tf"].url
        checks = [{"type": "model_endpoint", "name": "tf-ranker", "url": t["tf"].url,
                   "protocol": "tfserving", "model": "ranker", "interval": "1s"},
                  {"type": "model_endpoint", "name": "gone", "url": closed, "protocol": "v2",
                   "model": "ghost", "interval": "1s", "request_timeout": "1s"}]
        extra = f"  prometheus: {{enabled: true}}\nchecks: {json.dumps(checks)}\n"
        agent, _ = start_agent(tmp_path, extra)
        try:
            store = HistoryStore(f"sqlite:///{tmp_path}/history.db")

            def enough() -> bool:
                since = time.time() - 300
                runs = store.read_series("mlwarden.check.runs", since, tags={"check": "tf-ranker"})
                return (len(store.read_series("mlwarden.endpoint.up", since)) == 2
                        and len(next(iter(runs.values()), [])) >= 4)

            wait_for(enough, 30, 0.5, "a few runs of each check in the history")
        finally:
            agent.stop()

    now = time.time()
    ready = dict(panel_series(ENDPOINTS, store, since=now - 300, until=now, step=1))
    by_title = {p.title: lines for p, lines in ready.items()}
    assert set(by_title["Up by endpoint"]) == {f"endpoint={tf_url}", f"endpoint={closed}"}
    assert all(v == 0 for _, v in by_title["Up by endpoint"][f"endpoint={closed}"])
    assert all(v == 1 for _, v in by_title["Up by endpoint"][f"endpoint={tf_url}"])
    assert "error_kind=refused" in by_title["Probe errors by kind"]
    assert not by_title["Canary success"]  # no canary configured: the panel says "no data"
    store.engine.dispose()

    out = tmp_path / "png"
    result = subprocess.run([str(MLWARDEN), "dashboards", "preview", str(out), "--config",
                             str(tmp_path / "agent.yaml"), "--since", "10m"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("reading the last 10m of ")  # says what it is doing
    assert all(f"  drawing {dash.title} ..." in result.stderr for dash in DASHBOARDS)
    for dash in DASHBOARDS:
        png = out / f"{dash.slug}.png"
        assert f"{png}  (" in result.stdout
        height, width, _ = mpimg.imread(png).shape
        assert width >= 1000 and height >= 400
    lines = dict(line.split("  (", 1) for line in result.stdout.splitlines())
    agent_panels = lines[str(out / f"{AGENT.slug}.png")]
    with_data, total = (int(x) for x in agent_panels.split(" panels")[0].split(" of "))
    assert total == sum(1 for r in AGENT.rows for p in r.panels if p.viz != "note")
    assert with_data >= total // 2, agent_panels  # the agent's own health is mostly there


def test_preview_without_history_says_what_to_do(tmp_path):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"agent:\n  history: sqlite:///{tmp_path}/missing.db\n")
    result = subprocess.run([str(MLWARDEN), "dashboards", "preview", str(tmp_path / "png"),
                             "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no history database" in result.stderr and "mlwarden run" in result.stderr
    assert not (tmp_path / "missing.db").exists()
