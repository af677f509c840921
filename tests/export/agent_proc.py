"""Start ``mlwarden run`` as a subprocess with a temporary config on a free port."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.procs import Proc, free_port, wait_http

__all__ = ["start_agent"]

MLWARDEN = Path(sys.executable).with_name("mlwarden")


def agent_config(tmp: Path, port: int, extra: str = "") -> Path:
    cfg = tmp / "agent.yaml"
    cfg.write_text(f"""
agent:
  history: sqlite:///{tmp}/history.db
  listen: 127.0.0.1:{port}
  hostname: test-agent
  self_check_interval: 1s
  log_format: text
  tags: {{env: test}}
exporters:
{extra or "  prometheus: {enabled: true}"}
""")
    return cfg


def start_agent(tmp: Path, extra: str = "") -> tuple[Proc, int]:
    port = free_port()
    proc = Proc("mlwarden-agent", [MLWARDEN, "run", "--config", agent_config(tmp, port, extra)],
                log_dir=tmp).start()
    wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30, proc=proc)
    return proc, port
