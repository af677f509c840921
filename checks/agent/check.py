"""The agent's self-check: its own process and pipeline, so a sick agent is visible."""

from __future__ import annotations

import asyncio
import os

import psutil

from agent.check import AgentCheck, InstanceConfig
from agent.samples import Status

__all__ = ["AgentSelfCheck"]


class AgentSelfCheck(AgentCheck):
    type_name = "agent"
    key_metric = "mlwarden.agent.memory.rss"
    Config = InstanceConfig

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._proc = psutil.Process(os.getpid())
        self._proc.cpu_percent(None)  # prime: the first reading is always 0

    async def check(self) -> None:
        proc = self._proc
        with proc.oneshot():
            cpu = proc.cpu_times()
            self.monotonic_count("agent.cpu.time", cpu.user + cpu.system)
            self.gauge("agent.cpu.utilization", proc.cpu_percent(None) / 100.0)
            self.gauge("agent.memory.rss", proc.memory_info().rss)
            self.gauge("agent.open_fds", proc.num_fds())
            self.gauge("agent.threads", proc.num_threads())
        runtime = self.context.runtime
        if runtime is None:
            self.service_check(Status.OK, "no runtime attached (one-shot run)")
            return
        depth = runtime.pipeline_depth()
        self.gauge("agent.pipeline.queue_depth", depth)
        states = runtime.check_states()
        failing = [s.name for s in states.values() if s.consecutive_failures]
        self.gauge("agent.checks.configured", len(states))
        self.gauge("agent.checks.failing", len(failing))
        for n, state in enumerate(states.values(), 1):
            if n % 1000 == 0:
                await asyncio.sleep(0)  # thousands of instances: let due checks start meanwhile
            if state.last_duration is not None:
                self.gauge("agent.check.last_duration", state.last_duration,
                           tags={"check": state.name})
            self.gauge("agent.check.consecutive_failures", state.consecutive_failures,
                       tags={"check": state.name})
        if failing:
            shown = ", ".join(sorted(failing)[:5]) + (" ..." if len(failing) > 5 else "")
            self.service_check(Status.WARNING, f"{len(failing)} check(s) failing: {shown}")
        else:
            self.service_check(Status.OK, f"{len(states)} checks running")
