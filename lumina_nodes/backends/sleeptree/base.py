"""The interface every SleepTree lighting backend implements, and its data types (no rclpy).

The SleepTree controller node wraps one backend and calls, from its frame timer:

* ``send(frames) -> SendResult`` once per frame: ``frames`` is (len(universes), 512) uint8, row i the DMX slots
  1..512 of ``universes[i]``. It never raises on a failed send or a bad frame: it counts, reports the failure in
  the result and in :meth:`LightingBackend.diagnostics`, and sends the next frame as usual;
* ``diagnostics() -> [(level, name, message, {key: value})]`` for /diagnostics (``DiagnosticLevel`` levels), one
  status per universe: ERROR while its sends fail;
* ``close()`` at shutdown (idempotent; sacn terminates its streams so receivers let go at once).
"""

from __future__ import annotations

import abc
import dataclasses
import ipaddress
import time
from collections.abc import Sequence

import numpy as np

from ...constants import DiagnosticLevel

#: DMX slots per universe.
SLOTS = 512
#: E1.31 universes are 1..63999 (64214 is its discovery universe, the rest reserved).
MAX_UNIVERSE = 63999

#: A universe stays ERROR in diagnostics this long after its last failure, s: a destination that refuses fails only
#: the sends after its ICMP answers, which hosts rate-limit (Linux: about one a second), so a refusing controller
#: would otherwise read OK between them.
FAILING_HOLD_S = 2.0

#: One /diagnostics status of a backend: (DiagnosticLevel, name, message, {key: value}).
Diagnostic = tuple[int, str, str, dict]


@dataclasses.dataclass(frozen=True)
class Universe:
    """One DMX universe of the output: its number (1..63999) and the IPv4 unicast address it is sent to."""

    number: int
    destination: str = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class SendResult:
    """What one :meth:`LightingBackend.send` did.

    Attributes
    ----------
    sent : int
        Universes sent this frame.
    failed : int
        Universes that could not be sent this frame (``len(failed_rows)``).
    errors : tuple of str
        Why, one text per failed universe (``"<destination>: <reason>"``, or why the frame was refused).
    failed_rows : tuple of int
        The rows (indices into ``universes``) that could not be sent.
    """

    sent: int
    failed: int = 0
    errors: tuple[str, ...] = ()
    failed_rows: tuple[int, ...] = ()


class LightingBackend(abc.ABC):
    """Sends one DMX frame of every universe per :meth:`send`; never raises on a failed send or a bad frame.

    The per-universe counters (``frames_sent``, ``frames_failed``, ``last_error``, ``failing``, ``failed_at``) are
    kept here and reported by :meth:`diagnostics` (ERROR while a universe fails, and for ``failing_hold_s`` after
    its last failure); a backend updates them (:meth:`mark_failing`).

    Parameters
    ----------
    universes : sequence of Universe
        At least one; each number once, 1..63999; destinations are IPv4 addresses.
    """

    #: backend name, as in :data:`lumina_nodes.backends.sleeptree.BACKENDS`
    name = "abstract"

    def __init__(self, universes: Sequence[Universe], **params):
        if params:
            raise ValueError(f"{', '.join(sorted(params))}: not a parameter of the {self.name} backend")
        self.universes = tuple(universes)
        check_universes(self.universes)
        n = len(self.universes)
        self.frames_sent = np.zeros(n, np.int64)
        self.frames_failed = np.zeros(n, np.int64)
        self.last_error = [""] * n
        self.failing = np.zeros(n, bool)  # the universe's last frame failed (or its destination reported an error)
        self.failed_at = np.full(n, -np.inf)  # time.monotonic() of the universe's last failure
        self.unheard_at = np.full(n, -np.inf)  # time.monotonic() its destination last said nobody listens
        self.unheard_error = [""] * n
        self.failing_hold_s = FAILING_HOLD_S
        self.closed = False

    @abc.abstractmethod
    def send(self, frames: np.ndarray) -> SendResult:
        """Send ``frames`` (len(universes), 512) uint8: row i is slots 1..512 of ``universes[i]``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop sending (releasing what the backend holds); idempotent."""

    def frame_problem(self, frames) -> str:
        """Why ``frames`` cannot be sent ("" when it can): it must be uint8 of shape (len(universes), 512)."""
        shape, dtype = getattr(frames, "shape", None), getattr(frames, "dtype", None)
        if shape != (len(self.universes), SLOTS) or dtype != np.uint8:
            return f"frames must be uint8 of shape ({len(self.universes)}, {SLOTS}), got {dtype} {shape}"
        return ""

    def refuse(self, reason: str, count: bool = True) -> SendResult:
        """The result of a frame not sent at all (every row failed for ``reason``), counted unless ``count`` is
        false (a frame after close)."""
        rows = tuple(range(len(self.universes)))
        if count:
            self.frames_failed += 1
            self.mark_failing(list(rows), reason)
        return SendResult(0, len(rows), (reason,) * len(rows), rows)

    def mark_failing(self, rows: list[int], error: str) -> None:
        """``rows`` failed now, for ``error``."""
        self.failing[rows] = True
        self.failed_at[rows] = time.monotonic()
        for row in rows:
            self.last_error[row] = error

    def diagnostics(self) -> list[Diagnostic]:
        """One (level, name, message, values) per universe: ERROR while its sends fail, and for ``failing_hold_s``
        after its last failure."""
        statuses = []
        recent = time.monotonic() - self.failed_at < self.failing_hold_s
        unheard = time.monotonic() - self.unheard_at < self.failing_hold_s
        for row, universe in enumerate(self.universes):
            failing = bool(self.failing[row] or recent[row]) and not self.closed
            if failing:
                level, message = DiagnosticLevel.ERROR, f"sending fails: {self.last_error[row]}"
            elif unheard[row] and not self.closed:
                level = DiagnosticLevel.WARN
                message = f"sent, but nothing listens there: {self.unheard_error[row]}"
            elif self.closed:
                level, message = DiagnosticLevel.OK, "closed"
            else:
                level, message = DiagnosticLevel.OK, "sending" if self.frames_sent[row] else "no frame sent yet"
            statuses.append(
                (
                    level,
                    f"universe {universe.number}",
                    message,
                    {
                        "backend": self.name,
                        "destination": self.destination_of(row),
                        "frames_sent": int(self.frames_sent[row]),
                        "frames_failed": int(self.frames_failed[row]),
                        "last_error": self.last_error[row],
                    },
                )
            )
        return statuses

    def destination_of(self, row: int) -> str:
        """Where ``universes[row]`` goes (the sacn backend's multicast groups differ from the destinations)."""
        return self.universes[row].destination

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_universes(universes: Sequence[Universe]) -> None:
    """ValueError naming the first universe that cannot be sent: none at all, a number outside 1..63999 or used
    twice, a destination that is not an IPv4 address."""
    if not universes:
        raise ValueError("universes: at least one universe is needed")
    seen = set()
    for universe in universes:
        number = universe.number
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_UNIVERSE:
            raise ValueError(f"universe {number!r}: must be a whole number in 1..{MAX_UNIVERSE}")
        if number in seen:
            raise ValueError(f"universe {number}: listed twice (each universe once)")
        seen.add(number)
        ipv4(f"universe {number} destination", universe.destination)


def ipv4(what: str, address) -> ipaddress.IPv4Address:
    """``address`` parsed; ValueError naming ``what`` when it is not an IPv4 address in dotted form."""
    try:
        return ipaddress.IPv4Address(address if isinstance(address, str) else None)
    except (ValueError, TypeError):
        raise ValueError(f"{what}: {address!r} is not an IPv4 address") from None


def unicast_problem(address: ipaddress.IPv4Address) -> str:
    """Why ``address`` is not a unicast destination ("" when it is)."""
    if address.is_multicast:
        return "a multicast address (sacn sends a universe to its group only with multicast: true)"
    if address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    if address.is_unspecified:
        return "the unspecified address"
    return ""
