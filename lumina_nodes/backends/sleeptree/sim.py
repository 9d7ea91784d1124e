"""The simulated lighting output: no network at all; it keeps the last frame sent (for tests and a city without
fixtures)."""

from __future__ import annotations

import numpy as np

from .base import LightingBackend, SendResult


class SimLighting(LightingBackend):
    """Takes every frame and keeps a copy of the last one in :attr:`last_frames` ((universes, 512) uint8, None
    before the first); :attr:`frames` counts the frames taken."""

    name = "sim"

    def __init__(self, universes):
        super().__init__(universes)
        self.last_frames: np.ndarray | None = None
        self.frames = 0

    def send(self, frames: np.ndarray) -> SendResult:
        if self.closed:
            return self.refuse("closed", count=False)
        problem = self.frame_problem(frames)
        if problem:
            return self.refuse(problem)
        self.last_frames = frames.copy()
        self.frames += 1
        self.frames_sent += 1
        self.failing[:] = False
        return SendResult(sent=len(self.universes))

    def close(self) -> None:
        self.closed = True
