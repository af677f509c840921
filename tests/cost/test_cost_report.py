"""The cost report over three recorded days, every figure checked by hand (tests/cost/scenario.py).

Real MLServer (its own request counters), the gpu check's NVML source on the strict pynvml
fake and its dcgm source on a dcgm-exporter exposition, the airflow check on the strict
Airflow 3 fake, the cost meter, the real history store (writer, rollups), then the report
and ``mlwarden report cost`` as a user runs it.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest

from agent.cost.config import CostConfig
from agent.cost.format import as_table, top_lines
from agent.cost.report import build_report
from agent.history.config import HistoryConfig
from agent.history.db import make_engine
from agent.history.query import HistoryReader
from tests.checks.test_model_endpoint_mlserver import mlserver  # noqa: F401 - the module's server
from tests.notify.fake_slack import TOKEN, FakeSlack
from tests.cost import scenario
from tests.cost.scenario import CONFIG, DAYS, HOUR, PRICE, STEP, T0

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GiB = 2**30
END = T0 + DAYS * 86400


@pytest.fixture(scope="module")
def history(mlserver, tmp_path_factory):  # noqa: F811
    proc, url, metrics_url = mlserver
    folder = tmp_path_factory.mktemp("cost")
    path = folder / "history.db"
    scenario.build_sync(path, folder / "proc", url, metrics_url)
    return path


@pytest.fixture(scope="module")
def report(history):
    engine = make_engine(f"sqlite:///{history}")
    reader = HistoryReader(engine, HistoryConfig().retention, clock=lambda: END + HOUR)
    yield build_report(reader, CostConfig(**CONFIG), T0, END)
    engine.dispose()


def test_cost_per_model_per_day_and_per_1k_predictions(report):
    models = {m.model: m for m in report.models}
    assert set(models) == {"ranker", "iris-sklearn"}
    hours = DAYS * 24                       # one GPU each, all 72 hours
    for m in models.values():
        assert m.gpu_seconds == pytest.approx(hours * HOUR)
        assert m.spend == pytest.approx(hours * PRICE)          # $295.20
        assert m.cost_per_day == pytest.approx(24 * PRICE)      # $98.40
        assert m.coverage == hours * HOUR
    iris = models["iris-sklearn"]
    assert iris.predictions == 4 * 24 + 5 * 24 + 6 * 24        # 360 real inference requests
    assert iris.requests_per_second == pytest.approx(360 / (hours * HOUR))
    assert iris.per_1k == pytest.approx(hours * PRICE / 360 * 1000)   # $820.00 per 1,000
    # 216 readings at 30 %, 216 at 40 % (one per minute bucket): p50 halfway, p95 40 %
    assert iris.utilization_p50 == pytest.approx(0.35)
    assert iris.utilization_p95 == pytest.approx(0.40)
    assert iris.memory_p95 == 10240 * 2**20                   # DCGM_FI_DEV_FB_USED, MiB
    assert iris.memory_total == (10240 + 71000 + 639) * 2**20  # used + free + reserved
    ranker = models["ranker"]
    assert ranker.predictions is None and ranker.per_1k is None  # no request counters: no data
    assert ranker.utilization_p50 == ranker.utilization_p95 == pytest.approx(0.04)
    # percentiles count values to 64 MiB: 1.2 GiB (1228.8 MiB) counts as 1216 MiB
    assert ranker.memory_p95 == 19 * 64 * 2**20 and ranker.memory_total == 80 * GiB


def test_recommendations_name_their_rule_and_saving(report):
    rec = {m.model: m.recommendation for m in report.models}
    # ranker: p95 4 % <= 10 % and 1.2 GiB <= 4 GiB -> cpu-tier; CPU tier (4.10 - 0.20) x 24 = 93.60
    # beats the L4 (4.10 - 0.80) x 24 = 79.20
    assert rec["ranker"].rule == "cpu-tier"
    assert rec["ranker"].saving_per_day == pytest.approx((PRICE - 0.20) * 24)
    assert rec["ranker"].text == ("p95 utilisation 4 %, memory 1.2 of 80.0 GiB for 3 days: a smaller "
                                  "GPU or the CPU tier would do; saving ~$93.60/day (the CPU tier at $0.20/h)")
    # iris: p95 40 % <= 50 %, and an L4 holds 10 GiB x 1.25 = 12.5 GiB -> smaller-gpu, (4.10 - 0.80) x 24
    assert rec["iris-sklearn"].rule == "smaller-gpu"
    assert rec["iris-sklearn"].saving_per_day == pytest.approx((PRICE - 0.80) * 24)
    assert rec["iris-sklearn"].text == ("p95 utilisation 40 %, memory 10.0 of 80.0 GiB for 3 days: a smaller "
                                        "GPU would do (NVIDIA L4, 24 GiB at $0.80/h); saving ~$79.20/day")


def test_idle_cost_per_node_between_runs(report):
    nodes = {n.node: n for n in report.nodes}
    hours = DAYS * 24
    for n in nodes.values():
        assert n.capacity == "on_demand"  # the H100 price entry's
        assert n.gpu_seconds == pytest.approx(2 * hours * HOUR)
        assert n.spend == pytest.approx(2 * hours * PRICE)
    # gpu-a: A1 idle but while evaluate (30 min a day) held it
    assert nodes["gpu-a"].idle_seconds == pytest.approx((hours - 3 * 0.5) * HOUR)
    assert nodes["gpu-a"].idle_spend == pytest.approx((hours - 3 * 0.5) * PRICE)
    # gpu-b: B1 idle but while train ran (2 + 2 + 3 h), and the reading (10 minutes) after each
    # run when it was already free but not yet idle for its 10-minute idle window
    idle_b = hours - sum(scenario.TRAIN_HOURS.values()) - 3 * STEP / HOUR
    assert nodes["gpu-b"].idle_seconds == pytest.approx(idle_b * HOUR)
    assert nodes["gpu-b"].idle_spend == pytest.approx(idle_b * PRICE)
    assert report.total == pytest.approx(4 * hours * PRICE)
    assert report.idle == pytest.approx((hours - 1.5 + idle_b) * PRICE)


def test_cost_per_pipeline_run_and_its_trend(report):
    (dag,) = report.pipelines
    assert (dag.dag_id, dag.runs) == ("train_ranker", 3)
    # train on its pod's GPU (2, 2, 3 h) + evaluate on both GPUs of gpu-a (2 x 0.5 h)
    gpu_hours = [2 + 1, 2 + 1, 3 + 1]
    assert dag.gpu_seconds == pytest.approx(sum(gpu_hours) * HOUR)
    assert dag.cost == pytest.approx(sum(gpu_hours) * PRICE)              # $41.00
    assert dag.cost_per_run == pytest.approx(sum(gpu_hours) * PRICE / 3)
    assert dag.trend == pytest.approx(4 / 3 - 1)                          # +33 %: the third run is longer


def test_the_report_reads_as_a_user_sees_it(report):
    text = as_table(report)
    assert text.splitlines()[0] == ("GPU spend 2026-12-04 00:00 → 2026-12-07 00:00 UTC (3 days): "
                                    "$1,180.80 (models $590.40, idle $553.50, other $36.90)")
    ranker = next(line for line in text.splitlines() if line.startswith("ranker"))
    assert "no request data" in ranker and "$98.40" in ranker and "cpu-tier" in ranker
    lines = top_lines(report)
    assert lines[1] == ("Models by cost/day: iris-sklearn $98.40/day ($820.00 per 1k) · "
                        "ranker $98.40/day (no request data)")
    assert lines[2].startswith("Idle GPUs that could have been given back: gpu-a $289.05 (70.5 GPU-h)")


def test_the_cli_in_every_format(history, tmp_path):
    cfg = tmp_path / "agent.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump({"agent": {"history": f"sqlite:///{history}"}, "cost": CONFIG}))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "agent", "report", "cost", "-c", str(cfg),
                               "--since", "3d", "--until", "2026-12-07T00:00Z", *args],
                              capture_output=True, text=True, timeout=120)

    table = cli()
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("GPU spend 2026-12-04 00:00 → 2026-12-07 00:00 UTC")
    rows = list(csv.DictReader(io.StringIO(cli("--format", "csv").stdout)))
    iris = next(r for r in rows if r["section"] == "model" and r["name"] == "iris-sklearn")
    assert float(iris["cost_per_1k_predictions"]) == pytest.approx(820.0)
    ranker = next(r for r in rows if r["name"] == "ranker")
    assert ranker["requests_per_second"] == "" and ranker["rule"] == "cpu-tier"
    md = cli("--format", "md").stdout
    assert "| ranker |" in md and "## Pipelines" in md
    png = tmp_path / "cost.png"
    out = cli("--format", "png", "-o", str(png))
    assert out.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli("--format", "png").returncode == 2  # png needs -o
    empty = cli("--until", "2026-11-01")  # the last --until wins: a month before the recording
    assert empty.returncode == 1 and "no cost data in this period" in empty.stderr
    bad = cli("--until", "last tuesday")
    assert bad.returncode == 2 and "--until: expected an age like '1d'" in bad.stderr


async def test_the_weekly_digest_reaches_slack_through_an_outage_and_a_restart(history, tmp_path):
    """Slack's strict fake (Slack cannot run here) answers 500 when the digest falls due; the
    agent restarts; Slack recovers: one message with the top lines, its chart in the thread."""
    import shutil

    from agent.config import parse_config
    from agent.cost.digest import CostDigest

    db = tmp_path / "history.db"
    shutil.copy(history, db)
    slack = await FakeSlack().start()
    try:
        config = parse_config(yaml_text(db, slack.base_url))
        engine = make_engine(f"sqlite:///{db}")
        clock = scenario.Clock(END - 60)  # 2026-12-07 is a Monday: due at END, covering 3 days
        first = CostDigest(config.cost, config.alerting, config.history.retention, engine,
                            clock=clock)
        await first.start()
        await first.stop()  # the loop is driven by hand below: step(now)
        assert first.next_due == END
        slack.fail("500")
        await first.step(clock.t)
        assert first.status()["queued"] == []
        clock.t = END
        await first.step(clock.t)   # queued, then Slack answers 500: kept for a retry
        assert first.status()["failed_attempts"] == 1 and not slack.messages
        clock.t = END + 30            # the agent restarts while Slack is still down
        second = CostDigest(config.cost, config.alerting, config.history.retention, engine,
                            clock=clock)
        await second.start()
        await second.stop()
        assert second.next_due == END  # within catch_up: due again, but queued once (dedup key)
        await second.step(clock.t)
        slack.recover()
        clock.t = END + 600
        await second.step(clock.t)
        await second.notifier.close()
        engine.dispose()
    finally:
        await slack.stop()
    (message,) = slack.top_level()
    text = " ".join(b["text"]["text"] for b in message.blocks if b.get("type") == "section")
    assert "GPU spend 2026-12-04 00:00 → 2026-12-07 00:00 UTC (3 days): $1,180.80" in text
    assert "Right-size ranker: p95 utilisation 4 %" in text
    assert "Idle GPUs that could have been given back: gpu-a $289.05 (70.5 GPU-h)" in text
    (chart,) = slack.files
    assert chart["thread_ts"] == message.ts and chart["data"][:8] == b"\x89PNG\r\n\x1a\n"


def yaml_text(db, base_url: str) -> str:
    import yaml

    return yaml.safe_dump({
        "agent": {"history": f"sqlite:///{db}"},
        "alerting": {"slack": {"token": TOKEN, "base_url": base_url, "default_channel": "#ml-alerts"},
                     "delivery": {"retry_initial": "10s"}},
        "cost": {**CONFIG, "digest": {"receiver": "slack", "schedule": "0 0 * * mon", "period": "3d"}},
    })


def test_docs_show_this_report_as_it_prints(report):
    """docs/cost.md's example report is this one, character for character."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cost.md").read_text()
    start = doc.index("figure by figure):\n\n```\n") + len("figure by figure):\n\n```\n")
    shown = doc[start:doc.index("```", start)]
    assert shown == as_table(report), "docs/cost.md's example is stale; paste:\n" + as_table(report)
