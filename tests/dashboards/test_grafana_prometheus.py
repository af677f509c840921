"""Every Grafana panel's PromQL, run against a real Prometheus that scraped a running agent.

``mlwarden run`` (subprocess, temporary config, free port) watches check test servers on
loopback: an Airflow 3 fake serving recorded responses (airflow), a TorchServe and a TF
Serving fake (model_endpoint), a closed port (probe
errors, and an Airflow check whose runs fail),
a Prometheus text target and a dead one (openmetrics), and a dcgm-exporter-format target
(gpu, ``source: dcgm``) that produces the rare events the health panels wait for (XID
changes, ECC errors, clock throttling, a lost GPU, an idle GPU). The Datadog exporter runs
in API mode against a fake intake that answers 500 (failures, a durable queue too small
to keep everything: drops), with a custom-metrics budget (the budget panels); an alert rule fires on the refused endpoint and goes to a
webhook receiver that answers 500 (delivery failures, pending notifications); the Airflow
check also runs with cluster scope on a second agent whose history is a fresh database on the
real PostgreSQL (leader election). A real Prometheus (Debian package) scrapes both agents;
then every
target of every Grafana panel, with its template variables set to ``.*``, must parse and
return data — except the few listed in :data:`NO_DATA_HERE`, each with the reason.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import urllib.parse
from pathlib import Path

import pytest
from aiohttp import web

from agent.dashboards.render import grafana_json
from agent.dashboards.spec import DASHBOARDS
from tests.checks.airflow_fake import PASSWORD, USER, FakeAirflow, iso
from tests.checks.gpu_dcgm_samples import DcgmGpu, exposition
from tests.checks.test_model_endpoint_protocols import (
    INFERENCE_KEY,
    MANAGEMENT_KEY,
    tf_status,
    torchserve,
)
from tests.dashboards.live_targets import ThreadedTargets
from tests.export.agent_proc import MLWARDEN, agent_config
from tests.support.procs import PEERS, Proc, free_port, http_get, require_peer, wait_for, wait_http
from tests.support.targets import Target, canned, load_fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HINT = "bash tests/peers/install-promstack.sh"

# (dashboard slug, panel title) -> why one of its queries cannot have data here
NO_DATA_HERE: dict[tuple[str, str], str] = {
    ("mlwarden-gpu-fleet", "Top workloads by GPU memory"):
        "per-process GPU memory comes only from NVML on the node (dcgm-exporter has no "
        "process list); this machine has no GPU for the agent subprocess to read",
    ("mlwarden-gpu-fleet", "Processes per GPU"):
        "NVML only, as above",
    ("mlwarden-gpu-fleet", "GPUs without a price (cost unknown)"):
        "every GPU here has a price in the cost table; tests/cost/test_meter.py covers a GPU without one",
}


class DcgmExporter:
    """dcgm-exporter's /metrics, changing on every scrape so rare events happen.

    GPU 0 works and cycles its last XID through 0 -> 31 -> 48 (each change is an XID
    occurrence), counts single-bit ECC errors up and is power-capped; GPU 1 is idle; the
    node is configured to have three GPUs, so one is lost.
    """

    XIDS = (0, 31, 48)

    def __init__(self) -> None:
        self.scrapes = itertools.count()

    async def handler(self, request: web.Request) -> web.Response:
        n = next(self.scrapes)
        busy = DcgmGpu(0, "GPU-0b9d5f4c-1a2b-4c3d-8e9f-000000000000",
                       values={"DCGM_FI_DEV_XID_ERRORS": self.XIDS[n % 3],
                               "DCGM_FI_DEV_MEMORY_TEMP": 52,
                               "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": n,
                               "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": 2})
        idle = DcgmGpu(1, "GPU-0b9d5f4c-1a2b-4c3d-8e9f-000000000001",
                       values={"DCGM_FI_DEV_GPU_UTIL": 0, "DCGM_FI_DEV_MEMORY_TEMP": 40})
        text = exposition([busy, idle], extra={
            "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": [(busy, {}, 0x4), (idle, {}, 0)],
            "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": [(busy, {}, 10 + n), (idle, {}, 0)],
            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": [(busy, {}, 0), (idle, {}, 0)],
            "DCGM_FI_DEV_POWER_MGMT_LIMIT": [(busy, {}, 700.0), (idle, {}, 700.0)],
        })
        return web.Response(text=text, content_type="text/plain")


def airflow() -> FakeAirflow:
    """Airflow 3's REST API from recorded responses: a DAG whose scheduled run is 12 minutes
    overdue (late), a task queued for 12 minutes, a run going for 5 minutes, a DAG file
    that does not import, live scheduler heartbeats. Finished runs come later
    (:func:`airflow_events`), once Prometheus is watching: the check reports each only once.
    """
    fake = FakeAirflow("3", time.time)
    now = time.time()
    fake.ti("train_ranker", "manual__failed", "train", "failed", try_number=2, duration=41.5)
    fake.ti("train_ranker", "manual__failed", "publish", "upstream_failed")
    for i in range(5):  # on the dcgm-exporter's node: GPU cost per run (hostname, window set later)
        fake.ti("batch_score", f"scheduled__ok{i}", "score", "success", hostname="gpu-node-1")
    fake.run("batch_score", "scheduled__slow", "running", now - 300, None)
    fake.dag("hourly_features", due=now - 720)
    fake.queued_tis = [{"dag_id": "etl_daily_features", "task_id": "extract", "state": "queued",
                        "queued_when": iso(now - 720)}]
    fake.import_errors = load_fixture("airflow3", "import_errors_one.json")["import_errors"]
    return fake


def airflow_events(fake: FakeAirflow) -> None:
    """A run fails (one task failed, one upstream_failed) and five 10-second runs succeed:
    with that history the 5-minute run in progress is stuck (past 3 x p95)."""
    now = time.time()
    fake.run("train_ranker", "manual__failed", "failed", now - 70, now - 5)
    for i in range(5):
        fake.run("batch_score", f"scheduled__ok{i}", "success", now - 60 + i * 5, now - 50 + i * 5)
        # the task ran on the GPU node while the agent was reading it: its GPUs are charged
        (ti,) = fake.tis[("batch_score", f"scheduled__ok{i}")]
        ti.update(start_date=iso(now - 12 + i), end_date=iso(now - 2), duration=10 - i)


OPENMETRICS_TEXT = """# HELP demo_queue_depth Requests waiting.
# TYPE demo_queue_depth gauge
demo_queue_depth{model="ranker"} 3
# HELP demo_requests_total Successful predictions.
# TYPE demo_requests_total counter
demo_requests_total{model="ranker"} %d
"""


class DemoServer:
    """A model server's /metrics whose prediction counter grows 10 per scrape."""

    def __init__(self) -> None:
        self.scrapes = itertools.count()

    async def handler(self, request: web.Request) -> web.Response:
        return web.Response(text=OPENMETRICS_TEXT % (10 * next(self.scrapes)), content_type="text/plain")


async def tf_model_status(request: web.Request) -> web.Response:
    """TF Serving's model status; the connection closes so every probe times a fresh connect."""
    return web.json_response(tf_status(**{"2": "AVAILABLE", "1": "END"}),
                             headers={"Connection": "close"})


def tfserving() -> Target:
    return Target({("GET", "/v1/models/ranker"): tf_model_status})


def agent_yaml(t: dict[str, Target], closed: str, hook: str) -> str:
    checks = [
        {"type": "airflow", "name": "airflow", "url": t["airflow"].url, "username": USER,
         "password": PASSWORD, "interval": "2s", "stuck_factor": 3, "stuck_min_history": 5,
         "late_after": "10m", "queued_too_long": "10m", "task_instances": True},
        {"type": "model_endpoint", "name": "ts-ranker", "url": t["ts"].url,
         "protocol": "torchserve",
         "model": "ranker", "version": "2.0", "management_url": t["ts_mgmt"].url,
         "bearer_token": INFERENCE_KEY, "management_token": MANAGEMENT_KEY, "interval": "1s",
         "canary": {"interval": "1s", "request": {"data": [[5.1, 3.5, 1.4, 0.2]]},
                    "expect": [{"path": "prediction", "equals": "setosa"}]}},
        {"type": "model_endpoint", "name": "tf-ranker", "url": t["tf"].url, "protocol": "tfserving",
         "model": "ranker", "interval": "1s"},
        {"type": "model_endpoint", "name": "gone", "url": closed, "protocol": "v2",
         "model": "ghost",
         "interval": "1s", "request_timeout": "1s"},
        {"type": "openmetrics", "name": "demo", "url": t["om"].url + "/metrics", "interval": "1s",
         "metrics": [{"name": "demo_queue_depth"}, {"name": "demo_requests_total"}]},
        {"type": "openmetrics", "name": "demo-gone", "url": closed + "/metrics", "interval": "1s",
         "metrics": [{"name": "demo_queue_depth"}]},
        {"type": "airflow", "name": "airflow-gone", "url": closed, "username": USER,
         "password": PASSWORD,
         "interval": "1s"},  # refused: the run raises (mlwarden.check.errors)
        {"type": "gpu", "name": "fleet", "source": "dcgm", "urls": [t["dcgm"].url + "/metrics"],
         "interval": "1s", "idle_window": "1s", "price_per_gpu_hour": 2.5, "expected_gpus": 3},
    ]
    return f"""  prometheus: {{enabled: true}}
  datadog: {{mode: api, api_key: dd-dashboards-test-key, api_url: "{t['intake'].url}",
            flush_interval: 1s,
            timeout: 1s, retry_initial: 500ms, retry_max: 1s, queue_max_items: 2, max_age: 5s,
            custom_metrics_budget: 100000}}
alerting:
  receivers: [{{name: hook, type: webhook, url: "{hook}"}}]
  receiver: hook
  group_wait: 1s
rules_engine: {{evaluation_interval: 1s}}
rules:
  - {{alert: EndpointDown, metric: mlwarden.endpoint.up, where: {{model: ghost}}, op: "<",
     threshold: 1,
     severity: critical, summary: "{{model}} is down"}}
checks: {json.dumps(checks)}
cost: {json.dumps(COST)}
"""


# GPU cost: the dcgm-exporter's node serves `ranker` (no process list: a node-only rule), the
# demo server counts its predictions, and batch_score's task ran on the node
COST = {"prices": [{"gpu_model": "*H100*", "price_per_hour": 2.5}, {"gpu_model": "*", "node": "spot-*",
                                                                     "price_per_hour": 1.0}],
        "models": [{"model": "ranker", "node": "gpu-node-1"}],
        "requests": [{"metric": "mlwarden.openmetrics.demo_requests", "model_label": "model"}]}


def substitute(expr: str) -> str:
    """Grafana's intervals (at a 1 s scrape) and "All" for every template variable (``.*``)."""
    expr = expr.replace("$__rate_interval", "10s").replace("$__range", "10m")
    return re.sub(r"\$\{?(\w+)\}?", lambda m: ".*", expr)


def panel_targets():
    for dash in DASHBOARDS:
        for panel in grafana_json(dash)["panels"]:
            for target in panel.get("targets", []):
                yield dash.slug, panel["title"], target["expr"], target["instant"]


def query(base: str, expr: str, instant: bool = True) -> tuple[int, dict]:
    """As Grafana asks: stat/table/bar panels an instant query, graphs a range (last 2 minutes)."""
    if instant:
        params = {"query": expr}
        path = "query"
    else:
        now = time.time()
        params = {"query": expr, "start": f"{now - 120:.3f}", "end": f"{now:.3f}", "step": "2"}
        path = "query_range"
    status, body = http_get(f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}", timeout=10)
    return status, json.loads(body)


def fleet_agent_yaml(tmp: Path, port: int, pg_url: str, airflow_url: str) -> Path:
    """A second agent on a shared PostgreSQL history: it elects itself leader of the lease."""
    check = {"type": "airflow", "name": "airflow-cluster", "scope": "cluster", "url": airflow_url,
             "username": USER, "password": PASSWORD, "interval": "2s"}
    folder = tmp / "fleet"
    folder.mkdir()
    extra = f"  prometheus: {{enabled: true}}\nchecks: [{json.dumps(check)}]\n"
    config = agent_config(folder, port, extra)
    config.write_text(config.read_text().replace(f"sqlite:///{folder}/history.db", pg_url)
                      .replace("hostname: test-agent", "hostname: fleet-agent")
                      + "leader: {lease_duration: 4s, renew_interval: 1s}\n")
    config.chmod(0o600)
    return config


def test_every_grafana_panel_returns_data_from_prometheus_scraping_the_agent(tmp_path, pg_url):
    binary = require_peer(PEERS / "promstack/bin/prometheus", HINT)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: probes are refused
    inference, management = torchserve(["READY", "READY"])
    dcgm = DcgmExporter()
    demo = DemoServer()
    fake_airflow = airflow()
    targets = ThreadedTargets(
        ts=lambda: inference, ts_mgmt=lambda: management, tf=tfserving,
        om=lambda: Target({("GET", "/metrics"): demo.handler}),
        dcgm=lambda: Target({("GET", "/metrics"): dcgm.handler}),
        intake=lambda: Target({("POST", "/api/v2/series"): canned("intake down", status=500),
                               ("POST", "/api/v1/check_run"): canned("intake down", status=500),
                               ("POST", "/api/v1/events"): canned("intake down", status=500),
                               ("POST", "/api/v1/distribution_points"): canned("intake down", status=500)}),
        airflow=fake_airflow.target,
        hook=lambda: Target({("POST", "/hook"): canned("receiver down", status=500)}),
    )
    with targets as t:
        for target in t.values():  # the intake fake is strict about paths, not payloads
            target.routes.setdefault(("POST", "/api/v1/series"), canned("intake down", status=500))
        # Prometheus first, so it sees what the agent reports once, on its first runs
        port, fleet_port, pport = free_port(), free_port(), free_port()
        (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: mlwarden
    static_configs: [{{targets: ["127.0.0.1:{port}", "127.0.0.1:{fleet_port}"]}}]
""")
        prom = Proc("prometheus", [binary, f"--config.file={tmp_path}/prometheus.yml",
                                   f"--storage.tsdb.path={tmp_path}/tsdb",
                                   f"--web.listen-address=127.0.0.1:{pport}"], log_dir=tmp_path)
        config = agent_config(tmp_path, port, agent_yaml(t, closed, t["hook"].url + "/hook"))
        config.chmod(0o600)  # it holds the (test) Datadog key and Airflow password
        agent = Proc("mlwarden-agent", [MLWARDEN, "run", "--config", config], log_dir=tmp_path)
        fleet_config = fleet_agent_yaml(tmp_path, fleet_port, pg_url, t["airflow"].url)
        fleet = Proc("mlwarden-fleet-agent", [MLWARDEN, "run", "--config", fleet_config],
                     log_dir=tmp_path)
        try:
            with prom:
                base = f"http://127.0.0.1:{pport}"
                wait_http(f"{base}/-/ready", timeout=30, proc=prom)
                agent.start()
                wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30, proc=agent)
                fleet.start()
                wait_http(f"http://127.0.0.1:{fleet_port}/healthz", timeout=30, proc=fleet)
                airflow_runs = 'mlwarden_check_runs_total{check="airflow"}'
                wait_for(lambda: query(base, airflow_runs)[1]["data"]["result"],
                         30, 0.5, "Prometheus to scrape the agent's airflow check")
                # batch_score's tasks end 2 s before the events: the GPU check (1 s) must have read
                # the node for a few seconds before that, or a loaded machine leaves nothing to charge
                gpu_runs = 'sum(mlwarden_check_runs_total{check="fleet"})'

                def gpu_read_long_enough() -> bool:
                    result = query(base, gpu_runs)[1]["data"]["result"]
                    return bool(result) and float(result[0]["value"][1]) >= 6

                wait_for(gpu_read_long_enough, 60, 0.5, "the GPU check to read the node six times")
                targets.call(lambda: airflow_events(fake_airflow))
                rows = list(panel_targets())
                # every query of every panel, but Datadog's event streams (a note in Grafana)
                assert len(rows) == sum(len(p.queries) for d in DASHBOARDS for r in d.rows
                                        for p in r.panels if p.viz != "events")

                def results() -> dict[tuple[str, str, str], int]:
                    out = {}
                    for slug, title, expr, instant in rows:
                        status, body = query(base, substitute(expr), instant)
                        assert status == 200 and body["status"] == "success", \
                            f"{slug} / {title}: Prometheus refused {expr!r}: {body.get('error')}"
                        out[(slug, title, expr)] = len(body["data"]["result"])
                    return out

                def all_there():
                    got = results()
                    empty = [k for k, n in got.items() if not n and k[:2] not in NO_DATA_HERE]
                    return got if not empty else None

                try:
                    got = wait_for(all_there, 90, 2.0, "every panel to have data")
                except AssertionError:
                    got = results()
                    empty = [f"{s} / {p}: {e}" for (s, p, e), n in got.items()
                             if not n and (s, p) not in NO_DATA_HERE]
                    pytest.fail("panels without data:\n  " + "\n  ".join(empty) + "\n"
                                + agent.log_tail(30))
                # the exceptions stay honest: a listed panel that has data must leave the list
                stale = []
                for key in NO_DATA_HERE:
                    counts = [n for (s, p, _), n in got.items() if (s, p) == key]
                    assert counts, f"NO_DATA_HERE names a panel that does not exist: {key}"
                    if all(counts):
                        stale.append(key)
                assert not stale, f"these panels have data now; take them off NO_DATA_HERE: {stale}"
                # every template variable lists values, as Grafana asks Prometheus for them
                # (label_values(selector, label) -> /api/v1/label/<label>/values?match[]=...)
                for dash in DASHBOARDS:
                    for var in grafana_json(dash)["templating"]["list"][1:]:
                        m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["definition"])
                        assert m, var["definition"]
                        params = urllib.parse.urlencode({"match[]": m.group(1)})
                        status, body = http_get(f"{base}/api/v1/label/{m.group(2)}/values?{params}")
                        values = json.loads(body)["data"]
                        assert status == 200 and values, f"{dash.slug}: variable {var['name']} is empty"
                # and the rare events really happened
                status, body = query(base, 'sum by (xid) (mlwarden_gpu_xid_errors_total)')
                assert {r["metric"]["xid"] for r in body["data"]["result"]} >= {"31", "48"}
                # Prometheus' default scrape config (honor_labels: false) rewrote no label:
                # the agent sends no instance or job, so nothing became exported_*
                params = urllib.parse.urlencode({"match[]": '{__name__=~"mlwarden_.+"}'})
                names = json.loads(http_get(f"{base}/api/v1/labels?{params}")[1])["data"]
                assert not [n for n in names if n.startswith("exported_")], names
                # every label a panel splits or filters by is one the series really carry
                used = {b for d in DASHBOARDS for r in d.rows for p in r.panels for q in p.queries
                        for b in q.by if (d.slug, p.title) not in NO_DATA_HERE}
                used |= {v for d in DASHBOARDS for v in d.variables}
                assert used <= set(names), used - set(names)
                # and the cost row shows the right numbers: both answering GPUs of gpu-node-1
                # serve ranker at $2.50/h; batch_score's task was charged at most its 10 s on both
                status, body = query(base, 'sum(mlwarden_cost_model_rate_dollars_per_hour{model="ranker"})')
                assert float(body["data"]["result"][0]["value"][1]) == pytest.approx(5.0)
                status, body = query(base, 'max(max_over_time(mlwarden_cost_dag_run_gpu_seconds'
                                           '{dag_id="batch_score"}[5m]))')
                assert 0 < float(body["data"]["result"][0]["value"][1]) <= 2 * 10
        finally:
            fleet.stop()
            agent.stop()
