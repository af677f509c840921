"""The ``cost:`` section: errors that say what and where, and the meter inside a running agent."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from agent.app import Agent
from agent.config import parse_config
from agent.cost.prices import PriceTable, money
from agent.cost.config import PriceEntry
from agent.cost.tasks import TaskInstance, charge_task, covered
from agent.errors import ConfigError
from agent.history.store import HistoryStore
from agent.samples import make_tags
from tests.support.procs import free_port
from tests.support.targets import Target, load_fixture

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, message", [
    ("cost:\n  prices: [{gpu_model: '*H100*', price_per_hour: -1}]\n",
     "cost.prices[0].price_per_hour: input should be greater than or equal to 0"),
    ("cost:\n  prices: [{gpu_model: '*H100*', price: 4.1}]\n",
     "cost.prices[0].price: unknown key; valid keys here: gpu_model, node, price_per_hour"),
    ("cost:\n  models: [{model: ranker}]\n",
     "cost.models[0]: model 'ranker': give at least one of pod, namespace, container, process or node"),
    ("cost:\n  digest: {schedule: 'every monday'}\n",
     "cost.digest.schedule: expected a crontab line like '0 9 * * mon', found 'every monday'"),
    ("cost:\n  digest: {timezone: Mars/Olympus}\n",
     "cost.digest.timezone: unknown time zone 'Mars/Olympus'"),
    ("cost:\n  digest: {receiver: slack}\n",
     "cost.digest.receiver: 'slack' needs alerting.slack.token (a bot token: the digest uploads its "
     "chart, which a webhook cannot)"),
    ("alerting:\n  receivers: [{name: hook, type: webhook, url: 'http://127.0.0.1:9/x'}]\n"
     "cost:\n  digest: {receiver: hook}\n",
     "cost.digest.receiver: 'hook' is a webhook receiver; the digest needs a Slack bot receiver"),
    ("cost:\n  digest: {receiver: nobody}\n",
     "cost.digest.receiver: 'nobody' is not a receiver in alerting: (have: console)"),
])
def test_bad_cost_config_names_the_key_and_what_to_do(text, message):
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert message in str(err.value)


def test_prices_first_match_wins_and_missing_is_unknown():
    table = PriceTable([PriceEntry(gpu_model="*H100*", node="spot-*", price_per_hour=1.5, capacity="spot"),
                        PriceEntry(gpu_model="*h100*", price_per_hour=4.1)])
    assert table.price("NVIDIA H100 80GB HBM3", "spot-7") == 1.5
    assert table.price("NVIDIA H100 80GB HBM3", "gpu-a") == 4.1   # globs are case-insensitive
    assert table.price("NVIDIA L4", "gpu-a") is None
    assert (money(1234.5, "USD"), money(None, "USD"), money(3, "CHF")) == ("$1,234.50", "unknown", "3.00 CHF")


def test_covered_counts_only_between_close_readings():
    points = [(0, 1), (10, 1), (20, 1), (100, 1), (110, 0), (120, 1)]
    # [5, 20] between 0-10-20; 20-100 is a gap (> 30); 100-120 is one gap of 20 (the 0 is a lost GPU)
    assert covered(points, 5, 115, max_gap=30) == 15 + 15
    assert covered([(0, 1)], 0, 100, max_gap=30) == 0   # one reading says nothing about a window


class Reader:
    """An empty history: a task whose host no GPU reading names."""

    def read_series(self, metric, since, until=None, tags=None):
        return {}


def test_a_task_on_a_host_without_gpus_costs_nothing_and_says_so():
    ti = TaskInstance("etl", "extract", "r1", "1", "cpu-worker-3", 0.0, 600.0)
    charge = charge_task(Reader(), ti, PriceTable([]), 300)
    assert (charge.gpu_seconds, charge.cost, charge.gpus, charge.matched_by) == (0.0, 0.0, [], "")


async def test_the_agent_meters_predictions_into_history_and_shows_the_meter_in_status(tmp_path):
    text = load_fixture("mlserver", "metrics.txt")
    scrapes = []

    async def metrics(request):
        scrapes.append(1)
        value = 1.0 + 4 * len(scrapes)  # +4 predictions per scrape
        body = text.replace('model_infer_request_success_total{model="iris-sklearn",version="v1"} 1.0',
                            f'model_infer_request_success_total{{model="iris-sklearn",version="v1"}} {value}')
        return web.Response(text=body, content_type="text/plain")

    async with Target({("GET", "/metrics"): metrics}) as t:
        db = tmp_path / "agent.db"
        config = parse_config(f"""
agent: {{history: "sqlite:///{db}", listen: "127.0.0.1:{free_port()}", self_check: false}}
history: {{batch_interval: 100ms}}
checks:
  - {{type: openmetrics, name: mlserver, url: "{t.url}/metrics", interval: 200ms,
     metrics: [{{name: model_infer_request_success_total}}]}}
cost: {{digest: {{receiver: console, schedule: "0 9 * * mon"}}}}
""")
        agent = Agent(config)
        await agent.start()
        try:
            assert agent.cost in agent.pipeline.sinks
            for _ in range(100):
                await asyncio.sleep(0.1)
                if len(scrapes) >= 4:
                    break
            await asyncio.sleep(0.3)
            status = agent.status()["components"]["cost"]
            assert status["results"] >= 3 and status["errors"] == 0
            digest = agent.status()["components"]["cost-digest"]
            assert digest["receiver"] == "cost-digest:console" and digest["next_due"] > 0
        finally:
            await agent.stop()
    store = HistoryStore(f"sqlite:///{db}")
    series = store.reader.read_series("mlwarden.cost.model.predictions", 0)
    (tags, points), = series.items()
    assert dict(tags)["model"] == "iris-sklearn" and dict(tags)["check"] == "cost:mlserver"
    assert points and all(v == 4 for _, v in points)  # every scrape after the baseline: +4
    store.stop_blocking()
    assert make_tags({}) == ()


def test_the_docs_example_config_is_valid_as_written():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cost.md").read_text()
    start = doc.index("```yaml\n") + len("```yaml\n")
    text = doc[start:doc.index("```", start)]
    config = parse_config(text, env={"SLACK_BOT_TOKEN": "xoxb-1", "AIRFLOW_USER": "u", "AIRFLOW_PASSWORD": "p"})
    assert config.cost is not None and config.cost.digest is not None
    assert [p.label for p in config.cost.prices] == ["H100", "H100", "NVIDIA A10G", "NVIDIA L4"]
    assert config.check("prod-airflow").task_instances  # type: ignore[attr-defined]


def test_percentile_of_counted_values_is_numpys_linear_interpolation():
    from agent.cost.report import percentile

    values = [0.3] * 216 + [0.4] * 216 + [0.9] * 3
    counted = {0.3: 216, 0.4: 216, 0.9: 3}
    ordered = sorted(values)
    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        pos = q * (len(ordered) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        assert percentile(counted, q) == pytest.approx(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))
    assert percentile({}, 0.5) is None and percentile({7.0: 1}, 0.95) == 7.0


async def test_history_that_cannot_be_read_is_counted_and_the_meter_goes_on(caplog):
    from agent.cost.config import CostConfig
    from agent.cost.meter import CostMeter
    from agent.samples import CheckResult, Sample, Status

    class Broken:
        def read_series(self, metric, since, until=None, tags=None):
            raise OSError("disk I/O error")

    got = []
    meter = CostMeter(CostConfig(), got.append, reader=Broken())
    ti = Sample("mlwarden.airflow.task_instance.duration", 60.0, make_tags({
        "dag_id": "d", "task_id": "t", "run_id": "r", "hostname": "gpu-a", "start": "0", "end": "60"}), 100.0)
    meter.consume(CheckResult("airflow", "airflow", Status.OK, started=100.0, samples=[ti]))
    await asyncio.gather(*meter._pending)
    assert meter.errors == 1 and got == []
    assert meter.last_error == "charging 1 task instance(s) of airflow: disk I/O error"
    assert "cost meter: charging 1 task instance(s) of airflow: disk I/O error" in caplog.text


def test_a_reload_takes_new_prices_and_keeps_the_gpu_clocks():
    from agent.cost.config import CostConfig
    from agent.cost.meter import CostMeter

    meter = CostMeter(CostConfig(), lambda r: None)
    meter._last_seen["GPU-0"] = 5.0
    meter.matcher.learn("iris-0", "iris")
    meter.reconfigure(CostConfig(prices=[{"gpu_model": "*", "price_per_hour": 1.0}]))
    assert meter.prices.price("NVIDIA L4", "n") == 1.0
    assert meter._last_seen == {"GPU-0": 5.0} and meter.matcher.learnt == {"iris-0": "iris"}
