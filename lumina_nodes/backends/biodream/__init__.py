"""Bio-Dream backends (no rclpy): the device side of a Bio-Dream sensor node, chosen by name.

Modules: ``base`` (the interface, :class:`BioDreamBackend`, its data type :class:`EegChunk`, and the optional
ground-truth capability :class:`GroundTruth`), ``clock`` (the sample grid on the caller's clock, and the
clock-jump rule every backend shares), ``params`` (the parameter checks every backend shares), ``stages``
(EDF+ sleep-stage annotations as a hypnogram), one module per backend (``sim``, ``brainflow``, ``edf``).
"""

from __future__ import annotations

from .. import backend_class as _backend_class
from .. import make_backend
from .base import BioDreamBackend, Diagnostic, EegChunk, GroundTruth

#: backend name -> (module, class), imported on demand (lumina_nodes.backends.make_backend).
BACKENDS = {
    "sim": ("lumina_nodes.backends.biodream.sim", "SimBioDreamBackend"),
    "brainflow": ("lumina_nodes.backends.biodream.brainflow", "BrainFlowBioDreamBackend"),
    "edf": ("lumina_nodes.backends.biodream.edf", "EdfBioDreamBackend"),
}


def backend_class(name: str) -> type[BioDreamBackend]:
    """The class of the backend called ``name`` (one of :data:`BACKENDS`); ValueError for an unknown name."""
    return _backend_class(BACKENDS, "Bio-Dream", name)


def make_biodream_backend(name: str, **params) -> BioDreamBackend:
    """The backend called ``name`` (one of :data:`BACKENDS`), constructed with ``params``.

    ValueError for an unknown name, an unknown parameter, or an invalid value (each names the parameter).
    """
    return make_backend(BACKENDS, "Bio-Dream", name, **params)


__all__ = [
    "BACKENDS",
    "BioDreamBackend",
    "Diagnostic",
    "EegChunk",
    "GroundTruth",
    "backend_class",
    "make_biodream_backend",
]
