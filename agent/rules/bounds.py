"""Which samples can make a rule's condition hold: the quiet band of a threshold rule.

Most groups have no alert and a condition that does not hold, and most new samples change
nothing about that. For an aggregate whose value lies among the window's samples, a group
whose window holds only samples inside the rule's *quiet band* cannot cross, so the
evaluator skips reducing its window (a sample outside the band is *hot*; a group is quiet
while its newest hot sample is older than the window).

- ``last``, ``min``, ``max``: the value is one of the samples, so a sample is hot exactly
  when it would satisfy the condition itself;
- ``avg`` and ``p50``..``p99``: the value lies between the window's extremes up to
  rounding (``fsum``/n, and a percentile's interpolation between two neighbours), at most
  ``6 * 2**-53`` of the largest magnitude in the window off, plus a subnormal's step. The
  band keeps a margin of ``2**-50`` of a bound ``S`` on the magnitudes it admits (samples
  beyond ``S`` are hot), so a quiet window's value stays strictly on the quiet side of the
  threshold, bit for bit whatever the samples are;
- anything else (sums, counts, rates: their value leaves the samples' range), ``==``, ``!=``
  and windows of zero length: no band, every sample is evaluated.

tests/rules/test_bounds.py checks the bands against the reducers over adversarial values,
and an evaluator using them against one that evaluates every group.
"""

from __future__ import annotations

import math

__all__ = ["quiet_band"]

_EXACT = frozenset({"last", "min", "max"})
_ROUNDED = frozenset({"avg", "p50", "p90", "p95", "p99"})
_ALL_HOT = (math.inf, -math.inf)  # every sample is hot: v < inf or v > -inf
_NEVER_HOT = (-math.inf, math.inf)
_SCALE = 2.0 ** 16  # the band admits magnitudes up to 2**16 times the threshold's (or 1's)
_MAX_THRESHOLD = 2.0 ** 880  # past this, sums of admitted samples could overflow fsum


def quiet_band(aggregate: str, op: str | None, threshold: float | None) -> tuple[float, float] | None:
    """``(lo, hi)``: while every sample of a window lies in ``[lo, hi]`` the rule's condition
    cannot hold for it (a sample ``v`` is hot when ``v < lo or v > hi``); ``None`` when the
    aggregate or the comparison has no such band."""
    if threshold is None or op not in ("<", "<=", ">", ">="):
        return None
    t = float(threshold)
    if aggregate in _EXACT:
        if t != t:
            return _NEVER_HOT  # nothing compares true with NaN
        if op == ">":
            return (-math.inf, t)
        if op == "<":
            return (t, math.inf)
        if op == ">=":
            return _ALL_HOT if t == -math.inf else (-math.inf, math.nextafter(t, -math.inf))
        return _ALL_HOT if t == math.inf else (math.nextafter(t, math.inf), math.inf)
    if aggregate not in _ROUNDED or not abs(t) <= _MAX_THRESHOLD:
        return None  # also NaN and infinite thresholds: no margin to speak of
    scale = _SCALE * max(abs(t), 1.0)
    margin = 2.0 * (scale * 2.0 ** -50 + 2.0 ** -1000)
    if op in (">", ">="):
        return (-scale, t - margin)
    return (t + margin, scale)
