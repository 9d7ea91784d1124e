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


#: Valid values of the request fields (low, high, whole numbers only), as srv/InjectDisruption.srv documents them:
#: every field of a request is checked, whatever its kind uses (a festival program's drills use this table too).
FIELD_RANGES = {
    "fraction": (0.0, 1.0, False),
    "groups": (2, 10, True),
    "separation": (0.001, 2.0, False),  # Hz
    "report_loss": (0.0, 1.0, False),
    "report_corruption": (0.0, 1.0, False),
    "duration": (0.0, 86400.0, False),  # s; 0 = until CLEAR
    "seed": (0, 2**32 - 1, True),
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

        Every field is checked against :data:`FIELD_RANGES` (a request's unused fields too: a service field without
        a range is an input nobody checked). A field left at the service default 0 where 0 is out of range (groups,
        separation of a request that is not OVERLAPPING_FREQUENCIES) takes the dataclass default.
        """
        number = _kind(kind)
        values = {}
        for name, value in fields.items():
            if name not in FIELD_RANGES:
                raise ValueError(f"unknown drill field {name!r}")
            low, high, whole = FIELD_RANGES[name]
            if number != DisruptionKind.OVERLAPPING_FREQUENCIES and name in ("groups", "separation") and value == 0:
                continue  # the message's default for a field this kind does not use
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and int(value) != value):
                raise ValueError(
                    f"{name} must be a {'whole ' if whole else ''}number in [{low}, {high}], got {value!r}"
                )
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
            values[name] = int(value) if whole else float(value)
        return cls(number, **values)

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
