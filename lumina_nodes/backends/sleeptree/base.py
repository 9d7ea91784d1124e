"""The interface every SleepTree lighting backend implements, and its data types (no rclpy)."""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

from ...constants import DiagnosticLevel

#: DMX slots per universe.
SLOTS = 512


@dataclasses.dataclass(frozen=True)
class Universe:
    """One DMX universe of the output: its number (1..63999) and the IPv4 address it is sent to."""

    number: int
    destination: str = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class SendResult:
    """What one :meth:`LightingBackend.send` did: ``failed_rows`` are the rows (universes) that could not be sent,
    ``errors`` why."""

    sent: int
    failed_rows: tuple[int, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def failed(self) -> int:
        return len(self.failed_rows)


class LightingBackend(abc.ABC):
    """Sends one DMX frame of every universe per call.

    A backend never raises on a failed send: it counts the failure, says why in :meth:`diagnostics` and in the
    :class:`SendResult`, and sends the next frame as usual.
    """

    #: backend name, as in :data:`lumina_nodes.backends.sleeptree.BACKENDS`
    name = ""

    def __init__(self, universes):
        self.universes = tuple(universes)
        if not self.universes:
            raise ValueError("universes: at least one universe is needed")
        numbers = [u.number for u in self.universes]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"universes: each universe once, got {numbers}")
        self.frames_sent = np.zeros(len(self.universes), np.int64)
        self.frames_failed = np.zeros(len(self.universes), np.int64)
        self.last_error = [""] * len(self.universes)
        self.failing = np.zeros(len(self.universes), bool)  # the last send of the universe failed

    @abc.abstractmethod
    def send(self, frames: np.ndarray) -> SendResult:
        """Send ``frames`` (len(universes), 512) uint8: row i is slots 1..512 of ``universes[i]``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop sending (releasing what the backend holds); idempotent."""

    def _check(self, frames) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.shape != (len(self.universes), SLOTS) or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8 of shape ({len(self.universes)}, {SLOTS}), got {frames.dtype} {frames.shape}"
            )
        return frames

    def diagnostics(self) -> list:
        """One (level, name, message, values) per universe: ERROR while its sends fail."""
        statuses = []
        for row, universe in enumerate(self.universes):
            failing = bool(self.failing[row])
            statuses.append(
                (
                    DiagnosticLevel.ERROR if failing else DiagnosticLevel.OK,
                    f"universe {universe.number}",
                    f"sending fails: {self.last_error[row]}" if failing else "sending",
                    {
                        "backend": self.name,
                        "destination": universe.destination,
                        "frames_sent": int(self.frames_sent[row]),
                        "frames_failed": int(self.frames_failed[row]),
                        "last_error": self.last_error[row],
                    },
                )
            )
        return statuses
