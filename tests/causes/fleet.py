"""Two GPU nodes and what runs on them, watched by the real checks and the shipped rules.

gpu-node-7 serves the model `ranker` (its sidecar agent knows the node from the downward
API) and trains `train_ranker`; gpu-node-8 serves `scorer` (its check labelled `node:` by the
user) and runs `batch_score`. What cannot run here is served on 127.0.0.1: dcgm-exporter
output built from its own default counter list (or the strict NVML fake, for the node's own
agent), model servers whose health route fails on demand, and Airflow 3 answering with
recorded task instances whose `hostname` is set to the node they ran on. Samples go through
the rule packs shipped with the agent, verbatim; the firing alerts become cause-graph signals.
"""

from __future__ import annotations

import copy
import time
from contextlib import AsyncExitStack
from typing import Any

from aiohttp import web

from agent.alert import AlertState
from agent.causes import Signal
from agent.check import AgentCheck, CheckContext, MemoryState
from agent.rules.evaluator import RuleEvaluator
from agent.rules.files import load_rule_file
from checks.airflow.check import AirflowCheck
from checks.airflow.times import parse_ts
from checks.gpu.check import GpuCheck
from checks.gpu.config import GpuConfig
from checks.model_endpoint.check import ModelEndpointCheck
from tests.checks.airflow_fake import FakeAirflow
from tests.checks.gpu_dcgm_samples import DcgmGpu, exposition
from tests.checks.gpu_fake_nvml import FakeNvml, eight_gpus
from tests.checks.test_airflow import Clock, cfg
from tests.conftest import assert_in_catalog
from tests.support.procs import REPO
from tests.support.targets import Target, load_fixture

__all__ = ["FAULT", "Fleet", "NODE7", "NODE8", "RUNS", "T0", "WINDOW"]

NODE7, NODE8 = "gpu-node-7", "gpu-node-8"
T0 = parse_ts("2026-12-06T10:00:00Z") or 0.0
FAULT = T0 + 120          # 10:02
WINDOW = 600.0            # the shipped graph's
PACKS = ("gpu", "endpoints", "airflow")
# run id -> (dag, task, node it ran on)
RUNS = {
    "manual__2026-12-06T09:55:00+00:00": ("train_ranker", "train", NODE7),
    "scheduled__2026-12-06T09:50:00+00:00": ("batch_score", "score", NODE8),
    "manual__2026-12-06T10:15:00+00:00": ("train_ranker", "train", NODE7),
}


def shipped_rules() -> list:
    problems: list[str] = []
    rules = [r for pack in PACKS
             for r in load_rule_file(REPO / "agent" / "data" / "rules" / f"{pack}.yaml", problems)]
    assert not problems, problems
    return rules


def recorded_task_instances(dag_id: str, run_id: str, task_id: str, node: str) -> list[dict]:
    """Airflow 3.3's answer for a failed run of train_ranker (a failed `train`, its
    upstream_failed successor), moved to this run, task and worker host."""
    tis = copy.deepcopy(load_fixture("airflow3", "task_instances_train_ranker.json")
                        ["task_instances"])
    for ti in tis:
        ti.update(dag_id=dag_id, dag_run_id=run_id)
        if ti["state"] == "failed":
            ti.update(task_id=task_id, hostname=node)
    return tis


class Fleet:
    """Use as ``async with Fleet("dcgm") as fleet:``; ``source`` is how the GPUs of
    gpu-node-7 are read: `dcgm` (both nodes' exporters, from a cluster agent) or `nvml`
    (gpu-node-7's own agent, which names its node from $NODE_NAME)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.clock = Clock(T0)
        self.evaluator = RuleEvaluator(shipped_rules(), started=T0)
        self.health = {"ranker": 200, "scorer": 200}
        self.dcgm = {node: [DcgmGpu(i, f"GPU-{node}-0000-0000-0000-00000000000{i}", hostname=node)
                            for i in range(4)] for node in (NODE7, NODE8)}
        self.silent: set[str] = set()
        self.nvml = FakeNvml(eight_gpus())
        self.airflow = FakeAirflow("3", self.clock)
        for run_id, (dag, task, node) in RUNS.items():
            self.airflow.tis[(dag, run_id)] = recorded_task_instances(dag, run_id, task, node)
        self.checks: list[AgentCheck] = []
        self.history: dict[str, Signal] = {}  # every alert that fired, as it stands now
        self._stack = AsyncExitStack()

    # -- what happens ------------------------------------------------------------------------
    def gpu_falls_off_the_bus(self, node: str = NODE7, index: int = 3) -> None:
        """XID 79, as each source reports it; the GPU is gone from the next reading on."""
        if self.source == "nvml":
            self.nvml.inject_xid(index, 79)
            deadline = time.monotonic() + 5
            while self.nvml.delivered < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert self.nvml.delivered == 1, "the NVML watcher thread never took the event"
            time.sleep(0.05)  # it counts right after the wait returns
        else:
            self.dcgm[node][index].values["DCGM_FI_DEV_XID_ERRORS"] = 79

    def gpu_is_gone(self, node: str = NODE7, index: int = 3) -> None:
        if self.source == "nvml":
            self.nvml.gpus[index].lost = "queries"   # NVML_ERROR_GPU_IS_LOST
        else:
            self.dcgm[node] = [g for g in self.dcgm[node] if g.gpu != index]

    def task_fails(self, run_id: str) -> None:
        """The run ends now, failed; its failed task ran on the run's node."""
        dag = RUNS[run_id][0]
        now = self.clock.now
        self.airflow.run(dag, run_id, "failed", now - 300, now)

    # -- time ----------------------------------------------------------------------------------
    async def run_until(self, end: float, every: float = 10.0) -> None:
        while self.clock.now < end:
            now = self.clock.now
            for check in self.checks:
                result = await check.run()
                assert_in_catalog(result)
                self.evaluator.evaluate(self.evaluator.ingest(result.samples), now)
            self.evaluator.tick(now)
            changes, _ = self.evaluator.drain()
            for change in changes:  # what the alert history keeps: the latest of each alert
                self.history[change.record.fingerprint] = Signal.from_alert(change.alert())
            self.clock.now += every

    def alerts(self, state: AlertState | None = AlertState.FIRING) -> list[Signal]:
        """The alerts of the shipped rules as signals (firing ones, by default)."""
        return [Signal.from_alert(a) for a in self.evaluator.alerts()
                if state is None or a.state is state]

    # -- plumbing ------------------------------------------------------------------------------
    async def _model_health(self, request: web.Request) -> web.Response:
        model = request.path.split("/")[1]
        status = self.health[model]
        return web.Response(status=status, text="ok" if status == 200 else "CUDA error: unknown")

    async def _exporter(self, request: web.Request) -> web.Response:
        node = request.path.split("/")[1]
        if node in self.silent:
            return web.Response(status=503, text="no route to host")
        return web.Response(text=exposition(self.dcgm[node]), content_type="text/plain")

    async def __aenter__(self) -> Fleet:
        stack = self._stack
        servers = await stack.enter_async_context(Target(
            {("GET", f"/{m}/health"): self._model_health for m in self.health}))
        exporters = await stack.enter_async_context(Target(
            {("GET", f"/{n}/metrics"): self._exporter for n in self.dcgm}))
        airflow = await stack.enter_async_context(self.airflow.target())

        def context(**kw: Any) -> CheckContext:
            ctx = CheckContext(clock=self.clock, state=MemoryState(), **kw)
            stack.push_async_callback(ctx.close)
            return ctx

        if self.source == "nvml":  # gpu-node-7's own agent: its node from the downward API
            gpus = GpuCheck(GpuConfig(type="gpu", name="local-gpus"), context(node=NODE7),
                            nvml_lib=self.nvml, xid_poll_ms=20)
        else:                       # a cluster agent scraping both nodes' dcgm-exporters
            urls = tuple(f"{exporters.url}/{n}/metrics" for n in self.dcgm)
            gpus = GpuCheck(GpuConfig(type="gpu", name="fleet-gpus", source="dcgm", urls=urls),
                            context())
        stack.push_async_callback(gpus.close)
        endpoint = ModelEndpointCheck.Config
        ranker = ModelEndpointCheck(endpoint(type="model_endpoint", name="ranker", protocol="http",
                                             model="ranker", url=f"{servers.url}/ranker/health"),
                                    context(node=NODE7))   # its sidecar, on gpu-node-7
        scorer = ModelEndpointCheck(endpoint(type="model_endpoint", name="scorer", protocol="http",
                                             model="scorer", url=f"{servers.url}/scorer/health",
                                             tags={"node": NODE8}),
                                    context())             # placed by the user's tag
        pipelines = AirflowCheck(cfg(airflow.url, name="prod-airflow"), context())
        self.checks = [gpus, ranker, scorer, pipelines]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
