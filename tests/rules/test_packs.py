"""The shipped rule packs, verbatim, say the cause in words: the try number of a failed task,
the run that is stuck (samples shaped as the airflow check emits them; the check's own tests
pin that shape against Airflow 2 and 3)."""

from __future__ import annotations

from agent.rules.evaluator import RuleEvaluator
from agent.rules.files import load_rule_file
from agent.samples import Kind, Sample, make_tags
from tests.support.procs import REPO

PACK = REPO / "agent" / "data" / "rules" / "airflow.yaml"  # builtin:airflow


def pack(*names: str):
    problems: list[str] = []
    rules = [r for r in load_rule_file(PACK, problems) if r.alert in names]
    assert not problems and len(rules) == len(names), problems
    return rules


def test_the_failed_task_alert_shows_the_try_number_and_the_run():
    ev = RuleEvaluator(pack("AirflowTaskFailed"), started=0.0)
    tags = make_tags({"check": "prod", "dag_id": "train_ranker", "task_id": "fit",
                      "run_id": "scheduled__2026-12-06T00:00:00+00:00", "try_number": "3",
                      "map_index": "-1", "log_url": "http://airflow/log?try_number=3"})
    metric = "mlwarden.airflow.task_instance.failed"
    ev.evaluate(ev.ingest([Sample(metric, 1.0, tags, 100, Kind.COUNT)]), 100)
    [alert] = ev.alerts()
    assert alert.annotations["summary"] == (
        "Airflow task train_ranker.fit failed on try 3 (run scheduled__2026-12-06T00:00:00+00:00)")
    assert alert.annotations["description"] == "Log of try 3: http://airflow/log?try_number=3"


def test_the_stuck_run_alert_names_the_run_and_resolves_when_it_is_not_stuck():
    ev = RuleEvaluator(pack("AirflowRunStuck"), started=0.0)
    base = {"check": "prod", "dag_id": "batch_score"}
    metric = "mlwarden.airflow.dag.stuck_runs"
    stuck = make_tags({**base, "run_id": "manual__2026-12-06T01:00:00"})
    for t in range(0, 400, 30):  # for: 5m
        ev.evaluate(ev.ingest([Sample(metric, 1.0, stuck, t)]), t)
    [alert] = ev.alerts()
    assert alert.state.value == "firing"
    assert alert.annotations["summary"] == (
        "Airflow DAG batch_score has 1 stuck run(s): manual__2026-12-06T01:00:00")
    ev.evaluate(ev.ingest([Sample(metric, 0.0, make_tags(base), 420)]), 420)  # sparse: one 0
    changes, _ = ev.drain()
    assert changes[-1].state.value == "resolved" and changes[-1].at == 420
