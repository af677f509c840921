"""A round's notifications and a store that fails part way through writing them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.history.tables import outbox
from agent.notify.console import ConsoleNotifier
from tests.alerting.helpers import Clock, fire, store

pytestmark = pytest.mark.unit


def queued_alerts(engine) -> list[str]:
    with engine.connect() as conn:
        payloads = conn.execute(select(outbox.c.payload).order_by(outbox.c.id)).scalars().all()
    return [a["labels"]["alertname"] for p in payloads for a in json.loads(p)["alerts"]]


def test_a_store_fault_on_a_later_notification_keeps_the_ones_queued_before_it(tmp_path):
    """Four groups are due in one round and the third notification cannot be written (the
    database fails inside its INSERT): the two before it stay queued and their groups say
    they were notified, as when each notification was its own transaction; the round fails;
    the next round queues the third and the fourth, and nothing twice."""
    engine = store(tmp_path)
    failing = {"on": True}

    def fault(payload: str) -> int:  # a SQLite function the trigger below calls
        if failing["on"] and '"Alert2"' in payload:
            raise OSError("disk I/O error")
        return 0

    event.listen(engine, "connect", lambda dbapi, _record: dbapi.create_function("fault", 1, fault))
    engine.dispose()  # every connection from now on has the function
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TRIGGER outbox_fault BEFORE INSERT ON outbox "
                             "BEGIN SELECT fault(NEW.payload); END")
    clock = Clock()
    cfg = AlertingConfig.model_validate({"group_by": ["alertname"], "group_wait": 0,
                                         "group_interval": 300, "repeat_interval": 3600})
    d = Dispatcher(cfg, engine, clock=clock,
                   notifiers={"console": ConsoleNotifier("console", stream=None)})
    d.alerts_changed([fire(f"Alert{i}", {"model": f"m{i}"}, clock.now) for i in range(4)],
                     clock.now)

    with pytest.raises(OperationalError):
        d.flush(clock.now)
    assert queued_alerts(engine) == ["Alert0", "Alert1"]
    notified = {g.labels["alertname"]: g.incident is not None for g in d.groups.values()}
    assert notified == {"Alert0": True, "Alert1": True, "Alert2": False, "Alert3": False}

    failing["on"] = False
    assert d.flush(clock.advance(1)) == 2
    assert queued_alerts(engine) == ["Alert0", "Alert1", "Alert2", "Alert3"]
    assert d.flush(clock.advance(1)) == 0
    engine.dispose()
