"""Silences, group state and the outbox on PostgreSQL (the fleet's shared store), across a restart."""

from __future__ import annotations

import io
import uuid

import pytest
from sqlalchemy import text

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.alerting.matchers import parse_label_matcher
from agent.alerting.silences import SilenceStore
from agent.history.db import create_schema, make_engine
from agent.notify.console import ConsoleNotifier
from tests.alerting.helpers import Clock, fire, resolve

pytestmark = pytest.mark.integration

URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_engine():
    schema = f"issue8_{uuid.uuid4().hex[:10]}"
    base = make_engine(URL)
    try:
        with base.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {URL} is needed for this test: {exc}", pytrace=False)
    engine = base.execution_options(schema_translate_map={None: schema})
    create_schema(engine)
    yield engine
    with base.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    base.dispose()


async def test_groups_and_silences_survive_restart_on_postgresql(pg_engine):
    out = io.StringIO()
    clock = Clock()
    cfg = AlertingConfig.model_validate(
        {"group_wait": 0, "group_interval": 5, "group_by": ["alertname", "node"]}
    )

    def dispatcher() -> Dispatcher:
        return Dispatcher(
            cfg, pg_engine, clock=clock, notifiers={"console": ConsoleNotifier(stream=out)}
        )

    SilenceStore(pg_engine).add(
        [parse_label_matcher("node=gpu-9")], starts_at=clock.now, ends_at=clock.now + 600, now=clock.now
    )
    d = dispatcher()
    ev = fire("GpuIdle", {"node": "gpu-3"}, clock.now)
    huge = fire("GpuIdle", {"node": "n" * 10_000}, clock.now)  # group key far over any column size
    d.alerts_changed([ev, huge, fire("GpuIdle", {"node": "gpu-9"}, clock.now)], clock.now)
    await d.tick(clock.now)
    await d.stop()
    assert out.getvalue().count("[FIRING:1] GpuIdle") == 2 and "gpu-9" not in out.getvalue()

    d = dispatcher()  # restarted: the group and its incident come back from the store
    d.alerts_changed([resolve(ev, clock.advance(60))], clock.now)
    await d.tick(clock.advance(5))
    assert out.getvalue().count("[RESOLVED] GpuIdle") == 1
    assert out.getvalue().count("[FIRING:1] GpuIdle") == 2
    assert len(d.groups) == 2  # the huge one and the silenced one came back too
    await d.stop()
