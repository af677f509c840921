"""Run the real ``mlwarden`` CLI with the test check types and a local-only resolver.

DNS failure is injected at the resolver layer, not on the network: glibc does not treat the
reserved ``.invalid`` TLD specially and would ask the configured nameserver, which tests may
never contact. aiohttp's default resolver here is ``ThreadedResolver`` (aiodns is not
installed), which calls ``socket.getaddrinfo``; a name under ``.invalid`` fails there with
the same ``gaierror(EAI_NONAME)`` a real NXDOMAIN gives. Every other name resolves as usual.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

_real_getaddrinfo = socket.getaddrinfo


def _local_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    name = host.decode() if isinstance(host, bytes) else str(host or "")
    if name.rstrip(".").endswith(".invalid"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return _real_getaddrinfo(host, *args, **kwargs)


def install_resolver() -> None:
    import aiohttp.resolver

    if aiohttp.resolver.DefaultResolver is not aiohttp.resolver.ThreadedResolver:
        # aiodns would query the nameserver itself: refuse rather than send DNS traffic
        raise SystemExit("tests/faults/runner.py: aiohttp's default resolver is not "
                         "ThreadedResolver (is aiodns installed?); the DNS fault cannot be local")
    socket.getaddrinfo = _local_getaddrinfo  # type: ignore[assignment]


def register_fault_checks() -> None:
    """``test_down_at``: OK until the wall-clock time ``down_at``, CRITICAL from then on, so
    the alerts of one test fire one after another while the agent is being killed."""
    import time

    from agent.check import AgentCheck, InstanceConfig
    from agent.plugins import register_check_type
    from agent.samples import Status

    class DownAtConfig(InstanceConfig):
        down_at: float

    class DownAtCheck(AgentCheck):
        type_name = "test_down_at"
        Config = DownAtConfig

        async def check(self) -> None:
            if time.time() >= self.config.down_at:  # type: ignore[attr-defined]
                self.service_check(Status.CRITICAL, f"{self.name} went down")
            else:
                self.service_check(Status.OK, "up")

    register_check_type("test_down_at", DownAtCheck)


if __name__ == "__main__":
    install_resolver()
    from tests.support.testchecks import register_all

    register_all()
    register_fault_checks()
    from agent.cli import main

    sys.exit(main(sys.argv[1:]))
