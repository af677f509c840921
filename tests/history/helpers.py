"""Small builders shared by the store tests."""

from __future__ import annotations

import time

from agent.samples import CheckResult, Sample, Status, make_tags


def result_of(*samples: Sample) -> CheckResult:
    return CheckResult(check="test", check_type="test", status=Status.OK, samples=list(samples))


def sample(metric: str, value: float, ts: float, **tags: str) -> Sample:
    return Sample(metric, float(value), make_tags(tags), ts)


NOW = float(int(time.time()) // 3600 * 3600)  # an hour boundary near now
