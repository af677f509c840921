"""The `dcgm` source: scrape dcgm-exporter endpoints into the same readings as NVML.

dcgm-exporter writes one series per GPU (or MIG instance) and field, labelled ``gpu``,
``UUID``, ``pci_bus_id``, ``device``, ``modelName``, ``Hostname`` (and ``container``,
``namespace``, ``pod`` in Kubernetes mode, ``GPU_I_PROFILE``/``GPU_I_ID`` for MIG). Units are
DCGM's (%, MiB, MHz, mJ) and are converted to the catalog's base units here. DCGM writes a
"blank" sentinel for a field the GPU does not support (values near 2^63, or 2^31 and 2^47
for 32-bit and floating-point fields); those are missing data, never readings.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from checks.gpu.readings import GpuReading, NodeReading

__all__ = ["DcgmSource", "is_blank", "parse_exposition", "FIELDS"]

MIB = 1024.0 * 1024.0
# field -> (GpuReading attribute, factor to base units)
FIELDS: dict[str, tuple[str, float]] = {
    "DCGM_FI_DEV_GPU_UTIL": ("utilization", 0.01),
    "DCGM_FI_DEV_MEM_COPY_UTIL": ("memory_utilization", 0.01),
    "DCGM_FI_DEV_ENC_UTIL": ("encoder_utilization", 0.01),
    "DCGM_FI_DEV_DEC_UTIL": ("decoder_utilization", 0.01),
    "DCGM_FI_DEV_FB_USED": ("memory_used", MIB),
    "DCGM_FI_DEV_FB_FREE": ("memory_free", MIB),
    "DCGM_FI_DEV_FB_TOTAL": ("memory_total", MIB),
    "DCGM_FI_DEV_GPU_TEMP": ("temperature", 1.0),
    "DCGM_FI_DEV_MEMORY_TEMP": ("memory_temperature", 1.0),
    "DCGM_FI_DEV_POWER_USAGE": ("power_usage", 1.0),
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": ("power_limit", 1.0),
    "DCGM_FI_DEV_ENFORCED_POWER_LIMIT": ("power_limit", 1.0),
    "DCGM_FI_DEV_SM_CLOCK": ("sm_clock", 1e6),
    "DCGM_FI_DEV_MEM_CLOCK": ("memory_clock", 1e6),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ("energy", 1e-3),
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": ("pcie_replays", 1.0),
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": ("ecc_corrected", 1.0),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": ("ecc_uncorrected", 1.0),
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": ("remapped_rows_correctable", 1.0),
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": ("remapped_rows_uncorrectable", 1.0),
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": ("row_remap_failure", 1.0),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": ("graphics_active", 1.0),
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": ("tensor_active", 1.0),
    "DCGM_FI_PROF_DRAM_ACTIVE": ("dram_active", 1.0),
}
_THROTTLE = ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS")
_RESERVED = "DCGM_FI_DEV_FB_RESERVED"

# DCGM's blank values (dcgm_structs.h): DCGM_INT64_BLANK 0x7ffffffffffffff0 and up,
# DCGM_INT32_BLANK 0x7ffffff0 and up, DCGM_FP64_BLANK 140737488355328.0 and up.
_INT64_BLANK = float(0x7FFFFFFFFFFFFFF0)
_INT32_BLANKS = {float(0x7FFFFFF0 + i) for i in range(4)}
_FP64_BLANKS = {140737488355328.0 + i for i in range(4)}


def is_blank(value: float) -> bool:
    """Whether a DCGM value is a blank sentinel (unsupported, not found, no permission)."""
    return (math.isnan(value) or value >= _INT64_BLANK * 0.999 or value in _INT32_BLANKS
            or value in _FP64_BLANKS)


def parse_exposition(text: str, fallback_node: str) -> tuple[list[NodeReading], int]:
    """Readings per node from one exporter's output; and how many blank values were dropped."""
    gpus: dict[tuple[str, str, str], GpuReading] = {}
    extra: dict[tuple[str, str, str], dict[str, float]] = {}
    nodes: dict[tuple[str, str, str], str] = {}
    blanks = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if family.type == "counter" and name == family.name + "_total":
                name = family.name  # the parser renames counter samples; DCGM's names have no _total
            if not name.startswith("DCGM_") or not labels.get("UUID"):  # no GPU to pin it on
                continue
            if not math.isfinite(value) or is_blank(value):  # -Inf too: int(-inf) raises
                blanks += 1
                continue
            node = labels.get("Hostname") or fallback_node
            key = (node, labels["UUID"], labels.get("GPU_I_ID", ""))
            gpu = gpus.get(key)
            if gpu is None:
                gpu = gpus[key] = _new_reading(labels)
                nodes[key] = node
            if name in FIELDS:
                attr, factor = FIELDS[name]
                setattr(gpu, attr, value * factor)
            elif name in _THROTTLE:
                gpu.throttle_reasons = int(value)
            elif name == "DCGM_FI_DEV_XID_ERRORS":
                gpu.last_xid = int(value)
            elif name == "DCGM_EXP_XID_ERRORS_COUNT" and labels.get("xid", "").isdecimal():
                counts = gpu.xid_window_counts if gpu.xid_window_counts is not None else {}
                counts[int(labels["xid"])] = value
                gpu.xid_window_counts = counts
            elif name == _RESERVED:
                extra.setdefault(key, {})[name] = value * MIB
    by_node: dict[str, NodeReading] = {}
    for key, gpu in gpus.items():
        reserved = extra.get(key, {}).get(_RESERVED)
        if gpu.memory_total is None and gpu.memory_used is not None and gpu.memory_free is not None:
            gpu.memory_total = gpu.memory_used + gpu.memory_free + (reserved or 0.0)
        node = nodes[key]
        by_node.setdefault(node, NodeReading(node=node)).gpus.append(gpu)
    return list(by_node.values()), blanks


def _new_reading(labels: dict[str, str]) -> GpuReading:
    gi = labels.get("GPU_I_ID", "")
    workload = {k: labels[k] for k in ("pod", "namespace", "container") if labels.get(k)}
    uuid = labels["UUID"]
    return GpuReading(
        index=labels.get("gpu", ""),
        uuid=f"{uuid}/gi{gi}" if gi else uuid,
        model=labels.get("modelName", ""),
        pci_bus_id=labels.get("pci_bus_id", ""),
        parent_uuid=uuid if gi else "",
        mig_profile=labels.get("GPU_I_PROFILE", "") if gi else "",
        mig_gi=gi,
        mig_ci=labels.get("GPU_CI_ID", "0") if gi else "",
        workload=workload,
    )


class DcgmSource:
    """Scrapes every configured exporter concurrently through the shared HTTP session."""

    def __init__(self, urls: tuple[str, ...]) -> None:
        self.urls = urls

    async def read(self, http: aiohttp.ClientSession, timeout: float,
                   run_blocking: Callable) -> list[tuple[str, list[NodeReading], str | None, int]]:
        """Per URL: (url, its nodes, why it failed or None, blank values dropped)."""
        return list(await asyncio.gather(*(self._scrape(http, url, timeout, run_blocking) for url in self.urls)))

    async def _scrape(self, http: aiohttp.ClientSession, url: str, timeout: float,
                      run_blocking: Callable) -> tuple[str, list[NodeReading], str | None, int]:
        host = urlsplit(url).hostname or url
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                body = await resp.text(errors="replace")
                if resp.status != 200:
                    return url, [], f"{url} answered HTTP {resp.status}: {body[:120].strip()!r}", 0
        except asyncio.TimeoutError:
            return url, [], f"{url} did not answer within {timeout:g}s", 0
        except aiohttp.ClientError as exc:
            return url, [], f"cannot reach {url}: {type(exc).__name__}: {exc}", 0
        try:
            nodes, blanks = await run_blocking(parse_exposition, body, host)
        except ValueError as exc:
            return url, [], f"{url} is not Prometheus text exposition: {exc}", 0
        if not nodes:
            return url, [], f"{url} answered but holds no DCGM_* GPU series (is it a dcgm-exporter?)", 0
        for node in nodes:
            node.source = url
        return url, nodes, None, blanks
