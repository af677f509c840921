"""mlwarden: a monitoring and alerting agent for ML pipelines.

The public names a check plugin or an embedding program needs; everything else is an
implementation detail of its module.
"""

from agent.check import AgentCheck, CheckContext, InstanceConfig
from agent.errors import (
    AgentError,
    CheckError,
    CheckTimeout,
    ConfigError,
    ExportError,
    NotifyError,
    StoreError,
    UnknownCheckError,
)
from agent.samples import CheckResult, Kind, Sample, Status

__version__ = "0.1.0"

__all__ = [
    "AgentCheck",
    "AgentError",
    "CheckContext",
    "CheckError",
    "CheckResult",
    "CheckTimeout",
    "ConfigError",
    "ExportError",
    "InstanceConfig",
    "Kind",
    "NotifyError",
    "Sample",
    "Status",
    "StoreError",
    "UnknownCheckError",
    "__version__",
]
