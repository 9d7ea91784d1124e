"""The interface every jewel backend implements (no rclpy).

The jewel driver node wraps one backend and calls, from its own thread:

* ``start()`` once, ``close()`` at shutdown;
* ``poll(now) -> JewelSnapshot`` at its publish rate (``now``: the node clock, seconds, sim time allowed);
* ``apply_command(ids, frequency_offset, intensity, now) -> CommandResult`` per command batch (every backend
  validates with :func:`lumina_nodes.backends.jewel.commands.validate_command`);
* ``diagnostics() -> [(level, name, message, {key: value})]`` for /diagnostics (``DiagnosticLevel`` levels).

Optional capabilities are separate interfaces a backend may also implement, so the base stays small: a backend
that can play disruption drills is a :class:`lumina_nodes.backends.jewel.drills.DrillTarget` too.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from .commands import CommandResult

#: One /diagnostics status of a backend: (DiagnosticLevel, name, message, {key: value}).
Diagnostic = tuple[int, str, str, dict[str, str]]


@dataclass
class JewelSnapshot:
    """Struct-of-arrays state of a backend's jewels at ``stamp`` (the caller's ``now``); all arrays length K."""

    stamp: float
    ids: np.ndarray  # uint32
    phase: np.ndarray  # float64 rad, [-pi, pi), measured at stamp - sample_age
    frequency: np.ndarray  # float64 Hz
    frequency_offset: np.ndarray  # float64 Hz
    sample_age: np.ndarray  # float64 s, >= 0
    intensity: np.ndarray  # float32 0..1
    status: np.ndarray  # uint8 JewelStatus bits

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls, stamp: float) -> JewelSnapshot:
        return cls(
            stamp,
            np.zeros(0, np.uint32),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, np.float32),
            np.zeros(0, np.uint8),
        )


class JewelBackend(abc.ABC):
    """Interface of a jewel backend. Methods must not raise on bad input; they report it."""

    #: The backend's name, as the driver's ``backend`` parameter spells it.
    name = "abstract"

    @abc.abstractmethod
    def start(self) -> None:
        """Open the device link (or the simulation); called once before the first poll."""

    @abc.abstractmethod
    def poll(self, now: float) -> JewelSnapshot:
        """State of every jewel at ``now`` (s, node clock)."""

    @abc.abstractmethod
    def apply_command(self, ids, frequency_offset, intensity, now: float) -> CommandResult:
        """Apply one command batch (arrays of equal length K: uint32 ids, offsets in Hz, intensities 0..1)."""

    def diagnostics(self) -> list[Diagnostic]:
        return []

    def close(self) -> None:  # noqa: B027 (optional: a backend without a link has nothing to release)
        """Release the device link; called once at shutdown."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
