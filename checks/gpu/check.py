"""The `gpu` check: a small dispatcher over two sources, NVML (this node) or dcgm-exporter.

Each source reads GPUs into the same readings; :class:`~checks.gpu.report.Reporter` turns
them into the same catalog metrics, counts XIDs, finds lost GPUs and prices idle ones.
Where NVML cannot be used (no bindings, no driver, no GPU) the verdict is UNKNOWN with the
reason, logged once; the agent runs on.
"""

from __future__ import annotations

import asyncio
import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any

from agent.check import AgentCheck, CheckContext
from agent.samples import Status
from checks.gpu.config import GpuConfig

if TYPE_CHECKING:
    from checks.gpu.dcgm import DcgmSource
    from checks.gpu.nvml_source import NvmlSource
    from checks.gpu.report import Reporter, Verdict

__all__ = ["GpuCheck"]

log = logging.getLogger(__name__)
STATE_KEY = "gpu"


class GpuCheck(AgentCheck):
    """GPU usage, health, lost GPUs and idle cost from NVML or dcgm-exporter endpoints.

    ``nvml_lib`` replaces nvidia-ml-py's ``pynvml`` module (tests pass a strict fake).
    """

    type_name = "gpu"
    key_metric = "mlwarden.gpu.utilization"
    Config = GpuConfig

    # Every `mlwarden run` imports this module for auto_instance(); the sources (the DCGM
    # parser imports prometheus_client) and the reporter import only with an instance.
    def __init__(self, config: GpuConfig, context: CheckContext | None = None, *,
                 nvml_lib: ModuleType | None = None, xid_poll_ms: int = 500) -> None:
        super().__init__(config, context)
        self.config: GpuConfig = config
        self._nvml: NvmlSource | None = None
        self._dcgm: DcgmSource | None = None
        if config.source == "nvml":
            from checks.gpu.nvml_source import NvmlSource

            self._nvml = NvmlSource(config, nvml_lib, xid_poll_ms, self.context.node)
        elif config.source == "dcgm":
            from checks.gpu.dcgm import DcgmSource

            self._dcgm = DcgmSource(config.urls)
        self._reporter: Reporter | None = None
        self._said: str | None = None
        self._warned_fields: set[str] = set()
        self._pending: asyncio.Future[Any] | None = None

    @classmethod
    def auto_instance(cls) -> GpuConfig | None:
        """The instance `mlwarden run` adds by itself where a GPU is present (else None)."""
        from checks.gpu.presence import gpu_present

        return GpuConfig(type="gpu", name="local-gpus", source="nvml") if gpu_present() else None

    async def check(self) -> None:
        if self._reporter is None:
            from checks.gpu.report import Reporter

            saved = await self.context.state.get_state(self.name, STATE_KEY)
            self._reporter = Reporter(self.config, saved if isinstance(saved, dict) else None)
        verdict = await (self._check_nvml() if self._nvml is not None else self._check_dcgm())
        if verdict is not None:
            self._judge(verdict)
        await self.context.state.set_state(self.name, STATE_KEY, self._reporter.state())

    async def _check_nvml(self) -> Verdict | None:
        assert self._nvml is not None and self._reporter is not None
        if self._pending is not None and not self._pending.done():
            self.service_check(Status.UNKNOWN, "the previous NVML read is still blocked "
                               "(a GPU or the driver is hanging); not starting another")
            return None
        from checks.gpu.nvml_source import NvmlUnavailable

        loop = asyncio.get_running_loop()
        self._pending = loop.run_in_executor(None, self._nvml.read)
        try:
            node, xids = await asyncio.shield(self._pending)
        except NvmlUnavailable as exc:
            self._say_once(str(exc))
            self.gauge("gpu.source.up", 0, {"source": "nvml"})
            self.service_check(Status.UNKNOWN, str(exc))
            return None
        self._said = None
        self.gauge("gpu.source.up", 1, {"source": "nvml"})
        for note in self._nvml.notes:
            log.warning("gpu check %s: %s", self.name, note)
            self.warning(note)
        self._nvml.notes.clear()
        for what, error in self._nvml.nvml.field_errors.items():
            if what not in self._warned_fields:
                self._warned_fields.add(what)
                self.warning(f"NVML cannot read {what}: {error}; it is left out")
        return self._reporter.report(self, [node], self.now, xids, "no longer reported by NVML")

    async def _check_dcgm(self) -> Verdict:
        assert self._dcgm is not None and self._reporter is not None
        timeout = max(self.config.deadline * 0.8, 0.1)
        results = await self._dcgm.read(self.context.http, timeout, self.run_blocking)
        nodes, failed = [], []
        for url, found, error, blanks in results:
            self.gauge("gpu.source.up", 0 if error else 1, {"source": url})
            if error:
                failed.append(error)
            nodes.extend(found)
        verdict = self._reporter.report(self, nodes, self.now, None, "missing from dcgm-exporter output")
        if failed and not nodes:
            verdict.critical[:0] = failed
        else:
            verdict.warnings[:0] = failed
        return verdict

    def _judge(self, verdict: Verdict) -> None:
        if verdict.critical:
            self.service_check(Status.CRITICAL, _join(verdict.critical))
        elif verdict.warnings:
            self.service_check(Status.WARNING, _join(verdict.warnings))
        else:
            self.service_check(Status.OK, verdict.summary())

    def _say_once(self, reason: str) -> None:
        if reason != self._said:
            self._said = reason
            log.warning("gpu check %s: %s", self.name, reason)

    async def close(self) -> None:
        if self._nvml is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._nvml.close)


def _join(lines: list[str], limit: int = 3) -> str:
    text = "; ".join(lines[:limit])
    return text + (f" (and {len(lines) - limit} more)" if len(lines) > limit else "")
