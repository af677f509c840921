"""gpu config errors, the metric catalog, GPU presence and the default instance, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from agent.app import default_instances
from agent.catalog import load_catalog
from agent.config import default_config, parse_config
from agent.errors import ConfigError
from checks.gpu.check import GpuCheck
from checks.gpu.presence import gpu_present
from tests.checks.gpu_dcgm_samples import DcgmGpu, exposition
from tests.checks.gpu_fake_nvml import FakeNvml, one_gpu
from tests.checks.test_gpu_cgroups import V2_DOCKER, write_proc
from tests.checks.test_gpu_dcgm import Exporter, dcgm_check
from tests.checks.test_gpu_nvml import make_check
from tests.support.procs import REPO
from tests.support.targets import Target


@pytest.mark.parametrize("check, problem", [
    ("{type: gpu, name: g, source: dcgm}",
     "checks[0]: source dcgm needs `urls`: the dcgm-exporter endpoints to scrape, found none"),
    ("{type: gpu, name: g, urls: ['http://n:9400/metrics']}",
     "checks[0]: `urls` is for source dcgm; source nvml reads the local GPUs, found urls"),
    ("{type: gpu, name: g, source: dcgm, urls: ['n:9400/metrics']}",
     "checks[0].urls: expected an http(s) URL like http://node:9400/metrics, found 'n:9400/metrics'"),
    ("{type: gpu, name: g, source: nvidia}", "checks[0].source: input should be 'nvml' or 'dcgm', found a string 'nvidia'"),
    ("{type: gpu, name: g, idle_threshold: 5}",
     "checks[0].idle_threshold: input should be less than or equal to 1, found a number 5"),
    ("{type: gpu, name: g, idle_window: soon}",
     "checks[0].idle_window: expected a duration like '15s', '5m' or '1h30m', found 'soon'"),
    ("{type: gpu, name: g, prices: {'*H100*': -1}}", "checks[0].prices: price of '*H100*' cannot be negative, found -1.0"),
    ("{type: gpu, name: g, price_per_gpu_hr: 4}", "checks[0].price_per_gpu_hr: unknown key (did you mean 'price_per_gpu_hour'?)"),
])
def test_config_errors_name_the_key(check, problem):
    with pytest.raises(ConfigError) as info:
        parse_config(f"checks:\n  - {check}\n", source="gpu.yaml")
    assert problem in str(info.value)


def test_a_full_config_validates():
    config = parse_config("""
checks:
  - {type: gpu, name: local-gpus, price_per_gpu_hour: 4.10, prices: {"*A100*": 2.5}, idle_window: 45m,
     idle_threshold: 0.1, proc_root: /host/proc, expected_gpus: 8}
  - {type: gpu, name: fleet, source: dcgm, interval: 30s,
     urls: [http://gpu-node-1:9400/metrics, http://gpu-node-2:9400/metrics]}
""")
    local, fleet = config.checks
    assert (local.idle_window, local.prices, local.proc_root) == (2700.0, {"*A100*": 2.5}, "/host/proc")
    assert fleet.urls[1] == "http://gpu-node-2:9400/metrics"


async def test_every_declared_metric_is_emitted_by_some_scenario(tmp_path):
    emitted: set[str] = set()
    write_proc(tmp_path, 4242, "python", V2_DOCKER)
    lib = FakeNvml(one_gpu(processes=[(4242, 2**30)], ecc=(1, 0)))
    nvml = make_check(lib, proc_root=str(tmp_path), price_per_gpu_hour=1.0)
    await nvml.run()
    lib.inject_xid(0, 48)
    for _ in range(200):
        if lib.delivered:
            break
        time.sleep(0.01)
    time.sleep(0.05)
    emitted |= {s.metric for s in (await nvml.run()).samples}
    await nvml.close()
    gpu = DcgmGpu(0, "GPU-1", values={"DCGM_FI_DEV_MEMORY_TEMP": 52})
    exporter = Exporter(exposition([gpu]))
    async with Target({("GET", "/metrics"): exporter.handler}) as target:
        check = dcgm_check(target.url + "/metrics", price_per_gpu_hour=1.0)
        emitted |= {s.metric for s in (await check.run()).samples}
        await check.context.close()
    declared = {spec.name for spec in load_catalog().for_check("gpu")}
    assert declared == emitted


def test_gpu_presence_from_device_files(tmp_path):
    dev, proc = tmp_path / "dev", tmp_path / "gpus"
    dev.mkdir()
    (dev / "nvidiactl").write_text("")
    assert gpu_present(str(dev), str(proc)) is False      # the control device alone is no GPU
    (dev / "nvidia0").write_text("")
    assert gpu_present(str(dev), str(proc)) is True
    (dev / "nvidia0").unlink()
    proc.mkdir()
    assert gpu_present(str(dev), str(proc)) is False
    (proc / "0000:18:00.0").mkdir()
    assert gpu_present(str(dev), str(proc)) is True


def test_run_without_config_adds_the_nvml_check_only_where_a_gpu_is(monkeypatch):
    monkeypatch.setattr("checks.gpu.presence.gpu_present", lambda: False)
    assert [i.type for i in default_instances(default_config())] == ["agent"]
    monkeypatch.setattr("checks.gpu.presence.gpu_present", lambda: True)
    extra = default_instances(default_config())
    assert [(i.type, i.name, getattr(i, "source", None)) for i in extra] == [
        ("agent", "agent", None), ("gpu", "local-gpus", "nvml")]
    configured = parse_config("checks:\n  - {type: gpu, name: mine, enabled: false}\n")
    assert [i.type for i in default_instances(configured)] == ["agent"]   # the user's choice stands


def test_auto_instance_is_cheap():
    started = time.perf_counter()
    for _ in range(100):
        GpuCheck.auto_instance()
    # generous bound: the point is "no NVML load at start-up", which would cost 10-100 ms each
    assert (time.perf_counter() - started) / 100 < 0.005


def test_mlwarden_check_on_a_machine_without_a_gpu(tmp_path):
    config = tmp_path / "gpu.yaml"
    config.write_text("checks:\n  - {type: gpu, name: local-gpus, source: nvml}\n")
    cli = "import sys; from agent.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    table = subprocess.run([sys.executable, "-c", cli, "check", "local-gpus", "--config", str(config)],
                           capture_output=True, text=True, timeout=60, env=env)
    assert table.returncode == 3, table.stderr  # UNKNOWN: the agent says why and goes on
    assert "local-gpus (gpu): UNKNOWN - " in table.stdout
    assert "mlwarden.gpu.source.up" in table.stdout
    as_json = subprocess.run([sys.executable, "-c", cli, "check", "local-gpus", "--config", str(config), "--json"],
                             capture_output=True, text=True, timeout=60, env=env)
    doc = json.loads(as_json.stdout)
    assert (doc["status"], doc["type"]) == ("UNKNOWN", "gpu")
    assert doc["message"] in table.stdout


def test_example_rules_use_declared_metrics_tags_and_the_rule_schema():
    import re

    import yaml

    rules = yaml.safe_load((REPO / "agent" / "data" / "rules" / "gpu.yaml").read_text())["rules"]
    catalog = load_catalog()
    keys = {"alert", "metric", "where", "aggregate", "window", "op", "threshold", "for", "severity",
            "summary", "description", "runbook_url", "absent", "group_by"}
    aggregates = {"last", "avg", "min", "max", "sum", "count", "p50", "p90", "p95", "p99", "rate", "increase"}
    for rule in rules:
        name = rule["alert"]
        assert set(rule) <= keys, name
        spec = catalog.get(rule["metric"])
        assert spec is not None and spec.check == "gpu", name
        assert rule.get("aggregate", "last") in aggregates, name
        assert rule["severity"] in {"critical", "warning", "info"}, name
        if "absent" in rule:
            assert "op" not in rule and "threshold" not in rule, name
        else:
            assert rule["op"] in {"<", "<=", ">", ">=", "==", "!=", }, name
            assert isinstance(rule["threshold"], (int, float)), name
        for tag in (*rule.get("where", {}), *rule.get("group_by", ())):
            assert tag in spec.tags, (name, tag)
        for text in (rule["summary"], rule.get("description", "")):
            for label in re.findall(r"\{(\w+)(?::[^}]*)?\}", text):
                assert label == "value" or label in spec.tags, (name, label)
    assert {"GpuNodeIdle", "GpuLost", "GpuXidCritical", "GpuTemperatureHigh"} <= {r["alert"] for r in rules}
