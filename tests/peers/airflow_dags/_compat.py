"""The same test DAGs on Airflow 2.10 and 3.x (whose authoring API moved to airflow.sdk)."""

try:  # Airflow 3
    from airflow.sdk import DAG, task  # noqa: F401
except ImportError:  # Airflow 2
    from airflow import DAG  # noqa: F401
    from airflow.decorators import task  # noqa: F401
