"""SleepTree lighting backends (no rclpy): the output side of the SleepTree controller node, chosen by name.

Modules: ``base`` (the interface, :class:`LightingBackend`, and its data types :class:`Universe` and
:class:`SendResult`), ``fixtures`` (the fixture map of the trees and its DMX layout), one module per backend
(``sim``: no network; ``sacn``: E1.31 over UDP). The node builds the map with
``fixtures.load_fixtures`` or ``fixtures.generated_fixtures``, the backend with
``make_lighting_backend(name, fixture_map.universes, **params)``, and per frame sends
``backend.send(fixture_map.layout.pack(rgb))``.
"""

from __future__ import annotations

from .. import make_backend
from .base import Diagnostic, LightingBackend, SendResult, Universe

#: backend name -> (module, class), imported on demand (lumina_nodes.backends.make_backend).
BACKENDS = {
    "sim": ("lumina_nodes.backends.sleeptree.sim", "SimLighting"),
    "sacn": ("lumina_nodes.backends.sleeptree.sacn", "SacnLighting"),
}


def make_lighting_backend(name: str, universes, **params) -> LightingBackend:
    """The backend called ``name`` sending ``universes`` (sequence of :class:`Universe`), built with ``params``.

    ValueError for an unknown name, an unknown parameter, or an invalid value (each names the parameter).
    """
    return make_backend(BACKENDS, "lighting", name, universes, **params)


__all__ = ["BACKENDS", "Diagnostic", "LightingBackend", "SendResult", "Universe", "make_lighting_backend"]
