"""The agent's /metrics scraped by a real Prometheus, and pushed to a real Pushgateway.

``mlwarden run`` runs as a subprocess with a temporary config on a free port; Prometheus
(Debian package, installed by tests/peers/install-promstack.sh) scrapes it every second
and the test asks Prometheus' HTTP API what it stored: names, types (metadata API) and
labels must be those the catalog declares.
"""

from __future__ import annotations

import json
import urllib.parse

import pytest

from agent.catalog import load_catalog
from tests.export.agent_proc import start_agent
from tests.support.procs import PEERS, Proc, free_port, http_get, require_peer, wait_for, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HINT = "bash tests/peers/install-promstack.sh"


def api(base: str, path: str, **params: str) -> dict:
    status, body = http_get(f"{base}{path}?{urllib.parse.urlencode(params)}", timeout=5)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)["data"]


@pytest.fixture
def agent(tmp_path):
    proc, port = start_agent(tmp_path)
    yield port
    proc.stop()


def test_prometheus_scrapes_the_agent_with_catalog_names_types_and_labels(tmp_path, agent):
    binary = require_peer(PEERS / "promstack/bin/prometheus", HINT)
    pport = free_port()
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: mlwarden
    static_configs: [{{targets: ["127.0.0.1:{agent}"]}}]
""")
    prom = Proc("prometheus", [binary, f"--config.file={tmp_path}/prometheus.yml",
                               f"--storage.tsdb.path={tmp_path}/tsdb",
                               f"--web.listen-address=127.0.0.1:{pport}"], log_dir=tmp_path)
    with prom:
        base = f"http://127.0.0.1:{pport}"
        wait_http(f"{base}/-/ready", timeout=30, proc=prom)

        def runs():
            data = api(base, "/api/v1/query", query='mlwarden_check_runs_total{check="agent"}')
            return data["result"]

        result = wait_for(runs, 40, 0.5, "Prometheus to have scraped mlwarden_check_runs_total")
        labels = result[0]["metric"]
        assert labels["check_type"] == "agent" and labels["env"] == "test"
        assert labels["job"] == "mlwarden" and labels["instance"] == f"127.0.0.1:{agent}"

        # every mlwarden series Prometheus stored is a catalog metric under its converted name
        # (a histogram's samples are its name + _bucket, _sum, _count)
        catalog = {spec.prometheus: spec for spec in load_catalog()}
        catalog |= {f"{spec.prometheus}_{part}": spec for spec in load_catalog()
                    if spec.kind.value == "distribution" for part in ("bucket", "sum", "count")}
        wait_for(lambda: "mlwarden_exporter_last_success_seconds" in api(base, "/api/v1/label/__name__/values"),
                 20, 0.5, "the exporter health series")
        names = [n for n in api(base, "/api/v1/label/__name__/values") if n.startswith("mlwarden_")]
        assert names and set(names) <= set(catalog), set(names) - set(catalog)
        for expected in ("mlwarden_agent_memory_rss_bytes", "mlwarden_check_duration_seconds",
                         "mlwarden_agent_cpu_time_seconds_total", "mlwarden_exporter_last_success_seconds"):
            assert expected in names

        # types, help and units as the catalog declares them (Prometheus' metadata API).
        # Prometheus asks for OpenMetrics and gets it: families are named without _total
        # and carry their unit
        def metadata():
            meta = api(base, "/api/v1/metadata")
            return meta if "mlwarden_agent_memory_rss_bytes" in meta else None

        meta = wait_for(metadata, 20, 0.5, "target metadata")
        for name in names:
            spec = catalog[name]
            family = spec.prometheus.removesuffix("_total") if spec.kind.value.endswith("count") \
                else spec.prometheus
            want = {"gauge": "gauge", "distribution": "histogram"}.get(spec.kind.value, "counter")
            assert meta[family][0]["type"] == want, name
            assert meta[family][0]["help"] == spec.description, name
        assert meta["mlwarden_agent_cpu_time_seconds"][0]["unit"] == "seconds"

        up = api(base, "/api/v1/query", query='mlwarden_exporter_up{exporter="prometheus"}')["result"]
        assert up and up[0]["value"][1] == "1"
        status, body = http_get(f"http://127.0.0.1:{agent}/status", timeout=5)
        components = json.loads(body)["components"]
        assert components["prometheus"]["state"] == "ok" and components["prometheus"]["scrapes"] >= 1
        assert components["exporter-health"]["exporters"] == ["prometheus"]
        # a counter only grows across scrapes
        first = float(runs()[0]["value"][1])
        wait_for(lambda: float(runs()[0]["value"][1]) > first, 20, 0.5, "the runs counter to grow")


def test_pushgateway_receives_the_agents_metrics_under_its_grouping_key(tmp_path):
    binary = require_peer(PEERS / "promstack/bin/pushgateway", HINT)
    gport = free_port()
    gw = Proc("pushgateway", [binary, f"--web.listen-address=127.0.0.1:{gport}",
                              f"--persistence.file={tmp_path}/pgw.data"], log_dir=tmp_path)
    gw.start()
    try:
        base = f"http://127.0.0.1:{gport}"
        wait_http(f"{base}/-/ready", timeout=30, proc=gw)
        extra = f"""  prometheus:
    enabled: true
    pushgateway: {{url: "{base}", job: mlwarden-test, interval: 500ms, timeout: 2s}}"""
        agent, port = start_agent(tmp_path, extra)
        try:
            def group():
                status, body = http_get(f"{base}/api/v1/metrics", timeout=5)
                groups = json.loads(body)["data"] if status == 200 else []
                return next((g for g in groups if "mlwarden_check_runs_total" in g), None)

            # a new counter is pushed at 0 first, its runs from the next push on
            found = wait_for(lambda: (g := group()) and float(
                g["mlwarden_check_runs_total"]["metrics"][0]["value"]) >= 1 and g, 30, 0.5,
                "the agent's pushes to arrive")
            assert found["labels"] == {"job": "mlwarden-test", "instance": "test-agent"}
            runs = found["mlwarden_check_runs_total"]
            assert runs["type"] == "COUNTER"
            assert runs["metrics"][0]["labels"]["check"] == "agent"
            assert float(runs["metrics"][0]["value"]) >= 1
            assert found["mlwarden_agent_memory_rss_bytes"]["type"] == "GAUGE"

            # the gateway goes away: the agent keeps running and says so in /status
            gw.stop()
            def failing():
                status, body = http_get(f"http://127.0.0.1:{port}/status", timeout=5)
                pg = json.loads(body)["components"]["pushgateway"]
                return pg if pg["state"] == "failing" else None

            pg = wait_for(failing, 20, 0.5, "/status to show the pushgateway failing")
            assert "unreachable" in pg["last_error"] and pg["failures"] >= 1
            assert agent.poll() is None
            status, _ = http_get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
        finally:
            agent.stop()
    finally:
        gw.stop()
