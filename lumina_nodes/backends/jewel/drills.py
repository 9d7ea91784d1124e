"""Disruption drills: an optional capability of a jewel backend (no rclpy).

A drill is one ``InjectDisruption`` request, checked once here whatever backend plays it. Backends that can play
drills (today `sim`) implement :class:`DrillTarget` besides :class:`~lumina_nodes.backends.jewel.base.JewelBackend`;
the driver node offers its ``inject_disruption`` service to any backend and answers "not supported" for the others.
"""

from __future__ import annotations

import abc
import dataclasses
import math

from ...constants import DisruptionKind

#: Names a user may give instead of the numeric kind (the service takes the number).
KIND_NAMES = {
    "overlapping_frequencies": DisruptionKind.OVERLAPPING_FREQUENCIES,
    "overlapping": DisruptionKind.OVERLAPPING_FREQUENCIES,
    "phase_scramble": DisruptionKind.PHASE_SCRAMBLE,
    "link_degradation": DisruptionKind.LINK_DEGRADATION,
    "clear": DisruptionKind.CLEAR,
}


@dataclasses.dataclass(frozen=True)
class Drill:
    """A validated disruption drill; the fields are those of ``srv/InjectDisruption.srv`` (units there)."""

    kind: int  # a DisruptionKind member
    fraction: float = 0.0
    groups: int = 2
    separation: float = 0.05
    report_loss: float = 0.0
    report_corruption: float = 0.0
    duration: float = 0.0
    seed: int = 0

    @classmethod
    def parse(cls, kind, **fields) -> Drill:
        """A Drill from a kind (number or name) and request fields; ValueError names what is wrong.

        Only the fields the kind uses are range-checked: fraction for the frequency and phase drills,
        report_loss and report_corruption for link degradation; duration always.
        """
        drill = cls(_kind(kind), **fields)
        duration = float(drill.duration)
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"duration must be finite and >= 0, got {duration}")
        if drill.kind in (DisruptionKind.OVERLAPPING_FREQUENCIES, DisruptionKind.PHASE_SCRAMBLE):
            _probability(drill.fraction, "fraction")
        if drill.kind == DisruptionKind.LINK_DEGRADATION:
            _probability(drill.report_loss, "report_loss")
            _probability(drill.report_corruption, "report_corruption")
        return drill

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The request fields besides ``kind`` (as the service request spells them)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "kind")


class DrillTarget(abc.ABC):
    """Capability of a backend that can play drills."""

    @abc.abstractmethod
    def inject(self, drill: Drill, now: float | None = None) -> tuple[bool, str, int]:
        """Start (or, for CLEAR, end) ``drill`` at ``now``; returns (accepted, message, jewels affected)."""


def _kind(kind) -> int:
    if isinstance(kind, str):
        number = KIND_NAMES.get(kind.strip().lower())
    else:
        number = int(kind)
    if number not in DisruptionKind.members().values():
        raise ValueError(f"unknown disruption kind {kind!r}")
    return number


def _probability(x, name) -> float:
    x = float(x)
    if not (math.isfinite(x) and 0.0 <= x <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {x}")
    return x
