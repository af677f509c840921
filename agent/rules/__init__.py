"""Alert rules: thresholds over windows of recent samples, held steady and kept durable.

``config`` holds the rule models, ``matchers`` the tag selectors (over
:mod:`agent.tagmatch`), ``aggregations`` the window reducers, ``window`` the per-series ring
buffers, ``lifecycle`` one alert's state machine, ``state`` its durable rows (the ``alerts``
and ``alert_transitions`` tables), ``evaluator`` the bookkeeping that ties them together,
``engine`` the component (pipeline sink, timer, persistence, sinks) and ``replay`` the
`rules test` driver.
"""
