"""Test DAGs for mlwarden's Airflow check: each shows one outcome the check must report.

All are triggered by the tests through the REST API (``schedule=None``).
"""

import time
from datetime import datetime, timedelta

from _compat import DAG, task

START = datetime(2026, 1, 1)

with DAG("mlw_succeeds", schedule=None, start_date=START, catchup=False, tags=["mlwarden"]):
    @task
    def ok():
        return "fine"

    ok()

with DAG("mlw_fails", schedule=None, start_date=START, catchup=False, tags=["mlwarden"]):
    @task
    def extract():
        return 1

    @task(retries=0)
    def train(value):
        raise RuntimeError("mlwarden test: training diverged")

    train(extract())

with DAG("mlw_flaky", schedule=None, start_date=START, catchup=False, tags=["mlwarden"]):
    @task(retries=1, retry_delay=timedelta(seconds=1))
    def flaky(ti=None):
        # fails on the first try, succeeds on the retry: never a failure for the check
        if ti.try_number <= 1:
            raise RuntimeError("mlwarden test: first try fails")
        return "recovered"

    flaky()

with DAG("mlw_sleeps", schedule=None, start_date=START, catchup=False, tags=["mlwarden"]):
    @task
    def nap(dag_run=None):
        time.sleep(float((dag_run.conf or {}).get("seconds", 30)))

    nap()
