"""The Alertmanager receiver against a real Alertmanager (Debian's 0.25) on loopback.

Alertmanager's own Slack receiver points at a local recorder (Slack cannot be reached from
here); two agents send the same alert and exactly one Slack message comes out.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.notify.alertmanager import am_alert
from agent.notify.base import Alert
from tests.alerting.helpers import fire, resolve, store
from tests.support.procs import PEERS, Proc, free_port, http_get, require_peer, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"


class Recorder:
    """Stands in for Slack's incoming webhook behind Alertmanager: records what it is sent."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> "Recorder":
        app = web.Application()

        async def slack(request: web.Request) -> web.Response:
            self.posts.append(await request.json())
            return web.Response(text="ok")

        app.router.add_post("/slack", slack)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


@pytest.fixture
async def alertmanager(tmp_path):
    binary = require_peer(
        PEERS / "promstack" / "bin" / "alertmanager", "bash tests/peers/install-promstack.sh"
    )
    rec = await Recorder().start()
    port = free_port()
    (tmp_path / "am.yml").write_text(f"""
route:
  receiver: slack
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: slack
    slack_configs:
      - api_url: http://127.0.0.1:{rec.port}/slack
        channel: '#ml-alerts'
        send_resolved: true
""")
    proc = Proc(
        "alertmanager",
        [
            binary,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        log_dir=tmp_path,
    ).start()
    try:
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=30, proc=proc)
        )
        yield f"http://127.0.0.1:{port}", rec
    finally:
        proc.stop()
        await rec.stop()


async def wait_until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def agent(tmp_path, name: str, url: str) -> Dispatcher:
    cfg = AlertingConfig.model_validate(
        {
            "receivers": [{"name": "am", "type": "alertmanager", "url": url}],
            "receiver": "am",
            "agent_url": f"http://{name}:9464/status",
            "alertmanager": {"resend_interval": 5},
        }
    )
    return Dispatcher(cfg, store(tmp_path, f"{name}.db"))


def test_payload_shape_matches_captured_post():
    """Our alert document has the keys of a POST the real Alertmanager accepted (fixture)."""
    captured = json.loads((FIXTURES / "_index.json").read_text())[1]["request_body"][0]
    ours = am_alert(
        Alert(
            "f",
            "ExampleAlert",
            {"alertname": "ExampleAlert", "alert": "ExampleAlert", "severity": "critical"},
            "resolved",
            annotations={"summary": "s"},
            fired_at=1.0,
            resolved_at=2.0,
        ),
        "http://x/graph",
    )
    assert set(ours) == set(captured)
    assert "alert" not in ours["labels"] and ours["labels"]["alertname"] == "ExampleAlert"


@pytest.mark.parametrize(("metric", "keeps_agent"), [
    ("mlwarden.endpoint.up", False), ("mlwarden.airflow.dag_run.failed", False),
    ("mlwarden.gpu.utilization", False), (None, False),
    ("mlwarden.agent.memory.rss", True), ("mlwarden.check.status", True),
    ("mlwarden.alerting.receiver.up", True),
])
def test_only_alerts_about_the_agent_itself_carry_its_name_as_a_label(metric, keeps_agent):
    doc = am_alert(Alert("f", "A", {"agent": "host-a", "check": "c"}, "firing",
                             metric=metric), None)
    assert ("agent" in doc["labels"]) is keeps_agent
    assert doc["annotations"].get("agent") == (None if keeps_agent else "host-a")


async def test_two_agents_same_alert_one_slack_message(tmp_path, alertmanager):
    url, rec = alertmanager
    a, b = agent(tmp_path, "agent-a", url), agent(tmp_path, "agent-b", url)
    now = time.time()
    ev = fire(
        "GpuIdle",
        {"node": "gpu-3"},
        now,
        annotations={"summary": "GPU gpu-3 idle", "runbook_url": "https://runbooks.example/gpu"},
    )
    for d in (a, b):
        d.alerts_changed([ev], now)
        await d.tick(time.time())
    assert a.status()["receivers"]["am"]["sent"] == 1 and b.status()["receivers"]["am"]["sent"] == 1
    status, body = http_get(f"{url}/api/v2/alerts")
    alerts = json.loads(body)
    assert status == 200 and len(alerts) == 1
    assert alerts[0]["labels"] == {"alertname": "GpuIdle", "node": "gpu-3", "severity": "warning"}
    assert alerts[0]["annotations"]["summary"] == "GPU gpu-3 idle"
    assert alerts[0]["annotations"]["threshold"] == "0.05"
    assert alerts[0]["generatorURL"] in ("http://agent-a:9464/status", "http://agent-b:9464/status")
    await wait_until(lambda: rec.posts, 15, "Alertmanager to notify Slack")
    await asyncio.sleep(3)  # longer than group_interval: a second message would have come by now
    firing = [p for p in rec.posts if "[FIRING" in json.dumps(p)]
    assert len(firing) == 1, rec.posts
    assert "GpuIdle" in firing[0]["attachments"][0]["title"]

    # re-sent while firing (resend_interval 5 s), still one message
    for _ in range(3):
        for d in (a, b):
            await d.tick(time.time())
        await asyncio.sleep(2)
    assert a.status()["receivers"]["am"]["sent"] >= 2
    assert len([p for p in rec.posts if "[FIRING" in json.dumps(p)]) == 1

    done = time.time()
    for d in (a, b):
        d.alerts_changed([resolve(ev, done)], done)
        await d.tick(time.time())
    await wait_until(
        lambda: any("[RESOLVED]" in json.dumps(p) for p in rec.posts), 15, "the resolved message"
    )
    assert len([p for p in rec.posts if "[RESOLVED]" in json.dumps(p)]) == 1
    for d in (a, b):
        await d.stop()


async def test_label_names_alertmanager_refuses_are_rewritten(tmp_path, alertmanager):
    url, _rec = alertmanager
    d = agent(tmp_path, "agent-c", url)
    now = time.time()
    d.alerts_changed([fire("Odd", {"model-name": "r", "9lives": "x"}, now)], now)
    await d.tick(time.time())
    assert d.status()["receivers"]["am"]["sent"] == 1, d.status()["receivers"]["am"]["last_error"]
    status, body = http_get(f"{url}/api/v2/alerts?filter=alertname%3D%22Odd%22")
    assert status == 200 and json.loads(body)[0]["labels"]["model_name"] == "r"
    assert json.loads(body)[0]["labels"]["_9lives"] == "x"
    await d.stop()


async def test_alertmanager_400_is_dropped_with_its_message(tmp_path):
    """A refusal (captured 400 body) is not retried; the message says what Alertmanager said."""
    captured = (FIXTURES / "error_post_alerts_bad.json").read_text()

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=400, text=captured, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v2/alerts", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        d = agent(tmp_path, "agent-d", f"http://127.0.0.1:{port}")
        now = time.time()
        d.alerts_changed([fire("GpuIdle", {"node": "gpu-3"}, now)], now)
        await d.tick(now)
        st = d.status()["receivers"]["am"]
        assert st["dropped"] == 1 and "HTTP 400" in st["last_error"]
        assert "cannot unmarshal" in st["last_error"]
        await d.stop()
    finally:
        await runner.cleanup()


async def test_unreachable_alertmanager_is_retried_not_lost(tmp_path):
    port = free_port()  # nothing listens here
    d = agent(tmp_path, "lonely", f"http://127.0.0.1:{port}")
    now = time.time()
    d.alerts_changed([fire("GpuIdle", {"node": "gpu-3"}, now)], now)
    await d.tick(now)
    st = d.status()["receivers"]["am"]
    assert st["sent"] == 0 and "cannot reach" in st["last_error"]
    assert d.delivery.pending(now)["am"]["pending"] == 1
    await d.stop()


TWO_AGENTS = """
agent:
  hostname: {host}
  listen: 127.0.0.1:{{port}}
  history: sqlite:///{{db}}
  self_check: false
checks:
  - {{{{type: model_endpoint, name: ranker, url: "{target}", protocol: http, interval: 300ms}}}}
rules:
  - {{{{alert: EndpointDown, metric: mlwarden.endpoint.up, op: "<", threshold: 1, severity: critical,
      summary: "{{{{check}}}} is down: {{{{reason}}}}"}}}}
  - {{{{alert: CheckCritical, metric: mlwarden.check.status, where: {{{{check: ranker}}}}, op: ">=",
      threshold: 2, severity: warning, summary: "check {{{{check}}}} is critical on {{{{agent}}}}"}}}}
alerting:
  receivers: [{{{{name: am, type: alertmanager, url: "{am}"}}}}]
  receiver: am
  alertmanager: {{{{resend_interval: 2s}}}}
  delivery: {{{{tick: 100ms}}}}
"""


async def test_two_agents_on_different_hosts_make_one_alert_about_their_target(tmp_path,
                                                                              alertmanager):
    """Two real agents (hostnames host-a and host-b) watch the same endpoint, which is down:
    Alertmanager holds one EndpointDown (its labels do not name the agent) and one Slack
    message comes out; an alert about each agent's own check stays one per agent."""
    from tests.faults.daemon import Daemon

    url, rec = alertmanager
    target = f"http://127.0.0.1:{free_port()}/health"  # nothing listens: down for both
    agents = []
    for host in ("host-a", "host-b"):
        folder = tmp_path / host
        folder.mkdir()
        agents.append(Daemon(folder, TWO_AGENTS.format(host=host, target=target, am=url)))
    loop = asyncio.get_running_loop()

    def alerts(name: str) -> list[dict]:
        _, body = http_get(f"{url}/api/v2/alerts?filter=alertname%3D%22{name}%22")
        return json.loads(body)

    def sent(agent) -> int:
        return agent.status()["components"]["alerting"]["receivers"]["am"]["sent"]

    try:
        for a in agents:
            await loop.run_in_executor(None, a.start)
        await wait_until(lambda: all(sent(a) >= 2 for a in agents)
                         and len(alerts("CheckCritical")) == 2, 30,
                         "both agents to post their alerts")
        await wait_until(lambda: rec.posts, 15, "Alertmanager to notify Slack")
        await asyncio.sleep(3)  # past group_interval: a second message would be here
        down = alerts("EndpointDown")
        own = alerts("CheckCritical")
    finally:
        for a in agents:
            a.stop()
    assert len(down) == 1, down
    labels = down[0]["labels"]
    assert "agent" not in labels and labels["check"] == "ranker"
    assert labels["endpoint"] == target and labels["alertname"] == "EndpointDown"
    assert down[0]["annotations"]["agent"] in ("host-a", "host-b")
    assert down[0]["annotations"]["summary"].startswith("ranker is down: refused: ")
    assert sorted(a["labels"]["agent"] for a in own) == ["host-a", "host-b"]
    firing = [p for p in rec.posts if "EndpointDown" in json.dumps(p)]
    assert len(firing) == 1, rec.posts
