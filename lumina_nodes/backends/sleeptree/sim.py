"""The simulated lighting output: no network; it keeps the last frame sent (for tests and a city without fixtures)."""

from __future__ import annotations

import numpy as np

from .base import LightingBackend, SendResult


class SimLighting(LightingBackend):
    """Takes every frame and keeps the last one in :attr:`last_frames`."""

    name = "sim"

    def __init__(self, universes):
        super().__init__(universes)
        self.last_frames = None
        self.closed = False

    def send(self, frames: np.ndarray) -> SendResult:
        self.last_frames = self._check(frames).copy()
        self.frames_sent += 1
        return SendResult(sent=len(self.universes))

    def close(self) -> None:
        self.closed = True
