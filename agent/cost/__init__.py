"""What the GPUs cost: prices, attribution of GPU time to models and pipeline runs, the
cost report with its right-sizing rules, and the weekly digest.

Data flows one way. Checks report GPUs, request counters and Airflow task instances as they
always do; :mod:`agent.cost.meter` is a pipeline sink that turns those samples into the
``mlwarden.cost.*`` metrics (declared in the catalog) and hands them back to the pipeline,
so they reach the history store and the exporters like any check's. The report
(:mod:`agent.cost.report`) reads only those metrics from history. See docs/cost.md.
"""
