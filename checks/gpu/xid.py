"""XID errors: what the common codes mean, and turning each source's signal into counts.

NVML delivers every XID as an event: :class:`XidWatcher` waits for them on a thread of its
own (``nvmlEventSetWait`` blocks) and counts each occurrence per GPU and code; the check
drains the counts each run. dcgm-exporter's ``DCGM_FI_DEV_XID_ERRORS`` holds only the
*last* code, so :class:`LastXidTracker` turns changes of it into occurrences: a repeat of
the same code, or several errors between two scrapes, cannot be seen that way (documented
in docs/checks-gpu.md). Where the exporter emits ``DCGM_EXP_XID_ERRORS_COUNT`` (errors per
code in a sliding window), rises of that count are used instead.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = ["XID_MEANINGS", "LastXidTracker", "WindowXidTracker", "XidWatcher", "xid_meaning"]

log = logging.getLogger(__name__)

# code -> (tag slug, what it means / what to do); from NVIDIA's XID catalog.
XID_MEANINGS: dict[int, tuple[str, str]] = {
    8: ("gpu_stopped_processing", "GPU stopped processing (timeout); check the application, reset the GPU if it repeats"),
    13: ("graphics_engine_exception", "Graphics engine exception: usually an application fault (illegal memory access)"),
    31: ("memory_page_fault", "GPU memory page fault: usually an application illegal address access"),
    32: ("invalid_push_buffer", "Invalid or corrupted push buffer stream (driver or PCIe problem)"),
    38: ("driver_firmware_error", "Driver firmware error"),
    43: ("gpu_stopped_processing", "GPU stopped processing: a user application faulted; the channel was reset"),
    45: ("preemptive_cleanup", "Preemptive cleanup after earlier errors: the processes were killed"),
    48: ("double_bit_ecc", "Double-bit ECC error: uncorrectable memory error; drain and reset the GPU"),
    61: ("microcontroller_breakpoint", "Internal micro-controller breakpoint/warning"),
    62: ("microcontroller_halt", "Internal micro-controller halt: reset the GPU"),
    63: ("row_remap_event", "ECC page retirement or row remapping recorded: reset the GPU to apply it"),
    64: ("row_remap_failure", "ECC page retirement or row remapping failed: replace the GPU if it repeats"),
    68: ("video_processor_exception", "NVDEC/video processor exception"),
    69: ("graphics_class_error", "Graphics engine class error"),
    74: ("nvlink_error", "NVLink error: check the NVLink connections; reset the GPUs"),
    79: ("fallen_off_bus", "GPU has fallen off the bus: it is lost until the node is drained and reset"),
    92: ("high_sbe_rate", "High single-bit ECC error rate"),
    94: ("contained_ecc_error", "Contained ECC error: the affected application was stopped; reset the GPU when idle"),
    95: ("uncontained_ecc_error", "Uncontained ECC error: every application on the GPU is affected; reset the GPU"),
    109: ("context_switch_timeout", "Context switch timeout"),
    119: ("gsp_rpc_timeout", "GSP RPC timeout: the GPU's system processor did not answer; reset the GPU"),
    120: ("gsp_error", "GSP error: reset the GPU"),
    121: ("c2c_link_error", "C2C link corrected error"),
    140: ("unrecovered_ecc_error", "Unrecovered ECC error: reset the GPU"),
}


def xid_meaning(code: int) -> tuple[str, str]:
    """(tag slug, text) for an XID code; codes not in the table say so."""
    return XID_MEANINGS.get(code, ("other", f"XID {code}: see NVIDIA's XID catalog"))


class XidWatcher:
    """Waits for NVML XID events on its own daemon thread and counts them.

    ``nvml`` is a started :class:`checks.gpu.nvml.Nvml`. The thread waits at most
    ``poll_ms`` per call so ``stop()`` returns promptly; ``drain()`` hands the counts since
    the previous drain to the check: ``{(index, uuid, code): occurrences}``.
    """

    def __init__(self, nvml: Any, poll_ms: int = 500) -> None:
        self._nvml = nvml
        self._poll_ms = poll_ms
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refused: list[str] = []
        self.error: str | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        event_set, self.refused = self._nvml.xid_event_set()
        self._thread = threading.Thread(target=self._run, args=(event_set,), name="nvml-xid", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, event_set: Any) -> None:
        try:
            while not self._stop.is_set():
                event = self._nvml.wait_xid(event_set, self._poll_ms)
                if event is not None:
                    with self._lock:
                        self._counts[event] += 1
        except Exception as exc:  # noqa: BLE001 - reported through `error`, the check goes on
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("XID event watcher stopped: %s", self.error)
        finally:
            self._nvml.free_event_set(event_set)

    def drain(self) -> dict[tuple[str, str, int], int]:
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        return counts

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


class LastXidTracker:
    """Turns a "last XID code" gauge (DCGM_FI_DEV_XID_ERRORS) into occurrences.

    A change to a non-zero code counts one occurrence of the new code. The first value seen
    for a GPU is a baseline, not an occurrence (it may be days old), unless ``state`` holds
    what an earlier run saw. Blind spots: the same code again, and more than one error
    between two scrapes (only the last is seen).
    """

    def __init__(self, state: Mapping[str, int] | None = None) -> None:
        self.last: dict[str, int] = dict(state or {})

    def observe(self, uuid: str, code: int | None) -> int | None:
        """The code to count once for this GPU, or None."""
        if code is None:
            return None
        previous = self.last.get(uuid)
        self.last[uuid] = code
        if previous is None or code == previous or code == 0:
            return None
        return code


class WindowXidTracker:
    """Turns DCGM_EXP_XID_ERRORS_COUNT (errors per code in a sliding window) into occurrences.

    A rise of the windowed count is that many new errors; a fall is errors leaving the
    window. An error arriving while another leaves between two scrapes is missed, so scrape
    more often than the exporter's window (its default is 5 minutes).
    """

    def __init__(self, state: Mapping[str, float] | None = None) -> None:
        self.last: dict[str, float] = dict(state or {})

    def observe(self, uuid: str, counts: Mapping[int, float]) -> dict[int, int]:
        new: dict[int, int] = {}
        for code, value in counts.items():
            key = f"{uuid}/{code}"
            previous = self.last.get(key)
            self.last[key] = value
            if previous is not None and value > previous:
                new[code] = int(round(value - previous))
        return new
