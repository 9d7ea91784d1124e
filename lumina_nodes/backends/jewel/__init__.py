"""Jewel backends (no rclpy): the device side of a jewel driver, chosen by name.

Modules: ``base`` (the interface, :class:`JewelBackend`, and :class:`JewelSnapshot`), ``commands`` (the command
validation every backend shares), ``drills`` (the optional drill capability), one module per backend (``sim``,
``serial``) and ``protocol`` (the wire codec of docs/jewel_protocol.md, beside the backend that speaks it).
"""

from __future__ import annotations

import importlib

from .base import Diagnostic, JewelBackend, JewelSnapshot
from .commands import REJECT_REASONS, CommandResult, validate_command
from .drills import Drill, DrillTarget

#: backend name -> (module, class). Imported on demand: a backend's libraries load only when it is chosen.
BACKENDS = {
    "sim": ("lumina_nodes.backends.jewel.sim", "SimJewelBackend"),
    "serial": ("lumina_nodes.backends.jewel.serial", "SerialJewelBackend"),
}


def make_jewel_backend(name: str, **params) -> JewelBackend:
    """The backend called ``name`` (one of :data:`BACKENDS`), constructed with ``params``.

    ValueError for an unknown name or invalid parameters (the backend's constructor checks its own).
    """
    key = str(name).strip().lower()
    if key not in BACKENDS:
        raise ValueError(f"unknown jewel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[key]
    return getattr(importlib.import_module(module), cls)(**params)


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
