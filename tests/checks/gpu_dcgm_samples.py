"""dcgm-exporter output built from its own default counter list (tests/fixtures/dcgm).

``default-counters.csv`` is dcgm-exporter's etc/default-counters.csv: the fields it emits
out of the box, with their Prometheus types and help. :func:`exposition` writes them the way
the exporter does: ``# HELP``/``# TYPE`` per field, one series per GPU (or MIG instance)
labelled ``gpu``, ``UUID``, ``pci_bus_id``, ``device``, ``modelName``, (``GPU_I_PROFILE``,
``GPU_I_ID``,) ``Hostname``, the label-type fields (``DCGM_FI_DRIVER_VERSION``), and in
Kubernetes mode ``container``, ``namespace``, ``pod``; integers as integers, doubles with
``%f``, and DCGM's blank sentinels for fields the GPU does not support.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["COUNTERS", "LABEL_FIELDS", "DcgmGpu", "exposition", "BLANK_INT64", "BLANK_FP64"]

CSV = Path(__file__).resolve().parents[1] / "fixtures" / "dcgm" / "default-counters.csv"
BLANK_INT64 = 9223372036854775794   # DCGM_INT64_NOT_SUPPORTED, as the exporter's README shows
BLANK_FP64 = 140737488355330.0      # DCGM_FP64_NOT_SUPPORTED


def _read_counters() -> tuple[list[tuple[str, str, str]], list[str]]:
    counters, labels = [], []
    for line in CSV.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, kind, help_text = (part.strip() for part in line.split(",", 2))
        if kind == "label":
            labels.append(name)
        else:
            counters.append((name, kind, help_text))
    return counters, labels


COUNTERS, LABEL_FIELDS = _read_counters()
DOUBLE_FIELDS = {"DCGM_FI_DEV_POWER_USAGE"} | {n for n, _, _ in COUNTERS if n.startswith("DCGM_FI_PROF_")}

# What an H100 reads at work; fields an H100 does not support are blank.
TYPICAL: dict[str, float | int] = {
    "DCGM_FI_DEV_SM_CLOCK": 1980,
    "DCGM_FI_DEV_MEM_CLOCK": 2619,
    "DCGM_FI_DEV_MEMORY_TEMP": BLANK_INT64,
    "DCGM_FI_DEV_GPU_TEMP": 41,
    "DCGM_FI_DEV_POWER_USAGE": 312.5,
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": 123456789,
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": 0,
    "DCGM_FI_DEV_GPU_UTIL": 37,
    "DCGM_FI_DEV_MEM_COPY_UTIL": 12,
    "DCGM_FI_DEV_ENC_UTIL": 0,
    "DCGM_FI_DEV_DEC_UTIL": 0,
    "DCGM_FI_DEV_XID_ERRORS": 0,
    "DCGM_FI_DEV_FB_FREE": 71000,
    "DCGM_FI_DEV_FB_USED": 10240,
    "DCGM_FI_DEV_FB_RESERVED": 639,
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": 0,
    "DCGM_FI_DEV_VGPU_LICENSE_STATUS": 0,
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": 0,
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": 0,
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": 0,
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": 0.41,
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": 0.2,
    "DCGM_FI_PROF_DRAM_ACTIVE": 0.3,
    "DCGM_FI_PROF_PCIE_TX_BYTES": 1234567.0,
    "DCGM_FI_PROF_PCIE_RX_BYTES": 7654321.0,
}


@dataclass
class DcgmGpu:
    gpu: int
    uuid: str
    hostname: str = "gpu-node-1"
    model: str = "NVIDIA H100 80GB HBM3"
    driver: str = "550.54.15"
    pod: str = ""
    namespace: str = ""
    container: str = ""
    mig_profile: str = ""
    mig_id: str = ""
    values: dict[str, float | int] = field(default_factory=dict)  # overrides of TYPICAL

    def labels(self, k8s: bool) -> str:
        parts = [("gpu", str(self.gpu)), ("UUID", self.uuid), ("pci_bus_id", f"00000000:{0x18 + self.gpu:02X}:00.0"),
                 ("device", f"nvidia{self.gpu}"), ("modelName", self.model)]
        if self.mig_id:
            parts += [("GPU_I_PROFILE", self.mig_profile), ("GPU_I_ID", self.mig_id)]
        parts += [("Hostname", self.hostname)]
        parts += [(name, self.driver) for name in LABEL_FIELDS]
        if k8s:
            parts += [("container", self.container), ("namespace", self.namespace), ("pod", self.pod)]
        return ",".join(f'{k}="{v}"' for k, v in parts)


def _format(name: str, value: float | int) -> str:
    if name in DOUBLE_FIELDS or isinstance(value, float) and not float(value).is_integer():
        return f"{float(value):f}"
    return str(int(value))


def exposition(gpus: list[DcgmGpu], *, k8s: bool = False,
               extra: Mapping[str, list[tuple[DcgmGpu, dict[str, str], float]]] | None = None) -> str:
    """The exporter's /metrics text for these GPUs; ``extra`` adds non-default series."""
    lines = []
    for name, kind, help_text in COUNTERS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for gpu in gpus:
            value = gpu.values.get(name, TYPICAL[name])
            lines.append(f"{name}{{{gpu.labels(k8s)}}} {_format(name, value)}")
    for name, rows in (extra or {}).items():
        lines.append(f"# HELP {name} {name}")
        lines.append(f"# TYPE {name} gauge")
        for gpu, more, value in rows:
            labels = gpu.labels(k8s) + "".join(f',{k}="{v}"' for k, v in more.items())
            lines.append(f"{name}{{{labels}}} {_format(name, value)}")
    return "\n".join(lines) + "\n"
