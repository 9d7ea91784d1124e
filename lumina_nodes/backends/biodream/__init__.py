"""Bio-Dream backends (no rclpy): the device side of a Bio-Dream sensor node, chosen by name.

Modules: ``base`` (the interface, :class:`BioDreamBackend`, its data type :class:`EegChunk`, and the optional
ground-truth capability :class:`GroundTruth`), ``clock`` (the sample grid on the caller's clock, and the
clock-jump rule every backend shares), ``params`` (the parameter checks every backend shares), ``stages``
(EDF+ sleep-stage annotations as a hypnogram), one module per backend (``sim``, ``brainflow``, ``edf``).
"""

from __future__ import annotations

import importlib
import inspect

from .base import BioDreamBackend, Diagnostic, EegChunk, GroundTruth

#: backend name -> (module, class). Imported on demand: a backend's libraries load only when it is chosen.
BACKENDS = {
    "sim": ("lumina_nodes.backends.biodream.sim", "SimBioDreamBackend"),
    "brainflow": ("lumina_nodes.backends.biodream.brainflow", "BrainFlowBioDreamBackend"),
    "edf": ("lumina_nodes.backends.biodream.edf", "EdfBioDreamBackend"),
}


def backend_class(name: str) -> type[BioDreamBackend]:
    """The class of the backend called ``name`` (one of :data:`BACKENDS`); ValueError for an unknown name."""
    key = str(name).strip().lower()
    if key not in BACKENDS:
        raise ValueError(f"unknown Bio-Dream backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[key]
    return getattr(importlib.import_module(module), cls)


def make_biodream_backend(name: str, **params) -> BioDreamBackend:
    """The backend called ``name`` (one of :data:`BACKENDS`), constructed with ``params``.

    ValueError for an unknown name, an unknown parameter, or an invalid value (each names the parameter).
    """
    cls = backend_class(name)
    known = inspect.signature(cls).parameters
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)}: not a parameter of the {cls.name} backend (its parameters: {', '.join(known)})"
        )
    return cls(**params)


__all__ = [
    "BACKENDS",
    "BioDreamBackend",
    "Diagnostic",
    "EegChunk",
    "GroundTruth",
    "backend_class",
    "make_biodream_backend",
]
