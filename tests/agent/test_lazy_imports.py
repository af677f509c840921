"""What `mlwarden run` imports: only the check types it runs, DogStatsD without HTTP.

Every module a daemon imports stays in its RSS for good (benchmarks/README.md, "RSS per
check"): a sidecar watching model endpoints must not carry the Airflow client, the GPU
check's NVML/DCGM sources or datadog's REST client (requests, urllib3). These tests read
``sys.modules`` of real processes, so they fail as soon as an eager import comes back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from agent.plugins import check_type_names, check_types, metadata_path
from tests.support.procs import REPO, Proc, free_port, http_get, wait_for, wait_http

# modules a model_endpoint-only agent must not import, each with its submodules; a check
# folder's (empty) package is imported to find its metadata.csv, its modules are not
NOT_FOR_ENDPOINTS = ("checks.airflow.", "checks.openmetrics.", "checks.gpu.dcgm", "checks.gpu.nvml",
                     "checks.gpu.nvml_source", "checks.gpu.report", "prometheus_client", "requests",
                     "urllib3", "charset_normalizer", "datadog.api", "datadog.threadstats")

# runs a snippet, then prints the sorted module names (the last line of stdout)
_MODULES = "import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"


def run_snippet(code: str) -> tuple[set[str], str]:
    """The modules a fresh interpreter holds after ``code``, and what it printed before."""
    out = subprocess.run([sys.executable, "-c", _MODULES.format(code=code)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    *printed, last = out.stdout.strip().splitlines()
    return set(json.loads(last)), "\n".join(printed)


def loaded(modules: set[str], name: str) -> list[str]:
    """``name`` and its submodules among ``modules``; only the submodules for "package."."""
    if name.endswith("."):
        return sorted(m for m in modules if m.startswith(name))
    return sorted(m for m in modules if m == name or m.startswith(name + "."))


@pytest.mark.integration
def test_a_model_endpoint_agent_imports_neither_other_check_types_nor_datadogs_http_client(tmp_path):
    port, statsd, closed = free_port(), free_port(), free_port()
    checks = "\n".join(f"  - {{type: model_endpoint, name: ep-{i}, url: 'http://127.0.0.1:{closed}/', "
                       f"protocol: http, interval: 60s}}" for i in range(3))
    (tmp_path / "agent.yaml").write_text(f"""
agent:
  listen: 127.0.0.1:{port}
  history: sqlite:///{tmp_path}/history.db
exporters:
  prometheus: {{enabled: true}}
  datadog: {{mode: dogstatsd, host: 127.0.0.1, port: {statsd}}}
checks:
{checks}
""")
    dump = tmp_path / "modules.json"
    # the real CLI; the modules it holds are written as it exits (it leaves by os._exit)
    runner = ("import json, os, sys\n"
              "_exit = os._exit\n"
              "def _dump_then_exit(code):\n"
              f"    open({str(dump)!r}, 'w').write(json.dumps(sorted(sys.modules)))\n"
              "    _exit(code)\n"
              "os._exit = _dump_then_exit\n"
              "from agent.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    proc = Proc("agent", [sys.executable, "-c", runner, "run", "--config", str(tmp_path / "agent.yaml")],
                cwd=tmp_path, log_dir=tmp_path).start()
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60, proc=proc)

        def every_check_ran() -> bool:  # what a run imports on its way is in, too
            code, body = http_get(f"http://127.0.0.1:{port}/status")
            return code == 200 and all(c["runs"] >= 1 for c in json.loads(body)["checks"])

        wait_for(every_check_ran, timeout=30)
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.log_tail()
    finally:
        proc.stop()
    modules = set(json.loads(dump.read_text()))
    for prefix in NOT_FOR_ENDPOINTS:
        assert not loaded(modules, prefix), f"{prefix} imported by a model_endpoint-only agent"
    # what it does run is there: its check type, the GPU presence test, DogStatsD's client
    for name in ("checks.model_endpoint.check", "checks.gpu.check", "datadog.dogstatsd.base",
                 "agent.export.datadog_statsd"):
        assert name in modules, name


def test_a_configured_check_type_is_imported_when_the_config_names_it():
    modules, _ = run_snippet(
        "from agent.config import parse_config\n"
        "parse_config('checks:\\n  - {type: openmetrics, name: om, url: \"http://127.0.0.1:1/metrics\", metrics: [{name: up}]}\\n')\n")
    assert "checks.openmetrics.check" in modules
    assert not loaded(modules, "checks.airflow.")  # (openmetrics shares model_endpoint's HTTP probe)
    assert "checks.model_endpoint.check" not in modules and not loaded(modules, "checks.gpu.")


def test_an_unknown_check_type_is_a_clear_config_error_that_imports_no_check_type():
    modules, printed = run_snippet(
        "from agent.config import parse_config\n"
        "from agent.errors import ConfigError\n"
        "try:\n"
        "    parse_config('checks:\\n  - {type: modle_endpoint, name: x, url: \"http://127.0.0.1:1/\"}\\n')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n")
    assert ("checks[0].type: unknown check type 'modle_endpoint'; installed types: agent, airflow, gpu, "
            "model_endpoint, openmetrics (third-party types register in the 'mlwarden.checks' "
            "entry-point group) (did you mean 'model_endpoint'?)") in printed
    assert not loaded(modules, "checks.model_endpoint.") and not loaded(modules, "checks.airflow.")


def test_the_catalog_has_every_types_metrics_without_importing_them():
    modules, printed = run_snippet(
        "from agent.catalog import load_catalog\n"
        "print(sorted({s.check for s in load_catalog()}))\n")
    for name in ("airflow", "gpu", "model_endpoint", "openmetrics", "agent"):
        assert repr(name) in printed
    assert not [m for m in modules if m.startswith("checks.") and m.count(".") > 1]


def test_metadata_paths_found_without_importing_are_the_types_own():
    for name, cls in check_types().items():
        assert metadata_path(name) == cls.metadata_path(), name
    assert check_type_names() == sorted(check_types())


def test_dogstatsd_comes_without_datadogs_http_client_and_the_package_still_works_whole():
    modules, _ = run_snippet(
        "from agent.export.datadog_statsd import DogStatsdExporter\n"
        "assert 'requests' not in sys.modules and 'datadog.api' not in sys.modules\n"
        "import datadog\n"
        "from datadog import initialize, api, statsd\n"  # the package's __init__ runs here
        "from datadog.dogstatsd.base import DogStatsd\n"
        "assert datadog.DogStatsd is DogStatsd and datadog.dogstatsd.base.DogStatsd is DogStatsd\n"
        "assert callable(initialize) and api.Metric is not None and statsd is datadog.statsd\n")
    assert "requests" in modules and "datadog.api" in modules


def test_the_deferred_package_says_what_it_lacks():
    _, printed = run_snippet(
        "import agent.export.dogstatsd_client, datadog\n"
        "try:\n    datadog.no_such_thing\n"
        "except AttributeError as exc:\n    print(exc)\n")
    assert printed == "module 'datadog' has no attribute 'no_such_thing'"


def test_the_gpu_type_builds_its_source_only_with_an_instance():
    modules, _ = run_snippet(
        "from agent.plugins import get_check_type\n"
        "get_check_type('gpu').auto_instance()\n")
    assert "checks.gpu.check" in modules
    assert not loaded(modules, "checks.gpu.dcgm") and not loaded(modules, "checks.gpu.nvml_source")
    assert not loaded(modules, "prometheus_client")
