"""The phase-locking kernel of the synchronizer (plain numpy; no rclpy).

``config`` (:class:`SyncConfig`), ``results`` (what ingest and step
return), ``channels`` (:func:`assign_channels`), ``kernel`` (:class:`PhaseLockKernel`).
"""

from .channels import assign_channels
from .config import SyncConfig
from .kernel import PhaseLockKernel
from .results import (
    MESSAGE_REASONS,
    REJECT_REASONS,
    ClusterRecord,
    ClusterTable,
    DriverTable,
    IngestReport,
    TickResult,
)

__all__ = [
    "MESSAGE_REASONS",
    "REJECT_REASONS",
    "ClusterRecord",
    "ClusterTable",
    "DriverTable",
    "IngestReport",
    "PhaseLockKernel",
    "SyncConfig",
    "TickResult",
    "assign_channels",
]
