"""Jewel backends: the one interface every jewel driver backend implements, the `sim` backend, and the factory.

No rclpy here. The ROS node wraps a backend and calls, from its own thread:

* ``start()`` once, ``close()`` at shutdown;
* ``poll(now) -> JewelSnapshot`` at its publish rate (``now``: the node clock, seconds, sim time allowed);
* ``apply_command(ids, frequency_offset, intensity, now) -> CommandResult`` per command batch;
* ``inject(kind, ...) -> (accepted, message, affected)`` for the InjectDisruption service;
* ``diagnostics() -> [(level, name, message, {key: value})]`` for /diagnostics (level 0 OK, 1 WARN, 2 ERROR).

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

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..models.sleeper import SleeperModel, SleeperParams, wrap_phase

STATUS_OK = 0
STATUS_STALE = 1
STATUS_LOW_BATTERY = 2
STATUS_FAULT = 4

DIAG_OK, DIAG_WARN, DIAG_ERROR = 0, 1, 2

REJECT_REASONS = (
    "length_mismatch",
    "unknown_id",
    "duplicate_id",
    "non_finite",
    "offset_limit",
    "intensity_range",
    "link_down",
)

KIND_OVERLAPPING_FREQUENCIES = 0
KIND_PHASE_SCRAMBLE = 1
KIND_LINK_DEGRADATION = 2
KIND_CLEAR = 3
KIND_NAMES = {
    "overlapping_frequencies": KIND_OVERLAPPING_FREQUENCIES,
    "overlapping": KIND_OVERLAPPING_FREQUENCIES,
    "phase_scramble": KIND_PHASE_SCRAMBLE,
    "link_degradation": KIND_LINK_DEGRADATION,
    "clear": KIND_CLEAR,
}

Diagnostic = tuple[int, str, str, dict[str, str]]


@dataclass
class JewelSnapshot:
    """Struct-of-arrays state of a backend's jewels at ``stamp`` (the caller's ``now``); all arrays length K."""

    stamp: float
    ids: np.ndarray  # uint32
    phase: np.ndarray  # float64 rad, [-pi, pi), measured at stamp - sample_age
    frequency: np.ndarray  # float64 Hz
    frequency_offset: np.ndarray  # float64 Hz
    sample_age: np.ndarray  # float64 s, >= 0
    intensity: np.ndarray  # float32 0..1
    status: np.ndarray  # uint8 STATUS_* bits

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls, stamp: float) -> JewelSnapshot:
        return cls(
            stamp,
            np.zeros(0, np.uint32),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, np.float32),
            np.zeros(0, np.uint8),
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


class JewelBackend:
    """Interface of a jewel backend. Methods must not raise on bad input; they report it."""

    name = "abstract"

    def start(self) -> None:
        raise NotImplementedError

    def poll(self, now: float) -> JewelSnapshot:
        raise NotImplementedError

    def apply_command(self, ids, frequency_offset, intensity, now: float) -> CommandResult:
        raise NotImplementedError

    def inject(
        self,
        kind,
        fraction: float = 0.0,
        groups: int = 2,
        separation: float = 0.05,
        report_loss: float = 0.0,
        report_corruption: float = 0.0,
        duration: float = 0.0,
        seed: int = 0,
        now: float | None = None,
    ) -> tuple[bool, str, int]:
        return False, f"backend '{self.name}' does not support disruption injection", 0

    def diagnostics(self) -> list[Diagnostic]:
        return []

    def close(self) -> None:
        pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------------------------- validation
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


def parse_kind(kind) -> int:
    if isinstance(kind, str):
        k = KIND_NAMES.get(kind.strip().lower())
        if k is None:
            raise ValueError(f"unknown disruption kind {kind!r}")
        return k
    k = int(kind)
    if k not in (0, 1, 2, 3):
        raise ValueError(f"unknown disruption kind {kind!r}")
    return k


def _prob(x, name) -> float:
    x = float(x)
    if not (math.isfinite(x) and 0.0 <= x <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {x}")
    return x


# --------------------------------------------------------------------------------------------- sim
class SimJewelBackend(JewelBackend):
    """`sim`: SleeperModel plus a simulated gateway link.

    Link model, per jewel per poll:

    * latency: each delivered report was measured ``latency + U(0, latency_jitter)`` s before ``now``; its phase
      is the jewel's phase at that moment (``sample_age`` says how old);
    * dropouts: a jewel's link goes quiet at rate ``dropout_rate`` per second for an exponential time of mean
      ``dropout_mean`` s; no report -> STALE, last delivered values kept, sample_age keeps growing;
    * link degradation drill: each report lost with probability ``report_loss`` (-> STALE as above) and each
      delivered report corrupted with probability ``report_corruption``. A corrupted report fails the
      gateway's CRC check, so its values are never used: the jewel is flagged ``FAULT | STALE`` for that batch
      and keeps its last good values (counted as ``reports_corrupted``);
    * battery below ``low_battery`` percent -> LOW_BATTERY.

    Model time follows ``now``: the first poll anchors it, later polls advance it by now - last (a clock going
    backwards is counted and ignored).
    """

    name = "sim"

    def __init__(
        self,
        first_id: int = 1,
        count: int = 16,
        seed: int = 0,
        latency: float = 0.01,
        latency_jitter: float = 0.01,
        dropout_rate: float = 0.002,
        dropout_mean: float = 1.0,
        comfort_limit: float = 0.25,
        max_slew: float = 0.5,
        low_battery: float = 15.0,
        model_params: SleeperParams | None = None,
        **model_kw,
    ):
        first_id, count = int(first_id), int(count)
        if count < 0 or first_id < 0 or first_id + count - 1 > 0xFFFFFFFF:
            raise ValueError(f"bad id range first_id={first_id} count={count}")
        for name, v in (
            ("latency", latency),
            ("latency_jitter", latency_jitter),
            ("dropout_rate", dropout_rate),
            ("dropout_mean", dropout_mean),
            ("comfort_limit", comfort_limit),
            ("max_slew", max_slew),
        ):
            if not (math.isfinite(float(v)) and float(v) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        params = model_params or SleeperParams(**model_kw)
        params.comfort_limit = float(comfort_limit)
        params.max_slew = float(max_slew)
        self.model = SleeperModel(count, seed=seed, params=params)
        self.ids = np.arange(first_id, first_id + count, dtype=np.uint32)
        self.rng = np.random.default_rng([int(seed), 7])
        self.latency, self.latency_jitter = float(latency), float(latency_jitter)
        self.dropout_rate, self.dropout_mean = float(dropout_rate), float(dropout_mean)
        self.low_battery = float(low_battery)
        self.report_loss = 0.0
        self.report_corruption = 0.0
        self.link_until: float | None = None
        k = count
        # last delivered report per jewel
        self._r_time = np.full(k, np.nan)
        self._r_phase = np.zeros(k)
        self._r_freq = np.zeros(k)
        self._r_off = np.zeros(k)
        self._r_int = np.zeros(k, np.float32)
        self._drop_until = np.full(k, -np.inf)
        self._last_now: float | None = None
        self.started = False
        self.counters = Counter()
        self.cmd_rejected = Counter()
        self.last_command_message = ""
        self.last_inject_message = ""

    # ----------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.started = False

    def _advance_to(self, now: float) -> None:
        now = float(now)
        if not math.isfinite(now):
            self.counters["bad_clock"] += 1
            return
        if self._last_now is None:
            self._last_now = now
            self.model.t = now
            self.model.drill_until = None
            return
        if now < self._last_now:
            self.counters["clock_backwards"] += 1
            return
        self.model.advance(now - self._last_now)
        self._last_now = now
        if self.link_until is not None and now >= self.link_until:
            self.report_loss = self.report_corruption = 0.0
            self.link_until = None

    # ----------------------------------------------------------------------------------------- poll
    def poll(self, now: float) -> JewelSnapshot:
        if not self.started:
            self.start()
        prev = self._last_now
        self._advance_to(now)
        now = self._last_now if self._last_now is not None else float("nan")
        m, k, rng = self.model, self.model.n, self.rng
        dt = 0.0 if prev is None else max(now - prev, 0.0)
        # link dropouts
        if self.dropout_rate > 0 and dt > 0:
            start = (self._drop_until < now) & (rng.random(k) < -math.expm1(-self.dropout_rate * dt))
            self._drop_until[start] = now + rng.exponential(self.dropout_mean, int(start.sum()))
            self.counters["dropouts"] += int(start.sum())
        # a jewel's first report always arrives (it announced itself), so no sample is ever undefined
        deliver = (self._drop_until < now) | np.isnan(self._r_time)
        if self.report_loss > 0:
            lost = deliver & (rng.random(k) < self.report_loss)
            self.counters["reports_lost"] += int(lost.sum())
            deliver &= ~lost
        corrupt = np.zeros(k, bool)
        if self.report_corruption > 0:
            corrupt = deliver & (rng.random(k) < self.report_corruption)
            self.counters["reports_corrupted"] += int(corrupt.sum())
            deliver &= ~corrupt
        self.counters["reports_delivered"] += int(deliver.sum())
        # delivered reports: measured `age` ago
        age = self.latency + self.latency_jitter * rng.random(k)
        freq = m.frequency
        d = deliver
        self._r_time[d] = now - age[d]
        self._r_phase[d] = wrap_phase(m.phase[d] - 2 * math.pi * freq[d] * age[d])
        self._r_freq[d] = freq[d]
        self._r_off[d] = m.offset[d]
        self._r_int[d] = m.intensity[d]
        status = np.zeros(k, np.uint8)
        status[~deliver] |= STATUS_STALE
        status[corrupt] |= STATUS_FAULT
        status[m.battery < self.low_battery] |= STATUS_LOW_BATTERY
        sample_age = now - self._r_time
        self.counters["polls"] += 1
        return JewelSnapshot(
            stamp=now,
            ids=self.ids.copy(),
            phase=self._r_phase.copy(),
            frequency=self._r_freq.copy(),
            frequency_offset=self._r_off.copy(),
            sample_age=np.maximum(sample_age, 0.0),
            intensity=self._r_int.copy(),
            status=status,
        )

    # ----------------------------------------------------------------------------------------- commands
    def apply_command(self, ids, frequency_offset, intensity, now: float) -> CommandResult:
        res, idx, off, inten = validate_command(ids, frequency_offset, intensity, self.ids, self.model.p.comfort_limit)
        if len(idx):
            self._advance_to(now)  # the command takes effect from `now`
            self.model.set_offset_target(idx, off)
            given = np.isfinite(inten)  # NaN: intensity left as it is
            self.model.set_intensity(idx[given], inten[given])
        self.counters["commands_accepted"] += res.accepted
        self.counters["command_batches"] += 1
        self.cmd_rejected.update({r: c for r, c in res.rejected.items() if c})
        self.last_command_message = res.message
        return res

    # ----------------------------------------------------------------------------------------- drills
    def inject(
        self,
        kind,
        fraction: float = 0.0,
        groups: int = 2,
        separation: float = 0.05,
        report_loss: float = 0.0,
        report_corruption: float = 0.0,
        duration: float = 0.0,
        seed: int = 0,
        now: float | None = None,
    ) -> tuple[bool, str, int]:
        try:
            k = parse_kind(kind)
            duration = float(duration)
            if not (math.isfinite(duration) and duration >= 0):
                raise ValueError(f"duration must be finite and >= 0, got {duration}")
            if now is not None:
                self._advance_to(now)
            t = self.model.t
            if k == KIND_CLEAR:
                self.model.clear_drills()
                self.report_loss = self.report_corruption = 0.0
                self.link_until = None
                msg, affected = "cleared every active disruption", 0
            elif k == KIND_OVERLAPPING_FREQUENCIES:
                idx = self.model.inject_overlapping(
                    _prob(fraction, "fraction"), int(groups), float(separation), seed=int(seed), duration=duration
                )
                affected = len(idx)
                msg = (
                    f"overlapping frequencies: {affected} jewels in {int(groups)} groups "
                    f"{float(separation):g} Hz apart" + (f" for {duration:g} s" if duration else "")
                )
            elif k == KIND_PHASE_SCRAMBLE:
                idx = self.model.inject_phase_scramble(_prob(fraction, "fraction"), seed=int(seed))
                affected = len(idx)
                msg = f"phase scramble: {affected} jewels"
            else:
                self.report_loss = _prob(report_loss, "report_loss")
                self.report_corruption = _prob(report_corruption, "report_corruption")
                self.link_until = t + duration if duration > 0 else None
                affected = self.model.n
                msg = (
                    f"link degradation: report_loss={self.report_loss:g} "
                    f"report_corruption={self.report_corruption:g}" + (f" for {duration:g} s" if duration else "")
                )
        except (ValueError, TypeError, OverflowError) as exc:
            self.counters["inject_rejected"] += 1
            self.last_inject_message = f"rejected: {exc}"
            return False, self.last_inject_message, 0
        self.counters["injects"] += 1
        self.last_inject_message = msg
        return True, msg, int(affected)

    # ----------------------------------------------------------------------------------------- diagnostics
    def diagnostics(self) -> list[Diagnostic]:
        c = self.counters
        out: list[Diagnostic] = []
        stale = int(np.sum(self._drop_until >= (self._last_now or 0.0)))
        link_level = DIAG_OK
        link_msg = "link ok"
        if self.report_loss or self.report_corruption:
            link_level, link_msg = DIAG_WARN, "link degradation drill active"
        out.append(
            (
                link_level,
                "jewel sim: link",
                link_msg,
                {
                    "jewels": str(self.model.n),
                    "first_id": str(int(self.ids[0])) if len(self.ids) else "-",
                    "reports_delivered": str(c["reports_delivered"]),
                    "reports_lost": str(c["reports_lost"]),
                    "reports_corrupted": str(c["reports_corrupted"]),
                    "dropouts": str(c["dropouts"]),
                    "in_dropout": str(stale),
                    "report_loss": f"{self.report_loss:g}",
                    "report_corruption": f"{self.report_corruption:g}",
                    "polls": str(c["polls"]),
                    "clock_backwards": str(c["clock_backwards"] + c["bad_clock"]),
                },
            )
        )
        rej = sum(self.cmd_rejected.values())
        out.append(
            (
                DIAG_WARN if rej else DIAG_OK,
                "jewel sim: commands",
                self.last_command_message or "no commands yet",
                {
                    "batches": str(c["command_batches"]),
                    "accepted": str(c["commands_accepted"]),
                    **{f"rejected_{r}": str(self.cmd_rejected[r]) for r in REJECT_REASONS},
                },
            )
        )
        m = self.model
        drill = int(np.sum(m.drill_group >= 0))
        out.append(
            (
                DIAG_WARN if drill else DIAG_OK,
                "jewel sim: drills",
                self.last_inject_message or "no drill",
                {
                    "overlapping_jewels": str(drill),
                    "injects": str(c["injects"]),
                    "inject_rejected": str(c["inject_rejected"]),
                    "low_battery": str(int(np.sum(m.battery < self.low_battery))),
                    "stage_counts": ",".join(str(int(x)) for x in np.bincount(m.stage, minlength=5)),
                },
            )
        )
        return out


# --------------------------------------------------------------------------------------------- factory
def make_jewel_backend(name: str, **params) -> JewelBackend:
    """'sim' -> SimJewelBackend(**params); 'serial' -> SerialJewelBackend(**params). ('replay' comes later.)"""
    key = str(name).strip().lower()
    if key == "sim":
        return SimJewelBackend(**params)
    if key == "serial":
        from .jewel_serial import SerialJewelBackend

        return SerialJewelBackend(**params)
    raise ValueError(f"unknown jewel backend {name!r}; choose 'sim' or 'serial'")
