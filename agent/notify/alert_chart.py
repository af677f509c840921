"""The picture of an alert: its own series from the history store, drawn with its threshold
and its pending and firing windows (Slack bot mode), or as a text sparkline (webhooks).

Every alert of a metric rule names its rule's metric and the exact series it was judged on
(``Alert.metric`` and ``.series``, set by the rules engine), so no rule needs a setting
for its alerts to carry a chart. The chart starts early enough to show the change: at least
a quarter of ``chart_window``, or twice the pending time, before the condition began.
Alerts that name no series (a hand-built one with a ``metric`` annotation, or one restored
before its series came back) fall back to the series their labels select.
"""

from __future__ import annotations

from agent.catalog import load_catalog
from agent.history.protocol import SeriesReader
from agent.notify.base import Alert, Notification
from agent.notify.render import human_duration, sparkline
from agent.samples import Tags

__all__ = ["MAX_ALERTS", "alert_series", "chart_png", "chart_since", "sparklines"]

MAX_ALERTS = 6  # alerts drawn on one chart
MAX_SERIES = 3  # series drawn per alert
_NOT_TAGS = ("alertname", "alert", "severity")
Points = list[tuple[float, float]]


def chart_since(alert: Alert, now: float, window: float) -> float:
    """Where the alert's chart begins: the window, and enough before the change to see it."""
    began = alert.active_since or alert.fired_at or now
    pending = max(0.0, (alert.fired_at or began) - began)
    return min(now - window, began - max(window / 4, 2 * pending))


def alert_series(reader: SeriesReader, alert: Alert, since: float,
                 until: float) -> dict[Tags, Points]:
    """The alert's own series (by their tags without facts), oldest point first."""
    metric = alert.chart_metric
    if not metric:
        return {}
    catalog = load_catalog()
    out: dict[Tags, Points] = {}
    for wanted in alert.series[:MAX_SERIES]:
        ident = tuple(sorted(wanted.items()))
        for tags, points in reader.read_series(metric, since, until, wanted or None).items():
            # the store keeps a gauge's fact variants (a reason) apart: they are one line here
            # (a count's facts are part of its series, as they are of the alert's)
            tags = tuple(tags)
            if points and (tags == ident or catalog.series_tags(metric, tags) == ident):
                out.setdefault(ident, []).extend(points)
    if not out and not alert.series:
        labels = {k: v for k, v in alert.labels.items()
                  if k not in _NOT_TAGS and not k.startswith("__")}
        found = reader.read_series(metric, since, until, labels or None)
        if not found and labels:  # the rule added labels the series does not carry
            found = {tags: points for tags, points in
                     reader.read_series(metric, since, until, None).items()
                     if all(alert.labels.get(k) == v for k, v in tags)}
        for tags, points in list(found.items())[:MAX_SERIES]:
            if points:
                out[tuple(tags)] = list(points)
    return {tags: sorted(points) for tags, points in out.items()}


def chart_png(reader: SeriesReader, note: Notification, now: float, window: float) -> bytes | None:
    """The chart of a firing notification: the series of its first alerts, the threshold,
    the pending window and the firing window of the first alert; None with no data."""
    from agent.charts import legend_labels, render_line_chart

    alerts = [a for a in (note.firing or note.alerts) if a.chart_metric][:MAX_ALERTS]
    if not alerts:
        return None
    first = alerts[0]
    metric = first.chart_metric
    lines: list[tuple[dict[str, str], Points]] = []
    for alert in alerts:
        if alert.chart_metric != metric:
            continue  # one chart, one metric: a group of several rules shows the first
        since = chart_since(alert, now, window)
        for tags, points in alert_series(reader, alert, since, now).items():
            lines.append((dict(tags), points))
    if not lines:
        return None
    labels = legend_labels([tags for tags, _ in lines])
    series: dict[str, Points] = {}
    for label, (_, points) in zip(labels, lines):
        series.setdefault(label, []).extend(points)
    spec = load_catalog().get(metric or "")
    pending = firing = None
    if first.active_since is not None and first.fired_at is not None:
        pending = (first.active_since, first.fired_at)
    if first.fired_at is not None:
        firing = (first.fired_at, first.resolved_at or now)
    summary = first.annotations.get("summary") or first.rule
    return render_line_chart(series, title=summary, threshold=first.threshold,
                             unit=spec.unit if spec else first.annotations.get("unit", ""),
                             pending=pending, firing=firing)


def sparklines(reader: SeriesReader, note: Notification, now: float,
               window: float) -> dict[str, str]:
    """A text sparkline of each alert's first series, by alert fingerprint (webhook mode)."""
    out: dict[str, str] = {}
    for alert in note.alerts[:MAX_ALERTS]:
        series = alert_series(reader, alert, now - window, now)
        points = next(iter(series.values()), None)
        if not points:
            continue
        line = sparkline(points)
        if line:
            lo, hi = min(v for _, v in points), max(v for _, v in points)
            out[alert.fingerprint] = (f"`{line}`  last {human_duration(window)}: "
                                      f"min {lo:.4g}, max {hi:.4g}")
    return out
