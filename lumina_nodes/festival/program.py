"""Festival programs (no rclpy): the YAML schema of a program, checked on load with errors naming line and key.

A program (``config/programs/sleep_art_festival.yaml`` is the default) is a sequence of phases::

    program: sleep_art_festival         # name
    description: ...                    # optional
    harmony_order_parameter: 0.9        # r counted as harmony for the result (default 0.9)
    phases:
      - name: synchronised_slumber      # unique
        text: The city falls asleep.    # optional, shown live and in the events
        lighting: harmony               # SleepTree scene: harmony, chaos, recovery, aftermath (default: keep)
        coupling_by_stage: [1.0, 1.0, 0.8, 0.6, 0.9]   # synchronizer gains per stage W..REM, 0..2 (default: keep)
        plazas: all                     # plazas taking part: all, or a list (the others are released)
        drill: {kind: overlapping_frequencies, fraction: 1.0, groups: 2, separation: 0.1, seed: 7}
        duration: 5                     # s: the phase's length when it has no `until`; its shortest with one
        until:                          # moves on once every condition has held for its `for` (hysteresis)
          order_parameter: {at_least: 0.95, for: 2}
        timeout: 60                     # s without the conditions: go to `fallback`
        fallback: abort                 # a phase name, `next`, or `abort` (the program ends unsuccessful)
      - name: reflective_sessions
        sessions: {order_parameter: 0.9, for: 1, timeout_each: 30}  # plazas rejoin one at a time

Conditions (``until``) take a metric of the synchronizer's state: ``order_parameter``, ``lock_fraction``,
``clusters`` (frequency clusters reported), ``unresolved_clusters`` (of those, the ones the synchronizer has not
resolved yet), ``lowest_plaza_order`` (the least locked plaza's r), each with one of
``at_least`` / ``at_most`` and a ``for`` in seconds. A ``sessions`` phase releases every plaza but the first and
brings them back one at a time: each rejoins only when the one before has held ``order_parameter`` for ``for``
seconds; ``timeout_each`` bounds each plaza's wait. Drill kinds: ``overlapping_frequencies``, ``phase_scramble``,
``link_degradation``, ``clear``; their fields are those of ``srv/InjectDisruption.srv``.
Every time (duration, for, timeout) is program seconds, multiplied by the run's ``time_scale``.
"""

from __future__ import annotations

import dataclasses
import math
import os

import yaml

from ..backends.jewel.drills import FIELD_RANGES, KIND_NAMES, Drill
from ..kernels.tree_lighting import SCENES
from ..yaml_lines import line_of, load_with_lines

METRICS = ("order_parameter", "lock_fraction", "clusters", "unresolved_clusters", "lowest_plaza_order")
COMPARISONS = ("at_least", "at_most")
FALLBACKS = ("next", "abort")
DRILL_KINDS = tuple(KIND_NAMES)  # the drivers' own names of the kinds
MAX_SECONDS = 86400.0
PROGRAM_KEYS = ("program", "description", "harmony_order_parameter", "phases")
PHASE_KEYS = (
    "name",
    "text",
    "lighting",
    "coupling_by_stage",
    "plazas",
    "drill",
    "duration",
    "until",
    "timeout",
    "fallback",
    "sessions",
)
DRILL_FIELDS = FIELD_RANGES  # the drivers' own ranges of srv/InjectDisruption.srv


class ProgramError(ValueError):
    """A program that cannot run; the message lists every problem (``file:line: key: problem``), one per line."""


@dataclasses.dataclass(frozen=True)
class Condition:
    """``metric`` compared with ``value`` (``at_least`` or ``at_most``), held for ``hold_s`` program seconds."""

    metric: str
    comparison: str
    value: float
    hold_s: float

    def holds(self, observed: float) -> bool:
        if not math.isfinite(observed):
            return False
        return observed >= self.value if self.comparison == "at_least" else observed <= self.value


@dataclasses.dataclass(frozen=True)
class Sessions:
    """Reflective group sessions: plazas rejoin one at a time once the previous holds ``order_parameter``."""

    order_parameter: float
    hold_s: float
    timeout_each_s: float


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    text: str = ""
    lighting: str | None = None
    coupling_by_stage: tuple | None = None
    plazas: tuple | None = None  # None: all plazas take part
    drill: Drill | None = None
    duration_s: float | None = None
    until: tuple = ()
    timeout_s: float | None = None
    fallback: str = "abort"
    sessions: Sessions | None = None


@dataclasses.dataclass(frozen=True)
class Program:
    name: str
    phases: tuple
    description: str = ""
    harmony_order_parameter: float = 0.9
    source: str = ""

    def index_of(self, name: str) -> int:
        return [p.name for p in self.phases].index(name)


def resolve_program(name_or_path: str, programs_dir: str) -> str:
    """The file of a program given by name (``<programs_dir>/<name>.yaml``) or by path; ProgramError if none."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ProgramError("program: give a program name (a file in config/programs/) or a path")
    if os.sep in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return name_or_path
    path = os.path.join(programs_dir, f"{name_or_path}.yaml")
    if not os.path.exists(path):
        known = (
            sorted(f[:-5] for f in os.listdir(programs_dir) if f.endswith(".yaml"))
            if os.path.isdir(programs_dir)
            else []
        )
        raise ProgramError(f"program {name_or_path!r}: no such program (known: {', '.join(known) or 'none'})")
    return path


def load_program(path: str) -> Program:
    """The program in the YAML file ``path``; ProgramError listing every problem with its line and key."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as error:
        raise ProgramError(f"{path}: {error.strerror or error}") from None
    return parse_program(text, path)


def parse_program(text: str, source: str = "<program>") -> Program:
    """The program in YAML ``text`` (``source`` names it in errors)."""
    try:
        document, lines = load_with_lines(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ProgramError(f"{where}: not valid YAML: {getattr(error, 'problem', None) or error}") from None
    problems = []

    def fail(path, message):
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        problems.append(f"{source}:{line_of(lines, path)}: {key + ': ' if key else ''}{message}")

    if not isinstance(document, dict):
        raise ProgramError(f"{source}:1: a program is a mapping with keys {', '.join(PROGRAM_KEYS)}")
    for key in sorted(set(map(str, document)) - set(PROGRAM_KEYS)):
        fail((key,), f"unknown key (known: {', '.join(PROGRAM_KEYS)})")
    name = document.get("program")
    if not isinstance(name, str) or not name:
        fail(("program",), f"must be the program's name, got {name!r}")
    description = document.get("description", "")
    if not isinstance(description, str):
        fail(("description",), "must be a text")
    harmony = _number(document.get("harmony_order_parameter", 0.9), 0.0, 1.0, ("harmony_order_parameter",), fail)
    entries = document.get("phases")
    if not isinstance(entries, list) or not entries:
        fail(("phases",), "must be a list of one or more phases")
        raise ProgramError("\n".join(problems))
    phases = [_phase(entry, ("phases", k), fail) for k, entry in enumerate(entries)]
    names = {}
    for k, phase in enumerate(phases):
        if phase is None:
            continue
        if phase.name in names:
            fail(("phases", k, "name"), f"{phase.name!r} is also the name of phases[{names[phase.name]}]")
        names.setdefault(phase.name, k)
    for k, phase in enumerate(phases):
        if phase is not None and phase.fallback not in FALLBACKS and phase.fallback not in names:
            fail(
                ("phases", k, "fallback"),
                f"{phase.fallback!r} is no phase of the program (a phase name, {' or '.join(FALLBACKS)})",
            )
    if problems:
        raise ProgramError("\n".join(problems))
    return Program(name, tuple(phases), description, harmony, source)


def _number(value, low, high, path, fail, integer=False, default=None):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        fail(path, f"must be a {'whole ' if integer else ''}number in {low}..{high}, got {value!r}")
        return default
    if not math.isfinite(value) or not low <= value <= high:
        fail(path, f"{value!r} is out of range {low}..{high}")
        return default
    return value


def _seconds(entry, key, path, fail, low=0.0):
    return _number(entry.get(key), low, MAX_SECONDS, (*path, key), fail)


def _phase(entry, path, fail) -> Phase | None:
    if not isinstance(entry, dict):
        fail(path, f"a phase is a mapping with keys {', '.join(PHASE_KEYS)}")
        return None
    for key in sorted(set(map(str, entry)) - set(PHASE_KEYS)):
        fail((*path, key), f"unknown key (known: {', '.join(PHASE_KEYS)})")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        fail((*path, "name"), f"must be the phase's name, got {name!r}")
        name = f"phases[{path[-1]}]"
    text = entry.get("text", "")
    if not isinstance(text, str):
        fail((*path, "text"), "must be a text")
    lighting = entry.get("lighting")
    if lighting is not None and lighting not in SCENES:
        fail((*path, "lighting"), f"unknown scene {lighting!r} (one of {', '.join(SCENES)})")
    coupling = entry.get("coupling_by_stage")
    if coupling is not None:
        if not isinstance(coupling, list) or len(coupling) != 5:
            fail((*path, "coupling_by_stage"), "must be 5 gains (W, N1, N2, N3, REM), each 0..2")
            coupling = None
        else:
            values = [_number(g, 0.0, 2.0, (*path, "coupling_by_stage", i), fail) for i, g in enumerate(coupling)]
            coupling = tuple(float(v) for v in values) if None not in values else None
    plazas = entry.get("plazas", "all")
    if plazas == "all":
        plazas = None
    elif not isinstance(plazas, list) or not plazas or not all(isinstance(p, str) and p for p in plazas):
        fail((*path, "plazas"), f"must be 'all' or a list of plaza names, got {plazas!r}")
        plazas = None
    else:
        plazas = tuple(plazas)
    drill = _drill(entry.get("drill"), (*path, "drill"), fail) if "drill" in entry else None
    duration = _seconds(entry, "duration", path, fail)
    timeout = _seconds(entry, "timeout", path, fail, low=0.001)
    fallback = entry.get("fallback", "abort")
    if not isinstance(fallback, str):
        fail((*path, "fallback"), f"must be a phase name, next or abort, got {fallback!r}")
        fallback = "abort"
    until = _conditions(entry.get("until"), (*path, "until"), fail) if "until" in entry else ()
    sessions = _sessions(entry.get("sessions"), (*path, "sessions"), fail) if "sessions" in entry else None
    if sessions is not None and (until or plazas is not None):
        fail((*path, "sessions"), "a sessions phase takes no 'until' or 'plazas': it brings every plaza back itself")
    if duration is None and not until and sessions is None:
        fail(path, "needs a 'duration', an 'until' or 'sessions': otherwise it never ends")
    if until and timeout is None:
        fail((*path, "timeout"), "a phase with 'until' needs a 'timeout' (how long to wait before the fallback)")
    return Phase(name, text, lighting, coupling, plazas, drill, duration, until, timeout, fallback, sessions)


def _conditions(value, path, fail) -> tuple:
    if not isinstance(value, dict) or not value:
        fail(path, f"must map metrics ({', '.join(METRICS)}) to {{at_least|at_most: value, for: seconds}}")
        return ()
    conditions = []
    for metric, test in value.items():
        where = (*path, metric)
        if metric not in METRICS:
            fail(where, f"unknown metric (one of {', '.join(METRICS)})")
            continue
        if not isinstance(test, dict) or set(test) - {*COMPARISONS, "for"} or len(set(test) & set(COMPARISONS)) != 1:
            fail(where, "must be {at_least: value, for: seconds} or {at_most: value, for: seconds}")
            continue
        comparison = next(c for c in COMPARISONS if c in test)
        high = 1e6 if metric.endswith("clusters") else 1.0
        threshold = _number(test[comparison], 0.0, high, (*where, comparison), fail)
        hold = _number(test.get("for", 0.0), 0.0, MAX_SECONDS, (*where, "for"), fail)
        if threshold is not None and hold is not None:
            conditions.append(Condition(metric, comparison, float(threshold), float(hold)))
    return tuple(conditions)


def _sessions(value, path, fail) -> Sessions | None:
    keys = ("order_parameter", "for", "timeout_each")
    if not isinstance(value, dict) or set(value) - set(keys):
        fail(path, f"must be a mapping with {', '.join(keys)}")
        return None
    r = _number(value.get("order_parameter", 0.9), 0.0, 1.0, (*path, "order_parameter"), fail)
    hold = _number(value.get("for", 1.0), 0.0, MAX_SECONDS, (*path, "for"), fail)
    timeout = _number(value.get("timeout_each", 60.0), 0.001, MAX_SECONDS, (*path, "timeout_each"), fail)
    if None in (r, hold, timeout):
        return None
    return Sessions(float(r), float(hold), float(timeout))


def _drill(value, path, fail) -> Drill | None:
    if not isinstance(value, dict) or value.get("kind") not in DRILL_KINDS:
        kind = value.get("kind") if isinstance(value, dict) else value
        fail(path, f"needs a kind, one of {', '.join(DRILL_KINDS)}; got {kind!r}")
        return None
    fields = {}
    for key, given in value.items():
        if key == "kind":
            continue
        if key not in DRILL_FIELDS:
            fail((*path, key), f"unknown drill field (known: kind, {', '.join(DRILL_FIELDS)})")
            continue
        low, high, integer = DRILL_FIELDS[key]
        number = _number(given, low, high, (*path, key), fail, integer=integer)
        if number is not None:
            fields[key] = number
    return Drill.parse(value["kind"], **fields)  # the drivers' own Drill: checked as the service checks it
