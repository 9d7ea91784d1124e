"""The phase-locking kernel of the synchronizer (plain numpy; no rclpy).

``config`` (:class:`SyncConfig`, with a :class:`Setting` per field), ``results`` (what ingest and step
return), ``channels`` (:func:`assign_channels`), ``kernel`` (:class:`PhaseLockKernel`).
"""

from .channels import assign_channels
from .config import Setting, SyncConfig
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
    "Setting",
    "SyncConfig",
    "TickResult",
    "assign_channels",
]
