"""Is there an NVIDIA GPU on this machine? A cheap test, for turning the check on by default.

It only looks at device files (no NVML, no import of nvidia-ml-py), so it costs
microseconds at agent start-up. Where it says yes, `mlwarden run` adds an `nvml` instance
named ``local-gpus``; the check itself then says clearly if NVML still cannot be used.
"""

from __future__ import annotations

import glob
import os

__all__ = ["gpu_present"]


def gpu_present(dev: str = "/dev", proc_driver: str = "/proc/driver/nvidia/gpus") -> bool:
    if glob.glob(os.path.join(dev, "nvidia[0-9]*")):
        return True
    try:
        return bool(os.listdir(proc_driver))
    except OSError:
        return False
