"""Jewel backends (no rclpy): the device side of a jewel driver, chosen by name.

Modules: ``base`` (the interface, :class:`JewelBackend`, and :class:`JewelSnapshot`), ``commands`` (the command
validation every backend shares), ``drills`` (the optional drill capability), one module per backend (``sim``,
``serial``, ``replay``) and ``protocol`` (the wire codec of docs/jewel_protocol.md, beside the backend that speaks it).
"""

from __future__ import annotations

from .. import make_backend
from .base import Diagnostic, JewelBackend, JewelSnapshot
from .commands import REJECT_REASONS, CommandResult, validate_command
from .drills import Drill, DrillTarget

#: backend name -> (module, class), imported on demand (lumina_nodes.backends.make_backend).
BACKENDS = {
    "sim": ("lumina_nodes.backends.jewel.sim", "SimJewelBackend"),
    "serial": ("lumina_nodes.backends.jewel.serial", "SerialJewelBackend"),
    "replay": ("lumina_nodes.backends.jewel.replay", "ReplayJewelBackend"),
}


def make_jewel_backend(name: str, **params) -> JewelBackend:
    """The backend called ``name`` (one of :data:`BACKENDS`), constructed with ``params``.

    ValueError for an unknown name or invalid parameters (the backend's constructor checks its own).
    """
    return make_backend(BACKENDS, "jewel", name, **params)


__all__ = [
    "BACKENDS",
    "REJECT_REASONS",
    "CommandResult",
    "Diagnostic",
    "Drill",
    "DrillTarget",
    "JewelBackend",
    "JewelSnapshot",
    "make_jewel_backend",
    "validate_command",
]
