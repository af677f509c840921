"""The life of one alert: inactive -> pending -> firing -> resolved, held steady.

:func:`step` is a pure function of the record, the verdict of one evaluation and ``now``;
it never reads a clock, so replays, tests and restarts all see the same transitions.

Two layers keep an alert steady. The *phase* follows the condition: ``for`` delays
firing (pending), ``keep_firing_for`` delays resolving, and the evaluator's hysteresis
(``recover``) decides what "the condition holds" means once the alert is active. The
public *state* is the phase, except when the phase still turns firing/resolved too often:
after ``flap_threshold`` such changes within ``flap_window`` the state becomes
``flapping`` (one notification, with the count) and stays there, whatever the phase does,
until the phase has been still for ``flap_settle``; then it returns as firing or resolved.

Invariants (the property tests check them): firing never goes back to pending, and only
an alert that fired can be resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from agent.alert import AlertState

__all__ = ["AlertRecord", "Timing", "step", "vanish"]

INACTIVE, PENDING, FIRING = AlertState.INACTIVE, AlertState.PENDING, AlertState.FIRING
RESOLVED, FLAPPING = AlertState.RESOLVED, AlertState.FLAPPING


@dataclass(frozen=True, slots=True)
class Timing:
    """The durations that shape one rule's alerts."""

    for_: float = 0.0
    keep_firing_for: float = 0.0
    flap_threshold: int = 6
    flap_window: float = 3600.0
    flap_settle: float = 900.0


@dataclass(slots=True)
class AlertRecord:
    """Everything needed to resume one alert exactly where it was (all of it is persisted)."""

    fingerprint: str
    rule: str
    labels: dict[str, str]
    severity: str = "warning"
    state: AlertState = INACTIVE
    phase: AlertState = INACTIVE
    value: float | None = None
    active_since: float | None = None
    clear_since: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    last_eval: float | None = None
    last_transition: float | None = None
    flips: list[float] = field(default_factory=list)
    flap_count: int = 0
    annotations: dict[str, str] = field(default_factory=dict)
    group: tuple[tuple[str, str], ...] = ()  # the series tags that identify it within its rule

    def timers(self) -> tuple:
        """What decides the next transitions (two records with equal timers behave alike)."""
        return (self.state, self.phase, self.active_since, self.clear_since, self.fired_at,
                self.resolved_at, tuple(self.flips), self.flap_count)


def step(rec: AlertRecord, holds: bool, value: float | None, now: float,
         timing: Timing) -> tuple[AlertState, AlertState] | None:
    """Apply one evaluation; returns ``(previous, new)`` public state when it changed."""
    rec.value = value
    rec.last_eval = now
    # a start "in the future" was taken before the wall clock was stepped back: count from
    # now, or `for`/`keep_firing_for` would also wait out the size of the jump
    if rec.active_since is not None and rec.active_since > now:
        rec.active_since = now
    if rec.clear_since is not None and rec.clear_since > now:
        rec.clear_since = now
    phase = rec.phase
    new_phase = phase
    if phase in (INACTIVE, RESOLVED):
        if holds:
            rec.active_since = now
            rec.clear_since = None
            new_phase = FIRING if timing.for_ <= 0 else PENDING
    elif phase is PENDING:
        if not holds:
            rec.active_since = None
            new_phase = INACTIVE
        elif now - (rec.active_since if rec.active_since is not None else now) >= timing.for_:
            new_phase = FIRING
    elif phase is FIRING:
        if holds:
            rec.clear_since = None
        elif timing.keep_firing_for <= 0 or (
            rec.clear_since is not None and now - rec.clear_since >= timing.keep_firing_for
        ):
            new_phase = RESOLVED
        elif rec.clear_since is None:
            rec.clear_since = now
    return _move(rec, new_phase, now, timing)


def vanish(rec: AlertRecord, now: float, timing: Timing) -> tuple[AlertState, AlertState] | None:
    """The series is gone (stale or removed): resolve what fired, drop what was pending.

    ``keep_firing_for`` does not apply (the series will not come back to clear it), and a
    flapping alert settles at once, since a silent series cannot settle by itself.
    """
    previous = rec.state
    step(rec, False, rec.value, now, replace(timing, keep_firing_for=0.0))
    if rec.state is FLAPPING:
        rec.state = rec.phase = RESOLVED if rec.fired_at is not None else INACTIVE
        rec.flap_count = 0
        rec.last_transition = now
    return (previous, rec.state) if rec.state is not previous else None


def _move(rec: AlertRecord, new_phase: AlertState, now: float,
          timing: Timing) -> tuple[AlertState, AlertState] | None:
    flipped = False
    if new_phase is not rec.phase:
        if new_phase is FIRING:
            rec.fired_at = now
            rec.clear_since = None
        elif new_phase is RESOLVED:
            rec.resolved_at = now
            rec.active_since = None
            rec.clear_since = None
        if new_phase in (FIRING, RESOLVED):
            rec.flips.append(now)
            flipped = True
        rec.phase = new_phase
    cutoff = now - timing.flap_window
    if rec.flips and rec.flips[0] < cutoff:
        rec.flips = [t for t in rec.flips if t >= cutoff]
    previous = rec.state
    if previous is FLAPPING:
        rec.flap_count = max(rec.flap_count, len(rec.flips))
        last_flip = rec.flips[-1] if rec.flips else None
        settled = last_flip is None or now - last_flip >= timing.flap_settle
        if not settled or rec.phase is PENDING:
            return None
        if rec.phase is INACTIVE:
            rec.phase = RESOLVED
        rec.state = rec.phase
        rec.flap_count = 0
    elif flipped and len(rec.flips) >= timing.flap_threshold:
        rec.state = FLAPPING
        rec.flap_count = len(rec.flips)
    else:
        rec.state = rec.phase
    if rec.state is previous:
        return None
    rec.last_transition = now
    return (previous, rec.state)
