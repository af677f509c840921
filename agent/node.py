"""Where this agent runs: the node name its local targets are labelled with.

A GPU fault explains a model's errors only when both name the same node, so the agent
labels what it knows runs beside it (its GPUs; a model server it probes over loopback) with
one node name, found without any config: ``agent.node`` when set, else ``$NODE_NAME`` (the
Kubernetes downward API: ``fieldRef: spec.nodeName``, as the shipped manifests set it), else
the host name, which outside Kubernetes is the machine's name. Other labels of "where"
(a GPU's UUID and index, the pod using it, an Airflow task's host) come from the targets
themselves.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping

__all__ = ["is_loopback", "this_node"]

NODE_ENV = "NODE_NAME"


def this_node(configured: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The node this agent runs on: ``configured``, else ``$NODE_NAME``, else the host name."""
    environ = os.environ if env is None else env
    return configured or environ.get(NODE_ENV) or socket.gethostname()


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (from a URL) is this machine: ``localhost`` or a loopback address.

    A target reached over loopback runs on the agent's node (a sidecar's model server);
    any other host may run anywhere, so only the user can say where (an instance tag).
    """
    if not host:
        return False
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
