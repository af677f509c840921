"""The cost report as text: a terminal table, CSV, Markdown, and the digest's top lines."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime, timezone

from agent.cost.prices import money
from agent.cost.report import CostReport, ModelRow

__all__ = ["as_csv", "as_markdown", "as_table", "headline", "top_lines"]

GIB = 2.0**30
NO_REQUESTS = "no request data"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.0f} %"


def _hours(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 3600.0:.1f}"


def _mem(row: ModelRow) -> str:
    if row.memory_p95 is None:
        return "—"
    total = f"{row.memory_total / GIB:.1f}" if row.memory_total else "?"
    return f"{row.memory_p95 / GIB:.1f} / {total} GiB"


def _rps(row: ModelRow) -> str:
    rps = row.requests_per_second
    return NO_REQUESTS if rps is None else f"{rps:.3g}"


def _per_1k(report: CostReport, row: ModelRow) -> str:
    if not row.on_gpu:
        return "not on a GPU"
    if row.predictions is None:
        return NO_REQUESTS
    if not row.predictions:
        return "no predictions"
    per_1k = row.per_1k
    return money(per_1k, report.currency, 2 if per_1k is not None and per_1k >= 1 else 4)


def _trend(value: float | None, of: str) -> str:
    if value is None:
        return "—"
    return f"{value * 100:+.0f} %" + ("" if of == "cost" else f" ({of})")


def headline(report: CostReport) -> str:
    c = report.currency
    other = None
    if report.total is not None and report.models_total is not None and report.idle is not None:
        other = report.total - report.models_total - report.idle
    return (f"GPU spend {_when(report.since)} → {_when(report.until)} UTC ({report.days:g} days): "
            f"{money(report.total, c)} (models {money(report.models_total, c)}, idle "
            f"{money(report.idle, c)}, other {money(other, c)})")


def _sections(report: CostReport) -> list[tuple[str, list[str], list[list[str]]]]:
    c = report.currency
    models = [[m.model, f"{m.gpu_seconds / 3600.0:.1f}", _pct(m.utilization_p50), _pct(m.utilization_p95),
               _mem(m), _rps(m), money(m.cost_per_day, c) if m.on_gpu else "not on a GPU",
               _per_1k(report, m),
               f"{m.recommendation.rule}: {m.recommendation.text}" if m.recommendation else ""]
              for m in report.models]
    nodes = [[n.node, n.capacity.replace("_", "-") or "—", _hours(n.gpu_seconds), money(n.spend, c),
              _hours(n.idle_seconds), money(n.idle_spend, c)] for n in report.nodes]
    pipes = [[p.dag_id, str(p.runs), f"{p.gpu_hours_per_run:.2f}" if p.gpu_hours_per_run is not None else "—",
              money(p.cost_per_run, c), money(p.cost, c), _trend(p.trend, p.trend_of)]
             for p in report.pipelines]
    return [
        ("models", ["MODEL", "GPU-H", "UTIL P50", "UTIL P95", "MEMORY P95", "REQ/S", "COST/DAY",
                    "PER 1K PREDICTIONS", "RECOMMENDATION"], models),
        ("nodes", ["NODE", "CAPACITY", "GPU-H", "COST", "IDLE GPU-H",
                   "IDLE COST (could have been given back)"], nodes),
        ("pipelines", ["DAG", "RUNS", "GPU-H/RUN", "COST/RUN", "TOTAL", "TREND"], pipes),
    ]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for n, row in enumerate(cells):
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def as_table(report: CostReport) -> str:
    lines = [headline(report), ""]
    for title, headers, rows in _sections(report):
        lines += _table(headers, rows) if rows else [f"(no {title} in this period)"]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def as_markdown(report: CostReport) -> str:
    lines = [f"# {headline(report)}", ""]
    for title, headers, rows in _sections(report):
        lines += [f"## {title.capitalize()}", ""]
        if not rows:
            lines += [f"No {title} in this period.", ""]
            continue
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---" for _ in headers) + "|")
        for row in rows:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        lines.append("")
    return "\n".join(lines)


def as_csv(report: CostReport) -> str:
    """One row per model, node and pipeline; numbers unformatted, unknown values empty."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["section", "name", "capacity", "gpu_hours", "cost", "cost_per_day", "utilization_p50",
                "utilization_p95", "memory_p95_bytes", "memory_total_bytes", "requests_per_second",
                "cost_per_1k_predictions", "idle_gpu_hours", "idle_cost", "runs", "cost_per_run",
                "trend", "rule", "recommendation", "saving_per_day", "currency"])

    def num(v: float | None) -> str:
        return "" if v is None else repr(round(v, 6))

    for m in report.models:
        rec = m.recommendation
        w.writerow(["model", m.model, "", num(m.gpu_seconds / 3600.0), num(m.spend if m.on_gpu else None),
                    num(m.cost_per_day), num(m.utilization_p50), num(m.utilization_p95),
                    num(m.memory_p95), num(m.memory_total), num(m.requests_per_second), num(m.per_1k),
                    "", "", "", "", "", rec.rule if rec else "", rec.text if rec else "",
                    num(rec.saving_per_day if rec else None), report.currency])
    for n in report.nodes:
        w.writerow(["node", n.node, n.capacity, num(n.gpu_seconds / 3600.0), num(n.spend),
                    "", "", "", "", "", "", "", num(n.idle_seconds / 3600.0), num(n.idle_spend),
                    "", "", "", "", "", "", report.currency])
    for p in report.pipelines:
        w.writerow(["pipeline", p.dag_id, "", num(p.gpu_seconds / 3600.0), num(p.cost), "", "", "", "", "",
                    "", "", "", "", p.runs, num(p.cost_per_run), num(p.trend), "", "", "", report.currency])
    return buf.getvalue()


def top_lines(report: CostReport, top: int = 5) -> list[str]:
    """The digest: the headline, then the costliest models, idle nodes, savings, pipelines."""
    c = report.currency
    lines = [headline(report)]
    models = [m for m in report.models if m.on_gpu][:top]
    if models:
        lines.append("Models by cost/day: " + " · ".join(
            f"{m.model} {money(m.cost_per_day, c)}/day ({_per_1k(report, m)}"
            + (" per 1k" if m.per_1k is not None else "") + ")" for m in models))
    idle = [n for n in report.nodes if n.idle_seconds > 0][:top]
    if idle:
        lines.append("Idle GPUs that could have been given back: " + " · ".join(
            f"{n.node} {money(n.idle_spend, c)} ({_hours(n.idle_seconds)} GPU-h)" for n in idle))
    saving = [(m.model, m.recommendation) for m in report.models
              if m.recommendation is not None and m.recommendation.saving_per_day]
    saving.sort(key=lambda item: -(item[1].saving_per_day or 0.0))
    for model, rec in saving[:min(top, 3)]:  # Slack shows 1,500 characters of it
        lines.append(f"Right-size {model}: {rec.text}")
    pipes = report.pipelines[:top]
    if pipes:
        lines.append("Pipelines: " + " · ".join(
            f"{p.dag_id} {p.runs} runs, {money(p.cost_per_run, c)}/run (trend {_trend(p.trend, p.trend_of)})"
            for p in pipes))
    if report.empty:
        lines.append("No cost data in this period: is `cost:` configured on the agents that read the GPUs?")
    return lines
