"""Builds every component from the config, starts them in order and stops them in reverse.

Data flows one way: checks -> pipeline -> sinks (latest values for /metrics, and the
store, exporters and rules as they are configured). SIGHUP reloads the way Prometheus
does: build and validate everything from the new file first, then swap; a bad file is
logged and the running config goes on. Like Prometheus, the outcome of the last load is kept
for /status and exported as ``mlwarden_config_last_reload_successful`` and
``mlwarden_config_last_reload_success_timestamp_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from agent import __version__
from agent.alerting.dispatch import make_dispatcher
from agent.allocator import MemoryTrimmer
from agent.check import AgentCheck, CheckContext, InstanceConfig
from agent.config import AgentConfig, AgentSection, load_config, override_agent
from agent.errors import AgentError
from agent.export.build import Exporters, build_exporters
from agent.export.prometheus import PrometheusExporter
from agent.gcfreeze import GcFreezer
from agent.heartbeat import Heartbeat
from agent.history.store import HistoryStore
from agent.leader import build_leadership
from agent.node import this_node
from agent.pipeline import Pipeline, Sink
from agent.plugins import check_type_names, get_check_type
from agent.rules.engine import RulesEngine
from agent.rules.sinks import LoggingAlertSink
from agent.samples import AGENT_CHECK_TYPE, CheckResult, Kind, Sample, Status, make_tags
from agent.scheduler import CheckScheduler
from agent.server import AgentServer

if TYPE_CHECKING:
    from agent.slackapp.service import SlackActions

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
    # the GPU type's module is imported for its presence test (cheap: its NVML and DCGM
    # sources import when an instance uses them)
    gpu = get_check_type("gpu") if "gpu" not in types and "gpu" in check_type_names() else None
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


def tagged_submit(submit: Callable[[CheckResult], None],
                  section: AgentSection) -> Callable[[CheckResult], None]:
    """``submit`` for the agent's own components (history, alerting, exporters, leader).

    Their samples get what every check's samples carry: ``agent.tags`` and ``agent`` (the
    agent's name), under their own tags, so dashboards filtered by ``env`` or ``agent``
    keep them and two agents' components are told apart whatever the scrape adds.
    """
    base = make_tags(section.tags, {"agent": section.hostname})

    def tagged(result: CheckResult) -> None:
        result.samples = [Sample(s.metric, s.value, make_tags(base, s.tags), s.timestamp, s.kind)
                          for s in result.samples]
        submit(result)

    return tagged


class Agent:
    """The running daemon: scheduler, pipeline, server and components."""

    def __init__(self, config: AgentConfig, config_path: str | None = None,
                 overrides: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.overrides = dict(overrides or {})  # command-line settings; they outlive reloads
        self.started_at = time.time()
        self.pipeline = Pipeline(maxsize=config.agent.pipeline_queue)
        self.scheduler = CheckScheduler(self.pipeline)
        self.prometheus: PrometheusExporter | None = None
        self.components: list[Component] = []
        # the agent's own components report like checks, with the agent's tags
        self.submit_own = tagged_submit(self.pipeline.submit, config.agent)
        self.history = HistoryStore(config.agent.history, config.history)
        self.history.emit = self.submit_own
        self.components.append(self.history)  # first: it migrates the database the others use
        self.leader = build_leadership(config.agent.history, config.leader, config.agent.hostname,
                                       engine=self.history.engine,
                                       candidate=self._has_cluster_checks,
                                       on_elected=lambda: self.scheduler.run_now("cluster"),
                                       submit=self.submit_own)
        self.components.append(self.leader)
        self.scheduler.gate = self.leader.gate
        self.alerting = (make_dispatcher(config.alerting, engine=self.history.engine,
                                         causes=config.causes, reader=self.history,
                                         submit=self.submit_own)
                         if config.alerting.enabled else None)
        self.components += [self.alerting] if self.alerting is not None else []
        self.slack_actions = self._slack_actions(config)  # after alerting: it stops first
        self.context = self._context(config)
        # rules hand their changes to routing (or, with alerting disabled, to the log)
        self.alert_sinks: list[Any] = ([self.alerting] if self.alerting is not None
                                       else [LoggingAlertSink()])
        # always present, even with no rules yet, so a SIGHUP that adds rules takes effect
        self.rules: RulesEngine | None = RulesEngine.with_store(
            config.rules, config.rules_engine, self.alert_sinks, engine=self.history.engine,
            agent=config.agent.hostname, source=self.history)
        self.components += [self.rules] if self.rules is not None else []
        self.cost = self._cost(config)
        self.components.append(MemoryTrimmer())  # RSS flat: glibc gives back what is freed
        self.components.append(GcFreezer())  # no long collector pauses (mlwarden run only)
        if config.heartbeat is not None:
            self.components.append(Heartbeat(config.heartbeat, lambda: self.context.http,
                                             self.readiness_problems))
        self.server = AgentServer(self, config.agent.listen_host, config.agent.listen_port,
                                  config.exporters.prometheus.metrics_listen)
        if self.slack_actions is not None:  # the status page's Acknowledged column
            self.server.page.acks = self.slack_actions.store
        self.reloads = 0
        self.last_reload_error: str | None = None
        self.last_reload_at: float | None = None  # the last SIGHUP's attempt, good or bad
        self.last_reload_success_at = self.started_at  # the start's load counts, as in Prometheus
        self._config_task: asyncio.Task[None] | None = None
        self._stopping = False

    def _slack_actions(self, config: AgentConfig) -> SlackActions | None:
        """The Slack buttons (Socket Mode or HTTP mode), when ``slack_actions:`` is set."""
        if config.slack_actions is None or self.alerting is None:
            return None  # alerting disabled: config_warnings says so at load time
        from agent.slackapp.wiring import build_slack_actions

        service = build_slack_actions(config.slack_actions, config.alerting.slack, self.alerting,
                                      reader=self.history)
        self.components.append(service)
        return service

    def _cost(self, config: AgentConfig) -> Any:
        """The cost meter (a sink) and the weekly digest, when ``cost:`` is configured."""
        if config.cost is None:
            return None
        from agent.cost.meter import CostMeter

        meter = CostMeter(config.cost, self.pipeline.submit, reader=self.history,
                          tags={**config.agent.tags, "agent": config.agent.hostname})
        self.components.append(meter)
        if config.cost.digest is not None:
            from agent.cost.digest import CostDigest

            self.components.append(CostDigest(config.cost, config.alerting,
                                              config.history.retention, self.history.engine))
        return meter

    def _context(self, config: AgentConfig) -> CheckContext:
        return CheckContext(
            state=self.history,
            runtime=self,
            http_limit=config.agent.http_connections,
            agent_tags=config.agent.tags,
            agent=config.agent.hostname,
            node=this_node(config.agent.node),
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
        exporters = build_exporters(self.config.exporters, self.config.agent.identity,
                                    lambda: self.history.engine, self.submit_own)
        self.prometheus = exporters.prometheus
        self.components.extend(exporters.components)
        for component in self.components:
            await component.start()
        for sink in self._sinks(exporters):
            self.pipeline.attach(sink)
        self.pipeline.start()
        await self.server.start()
        self.scheduler.set_checks(build_checks(self.config, self.context))
        self.scheduler.start()
        self._config_task = asyncio.get_running_loop().create_task(self._report_config())
        log.info("mlwarden %s started with %d check instances and %d rules (%s)", __version__,
                 len(self.scheduler.checks), len(self.config.rules),
                 ", ".join(self.config.rule_files) or "no rule_files",
                 extra={"config": self.config_path or "(embedded defaults)"})

    def _sinks(self, exporters: Exporters) -> list[Sink]:
        """What the pipeline feeds, named here rather than found by looking for ``consume``:
        the store, the rules, the cost meter, then the exporters, in that order."""
        sinks: list[Sink] = [self.history]
        sinks += [self.rules] if self.rules is not None else []
        sinks += [self.cost] if self.cost is not None else []
        return sinks + exporters.sinks

    async def stop(self) -> None:
        """Stop scheduling, let in-flight checks finish up to the deadline, flush, close."""
        if self._stopping:
            return
        self._stopping = True
        if self._config_task is not None:
            self._config_task.cancel()
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
        self.last_reload_at = time.time()
        try:
            new = await asyncio.get_running_loop().run_in_executor(None, load_config, self.config_path)
            new = override_agent(new, self.overrides)
            checks = build_checks(new, self.context)
        except AgentError as exc:
            self.last_reload_error = str(exc)
            self._submit_config_metrics()
            log.error("reload rejected; the running config goes on and the server stays on "
                      "http://%s: %s", self.server.address, exc)
            return False
        if new.agent.listen != self.server.address:
            log.warning("agent.listen is %s in %s, but the server stays on http://%s until a "
                        "restart", new.agent.listen, self.config_path, self.server.address)
            new = override_agent(new, {"listen": self.server.address})  # what runs, for /status
        old, self.config = self.config, new
        if self.alerting is not None:
            await self.alerting.reconfigure(new.alerting, causes=new.causes)
        if self.rules is not None:
            await self.rules.reconfigure(new.rules, new.rules_engine)
        if new.slack_actions != old.slack_actions:
            log.warning("the slack_actions section changed; that takes effect at the next "
                        "restart")
        if new.cost != old.cost:
            if self.cost is not None and new.cost is not None and old.cost is not None \
                    and new.cost.digest == old.cost.digest:
                self.cost.reconfigure(new.cost)
            else:
                log.warning("the cost section's meter or digest was added or removed (or the digest "
                            "changed); that takes effect at the next restart")
        removed = self.scheduler.set_checks(checks)
        for check in removed:
            if self.prometheus is not None and check.name not in self.scheduler.checks:
                self.prometheus.forget(check.name)
            await _close_quietly(check)
        self.reloads += 1
        self.last_reload_error = None
        self.last_reload_success_at = time.time()
        self._submit_config_metrics()
        log.info("config reloaded from %s: %d check instances, %d rules", self.config_path,
                 len(checks), len(new.rules))
        return True

    def _submit_config_metrics(self) -> None:
        now = time.time()
        ok = 1.0 if self.last_reload_error is None else 0.0
        tags = make_tags(self.config.agent.tags, {"agent": self.config.agent.hostname})
        self.pipeline.submit(CheckResult(
            check="config", check_type=AGENT_CHECK_TYPE, status=Status.OK if ok else Status.WARNING,
            message="last config load succeeded" if ok else "last reload was rejected",
            samples=[Sample("mlwarden.config.last_reload_successful", ok, tags, now, Kind.GAUGE),
                     Sample("mlwarden.config.last_reload_success_timestamp",
                            self.last_reload_success_at, tags, now, Kind.GAUGE)],
            started=now, interval=self.config.agent.self_check_interval))

    async def _report_config(self) -> None:
        """The reload gauges at the self-check's pace, so exporters that need a steady
        stream of points (Datadog) keep the series; a reload reports at once as well."""
        while True:
            self._submit_config_metrics()
            await asyncio.sleep(self.config.agent.self_check_interval)

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
        components = {c.name: c.status() for c in self.components}
        return {
            "agent": {
                # critical when a component says so (e.g. alerting with a receiver that cannot post)
                "status": "critical" if any(
                    isinstance(doc, dict) and doc.get("status") == "critical"
                    for doc in components.values()) else "ok",
                "version": __version__,
                "hostname": self.config.agent.hostname,
                "pid": os.getpid(),
                "started_at": self.started_at,
                "uptime_seconds": round(time.time() - self.started_at, 3),
                "config": self.config_path or "(embedded defaults)",
                "listen": self.server.address,
                "rule_files": list(self.config.rule_files),
                "rules": len(self.config.rules),
                "reloads": self.reloads,
                "last_reload_error": self.last_reload_error,
                "last_reload": {
                    "successful": self.last_reload_error is None,
                    "at": self.last_reload_at,
                    "success_at": self.last_reload_success_at,
                    "error": self.last_reload_error,
                },
            },
            "pipeline": {
                "depth": self.pipeline.depth,
                "capacity": self.pipeline.maxsize,
                "processed": self.pipeline.processed,
                "shed": self.pipeline.shed,
                "sink_errors": self.pipeline.sink_errors,
            },
            "checks": [s.copy() for s in sorted(self.scheduler.states.values(), key=lambda s: s.name)],
            "components": components,
        }


async def _close_quietly(check: AgentCheck) -> None:
    try:
        await check.close()
    except Exception:  # noqa: BLE001
        log.exception("check %s failed to close", check.name)


async def run_agent(config: AgentConfig, config_path: str | None = None,
                    overrides: Mapping[str, str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads. A second stop signal exits at once."""
    loop = asyncio.get_running_loop()
    try:
        agent = Agent(config, config_path, overrides)
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
        log.error("cannot start: %s (is another process listening there?)", exc)
        await agent.stop()
        return 1
    except AgentError as exc:
        log.error("cannot start: %s", exc)
        await agent.stop()
        return 1
    await stop.wait()
    await agent.stop()
    return 0
