"""Builds every component from the config, starts them in order and stops them in reverse.

Data flows one way: checks -> pipeline -> sinks (latest values for /metrics, and the
store, exporters and rules as they are configured). SIGHUP reloads the way Prometheus
does: build and validate everything from the new file first, then swap; a bad file is
logged and the running config goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Mapping
from typing import Any, Protocol

from agent import __version__
from agent.alerting.dispatch import make_dispatcher
from agent.allocator import MemoryTrimmer
from agent.check import AgentCheck, CheckContext, InstanceConfig
from agent.config import AgentConfig, load_config
from agent.errors import AgentError
from agent.export.build import build_exporters
from agent.export.prometheus import PrometheusExporter
from agent.gcfreeze import GcFreezer
from agent.heartbeat import Heartbeat
from agent.history.store import HistoryStore
from agent.leader import build_leadership
from agent.pipeline import Pipeline
from agent.plugins import check_types, get_check_type
from agent.rules.engine import RulesEngine
from agent.rules.sinks import LoggingAlertSink
from agent.scheduler import CheckScheduler
from agent.server import AgentServer

__all__ = ["Agent", "Component", "build_checks", "run_agent"]

log = logging.getLogger(__name__)


class Component(Protocol):
    """A long-lived part of the agent (store, exporter, alerting) with a lifecycle."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


def default_instances(config: AgentConfig) -> list[InstanceConfig]:
    """Instances the agent adds on its own: the self-check (and a GPU check where one exists)."""
    extra: list[InstanceConfig] = []
    types = {c.type for c in config.checks}
    if config.agent.self_check and "agent" not in types:
        cls = get_check_type("agent")
        extra.append(cls.Config(type="agent", name="agent", interval=config.agent.self_check_interval))
    gpu = check_types().get("gpu") if "gpu" not in types else None
    auto = getattr(gpu, "auto_instance", None)  # an nvml instance only where a GPU is present
    if auto is not None and (instance := auto()) is not None:
        extra.append(instance)
    return extra


def build_checks(config: AgentConfig, context: CheckContext) -> list[AgentCheck]:
    """Instantiate every enabled check instance of ``config`` (plus the built-in ones)."""
    checks = []
    for instance in (*config.checks, *default_instances(config)):
        if not instance.enabled:
            continue
        cls = get_check_type(instance.type)
        checks.append(cls(instance, context))
    return checks


class Agent:
    """The running daemon: scheduler, pipeline, server and components."""

    def __init__(self, config: AgentConfig, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.started_at = time.time()
        self.pipeline = Pipeline(maxsize=config.agent.pipeline_queue)
        self.scheduler = CheckScheduler(self.pipeline)
        self.prometheus: PrometheusExporter | None = None
        self.components: list[Component] = []
        self.history = HistoryStore(config.agent.history, config.history)
        self.history.emit = self.pipeline.submit
        self.components.append(self.history)  # first: it migrates the database the others use
        self.leader = build_leadership(config.agent.history, config.leader, config.agent.hostname,
                                       engine=self.history.engine,
                                       candidate=self._has_cluster_checks,
                                       on_elected=lambda: self.scheduler.run_now("cluster"),
                                       submit=self.pipeline.submit)
        self.components.append(self.leader)
        self.scheduler.gate = self.leader.gate
        self.alerting = (make_dispatcher(config, engine=self.history.engine, reader=self.history,
                                         submit=self.pipeline.submit)
                         if config.alerting.enabled else None)
        self.components += [self.alerting] if self.alerting is not None else []
        self.context = self._context(config)
        # rules hand their changes to routing (or, with alerting disabled, to the log)
        self.alert_sinks: list[Any] = ([self.alerting] if self.alerting is not None
                                       else [LoggingAlertSink()])
        # always present, even with no rules yet, so a SIGHUP that adds rules takes effect
        self.rules: RulesEngine | None = RulesEngine.from_config(
            config, self.alert_sinks, engine=self.history.engine, source=self.history)
        self.components += [self.rules] if self.rules is not None else []
        self.components.append(MemoryTrimmer())  # RSS flat: glibc gives back what is freed
        self.components.append(GcFreezer())  # no long collector pauses (mlwarden run only)
        if config.heartbeat is not None:
            self.components.append(Heartbeat(config.heartbeat, lambda: self.context.http,
                                             self.readiness_problems))
        self.server = AgentServer(self, config.agent.listen_host, config.agent.listen_port)
        self.reloads = 0
        self.last_reload_error: str | None = None
        self._stopping = False

    def _context(self, config: AgentConfig) -> CheckContext:
        return CheckContext(
            state=self.history,
            runtime=self,
            http_limit=config.agent.http_connections,
            agent_tags=config.agent.tags,
            agent=config.agent.hostname,
        )

    def _has_cluster_checks(self) -> bool:
        return any(c.scope == "cluster" and c.enabled for c in self.config.checks)

    # -- RuntimeInfo, for the self-check ---------------------------------------------
    def check_states(self) -> Mapping[str, Any]:
        return self.scheduler.states

    def pipeline_depth(self) -> int:
        return self.pipeline.depth

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        exporters = build_exporters(self.config, lambda: self.history.engine, self.pipeline.submit)
        self.prometheus = exporters.prometheus
        self.components.extend(exporters.components)
        for component in self.components:
            await component.start()
            sink = getattr(component, "consume", None)
            if sink is not None:
                self.pipeline.attach(component)  # type: ignore[arg-type]
        self.pipeline.start()
        await self.server.start()
        self.scheduler.set_checks(build_checks(self.config, self.context))
        self.scheduler.start()
        log.info("mlwarden %s started with %d check instances", __version__, len(self.scheduler.checks))

    async def stop(self) -> None:
        """Stop scheduling, let in-flight checks finish up to the deadline, flush, close."""
        if self._stopping:
            return
        self._stopping = True
        deadline = self.config.agent.shutdown_timeout
        finished = await self.scheduler.quiesce(deadline)
        if not finished:
            log.warning("some checks were still running after %gs; cancelling them", deadline)
        self.scheduler.shutdown()
        await self.pipeline.drain(timeout=1.0)
        await self.pipeline.stop()
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception:  # noqa: BLE001 - keep closing the rest
                log.exception("component %s failed to stop cleanly", component.name)
        for check in self.scheduler.checks.values():
            await _close_quietly(check)
        await self.context.close()
        await self.server.stop()
        log.info("mlwarden stopped")

    async def reload(self) -> bool:
        """Validate the config file again and swap it in; False (and logged) when it is bad."""
        if not self.config_path:
            log.warning("SIGHUP ignored: the agent runs on its embedded defaults, not a file")
            return False
        try:
            new = await asyncio.get_running_loop().run_in_executor(None, load_config, self.config_path)
            checks = build_checks(new, self.context)
        except AgentError as exc:
            self.last_reload_error = str(exc)
            log.error("reload rejected, keeping the running config: %s", exc)
            return False
        if new.agent.listen != self.config.agent.listen:
            log.warning("agent.listen changed; the server keeps %s until a restart", self.config.agent.listen)
        self.config = new
        if self.alerting is not None:
            await self.alerting.reconfigure(new.alerting)
        if self.rules is not None:
            await self.rules.reconfigure(new)
        removed = self.scheduler.set_checks(checks)
        for check in removed:
            if self.prometheus is not None and check.name not in self.scheduler.checks:
                self.prometheus.forget(check.name)
            await _close_quietly(check)
        self.reloads += 1
        self.last_reload_error = None
        log.info("config reloaded from %s: %d check instances", self.config_path, len(checks))
        return True

    # -- introspection -----------------------------------------------------------------
    def readiness_problems(self) -> list[str]:
        problems = []
        if not self.scheduler.running:
            problems.append("the scheduler is not running")
        if self.pipeline.depth >= self.pipeline.maxsize * 0.9:
            problems.append(f"the pipeline is backed up ({self.pipeline.depth} results queued)")
        return problems

    def status(self) -> dict[str, Any]:
        """What /status shows, as plain data."""
        doc = self.status_snapshot()
        doc["checks"] = [s.as_dict() for s in doc["checks"]]
        return doc

    def status_snapshot(self) -> dict[str, Any]:
        """/status as of now, cheap enough to take on the event loop.

        The check states are detached copies; turning 1,000 of them into dicts and JSON costs
        tens of milliseconds, which the server does in a worker thread (AgentServer.status).
        """
        return {
            "agent": {
                "version": __version__,
                "hostname": self.config.agent.hostname,
                "pid": os.getpid(),
                "started_at": self.started_at,
                "uptime_seconds": round(time.time() - self.started_at, 3),
                "config": self.config_path or "(embedded defaults)",
                "reloads": self.reloads,
                "last_reload_error": self.last_reload_error,
            },
            "pipeline": {
                "depth": self.pipeline.depth,
                "capacity": self.pipeline.maxsize,
                "processed": self.pipeline.processed,
                "shed": self.pipeline.shed,
                "sink_errors": self.pipeline.sink_errors,
            },
            "checks": [s.copy() for s in sorted(self.scheduler.states.values(), key=lambda s: s.name)],
            "components": {c.name: c.status() for c in self.components},
        }


async def _close_quietly(check: AgentCheck) -> None:
    try:
        await check.close()
    except Exception:  # noqa: BLE001
        log.exception("check %s failed to close", check.name)


async def run_agent(config: AgentConfig, config_path: str | None = None) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads. A second stop signal exits at once."""
    loop = asyncio.get_running_loop()
    try:
        agent = Agent(config, config_path)
    except AgentError as exc:
        log.error("cannot start: %s", exc)
        return 1
    stop = asyncio.Event()
    signals_seen = 0

    def on_stop(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(agent.reload()))
    try:
        await agent.start()
    except OSError as exc:
        log.error("cannot start: %s (is another agent listening on %s?)", exc, config.agent.listen)
        await agent.stop()
        return 1
    except AgentError as exc:
        log.error("cannot start: %s", exc)
        await agent.stop()
        return 1
    await stop.wait()
    await agent.stop()
    return 0
