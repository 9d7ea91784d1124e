"""Sleep-stage annotations of EDF+ recordings as a hypnogram (no rclpy).

Public polysomnography sets (Sleep-EDF and others) score each epoch with an EDF+ annotation "Sleep stage W",
"Sleep stage 1" .. "Sleep stage 4", "Sleep stage R" (R&K) or "Sleep stage N1" .. "Sleep stage N3" (AASM);
"Sleep stage ?" (not scored) and "Movement time" are UNKNOWN. R&K stages 3 and 4 together are AASM N3. Other
annotations (lights off, arousals, ...) are not stages and are ignored.
"""

from __future__ import annotations

import numpy as np

from ...constants import SleepStage

#: Stage annotation text (lower case, spaces collapsed) -> SleepStage code.
STAGE_ANNOTATIONS = {
    "sleep stage w": SleepStage.W,
    "sleep stage 1": SleepStage.N1,
    "sleep stage n1": SleepStage.N1,
    "sleep stage 2": SleepStage.N2,
    "sleep stage n2": SleepStage.N2,
    "sleep stage 3": SleepStage.N3,
    "sleep stage 4": SleepStage.N3,
    "sleep stage n3": SleepStage.N3,
    "sleep stage r": SleepStage.REM,
    "sleep stage ?": SleepStage.UNKNOWN,
    "movement time": SleepStage.UNKNOWN,
}


def annotation_stage(text) -> int | None:
    """The SleepStage code an annotation scores, or None when it scores no stage."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return STAGE_ANNOTATIONS.get(" ".join(str(text).lower().split()))


class Hypnogram:
    """Stages over time, from stage annotations.

    Parameters
    ----------
    onsets, durations : array_like of float
        (k,) annotation onsets and durations, s from the start of the recording. A duration that is not > 0
        (EDF+ writes -1 for "unknown") lasts until the next stage annotation, or to ``end``.
    texts : array_like of str
        (k,) annotation texts; those that score no stage are ignored.
    end : float
        End of the recording, s.

    Notes
    -----
    The stage at ``t`` is that of the last stage annotation starting at or before ``t`` when ``t`` is inside
    it, else UNKNOWN (scored epochs of PSG sets follow each other without overlap).
    """

    def __init__(self, onsets, durations, texts, end: float):
        codes = [annotation_stage(t) for t in texts]
        scored = np.array([c is not None for c in codes], dtype=bool)
        onsets = np.asarray(onsets, dtype=np.float64)[scored]
        durations = np.asarray(durations, dtype=np.float64)[scored]
        stages = np.array([c for c in codes if c is not None], dtype=np.uint8)
        order = np.argsort(onsets, kind="stable")
        self.onsets, durations, self.stages = onsets[order], durations[order], stages[order]
        following = np.append(self.onsets[1:], max(float(end), self.onsets[-1] if len(self.onsets) else 0.0))
        with np.errstate(invalid="ignore"):
            self.ends = np.where(durations > 0, self.onsets + durations, following)

    def __len__(self) -> int:
        return len(self.onsets)

    def stage_at(self, t) -> np.ndarray:
        """Stage at recording time ``t`` (s, scalar or array): uint8 SleepStage codes of ``t``'s shape."""
        t = np.asarray(t, dtype=np.float64)
        k = np.searchsorted(self.onsets, t, side="right") - 1  # the latest annotation starting at or before t
        inside = (k >= 0) & (t < self.ends[np.maximum(k, 0)]) if len(self) else np.zeros(t.shape, bool)
        stages = self.stages[np.maximum(k, 0)] if len(self) else np.zeros(t.shape, np.uint8)
        return np.where(inside, stages, SleepStage.UNKNOWN).astype(np.uint8)
