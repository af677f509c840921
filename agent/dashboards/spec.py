"""The one description of every shipped dashboard.

Both the Datadog and the Grafana JSON are rendered from these objects, and tests prove
that every metric a panel names is in the catalog and that every catalog metric is on a
dashboard or listed in :data:`UNDASHBOARDED` with the reason — so dashboards cannot rot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DASHBOARDS", "UNDASHBOARDED", "Dashboard", "Panel", "Query", "Row"]

# "events": Datadog's event stream of the queried metrics' events (agent/export/events.py);
# Prometheus has no events, so Grafana shows a note pointing at the counters instead
Viz = Literal["timeseries", "value", "toplist", "table", "note", "events"]
# p50/p95/p99: of a distribution's observations (Prometheus histogram_quantile over its
# buckets, Datadog's percentiles); avg of a distribution is the mean observation
Agg = Literal["avg", "sum", "min", "max", "p50", "p95", "p99"]
PERCENTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True)
class Query:
    """One metric on a panel: aggregated across series (``agg``), split by ``by`` tags."""

    metric: str
    agg: Agg = "avg"
    by: tuple[str, ...] = ()
    # counters only: plot the per-second rate (Prometheus rate(), Datadog .as_rate())
    rate: bool = False
    where: tuple[tuple[str, str], ...] = ()
    label: str = ""
    # counters only: how many happened — in the dashboard's time range on a table or a
    # value, per interval on a graph (Prometheus increase(), Datadog .as_count())
    increase: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...] = ()
    viz: Viz = "timeseries"
    unit: str = ""  # catalog unit of the values shown
    text: str = ""  # for notes
    description: str = ""


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    slug: str
    title: str
    description: str
    variables: tuple[str, ...]  # tag names users filter by
    rows: tuple[Row, ...] = field(default_factory=tuple)

    def queries(self) -> list[Query]:
        return [q for row in self.rows for p in row.panels for q in p.queries]


def Q(metric: str, *by: str, agg: Agg = "avg", rate: bool = False, label: str = "",
      where: dict[str, str] | None = None, increase: bool = False) -> Query:
    return Query(metric, agg, tuple(by), rate, tuple(sorted((where or {}).items())), label, increase)


SOURCE_NOTE = ("Data from the mlwarden agent (`mlwarden run`). Metric names, units and tags are "
               "listed in the README's metric catalog; each agent tags its own metrics with `agent`.")

ENDPOINTS = Dashboard(
    "mlwarden-model-endpoints",
    "mlwarden — Model endpoints",
    "Availability, readiness, latency and errors of model servers (V2/KServe/Triton/MLServer, "
    "TorchServe, TF Serving, MLflow, HTTP) probed by mlwarden.",
    ("env", "model", "endpoint"),
    (
        Row("Overview", (
            Panel("About this dashboard", viz="note", text=SOURCE_NOTE + " Endpoints are probed by "
                  "the `model_endpoint` check; `up` means the server answered, `ready` that the model can serve."),
            Panel("Endpoints up", (Q("mlwarden.endpoint.up", agg="sum"),), viz="value"),
            Panel("Models ready", (Q("mlwarden.endpoint.ready", agg="sum"),), viz="value"),
            Panel("Readiness by model", (Q("mlwarden.endpoint.ready", "model", "endpoint", agg="min"),),
                  viz="table"),
            Panel("Models that stopped being ready (events)", (Q("mlwarden.endpoint.ready"),),
                  viz="events"),
        )),
        Row("Availability", (
            Panel("Up by endpoint", (Q("mlwarden.endpoint.up", "endpoint", agg="min"),)),
            Panel("Ready by model", (Q("mlwarden.endpoint.ready", "model", agg="min"),)),
            Panel("HTTP status of the readiness probe", (Q("mlwarden.endpoint.http_status", "endpoint", agg="max"),)),
        )),
        Row("Latency", (
            Panel("Probe latency p50 / p95 / p99", (
                Q("mlwarden.endpoint.latency", "model", agg="p50", label="p50"),
                Q("mlwarden.endpoint.latency", "model", agg="p95", label="p95"),
                Q("mlwarden.endpoint.latency", "model", agg="p99", label="p99"),
            ), unit="seconds", description="Percentiles of every probe of every agent "
                  "(histogram buckets in Prometheus, distributions in Datadog)."),
            Panel("Latency phases", (
                Q("mlwarden.endpoint.latency.connect", "endpoint", label="connect"),
                Q("mlwarden.endpoint.latency.ttfb", "endpoint", label="time to first byte"),
                Q("mlwarden.endpoint.latency", "endpoint", label="total (mean)"),
            ), unit="seconds"),
            Panel("Canary inference p50 / p95", (
                Q("mlwarden.endpoint.canary.latency", "model", agg="p50", label="p50"),
                Q("mlwarden.endpoint.canary.latency", "model", agg="p95", label="p95"),
            ), unit="seconds"),
            Panel("Canary success", (Q("mlwarden.endpoint.canary.success", "model", agg="min"),)),
        )),
        Row("Errors and capacity", (
            Panel("Probe errors by kind", (Q("mlwarden.endpoint.errors", "error_kind", agg="sum", rate=True),)),
            Panel("Slowest models (p95)", (Q("mlwarden.endpoint.latency", "model", agg="p95"),),
                  viz="toplist", unit="seconds"),
            Panel("Model versions served", (Q("mlwarden.endpoint.model.info", "model", "version", agg="max"),),
                  viz="table"),
            Panel("Versions ready", (Q("mlwarden.endpoint.versions_ready", "model", agg="min"),)),
            Panel("Workers (TorchServe)", (
                Q("mlwarden.endpoint.workers", "model", label="workers"),
                Q("mlwarden.endpoint.workers.ready", "model", label="ready"),
            )),
        )),
        Row("Prometheus endpoints scraped", (
            Panel("Scrape up", (Q("mlwarden.openmetrics.up", "endpoint", agg="min"),)),
            Panel("Scrape duration", (Q("mlwarden.openmetrics.scrape.duration", "endpoint"),), unit="seconds"),
            Panel("Series forwarded", (Q("mlwarden.openmetrics.scrape.series", "endpoint", agg="sum"),)),
            Panel("Scrape errors", (Q("mlwarden.openmetrics.errors", "error_kind", agg="sum", rate=True),)),
        )),
    ),
)

AIRFLOW = Dashboard(
    "mlwarden-airflow-pipelines",
    "mlwarden — Airflow pipelines",
    "Failed runs and tasks, freshness, durations, stuck and late runs, import errors and "
    "scheduler health of Airflow 2 and 3 deployments watched by mlwarden.",
    ("env", "dag_id"),
    (
        Row("Overview", (
            Panel("About this dashboard", viz="note", text=SOURCE_NOTE + " Pipelines are read from "
                  "Airflow's REST API by the `airflow` check; each failed run and task is counted once."),
            Panel("API reachable", (Q("mlwarden.airflow.can_connect", agg="min"),), viz="value"),
            Panel("DAGs watched", (Q("mlwarden.airflow.dags.watched", agg="sum"),), viz="value"),
            Panel("Import errors", (Q("mlwarden.airflow.import_errors", agg="sum"),), viz="value"),
        )),
        Row("Failures", (
            Panel("Failed runs by DAG", (
                Q("mlwarden.airflow.dag_run.failed", "dag_id", agg="sum", increase=True),), viz="table",
                  description="Failed runs in the dashboard's time range."),
            Panel("Failed tasks by DAG and task", (
                Q("mlwarden.airflow.task_instance.failed", "dag_id", "task_id", agg="sum", increase=True),),
                  viz="table", description="Failed task instances in the dashboard's time range."),
            Panel("DAGs whose last run failed", (Q("mlwarden.airflow.dag.last_run_failed", "dag_id", agg="max"),),
                  viz="table"),
            Panel("Duration of failed tasks", (
                Q("mlwarden.airflow.task_instance.failed_duration", "dag_id", "task_id", agg="max"),),
                  unit="seconds"),
            Panel("Broken DAG files", (Q("mlwarden.airflow.import_error", "filename", agg="max"),),
                  viz="table"),
            Panel("Failed runs, failed tasks and import errors (events, with log links)", (
                Q("mlwarden.airflow.dag_run.failed"), Q("mlwarden.airflow.task_instance.failed"),
                Q("mlwarden.airflow.import_error")), viz="events"),
        )),
        Row("Freshness and duration", (
            Panel("Time since last success", (Q("mlwarden.airflow.dag.last_success_age", "dag_id", agg="max"),),
                  viz="toplist", unit="seconds"),
            Panel("Finished runs by state", (Q("mlwarden.airflow.dag_run.finished", "state", agg="sum", rate=True),)),
            Panel("Run duration", (Q("mlwarden.airflow.dag_run.duration", "dag_id", agg="max"),), unit="seconds"),
            Panel("Learned p95 run duration", (Q("mlwarden.airflow.dag.duration_p95", "dag_id"),), unit="seconds"),
        )),
        Row("Running, stuck and late", (
            Panel("Active runs", (Q("mlwarden.airflow.dag_run.active", "state", agg="sum"),)),
            Panel("Elapsed time of running runs", (Q("mlwarden.airflow.dag_run.elapsed", "dag_id", agg="max"),),
                  unit="seconds"),
            Panel("Stuck runs", (Q("mlwarden.airflow.dag.stuck_runs", "dag_id", agg="sum"),)),
            Panel("Late DAGs", (Q("mlwarden.airflow.dag.late", "dag_id", agg="max"),), viz="table"),
            Panel("Schedule delay", (Q("mlwarden.airflow.dag.schedule_delay", "dag_id", agg="max"),), unit="seconds"),
            Panel("Queued tasks", (
                Q("mlwarden.airflow.task_instance.queued", "dag_id", agg="sum", label="queued"),
                Q("mlwarden.airflow.task_instance.queued_too_long", "dag_id", agg="sum", label="queued too long"),
            )),
            Panel("Oldest queued task", (Q("mlwarden.airflow.task_instance.queued_max_age", "dag_id", agg="max"),),
                  unit="seconds"),
        )),
        Row("GPU cost of runs (cost: section; task_instances: true)", (
            Panel("GPU cost of the last run by DAG", (Q("mlwarden.cost.dag_run.cost", "dag_id", agg="max"),),
                  viz="toplist", unit="dollars"),
            Panel("GPU time of the last run by DAG", (Q("mlwarden.cost.dag_run.gpu_seconds", "dag_id", agg="max"),),
                  unit="seconds"),
            Panel("GPU spend by DAG (per second)", (Q("mlwarden.cost.dag.spend", "dag_id", agg="sum", rate=True),)),
            Panel("GPUs used by DAG (GPU-seconds per second)", (
                Q("mlwarden.cost.dag.gpu_seconds", "dag_id", agg="sum", rate=True),)),
            Panel("GPU cost by task", (Q("mlwarden.cost.task_instance.cost", "dag_id", "task_id", agg="max"),),
                  viz="table", unit="dollars"),
            Panel("GPU time by task", (Q("mlwarden.cost.task_instance.gpu_seconds", "dag_id", "task_id", agg="max"),),
                  unit="seconds"),
            Panel("Task duration", (Q("mlwarden.airflow.task_instance.duration", "dag_id", "task_id", agg="max"),),
                  unit="seconds"),
        )),
        Row("Scheduler health", (
            Panel("Components healthy", (Q("mlwarden.airflow.component.healthy", "component", agg="min"),)),
            Panel("Heartbeat age", (Q("mlwarden.airflow.component.heartbeat_age", "component", agg="max"),),
                  unit="seconds"),
        )),
    ),
)

GPU = Dashboard(
    "mlwarden-gpu-fleet",
    "mlwarden — GPU fleet",
    "Utilisation, memory, health and idle cost of GPUs read through NVML or dcgm-exporter by mlwarden.",
    ("env", "node", "gpu_model"),
    (
        Row("Overview", (
            Panel("About this dashboard", viz="note", text=SOURCE_NOTE + " GPUs are read by the `gpu` "
                  "check (NVML on the node, or dcgm-exporter endpoints); idle cost uses the configured price per GPU-hour."),
            Panel("GPUs", (Q("mlwarden.gpu.present", agg="sum"),), viz="value"),
            Panel("Idle GPUs (fleet)", (Q("mlwarden.gpu.fleet.idle", agg="sum"),), viz="value"),
            Panel("Idle cost per hour (fleet)", (Q("mlwarden.gpu.fleet.idle.cost_rate", agg="sum"),), viz="value",
                  unit="dollars_per_hour"),
            Panel("GPUs lost", (Q("mlwarden.gpu.lost", "node", agg="sum"),), viz="value"),
        )),
        Row("Utilisation", (
            Panel("GPU utilisation by node", (Q("mlwarden.gpu.utilization", "node", "gpu"),), unit="ratio"),
            Panel("Memory utilisation", (Q("mlwarden.gpu.memory.utilization", "node", "gpu"),), unit="ratio"),
            Panel("Memory used / total", (
                Q("mlwarden.gpu.memory.used", "node", agg="sum", label="used"),
                Q("mlwarden.gpu.memory.free", "node", agg="sum", label="free"),
                Q("mlwarden.gpu.memory.total", "node", agg="sum", label="total"),
            ), unit="bytes"),
            Panel("Tensor / graphics / DRAM activity (DCGM profiling)", (
                Q("mlwarden.gpu.tensor.active", "node", label="tensor"),
                Q("mlwarden.gpu.graphics.active", "node", label="graphics"),
                Q("mlwarden.gpu.dram.active", "node", label="dram"),
            ), unit="ratio"),
            Panel("Encoder / decoder", (
                Q("mlwarden.gpu.encoder.utilization", "node", label="encoder"),
                Q("mlwarden.gpu.decoder.utilization", "node", label="decoder"),
            ), unit="ratio"),
        )),
        Row("Workloads", (
            Panel("Top workloads by GPU memory", (
                Q("mlwarden.gpu.process.memory.used", "namespace", "pod", "process", agg="sum"),),
                  viz="toplist", unit="bytes"),
            Panel("Processes per GPU", (Q("mlwarden.gpu.processes", "node", "gpu", agg="sum"),)),
        )),
        Row("Health", (
            Panel("Temperature", (
                Q("mlwarden.gpu.temperature", "node", "gpu", agg="max", label="GPU"),
                Q("mlwarden.gpu.memory.temperature", "node", "gpu", agg="max", label="memory"),
            ), unit="celsius"),
            Panel("Power draw vs limit", (
                Q("mlwarden.gpu.power.usage", "node", agg="sum", label="draw"),
                Q("mlwarden.gpu.power.limit", "node", agg="sum", label="limit"),
            ), unit="watts"),
            Panel("Energy used", (Q("mlwarden.gpu.energy", "node", agg="sum", rate=True),), unit="watts"),
            Panel("Clocks", (
                Q("mlwarden.gpu.clock.sm", "node", label="SM"),
                Q("mlwarden.gpu.clock.memory", "node", label="memory"),
            ), unit="hertz"),
            Panel("Throttling by reason", (Q("mlwarden.gpu.throttled", "node", "reason", agg="max"),)),
            Panel("XID errors by code", (Q("mlwarden.gpu.xid.errors", "node", "xid", "xid_meaning", agg="sum", rate=True),)),
            Panel("XID errors (events)", (Q("mlwarden.gpu.xid.errors"),), viz="events"),
            Panel("ECC errors", (Q("mlwarden.gpu.ecc.errors", "node", "type", agg="sum", rate=True),)),
            Panel("PCIe replays", (Q("mlwarden.gpu.pcie.replays", "node", agg="sum", rate=True),)),
            Panel("Remapped rows / remap failures", (
                Q("mlwarden.gpu.remapped_rows", "node", "type", agg="max", label="remapped"),
                Q("mlwarden.gpu.row_remap.failure", "node", agg="max", label="failure"),
            )),
            Panel("GPU up", (Q("mlwarden.gpu.up", "node", "gpu", agg="min"),)),
            Panel("Sources up", (Q("mlwarden.gpu.source.up", "source", agg="min"),)),
        )),
        Row("What the GPUs cost (cost: section; docs/cost.md)", (
            Panel("Cost per hour by model", (Q("mlwarden.cost.model.rate", "model", agg="sum"),),
                  viz="toplist", unit="dollars_per_hour"),
            Panel("Cost per 1,000 predictions", (Q("mlwarden.cost.model.per_1k_predictions", "model", agg="max"),),
                  viz="toplist", unit="dollars"),
            Panel("GPU spend by model (per second)", (Q("mlwarden.cost.model.spend", "model", agg="sum", rate=True),)),
            Panel("GPUs used by model (GPU-seconds per second)", (
                Q("mlwarden.cost.model.gpu_seconds", "model", agg="sum", rate=True, label="attributed"),
                Q("mlwarden.cost.model.gpus", "model", agg="sum", label="serving now"),
            )),
            Panel("Utilisation of each model's GPUs", (Q("mlwarden.cost.model.utilization", "model"),),
                  unit="ratio"),
            Panel("Model memory vs its card", (
                Q("mlwarden.cost.model.memory.used", "model", agg="max", label="used"),
                Q("mlwarden.cost.model.memory.total", "model", agg="max", label="card"),
            ), unit="bytes"),
            Panel("Predictions per second", (Q("mlwarden.cost.model.predictions", "model", agg="sum", rate=True),)),
            Panel("Cost per hour by node", (Q("mlwarden.cost.node.rate", "node", agg="sum"),),
                  unit="dollars_per_hour"),
            Panel("GPU spend by node, all and idle (per second)", (
                Q("mlwarden.cost.node.spend", "node", agg="sum", rate=True, label="all"),
                Q("mlwarden.cost.node.idle.spend", "node", agg="sum", rate=True, label="idle, could be given back"),
            )),
            Panel("GPUs by node, all and idle (GPU-seconds per second)", (
                Q("mlwarden.cost.node.gpu_seconds", "node", agg="sum", rate=True, label="all"),
                Q("mlwarden.cost.node.idle.gpu_seconds", "node", agg="sum", rate=True, label="idle"),
            )),
            Panel("GPUs without a price (cost unknown)", (
                Q("mlwarden.cost.unpriced.gpu_seconds", "node", "gpu_model", agg="sum", rate=True),)),
        )),
        Row("Idle GPUs and their cost", (
            Panel("Idle GPUs by node", (Q("mlwarden.gpu.node.idle", "node", agg="sum"),)),
            Panel("Idle cost per hour by node", (Q("mlwarden.gpu.node.idle.cost_rate", "node", agg="sum"),),
                  viz="toplist", unit="dollars_per_hour"),
            Panel("Longest idle on each node", (Q("mlwarden.gpu.node.idle.duration", "node", agg="max"),),
                  unit="seconds"),
            Panel("Idle GPUs", (Q("mlwarden.gpu.idle", "node", "gpu", agg="max"),), viz="table"),
            Panel("Idle time per GPU", (Q("mlwarden.gpu.idle.duration", "node", "gpu", agg="max"),), unit="seconds"),
            Panel("Money spent idle per GPU", (Q("mlwarden.gpu.idle.cost", "node", "gpu", agg="max"),),
                  viz="toplist", unit="dollars"),
            Panel("Idle cost rate per GPU", (Q("mlwarden.gpu.idle.cost_rate", "node", "gpu", agg="sum"),),
                  unit="dollars_per_hour"),
        )),
    ),
)

AGENT = Dashboard(
    "mlwarden-agent-health",
    "mlwarden — Agent health",
    "The agents themselves: check durations and failures, the pipeline, history store, "
    "exporters and alert delivery.",
    ("env", "agent", "check"),
    (
        Row("Overview", (
            Panel("About this dashboard", viz="note", text=SOURCE_NOTE + " A silent agent is the first "
                  "thing to alert on: see the shipped `builtin:agent` rule pack (`mlwarden rules list`)."),
            Panel("Check instances", (Q("mlwarden.agent.checks.configured", agg="sum"),), viz="value"),
            Panel("Failing check instances", (Q("mlwarden.agent.checks.failing", agg="sum"),), viz="value"),
            Panel("Status of each check (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
                  (Q("mlwarden.check.status", "check", "check_type", agg="max"),), viz="table"),
            Panel("Config loaded (1) or last reload rejected (0), by agent",
                  (Q("mlwarden.config.last_reload_successful", "agent", agg="min"),), viz="table"),
            Panel("Last successful config load (UNIX time), by agent",
                  (Q("mlwarden.config.last_reload_success_timestamp", "agent", agg="max"),), viz="table",
                  unit="seconds"),
        )),
        Row("Checks", (
            Panel("Check duration", (Q("mlwarden.check.duration", "check_type", agg="max"),), unit="seconds"),
            Panel("Runs per second by type", (Q("mlwarden.check.runs", "check_type", agg="sum", rate=True),)),
            Panel("Check errors by kind", (Q("mlwarden.check.errors", "check_type", "error", agg="sum", rate=True),)),
            Panel("Slowest check instances", (Q("mlwarden.agent.check.last_duration", "check", agg="max"),),
                  viz="toplist", unit="seconds"),
            Panel("Consecutive failures", (Q("mlwarden.agent.check.consecutive_failures", "check", agg="max"),),
                  viz="toplist"),
        )),
        Row("Process", (
            Panel("CPU", (Q("mlwarden.agent.cpu.utilization", agg="max"),), unit="ratio"),
            Panel("CPU time", (Q("mlwarden.agent.cpu.time", agg="sum", rate=True),), unit="seconds"),
            Panel("Resident memory", (Q("mlwarden.agent.memory.rss", agg="max"),), unit="bytes"),
            Panel("Open files and threads", (
                Q("mlwarden.agent.open_fds", agg="max", label="open fds"),
                Q("mlwarden.agent.threads", agg="max", label="threads"),
            )),
            Panel("Pipeline queue", (Q("mlwarden.agent.pipeline.queue_depth", agg="max"),)),
        )),
        Row("History store", (
            Panel("Samples written / shed per second", (
                Q("mlwarden.history.samples_written", agg="sum", rate=True, label="written"),
                Q("mlwarden.history.samples_shed", agg="sum", rate=True, label="shed (queue full)"),
            )),
            Panel("Writer queue", (Q("mlwarden.history.queue_depth", agg="max"),)),
            Panel("Write errors per second", (Q("mlwarden.history.write_errors", agg="sum", rate=True),)),
            Panel("Batch commit and maintenance time", (
                Q("mlwarden.history.flush_duration", agg="max", label="batch commit"),
                Q("mlwarden.history.maintenance_duration", agg="max", label="rollup + retention pass"),
            ), unit="seconds"),
            Panel("SQLite file size (with WAL)", (Q("mlwarden.history.db_size", agg="max"),), unit="bytes"),
        )),
        Row("Leader election (agents sharing a PostgreSQL history)", (
            Panel("Leader by lease", (Q("mlwarden.leader.is_leader", "lease", "agent", agg="max"),)),
            Panel("Leadership changes per second", (
                Q("mlwarden.leader.transitions", "lease", "agent", agg="sum", rate=True),)),
        )),
        Row("Exporters", (
            Panel("Exporter up", (Q("mlwarden.exporter.up", "exporter", agg="min"),)),
            Panel("Points sent per second", (Q("mlwarden.exporter.sent", "exporter", agg="sum", rate=True),)),
            Panel("Points dropped per second by reason", (
                Q("mlwarden.exporter.dropped", "exporter", "reason", agg="sum", rate=True),)),
            Panel("Delivery failures per second", (
                Q("mlwarden.exporter.failures", "exporter", agg="sum", rate=True),)),
            Panel("Durable queue (Datadog API mode)", (Q("mlwarden.exporter.queue.length", "exporter", agg="max"),)),
            Panel("Last successful delivery (UNIX time)", (
                Q("mlwarden.exporter.last_success", "exporter", agg="max"),), viz="table", unit="seconds"),
        )),
        Row("Datadog custom metrics (what Datadog bills)", (
            Panel("Custom metrics in the last hour vs the budget", (
                Q("mlwarden.exporter.custom_metrics", "exporter", agg="max", label="sent"),
                Q("mlwarden.exporter.custom_metrics.budget", "exporter", agg="max", label="budget"),
            )),
            Panel("Top contributors", (Q("mlwarden.exporter.custom_metrics.by_metric", "metric", agg="max"),),
                  viz="toplist"),
            Panel("Metrics limited by the budget", (
                Q("mlwarden.exporter.custom_metrics.limited", "decision", agg="max"),)),
        )),
        Row("Alert delivery", (
            Panel("Receivers up", (Q("mlwarden.alerting.receiver.up", "receiver", agg="min"),)),
            Panel("Notifications sent / dropped per second", (
                Q("mlwarden.alerting.notifications.sent", "receiver", agg="sum", rate=True, label="sent"),
                Q("mlwarden.alerting.notifications.dropped", "receiver", agg="sum", rate=True, label="dropped"),
            )),
            Panel("Delivery failures per second by reason", (
                Q("mlwarden.alerting.delivery.failures", "receiver", "reason", agg="sum", rate=True),)),
            Panel("Notifications pending", (
                Q("mlwarden.alerting.notifications.pending", "receiver", agg="max"),)),
            Panel("Oldest pending notification", (
                Q("mlwarden.alerting.notifications.oldest_pending_age", "receiver", agg="max"),), unit="seconds"),
            Panel("Alert groups tracked", (Q("mlwarden.alerting.groups", agg="sum"),)),
        )),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (ENDPOINTS, AIRFLOW, GPU, AGENT)

# Catalog metrics deliberately left off the dashboards, with the reason.
UNDASHBOARDED: dict[str, str] = {}
