"""``mlwarden`` with the test-only ``fleet_probe`` check type registered: the fleet tests
start this file as each agent process (``python agent_main.py run -c FILE``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.cli import main  # noqa: E402
from agent.plugins import register_check_type  # noqa: E402
from tests.fleet.probe import FleetProbe  # noqa: E402

if __name__ == "__main__":
    register_check_type("fleet_probe", FleetProbe)
    sys.exit(main())
