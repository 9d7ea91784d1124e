"""Synchronizer node: locks every jewel of the city into one rhythm. A thin shell over
lumina_nodes.kernels.phase_lock (plain numpy), which does all the per-jewel work.

Topics:
  subscribes  <driver ns>/jewels/state    JewelStateBatch, every driver: listed in `drivers`, or discovered by
                                          matching topic names against `driver_topic_pattern`
  publishes   <driver ns>/jewels/command  JewelCommandBatch, one per driver per tick
  publishes   /sync/state                 SyncState, every tick
  subscribes  /biodream/samples           BioDreamSample: coupling gain per sleep stage (coupling_by_stage)
  service     /sync/set_rhythm            SetRhythm
  publishes   /diagnostics

The loop: a tick runs as soon as every active driver has delivered a batch since the previous tick (so the
commands go out right after the newest state arrives), and at the latest 1.25 periods after the previous tick
(so a silent or late driver cannot stall the city; a shorter grace lets ordinary driver jitter trigger ticks
that answer an old batch, which measured as a p99 latency of 28 ms instead of 5 ms). Latency is measured from
the newest state stamp to the command publish; a tick starting more than 1.5 periods after the previous one is
a deadline miss. Every time here is the node clock, so under use_sim_time the loop keeps its rate in sim
time; compute time is wall time.
"""

import dataclasses
import itertools
import math
import re
import time

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.experimental import EventsExecutor
from rclpy.node import Node

from lumina_nodes.constants import ClusterResolution, DiagnosticLevel, SyncMode
from lumina_nodes.fastpath import decode_state_batch, encode_command_batch
from lumina_nodes.kernels.phase_lock import PhaseLockKernel, SyncConfig
from lumina_nodes.msg import (
    BioDreamSample,
    ClusterState,
    JewelCommandBatch,
    JewelStateBatch,
    LoopTiming,
    PlazaSync,
    SyncState,
)
from lumina_nodes.nodes.common import (
    BATCH_QOS,
    SAMPLES_QOS,
    STATE_QOS,
    DiagnosticsPublisher,
    Param,
    StartupError,
    TopicOwner,
    WithMessageInfo,
    clock_seconds,
    declare_parameters,
    diagnostic_status,
    params_from_settings,
    publisher_gid,
    run_node,
)
from lumina_nodes.srv import SetRhythm
from lumina_nodes.timing import LoopStats

NODE_PARAMS = (
    Param(
        "drivers",
        [""],
        "Namespaces of the jewel drivers to follow (e.g. [/plaza_north, /plaza_south]); "
        "[''] discovers them by driver_topic_pattern.",
        read_only=True,
    ),
    Param(
        "driver_topic_pattern",
        r"^(/[A-Za-z0-9_]+)*/jewels/state$",
        "Regular expression on topic names of driver state batches, used when drivers is empty.",
        read_only=True,
    ),
    Param(
        "discovery_period_s", 0.25, "How often the graph is searched for new drivers, s.", 0.05, 60.0, read_only=True
    ),
    Param(
        "timing_window_ticks",
        3000,
        "Ticks the latency/compute percentiles and jitter are taken over.",
        10,
        1_000_000,
        read_only=True,
    ),
    Param(
        "initial_capacity",
        16384,
        "Jewel slots preallocated (grows on demand; slots of jewels silent past reclaim_after_s are freed and the "
        "storage shrinks back towards this).",
        1,
        10_000_000,
        read_only=True,
    ),
    Param(
        "max_batch_jewels",
        100_000,
        "Largest state batch a driver may send: a batch with more elements is rejected whole (batch_too_large) "
        "before any of its ids is registered.",
        1,
        1_000_000,
        read_only=True,
    ),
    Param(
        "publisher_takeover_s",
        1.0,
        "A driver's state topic belongs to the publisher whose batch was accepted first; a batch from another "
        "publisher is rejected (foreign_publisher) unless the owner has left the graph or sent nothing accepted "
        "for this long (a respawned driver is a new publisher), s.",
        0.05,
        60.0,
        read_only=True,
    ),
    Param(
        "driver_timeout_s",
        10.0,
        "A driver with no accepted batch for this long is dropped: its jewels' slots freed, its command publisher "
        "destroyed, its topic no longer followed (a discovered one) until it reports again, s.",
        0.5,
        3600.0,
        read_only=True,
    ),
    Param(
        "sim_clock_lag_s",
        0.25,
        "With use_sim_time: how late a node may be in following /clock, wall s. Every node follows /clock on its "
        "own, so a driver's clock can run ahead of the synchronizer's or behind it: this x the measured sim speed "
        "is added to future_tolerance_s (samples ahead of now) and to silence_timeout_s (samples behind).",
        0.0,
        10.0,
        read_only=True,
    ),
    Param(
        "coupling_by_stage",
        [1.0, 1.0, 0.8, 0.6, 0.9],
        "Bio-Dream feedback: coupling gain scale per sleep stage W, N1, N2, N3, REM (0..2); the expected "
        "value over the stage probabilities of each participant is applied to the jewel they wear.",
    ),
    Param("min_signal_quality", 0.5, "Bio-Dream samples of lower signal quality are ignored (0..1).", 0.0, 1.0),
    Param(
        "released_plazas",
        [""],
        "Plazas (driver ids) that do not take part: their reports are not taken, so their jewels count as silent "
        "(out of the collective field, commands slewing to 0: they run free) until they rejoin; [''] none. The "
        "festival orchestrator's reflective sessions set it.",
    ),
)
CONFIG_PARAMS = params_from_settings(SyncConfig)  # one per field, from its Setting
#: Every parameter of the node, as it declares them (--help and docs/parameters.md read this table too).
PARAMETERS = NODE_PARAMS + CONFIG_PARAMS
MAX_RELEASED = 64
HOUSEKEEPING_S = 0.5  # how often silent drivers are dropped and silent jewels' slots reclaimed
MIN_RHYTHM_HZ = 0.1  # slowest collective rhythm a set_rhythm request may ask for


class Driver:
    """What the node keeps per followed driver: its topics, last batch and the slots of its jewels."""

    def __init__(self, key, namespace):
        self.key, self.namespace = key, namespace
        self.driver_id = namespace.strip("/") or "root"
        self.ids = None  # uint32 ids of the last accepted batch, a view of its bytes (reused in commands)
        self.slots = np.zeros(0, np.intp)
        self.fresh = False
        self.last_stamp = None
        self.last_arrival = None
        self.batches = 0
        self.batches_rejected = 0
        self.batches_released = 0  # batches not taken while the driver's plaza was released
        self.seq_gaps = 0
        self.stale_elements = 0
        self.last_seq = None
        self.command_pub = None  # created with the first accepted batch, destroyed when the driver is dropped
        self.command_seq = 0
        self.subscription = None
        self.listed = False  # named in the drivers parameter: its topic is always followed
        self.owner = None  # TopicOwner of the state topic: whose batches are taken
        self.followed_at = None  # when it was (re)followed: the drop timer of a driver never accepted
        self.dropped = False  # silent past driver_timeout_s: no slots, no commands, until it reports again
        self.rejects = {}  # whole batches rejected, by reason


class Synchronizer(Node):
    def __init__(self):
        super().__init__("synchronizer")
        self.config_params = CONFIG_PARAMS
        try:
            values = declare_parameters(self, PARAMETERS)
            self.config = SyncConfig(**{p.name: values[p.name] for p in self.config_params})
            errors = self.config.validate()
            if errors:
                raise ValueError("; ".join(errors))
            self._check_stage_gains(values["coupling_by_stage"])
            self.released = self._released(values["released_plazas"])
        except (ValueError, TypeError) as error:
            raise StartupError(f"invalid configuration: {error}") from error
        self.values = values
        self.kernel = PhaseLockKernel(values["initial_capacity"], self.config)
        self.add_on_set_parameters_callback(self._validate_update)
        self.add_post_set_parameters_callback(self._apply_update)

        self.drivers = {}  # state topic -> Driver
        self.driver_keys = itertools.count()  # a kernel key per followed topic, never reused
        self.ingest_rejects = {}
        self.batch_rejects = {}  # whole state batches rejected by the node, by reason
        self.drivers_dropped = 0
        self.batches_before_clock = 0  # under use_sim_time, batches that came before the first /clock
        self.last_housekeeping = None
        self.sim_time = bool(self.get_parameter("use_sim_time").value)
        self.speed_anchor = None  # (wall, sim) s: where the sim speed is measured from
        self.sim_speed = 1.0  # sim s per wall s, measured
        self.state_pub = self.create_publisher(SyncState, "/sync/state", STATE_QOS)
        self.create_subscription(BioDreamSample, "/biodream/samples", self._on_biodream, SAMPLES_QOS)
        self.create_service(SetRhythm, "/sync/set_rhythm", self._on_set_rhythm)
        self.period = 1.0 / self.config.rate_hz
        self.stats = LoopStats(self.config.rate_hz, values["timing_window_ticks"])
        self.timing = None
        self.last_tick = None
        self.pending_stamp = None  # newest state stamp not yet answered by a tick
        self.last_result = None
        self.jewel_scale = np.ones(0)  # Bio-Dream coupling scale per kernel slot
        self.create_timer(self.period / 4, self._on_watchdog)

        listed = [ns for ns in values["drivers"] if ns]
        if listed:
            for namespace in listed:
                topic = "/" + namespace.strip("/") + "/jewels/state" if namespace.strip("/") else "/jewels/state"
                self._follow(topic).listed = True
        else:
            self.pattern = re.compile(values["driver_topic_pattern"])
            self._discover()
            self.create_timer(values["discovery_period_s"], self._discover)
        self.diagnostics = DiagnosticsPublisher(self, self._diagnostics)
        self.get_logger().info(
            f"synchronizer up: mode {self.config.mode}, {self.config.rate_hz:g} Hz, "
            f"following {'listed drivers ' + str(listed) if listed else 'discovered drivers'}"
        )

    # ------------------------------------------------------------------------------------------ drivers
    def _discover(self):
        for topic, types in self.get_topic_names_and_types():
            if topic not in self.drivers and self.pattern.match(topic) and "lumina_nodes/msg/JewelStateBatch" in types:
                if self.count_publishers(topic):
                    self._follow(topic)

    def _follow(self, state_topic):
        namespace = state_topic[: -len("/jewels/state")] or "/"
        driver = Driver(next(self.driver_keys), namespace)
        driver.followed_at = None  # set by the first housekeeping on a running clock (not before /clock arrives)
        driver.owner = TopicOwner(self, state_topic, self.values["publisher_takeover_s"])
        self.drivers[state_topic] = driver
        # raw: the batch's bytes, read into numpy views (fastpath.decode_state_batch); the generated type support
        # copied each array twice, 1.7-2.0 ms a tick at 100,000 jewels
        driver.subscription = self.create_subscription(
            JewelStateBatch,
            state_topic,
            WithMessageInfo(lambda data, info: self._on_state(driver, data, info)),
            BATCH_QOS,
            raw=True,
        )
        self.get_logger().info(f"following driver {namespace} ({state_topic})")
        return driver

    def _reject_batch(self, driver, seq, reason, detail):
        """A whole state batch not taken: counted under its reason (node and driver), a throttled WARN."""
        driver.batches_rejected += 1
        driver.rejects[reason] = driver.rejects.get(reason, 0) + 1
        self.batch_rejects[reason] = self.batch_rejects.get(reason, 0) + 1
        self.get_logger().warning(
            f"state batch {seq} on {driver.namespace} rejected ({reason}): {detail}", throttle_duration_sec=5.0
        )

    def _on_state(self, driver, data, info=None):
        now = clock_seconds(self)
        if now <= 0.0:  # use_sim_time, and /clock not here yet: nothing to judge the samples against (counted)
            self.batches_before_clock += 1
            return
        gid = publisher_gid(info)
        try:
            msg = decode_state_batch(data)
        except ValueError as error:  # bytes no JewelStateBatch type support would write: counted, never a crash
            self._reject_batch(driver, "?", "undecodable", str(error))
            return
        if len(msg.ids) > self.values["max_batch_jewels"]:
            self._reject_batch(
                driver,
                msg.seq,
                "batch_too_large",
                f"{len(msg.ids)} elements, max_batch_jewels is {self.values['max_batch_jewels']}",
            )
            return
        if driver.owner.foreign(gid, now):
            self._reject_batch(
                driver, msg.seq, "foreign_publisher", "a second publisher on the topic; its owner is still reporting"
            )
            return
        stamp = msg.stamp[0] + msg.stamp[1] * 1e-9
        if driver.last_seq is not None and msg.seq != (driver.last_seq + 1) & 0xFFFFFFFF:
            driver.seq_gaps += 1
        driver.last_seq = msg.seq
        ids, status = msg.ids, msg.status
        arrays = [msg.phase, msg.frequency, msg.frequency_offset, msg.sample_age]
        mismatch = ""
        fresh = None  # every element is a new sample
        phase, frequency, offset, sample_age = arrays
        if status.size in (0, ids.size) and all(a.size == ids.size for a in arrays):
            # STALE/FAULT elements repeat the jewel's last report: not new samples, so not ingested (and not
            # counted as rejects); they stay in the command batch. The kernel gets the whole batch and a mask
            # (not a subset): its cached id -> slot mapping is the batch's, so the fast path stays taken.
            if status.size:
                fresh = (status & (JewelStateBatch.STATUS_STALE | JewelStateBatch.STATUS_FAULT)) == 0
                stale = int(fresh.size - np.count_nonzero(fresh))
                driver.stale_elements += stale
                fresh = fresh if stale else None
            sample_time = stamp - sample_age
        else:  # the kernel rejects the message as a length mismatch; the warning names the message's own fields
            sample_time = np.zeros(0)
            names = ("phase", "frequency", "frequency_offset", "sample_age", "status")
            sizes = dict(zip(names, [a.size for a in arrays] + [status.size], strict=True))
            mismatch = ", ".join(
                f"{k} {v}" for k, v in sizes.items() if v != ids.size and not (k == "status" and v == 0)
            )
        if driver.dropped:  # reporting again: followed anew (slots registered by this batch, commands again)
            driver.dropped, driver.followed_at = False, None
            self.get_logger().info(f"driver {driver.namespace} reports again: followed")
        if driver.driver_id in self.released:  # not taken: its jewels fall silent and run free, still commanded
            driver.batches_released += 1
            fresh = np.zeros(ids.size, np.bool_)
        try:
            report = self.kernel.ingest(driver.key, ids, phase, frequency, offset, sample_time, now, mask=fresh)
        except (ValueError, TypeError) as error:  # a caller error by the kernel's contract: counted, never a crash
            self._kernel_refused(driver, msg, ids.size, error)
            return
        self._count_rejects(report)
        if report.message_error:
            driver.batches_rejected += 1
            reason = report.message_error
            if mismatch:
                reason = f"array lengths differ from ids ({ids.size}): {mismatch}"
            self.get_logger().warning(
                f"state batch {msg.seq} of {driver.namespace} rejected: {reason}", throttle_duration_sec=5.0
            )
            return
        if report.received and not report.accepted:  # every new sample rejected: nothing of it is used
            self._reject_batch(driver, msg.seq, "all_elements_rejected", f"{report.received} elements, none accepted")
            return
        try:
            slots = self.kernel.register(driver.key, ids)  # cached by the ingest above: the same ids cost nothing
        except (ValueError, TypeError) as error:
            self._kernel_refused(driver, msg, ids.size, error)
            return
        if driver.owner.taken(gid, now):
            self.get_logger().warning(f"driver {driver.namespace}: a new publisher took the topic over")
        driver.driver_id = msg.driver_id or driver.driver_id
        if driver.command_pub is None:
            driver.command_pub = self.create_publisher(
                JewelCommandBatch, driver.namespace.rstrip("/") + "/jewels/command", BATCH_QOS
            )
        driver.ids = ids
        driver.slots = slots
        driver.batches += 1
        driver.last_stamp = stamp
        driver.last_arrival = now
        driver.fresh = True
        self.pending_stamp = stamp if self.pending_stamp is None else max(self.pending_stamp, stamp)
        if all(d.fresh for d in self._active_drivers()):
            self._tick()

    def _active_drivers(self):
        horizon = clock_seconds(self) - self.kernel.silence_window
        return [d for d in self.drivers.values() if d.last_arrival is not None and d.last_arrival >= horizon]

    def _kernel_refused(self, driver, msg, size, error):
        """A batch the kernel raised on: its elements counted under kernel_refused, a WARN, never a crash."""
        driver.batches_rejected += 1
        self.ingest_rejects["kernel_refused"] = self.ingest_rejects.get("kernel_refused", 0) + size
        self.get_logger().warning(
            f"state batch {msg.seq} of {driver.namespace} refused by the kernel: {error}", throttle_duration_sec=5.0
        )

    def _count_rejects(self, report):
        for reason, count in report.rejected.items():
            if count:
                self.ingest_rejects[reason] = self.ingest_rejects.get(reason, 0) + count

    # ------------------------------------------------------------------------------------------ the loop
    def _housekeeping(self):
        """Drop drivers silent past driver_timeout_s and free the slots of jewels silent past reclaim_after_s."""
        now = clock_seconds(self)
        if now <= 0.0 or (self.last_housekeeping is not None and now - self.last_housekeeping < HOUSEKEEPING_S):
            return
        self.last_housekeeping = now
        if self.sim_time:
            self._follow_sim_speed(now)
        timeout = self.values["driver_timeout_s"]
        for topic, driver in list(self.drivers.items()):
            if driver.followed_at is None:
                driver.followed_at = now
            last = driver.last_arrival if driver.last_arrival is not None else driver.followed_at
            if not driver.dropped and last is not None and now - last >= timeout:
                self._drop(driver, now - last)
            if driver.dropped and not driver.listed and not self.count_publishers(topic):
                self.destroy_subscription(driver.subscription)  # rediscovered when it has a publisher again
                del self.drivers[topic]
        kept = self.kernel.reclaim(now)
        if kept is not None:  # slots renumbered: the drivers' slots and the per-slot Bio-Dream scale follow
            for driver in self.drivers.values():
                driver.slots = self.kernel.remap_slots(driver.slots)
            self.jewel_scale = self.jewel_scale[kept[kept < self.jewel_scale.size]]
            if self.jewel_scale.size:
                self.kernel.set_coupling_scale(self.jewel_scale)

    def _follow_sim_speed(self, now):
        """Measure the sim speed (sim s per wall s, over >= 1 s of wall time) and allow the clock skew it makes."""
        wall = time.monotonic()
        if self.speed_anchor is None or now < self.speed_anchor[1]:  # first reading, or /clock went back
            self.speed_anchor = (wall, now)
        elif wall - self.speed_anchor[0] >= 1.0:
            self.sim_speed = max((now - self.speed_anchor[1]) / (wall - self.speed_anchor[0]), 1.0)
            self.speed_anchor = (wall, now)
        self.kernel.set_clock_skew(self.sim_speed * self.values["sim_clock_lag_s"])

    def _drop(self, driver, silent_s):
        self.kernel.drop_driver(driver.key)
        if driver.command_pub is not None:
            self.destroy_publisher(driver.command_pub)
        driver.command_pub = driver.ids = driver.last_arrival = None
        driver.owner.reset()
        driver.slots = np.zeros(0, np.intp)
        driver.fresh, driver.dropped = False, True
        self.drivers_dropped += 1
        self.get_logger().warning(
            f"driver {driver.namespace} dropped: nothing accepted for {silent_s:.1f} s (driver_timeout_s); its jewels' "
            "slots are freed and it gets no commands until it reports again"
        )

    def _on_watchdog(self):
        self._housekeeping()
        if self.last_tick is None or clock_seconds(self) - self.last_tick >= 1.25 * self.period:
            self._tick()

    def _tick(self):
        wall_start = time.perf_counter()
        now = clock_seconds(self)
        if now <= 0.0:  # use_sim_time and no /clock yet
            return
        result = self.kernel.step(now)
        stamp_msg = self.get_clock().now().to_msg()
        stamp = (stamp_msg.sec, stamp_msg.nanosec)
        # The driver whose batch is newest (usually the one that completed this tick) is answered first:
        # latency is measured from the newest state stamp to the publish of its commands.
        fresh = sorted(
            (d for d in self.drivers.values() if d.fresh and d.ids is not None and d.command_pub is not None),
            key=lambda d: d.last_stamp,
            reverse=True,
        )
        latency = float("nan")
        for driver in fresh:
            # published already serialized (fastpath.encode_command_batch): the ids and offsets are copied once,
            # into the CDR bytes, not into a message and again by its serialization
            command = encode_command_batch(
                stamp,
                driver.driver_id,
                driver.command_seq,
                divmod(int(driver.last_stamp * 1e9), 10**9),
                driver.ids,
                self.kernel.commands_for(driver.key, driver.slots),
            )
            driver.command_pub.publish(command)
            driver.command_seq = (driver.command_seq + 1) & 0xFFFFFFFF
            driver.fresh = False
            if self.pending_stamp is not None:
                latency = clock_seconds(self) - self.pending_stamp
                self.pending_stamp = None
        self.stats.record(now, time.perf_counter() - wall_start, latency)
        self.last_tick = now
        self.last_result = result
        self.state_pub.publish(self._state_message(result, stamp_msg))

    def _state_message(self, result, stamp_msg):
        msg = SyncState(
            mode=getattr(SyncMode, self.config.mode.upper()),  # the kernel's names are the constants' names
            order_parameter=result.order_parameter,
            mean_phase=result.mean_phase,
            collective_frequency=result.collective_frequency,
            lock_fraction=result.lock_fraction,
            lock_threshold=self.config.lock_threshold_rad,
            rms_phase_error=result.rms_phase_error,
            jewels_total=result.jewels_total,
            jewels_active=result.jewels_active,
            jewels_silent=result.jewels_silent,
            coupling_scale=float(self.config.coupling_scale),
        )
        msg.header.stamp = stamp_msg
        for index, cluster in enumerate(result.clusters):
            msg.clusters.append(
                ClusterState(
                    index=index,
                    size=cluster.size,
                    center_frequency=cluster.center_frequency,
                    frequency_spread=cluster.frequency_spread,
                    order_parameter=cluster.order_parameter,
                    mean_phase=cluster.mean_phase,
                    target_frequency=cluster.target_frequency,
                    resolution=getattr(ClusterResolution, cluster.resolution.upper()),
                )
            )
        by_key = {d.key: d for d in self.drivers.values()}
        now = clock_seconds(self)
        table = result.drivers
        for k, key in enumerate(table.driver_key.tolist()):
            driver = by_key.get(key)
            if driver is None:
                continue
            msg.plazas.append(
                PlazaSync(
                    driver_id=driver.driver_id,
                    jewels_total=int(table.total[k]),
                    jewels_active=int(table.active[k]),
                    order_parameter=float(table.order_parameter[k]),
                    lock_fraction=float(table.lock_fraction[k]),
                    last_report_age=now - driver.last_arrival if driver.last_arrival else float("inf"),
                )
            )
        # Percentiles over the window are refreshed once a second; the counters on every tick.
        if self.timing is None or self.stats.ticks % max(1, int(self.config.rate_hz)) == 0:
            self.timing = LoopTiming(**self.stats.summary())
        self.timing.ticks, self.timing.deadline_misses = self.stats.ticks, self.stats.deadline_misses
        msg.timing = self.timing
        return msg

    # ------------------------------------------------------------------------------------------ inputs
    def _on_biodream(self, sample):
        if sample.jewel_id == BioDreamSample.JEWEL_NONE or sample.stage == BioDreamSample.STAGE_UNKNOWN:
            return
        if sample.signal_quality < self.values["min_signal_quality"]:
            return
        probabilities = np.asarray(sample.stage_probability, dtype=np.float64)
        if not np.all(np.isfinite(probabilities)) or probabilities.sum() <= 0:
            self.ingest_rejects["biodream_invalid"] = self.ingest_rejects.get("biodream_invalid", 0) + 1
            return
        slot = int(self.kernel.lookup(np.array([sample.jewel_id], np.uint32))[0])
        if slot < 0:
            self.ingest_rejects["biodream_unknown_jewel"] = self.ingest_rejects.get("biodream_unknown_jewel", 0) + 1
            return
        scale = float(probabilities @ np.asarray(self.values["coupling_by_stage"]) / probabilities.sum())
        total = self.kernel.jewels_total
        if self.jewel_scale.size < total:
            self.jewel_scale = np.concatenate([self.jewel_scale, np.ones(total - self.jewel_scale.size)])
        self.jewel_scale[slot] = scale
        self.kernel.set_coupling_scale(self.jewel_scale[:total])

    def _on_set_rhythm(self, request, response):
        problem = self._rhythm_problem(request)
        if problem:
            response.accepted, response.message = False, problem
            self.get_logger().warning(f"set_rhythm refused: {problem}")
            return response
        try:
            self.kernel.set_reference(request.frequency or None, request.slew_rate)
        except ValueError as error:
            response.accepted, response.message = False, str(error)
        else:
            response.accepted = True
            response.message = (
                "following the population"
                if not request.frequency
                else f"steering to {request.frequency:g} Hz at {request.slew_rate:g} Hz/s"
            )
        return response

    def _rhythm_problem(self, request):
        """Why a SetRhythm request cannot be taken, or "": the target is 0 (follow the population) or a rhythm
        jewels can pulse at, and the reference moves no faster than a jewel's own correction may (no jump)."""
        frequency, slew = request.frequency, request.slew_rate
        top = self.config.max_frequency_hz
        if not (math.isfinite(frequency) and (frequency == 0.0 or MIN_RHYTHM_HZ <= frequency <= top)):
            return (
                f"frequency must be 0 (follow the population) or in [{MIN_RHYTHM_HZ:g}, {top:g}] Hz, got {frequency!r}"
            )
        if not (math.isfinite(slew) and 0.0 < slew <= self.config.max_slew_hz_per_s):
            return (
                f"slew_rate must be in (0, {self.config.max_slew_hz_per_s:g}] Hz/s (max_slew_hz_per_s: no faster "
                f"than a jewel may change), got {slew!r}"
            )
        return ""

    # ------------------------------------------------------------------------------------------ parameters
    @staticmethod
    def _check_stage_gains(gains):
        if len(gains) != 5 or not all(0.0 <= g <= 2.0 for g in gains):
            raise ValueError(f"coupling_by_stage needs 5 values in 0..2 (W, N1, N2, N3, REM), got {list(gains)}")

    @staticmethod
    def _released(names):
        """The set of released plaza names; ValueError for anything but up to MAX_RELEASED names."""
        names = [n for n in names if n]
        if len(names) > MAX_RELEASED or not all(isinstance(n, str) and len(n) <= 256 for n in names):
            raise ValueError(f"released_plazas takes up to {MAX_RELEASED} plaza names, got {list(names)[:8]}")
        return frozenset(names)

    def _validate_update(self, changes):
        fields = {f.name for f in dataclasses.fields(SyncConfig)}
        candidate = dataclasses.replace(self.config, **{c.name: c.value for c in changes if c.name in fields})
        errors = candidate.validate()
        for change in changes:
            try:
                if change.name == "coupling_by_stage":
                    self._check_stage_gains(change.value)
                elif change.name == "released_plazas":
                    self._released(change.value)
            except ValueError as error:
                errors.append(str(error))
        return SetParametersResult(successful=not errors, reason="; ".join(errors))

    def _apply_update(self, changes):
        fields = {f.name for f in dataclasses.fields(SyncConfig)}
        updates = {c.name: c.value for c in changes if c.name in fields}
        for change in changes:
            self.values[change.name] = change.value
            if change.name == "released_plazas":
                self.released = self._released(change.value)
                self.get_logger().info(f"released plazas: {sorted(self.released) or 'none'}")
        if updates and hasattr(self, "kernel"):
            self.config = dataclasses.replace(self.config, **updates)
            self.kernel.set_config(self.config)
            self.get_logger().info(f"parameters applied: {updates}")

    # ------------------------------------------------------------------------------------------ diagnostics
    def _diagnostics(self):
        timing = self.stats.summary()
        result = self.last_result
        level, message = DiagnosticLevel.OK, "locked" if result and result.order_parameter >= 0.9 else "locking"
        if timing["deadline_misses"]:
            level, message = DiagnosticLevel.WARN, f"{timing['deadline_misses']} deadline misses"
        if self.ingest_rejects or self.batch_rejects:
            level = DiagnosticLevel.WARN
            message = f"rejected input: {self.ingest_rejects}"
            if self.batch_rejects:
                message += f"; rejected batches: {self.batch_rejects}"
        values = {
            "drivers": sum(not d.dropped for d in self.drivers.values()),
            "drivers_dropped": self.drivers_dropped,
            "batches_before_clock": self.batches_before_clock,
            "jewel_slots": self.kernel.jewels_total,
            "jewel_capacity": self.kernel.capacity,
            "sim_speed": self.sim_speed,
            "mode": self.config.mode,
            **timing,
        }
        if result:
            values.update(
                order_parameter=result.order_parameter,
                jewels_active=result.jewels_active,
                jewels_silent=result.jewels_silent,
                clusters=len(result.clusters),
            )
        values.update({f"rejected_{k}": v for k, v in sorted(self.ingest_rejects.items())})
        values.update({f"batches_rejected_{k}": v for k, v in sorted(self.batch_rejects.items())})
        statuses = [diagnostic_status(level, "loop", message, "synchronizer", values)]
        for driver in self.drivers.values():
            age = clock_seconds(self) - driver.last_arrival if driver.last_arrival else float("inf")
            reporting = age < self.kernel.silence_window
            state = (
                ("released: runs free" if driver.driver_id in self.released else "reporting") if reporting else "silent"
            )
            if driver.dropped:
                state = "dropped: silent past driver_timeout_s, not commanded until it reports again"
            statuses.append(
                diagnostic_status(
                    DiagnosticLevel.OK if reporting else DiagnosticLevel.WARN,
                    f"driver {driver.namespace}",
                    state,
                    driver.driver_id,
                    {
                        "batches": driver.batches,
                        "batches_rejected": driver.batches_rejected,
                        "batches_released": driver.batches_released,
                        "stale_elements": driver.stale_elements,
                        "sequence_gaps": driver.seq_gaps,
                        "last_report_age_s": age,
                        **{f"batches_rejected_{k}": v for k, v in sorted(driver.rejects.items())},
                    },
                )
            )
        return statuses


def main(args=None):
    return run_node(Synchronizer, args, PARAMETERS, executor_class=EventsExecutor)  # on the 50 Hz loop
