"""`sim` jewel backend: the sleeper + oscillator model behind a simulated gateway link (no rclpy)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ...constants import DiagnosticLevel, DisruptionKind, JewelStatus
from ...models.sleeper import SleeperModel, SleeperParams
from ...phase import wrap_phase
from .base import Diagnostic, JewelBackend, JewelSnapshot
from .commands import REJECT_REASONS, CommandResult, validate_command
from .drills import Drill, DrillTarget


class SimJewelBackend(JewelBackend, DrillTarget):
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
        self._cmd_now = -math.inf  # the offsets are integrated up to here by commands (advance_offset)
        self._all_reported = k == 0  # every jewel has delivered a first report (no NaN left in _r_time)
        # per-poll scratch (the snapshot's own arrays are always new)
        self._buf = tuple(np.empty(k) for _ in range(3)) + tuple(np.empty(k, np.bool_) for _ in range(2))
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

    def _advance_offset_to(self, now: float) -> None:
        """Bring the offsets (and their share of the phase) to ``now`` for a command taking effect then; the rest
        of the model follows at the next poll (SleeperModel.advance_offset: the same result as a whole step at
        a fraction of its cost). The clock checks are those of _advance_to."""
        now = float(now)
        if not math.isfinite(now):
            self.counters["bad_clock"] += 1
            return
        if self._last_now is None:
            self._advance_to(now)  # the first time anchors the model
            return
        if now < self._last_now or now < self._cmd_now:
            self.counters["clock_backwards"] += 1
            return
        self.model.advance_offset(now - self._last_now)
        self._cmd_now = now

    # ----------------------------------------------------------------------------------------- poll
    def poll(self, now: float) -> JewelSnapshot:
        if not self.started:
            self.start()
        prev = self._last_now
        self._advance_to(now)
        now = self._last_now if self._last_now is not None else float("nan")
        m, k, rng = self.model, self.model.n, self.rng
        dt = 0.0 if prev is None else max(now - prev, 0.0)
        # link dropouts (the random draws are the same, in the same order, as an element-wise version's)
        tm, fb, pb, deliver, mb = self._buf
        if self.dropout_rate > 0 and dt > 0:
            rng.random(out=tm)
            np.less(tm, -math.expm1(-self.dropout_rate * dt), out=mb)
            np.less(self._drop_until, now, out=deliver)
            mb &= deliver
            starts = int(np.count_nonzero(mb))
            if starts:
                self._drop_until[np.flatnonzero(mb)] = now + rng.exponential(self.dropout_mean, starts)
            self.counters["dropouts"] += starts
        # a jewel's first report always arrives (it announced itself), so no sample is ever undefined
        np.less(self._drop_until, now, out=deliver)
        if not self._all_reported:
            deliver |= np.isnan(self._r_time)
        if self.report_loss > 0:
            lost = deliver & (rng.random(k) < self.report_loss)
            self.counters["reports_lost"] += int(lost.sum())
            deliver &= ~lost
        corrupt = None
        if self.report_corruption > 0:
            corrupt = deliver & (rng.random(k) < self.report_corruption)
            self.counters["reports_corrupted"] += int(corrupt.sum())
            deliver &= ~corrupt
        # delivered reports: measured `age` ago. A jewel measures in order: a report that would have been measured
        # before the one already delivered (two polls close together after a late timer, with latency jitter) is
        # not a new report (the synchronizer would reject it as out of order)
        age = rng.random(out=pb)
        age *= self.latency_jitter
        age += self.latency
        np.subtract(now, age, out=tm)  # the reports' measurement times
        np.less_equal(tm, self._r_time, out=mb)
        np.logical_not(mb, out=mb)
        deliver &= mb
        self.counters["reports_delivered"] += int(np.count_nonzero(deliver))
        # commit the delivered reports (the phase as it was `age` ago); the others keep their last values
        freq = np.add(m.natural, m.offset, out=fb)
        np.copyto(self._r_time, tm, where=deliver)
        np.copyto(self._r_freq, freq, where=deliver)
        np.multiply(freq, 2 * math.pi, out=tm)
        tm *= age
        np.subtract(m.phase, tm, out=tm)
        np.copyto(self._r_phase, wrap_phase(tm, out=tm), where=deliver)
        np.copyto(self._r_off, m.offset, where=deliver)
        np.copyto(self._r_int, m.intensity, where=deliver)
        if not self._all_reported:
            self._all_reported = not np.isnan(self._r_time).any()
        status = np.logical_not(deliver).view(np.uint8) * np.uint8(JewelStatus.STALE)
        if corrupt is not None:
            status[corrupt] |= JewelStatus.FAULT
        low = m.battery < self.low_battery
        if low.any():
            status[low] |= JewelStatus.LOW_BATTERY
        sample_age = np.subtract(now, self._r_time)
        np.maximum(sample_age, 0.0, out=sample_age)
        self.counters["polls"] += 1
        return JewelSnapshot(
            stamp=now,
            ids=self.ids.copy(),
            phase=self._r_phase.copy(),
            frequency=self._r_freq.copy(),
            frequency_offset=self._r_off.copy(),
            sample_age=sample_age,
            intensity=self._r_int.copy(),
            status=status,
        )

    # ----------------------------------------------------------------------------------------- commands
    def apply_command(self, ids, frequency_offset, intensity, now: float) -> CommandResult:
        fast = self._whole_batch(ids, frequency_offset, intensity)
        if fast is not None:  # every jewel once, in order, all valid: what validate_command would accept whole
            res, off, inten = fast
            self._advance_offset_to(now)  # the command takes effect from `now`
            self.model.set_offset_target(slice(None), off)
            if inten is not None:
                self.model.set_intensity(slice(None), inten)
        else:
            res, idx, off, inten = validate_command(
                ids, frequency_offset, intensity, self.ids, self.model.p.comfort_limit
            )
            if len(idx):
                self._advance_offset_to(now)  # the command takes effect from `now`
                self.model.set_offset_target(idx, off)
                given = np.isfinite(inten)  # NaN: intensity left as it is
                self.model.set_intensity(idx[given], inten[given])
        self.counters["commands_accepted"] += res.accepted
        self.counters["command_batches"] += 1
        self.cmd_rejected.update({r: c for r, c in res.rejected.items() if c})
        self.last_command_message = res.message
        return res

    def _whole_batch(self, ids, frequency_offset, intensity):
        """(result, offsets, intensities or None) when the batch holds every jewel of this backend exactly once in
        id order with valid values (what the synchronizer sends: the ids of the state batch), else None: then
        validate_command decides element by element. A few bound checks over the batch instead of its
        per-element classification (an O(n log n) sort for duplicates), with the result it would give."""
        k = self.ids.shape[0]
        if not (isinstance(ids, np.ndarray) and ids.dtype == np.uint32 and ids.shape == (k,) and k):
            return None
        if not (isinstance(frequency_offset, np.ndarray) and frequency_offset.shape == (k,)):
            return None
        if not (isinstance(intensity, np.ndarray) and intensity.shape in ((0,), (k,))):
            return None
        if ids[0] != self.ids[0] or ids[-1] != self.ids[-1] or not np.array_equal(ids, self.ids):
            return None
        off = np.asarray(frequency_offset, dtype=np.float64)
        # NaN propagates through the reduction and fails the comparison: non-finite values go the general way
        if not float(np.maximum.reduce(np.abs(off))) <= float(self.model.p.comfort_limit):
            return None
        inten = None
        if intensity.shape[0]:
            inten = np.asarray(intensity, dtype=np.float32)
            if not (float(np.minimum.reduce(inten)) >= 0.0 and float(np.maximum.reduce(inten)) <= 1.0):
                return None
        res = CommandResult(accepted=k, message=f"accepted {k}/{k}")
        return res, off, inten

    # ----------------------------------------------------------------------------------------- drills
    def inject(self, drill: Drill, now: float | None = None) -> tuple[bool, str, int]:
        try:
            if now is not None:
                self._advance_to(now)
            duration = float(drill.duration)
            if drill.kind == DisruptionKind.CLEAR:
                self.model.clear_drills()
                self.report_loss = self.report_corruption = 0.0
                self.link_until = None
                msg, affected = "cleared every active disruption", 0
            elif drill.kind == DisruptionKind.OVERLAPPING_FREQUENCIES:
                idx = self.model.inject_overlapping(
                    float(drill.fraction),
                    int(drill.groups),
                    float(drill.separation),
                    seed=int(drill.seed),
                    duration=duration,
                )
                affected = len(idx)
                msg = (
                    f"overlapping frequencies: {affected} jewels in {int(drill.groups)} groups "
                    f"{float(drill.separation):g} Hz apart" + (f" for {duration:g} s" if duration else "")
                )
            elif drill.kind == DisruptionKind.PHASE_SCRAMBLE:
                idx = self.model.inject_phase_scramble(float(drill.fraction), seed=int(drill.seed))
                affected = len(idx)
                msg = f"phase scramble: {affected} jewels"
            else:
                self.report_loss = float(drill.report_loss)
                self.report_corruption = float(drill.report_corruption)
                self.link_until = self.model.t + duration if duration > 0 else None
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
        link_level = DiagnosticLevel.OK
        link_msg = "link ok"
        if self.report_loss or self.report_corruption:
            link_level, link_msg = DiagnosticLevel.WARN, "link degradation drill active"
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
                DiagnosticLevel.WARN if rej else DiagnosticLevel.OK,
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
                DiagnosticLevel.WARN if drill else DiagnosticLevel.OK,
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
