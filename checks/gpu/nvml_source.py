"""The `nvml` source: this node's GPUs, their processes' containers, and XID events.

All of it blocks (NVML ioctls, /proc reads), so :meth:`NvmlSource.read` runs off the event
loop. The XID watcher thread starts after the first successful read and lives until the
check closes.
"""

from __future__ import annotations

import logging
from types import ModuleType

from agent.node import this_node

from checks.gpu.cgroups import lookup_process
from checks.gpu.config import GpuConfig
from checks.gpu.nvml import Nvml, NvmlUnavailable
from checks.gpu.readings import NodeReading
from checks.gpu.xid import XidWatcher

__all__ = ["NvmlSource", "local_node_name"]

log = logging.getLogger(__name__)


def local_node_name(config: GpuConfig, agent_node: str | None = None) -> str:
    """The `node` tag: the instance's, else the agent's node (``agent.node``), else $NODE_NAME
    (Kubernetes downward API), else the host name: the node every local target is labelled
    with (agent/node.py), so a GPU's faults and a loopback model server's alerts agree."""
    return config.node or this_node(agent_node)


class NvmlSource:
    """Reads the local GPUs through :class:`~checks.gpu.nvml.Nvml` (``lib``: pynvml or a fake)."""

    def __init__(self, config: GpuConfig, lib: ModuleType | None = None, xid_poll_ms: int = 500,
                 agent_node: str | None = None) -> None:
        self.config = config
        self.node = local_node_name(config, agent_node)
        self.nvml = Nvml(lib)
        self.watcher: XidWatcher | None = None
        self._xid_poll_ms = xid_poll_ms
        self._watcher_failures = 0
        self.notes: list[str] = []  # one-off remarks for the check to warn about

    def read(self) -> tuple[NodeReading, dict[tuple[str, str, int], int]]:
        """One reading of the node and the XID occurrences since the previous read.

        Raises NvmlUnavailable when NVML cannot be used or there is no GPU.
        """
        readings, lost = self.nvml.read(processes=self.config.processes)
        if not readings and not lost:
            raise NvmlUnavailable("NVML is working but found no GPU on this node")
        if self.config.processes:
            for gpu in readings:
                for proc in gpu.processes or ():
                    name, ref = lookup_process(proc.pid, self.config.proc_root)
                    proc.name = name
                    proc.container_id, proc.runtime = ref.short_id, ref.runtime
                    proc.pod_uid, proc.pod, proc.namespace = ref.pod_uid, ref.pod, ref.namespace
        self._start_watcher()
        xids = self.watcher.drain() if self.watcher is not None else {}
        if self.watcher is not None and self.watcher.error:
            self._watcher_failures += 1
            give_up = self._watcher_failures >= 3
            self.notes.append(f"XID event watcher stopped: {self.watcher.error}; "
                              + ("XIDs are no longer counted" if give_up else "restarting it"))
            self.watcher.stop()
            self.watcher = None
            if give_up:
                self.config = self.config.model_copy(update={"xid_events": False})
        return NodeReading(node=self.node, gpus=readings, lost=lost, source="nvml"), xids

    def _start_watcher(self) -> None:
        if not self.config.xid_events or self.watcher is not None:
            return
        watcher = XidWatcher(self.nvml, poll_ms=self._xid_poll_ms)
        try:
            watcher.start()
        except Exception as exc:  # noqa: BLE001 - XIDs are optional; the readings still count
            self.notes.append(f"cannot watch XID events ({exc}); XID errors will not be counted")
            self.config = self.config.model_copy(update={"xid_events": False})
            return
        if watcher.refused:
            self.notes.append("XID events not available for " + "; ".join(watcher.refused))
        self.watcher = watcher

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.nvml.stop()


__all__ += ["NvmlUnavailable"]
