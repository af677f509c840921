"""A test-only check type that records which agent polled: stands in for a cluster-wide
check (Airflow, a DCGM scrape) without depending on those checks.

It GETs its ``url`` with an ``X-Mlwarden-Agent`` header naming the polling agent, so the
test's target can tell the agents apart.
"""

from __future__ import annotations

from pydantic import Field

from agent.check import AgentCheck, InstanceConfig
from agent.errors import CheckError

AGENT_HEADER = "X-Mlwarden-Agent"


class FleetProbeConfig(InstanceConfig):
    url: str = Field(description="URL the probe GETs.")


class FleetProbe(AgentCheck):
    type_name = "fleet_probe"
    Config = FleetProbeConfig

    async def check(self) -> None:
        config = self.config
        assert isinstance(config, FleetProbeConfig)
        headers = {AGENT_HEADER: self.context.agent or ""}
        async with self.context.http.get(config.url, headers=headers) as resp:
            if resp.status != 200:
                raise CheckError(f"{config.url} answered {resp.status}")
