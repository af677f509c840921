"""The agent's status page: one server-rendered HTML page at ``/`` on the agent's listener.

For the on-call engineer who opens the node's agent in a browser (or through `kubectl
port-forward`): every check instance with a sparkline of its key metric, live alerts with
their silences, a form to add and expire silences (the store `mlwarden silence` uses), the
agent's own health, and a chart of any stored series. It works offline: HTML from Jinja2
templates (autoescaped, so data is always text), one stylesheet and one small script of
our own, no CDN, no build step.

- ``access``: who may see the page and which form posts to believe.
- ``view``: what the page shows, as plain data (the only module that reads the agent).
- ``sparkline``: points to SVG coordinates.
- ``forms``: the silence form.
- ``routes``: the aiohttp handlers, every one behind the access guard.
"""

from agent.web.routes import StatusPage

__all__ = ["StatusPage"]
