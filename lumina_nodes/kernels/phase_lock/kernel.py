"""Phase-locking kernel of the Lumina synchronizer (plain numpy; no rclpy).

The ROS node wraps one :class:`PhaseLockKernel`: it calls :meth:`PhaseLockKernel.ingest` once per received
driver state batch, :meth:`PhaseLockKernel.step` once per tick (50 Hz), then
:meth:`PhaseLockKernel.commands_for` with the slots of each driver's last batch.

Model and units
---------------
Jewel ``i`` pulses at phase ``theta_i`` (rad) with frequency ``f_i = natural_i(t) + offset_i`` (Hz).
``natural_i`` is unknown and drifts slowly; ``offset_i`` is the correction this kernel commands. Devices clamp
``|offset| <= max_offset_hz`` and slew towards the commanded offset (no phase jumps). All times are seconds on
the kernel clock (the ``now`` passed in and the reports' ``sample_time``); all frequencies are Hz; phases in the
public API are radians (reported ones in [-pi, pi), :mod:`lumina_nodes.phase`). Internally phases are kept in
*cycles* (rad / 2 pi), wrapped to +-0.5 cycle without trig (the per-jewel hot loop with ``x - rint(x)`` in
place, see :meth:`PhaseLockKernel.step`).

Controller (``mode='controller'``), per active jewel (e in cycles, frequencies in Hz, s = coupling scale)::

    every tick:
      w_i     = f_rep_i + k_i (raw_i + cmd_i - f_rep_i)                rate: reported, leaning to commanded
      k_i     = min(1, (now - t_i) / MODEL_AGE_S) / 2                  ... as the report ages (0.1 s: midway)
      y_i     = theta_i + w_i * (now - t_i)                            the last report predicted to now
      th_i   += w_i * t_e;  v = wrap(y_i - th_i)                       phase estimate: predict, innovation
      th_i   += v if |v| > estimate_gate_cycles else estimate_gain * v
      e_i     = wrap(psi_ref_i - th_i)     psi_ref_i += Omega_i * t_e  (t_e: time since the last tick)
      d_i     = e_i - way_i          way_i = rint(e_i - long_way_lookahead_s * (2 g_i + cmd_i)) (slow ticks)
      rate    = s * sign(d_i) * min(kp |d_i|, sqrt(2 approach_decel_fraction max_slew_hz_per_s |d_i|))
      target  = rate - g_i  =  (Omega_i - nat_i) + I_i + rate                  (feed-forward + I + approach)
      cmd_i  += clip(clip(target, +-max_offset_hz) - cmd_i, +-max_slew_hz_per_s * dt)    dt = min(t_e, 10 ticks)
    every integral_every_ticks ticks (dt_s = time since the last such tick):
      nat_i  += min(1, dt_s / frequency_filter_s) * (raw_i - nat_i)  raw_i = frequency - frequency_offset (latest)
      I_i     = clip(I_i + s * ki * dt_s * clip(e_i, +-integral_zone_cycles), +-integral_limit_hz)
      g_i     = nat_i - I_i - Omega_i

``Omega_i`` is the jewel's target frequency: the population mean of ``nat`` (default), a cluster merge target,
its cluster's channel frequency, or a steered reference (:meth:`PhaseLockKernel.set_reference`);
``psi_ref_i`` advances at ``Omega_i``. The predictions lean on the plant: a jewel runs at its natural frequency
(``raw_i``: reported frequency minus reported offset) plus the offset it was sent, so reports and estimates
are carried forward at a rate that leans from the reported frequency to midway between it and the commanded one
as the report ages (``w_i``; midway is the exact mean of a ramp from the reported offset to the current command;
a fresh report is carried at its own frequency, so a jewel that does not follow its commands, a replayed night,
is estimated without bias at the nominal delays). Reports late by most of a second (sim
time at 4x on a loaded machine) then still lock, where carrying them at their reported frequency lost the lock
(bench/sync_delay.py); a jewel that ignores its commands and reports late is estimated up to half a command's
worth off, and its reports pull the estimate back. The feed-forward removes each
jewel's detuning, the integral any residual bias, so the loop is type 2 (zero steady phase error for a
constant detuning). The approach is the minimum-time (bang-bang) law of the comfort limits: full offset towards
the target, braking on the slew limit's curve, linear (gain kp) near the target; a jewel whose detuning and
current rate make the other way round the shorter trip takes it (``way_i``). bench/sync_lock.py measures it
against the physical bound of any law.
Every figure (r, psi, lock_fraction, rms_phase_error) uses the phase estimates ``th_i``; rms_phase_error adds
the estimate's error variance (``estimate_gain / 2`` x the innovation variance). In 'kuramoto' mode the errors
are measured from psi (the reference is re-anchored on psi every tick).

``mode='kuramoto'`` is the reference plain mean-field Kuramoto: ``offset_i = s*K*r*sin(psi - theta_i)/(2 pi)`` Hz,
computed trig-free per jewel from the float32 ``cos/sin`` of the wrapped errors (``r sin(psi-theta) =
Y cos(theta) - X sin(theta)``), clamped and slew-limited like the controller.

Hot path: everything per tick is O(N), vectorised, uses preallocated buffers, float32 state and float32 trig
(no float64 sin/cos anywhere), float32 BLAS sums inside a block (``exact_sums=True``: float64) and float64
accumulation across blocks, and
runs in cache-sized blocks of ``SyncConfig.chunk`` slots (a loop over blocks, never over jewels or clusters).
Amortised work: the natural-frequency filter, the integrator and the population mean run every
``integral_every_ticks`` ticks (default 4); cluster detection every ``cluster_every_ticks`` ticks (default 10 =
200 ms, a Gaussian partition of a strided sample of <= ``cluster_sample_size`` jewels, :mod:`.clusters`); the
channel allocation only
when the cluster structure changes. r, psi, lock figures, per-driver and per-cluster order parameters are
computed every tick. Float32 is ample here: phases are wrapped to +-0.5 cycle (resolution ~6e-8 cycle),
offsets and frequencies <= 20 Hz (resolution ~1e-6 Hz); absolute times stay float64.
"""

import math

import numpy as np

from lumina_nodes.constants import JEWEL_NONE
from lumina_nodes.phase import INV_TWO_PI, TWO_PI, wrap_cycles, wrap_phase

from .channels import assign_channels
from .clusters import gaussian_partition
from .config import SyncConfig
from .results import REJECT_REASONS, ClusterTable, DriverTable, IngestReport, TickResult

# Phases of any wrapping are taken (a device may report an unwrapped phase counter) up to |phase| <= 2**36 rad
# (~1.1e10 cycles: 17 years of a 20 Hz counter), where the float64 spacing is 2**-16 rad = 1.5e-5 rad, far below
# the report noise; beyond it the phase has lost its fraction of a cycle and is rejected (bad_phase). Phases
# within +-64 pi are stored as they are (float32 cycles, +-32); larger ones are wrapped in float64 first.
_MAX_ABS_PHASE = 2.0**36
_WRAPPED_PHASE = 64 * math.pi
_mn = np.minimum.reduce  # direct ufunc reductions (NaN-propagating; skip ndarray.min's Python layer)
_mx = np.maximum.reduce
try:  # the clip ufunc itself (np.clip adds ~3 us of Python wrapping per call)
    from numpy._core.umath import clip as _clip
except ImportError:  # numpy < 2 (the system numpy of a ROS workspace)
    _clip = np.clip
_NEVER = -1e30  # sample time of a never-sampled slot (finite in float32 too: age * f stays finite, no NaN)
#: a report this old (s) is carried at the rate midway between its reported and the commanded frequency; a younger
#: one leans to its reported frequency in proportion
MODEL_AGE_S = 0.1
_CODE = {name: i + 1 for i, name in enumerate(REJECT_REASONS)}


class _DriverCache:
    __slots__ = ("ids", "slots", "start", "version", "last_t", "used")

    def __init__(self, ids, slots, start, version, used=-math.inf):
        self.ids, self.slots, self.start, self.version = ids, slots, start, version
        self.used = used  # kernel time this mapping was last registered (reclaim() keeps its slots)
        self.last_t = None  # every slot of this batch last accepted a sample at exactly this time (fast path)


# ------------------------------------------------------------------------------------------------------ kernel
class PhaseLockKernel:
    """Central phase-locking synchronizer for N jewels (N from 1 to ~1e6), all arrays preallocated per slot.

    Parameters
    ----------
    capacity : int
        Initial number of jewel slots; grows by doubling when more jewels register.
    config : SyncConfig
        Parameters; replaced (after :meth:`SyncConfig.validate`) with :meth:`set_config`.

    Notes
    -----
    Per-slot state, shape (capacity,): ``owner`` int32 driver index (-1 none); ``t_s``
    float64 last accepted sample time (s); float32: ``th`` last phase (cycles), ``f_rep`` last reported frequency
    (Hz), ``raw`` last ``frequency - frequency_offset`` (Hz), ``nat`` filtered natural frequency (Hz), ``integ``
    integral term (Hz), ``g = nat - integ - target_frequency`` (Hz, refreshed on slow ticks), ``cmd`` commanded
    offset (Hz), ``err`` wrapped error to target at the last tick (cycles); ``active`` bool; ``labels`` intp
    cluster index (valid when >= 2 clusters).

    Typical use (what the ROS node does)::

        k = PhaseLockKernel(10_000, SyncConfig())
        rep = k.ingest(key, ids, phase, frequency, frequency_offset, stamp, now)   # per state batch
        res = k.step(now)                                                          # per 50 Hz tick
        offsets = k.commands_for(key, k.register(key, ids))                        # per driver
    """

    def __init__(self, capacity: int = 1024, config: SyncConfig | None = None):
        self.config = config if config is not None else SyncConfig()
        errs = self.config.validate()
        if errs:
            raise ValueError("invalid SyncConfig: " + "; ".join(errs))
        self._cap = 0
        self._n = 0
        self._cap0 = max(int(capacity), 16)  # reclaim() never shrinks the storage below this
        self._alloc(self._cap0)
        self._remap = None  # old slot -> new slot (-1: freed) of the last reclaim that moved slots
        self._map_ids = np.empty(0, dtype=np.uint32)
        self._map_slots = np.empty(0, dtype=np.intp)
        self._drv_index: dict[int, int] = {}
        self._drv_keys: list[int] = []
        self._cache: dict[int, _DriverCache] = {}
        self._own_version = 0
        self._runs_key = None
        self._chunk_runs = []
        self._drv_total = np.zeros(1, dtype=np.intp)
        self._scale_arr = None
        self._alloc_buffers()
        # reference state
        self._psi_ref = 0.0  # cycles, wrapped
        self._omega_ref = None  # Hz (what psi_ref advances at)
        self._omega_pop = None  # Hz, last population mean of nat
        self._user_ref = None
        self._user_ref_slew = 0.0
        self._need_ref_init = True
        self._last_step = None
        self._last_psi = 0.0
        self._now = -math.inf
        self._clock_skew = 0.0  # s: how far clocks distributed by messages may run ahead (set_clock_skew)
        self._tick = 0
        self._views_key = None
        self._views = []
        self._force_slow = False
        # blocks holding re-captured jewels: their g and way are refreshed on the next tick (the other slow terms,
        # which integrate over time, wait for their slow tick)
        self._renew_blocks = set()
        self._dacc = np.zeros((4, 1))
        self._drv_keys_arr = np.zeros(0, np.int64)
        self._slow_dt = 0.0
        self._gen_writes = 0
        # clusters
        self._k = 1
        self._resolution = "none"
        self._sep = False
        self._merge_target = None
        self._psi_tab = np.zeros(1)
        self._om_tab = np.zeros(1)
        self._cl_center = np.zeros(1)
        self._cl_spread = np.zeros(1)
        self._cand_k = 1
        self._cand_count = 0

    # ------------------------------------------------------------------ storage
    _SLOT_FIELDS = (
        ("_owner", np.int32, -1),
        ("_t_s", np.float64, _NEVER),
        ("_th", np.float32, 0.0),
        ("_f_rep", np.float32, 0.0),
        ("_nat", np.float32, 0.0),
        ("_integ", np.float32, 0.0),
        ("_cmd", np.float32, 0.0),
        ("_err", np.float32, 0.0),
        ("_g", np.float32, 0.0),
        ("_raw", np.float32, 0.0),
        ("_thf", np.float32, 0.0),
        ("_way", np.float32, 0.0),
        ("_active", np.bool_, False),
        ("_labels", np.intp, 0),
        ("_scratch", np.intp, 0),
    )

    def _alloc(self, cap):
        for name, dt, fill in self._SLOT_FIELDS:
            new = np.full(cap, fill, dtype=dt)
            if self._cap:
                new[: self._n] = getattr(self, name)[: self._n]
            setattr(self, name, new)
        if getattr(self, "_scale_arr", None) is not None:
            new = np.full(cap, float(self.config.coupling_scale))
            new[: self._n] = self._scale_arr[: self._n]
            self._scale_arr = new
        if getattr(self, "_kcs", None) is not None:
            self._kcs = np.zeros((2, cap), np.float32)
        self._cap = cap

    def _alloc_buffers(self):
        ch = int(self.config.chunk)
        self._bx = np.empty(ch, np.float32)
        self._bt = np.empty(ch, np.float32)
        self._bp = np.empty(ch, np.float32)
        self._bo = np.empty(ch, np.float32)
        self._bcs = np.empty((2, ch), np.float32)  # cos / sin rows: one reduction gives both sums
        self._ones32 = np.ones(ch, np.float32)
        self._bm = np.empty(ch, np.bool_)
        self._runs_key = None
        self._kcs = None
        self._blk_t = []
        self._blk_all_act = []

    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def jewels_total(self) -> int:
        return self._n

    def set_config(self, config: SyncConfig) -> list[str]:
        """Replace the configuration if it validates; return the errors (empty list = applied)."""
        errs = config.validate()
        if errs:
            return errs
        rebuf = int(config.chunk) != int(self.config.chunk)
        self.config = config
        self._force_slow = True
        if rebuf:
            self._alloc_buffers()
        return []

    # ------------------------------------------------------------------ registration
    @staticmethod
    def _driver_key(driver_key) -> int:
        """The key as a Python int; ValueError unless it is an integer in the int64 range (step() reports the
        keys as an int64 array: anything else is refused at register/ingest, never later inside step())."""
        if isinstance(driver_key, bool) or not isinstance(driver_key, (int, np.integer)):
            raise ValueError(f"driver_key must be an integer, got {type(driver_key).__name__} {driver_key!r}")
        driver_key = int(driver_key)
        if not -(2**63) <= driver_key < 2**63:
            raise ValueError(f"driver_key must fit in int64 (-2**63 .. 2**63 - 1), got {driver_key}")
        return driver_key

    def _driver(self, driver_key) -> int:
        d = self._drv_index.get(driver_key) if type(driver_key) is int else None
        if d is None:
            driver_key = self._driver_key(driver_key)
            d = self._drv_index.get(driver_key)
        if d is None:
            d = len(self._drv_keys)
            self._drv_index[driver_key] = d
            self._drv_keys.append(driver_key)
            self._runs_key = None
        return d

    def register(self, driver_key: int, ids: np.ndarray) -> np.ndarray:
        """Map jewel ids to slots (vectorised), creating slots for new ids.

        Parameters
        ----------
        driver_key : int
            The reporting driver.
        ids : ndarray, shape (n,), uint32
            Jewel ids (unique city-wide).

        Returns
        -------
        slots : ndarray, shape (n,), intp
            Slot per id; -1 where the id is rejected (duplicate in the batch, or owned by another driver that
            reported it within ``silence_timeout_s``). Repeating the previous ids array of a driver costs one
            comparison with the cached copy and returns the cached slots array (treat it as read-only).

        Raises
        ------
        ValueError
            If ``ids`` is not a 1-D array of integers in the uint32 range.
        """
        ids = np.asarray(ids)
        if ids.ndim != 1 or (
            ids.dtype != np.uint32
            and (ids.dtype.kind not in "iu" or (ids.size and (int(ids.min()) < 0 or int(ids.max()) > 0xFFFFFFFF)))
        ):
            raise ValueError(f"ids must be a 1-D array of uint32 values, got {ids.dtype} shape {ids.shape}")
        return self._register(driver_key, ids, self._now)[0]

    def lookup(self, ids) -> np.ndarray:
        """Slots of known jewel ids without registering new ones: shape (n,) intp, -1 for an unknown id.

        Raises ValueError unless ``ids`` is a 1-D array of integers in the uint32 range (an id >= 2**32 is
        refused, not wrapped onto another jewel's id)."""
        ids = np.asarray(ids)
        if ids.dtype != np.uint32:
            if ids.ndim != 1 or (ids.dtype.kind not in "iu" and ids.size):
                raise ValueError(f"ids must be a 1-D array of uint32 values, got {ids.dtype} shape {ids.shape}")
            if ids.size and (int(ids.min()) < 0 or int(ids.max()) > 0xFFFFFFFF):
                raise ValueError(
                    f"ids must be uint32 values (0 .. 2**32 - 1), got values in [{int(ids.min())}, {int(ids.max())}]"
                )
            ids = ids.astype(np.uint32)
        elif ids.ndim != 1:
            raise ValueError(f"ids must be a 1-D array of uint32 values, got shape {ids.shape}")
        if not self._map_ids.shape[0]:
            return np.full(ids.shape[0], -1, dtype=np.intp)
        pos = np.minimum(np.searchsorted(self._map_ids, ids), self._map_ids.shape[0] - 1)
        return np.where(self._map_ids[pos] == ids, self._map_slots[pos], -1).astype(np.intp)

    # ------------------------------------------------------------------ reclamation
    def drop_driver(self, driver_key) -> int:
        """Forget a driver: its slots become unowned (freed by the next :meth:`reclaim`), its cached mapping
        and its row of the driver table go. Returns how many slots it owned (0 for a key never seen)."""
        d = self._drv_index.get(self._driver_key(driver_key))
        if d is None:
            return 0
        n = self._n
        own = self._owner[:n]
        mine = own == d
        owned = int(np.count_nonzero(mine))
        own[mine] = -1
        self._t_s[:n][mine] = _NEVER
        own[own > d] -= 1  # the drivers after it move up one index (vectorised, no loop per jewel)
        del self._drv_keys[d]
        self._drv_index = {key: i for i, key in enumerate(self._drv_keys)}
        self._own_version += 1
        cache = {}
        for i, c in self._cache.items():  # the other drivers' mappings are unchanged: still valid
            if i != d:
                if c.version == self._own_version - 1:
                    c.version = self._own_version
                cache[i - 1 if i > d else i] = c
        self._cache = cache
        self._drv_keys_arr = np.asarray(self._drv_keys, dtype=np.int64)
        self._runs_key = None
        self._blocks_dirty()
        return owned

    def reclaim(self, now: float, after_s: float | None = None):
        """Free the slots of jewels silent for longer than ``after_s`` (default ``config.reclaim_after_s``)
        and of unowned ones, except the slots of a driver's mapping registered within that time (a jewel its
        driver keeps reporting, even as STALE, keeps its slot).

        The kept slots are compacted in order (vectorised), so a driver's contiguous batch stays contiguous: its
        cached mapping is renumbered and keeps the fast path. The storage shrinks by halves while it is at most a
        quarter full (never below the initial capacity). Slot numbers change: map slots kept elsewhere with
        :meth:`remap_slots`.

        Returns
        -------
        kept : ndarray of intp or None
            The old slot of each new slot (``new slot i`` was ``kept[i]``), or None when nothing was freed.
        """
        n = self._n
        if not n:
            return None
        after = self.config.reclaim_after_s if after_s is None else float(after_s)
        cut = float(now) - max(after, self.silence_window)  # never a jewel that is not yet silent
        if float(_mn(self._t_s[:n])) >= cut and int(_mn(self._owner[:n])) >= 0:
            return None  # everything sampled recently and owned: nothing to free (one pass, no allocation)
        keep = self._t_s[:n] >= cut
        keep &= self._owner[:n] >= 0
        for c in self._cache.values():  # per driver, not per jewel
            if c.version == self._own_version and c.used >= cut:
                keep[c.slots] = True
        kept = np.flatnonzero(keep)
        m = kept.shape[0]
        if m == n:
            return None
        remap = np.full(n, -1, dtype=np.intp)
        remap[kept] = np.arange(m, dtype=np.intp)
        for name, _dt, fill in self._SLOT_FIELDS:
            a = getattr(self, name)
            a[:m] = a[kept]
            a[m:n] = fill
        if self._scale_arr is not None:
            self._scale_arr[:m] = self._scale_arr[kept]
            self._scale_arr[m:n] = 1.0
        if self._kcs is not None:
            self._kcs[:, :m] = self._kcs[:, kept]
        live = keep[self._map_slots]
        self._map_ids = self._map_ids[live]
        self._map_slots = remap[self._map_slots[live]]
        version = self._own_version
        self._own_version += 1
        for d in list(self._cache):
            c = self._cache[d]
            slots = remap[c.slots] if c.slots.shape[0] else c.slots
            if c.version != version or (slots < 0).any():
                del self._cache[d]  # a mapping that lost a slot is rebuilt by its driver's next batch
                continue
            c.slots, c.version, c.last_t = slots, self._own_version, None
            c.start = int(slots[0]) if c.start >= 0 else -1
        self._n = m
        self._remap = remap
        if self._renew_blocks:  # block numbers changed: everything renewed at once
            self._renew_blocks.clear()
            self._force_slow = True
        self._runs_key = None
        self._views_key = None
        self._gen_writes += 1
        self._blocks_dirty()
        self._blk_all_act = [False] * len(self._blk_all_act)
        cap = self._cap
        while cap // 2 >= max(2 * m, self._cap0) and 4 * m <= cap:
            cap //= 2
        if cap < self._cap:
            self._alloc(cap)  # copies the first m slots (and the per-slot coupling scale)
        return kept

    def remap_slots(self, slots) -> np.ndarray:
        """Slots numbered before the last :meth:`reclaim` that moved slots, numbered after it (-1: freed or -1).
        Call it right after that reclaim (a second reclaim replaces the mapping)."""
        slots = np.asarray(slots, dtype=np.intp)
        if self._remap is None:
            return slots
        ok = (slots >= 0) & (slots < self._remap.shape[0])
        return np.where(ok, self._remap[np.where(ok, slots, 0)], -1)

    def _register(self, driver_key, ids, now):
        d = self._driver(driver_key)
        c = self._cache.get(d)
        n = ids.shape[0]
        if c is not None and c.version == self._own_version and c.ids.shape[0] == n and ids.dtype == c.ids.dtype:
            if (c.ids.tobytes() == ids.tobytes()) if n <= 4096 else bool(np.equal(c.ids, ids).all()):
                c.used = now
                return c.slots, None, c.start
        ids = ids.astype(np.uint32, copy=False)
        if self._map_ids.shape[0]:
            pos = np.searchsorted(self._map_ids, ids)
            np.minimum(pos, self._map_ids.shape[0] - 1, out=pos)
            found = self._map_ids[pos] == ids
            slots = np.where(found, self._map_slots[pos], -1)
        else:
            found = np.zeros(n, dtype=bool)
            slots = np.full(n, -1, dtype=np.intp)
        if not found.all():
            miss = ~found
            new_ids = np.unique(ids[miss])
            m = new_ids.shape[0]
            start = self._n
            if start + m > self._cap:
                cap = self._cap
                while cap < start + m:
                    cap *= 2
                self._alloc(cap)
            new_slots = np.arange(start, start + m, dtype=np.intp)
            self._n = start + m
            all_ids = np.concatenate([self._map_ids, new_ids])
            all_slots = np.concatenate([self._map_slots, new_slots])
            order = np.argsort(all_ids, kind="stable")
            self._map_ids, self._map_slots = all_ids[order], all_slots[order]
            slots[miss] = new_slots[np.searchsorted(new_ids, ids[miss])]
            self._runs_key = None
        codes = None
        # duplicates within the batch, O(n): the last writer wins the scratch slot
        ar = np.arange(n, dtype=np.intp)
        self._scratch[slots] = ar
        dup_first = self._scratch[slots] != ar
        if dup_first.any():
            dup = np.isin(slots, np.unique(slots[dup_first]))
            codes = np.zeros(n, dtype=np.int8)
            codes[dup] = _CODE["duplicate_id"]
        # ownership
        own = self._owner[slots]
        other = own != d
        if codes is not None:
            other &= codes == 0
        if other.any():
            oi = np.flatnonzero(other)
            os_ = slots[oi]
            fresh = (own[oi] >= 0) & (self._t_s[os_] >= now - self.silence_window)
            if fresh.any():
                if codes is None:
                    codes = np.zeros(n, dtype=np.int8)
                codes[oi[fresh]] = _CODE["id_conflict"]
            take = os_[~fresh]
            if take.shape[0]:
                self._owner[take] = d
                self._t_s[take] = _NEVER
                self._integ[take] = 0.0
                self._g[take] = self._nat[take]
                self._blocks_dirty(take)
                self._own_version += 1
        start = -1
        if codes is None:
            if n and slots[-1] - slots[0] == n - 1 and (n == 1 or bool((np.diff(slots) == 1).all())):
                start = int(slots[0])
            self._cache[d] = _DriverCache(ids.copy(), slots, start, self._own_version, now)
        else:
            slots = slots.copy()
            slots[codes != 0] = -1
        return slots, codes, start

    # ------------------------------------------------------------------ ingest
    def ingest(
        self, driver_key: int, ids, phase, frequency, frequency_offset, sample_time, now: float, mask=None
    ) -> IngestReport:
        """Validate and store one driver state batch.

        Parameters
        ----------
        driver_key : int
            The reporting driver (an int64 value; anything else raises ValueError).
        ids : ndarray, shape (n,), uint32
            Jewel ids.
        phase : ndarray, shape (n,), float64
            Measured phase (rad, any wrapping up to |phase| <= 2**36 rad, wrapped here; beyond it float64 no
            longer holds the phase to 1.5e-5 rad and the element is rejected as ``bad_phase``).
        frequency : ndarray, shape (n,), float64
            Frequency in effect at the sample (Hz).
        frequency_offset : ndarray, shape (n,), float64
            Offset in effect at the sample (Hz).
        sample_time : float or ndarray, shape (n,)
            Time the phase was measured (s, kernel clock).
        now : float
            Current kernel time (s).
        mask : ndarray of bool, shape (n,), optional
            Which elements are new samples (e.g. not STALE/FAULT). The others are registered with the batch (the
            driver's cached id -> slot mapping stays that of the whole batch, so a batch with a few stale elements
            still takes the fast path) but neither stored nor counted: ``received`` counts the masked elements.

        Returns
        -------
        IngestReport
            Counts per rejection reason and accepted count.

        Raises
        ------
        ValueError
            If ``now`` is not finite or ``driver_key`` is not an int64 value (caller errors, not bad input).
        """
        cfg = self.config
        rep = IngestReport()
        now = float(now)
        if not math.isfinite(now):
            raise ValueError(f"now must be a finite time, got {now!r}")
        if type(driver_key) is not int or driver_key not in self._drv_index:
            driver_key = self._driver_key(driver_key)
        if now > self._now:
            self._now = now
        try:
            ids_a = np.asarray(ids)
            n = int(ids_a.shape[0]) if ids_a.ndim == 1 else -1
            rep.received = max(n, 0) if ids_a.ndim == 1 else int(ids_a.size)
            arrs = [np.asarray(a, dtype=np.float64) for a in (phase, frequency, frequency_offset)]
            st = np.asarray(sample_time, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            rep.received = rep.received or 0
            rep.message_error = f"unconvertible array: {exc}"
            rep.rejected["bad_array"] = rep.received
            return rep
        if (
            n < 0
            or any(a.ndim != 1 or a.shape[0] != n for a in arrs)
            or not (st.ndim == 0 or (st.ndim == 1 and st.shape[0] == n))
        ):
            shapes = [ids_a.shape] + [a.shape for a in arrs] + [st.shape]
            rep.message_error = (
                f"mismatched array lengths: ids, phase, frequency, frequency_offset, sample_time have shapes {shapes}"
            )
            rep.rejected["length_mismatch"] = rep.received
            return rep
        msk = None
        if mask is not None:
            msk = np.asarray(mask)
            if msk.dtype != np.bool_ or msk.shape != (n,):
                rep.message_error = f"mask must be a bool array of shape ({n},), got {msk.dtype} shape {msk.shape}"
                rep.rejected["length_mismatch"] = rep.received
                return rep
            rep.received = int(np.count_nonzero(msk))
            if rep.received == n:
                msk = None
        if n == 0:
            return rep
        if ids_a.dtype != np.uint32:
            if ids_a.dtype.kind not in "iu" or (ids_a.min() < 0 or ids_a.max() > 0xFFFFFFFF):
                rep.message_error = f"ids must be uint32 values, got dtype {ids_a.dtype}"
                rep.rejected["bad_ids"] = n
                return rep
            ids_a = ids_a.astype(np.uint32)
        ph, fr, of = arrs
        reserved = ids_a == JEWEL_NONE
        if reserved.any():  # "no jewel" is not an id (rare: the elements are dropped, counted, the rest kept)
            rep.rejected["reserved_id"] += int((reserved if msk is None else reserved & msk).sum())
            keep = ~reserved
            ids_a, ph, fr, of = ids_a[keep], ph[keep], fr[keep], of[keep]
            st = st if st.ndim == 0 else st[keep]
            msk = msk if msk is None else msk[keep]
            n = len(ids_a)
            if not n:
                return rep
        slots, codes, start = self._register(driver_key, ids_a, now)
        if msk is not None and not msk.any():
            return rep  # registered (the whole batch), nothing new to store
        scalar_t = st.ndim == 0
        stv = float(st) if scalar_t else st
        if start < 0:
            self._ingest_general(slots, ph, fr, of, stv, codes, now, rep, msk)
            return rep
        # fast path: contiguous slots, no registration rejects; block-wise validate-then-commit
        ch = int(cfg.chunk)
        sil_cut = now - self.silence_window
        fut_cut = now + cfg.future_tolerance_s + self._clock_skew
        fmax = float(cfg.max_frequency_hz)
        pmax = _WRAPPED_PHASE
        if scalar_t and not (sil_cut <= stv <= fut_cut):
            self._ingest_general(slots, ph, fr, of, stv, None, now, rep, msk)
            return rep
        cache = self._cache.get(self._drv_index[driver_key])
        last_t = None
        if scalar_t and cache is not None and cache.last_t is not None and cache.last_t[1] == self._gen_writes:
            last_t = cache.last_t[0]
        nb = getattr(self, "_ingest_buf", None)
        if nb is None or nb.shape[0] < ch:
            nb = self._ingest_buf = np.empty(ch, np.float32)  # natural-frequency estimates of a block
        all_fast = msk is None
        for a in range(0, n, ch):
            b = min(n, a + ch)
            sa, sb = start + a, start + b
            p, f, o = ph[a:b], fr[a:b], of[a:b]
            tsv = self._t_s[sa:sb]
            mb = None if msk is None else msk[a:b]  # the block's new samples (None: all)
            if mb is not None and mb.all():
                mb = None
            elif mb is not None and not mb.any():
                continue
            # the block's bounds, of its new samples only where the whole block's fail (a stale or faulty element
            # never costs the fast path)
            s = stv if scalar_t else st[a:b]
            lim = (fmax, sil_cut, fut_cut, last_t, nb[: b - a])
            ok, p_lo, p_hi = self._block_ok(p, f, o, s, tsv, mb, lim)
            if not ok:
                # jewels back from silence (last sample older than the silence window: a few per tick in a big
                # city) take the general path alone, the rest of the block the fast commit: at 100,000 jewels a
                # whole block sent the general way for one of them cost 3.7 ms of ingest a tick against 1.9
                back = tsv < sil_cut
                if mb is not None:
                    back &= mb
                rest = ~back if mb is None else mb & ~back
                n_back = int(np.count_nonzero(back))
                if 0 < n_back < b - a and rest.any():
                    ok, p_lo, p_hi = self._block_ok(p, f, o, s, tsv, rest, lim)
                if not ok:
                    all_fast = False
                    self._ingest_general(slots[a:b], p, f, o, s, None, now, rep, mb)
                    continue
                accepted = rep.accepted
                self._ingest_general(slots[a:b], p, f, o, s, None, now, rep, back)
                all_fast = all_fast and scalar_t and rep.accepted - accepted == n_back  # same time everywhere
                mb = rest
            if not (-pmax <= p_lo and p_hi <= pmax):  # an unwrapped phase counter: wrap in float64 first
                with np.errstate(invalid="ignore"):  # an unmasked element may be inf; it is not written
                    p = p * INV_TWO_PI
                    p -= np.rint(p)
                    p *= TWO_PI
            if mb is None:
                np.multiply(p, INV_TWO_PI, out=self._th[sa:sb], casting="same_kind")
                np.copyto(self._f_rep[sa:sb], f, casting="same_kind")
                if scalar_t:
                    tsv.fill(stv)
                else:
                    np.copyto(tsv, st[a:b])
                np.subtract(f, o, out=self._raw[sa:sb], casting="same_kind")  # filtered into nat on slow ticks
                rep.accepted += b - a
            else:  # the same, written where the mask is set only
                np.multiply(p, INV_TWO_PI, out=self._th[sa:sb], where=mb, casting="same_kind")
                np.copyto(self._f_rep[sa:sb], f, casting="same_kind", where=mb)
                np.copyto(tsv, stv if scalar_t else st[a:b], where=mb)
                np.subtract(f, o, out=self._raw[sa:sb], where=mb, casting="same_kind")
                rep.accepted += int(np.count_nonzero(mb))
        if cache is not None:
            cache.last_t = (stv, self._gen_writes) if (scalar_t and all_fast) else None
        # blocks wholly written at one scalar time let step() use a scalar age (loop over blocks, not jewels)
        jlo, jhi = start // ch, (start + n - 1) // ch
        if len(self._blk_t) <= jhi:
            grow = jhi + 1 - len(self._blk_t)
            self._blk_t += [math.nan] * grow
            self._blk_all_act += [False] * grow
        uniform = scalar_t and all_fast
        for j in range(jlo, jhi + 1):
            b0 = j * ch
            inside = b0 >= start and min(self._n, b0 + ch) <= start + n
            self._blk_t[j] = stv if (uniform and inside) else math.nan
        return rep

    def _block_ok(self, p, f, o, s, tsv, mb, lim):
        """Whether a block may take the fast commit: every element (``mb`` None) or every masked one within the
        bounds of :meth:`_ingest_general`. Returns (ok, lowest phase, highest phase). ``s``: the sample time
        (float) or times (block array); ``lim``: (max_frequency_hz, silence cut, future cut, the batch's last
        scalar time or None, a float32 scratch block).

        The values and the times are each checked over the whole block first (a stale element usually repeats
        valid values, and a jewel back from silence has valid values): the masked reductions, several times
        slower, run only for the part that failed unmasked."""
        fmax, sil_cut, fut_cut, last_t, nb = lim
        bounds = self._block_values(p, f, o, None, fmax, nb)
        if bounds is None and mb is not None:
            bounds = self._block_values(p, f, o, mb, fmax, nb)
        if bounds is None:
            return False, math.nan, math.nan
        ok = self._block_times(s, tsv, None, sil_cut, fut_cut, last_t)
        if not ok and mb is not None:
            ok = self._block_times(s, tsv, mb, sil_cut, fut_cut, last_t)
        return ok, bounds[0], bounds[1]

    @staticmethod
    def _masked_min_max(mb):
        if mb is None:
            return _mn, _mx, True

        def lo(x):
            return _mn(x, where=mb, initial=math.inf)

        def hi(x):
            return _mx(x, where=mb, initial=-math.inf)

        return lo, hi, mb

    def _block_values(self, p, f, o, mb, fmax, nb):
        """(lowest, highest phase) if every element (or every one ``mb`` marks) has values within bounds, else None."""
        lo, hi, where = self._masked_min_max(mb)
        # NaN fails every comparison, so min/max bounds also reject non-finite values
        p_lo, p_hi = float(lo(p)), float(hi(p))
        f_lo, f_hi, o_lo, o_hi = float(lo(f)), float(hi(f)), float(lo(o)), float(hi(o))
        ok = -_MAX_ABS_PHASE <= p_lo and p_hi <= _MAX_ABS_PHASE and 0.0 < f_lo and f_hi <= fmax
        if not (ok and -fmax <= o_lo and o_hi <= fmax):
            return None
        # natural-frequency estimates f - o in (0, fmax]: implied by the bounds above when the offsets are small
        # (the usual case: no extra pass); else computed (from bounded f and o: no overflow in the float32 cast)
        if not (f_lo > o_hi and f_hi - o_lo <= fmax):
            raw = np.subtract(f, o, out=nb, where=where, casting="same_kind")
            if not (float(lo(raw)) > 0.0 and float(hi(raw)) <= fmax):
                return None
        return p_lo, p_hi

    def _block_times(self, s, tsv, mb, sil_cut, fut_cut, last_t):
        """Whether every element's (or every marked one's) new sample time ``s`` is in the window and not older
        than the stored one ``tsv``."""
        lo, hi, where = self._masked_min_max(mb)
        if isinstance(s, float):
            return (
                (sil_cut <= last_t <= s) if last_t is not None else (float(lo(tsv)) >= sil_cut and float(hi(tsv)) <= s)
            )
        bm = self._bm[: s.shape[0]]
        if mb is not None:
            bm.fill(False)
        return (
            float(lo(tsv)) >= sil_cut
            and float(lo(s)) >= sil_cut
            and float(hi(s)) <= fut_cut
            and not np.less(s, tsv, out=bm, where=where).any()
        )

    def _ingest_general(self, slots, ph, fr, of, st, codes, now, rep, mask=None):
        """Per-element validation and commit (vectorised over the batch, any slots); only the elements where
        ``mask`` is set (default all) are validated, counted and stored."""
        cfg = self.config
        if mask is not None:
            slots, ph, fr, of = slots[mask], ph[mask], fr[mask], of[mask]
            st = st if np.ndim(st) == 0 else st[mask]
            codes = None if codes is None else codes[mask]
        n = slots.shape[0]
        code = np.zeros(n, dtype=np.int8) if codes is None else codes.copy()
        valid_slot = slots >= 0
        safe = np.where(valid_slot, slots, 0)

        def mark(name, cond):
            sel = (code == 0) & cond
            code[sel] = _CODE[name]

        mark("non_finite", ~(np.isfinite(ph) & np.isfinite(fr) & np.isfinite(of)))
        with np.errstate(invalid="ignore", over="ignore"):
            mark("bad_frequency", ~((fr > 0.0) & (fr <= cfg.max_frequency_hz)))
            mark("bad_offset", ~(np.abs(of) <= cfg.max_frequency_hz))
            nat = fr - of
            mark("bad_natural_frequency", ~((nat > 0.0) & (nat <= cfg.max_frequency_hz)))
            mark("bad_phase", ~(np.abs(ph) <= _MAX_ABS_PHASE))
        st_a = np.broadcast_to(np.asarray(st, dtype=np.float64), (n,))
        mark("bad_sample_time", ~np.isfinite(st_a))
        mark("future_sample", ~(st_a <= now + cfg.future_tolerance_s + self._clock_skew))
        mark("expired_sample", ~(st_a >= now - self.silence_window))
        told = self._t_s[safe]
        mark("out_of_order", st_a < told)
        counts = np.bincount(code, minlength=len(REJECT_REASONS) + 1)
        for i, name in enumerate(REJECT_REASONS):
            rep.rejected[name] += int(counts[i + 1])
        acc = np.flatnonzero(code == 0)
        if acc.shape[0] == 0:
            return
        self._gen_writes += 1
        s = slots[acc]
        f = fr[acc]
        raw = f - of[acc]
        recap = told[acc] < now - self.silence_window
        self._raw[s] = raw
        self._th[s] = wrap_cycles(ph[acc] * INV_TWO_PI)  # any wrapping in, [-0.5, 0.5) cycle stored
        self._f_rep[s] = f
        self._t_s[s] = st_a[acc]
        self._blocks_dirty(s)
        if recap.any():
            # re-capture (new, or back from silence): fresh frequency estimate, integrator reset, command
            # continues from the offset the device reports (no step); exact g (per-cluster om) on the next tick
            rs = s[recap]
            self._nat[rs] = raw[recap]
            self._integ[rs] = 0.0
            self._g[rs] = self._nat[rs] - (self._omega_ref or 0.0)
            self._cmd[rs] = np.clip(of[acc][recap], -cfg.max_offset_hz, cfg.max_offset_hz)
            # only their blocks renew g and way on the next tick: forcing a slow tick of the whole city did so a
            # few times a tick at 100,000 jewels (200 dropouts/s), making every tick a slow one
            self._renew_blocks.update(np.unique(rs // int(cfg.chunk)).tolist())
        rep.accepted += int(acc.shape[0])

    @property
    def silence_window(self) -> float:
        """How long (s) a jewel's last sample counts as current: ``silence_timeout_s`` plus the clock skew."""
        return self.config.silence_timeout_s + self._clock_skew

    def set_clock_skew(self, seconds: float) -> None:
        """Allow ``seconds`` (s) of skew between the caller's clock and the senders' when clocks are distributed
        by messages (``/clock`` under use_sim_time: its delivery lag x the sim speed): samples stamped up to
        ``future_tolerance_s + seconds`` after now are taken (predicted back to now, as good as forward), and a
        jewel falls silent ``seconds`` later (:attr:`silence_window`)."""
        seconds = float(seconds)
        if not (0.0 <= seconds < math.inf):
            raise ValueError(f"clock skew must be a finite time >= 0 s, got {seconds!r}")
        self._clock_skew = seconds

    # ------------------------------------------------------------------ steering hooks
    def set_coupling_scale(self, scale) -> None:
        """Gain multiplier (Bio-Dream hook). A scalar scales kp, ki (controller) or K (kuramoto) for everyone;
        an array of shape (jewels_total,) (or capacity) sets one multiplier per slot (e.g. per sleep stage).
        0 = no phase pull (controller: frequency feed-forward only)."""
        if np.ndim(scale) == 0:
            s = float(scale)
            if not (math.isfinite(s) and s >= 0):
                raise ValueError(f"coupling scale must be finite and >= 0, got {scale!r}")
            self.config.coupling_scale = s
            self._scale_arr = None
            return
        arr = np.asarray(scale, dtype=np.float64)
        if (
            arr.ndim != 1
            or arr.shape[0] not in (self._n, self._cap)
            or not np.all(np.isfinite(arr))
            or (arr.min(initial=0.0) < 0)
        ):
            raise ValueError("per-slot coupling scale must be finite, >= 0, shape (jewels_total,)")
        full = np.full(self._cap, 1.0)
        full[: arr.shape[0]] = arr
        self._scale_arr = full
        self.config.coupling_scale = 1.0

    def set_reference(self, frequency_hz: float | None, slew_hz_per_s: float = 0.01) -> None:
        """Steer the collective rhythm to ``frequency_hz`` (Hz), moving the reference at most ``slew_hz_per_s``
        (Hz/s); ``None`` returns to following the population mean natural frequency."""
        if frequency_hz is None:
            self._user_ref = None
            self._force_slow = True
            return
        f = float(frequency_hz)
        if not (math.isfinite(f) and 0 < f <= self.config.max_frequency_hz):
            raise ValueError(f"reference frequency must be in (0, max_frequency_hz], got {frequency_hz!r}")
        if not (math.isfinite(slew_hz_per_s) and slew_hz_per_s > 0):
            raise ValueError("slew_hz_per_s must be > 0")
        self._user_ref = f
        self._user_ref_slew = float(slew_hz_per_s)
        self._force_slow = True

    def commands_for(self, driver_key: int, slots: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Commanded offsets (Hz, float64, shape (n,)) for ``slots`` in the order given; 0 for slot -1."""
        slots = np.asarray(slots)
        d = self._drv_index.get(driver_key)
        c = self._cache.get(d) if d is not None else None
        n = slots.shape[0]
        if out is None:
            out = np.empty(n)
        if (
            c is not None
            and c.start >= 0
            and (
                slots is c.slots
                or (
                    c.slots.shape[0] == n
                    and n
                    and slots[0] == c.start
                    and slots[-1] == c.start + n - 1
                    and np.array_equal(slots, c.slots)
                )
            )
        ):
            np.copyto(out, self._cmd[c.start : c.start + n])
            return out
        out[...] = self._cmd[np.where(slots >= 0, slots, 0)]
        if (slots < 0).any():
            out[slots < 0] = 0.0
        return out

    # ------------------------------------------------------------------ step
    def _runs(self, n, ch):
        key = (self._own_version, n, ch, len(self._drv_keys))
        if self._runs_key == key:
            return self._chunk_runs
        owner = self._owner[:n].astype(np.intp)
        nd = len(self._drv_keys)
        owner[owner < 0] = nd  # unowned slots -> sentinel driver
        self._drv_total = np.bincount(owner, minlength=nd + 1)
        runs = []
        for a in range(0, n, ch):  # per block (not per jewel); rebuilt on ownership change only
            o = owner[a : min(n, a + ch)]
            brk = np.flatnonzero(o[1:] != o[:-1]) + 1
            starts = np.concatenate([[0], brk]).astype(np.intp)
            runs.append((starts, o[starts]))
        self._chunk_runs = runs
        self._runs_key = key
        return runs

    def _reference_frequency(self, dt):
        pop = self._omega_pop
        if self._user_ref is not None:
            cur = self._omega_ref if self._omega_ref is not None else (pop if pop is not None else self._user_ref)
            dmax = self._user_ref_slew * dt
            self._omega_ref = cur + min(max(self._user_ref - cur, -dmax), dmax)
        elif self._merge_target is not None:
            self._omega_ref = self._merge_target
        elif pop is not None:
            self._omega_ref = pop
        return self._omega_ref

    def step(self, now: float) -> TickResult:
        """Run one tick at kernel time ``now`` (s): predict, measure r/psi/clusters, command offsets.

        Returns
        -------
        TickResult
        """
        cfg = self.config
        now = float(now)
        if not math.isfinite(now):
            raise ValueError(f"now must be a finite time, got {now!r}")
        if now > self._now:
            self._now = now
        # phases advance by the time that really elapsed (a stalled tick must not slip the city's rhythm against
        # jewels that kept running); the rate-bounded terms (slew, filters, integrator) take at most 10 ticks
        elapsed = max(now - self._last_step, 0.0) if self._last_step is not None else 1.0 / cfg.rate_hz
        dt = min(elapsed, 10.0 / cfg.rate_hz)
        self._last_step = now
        self._tick += 1
        n = self._n
        ch = int(cfg.chunk)
        kur = cfg.mode == "kuramoto"
        sil_cut = now - self.silence_window
        if self._omega_pop is None and n:
            act = self._t_s[:n] >= sil_cut
            if act.any():
                self._omega_pop = float(np.mean(self._nat[:n][act], dtype=np.float64))
        # slow terms (filters, integrator, target frequencies folded into g = nat - I - om) are updated every
        # integral_every_ticks ticks with the accumulated dt; the reference phase advances every tick
        self._slow_dt += dt
        slow = self._tick % int(cfg.integral_every_ticks) == 0 or self._force_slow or self._omega_ref is None
        sdt = self._slow_dt
        renew = self._renew_blocks
        if renew:
            self._renew_blocks = set()
        if slow:
            self._slow_dt = 0.0
            self._force_slow = False
            om_ref = self._reference_frequency(sdt)
        else:
            om_ref = self._omega_ref
        om_ref = 0.0 if om_ref is None else float(om_ref)
        self._psi_ref = wrap_cycles(self._psi_ref + om_ref * elapsed)
        sep = self._sep and not kur
        k = self._k
        if sep:
            self._psi_tab += self._om_tab * elapsed
            wrap_cycles(self._psi_tab, out=self._psi_tab)
            psi_tab32 = self._psi_tab.astype(np.float32)
            om_tab32 = self._om_tab.astype(np.float32)
        psi_ref = self._psi_ref
        scale = float(cfg.coupling_scale)
        ki_dt = float(cfg.ki * scale * sdt)
        alpha = float(min(1.0, sdt / cfg.frequency_filter_s))
        zone = float(cfg.integral_zone_cycles)
        ilim = float(cfg.integral_limit_hz)
        umax = float(cfg.max_offset_hz)
        beta = float(cfg.estimate_gain)
        gate = float(cfg.estimate_gate_cycles)
        kp_lin = float(cfg.kp)
        brake2 = float(2.0 * cfg.approach_decel_fraction * cfg.max_slew_hz_per_s)
        tau = float(cfg.long_way_lookahead_s)
        slew = float(cfg.max_slew_hz_per_s * dt)
        sarr = self._scale_arr
        runs = self._runs(n, ch)
        nd = len(self._drv_keys)
        if self._dacc.shape[1] != nd + 1:
            self._dacc = np.zeros((4, nd + 1))
        dacc = self._dacc
        dacc.fill(0.0)
        dC, dS, dL, dA = dacc
        multi = k > 1
        if multi:
            kC = np.zeros(k)
            kS = np.zeros(k)
            kL = np.zeros(k)
            kA = np.zeros(k)
        if kur and self._kcs is None:
            self._kcs = np.zeros((2, self._cap), np.float32)
        n_act = 0
        sC = sS = sL = sQ = sN = sP = 0.0
        cos_thr = math.cos(cfg.lock_threshold_rad)
        exact = bool(cfg.exact_sums)
        ones = self._ones32
        views = self._block_views(n, ch, kur)
        blk_t, blk_all = self._blk_t, self._blk_all_act
        for j, (a, m, ts, act, ec, th, fr, nat, g, integ, cmd, raw, x, t, bm, cs, thf, y, way) in enumerate(views):
            # one cache block of `chunk` slots (a loop over blocks, never over jewels)
            tb = blk_t[j]
            if tb == tb and tb >= sil_cut:  # whole block sampled at one time tb (fast-path ingest)
                if not blk_all[j]:
                    act.fill(True)
                    blk_all[j] = True
                na, nsil = m, 0
                age = now - tb
                # the jewel's rate, Hz: the reported one, leaning to midway to the commanded one as the report ages
                np.add(raw, cmd, out=y)
                y -= fr
                y *= 0.5 * min(max(age, 0.0) / MODEL_AGE_S, 1.0)
                y += fr
                np.multiply(y, age, out=x)
            else:
                blk_all[j] = False
                np.greater_equal(ts, sil_cut, out=act)
                na = int(np.count_nonzero(act))
                nsil = m - na
                if na:
                    np.subtract(now, ts, out=x, casting="same_kind")  # report ages
                    np.multiply(x, 0.5 / MODEL_AGE_S, out=t)
                    _clip(t, 0.0, 0.5, out=t)
                    np.add(raw, cmd, out=y)  # the jewel's rate, as above
                    y -= fr
                    y *= t
                    y += fr
                    x *= y
            if na == 0:
                ec.fill(0.0)
                if not kur:
                    t.fill(0.0)
                    self._slew_to(t, cmd, slew, x)
                else:
                    cs[0].fill(1.0)
                    cs[1].fill(0.0)
                continue
            n_act += na
            if multi:
                lab = self._labels[a : a + m]
            psi = np.take(psi_tab32, lab, out=self._bp[:m]) if sep else psi_ref
            # phase estimate thf (cycles, float32): predicted at the commanded frequency, corrected by
            # estimate_gain x the wrapped innovation wrap(report predicted to now - thf); an innovation beyond
            # the gate (a jump, a re-capture) takes the report. rint into the scratch block is the cheapest wrap
            # (two passes, no temporary); +-0.5 are the same error
            np.add(th, x, out=ec)  # the last report predicted to now
            np.multiply(y, elapsed, out=x)
            thf += x
            ec -= thf
            np.rint(ec, out=x)
            ec -= x
            _clip(ec, -gate, gate, out=x)
            sP += float(np.dot(x, x))
            np.not_equal(ec, x, out=bm)
            x *= beta
            np.copyto(x, ec, where=bm)
            thf += x
            if slow:
                np.rint(thf, out=x)
                thf -= x
            # estimated wrapped error to the target: e = wrap(psi - thf)
            np.subtract(psi, thf, out=ec)
            np.rint(ec, out=x)
            ec -= x
            if nsil:  # silent: e = 0 -> contributes exactly (1, 0) and 'locked'
                np.logical_not(act, out=bm)
                np.copyto(ec, 0.0, where=bm)
            # order parameter: float32 trig; float32 BLAS (or float64) sums per block, float64 across blocks
            np.multiply(ec, TWO_PI, out=x)
            c32, s32 = cs[0], cs[1]
            np.cos(x, out=c32)
            np.sin(x, out=s32)
            csum = np.add.reduce(cs, axis=1, dtype=np.float64) if exact else np.dot(cs, ones[:m])
            cC = float(csum[0]) - nsil
            cS = float(csum[1])
            np.greater(c32, cos_thr, out=bm)  # |e| < threshold  <=>  cos(e) > cos(threshold), |e| <= pi
            cL = int(np.count_nonzero(bm)) - nsil
            sQ += float(np.dot(ec, ec))
            sC += cC
            sS += cS
            sL += cL
            starts, drv = runs[j]
            if starts.shape[0] == 1:
                d0 = drv[0]
                dC[d0] += cC
                dS[d0] += cS
                dL[d0] += cL
                dA[d0] += na
            else:  # one segment per driver in the block (a loop over drivers, not jewels), summed like the block
                # (float32 BLAS, or float64 with exact_sums): 4 reduceat + 4 add.at cost 150 us per 65,536-slot
                # block of 5 plazas, these about 40 us
                sl = starts.tolist()
                for s0, s1, d in zip(sl, sl[1:] + [m], drv.tolist(), strict=True):
                    seg = cs[:, s0:s1]
                    dsum = np.add.reduce(seg, axis=1, dtype=np.float64) if exact else np.dot(seg, ones[: s1 - s0])
                    a_d = int(np.count_nonzero(act[s0:s1])) if nsil else s1 - s0
                    sil_d = s1 - s0 - a_d
                    dC[d] += float(dsum[0]) - sil_d
                    dS[d] += float(dsum[1])
                    dL[d] += int(np.count_nonzero(bm[s0:s1])) - sil_d
                    dA[d] += a_d
            if multi:
                cnt = np.bincount(lab, minlength=k)[:k]
                ka = np.bincount(lab, weights=act, minlength=k)[:k] if nsil else cnt
                ksil = cnt - ka
                kC += np.bincount(lab, weights=c32, minlength=k)[:k] - ksil
                kS += np.bincount(lab, weights=s32, minlength=k)[:k]
                kL += np.bincount(lab, weights=bm, minlength=k)[:k] - ksil
                kA += ka
            if slow:
                sN += (
                    float(np.add.reduce(nat, dtype=np.float64))
                    if nsil == 0
                    else float(np.add.reduce(nat, where=act, dtype=np.float64))
                )
            if slow:
                np.subtract(raw, nat, out=x)  # natural-frequency filter (time constant frequency_filter_s)
                x *= alpha
                nat += x
            if kur:
                continue
            # controller: target = kp*e - g with g = nat - I - om refreshed on slow ticks, where also
            # I += ki*dt*clip(e, +-zone)
            if slow:
                _clip(ec, -zone, zone, out=x)
                x *= ki_dt
                if sarr is not None:
                    x *= sarr[a : a + m]
                integ += x
                _clip(integ, -ilim, ilim, out=integ)
            if slow or j in renew:
                np.subtract(nat, integ, out=g)
                if sep:
                    g -= np.take(om_tab32, lab, out=self._bo[:m])
                else:
                    g -= om_ref
            # minimum-time approach: d = e - way, way = rint(e - tau * (2 g + cmd)) (refreshed on slow ticks; the
            # choice reinforces itself) is the signed distance the chosen way round (the long way when detuning
            # g and current rate g + cmd make it the shorter trip); the phase rate min(kp |d|, sqrt(brake2 |d|))
            # towards it (linear near the target, the slew limit's braking curve farther out), scaled, then
            # offset = rate - g
            if slow or j in renew:
                np.add(g, cmd, out=t)
                t += g
                t *= tau
                np.subtract(ec, t, out=t)
                np.rint(t, out=way)
            np.subtract(ec, way, out=t)
            np.abs(t, out=x)
            np.multiply(x, kp_lin, out=y)
            x *= brake2
            np.sqrt(x, out=x)
            np.minimum(x, y, out=x)
            np.copysign(x, t, out=t)
            if scale != 1.0:
                t *= scale
            if sarr is not None:
                t *= sarr[a : a + m]
            t -= g
            _clip(t, -umax, umax, out=t)
            if nsil:
                np.multiply(t, act, out=t)  # silent jewels are driven (slew-limited) to 0 offset
            self._slew_to(t, cmd, slew, x)

        # ---- global figures
        if n_act:
            if slow:
                self._omega_pop = sN / n_act
            if multi and sep:
                zc = (kC - 1j * kS) * np.exp(1j * TWO_PI * self._psi_tab)
                Z = complex(zc.sum())
            else:
                Z = complex(sC, -sS) * complex(math.cos(TWO_PI * psi_ref), math.sin(TWO_PI * psi_ref))
            r = min(abs(Z) / n_act, 1.0)
            psi = wrap_phase(math.atan2(Z.imag, Z.real))
            if self._need_ref_init:
                self._psi_ref = psi * INV_TWO_PI
                self._need_ref_init = False
            lockf = sL / n_act
            # E[e^2] = E[estimate^2] + its error variance (~ estimate_gain / 2 x the innovation variance)
            rms = math.sqrt(sQ / n_act + 0.5 * beta * sP / n_act) * TWO_PI
        else:
            r = psi = 0.0
            lockf = rms = float("nan")
            self._need_ref_init = True
        self._last_psi = psi
        if kur and n:
            self._kuramoto_commands(n, ch, sC, sS, n_act, scale, umax, slew)
            if n_act:  # Kuramoto has no target: errors (lock_fraction, rms_phase_error) are measured from psi
                self._psi_ref = psi * INV_TWO_PI
        # ---- drivers
        if self._drv_keys_arr.shape[0] != nd:
            self._drv_keys_arr = np.asarray(self._drv_keys, dtype=np.int64)
        tot = self._drv_total[:nd] if self._drv_total.shape[0] > nd else np.zeros(nd, np.intp)
        if nd == 1:
            a0 = float(dA[0])
            den = max(a0, 1.0)
            drv = DriverTable(
                self._drv_keys_arr,
                np.array([min(math.hypot(dC[0], dS[0]) / den, 1.0)]),
                np.array([dL[0] / den]),
                np.array([int(a0)], dtype=np.intp),
                tot,
            )
        else:
            den = np.maximum(dA[:nd], 1.0)
            drv = DriverTable(
                self._drv_keys_arr,
                np.minimum(np.hypot(dC[:nd], dS[:nd]) / den, 1.0),
                dL[:nd] / den,
                dA[:nd].astype(np.intp),
                tot,
            )
        # ---- clusters (detection amortised every cluster_every_ticks)
        if n_act and (self._tick % int(cfg.cluster_every_ticks) == 0):
            self._detect_clusters(n, n_act)
        if n_act == 0:  # nothing measured: no NaN leaves the kernel (jewels_active == 0 says why the figures are 0)
            lockf, rms = 0.0, 0.0
        clusters = self._cluster_table(
            n_act, r, psi, lockf, multi and self._k == k, (kC, kS, kA, kL) if multi else None
        )
        return TickResult(
            now,
            r,
            psi,
            self._omega_pop if self._omega_pop is not None else 0.0,
            om_ref,
            lockf,
            rms,
            n,
            n_act,
            n - n_act,
            clusters,
            drv,
            cfg.mode,
        )

    def _block_views(self, n, ch, kur):
        """Per-block views of the state and scratch arrays (cached; rebuilt when n, chunk, mode or storage change)."""
        key = (n, ch, kur, self._cap, id(self._t_s), id(self._bx), id(self._kcs))
        nb = (n + ch - 1) // ch
        if len(self._blk_t) != nb:
            self._blk_t = (self._blk_t + [math.nan] * nb)[:nb]
            self._blk_all_act = (self._blk_all_act + [False] * nb)[:nb]
        if self._views_key == key:
            return self._views
        views = []
        for a in range(0, n, ch):
            b = min(n, a + ch)
            m = b - a
            cs = self._kcs[:, a:b] if kur else self._bcs[:, :m]
            views.append(
                (
                    a,
                    m,
                    self._t_s[a:b],
                    self._active[a:b],
                    self._err[a:b],
                    self._th[a:b],
                    self._f_rep[a:b],
                    self._nat[a:b],
                    self._g[a:b],
                    self._integ[a:b],
                    self._cmd[a:b],
                    self._raw[a:b],
                    self._bx[:m],
                    self._bt[:m],
                    self._bm[:m],
                    cs,
                    self._thf[a:b],
                    self._bo[:m],
                    self._way[a:b],
                )
            )
        self._views = views
        self._views_key = key
        return views

    def _blocks_dirty(self, slots=None):
        """Forget the 'whole block sampled at one time' shortcut for the blocks holding ``slots`` (all if None)."""
        if slots is None:
            self._blk_t = [math.nan] * len(self._blk_t)
            return
        ch = int(self.config.chunk)
        for b in np.unique(np.asarray(slots) // ch).tolist():  # touched blocks (slow path only)
            if b < len(self._blk_t):
                self._blk_t[b] = math.nan

    @staticmethod
    def _slew_to(target, cmd, slew, buf):
        np.subtract(target, cmd, out=buf)
        _clip(buf, -slew, slew, out=buf)
        cmd += buf

    def _kuramoto_commands(self, n, ch, sC, sS, n_act, scale, umax, slew):
        """Plain mean-field Kuramoto: offset = s K r sin(psi - theta)/(2 pi) = s K (Y' cos e + X' sin e)/(2 pi)."""
        cfg = self.config
        if n_act:
            xp, yp = sC / n_act, -sS / n_act  # r exp(i(psi - psi_ref)) in the reference frame
        else:
            xp = yp = 0.0
        kf = cfg.kuramoto_coupling * scale * INV_TWO_PI
        sarr = self._scale_arr
        for a in range(0, n, ch):
            b = min(n, a + ch)
            m = b - a
            t = self._bt[:m]
            x = self._bx[:m]
            np.multiply(self._kcs[0, a:b], kf * yp, out=t)
            np.multiply(self._kcs[1, a:b], kf * xp, out=x)
            t += x
            if sarr is not None:
                t *= sarr[a:b]
            _clip(t, -umax, umax, out=t)
            np.multiply(t, self._active[a:b], out=t)
            self._slew_to(t, self._cmd[a:b], slew, x)

    # ------------------------------------------------------------------ clusters
    def _detect_clusters(self, n, n_act):
        """Gaussian clusters of the natural-frequency estimates (:func:`.clusters.gaussian_partition`: penalised
        classification likelihood on an evenly strided sample of <= cluster_sample_size active jewels, groups
        smaller than cluster_min_fraction / cluster_min_size join their nearest cluster); act after
        cluster_confirm detections."""
        cfg = self.config
        nat_all = self._nat[:n]  # float32
        act_all = self._active[:n]
        stride = max(1, n // int(cfg.cluster_sample_size))
        sample = nat_all[::stride]
        if n_act < n:
            sample = sample[act_all[::stride]]
        n_s = sample.shape[0]
        if n_s == 0:
            return
        center = self._omega_pop
        sample = _clip(sample, center - cfg.cluster_span_hz, center + cfg.cluster_span_hz)
        min_size = max(cfg.cluster_min_fraction * n_s, cfg.cluster_min_size / stride)
        part = gaussian_partition(sample, min_size, cfg.cluster_gap_hz, cfg.cluster_penalty)
        k = part.k
        if k != self._cand_k:
            self._cand_k = k
            self._cand_count = 1
        else:
            self._cand_count += 1
        if self._cand_count < int(cfg.cluster_confirm) and k != self._k:
            return
        if k == 1:
            if self._k != 1 or self._cl_center.shape[0] != 1:
                self._set_single()
            # spread of the sample, mean = exact population mean
            self._cl_center = np.array([center])
            self._cl_spread = part.spread[:1].copy()
            return
        act = act_all
        nat = nat_all.astype(np.float64)
        labels = self._labels[:n]
        part.labels(nat, out=labels)
        w = act.astype(np.float64)
        cnt = np.maximum(np.bincount(labels, weights=w, minlength=k), 1.0)
        mu = np.bincount(labels, weights=nat * w, minlength=k) / cnt
        dv = nat - mu[labels]
        var = np.bincount(labels, weights=dv * dv * w, minlength=k) / cnt
        spread = np.sqrt(np.maximum(var, 0.0))
        changed = k != self._k
        self._k = k
        self._cl_center, self._cl_spread = mu, spread
        if changed:
            self._resolve(labels, n, cnt, mu, spread)
        elif self._resolution == "merging":
            reach = cfg.merge_margin * cfg.max_offset_hz
            lo_, hi_ = float(np.min(mu - 3 * spread)), float(np.max(mu + 3 * spread))
            if hi_ - lo_ <= 2 * reach:  # follow slow drift of the merged population
                target = min(max(float(np.dot(mu, cnt) / cnt.sum()), hi_ - reach), lo_ + reach)
                self._merge_target = target
                self._om_tab = np.full(k, target)
            else:
                self._resolve(labels, n, cnt, mu, spread)
        elif self._resolution == "separate_channel":
            ch = assign_channels(mu, cnt, cfg.channel_spacing_hz)  # centres still settling: re-pick channels
            if ch.shape[0] == self._om_tab.shape[0] and not np.array_equal(ch, self._om_tab):
                self._force_slow = True
                self._om_tab = ch  # the channel references keep their phase: no jump, slew-limited commands

    def _set_single(self):
        self._force_slow = True
        if self._sep:
            self._psi_ref = self._last_psi * INV_TWO_PI
        self._k = 1
        self._sep = False
        self._merge_target = None
        self._resolution = "none"
        self._cl_center = np.zeros(1)
        self._cl_spread = np.zeros(1)

    def _resolve(self, labels, n, cnt, mu, spread):
        """Merge all clusters onto one rhythm if every member can reach it within merge_margin*max_offset_hz,
        else give each cluster a distinct channel (optimal sorted 1-D assignment) and lock it there."""
        cfg = self.config
        self._force_slow = True
        reach = cfg.merge_margin * cfg.max_offset_hz
        lo = float(np.min(mu - 3 * spread))
        hi = float(np.max(mu + 3 * spread))
        if hi - lo <= 2 * reach:
            target = float(np.dot(mu, cnt) / cnt.sum())
            target = min(max(target, hi - reach), lo + reach)
            if self._sep:
                self._psi_ref = self._last_psi * INV_TWO_PI
            self._sep = False
            self._merge_target = target
            self._resolution = "merging"
            self._om_tab = np.full(self._k, target)
            return
        channels = assign_channels(mu, cnt, cfg.channel_spacing_hz)
        # start each channel reference at the cluster's current mean phase (no transient): phases predicted to
        # the last tick straight from the reports, independent of any previous reference
        act = self._active[:n]
        age = (self._last_step - self._t_s[:n]).astype(np.float32)
        np.clip(age, 0.0, 10.0, out=age)
        t32 = (self._th[:n] + self._f_rep[:n] * age) * np.float32(TWO_PI)
        wrap_phase(t32, out=t32)
        w = act.astype(np.float64)
        C = np.bincount(labels, weights=np.cos(t32) * w, minlength=self._k)
        S = np.bincount(labels, weights=np.sin(t32) * w, minlength=self._k)
        self._psi_tab = np.arctan2(S, C) * INV_TWO_PI
        self._om_tab = channels
        self._sep = cfg.mode == "controller"
        self._merge_target = None
        self._resolution = "separate_channel"

    def _cluster_table(self, n_act, r, psi, lockf, have_sums, sums):
        om_ref = self._omega_ref if self._omega_ref is not None else 0.0
        if self._k == 1 or not have_sums:
            return ClusterTable(
                np.array([n_act], dtype=np.intp),
                self._cl_center[:1].copy() if self._k == 1 else np.array([self._omega_pop or 0.0]),
                self._cl_spread[:1].copy(),
                np.array([r]),
                np.array([psi]),
                np.array([om_ref]),
                "none" if self._k == 1 else self._resolution,
                np.array([lockf]),
            )
        kC, kS, kA, kL = sums
        with np.errstate(invalid="ignore", divide="ignore"):
            rk = np.where(kA > 0, np.minimum(np.hypot(kC, kS) / kA, 1.0), 0.0)  # an emptied cluster: 0, not NaN
            lk = np.where(kA > 0, kL / kA, 0.0)
            base = self._psi_tab if self._sep else np.full(self._k, self._psi_ref)
            mp = wrap_phase(base * TWO_PI + np.arctan2(-kS, kC))
        tgt = self._om_tab if self._sep else np.full(self._k, om_ref)
        return ClusterTable(
            kA.astype(np.intp),
            self._cl_center.copy(),
            self._cl_spread.copy(),
            rk,
            mp,
            np.asarray(tgt, dtype=np.float64).copy(),
            self._resolution,
            lk,
        )

    # ------------------------------------------------------------------ introspection (tests, diagnostics)
    def slot_state(self, slots) -> dict:
        """Copies of per-slot state for ``slots``: nat (Hz), integ (Hz), cmd (Hz), err (rad), active, t_s (s)."""
        s = np.asarray(slots)
        return {
            "nat": self._nat[s].copy(),
            "integ": self._integ[s].copy(),
            "cmd": self._cmd[s].copy(),
            "err": self._err[s] * TWO_PI,
            "active": self._active[s].copy(),
            "t_s": self._t_s[s].copy(),
            "label": self._labels[s].copy() if self._k > 1 else np.zeros(s.shape, np.intp),
        }
