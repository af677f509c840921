"""What the log says about check runs: each change once, not every run.

A target that goes down is said once, when it happens. A check that keeps failing is said
again at most every ``REPEAT`` seconds, with the count. A check that flaps (``FLAP_CHANGES``
status changes within ``FLAP_RUNS`` runs) is said to flap once, then not again until it
has kept one status for ``FLAP_RUNS`` runs. Without this, 100 endpoints answering 200 and
503 in turn wrote 300 lines a minute in the soak (benchmarks/soak.py) and buried the one
line that mattered; /status and the metrics still show every run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.samples import CheckResult, Status

__all__ = ["RunLog", "FLAP_CHANGES", "FLAP_RUNS", "REPEAT"]

log = logging.getLogger("agent.scheduler")  # operators filter on the scheduler's logger
FLAP_CHANGES = 4
FLAP_RUNS = 10
REPEAT = 600.0  # seconds between reminders that a check still fails


@dataclass(slots=True)
class _Memory:
    runs: int = 0
    # the runs of the last FLAP_CHANGES status changes: a tuple, not a deque (a deque's
    # first block alone is ~0.6 KiB, kept for every check)
    changes: tuple[int, ...] = ()
    flapping: bool = False
    unlogged_changes: int = 0
    same_status_runs: int = 0
    failed_runs: int = 0
    failure_logged: tuple[str, float] | None = None  # (error kind, when)


class RunLog:
    """Logs a check's status changes and failures, damped; one per scheduler."""

    def __init__(self) -> None:
        self._memory: dict[str, _Memory] = {}

    def forget(self, check: str) -> None:
        self._memory.pop(check, None)

    def record(self, check: str, previous: Status | None, result: CheckResult) -> None:
        """Say what this run changed; ``previous`` is the status before it.

        A check is remembered only while something may still be said about it (a failure, a
        recent change, flapping): a steady one, most checks, holds nothing here. ``runs``
        counts from when it is remembered; only differences of it are ever read.
        """
        changed = result.status != previous and (result.status != Status.OK or previous is not None)
        m = self._memory.get(check)
        if m is None:
            if not result.error and not changed:
                return
            m = self._memory[check] = _Memory()
        m.runs += 1
        now = result.started
        extra = {"check": check}
        if result.error:
            m.failed_runs += 1
            logged = m.failure_logged
            if logged is None or logged[0] != result.error:
                log.warning("check %s failed (%s): %s", check, result.error, result.message, extra=extra)
            elif now - logged[1] >= REPEAT:
                log.warning("check %s still failing after %d runs (%s): %s", check, m.failed_runs,
                            result.error, result.message, extra=extra)
            else:
                return
            m.failure_logged = (result.error, now)
            return
        if m.failed_runs:
            if m.failed_runs > 1:
                log.info("check %s runs again after %d failed runs", check, m.failed_runs, extra=extra)
            m.failed_runs, m.failure_logged = 0, None
        m.same_status_runs = 0 if changed else m.same_status_runs + 1
        if changed:
            m.changes = (*m.changes, m.runs)[-FLAP_CHANGES:]
        level = logging.INFO if result.status == Status.OK else logging.WARNING
        message = result.message or "(no message)"
        if m.flapping:
            if changed:
                m.unlogged_changes += 1
            elif m.same_status_runs >= FLAP_RUNS:
                m.flapping = False
                m.changes = ()
                log.log(level, "check %s stopped flapping: %s for %d runs (%d changes not logged): %s",
                        check, result.status.name, m.same_status_runs, m.unlogged_changes, message,
                        extra=extra)
            return
        if not changed:
            if not m.changes or m.runs - m.changes[-1] >= FLAP_RUNS:
                # settled: its changes are too old to make it flap, nothing is owed
                del self._memory[check]
            return
        if len(m.changes) == FLAP_CHANGES and m.runs - m.changes[0] < FLAP_RUNS:
            m.flapping, m.unlogged_changes = True, 0
            log.warning("check %s is flapping: %d status changes in %d runs, now %s: %s; further changes "
                        "are not logged until it keeps one status for %d runs", check, FLAP_CHANGES,
                        m.runs - m.changes[0] + 1, result.status.name, message, FLAP_RUNS, extra=extra)
            return
        log.log(level, "check %s is now %s: %s", check, result.status.name, message, extra=extra)
