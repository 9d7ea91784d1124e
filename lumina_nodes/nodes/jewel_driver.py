"""Jewel driver node: the gateway of one plaza. Publishes its jewels' state batch, applies command batches.

Topics (relative to the node's namespace, one namespace per plaza):
  publishes   jewels/state    lumina_nodes/JewelStateBatch    at publish_rate_hz
  subscribes  jewels/command  lumina_nodes/JewelCommandBatch
  service     inject_disruption  lumina_nodes/InjectDisruption (drills of the sim backend; absent with drills false)
  publishes   /diagnostics    link quality, dropouts, CRC errors, command rejects, publish rate

The device side is a backend (lumina_nodes.backends.jewel) chosen by the ``backend`` parameter, so swapping
simulated jewels for real ones changes one launch argument.
"""

import time

from rclpy.duration import Duration
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

from lumina_nodes.backends.jewel import BACKENDS, Drill, DrillTarget, make_jewel_backend
from lumina_nodes.constants import DiagnosticLevel
from lumina_nodes.fastpath import decode_command_batch, encode_state_batch
from lumina_nodes.msg import JewelCommandBatch, JewelStateBatch
from lumina_nodes.nodes.common import (
    BATCH_QOS,
    DiagnosticsPublisher,
    Param,
    StartupError,
    TopicOwner,
    WithMessageInfo,
    check_choices,
    clock_seconds,
    declare_parameters,
    diagnostic_status,
    publisher_gid,
    run_node,
)
from lumina_nodes.srv import InjectDisruption
from lumina_nodes.timing import LoopStats

PARAMETERS = (
    Param("backend", "sim", "Device backend.", choices=tuple(BACKENDS), read_only=True),
    Param("driver_id", "", "Id of this driver in the city (empty: the node name).", read_only=True),
    Param(
        "first_id",
        1,
        "Id of the first jewel: ids first_id .. first_id + jewel_count - 1 (sim: the jewels it simulates; serial: "
        "the ids it accepts from the bus, frames of other ids are counted as foreign).",
        0,
        2**32 - 1,
        read_only=True,
    ),
    Param("jewel_count", 16, "Number of jewels this gateway drives (see first_id).", 1, 1_000_000, read_only=True),
    Param("publish_rate_hz", 50.0, "Rate of state batches, Hz.", 1.0, 500.0, read_only=True),
    Param("seed", 0, "Seed of the simulated sleepers and link (sim).", 0, 2**31 - 1, read_only=True),
    Param("comfort_limit_hz", 0.25, "Largest frequency correction a jewel accepts, Hz.", 0.0, 2.0, read_only=True),
    Param("max_slew_hz_per_s", 0.5, "Fastest change of the correction a jewel makes, Hz/s.", 0.0, 10.0, read_only=True),
    Param("link_latency_s", 0.01, "Mean link latency of reports (sim), s.", 0.0, 1.0, read_only=True),
    Param("dropout_rate", 0.002, "Link dropouts per jewel per second (sim).", 0.0, 10.0, read_only=True),
    Param("port", "", "Serial port of the gateway (serial backend), e.g. /dev/ttyUSB0.", read_only=True),
    Param("baudrate", 1_000_000, "Serial baud rate (serial backend).", 1200, 12_000_000, read_only=True),
    Param("bag", "", "Bag to replay (replay backend): a bag directory or .mcap file.", read_only=True),
    Param(
        "bag_topic",
        "",
        "JewelStateBatch topic of the bag to replay (replay backend); empty: <namespace>/jewels/state.",
        read_only=True,
    ),
    Param("replay_rate", 1.0, "Replay speed factor (replay backend).", 0.01, 100.0, read_only=True),
    Param("replay_loop", False, "Start the recording over at its end (replay backend).", read_only=True),
    Param(
        "drills",
        True,
        "Serve inject_disruption (the disruption drills of backends that can play them); false in production, so "
        "no one on the network can disrupt the plaza (docs/security.md).",
        read_only=True,
    ),
    Param(
        "command_takeover_s",
        1.0,
        "The command topic belongs to the publisher whose batch was taken first (the synchronizer); another "
        "publisher's batches are rejected (foreign_publisher) unless the owner has left the graph or sent nothing "
        "for this long (a respawned synchronizer is a new publisher), wall s.",
        0.05,
        60.0,
        read_only=True,
    ),
    Param(
        "max_command_rate_hz",
        100.0,
        "Command batches per second of the node clock taken from the owner (a burst of a second's worth "
        "passes); the excess of a faster stream is rejected (rate_limited). The synchronizer sends one per tick, "
        "50 Hz of the same clock (under use_sim_time at 4x, 200 batches per wall second).",
        1.0,
        10_000.0,
        read_only=True,
    ),
    Param(
        "replay_start",
        0.0,
        "Node-clock time (s) at which the bag's first jewel state is due (replay backend; the same value in every "
        "driver keeps the plazas' recorded phases); 0: at the driver's first poll.",
        0.0,
        4.0e9,
        read_only=True,
    ),
)


def backend_parameters(values, namespace="/"):
    """Backend constructor arguments from the node parameters (``namespace``: the node's, for replay)."""
    if values["backend"] == "replay":
        topic = values["bag_topic"] or f"{namespace.rstrip('/')}/jewels/state"
        return {
            "bag": values["bag"],
            "topic": topic,
            "rate": values["replay_rate"],
            "loop": values["replay_loop"],
            "start": values["replay_start"],
            "comfort_limit": values["comfort_limit_hz"],
        }
    common = {"comfort_limit": values["comfort_limit_hz"], "max_slew": values["max_slew_hz_per_s"]}
    if values["backend"] == "sim":
        return {
            **common,
            "first_id": values["first_id"],
            "count": values["jewel_count"],
            "seed": values["seed"],
            "latency": values["link_latency_s"],
            "dropout_rate": values["dropout_rate"],
        }
    if not values["port"]:
        raise StartupError("backend 'serial' needs the 'port' parameter (e.g. port:=/dev/ttyUSB0)")
    # the ids this gateway's bus carries; frames of other ids are counted as foreign, not published
    ids = {"first_id": values["first_id"], "count": values["jewel_count"]}
    return {**common, **ids, "port": values["port"], "baudrate": values["baudrate"]}


class JewelDriver(Node):
    def __init__(self):
        super().__init__("jewel_driver")
        try:
            self.params = declare_parameters(self, PARAMETERS)
            self.backend = make_jewel_backend(
                self.params["backend"], **backend_parameters(self.params, self.get_namespace())
            )
        except (ValueError, TypeError) as error:
            raise StartupError(f"invalid configuration: {error}") from error
        self.add_on_set_parameters_callback(lambda changes: check_choices(PARAMETERS, changes))
        # Default id: the plaza namespace (/plaza_north -> plaza_north), else the node name.
        self.driver_id = (
            self.params["driver_id"] or self.get_namespace().strip("/").replace("/", ".") or self.get_name()
        )
        self.backend.start()

        period = 1.0 / self.params["publish_rate_hz"]
        self.deadline_misses = 0
        self.publish_failures = 0  # state batches the middleware refused (RCLError), each a seq gap downstream
        state_qos = QoSProfile(
            **{k: getattr(BATCH_QOS, k) for k in ("history", "depth", "reliability", "durability")},
            deadline=Duration(nanoseconds=int(3 * period * 1e9)),
        )
        self.state_pub = self.create_publisher(
            JewelStateBatch,
            "jewels/state",
            state_qos,
            event_callbacks=PublisherEventCallbacks(deadline=self._on_deadline_missed),
        )
        # raw: the batch's bytes, read into numpy views (fastpath.decode_command_batch), not a message object
        self.create_subscription(
            JewelCommandBatch, "jewels/command", WithMessageInfo(self._on_command), BATCH_QOS, raw=True
        )
        # who may command this plaza, and how fast (issue 15 item 4: a flood of valid zero offsets from a second
        # publisher pulled a plaza to r 0.18); guard times are wall times: they are about the network
        self.command_owner = TopicOwner(
            self, self.resolve_topic_name("jewels/command"), self.params["command_takeover_s"]
        )
        # a second's worth of burst: a synchronizer that stalled sends its queued ticks at once (seen in CI at
        # start-up with a 0.1 s burst), and the newest of them must not be the ones refused
        self.command_burst = max(2.0, self.params["max_command_rate_hz"])
        self.command_tokens, self.command_tokens_at = self.command_burst, None  # refilled on the node clock
        if self.params["drills"]:
            self.create_service(InjectDisruption, "inject_disruption", self._on_inject)
        self.seq = 0
        self.command_batches = {"accepted": 0, "rejected": 0}
        self.command_elements_accepted = 0
        self.drill_requests = {True: 0, False: 0}  # accepted -> count
        self.command_rejects = {}
        self.last_command_problem = ""
        self.stats = LoopStats(self.params["publish_rate_hz"])
        self.timer = self.create_timer(period, self._publish_state)
        self.diagnostics = DiagnosticsPublisher(self, self._diagnostics)
        self.get_logger().info(
            f"driver '{self.driver_id}' up: backend {self.params['backend']}, "
            f"{self.params['jewel_count'] if self.params['backend'] == 'sim' else 'device'} jewels, "
            f"{self.params['publish_rate_hz']:g} Hz"
        )

    def _publish_state(self):
        wall_start = time.perf_counter()
        clock = self.get_clock().now()  # the one clock read of this batch: poll time and stamp
        now = clock.nanoseconds * 1e-9
        if now <= 0.0:  # use_sim_time and no /clock yet
            return
        snapshot = self.backend.poll(now)
        # The stamp is the time the backend was polled at: a snapshot's sample ages are relative to it
        # (JewelSnapshot.stamp), so header.stamp - sample_age is the sample's own time. A second clock read after
        # polling made every sample look younger by the poll time (0.78 ms median at 10,000 sim jewels here,
        # 2.65 ms in issue 13 item 6: 0.005..0.017 rad of phase bias at 1 Hz). It was tried once and taken back
        # when a festival CI run lost plazas; no link to the stamp was shown (test/festival passes with it).
        # The batch goes out already serialized (fastpath.encode_state_batch: each array copied once into the CDR
        # bytes; building the message and serializing it copied each three times: 0.48 ms against 0.03 ms at
        # 12,500 jewels).
        stamp = clock.to_msg()
        msg = encode_state_batch(
            stamp,
            self.driver_id,
            self.seq,
            snapshot.ids,
            snapshot.phase,
            snapshot.frequency,
            snapshot.frequency_offset,
            snapshot.sample_age,
            snapshot.intensity,
            snapshot.status,
        )
        try:
            self.state_pub.publish(msg)
        except RuntimeError as error:  # rclpy's RCLError: "cannot publish data", seen once at 100,000 jewels on a
            # starved machine, ended the driver; a lost batch is counted (the seq still advances: a gap downstream)
            self.publish_failures += 1
            self.get_logger().warning(f"state batch {self.seq} not published: {error}", throttle_duration_sec=5.0)
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.stats.record(now, time.perf_counter() - wall_start)

    def _command_refused(self, gid):
        """Why a command batch of publisher ``gid`` is not taken (foreign_publisher, rate_limited), or None."""
        now = time.monotonic()
        if self.command_owner.foreign(gid, now):
            return "foreign_publisher"
        # the rate is counted on the node clock, the synchronizer's: on the wall clock a sim-time city at 4x (200
        # batches per wall second) had half its commands refused
        clock = clock_seconds(self)
        elapsed = max(clock - self.command_tokens_at, 0.0) if self.command_tokens_at is not None else 0.0
        rate = self.params["max_command_rate_hz"]
        self.command_tokens = min(self.command_burst, self.command_tokens + elapsed * rate)
        self.command_tokens_at = clock
        if self.command_owner.taken(gid, now):
            self.get_logger().warning("a new publisher took the command topic over")
        if self.command_tokens < 1.0:
            return "rate_limited"
        self.command_tokens -= 1.0
        return None

    def _on_command(self, data, info):
        try:
            msg = decode_command_batch(data)
        except ValueError as error:  # bytes no JewelCommandBatch type support would write: counted, never a crash
            self.command_batches["rejected"] += 1
            # counted in batches: how many elements it held is not known
            self.command_rejects["undecodable_batches"] = self.command_rejects.get("undecodable_batches", 0) + 1
            self.get_logger().warning(f"command batch not decodable: {error}", throttle_duration_sec=5.0)
            return
        problem = None
        refused = self._command_refused(publisher_gid(info))
        if refused:
            self.command_rejects[refused] = self.command_rejects.get(refused, 0) + len(msg.ids)
            problem = (
                "batch from a second publisher on the command topic; its owner still commands"
                if refused == "foreign_publisher"
                else f"more than max_command_rate_hz ({self.params['max_command_rate_hz']:g}) batches per second"
            )
        elif msg.driver_id != self.driver_id:
            # an empty driver_id is no address at all: refused like another driver's (issue 15, item 12)
            problem = (
                f"batch addressed to driver '{msg.driver_id}', this is '{self.driver_id}'"
                if msg.driver_id
                else f"batch names no driver (driver_id empty); this is '{self.driver_id}'"
            )
            reason = "wrong_driver" if msg.driver_id else "no_driver"
            self.command_rejects[reason] = self.command_rejects.get(reason, 0) + len(msg.ids)
        else:
            # Arrays of different lengths are passed as they are: the backend rejects the whole batch and
            # counts it under length_mismatch.
            result = self.backend.apply_command(msg.ids, msg.frequency_offset, msg.intensity, clock_seconds(self))
            self.command_elements_accepted += result.accepted
            for reason, count in result.rejected.items():
                if count:
                    self.command_rejects[reason] = self.command_rejects.get(reason, 0) + count
            if result.rejected_total:
                problem = result.message or f"{result.rejected_total} command elements rejected"
        if problem:
            self.command_batches["rejected"] += 1
            if problem != self.last_command_problem:
                self.get_logger().warning(f"command batch {msg.seq}: {problem}")
            self.last_command_problem = problem
        else:
            self.command_batches["accepted"] += 1

    def _on_inject(self, request, response):
        if not isinstance(self.backend, DrillTarget):
            accepted, message, affected = False, f"backend '{self.backend.name}' does not support drills", 0
        else:
            try:
                drill = Drill.parse(request.kind, **{name: getattr(request, name) for name in Drill.field_names()})
            except (ValueError, TypeError) as error:
                accepted, message, affected = False, f"rejected: {error}", 0
            else:
                accepted, message, affected = self.backend.inject(drill, now=clock_seconds(self))
        self.drill_requests[accepted] += 1
        response.accepted, response.message, response.jewels_affected = bool(accepted), message, int(affected)
        if accepted:
            self.get_logger().info(f"inject_disruption kind {request.kind}: {message}")
        else:
            self.get_logger().warning(f"inject_disruption kind {request.kind} rejected: {message}")
        return response

    def _on_deadline_missed(self, event):
        self.deadline_misses = event.total_count

    def _diagnostics(self):
        timing = self.stats.summary()
        level = DiagnosticLevel.OK
        message = "publishing"
        if self.deadline_misses or timing["deadline_misses"]:
            level, message = DiagnosticLevel.WARN, "state batches late"
        if self.publish_failures:
            level, message = DiagnosticLevel.WARN, f"{self.publish_failures} state batches not published"
        if self.command_rejects:
            level, message = max(level, DiagnosticLevel.WARN), f"command elements rejected: {self.command_rejects}"
        statuses = [
            diagnostic_status(
                level,
                "driver",
                message,
                self.driver_id,
                {
                    "backend": self.params["backend"],
                    "batches_published": self.seq,
                    "publish_rate_hz": self.params["publish_rate_hz"],
                    "publish_jitter_s": timing["jitter"],
                    "publish_slots_missed": timing["deadline_misses"],
                    "offered_deadline_missed": self.deadline_misses,
                    "publish_failures": self.publish_failures,
                    "command_batches_accepted": self.command_batches["accepted"],
                    "command_batches_rejected": self.command_batches["rejected"],
                    "command_elements_accepted": self.command_elements_accepted,
                    "drill_requests_accepted": self.drill_requests[True],
                    "drill_requests_rejected": self.drill_requests[False],
                    **{f"command_rejected_{k}": v for k, v in sorted(self.command_rejects.items())},
                },
            )
        ]
        for level, name, message, values in self.backend.diagnostics():
            if level >= DiagnosticLevel.ERROR:
                # a failure the operator must act on (no device, every jewel silent) is logged, not only
                # published on /diagnostics; once per 10 s while it lasts
                self.get_logger().error(f"{name}: {message}", throttle_duration_sec=10.0)
            statuses.append(diagnostic_status(min(level, DiagnosticLevel.ERROR), name, message, self.driver_id, values))
        return statuses

    def close(self):
        self.backend.close()


def main(args=None):
    return run_node(JewelDriver, args, PARAMETERS, executor_class=EventsExecutor)  # on the 50 Hz loop
