"""Where things run, as labels the checks emit without extra config (issue #22): the agent's
node on its GPUs and on a model server it probes over loopback, a user's `node` tag on any
other endpoint, and the worker host of a failed Airflow task (recorded Airflow 2 and 3
answers). The cause graph links on these labels (tests/causes)."""

from __future__ import annotations

import copy
import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver

from agent.catalog import load_catalog
from agent.check import CheckContext, MemoryState
from agent.node import is_loopback, this_node
from checks.gpu.check import GpuCheck
from checks.gpu.config import GpuConfig
from checks.model_endpoint.check import ModelEndpointCheck
from tests.checks.airflow_fake import FakeAirflow
from tests.checks.gpu_fake_nvml import FakeNvml, one_gpu
from tests.checks.test_airflow import T0, Clock, cfg, find, poll
from tests.conftest import assert_in_catalog
from tests.support.targets import Target, canned, load_fixture

pytestmark = pytest.mark.unit

NODE = "gpu-node-7"


# -- the agent's node ------------------------------------------------------------------------
def test_the_agents_node_is_the_config_then_the_downward_api_then_the_host_name():
    assert this_node("from-config", {"NODE_NAME": "from-env"}) == "from-config"
    assert this_node(None, {"NODE_NAME": "from-env"}) == "from-env"
    assert this_node(None, {"NODE_NAME": ""}) == socket.gethostname()
    assert this_node(None, {}) == socket.gethostname()


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST.", True), ("api.localhost", True),
    ("10.0.0.7", False), ("ranker", False), ("ranker.serving.svc", False), ("", False),
    (None, False), ("localhost.example.com", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


# -- model endpoints -------------------------------------------------------------------------
class ToLoopback(AbstractResolver):
    """Resolves every name to 127.0.0.1: a model server with a real DNS name (not loopback in
    its URL) that the test can still serve locally."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


async def probe(url: str, *, node: str | None = NODE, tags: dict | None = None,
                agent_tags: dict | None = None, resolver: AbstractResolver | None = None):
    ctx = CheckContext(node=node, agent_tags=agent_tags)
    if resolver is not None:
        ctx._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver))
    config = ModelEndpointCheck.Config(type="model_endpoint", name="ranker", url=url,
                                       protocol="http", model="ranker", tags=tags or {})
    try:
        result = await ModelEndpointCheck(config, ctx).run()
    finally:
        await ctx.close()
    assert_in_catalog(result)
    return result


def nodes(result) -> set[str | None]:
    return {s.tag("node") for s in result.samples}


async def test_a_model_server_probed_over_loopback_runs_on_the_agents_node():
    async with Target({("GET", "/"): canned("down", status=503)}) as t:
        failing = await probe(t.url + "/")
        localhost = await probe(t.url.replace("127.0.0.1", "localhost") + "/")
    emitted = {s.metric for s in failing.samples}
    assert emitted >= {"mlwarden.endpoint.up", "mlwarden.endpoint.errors"}
    assert nodes(failing) == nodes(localhost) == {NODE}


async def test_a_users_node_tag_stands_and_an_agent_without_a_node_adds_none():
    async with Target({("GET", "/"): canned("ok")}) as t:
        tagged = await probe(t.url + "/", tags={"node": "gpu-node-3"})
        everywhere = await probe(t.url + "/", agent_tags={"node": "gpu-node-4"})
        unknown = await probe(t.url + "/", node=None)
    assert nodes(tagged) == {"gpu-node-3"} and nodes(everywhere) == {"gpu-node-4"}
    assert nodes(unknown) == {None}


async def test_a_model_server_elsewhere_is_placed_only_by_the_user():
    async with Target({("GET", "/"): canned("ok")}) as t:
        port = t.url.rsplit(":", 1)[1]
        url = f"http://ranker.serving.svc:{port}/"
        remote = await probe(url, resolver=ToLoopback())
        labelled = await probe(url, tags={"node": "gpu-node-3"}, resolver=ToLoopback())
    assert [s.value for s in remote.samples if s.metric == "mlwarden.endpoint.up"] == [1.0]
    assert nodes(remote) == {None}  # not the agent's node: it may run anywhere
    assert nodes(labelled) == {"gpu-node-3"}


# -- GPUs ------------------------------------------------------------------------------------
async def test_local_gpus_carry_the_agents_node_unless_the_instance_names_one():
    async def gpu_nodes(config: GpuConfig) -> set[str | None]:
        check = GpuCheck(config, CheckContext(node=NODE, state=MemoryState()),
                         nvml_lib=FakeNvml(one_gpu()), xid_poll_ms=20)
        try:
            result = await check.run()
        finally:
            await check.close()
        assert_in_catalog(result)
        placed = {spec.name for spec in load_catalog() if "node" in spec.tags}
        return {s.tag("node") for s in result.samples if s.metric in placed}

    assert await gpu_nodes(GpuConfig(type="gpu", name="local-gpus")) == {NODE}
    assert await gpu_nodes(GpuConfig(type="gpu", name="local-gpus", node="other")) == {"other"}


# -- Airflow task instances ------------------------------------------------------------------
@pytest.mark.parametrize("major", ["3", "2"])
async def test_a_failed_task_says_which_host_it_ran_on(major):
    """The recorded answer of a failed `train` (hostname `vm`, the recording machine) and of
    its upstream_failed successor, which never reached a worker (hostname "")."""
    clock = Clock(T0)
    recorded = load_fixture(f"airflow{major}", "task_instances_train_ranker.json")["task_instances"]
    assert [(t["task_id"], t["state"], t["hostname"]) for t in recorded] == [
        ("train", "failed", "vm"), ("register_model", "upstream_failed", "")]
    other = copy.deepcopy(recorded[0]) | {"task_id": "evaluate",
                                          "hostname": "GPU-Node-7.Example.com"}
    fake = FakeAirflow(major, clock)
    run_id = recorded[0]["dag_run_id"]
    fake.run("train_ranker", run_id, "failed", T0 - 60, T0 - 10)
    fake.tis[("train_ranker", run_id)] = [*copy.deepcopy(recorded), other]
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url), MemoryState(), clock)
    tasks = {s.tag("task_id"): s for s in find(result, "task_instance.failed")}
    assert {k: s.tag("hostname") for k, s in tasks.items()} == {
        "train": "vm", "evaluate": "GPU-Node-7.Example.com"}
    durations = {s.tag("task_id"): s.tag("hostname")
                 for s in find(result, "task_instance.failed_duration")}
    assert durations == {"train": "vm", "evaluate": "GPU-Node-7.Example.com"}
    [run] = find(result, "dag_run.failed")
    assert run.tag("failed_hosts") == "GPU-Node-7.Example.com,vm"
    assert run.tag("failed_tasks") == "evaluate,train"


async def test_a_task_failed_before_any_worker_ran_it_has_no_host_tag():
    clock = Clock(T0)
    fake = FakeAirflow("3", clock)
    fake.run("train_ranker", "r1", "failed", T0 - 60, T0 - 10)
    fake.ti("train_ranker", "r1", "train", "failed", hostname="")
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url), MemoryState(), clock)
    [task] = find(result, "task_instance.failed")
    assert task.tag("hostname") is None
    [run] = find(result, "dag_run.failed")
    assert run.tag("failed_hosts") is None and run.tag("failed_tasks") == "train"
