"""A real headless Chromium (Debian's, installed by tests/peers/install-chromium.sh) driven
by Playwright, and a real agent daemon for it to look at.

No browser is downloaded: Playwright launches the system binary. The flags keep Chromium
from reaching anything but loopback (no component updates, sync or background traffic)
and Playwright gives every launch a fresh profile directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.procs import Proc, free_port, require_peer, wait_http

__all__ = ["CHROMIUM", "FLAGS", "agent_config", "launch", "start_agent"]

CHROMIUM = Path("/usr/bin/chromium")
MLWARDEN = Path(sys.executable).with_name("mlwarden")
FLAGS = [
    "--no-sandbox",  # CI containers run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright):  # -> playwright Browser
    require_peer(CHROMIUM, "bash tests/peers/install-chromium.sh")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)


def agent_config(tmp: Path, port: int, *, token: str, dead_port: int, webhook: str,
                 listen_host: str = "0.0.0.0") -> Path:
    """A node's agent as an operator would run it in a pod: listening on every address with
    a token, two model endpoints whose server is gone, one that answers (the agent's own
    /healthz), alerts to a Slack webhook on fast timers so a test sees repeats."""
    cfg = tmp / "agent.yaml"
    cfg.write_text(f"""
agent:
  history: sqlite:///{tmp}/history.db
  listen: {listen_host}:{port}
  auth_token: {token}
  hostname: gpu-node-7
  self_check_interval: 2s
  log_format: text
checks:
  - {{type: model_endpoint, name: ranker, protocol: v2, model: ranker, url: "http://127.0.0.1:{dead_port}", interval: 1s}}
  - {{type: model_endpoint, name: scripted, protocol: v2, model: "<script>alert(1)</script>",
     url: "http://127.0.0.1:{dead_port}", interval: 1s}}
  - {{type: model_endpoint, name: agent-healthz, protocol: http, url: "http://127.0.0.1:{port}/healthz", interval: 1s}}
rules:
  - alert: EndpointDown
    metric: mlwarden.endpoint.up
    op: "<"
    threshold: 1
    group_by: [check, model]
    severity: critical
    summary: "{{check}} is down (model {{model}})"
alerting:
  slack: {{webhook_url: "{webhook}"}}
  group_by: [alertname, check]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 2s
  delivery: {{tick: 0.2s, pace: 0s}}
""")
    cfg.chmod(0o600)
    return cfg


def start_agent(tmp: Path, **kwargs) -> tuple[Proc, int, Path]:
    port = free_port()
    cfg = agent_config(tmp, port, **kwargs)
    proc = Proc("mlwarden-agent", [MLWARDEN, "run", "--config", cfg], log_dir=tmp).start()
    wait_http(f"http://127.0.0.1:{port}/readyz", timeout=30, proc=proc)
    return proc, port, cfg
