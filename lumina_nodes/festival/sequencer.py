"""The festival's phase machine (no rclpy): which phase runs, when it moves on, and what it asks of the city.

:class:`Sequencer` runs one :class:`~lumina_nodes.festival.program.Program`. The caller (the orchestrator node,
or a test) feeds it the time and what the synchronizer reports (:class:`Observation`) and carries out the
actions it returns, in order: :class:`SetLighting`, :class:`SetCoupling`, :class:`SetReleased` (plazas that do
not take part), :class:`InjectDrill`, and the :class:`Event` records of what happened. It never waits and never
does I/O, so a night can be stepped through in a unit test.

Conditions hold only on fresh observations: ``None`` (no recent synchronizer state) breaks every hold. The
result (:class:`RunResult`) says when the disruption was injected, detected (two or more clusters reported) and
healed (order parameter at least the program's ``harmony_order_parameter``, one cluster or every cluster resolved
by the synchronizer, every plaza taking part), and the lowest order parameter after the disruption.
"""

from __future__ import annotations

import collections
import dataclasses
import math

from ..backends.jewel.drills import Drill
from ..constants import DisruptionKind, EventLevel
from .program import Program

NOMINAL_COUPLING = (1.0, 1.0, 0.8, 0.6, 0.9)  # config/synchronizer.yaml's coupling_by_stage
DISRUPTING_DRILLS = (DisruptionKind.OVERLAPPING_FREQUENCIES,)  # what the result times (a scramble is a start)


@dataclasses.dataclass(frozen=True)
class Observation:
    """The synchronizer's state as the sequencer reads it (one /sync/state)."""

    order_parameter: float
    lock_fraction: float
    clusters: int
    plaza_order: dict  # plaza (driver id) -> r
    unresolved_clusters: int = 0  # clusters the synchronizer has not resolved (merging or a channel of its own)

    def metric(self, name: str) -> float:
        if name == "lowest_plaza_order":
            return min(self.plaza_order.values()) if self.plaza_order else math.nan
        return float(getattr(self, name))


@dataclasses.dataclass(frozen=True)
class SetLighting:
    scene: str


@dataclasses.dataclass(frozen=True)
class SetCoupling:
    gains: tuple


@dataclasses.dataclass(frozen=True)
class SetReleased:
    """Plazas that do not take part: the synchronizer stops pulling their jewels (they run free)."""

    plazas: tuple


@dataclasses.dataclass(frozen=True)
class InjectDrill:
    drill: Drill


@dataclasses.dataclass(frozen=True)
class Event:
    level: int
    kind: str
    text: str


#: The night's end is judged on the median r over its last half second of node time: harmony reached earlier but
#: lost again by then is not reported as reached (one dip in a single /sync/state does not decide it).
FINAL_WINDOW_S = 0.5


@dataclasses.dataclass
class RunResult:
    success: bool = False
    message: str = ""
    phases_completed: int = 0
    elapsed_s: float = 0.0
    disrupted_at: float | None = None  # node time
    detected_at: float | None = None
    healed_at: float | None = None  # first time whole again after the detection (the synchronizer's healing)
    harmony_at: float | None = None  # first time whole after the detection with every plaza back for good
    min_order_parameter: float = math.nan
    final_order_parameter: float = math.nan  # median r over the night's last FINAL_WINDOW_S (after a disruption)

    @property
    def time_to_detect_s(self) -> float:
        return self.detected_at - self.disrupted_at if self.detected_at is not None else math.nan

    @property
    def time_to_heal_s(self) -> float:
        """Detection to the first moment the city was whole again."""
        return self.healed_at - self.detected_at if self.healed_at is not None else math.nan

    @property
    def time_to_recover_s(self) -> float:
        """Detection to harmony: the city whole with every plaza taking part, after the last plaza came back."""
        return self.harmony_at - self.detected_at if self.harmony_at is not None else math.nan

    @property
    def harmony_reached(self) -> bool:
        return self.harmony_at is not None


class Sequencer:
    """Runs ``program`` over ``plazas`` (driver ids, in the order the reflective sessions bring them back).

    ``time_scale`` multiplies every time of the program (0.25: four times shorter); ``nominal_coupling`` is what
    a safe state restores.
    """

    def __init__(self, program: Program, plazas, time_scale: float = 1.0, nominal_coupling=NOMINAL_COUPLING):
        if not (math.isfinite(time_scale) and 0.001 <= time_scale <= 1000.0):
            raise ValueError(f"time_scale must be in 0.001..1000, got {time_scale!r}")
        if not plazas:
            raise ValueError("plazas: the city has no plazas to run the program on")
        self.program, self.plazas, self.scale = program, tuple(plazas), float(time_scale)
        self.nominal_coupling = tuple(nominal_coupling)
        self.status = "idle"  # running, finished, aborted, cancelled
        self.index = -1
        self.started = self.entered = None
        self.holds = {}  # condition index -> time it started holding
        self.joined = 0  # sessions: plazas taking part so far
        self.session_started = None
        self.result = RunResult()
        self.recent_r = collections.deque()  # (node time, r) over the last FINAL_WINDOW_S, after a disruption
        self.released = ()

    # ------------------------------------------------------------------------------------------ queries
    @property
    def phase(self):
        return self.program.phases[self.index] if 0 <= self.index < len(self.program.phases) else None

    def time_in_phase(self, now: float) -> float:
        return 0.0 if self.entered is None else max(0.0, now - self.entered)

    def planned_s(self):
        """Planned length of the current phase (node seconds), or None when it ends by conditions."""
        phase = self.phase
        if phase is None or phase.until or phase.sessions or phase.duration_s is None:
            return None
        return phase.duration_s * self.scale

    def progress(self, now: float) -> float:
        """0..1 through the current phase (0 while waiting on conditions)."""
        phase = self.phase
        if phase is None:
            return 0.0
        if phase.sessions is not None:
            return (self.joined - 1) / max(1, len(self.plazas))
        planned = self.planned_s()
        return 0.0 if not planned else min(1.0, self.time_in_phase(now) / planned)

    # ------------------------------------------------------------------------------------------ running
    def start(self, now: float) -> list:
        if self.status != "idle":
            raise RuntimeError(f"the program is already {self.status}")
        self.status, self.started = "running", now
        actions = [Event(EventLevel.INFO, "program_started", f"program {self.program.name} started")]
        return actions + self._enter(0, now)

    def update(self, now: float, observation: Observation | None) -> list:
        """The actions due at ``now`` given ``observation`` (None: no fresh synchronizer state)."""
        if self.status != "running":
            return []
        actions = self._watch(now, observation)
        phase = self.phase
        elapsed = now - self.entered
        if phase.sessions is not None:
            return actions + self._sessions(now, observation)
        if phase.until:
            done = self._conditions_held(now, observation) and elapsed >= (phase.duration_s or 0.0) * self.scale
            if done:
                return actions + self._next(now)
            if elapsed >= phase.timeout_s * self.scale:
                return actions + self._timeout(now, f"{phase.name}: conditions not met within {phase.timeout_s:g} s")
            return actions
        if elapsed >= phase.duration_s * self.scale:
            return actions + self._next(now)
        return actions

    def cancel(self, now: float, reason: str = "cancelled") -> list:
        """Stop the program; the actions bring the city to a safe state (drills cleared, nominal gains, every plaza
        taking part, calm lighting)."""
        if self.status != "running":
            return []
        self.status = "cancelled"
        self._finish(now, False, reason)
        return [Event(EventLevel.WARN, "program_cancelled", reason), *self.safe_state()]

    def safe_state(self) -> list:
        self.released = ()
        return [
            InjectDrill(Drill.parse("clear")),
            SetCoupling(self.nominal_coupling),
            SetReleased(()),
            SetLighting("harmony"),
        ]

    # ------------------------------------------------------------------------------------------ internals
    def _enter(self, index: int, now: float) -> list:
        self.index, self.entered, self.holds = index, now, {}
        phase = self.phase
        text = f"phase {phase.name} ({index + 1}/{len(self.program.phases)})" + (
            f": {phase.text}" if phase.text else ""
        )
        actions = [Event(EventLevel.INFO, "phase_started", text)]
        if phase.lighting is not None:
            actions.append(SetLighting(phase.lighting))
        if phase.coupling_by_stage is not None:
            actions.append(SetCoupling(phase.coupling_by_stage))
        if phase.sessions is not None:
            self.joined, self.session_started = 1, now
            released = self.plazas[1:]
        elif phase.plazas is not None:
            unknown = sorted(set(phase.plazas) - set(self.plazas))
            if unknown:
                actions.append(Event(EventLevel.WARN, "unknown_plazas", f"{phase.name}: no plazas {unknown} here"))
            released = tuple(p for p in self.plazas if p not in phase.plazas)
        else:
            released = ()
        if released != self.released:
            self.released = released
            actions.append(SetReleased(released))
        if released:
            self.result.harmony_at = None  # harmony counts once every plaza is back
        if phase.drill is not None:
            actions.append(InjectDrill(phase.drill))
            if phase.drill.kind in DISRUPTING_DRILLS and self.result.disrupted_at is None:
                self.result.disrupted_at = now
        return actions

    def _next(self, now: float) -> list:
        self.result.phases_completed += 1
        if self.index + 1 >= len(self.program.phases):
            self.status = "finished"
            result, threshold = self.result, self.program.harmony_order_parameter
            recent = [r for t, r in self.recent_r if t >= now - FINAL_WINDOW_S]
            if recent:
                result.final_order_parameter = float(sorted(recent)[len(recent) // 2])
            lost = result.harmony_reached and result.final_order_parameter < threshold
            healed = (result.harmony_reached and not lost) or result.disrupted_at is None
            if lost:
                message = (
                    f"harmony reached {result.time_to_recover_s:.2f} s after the detection but lost again: r "
                    f"{result.final_order_parameter:.3f} over the night's last {FINAL_WINDOW_S:g} s, "
                    f"below {threshold:.2f}"
                )
            else:
                message = "harmony reached" if result.harmony_reached else "the program ran to its end"
            self._finish(now, healed, message)
            actions = [Event(EventLevel.INFO, "program_finished", message)]
            if self.released:  # nobody stays released after the night
                self.released = ()
                actions.append(SetReleased(()))
            return actions
        return self._enter(self.index + 1, now)

    def _timeout(self, now: float, text: str) -> list:
        phase = self.phase
        actions = [Event(EventLevel.WARN, "phase_timeout", f"{text}; fallback {phase.fallback}")]
        if phase.fallback == "next":
            return actions + self._next(now)
        if phase.fallback == "abort":
            self.status = "aborted"
            self._finish(now, False, text)
            return [*actions, Event(EventLevel.ERROR, "program_aborted", text), *self.safe_state()]
        return actions + self._enter(self.program.index_of(phase.fallback), now)

    def _finish(self, now, success, message):
        self.result.success, self.result.message = success, message
        self.result.elapsed_s = now - self.started

    def _conditions_held(self, now: float, observation: Observation | None) -> bool:
        held = True
        for k, condition in enumerate(self.phase.until):
            if observation is None or not condition.holds(observation.metric(condition.metric)):
                self.holds.pop(k, None)
                held = False
                continue
            since = self.holds.setdefault(k, now)
            held &= now - since >= condition.hold_s * self.scale
        return held

    def _sessions(self, now: float, observation: Observation | None) -> list:
        sessions = self.phase.sessions
        plaza = self.plazas[self.joined - 1]
        r = observation.plaza_order.get(plaza, math.nan) if observation is not None else math.nan
        if math.isfinite(r) and r >= sessions.order_parameter:
            since = self.holds.setdefault("session", now)
            if now - since >= sessions.hold_s * self.scale:
                actions = [Event(EventLevel.INFO, "plaza_relocked", f"{plaza} is back in the collective rhythm")]
                self.holds = {}
                if self.joined == len(self.plazas):
                    return actions + self._next(now)
                self.joined += 1
                self.session_started = now
                self.released = self.plazas[self.joined :]
                rejoining = self.plazas[self.joined - 1]
                return [
                    *actions,
                    Event(EventLevel.INFO, "plaza_rejoined", f"{rejoining} joins the reflective session"),
                    SetReleased(self.released),
                ]
        else:
            self.holds.pop("session", None)
        if now - self.session_started >= sessions.timeout_each_s * self.scale:
            return self._timeout(now, f"{self.phase.name}: {plaza} not re-locked within {sessions.timeout_each_s:g} s")
        return []

    def _watch(self, now: float, observation: Observation | None) -> list:
        """The result's marks: disruption detected, harmony restored, lowest r after the disruption."""
        result = self.result
        if observation is None or result.disrupted_at is None:
            return []
        r = observation.order_parameter
        if math.isfinite(r):
            self.recent_r.append((now, r))
            while self.recent_r and self.recent_r[0][0] < now - FINAL_WINDOW_S:
                self.recent_r.popleft()
            result.min_order_parameter = (
                r if math.isnan(result.min_order_parameter) else min(result.min_order_parameter, r)
            )
        if result.detected_at is None and observation.clusters >= 2:
            result.detected_at = now
            return [
                Event(
                    EventLevel.WARN,
                    "disruption_detected",
                    f"chaos: {observation.clusters} frequency clusters, "
                    f"{now - result.disrupted_at:.2f} s after the disruption",
                )
            ]
        if result.detected_at is None:
            return []
        whole = (
            (observation.clusters <= 1 or observation.unresolved_clusters == 0)
            and not self.released
            and r >= self.program.harmony_order_parameter
        )
        if not whole:
            return []
        if result.harmony_at is None:
            result.harmony_at = now
        if result.healed_at is None:
            result.healed_at = now
            return [
                Event(
                    EventLevel.INFO,
                    "harmony_restored",
                    f"one rhythm again: r {r:.3f}, {now - result.detected_at:.2f} s after the chaos was detected",
                )
            ]
        return []
