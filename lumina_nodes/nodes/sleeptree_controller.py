"""SleepTree lighting controller node: the city's collective state in, a DMX frame per tree out, at a fixed rate.

Topics:
  subscribes  /sync/state              lumina_nodes/SyncState: collective and cluster pulses, per-plaza lock
  subscribes  /biodream/samples        lumina_nodes/BioDreamSample: the colour of each plaza's collective stage
  subscribes  /festival/state          lumina_nodes/FestivalState (latched): the scene cue of the program phase
  publishes   /trees/<tree>/lighting   lumina_nodes/TreeLighting: the frame sent to each tree, every
                                       frame_rate_hz / publish_rate_hz frames
  publishes   /diagnostics             frames sent, frame rate achieved, late frames, render time, output errors
                                       per universe

Frames go out on a steady (wall-clock) timer, since fixtures need a steady DMX rate; their content follows the
node clock (sim time runs a simulated night's pulse). The renderer is lumina_nodes.kernels.tree_lighting; trees
come from a fixture map (``fixtures_file``, format: config/sleeptree_fixtures.yaml) or are generated (``plazas``
x ``trees_per_plaza`` trees of ``pixels_per_tree`` pixels); the output is a backend
(lumina_nodes.backends.sleeptree: sacn, sim) chosen by ``backend``.

The scene shown: the ``scene`` parameter when it is not ``auto`` (the operator's hand), else the running
festival phase's ``lighting_scene``, else chosen from the synchronizer's state.
"""

import array
import ipaddress
import re
import time
from collections import deque

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from lumina_nodes.backends.sleeptree import BACKENDS, make_lighting_backend
from lumina_nodes.backends.sleeptree.fixtures import generated_fixtures, load_fixtures
from lumina_nodes.constants import DiagnosticLevel, FestivalStatus
from lumina_nodes.kernels.tree_lighting import SCENE_CHOICES, SCENES, LightingConfig, SyncView, TreeRenderer
from lumina_nodes.msg import BioDreamSample, FestivalState, SyncState, TreeLighting
from lumina_nodes.nodes.common import (
    FESTIVAL_QOS,
    SAMPLES_QOS,
    STATE_QOS,
    DiagnosticsPublisher,
    Param,
    StartupError,
    check_choices,
    clock_seconds,
    declare_parameters,
    diagnostic_status,
    params_from_settings,
    run_node,
    seconds,
)

NODE_PARAMS = (
    Param("backend", "sim", "Lighting output.", choices=tuple(BACKENDS), read_only=True),
    Param(
        "fixtures_file",
        "",
        "YAML fixture map of the trees (format: config/sleeptree_fixtures.yaml); empty: generated from plazas, "
        "trees_per_plaza and pixels_per_tree.",
        read_only=True,
    ),
    Param("plazas", 4, "Generated map: plazas plaza_1 .. plaza_<plazas>.", 1, 64, read_only=True),
    Param("trees_per_plaza", 2, "Generated map: trees per plaza.", 1, 64, read_only=True),
    Param("pixels_per_tree", 150, "Generated map: pixels per tree.", 1, 10_880, read_only=True),
    Param("first_universe", 1, "Generated map: universe of the first tree.", 1, 63_999, read_only=True),
    Param("scene", "auto", "Scene shown; auto: the festival's cue, else from /sync/state.", choices=SCENE_CHOICES),
    Param(
        "publish_rate_hz",
        5.0,
        "How often each tree's frame is published on /trees/<tree>/lighting (at most the frame rate).",
        0.1,
        200.0,
        read_only=True,
    ),
    Param("sacn_destination", "127.0.0.1", "sacn: unicast address of trees without their own.", read_only=True),
    Param("sacn_bind_address", "127.0.0.1", "sacn: local address the sender binds to.", read_only=True),
    Param("sacn_priority", 100, "sacn: E1.31 priority of the stream.", 0, 200, read_only=True),
    Param("sacn_source_name", "Lumina SleepTrees", "sacn: E1.31 source name (1..63 bytes).", read_only=True),
    Param(
        "sacn_multicast",
        False,
        "sacn: send each universe to its E1.31 multicast group instead of unicast.",
        read_only=True,
    ),
    Param(
        "sacn_universe_discovery", False, "sacn: announce the universes every 10 s (E1.31 discovery).", read_only=True
    ),
)
LIGHTING_PARAMS = params_from_settings(LightingConfig)
#: Every parameter of the node, as it declares them (--help and docs/parameters.md read this table too).
PARAMETERS = NODE_PARAMS + LIGHTING_PARAMS
RENDER_WINDOW = 1000  # frames the render-time percentiles are taken over
TREE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")  # a tree id is one token of its topic name


class SleepTreeController(Node):
    def __init__(self):
        super().__init__("sleeptree_controller")
        try:
            self.params = declare_parameters(self, PARAMETERS)
            self.config = LightingConfig(**{p.name: self.params[p.name] for p in LIGHTING_PARAMS})
            errors = self.config.validate()
            if errors:
                raise ValueError("; ".join(errors))
            if self.params["publish_rate_hz"] > self.config.frame_rate_hz:
                raise ValueError(
                    f"publish_rate_hz {self.params['publish_rate_hz']:g} is above frame_rate_hz "
                    f"{self.config.frame_rate_hz:g}"
                )
            self.fixtures = self._fixtures()
            self.backend = make_lighting_backend(
                self.params["backend"], self.fixtures.universes, **self._backend_parameters()
            )
        except (ValueError, TypeError, OSError) as error:
            raise StartupError(f"invalid configuration: {error}") from error
        self.add_on_set_parameters_callback(self._on_set_parameters)
        trees = self.fixtures.trees
        self.renderer = TreeRenderer([t.plaza for t in trees], [t.pixels for t in trees], self.config)
        self.renderer.request_scene(self.params["scene"])
        self.festival_scene = ""
        self.offsets = self.fixtures.layout.pixel_offsets
        # universes of each tree (their rows in the backend's frames), for the tree's frames_failed
        universe_row = {u.number: row for row, u in enumerate(self.fixtures.universes)}
        self.tree_rows = [
            np.array(sorted({universe_row[s[0]] for s in self.fixtures.layout.slots_of(k)})) for k in range(len(trees))
        ]
        self.universe_failures = np.zeros(len(self.fixtures.universes), np.int64)
        self.tree_publishers = [
            self.create_publisher(TreeLighting, f"/trees/{t.id}/lighting", STATE_QOS) for t in self.fixtures.trees
        ]
        self.create_subscription(SyncState, "/sync/state", self._on_sync, STATE_QOS)
        self.create_subscription(BioDreamSample, "/biodream/samples", self._on_sample, SAMPLES_QOS)
        self.create_subscription(FestivalState, "/festival/state", self._on_festival, FESTIVAL_QOS)

        self.frames_sent = 0
        self.frames_late = 0  # frames that came more than 1.5 periods after the previous one
        self.frames_failed = 0  # frames of which at least one universe failed
        self.states_refused = 0
        self.samples_refused = 0
        self.cues_refused = 0
        self.render_ms = deque(maxlen=RENDER_WINDOW)
        self.publish_every = max(1, round(self.config.frame_rate_hz / self.params["publish_rate_hz"]))
        self.last_frame_wall = None
        self.rate_window = deque(maxlen=int(self.config.frame_rate_hz * 2) + 1)  # wall times of recent frames
        self.reported_errors = set()
        self.timer = self.create_timer(
            1.0 / self.config.frame_rate_hz, self._frame, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )
        self.diagnostics = DiagnosticsPublisher(self, self._diagnostics)
        pixels = int(self.offsets[-1])
        self.get_logger().info(
            f"SleepTree controller up: backend {self.backend.name}, {len(trees)} trees, {pixels} pixels in "
            f"{len(self.fixtures.universes)} universes, {self.config.frame_rate_hz:g} frames/s, scene "
            f"{self.params['scene']}"
        )

    # ------------------------------------------------------------------------------------------ configuration
    def _fixtures(self):
        destination = self.params["sacn_destination"]
        if self.params["fixtures_file"]:
            fixtures = load_fixtures(self.params["fixtures_file"], default_destination=destination)
        else:
            plazas = [f"plaza_{k}" for k in range(1, self.params["plazas"] + 1)]
            fixtures = generated_fixtures(
                plazas,
                self.params["trees_per_plaza"],
                self.params["pixels_per_tree"],
                first_universe=self.params["first_universe"],
                destination=destination,
            )
        for k, tree in enumerate(fixtures.trees):
            if not TREE_ID.match(tree.id):
                raise ValueError(
                    f"trees[{k}].id: {tree.id!r} cannot name the topic /trees/<id>/lighting "
                    "(a letter, then letters, digits or _)"
                )
        return fixtures

    def _backend_parameters(self):
        if self.params["backend"] != "sacn":
            return {}
        ipaddress.IPv4Address(self.params["sacn_bind_address"])  # ValueError names the bad address
        return {
            "bind_address": self.params["sacn_bind_address"],
            "priority": self.params["sacn_priority"],
            "source_name": self.params["sacn_source_name"],
            "multicast": self.params["sacn_multicast"],
            "universe_discovery": self.params["sacn_universe_discovery"],
        }

    def _on_set_parameters(self, changes):
        result = check_choices(NODE_PARAMS, changes)
        if not result.successful:
            return result
        lighting = {p.name for p in LIGHTING_PARAMS}
        updates = {c.name: c.value for c in changes if c.name in lighting}
        if updates:
            config = LightingConfig(**{**vars(self.config), **updates})
            errors = config.validate()
            if errors:
                return SetParametersResult(successful=False, reason="; ".join(errors))
            self.config = self.renderer.config = config
        for change in changes:
            if change.name == "scene":
                self.params["scene"] = change.value
                self._apply_scene()
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------------ inputs
    def _on_sync(self, msg):
        view = SyncView(
            stamp=seconds(msg.header.stamp),
            order_parameter=msg.order_parameter,
            mean_phase=msg.mean_phase,
            collective_frequency=msg.collective_frequency,
            cluster_ids=np.array([c.index for c in msg.clusters], np.int64),
            cluster_sizes=np.array([c.size for c in msg.clusters], float),
            cluster_phases=np.array([c.mean_phase for c in msg.clusters], float),
            cluster_frequencies=np.array([c.center_frequency for c in msg.clusters], float),
            plaza_order={p.driver_id: p.order_parameter for p in msg.plazas},
        )
        problem = self.renderer.update_sync(view)
        if problem is not None:
            self.states_refused += 1
            self.get_logger().warning(f"/sync/state refused: {problem}", throttle_duration_sec=10.0)

    def _on_sample(self, msg):
        if not self.renderer.update_stage(
            msg.participant_id, msg.plaza, seconds(msg.header.stamp), msg.stage, msg.stage_probability
        ):
            self.samples_refused += 1  # UNKNOWN stages (unusable EEG) are expected, not logged

    def _on_festival(self, msg):
        running = msg.status in (FestivalStatus.RUNNING, FestivalStatus.PAUSED)
        cue = msg.lighting_scene if running else ""
        if cue and cue not in SCENES:
            self.cues_refused += 1
            self.get_logger().warning(f"/festival/state: unknown lighting_scene {cue!r} ignored (known: {SCENES})")
            cue = ""
        self.festival_scene = cue
        self._apply_scene()

    def _apply_scene(self):
        scene = self.params["scene"]
        self.renderer.request_scene(scene if scene != "auto" else (self.festival_scene or "auto"))

    # ------------------------------------------------------------------------------------------ frames
    def _frame(self):
        wall = time.monotonic()
        elapsed = 0.0 if self.last_frame_wall is None else wall - self.last_frame_wall
        if elapsed > 1.5 / self.config.frame_rate_hz:
            self.frames_late += 1
        self.last_frame_wall = wall
        self.rate_window.append(wall)
        now = clock_seconds(self)
        frame = self.renderer.render(now, elapsed)
        result = self.backend.send(self.fixtures.layout.pack(frame.rgb))
        if result.failed:
            self.frames_failed += 1
            for row in result.failed_rows:
                self.universe_failures[row] += 1
        self.frames_sent += 1
        self.render_ms.append((time.monotonic() - wall) * 1e3)
        if self.frames_sent % self.publish_every == 1 or self.publish_every == 1:
            self._publish(frame)

    def _publish(self, frame):
        stamp = self.get_clock().now().to_msg()
        for k, tree in enumerate(self.fixtures.trees):
            first_universe, first_slot = self.fixtures.layout.slots_of(k)[0][:2]
            msg = TreeLighting(
                tree_id=tree.id,
                backend=self.backend.name,
                universe=first_universe,
                start_channel=first_slot,
                brightness=float(self.config.max_brightness),
                pulse_phase=frame.pulse_phase,
                pulse_frequency=frame.pulse_frequency,
                frames_failed=int(self.universe_failures[self.tree_rows[k]].max()),
            )
            msg.header.stamp = stamp
            msg.rgb = array.array("B", frame.rgb[self.offsets[k] : self.offsets[k + 1]].tobytes())
            self.tree_publishers[k].publish(msg)

    # ------------------------------------------------------------------------------------------ diagnostics
    def _diagnostics(self):
        window = list(self.rate_window)
        rate = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 and window[-1] > window[0] else 0.0
        render = np.array(self.render_ms) if self.render_ms else np.full(1, np.nan)
        stale = self.renderer.sync is None
        level = DiagnosticLevel.WARN if stale or rate < 0.9 * self.config.frame_rate_hz else DiagnosticLevel.OK
        message = "no /sync/state yet: steady glow" if stale else f"scene {self.renderer.scene}, {rate:.1f} frames/s"
        statuses = [
            diagnostic_status(
                level,
                "controller",
                message,
                self.backend.name,
                {
                    "backend": self.backend.name,
                    "trees": len(self.fixtures.trees),
                    "pixels": int(self.offsets[-1]),
                    "universes": len(self.fixtures.universes),
                    "scene": self.renderer.scene,
                    "scene_requested": self.params["scene"],
                    "festival_scene": self.festival_scene,
                    "frame_rate_hz": rate,
                    "frame_rate_target_hz": self.config.frame_rate_hz,
                    "frames_sent": self.frames_sent,
                    "frames_late": self.frames_late,
                    "frames_failed": self.frames_failed,
                    "render_ms_p50": float(np.percentile(render, 50)),
                    "render_ms_p99": float(np.percentile(render, 99)),
                    "states_refused": self.states_refused,
                    "samples_refused": self.samples_refused,
                    "cues_refused": self.cues_refused,
                },
            )
        ]
        for level, name, message, values in self.backend.diagnostics():
            if level >= DiagnosticLevel.WARN and (name, message) not in self.reported_errors:
                # a failure the operator must act on (a controller unreachable) is logged, not only published;
                # a destination where nothing listens (no receiver on loopback) is worth a warning, once
                # (one call site per severity: rclpy refuses a call site whose severity changes)
                if level >= DiagnosticLevel.ERROR:
                    self.get_logger().error(f"{name}: {message}")
                else:
                    self.get_logger().warning(f"{name}: {message}")
                self.reported_errors.add((name, message))
            statuses.append(diagnostic_status(min(level, DiagnosticLevel.ERROR), name, message, "", values))
        return statuses

    def close(self):
        self.backend.close()  # sacn: terminates the streams, so receivers let go at once


def main(args=None):
    return run_node(SleepTreeController, args, PARAMETERS)
