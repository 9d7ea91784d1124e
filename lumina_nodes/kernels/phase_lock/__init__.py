"""The phase-locking kernel of the synchronizer (plain numpy; no rclpy).

``config`` (:class:`SyncConfig`, with a :class:`Setting` per field), ``results`` (what ingest and step
return), ``channels`` (:func:`assign_channels`), ``clusters`` (:func:`gaussian_partition`), ``kernel``
(:class:`PhaseLockKernel`).
"""

from .channels import assign_channels
from .clusters import Partition, gaussian_partition
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
    "Partition",
    "PhaseLockKernel",
    "Setting",
    "SyncConfig",
    "TickResult",
    "assign_channels",
    "gaussian_partition",
]
