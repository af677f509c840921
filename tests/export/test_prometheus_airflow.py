"""What users query is true: a real Prometheus, scraping with the shipped scrape config as it
is, a real agent watching a real Airflow 3, and the shipped Grafana panels' queries.

- Two failed runs of ``mlw_fails`` → the "Failed runs by DAG" panel answers 2 for that DAG,
  "Failed tasks by DAG and task" 2 for its ``train`` task (counters add up across runs and
  are born at zero, so ``increase()`` sees the first failure too).
- An endpoint goes down → "Up by endpoint" shows 0 for it and "Endpoints up" drops by one.
- A canary every 3 s on a 1 s probe → its series is in every scrape while fresh.
- The agent restarts → its counters start again from zero and ``increase()`` over the
  whole test counts every failure (3, after one more failure).
- No series carries a label a scrape rewrites; the agent's /metrics has no label named
  ``instance`` or ``job``.

Endpoints are stdlib HTTP servers on loopback probed with ``protocol: http`` (the
generic prober; model-server protocols have their own tests). Prometheus scrapes every
second (the ``global`` section is the test's; the job is ``deploy/prometheus/mlwarden-scrape.yaml``
verbatim, with its token and targets files beside it as the file says).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.dashboards.render import grafana_json
from agent.dashboards.spec import AIRFLOW, ENDPOINTS
from tests.checks.airflow_peer import PASSWORD, USER, AirflowPeer, start_airflow
from tests.export.agent_proc import MLWARDEN, agent_config
from tests.support.procs import PEERS, REPO, Proc, free_port, http_get, require_peer, wait_for, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HINT = "bash tests/peers/install-promstack.sh"
SCRAPE_CONFIG = REPO / "deploy" / "prometheus" / "mlwarden-scrape.yaml"
TOKEN = "scrape-token-5f1e"
RANGE = "15m"  # Grafana's $__range: longer than the whole test
RATE_INTERVAL = "20s"  # Grafana's $__rate_interval: at least 4 scrapes; here a few more,
                       # so a scrape the loaded CI machine answers late does not empty a rate


class Endpoint:
    """A model server stand-in: GET /health answers 200, POST /predict a prediction."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                self._answer(200 if self.path == "/health" else 404, {"status": "ok"})

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(200 if self.path == "/predict" else 404, {"prediction": "setosa"})

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory):
    peer = start_airflow("3", tmp_path_factory.mktemp("airflow3"))
    yield peer
    peer.stop()


def agent_yaml(tmp: Path, port: int, airflow: AirflowPeer, ranker: str, gone: str) -> Path:
    checks = [
        {"type": "airflow", "name": "airflow", "url": airflow.url, "username": USER,
         "password": PASSWORD, "dags": ["mlw_*"], "interval": "2s", "timeout": "10s"},
        {"type": "model_endpoint", "name": "ranker", "url": ranker + "/health", "protocol": "http",
         "model": "ranker", "interval": "1s",
         "canary": {"interval": "3s", "path": "/predict", "request": {"data": [[5.1, 3.5, 1.4, 0.2]]},
                    "expect": [{"path": "prediction", "equals": "setosa"}]}},
        {"type": "model_endpoint", "name": "scorer", "url": gone + "/health", "protocol": "http",
         "model": "scorer", "interval": "1s", "request_timeout": "1s"},
    ]
    config = agent_config(tmp, port, "  prometheus: {enabled: true}")
    text = config.read_text().replace("  tags: {env: test}", f"  tags: {{env: test}}\n  auth_token: {TOKEN}")
    config.write_text(text + f"checks: {json.dumps(checks)}\n")
    config.chmod(0o600)
    return config


def prometheus_config(folder: Path, agent_port: int) -> Path:
    """prometheus.yml: the test's global section, then the shipped job as it is."""
    folder.mkdir()
    (folder / "mlwarden-token").write_text(TOKEN + "\n")
    (folder / "mlwarden-targets.yaml").write_text(f'- targets: ["127.0.0.1:{agent_port}"]\n')
    path = folder / "prometheus.yml"
    path.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    + SCRAPE_CONFIG.read_text())
    return path


def query(base: str, expr: str) -> list[dict]:
    status, body = http_get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=10)
    doc = json.loads(body)
    assert status == 200 and doc["status"] == "success", (expr, doc.get("error"))
    return doc["data"]["result"]


def grafana(expr: str) -> str:
    """As Grafana sends it: every variable "All", its own intervals filled in."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", RANGE)
    return expr.replace('=~"$env"', '=~".*"').replace('=~"$dag_id"', '=~".*"') \
        .replace('=~"$model"', '=~".*"').replace('=~"$endpoint"', '=~".*"')


def panel(dash, title: str) -> list[str]:
    for p in grafana_json(dash)["panels"]:
        if p["title"] == title:
            return [grafana(t["expr"]) for t in p["targets"]]
    raise AssertionError(f"{dash.slug} has no panel {title!r}")


def by(result: list[dict], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in result}


def fail_twice(airflow: AirflowPeer) -> None:
    runs = [airflow.trigger("mlw_fails") for _ in range(2)]
    for run in runs:
        assert airflow.wait_run("mlw_fails", run, ("failed", "success"), timeout=180) == "failed"


def test_shipped_grafana_panels_answer_the_right_numbers(tmp_path, airflow):
    binary = require_peer(PEERS / "promstack/bin/prometheus", HINT)
    ranker, scorer = Endpoint(), Endpoint()
    port, pport = free_port(), free_port()
    config = agent_yaml(tmp_path, port, airflow, ranker.url, scorer.url)
    prom = Proc("prometheus", [binary, f"--config.file={prometheus_config(tmp_path / 'prom', port)}",
                               f"--storage.tsdb.path={tmp_path}/tsdb",
                               f"--web.listen-address=127.0.0.1:{pport}"], log_dir=tmp_path)
    agent = Proc("mlwarden-agent", [MLWARDEN, "run", "--config", config], log_dir=tmp_path)
    base = f"http://127.0.0.1:{pport}"
    try:
        with prom:
            wait_http(f"{base}/-/ready", timeout=30, proc=prom)
            agent.start()
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30, proc=agent)
            wait_for(lambda: query(base, 'mlwarden_check_runs_total{check="airflow"}'), 60, 1.0,
                     "Prometheus to scrape the agent's airflow check (token and targets from files)")
            (target,) = json.loads(http_get(f"{base}/api/v1/targets")[1])["data"]["activeTargets"]
            assert target["health"] == "up" and target["labels"]["job"] == "mlwarden", target

            fail_twice(airflow)
            scorer.stop()  # the scorer endpoint's outage
            failed_runs = 'mlwarden_airflow_dag_run_failed_total{dag_id="mlw_fails"}'
            wait_for(lambda: [r for r in query(base, failed_runs) if r["value"][1] == "2"], 60, 1.0,
                     "the two failed runs in Prometheus")
            # increase() extrapolates by up to half a scrape interval past the last sample: on a
            # series a second old that is 1.5x (2 -> 3). A user looks at the panel later than
            # that; ten samples of the series bound the error to 5 % (round() gives 2).
            wait_for(lambda: [r for r in query(base, f"count_over_time({failed_runs}[{RANGE}])")
                              if float(r["value"][1]) >= 10], 30, 1.0,
                     "ten scrapes of the failed-runs counter")

            # -- failures: every panel of the Failures row answers the right number
            (runs,) = panel(AIRFLOW, "Failed runs by DAG")
            assert by(query(base, runs), "dag_id") == {("mlw_fails",): 2.0}
            (tasks,) = panel(AIRFLOW, "Failed tasks by DAG and task")
            assert by(query(base, tasks), "dag_id", "task_id") == {("mlw_fails", "train"): 2.0}
            (last,) = panel(AIRFLOW, "DAGs whose last run failed")
            assert by(query(base, last), "dag_id")[("mlw_fails",)] == 1.0
            (duration,) = panel(AIRFLOW, "Duration of failed tasks")
            assert by(query(base, duration), "dag_id", "task_id")[("mlw_fails", "train")] > 0
            (broken,) = panel(AIRFLOW, "Broken DAG files")
            assert [f for (f,), v in by(query(base, broken), "filename").items()
                    if f.endswith("mlw_broken.py") and v == 1.0]

            # -- the outage: the down panels show it
            def scorer_down() -> bool:
                (up,) = panel(ENDPOINTS, "Up by endpoint")
                got = by(query(base, up), "endpoint")
                return got.get((scorer.url + "/health",)) == 0.0 and got.get((ranker.url + "/health",)) == 1.0

            wait_for(scorer_down, 20, 1.0, "Up by endpoint to show the scorer down and the ranker up")
            (total,) = panel(ENDPOINTS, "Endpoints up")
            assert by(query(base, total)) == {(): 1.0}
            (errors,) = panel(ENDPOINTS, "Probe errors by kind")
            wait_for(lambda: by(query(base, errors), "error_kind").get(("refused",), 0) > 0, 20, 1.0,
                     "Probe errors by kind to show the refused probes")

            # -- the sparse canary: in every successful scrape while fresh (a 3 s canary on a
            # 1 s probe); sum_over_time(up) counts the scrapes that succeeded
            window = "20s"
            scrapes = query(base, f'sum_over_time(up{{job="mlwarden"}}[{window}])')
            canary = query(base, f'count_over_time(mlwarden_endpoint_canary_success{{check="ranker"}}[{window}])')
            assert canary and float(canary[0]["value"][1]) == float(scrapes[0]["value"][1]) >= 10, \
                (canary, scrapes)
            for title in ("Probe latency p50 / p95 / p99", "Canary inference p50 / p95"):
                for expr in panel(ENDPOINTS, title):
                    got = by(query(base, expr), "model")
                    assert 0 < got[("ranker",)] < 5, (title, expr, got)

            # -- labels: nothing a scrape sets or rewrites
            status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=5,
                                    headers={"Authorization": f"Bearer {TOKEN}"})
            assert status == 200
            from prometheus_client.parser import text_string_to_metric_families

            labels = {k for f in text_string_to_metric_families(body.decode()) for s in f.samples for k in s.labels}
            assert labels and not labels & {"instance", "job"}, labels
            params = urllib.parse.urlencode({"match[]": '{__name__=~"mlwarden_.+"}'})
            names = json.loads(http_get(f"{base}/api/v1/labels?{params}")[1])["data"]
            assert not [n for n in names if n.startswith("exported_")], names

            # -- a restart: counters start again from zero; increase() counts across it
            agent.stop()
            agent.start()
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30, proc=agent)
            run = airflow.trigger("mlw_fails")
            assert airflow.wait_run("mlw_fails", run, ("failed", "success"), timeout=180) == "failed"
            wait_for(lambda: [r for r in query(base, failed_runs) if r["value"][1] == "1"], 60, 1.0,
                     "the failed-runs counter to restart from zero and count the new failure")
            assert by(query(base, runs), "dag_id") == {("mlw_fails",): 3.0}
            assert by(query(base, tasks), "dag_id", "task_id") == {("mlw_fails", "train"): 3.0}
    finally:
        agent.stop()
        ranker.stop()
        scorer.stop()
