"""SleepTree lighting backends (no rclpy): the output side of the SleepTree controller node, chosen by name.

Modules: ``base`` (the interface, :class:`LightingBackend`, and its data types :class:`Universe` and
:class:`SendResult`), ``fixtures`` (the fixture map of the trees and its DMX layout), one module per backend
(``sim``: no network; ``sacn``: E1.31 over UDP).
"""

from __future__ import annotations

import importlib
import inspect

from .base import LightingBackend, SendResult, Universe

#: backend name -> (module, class). Imported on demand: a backend's libraries load only when it is chosen.
BACKENDS = {
    "sim": ("lumina_nodes.backends.sleeptree.sim", "SimLighting"),
    "sacn": ("lumina_nodes.backends.sleeptree.sacn", "SacnLighting"),
}


def backend_class(name: str) -> type[LightingBackend]:
    """The class of the backend called ``name`` (one of :data:`BACKENDS`); ValueError for an unknown name."""
    key = str(name).strip().lower()
    if key not in BACKENDS:
        raise ValueError(f"unknown lighting backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[key]
    return getattr(importlib.import_module(module), cls)


def make_lighting_backend(name: str, universes, **params) -> LightingBackend:
    """The backend called ``name`` sending ``universes`` (sequence of :class:`Universe`), built with ``params``.

    ValueError for an unknown name, an unknown parameter, or an invalid value (each names the parameter).
    """
    cls = backend_class(name)
    known = set(inspect.signature(cls).parameters) - {"universes"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)}: not a parameter of the {cls.name} backend (its parameters: "
            f"{', '.join(sorted(known)) or 'none'})"
        )
    return cls(universes, **params)


__all__ = ["BACKENDS", "LightingBackend", "SendResult", "Universe", "backend_class", "make_lighting_backend"]
