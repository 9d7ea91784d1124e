"""Command validation shared by every jewel backend (no rclpy).

Command validation (shared by all backends, ``validate_command``): every element of a batch is either applied
or rejected with exactly one reason, so ``accepted + sum(rejected.values()) == len(ids)`` (for a length
mismatch the whole batch is rejected and counted as ``max`` of the array lengths). Reasons, checked in this
order per element:

``length_mismatch``  ids / frequency_offset / intensity lengths differ: the whole batch is rejected;
``unknown_id``       id not served by this backend;
``duplicate_id``     the id appears more than once in the batch: *every* occurrence is rejected (which one was
                     meant is ambiguous);
``non_finite``       NaN/inf offset or intensity;
``offset_limit``     |offset| > the jewel's comfort limit. Rejected, not clamped: a controller asking for more
                     than the limit has a bug or a wrong limit, and silently clamping would hide it and break
                     its loop model; the device itself still clamps as a last line of defence;
``intensity_range``  intensity outside [0, 1];

An empty ``intensity`` array with a non-empty batch means "leave every jewel's intensity as it is" (a
synchronizer steers rhythm only): the returned intensities are then NaN and backends keep the current ones.
``link_down``        (serial) valid, but the device link is not connected, so it could not be sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REJECT_REASONS = (
    "length_mismatch",
    "unknown_id",
    "duplicate_id",
    "non_finite",
    "offset_limit",
    "intensity_range",
    "link_down",
)


@dataclass
class CommandResult:
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    message: str = ""

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def ok(self) -> bool:
        return self.rejected_total == 0


def validate_command(
    ids, frequency_offset, intensity, known_ids: np.ndarray, comfort_limit
) -> tuple[CommandResult, np.ndarray, np.ndarray, np.ndarray]:
    """Check a command batch against the backend's jewels ``known_ids`` (sorted ascending, unique).
    Returns (result, index, offset, intensity) of the accepted elements, index into known_ids.
    ``comfort_limit`` is a scalar or an array aligned with known_ids. Vectorised (no per-element Python)."""
    res = CommandResult()
    empty = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.float32))
    try:
        ids_a = np.asarray(ids).ravel()
        off = np.asarray(frequency_offset, dtype=np.float64).ravel()
        inten = np.asarray(intensity, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        n = len(ids) if hasattr(ids, "__len__") else 1
        res.rejected["length_mismatch"] = n
        res.message = f"batch rejected: arrays not numeric ({exc})"
        return (res, *empty)
    n = len(ids_a)
    keep_intensity = len(inten) == 0 and n > 0
    if keep_intensity:
        inten = np.full(n, np.nan)
    if not (len(off) == n and len(inten) == n):
        res.rejected["length_mismatch"] = max(n, len(off), len(inten))
        res.message = f"batch rejected: length mismatch ids={n} frequency_offset={len(off)} intensity={len(inten)}"
        return (res, *empty)
    if n == 0:
        res.message = "empty batch"
        return (res, *empty)
    reason = np.full(n, -1, dtype=np.int8)  # index into REJECT_REASONS, -1 = accepted
    idx = np.full(n, -1, dtype=np.int64)
    ids_ok = np.zeros(n, bool)
    if ids_a.dtype.kind in "iuf":
        ids_f = ids_a.astype(np.float64)
        ids_ok = np.isfinite(ids_f) & (ids_f >= 0) & (ids_f <= 0xFFFFFFFF) & (ids_f == np.floor(ids_f))
    known_ids = np.asarray(known_ids, dtype=np.int64)
    if len(known_ids) and ids_ok.any():
        cand = np.where(ids_ok, ids_a.astype(np.float64), -1).astype(np.int64)
        pos = np.clip(np.searchsorted(known_ids, cand), 0, len(known_ids) - 1)
        idx = np.where(ids_ok & (known_ids[pos] == cand), pos, -1)
    reason[idx < 0] = REJECT_REASONS.index("unknown_id")
    known = idx >= 0
    _, inv, counts = np.unique(np.where(known, idx, -1 - np.arange(n)), return_inverse=True, return_counts=True)
    dup = known & (counts[inv] > 1)
    reason[(reason < 0) & dup] = REJECT_REASONS.index("duplicate_id")
    nonfin = ~(np.isfinite(off) & (np.isfinite(inten) | keep_intensity))
    reason[(reason < 0) & nonfin] = REJECT_REASONS.index("non_finite")
    lim = np.broadcast_to(np.asarray(comfort_limit, dtype=np.float64), (max(len(known_ids), 1),))
    lim_k = np.where(known, lim[np.clip(idx, 0, len(lim) - 1)], np.inf)
    with np.errstate(invalid="ignore"):
        reason[(reason < 0) & (np.abs(off) > lim_k)] = REJECT_REASONS.index("offset_limit")
        reason[(reason < 0) & ((inten < 0) | (inten > 1))] = REJECT_REASONS.index("intensity_range")
    acc = reason < 0
    res.accepted = int(acc.sum())
    for r, c in zip(*np.unique(reason[~acc], return_counts=True), strict=True):
        res.rejected[REJECT_REASONS[r]] = int(c)
    bad = {k: v for k, v in res.rejected.items() if v}
    res.message = f"accepted {res.accepted}/{n}" + (f", rejected {bad}" if bad else "")
    return res, idx[acc], off[acc], inten[acc].astype(np.float32)
