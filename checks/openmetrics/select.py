"""Parse a Prometheus text exposition and pick the series asked for (reusable).

The GPU check reads DCGM exporters with the same function; it knows nothing of checks or
HTTP. Names are forwarded under ``mlwarden.openmetrics.<name>`` (see docs): a source name
is lower-cased and every character a catalog name cannot hold becomes ``_``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as prometheus_families

from agent.samples import Kind
from checks.openmetrics.config import RESERVED, MetricSelector

__all__ = ["FORWARD_PREFIX", "Selected", "forward_name", "parse_families", "select_samples"]

FORWARD_PREFIX = "mlwarden.openmetrics."
_BAD = re.compile(r"[^a-z0-9_]")
# (sample-name suffix, forwarded suffix, kind) per family type; None: not forwarded
_COUNTERISH = {"_total": ("", Kind.MONOTONIC_COUNT), "_created": None}
_SUFFIXES: dict[str, dict[str, tuple[str, Kind] | None]] = {
    "counter": _COUNTERISH,
    "histogram": {"_bucket": (".bucket", Kind.MONOTONIC_COUNT),
                  "_sum": (".sum", Kind.MONOTONIC_COUNT),
                  "_count": (".count", Kind.MONOTONIC_COUNT), "_created": None},
    "summary": {"": ("", Kind.GAUGE), "_sum": (".sum", Kind.MONOTONIC_COUNT),
                "_count": (".count", Kind.MONOTONIC_COUNT), "_created": None},
    "gaugehistogram": {"_bucket": (".bucket", Kind.GAUGE), "_gsum": (".sum", Kind.GAUGE),
                       "_gcount": (".count", Kind.GAUGE)},
    "info": {"_info": ("", Kind.GAUGE)},
}


@dataclass(frozen=True, slots=True)
class Selected:
    """One forwarded sample: its source name, forwarded name, value, tags and kind."""

    source: str
    name: str
    value: float
    tags: Mapping[str, str]
    kind: Kind


def forward_name(family: str, rename: str | None = None, suffix: str = "") -> str:
    """The dotted name a source family is forwarded under."""
    base = rename or _BAD.sub("_", family.lower()).strip("_") or "unnamed"
    if base[0].isdigit():
        base = "m_" + base
    if base.split(".")[0] in RESERVED:  # a source `up` must not pose as the check's own
        base = "exported_" + base
    return f"{FORWARD_PREFIX}{base}{suffix}"


def parse_families(text: str, openmetrics: bool = False) -> list[Metric]:
    """All metric families of an exposition; ValueError naming the bad line otherwise."""
    parse = openmetrics_families if openmetrics else prometheus_families
    try:
        return list(parse(text))
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"not a valid {'OpenMetrics' if openmetrics else 'Prometheus'} "
                         f"text exposition: {exc}") from None


def _matcher(selectors: Sequence[MetricSelector]):  # noqa: ANN202 - internal
    exact = {s.name: s for s in selectors if s.name is not None}
    regexes = [(re.compile(s.regex), s) for s in selectors if s.regex is not None]

    def match(family: Metric) -> MetricSelector | None:
        names = ((family.name, family.name + "_total") if family.type == "counter"
                 else (family.name,))
        for name in names:
            if name in exact:
                return exact[name]
        for pattern, selector in regexes:
            if any(pattern.fullmatch(n) for n in names):
                return selector
        return None

    return match


def select_samples(families: Iterable[Metric], selectors: Sequence[MetricSelector], *,
                   label_map: Mapping[str, str] | None = None,
                   drop_labels: Iterable[str] = (), limit: int | None = None) -> list[Selected]:
    """The samples of the selected families, renamed, with labels mapped to tags.

    NaN samples are skipped (Prometheus' "no value"); a source label named ``check``
    becomes ``exported_check`` so it cannot replace the instance's own tag.
    """
    match = _matcher(selectors)
    label_map = label_map or {}
    drop = set(drop_labels)
    out: list[Selected] = []
    for family in families:
        selector = match(family)
        if selector is None:
            continue
        rules = _SUFFIXES.get(family.type)
        for sample in family.samples:
            rule: tuple[str, Kind] | None
            if rules is None:  # gauge, unknown, untyped, stateset
                rule = ("", Kind.GAUGE)
            else:
                rule = rules.get(sample.name[len(family.name):]) if \
                    sample.name.startswith(family.name) else None
            if rule is None or math.isnan(sample.value):
                continue
            suffix, kind = rule
            tags = {}
            for key, value in sample.labels.items():
                if key in drop:
                    continue
                key = label_map.get(key, key)
                tags["exported_check" if key == "check" else key] = value
            out.append(Selected(sample.name, forward_name(family.name, selector.rename, suffix),
                                float(sample.value), tags, kind))
            if limit is not None and len(out) >= limit:
                return out
    return out
