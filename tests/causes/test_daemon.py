"""Issue #22 outside in: the real `mlwarden run` watches dcgm-exporter output of two GPU nodes,
two model servers (one labelled gpu-node-7, one gpu-node-8) and an Airflow 3 whose failed
tasks ran on those nodes, with the shipped GPU and Airflow rule packs verbatim; Slack is the
strict fake (tests/notify/fake_slack.py: Slack cannot run here), and so are dcgm-exporter
and Airflow's answers (recorded; no GPU and no Airflow worker fleet here), all on 127.0.0.1.

GPU 3 of gpu-node-7 falls off the bus (XID 79) while both models fail and a training run
fails on each node: one Slack message says the cause first with what it explains on its
node; gpu-node-8's failures page on their own; a run failing later on gpu-node-7 joins the
cause's thread. The model rule is the user's own, joined to the shipped kind `model_down`
through the `causes:` section (the shipped EndpointDown waits `for: 1m`, too long here).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from aiohttp import web

from tests.causes.fleet import NODE7, NODE8, RUNS, recorded_task_instances
from tests.checks.airflow_fake import PASSWORD, USER, FakeAirflow
from tests.checks.gpu_dcgm_samples import DcgmGpu, exposition
from tests.faults.daemon import Daemon
from tests.notify.fake_slack import TOKEN, FakeSlack
from tests.support.procs import wait_for
from tests.support.targets import Target

pytestmark = pytest.mark.integration

RUN7, RUN8, RUN7_LATER = RUNS

CONFIG = """
agent:
  listen: 127.0.0.1:{{port}}
  history: sqlite:///{{db}}
  self_check: false
  log_format: json
checks:
  - {{{{type: gpu, name: fleet-gpus, source: dcgm, urls: ["{peers}/{n7}/metrics", "{peers}/{n8}/metrics"], interval: 1s}}}}
  - {{{{type: model_endpoint, name: ranker, protocol: http, model: ranker, url: "{peers}/ranker/health", interval: 1s, tags: {{{{node: {n7}}}}}}}}}
  - {{{{type: model_endpoint, name: scorer, protocol: http, model: scorer, url: "{peers}/scorer/health", interval: 1s, tags: {{{{node: {n8}}}}}}}}}
  - {{{{type: airflow, name: prod-airflow, url: "{airflow}", username: {user}, password: {password}, interval: 1s, timeout: 5s}}}}
rule_files: [builtin:gpu, builtin:airflow]
rules:
  - {{{{alert: ModelFailing, metric: mlwarden.endpoint.up, op: "<", threshold: 1, group_by: [check, model, node],
      severity: critical, summary: "{{{{check}}}} is down"}}}}
causes:
  kinds:
    model_down: {{{{alerts: [{{{{alert: ModelFailing}}}}]}}}}
alerting:
  slack: {{{{token: "{token}", default_channel: "#ml-alerts", base_url: "{slack}", timeout: 2s, charts: false}}}}
  group_by: [alertname, node, check, dag_id]
  group_wait: 2s
  group_interval: 2s
  delivery: {{{{tick: 200ms, retry_initial: 200ms, retry_max: 1s, pace: 0s}}}}
"""


class Peers:
    """Slack, the nodes' dcgm-exporters, the model servers and Airflow on one event loop in a
    thread, so the test drives the daemon from plain code; ``call`` touches their state there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.slack = FakeSlack()
        self.slack.ts_base = int(time.time())
        self.health = {"ranker": 200, "scorer": 200}
        self.dcgm = {n: [DcgmGpu(i, f"GPU-{n}-0000-0000-0000-00000000000{i}", hostname=n)
                         for i in range(4)] for n in (NODE7, NODE8)}
        self.airflow = FakeAirflow("3", time.time)
        for run_id, (dag, task, node) in RUNS.items():
            self.airflow.tis[(dag, run_id)] = recorded_task_instances(dag, run_id, task, node)
        self.targets: list[Target] = []

    def call(self, fn: Any, *args: Any) -> Any:
        async def run() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    async def _health(self, request: web.Request) -> web.Response:
        status = self.health[request.path.split("/")[1]]
        return web.Response(status=status, text="ok" if status == 200 else "CUDA error")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=exposition(self.dcgm[request.path.split("/")[1]]),
                            content_type="text/plain")

    async def _start(self) -> None:
        await self.slack.start()
        routes: dict[tuple[str, str], Any] = {("GET", f"/{m}/health"): self._health
                                              for m in self.health}
        routes.update({("GET", f"/{n}/metrics"): self._metrics for n in self.dcgm})
        self.targets = [Target(routes), self.airflow.target()]
        for target in self.targets:
            await target.__aenter__()

    async def _stop(self) -> None:
        for target in self.targets:
            await target.__aexit__(None, None, None)
        await self.slack.stop()

    def __enter__(self) -> Peers:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()

    def fail_run(self, run_id: str) -> None:
        dag = RUNS[run_id][0]
        now = time.time()
        self.call(self.airflow.run, dag, run_id, "failed", now - 300, now)


def test_the_daemon_sends_one_message_cause_first_and_threads_what_joins_later(tmp_path):
    with Peers() as peers:
        body = CONFIG.format(peers=peers.targets[0].url, airflow=peers.targets[1].url,
                             n7=NODE7, n8=NODE8, user=USER, password=PASSWORD, token=TOKEN,
                             slack=peers.slack.base_url)
        with Daemon(tmp_path, body) as agent:
            wait_for(lambda: all(c["status"] == "OK" for c in agent.status()["checks"]
                                 if c["name"] in ("ranker", "scorer", "fleet-gpus")) and len(agent.status()["checks"]) >= 3, 30,
                     what="the checks to see a healthy fleet")

            def failure() -> None:
                peers.dcgm[NODE7][3].values["DCGM_FI_DEV_XID_ERRORS"] = 79
                peers.health.update(ranker=503, scorer=503)
            peers.call(failure)
            peers.fail_run(RUN7)
            peers.fail_run(RUN8)

            def top() -> list[Any]:
                return peers.call(peers.slack.top_level)

            def settled() -> bool:
                texts = " ".join(m.text for m in top())
                return ("Cause:" in texts and "scorer" in texts and "batch_score" in texts
                        and "train_ranker" in texts)
            wait_for(settled, 45, what="the cause's message and gpu-node-8's own")
            time.sleep(3)  # room for an effect that would page on its own, were it wrong
            messages = top()
            [cause] = [m for m in messages if m.text.startswith("Cause:")]
            assert cause.text.startswith(f"Cause: GPU 3 on {NODE7} fell off the bus (XID 79) "
                                         "at "), cause.text
            for effect in (f"model ranker on {NODE7} down since",
                           f"task train_ranker.train failed on {NODE7}",
                           f"run {RUN7} of train_ranker failed (train on {NODE7})"):
                assert effect in cause.text, (effect, cause.text)
            blocks = json.dumps(cause.blocks)
            assert f"same node {NODE7} within 10m" in blocks
            assert f"node {NODE7} = hostname {NODE7} within 10m" in blocks
            alone = [m.text for m in messages if m is not cause]
            assert not [t for t in alone if "ranker" in t], alone  # ranker's are the cause's
            assert any(t.startswith("[FIRING:1] ModelFailing: scorer is down") for t in alone)
            assert any("batch_score" in t for t in alone), alone
            assert "scorer" not in cause.text and "batch_score" not in cause.text

            # a run fails on gpu-node-7 two minutes on: it joins the cause's thread
            peers.fail_run(RUN7_LATER)

            def joined() -> list[str]:
                return [m.text for m in peers.call(peers.slack.replies, cause.ts)
                        if RUN7_LATER in m.text or "train_ranker.train" in m.text]
            wait_for(joined, 30, what="the later failure in the cause's thread")
            replies = joined()
            assert replies[0].startswith("Also explained by this cause: "), replies
            assert len(top()) == len(messages), [m.text for m in top()]
            assert not peers.call(lambda: list(peers.slack.refused))
            assert agent.alive()
