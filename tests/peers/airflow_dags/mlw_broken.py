"""A DAG file that fails to import, on purpose: the check must report it with this file name."""

from airflow.mlwarden_module_that_does_not_exist import Nothing  # noqa: F401
