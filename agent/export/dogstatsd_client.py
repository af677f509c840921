"""datadog's DogStatsd client, imported without the rest of the ``datadog`` package.

``datadog/__init__.py`` imports ``datadog.api`` (the REST client: requests, urllib3,
charset_normalizer, idna) and ``datadog.threadstats`` before anything else, so
``from datadog.dogstatsd.base import DogStatsd`` costs a DogStatsD-only agent ~4-5 MiB of
RSS for good, for an HTTP stack it never uses. ``DogStatsd``'s own modules
(``datadog.dogstatsd``, ``datadog.util.compat``/``format``, ``datadog.version``) need
none of it.

So the package is registered first with its ``__init__`` not yet run: the submodules
import as usual, and the first attribute asked of the package itself
(``from datadog import initialize``, ``datadog.api``: the API exporter, the dashboards
push) runs ``__init__`` then, in that same module object, under a lock. Nothing changes
for a process where ``datadog`` was imported already. Import what the exporter needs from
``datadog`` through this module (``DogStatsd``, ``normalize_tags``): an import of a
``datadog`` submodule placed before it would run ``__init__`` first.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["DogStatsd", "deferred_package", "normalize_tags"]


def deferred_package(name: str) -> ModuleType | None:
    """Register package ``name`` in ``sys.modules`` with its ``__init__`` run on first use.

    Returns the module (the one already imported, if any), or None where it is not
    installed or not a plain package (then the caller's import says why).
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return None
    package = importlib.util.module_from_spec(spec)
    lock = threading.RLock()
    ran = [False]

    def __getattr__(attr: str) -> Any:  # PEP 562: only names the module lacks get here
        with lock:
            if not ran[0]:
                ran[0] = True  # a lookup from inside __init__ itself falls through below
                spec.loader.exec_module(package)  # type: ignore[union-attr]
        try:
            return package.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = package
    return package


deferred_package("datadog")
from datadog.dogstatsd.base import DogStatsd  # noqa: E402 - after the package is registered
from datadog.util.format import normalize_tags  # noqa: E402

# what datadog/__init__ would have done for this logger
logging.getLogger("datadog.dogstatsd").addHandler(logging.NullHandler())
