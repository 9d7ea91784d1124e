"""Festival orchestrator node: runs a festival program (lumina_nodes.festival) on the city, as an action.

Topics, services, actions:
  action      /festival/run_program      lumina_nodes/action/RunProgram: goal a program (name in config/programs/
                                         or a path) and a time scale; feedback the phase, r, clusters, events;
                                         result the phases run, times to detect and recover, lowest r, harmony
  publishes   /festival/state            lumina_nodes/FestivalState, latched: the phase, its lighting scene (the
                                         SleepTrees follow it) and the events since the previous message
  subscribes  /sync/state                what the sequencer's conditions read
  calls       /synchronizer/set_parameters        coupling_by_stage, released_plazas
              /<plaza>/inject_disruption          the program's drills, on every plaza
  publishes   /diagnostics

One program at a time: a second goal is rejected (the reason is logged and published as an event). Cancel
returns the city to a safe state: drills cleared, nominal gains, every plaza taking part, calm lighting. A call
that fails or times out is reported as an event and retried (call_attempts), and logged at ERROR when it
finally fails. With ``autostart`` the node runs that program once the city is up (every expected jewel
reporting) and, with ``exit_when_done``, prints a summary and exits (0 when harmony was reached), ending a launch
that has on_exit="shutdown" (make run).
"""

import math
import os
import time

from action_msgs.msg import GoalStatus
from builtin_interfaces.msg import Duration
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration as RclpyDuration
from rclpy.node import Node
from rclpy.task import Future

from lumina_nodes.action import RunProgram
from lumina_nodes.constants import DiagnosticLevel, DisruptionKind, EventLevel, FestivalStatus
from lumina_nodes.festival.program import ProgramError, load_program, resolve_program
from lumina_nodes.festival.sequencer import (
    Event,
    InjectDrill,
    Observation,
    Sequencer,
    SetCoupling,
    SetLighting,
    SetReleased,
)
from lumina_nodes.launch_runner.ament_index import get_package_share_directory
from lumina_nodes.msg import ClusterState, FestivalEvent, FestivalState, SyncState
from lumina_nodes.nodes.common import (
    FESTIVAL_QOS,
    STATE_QOS,
    DiagnosticsPublisher,
    Param,
    StartupError,
    clock_seconds,
    declare_parameters,
    diagnostic_status,
    run_node,
)
from lumina_nodes.srv import InjectDisruption

PARAMETERS = (
    Param("programs_dir", "", "Folder of the named programs; empty: the package's config/programs.", read_only=True),
    Param("autostart", "", "Program to run once the city is up (empty: wait for goals).", read_only=True),
    Param("autostart_time_scale", 1.0, "time_scale of the autostarted program.", 0.001, 1000.0, read_only=True),
    Param("expected_jewels", 0, "Jewels that must report before autostart (0: any).", 0, 10_000_000, read_only=True),
    Param("exit_when_done", False, "Exit after the autostarted program (0: harmony reached).", read_only=True),
    Param(
        "autostart_wait_s",
        60.0,
        "Wall-clock seconds autostart waits for the city to come up; then it gives up with an ERROR naming what is "
        "missing (and exits 1 with exit_when_done).",
        1.0,
        86400.0,
        read_only=True,
    ),
    Param("update_rate_hz", 20.0, "How often the program is stepped, Hz (node clock).", 1.0, 200.0, read_only=True),
    Param(
        "state_timeout_s", 1.0, "Older /sync/state counts as none: conditions stop holding.", 0.05, 60.0, read_only=True
    ),
    Param("call_timeout_s", 3.0, "How long one service call may take, s.", 0.1, 60.0, read_only=True),
    Param("call_attempts", 4, "Attempts of a service call before it is reported failed.", 1, 20, read_only=True),
    Param("view_period_s", 1.0, "Period of the live view on stdout, s (0: none).", 0.0, 60.0, read_only=True),
)
PLAZA_SILENT_S = 1.5  # a plaza whose driver has not reported for this long is reported silent
CITY_WAIT_S = 5.0  # a goal waits this long (wall clock) for the city to report before it is refused
# A program takes its plazas from /sync/state when it starts. For this long (wall clock) after the first /sync/state
# this node gets, a goal waits: the synchronizer lists a plaza from its first accepted batch, and a goal sent as the
# city came up (a CI run: 10 ms after a plaza was followed) ran its program without that plaza.
CITY_SETTLE_S = 1.0
FINAL_STATE_ACK_S = 2.0  # exit_when_done: the longest the final /festival/state may take to be acknowledged
CITY_REPORT_S = 5.0  # while autostart waits for the city, what is missing is logged this often (wall clock)
BAR = " ▏▎▍▌▋▊▉█"


def bar(value, width=8):
    """Unicode bar of value in 0..1."""
    filled = max(0.0, min(1.0, value if math.isfinite(value) else 0.0)) * width
    full = int(filled)
    partial = BAR[int((filled - full) * 8)] if full < width else ""
    return ("█" * full + partial).ljust(width)


def duration_msg(seconds_value):
    seconds_value = max(0.0, seconds_value)
    return Duration(sec=int(seconds_value), nanosec=int((seconds_value % 1) * 1e9))


def _parameter_refusal(response):
    """Why a SetParameters call was refused, or None when it was taken."""
    if not response.results:
        return "no result in the answer"
    return None if response.results[0].successful else response.results[0].reason or "refused"


class Call:
    """A service call in flight, retried until it answers successfully or runs out of attempts."""

    def __init__(self, client, request, what, succeeded):
        self.client, self.request, self.what, self.succeeded = client, request, what, succeeded
        self.attempt, self.future, self.deadline = 0, None, None


class Run:
    """One program being run: the sequencer, its goal (None when autostarted) and what it has said so far."""

    def __init__(self, sequencer, goal_handle):
        self.sequencer, self.goal_handle = sequencer, goal_handle
        self.done = Future()
        self.events = []  # since the last feedback
        self.all_events = []


class FestivalOrchestrator(Node):
    def __init__(self):
        super().__init__("festival_orchestrator")
        try:
            self.params = declare_parameters(self, PARAMETERS)
            self.programs_dir = self.params["programs_dir"] or os.path.join(
                get_package_share_directory("lumina_nodes"), "config", "programs"
            )
            self.autostart = None
            if self.params["autostart"]:
                self.autostart = load_program(resolve_program(self.params["autostart"], self.programs_dir))
        except (ValueError, OSError, LookupError) as error:
            raise StartupError(f"invalid configuration: {error}") from error
        self.sync, self.sync_arrival = None, None
        self.first_sync_wall = None  # time.monotonic() of the first /sync/state with plazas
        self.starting = None  # the program of a goal accepted and not yet started (waiting for the city)
        self.city_waiters: list[Future] = []  # goals waiting for a first /sync/state with plazas
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.waiting_since = self.steady.now().nanoseconds * 1e-9
        self.synchronizer_silent, self.silent_plazas = False, set()
        self.run, self.last_run = None, None
        self.lighting = ""
        self.pending_events = []  # for the next /festival/state
        self.calls = []
        self.calls_failed = 0
        self.drill_clients = {}
        self.sync_params = self.create_client(SetParameters, "/synchronizer/set_parameters")
        self.state_pub = self.create_publisher(FestivalState, "/festival/state", FESTIVAL_QOS)
        self.create_subscription(SyncState, "/sync/state", self._on_sync, STATE_QOS)
        self.action = ActionServer(
            self,
            RunProgram,
            "/festival/run_program",
            execute_callback=self._execute,
            goal_callback=self._on_goal,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
        )
        self.create_timer(1.0 / self.params["update_rate_hz"], self._step)
        if self.autostart is not None:  # on the wall clock: under use_sim_time /clock itself may be what is missing
            self.create_timer(CITY_REPORT_S, self._waiting_for_city, clock=self.steady)
        if self.params["view_period_s"] > 0:
            self.create_timer(self.params["view_period_s"], self._view)
        self.diagnostics = DiagnosticsPublisher(self, self._diagnostics)
        self._publish_state()
        self.get_logger().info(
            f"festival orchestrator up: programs in {self.programs_dir}"
            + (f", autostart {self.autostart.name}" if self.autostart else ", waiting for goals")
        )

    # ------------------------------------------------------------------------------------------ inputs
    def _on_sync(self, msg):
        self.sync, self.sync_arrival = msg, clock_seconds(self)
        if msg.plazas and self.first_sync_wall is None:
            self.first_sync_wall = time.monotonic()
        if self._city_settled():
            for waiter in self.city_waiters:
                if not waiter.done():
                    waiter.set_result(True)
            self.city_waiters.clear()
        if self.synchronizer_silent:
            self.synchronizer_silent = False
            self._event(EventLevel.INFO, "synchronizer_back", "the synchronizer reports again")
        for plaza in msg.plazas:
            if plaza.driver_id not in self.drill_clients:  # made early, so they are discovered before a drill
                self.drill_clients[plaza.driver_id] = self.create_client(
                    InjectDisruption, f"/{plaza.driver_id}/inject_disruption"
                )
            silent = plaza.last_report_age > PLAZA_SILENT_S
            if silent and plaza.driver_id not in self.silent_plazas:
                self.silent_plazas.add(plaza.driver_id)
                self._event(EventLevel.WARN, "plaza_silent", f"{plaza.driver_id}: its driver does not report")
            elif not silent and plaza.driver_id in self.silent_plazas:
                self.silent_plazas.discard(plaza.driver_id)
                self._event(EventLevel.INFO, "plaza_back", f"{plaza.driver_id}: its driver reports again")

    def _observation(self, now):
        if self.sync is None or now - self.sync_arrival > self.params["state_timeout_s"]:
            if self.sync is not None and not self.synchronizer_silent:
                self.synchronizer_silent = True
                self._event(EventLevel.WARN, "synchronizer_silent", "no /sync/state: is the synchronizer running?")
            return None
        s = self.sync
        plazas = {p.driver_id: (p.order_parameter if p.jewels_active else math.nan) for p in s.plazas}
        unresolved = sum(c.resolution == ClusterState.RESOLUTION_NONE for c in s.clusters)
        return Observation(s.order_parameter, s.lock_fraction, len(s.clusters), plazas, unresolved)

    # ------------------------------------------------------------------------------------------ goals
    def _on_goal(self, goal):
        busy = f"program {self.run.sequencer.program.name} is running" if self.run is not None else None
        if busy is None and self.starting is not None:  # accepted, waiting for the city (CITY_SETTLE_S)
            busy = f"goal for {self.starting!r} is starting"
        if busy:
            reason = f"goal for {goal.program!r} rejected: {busy}"
            self.get_logger().warning(reason)
            self._event(EventLevel.WARN, "goal_rejected", reason)
            return GoalResponse.REJECT
        self.starting = goal.program
        return GoalResponse.ACCEPT

    async def _execute(self, goal_handle):
        request = goal_handle.request
        scale = request.time_scale or 1.0
        try:
            program = load_program(resolve_program(request.program, self.programs_dir))
            if self.run is not None:
                raise ProgramError(f"program {self.run.sequencer.program.name} is running")
            await self._wait_for_city()
            self._start(program, scale, goal_handle)
        except (ProgramError, ValueError) as error:
            self.get_logger().error(f"program {request.program!r} not run: {error}")
            goal_handle.abort()
            return RunProgram.Result(success=False, message=str(error), **self._nan_marks())
        finally:
            self.starting = None
        run = self.run
        await run.done
        result = run.sequencer.result
        if run.sequencer.status == "cancelled":
            goal_handle.canceled()
        elif result.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return RunProgram.Result(
            success=result.success,
            message=result.message,
            phases_completed=result.phases_completed,
            elapsed=duration_msg(result.elapsed_s),
            time_to_detect=result.time_to_detect_s,
            time_to_recover=result.time_to_recover_s,
            min_order_parameter=result.min_order_parameter,
            harmony_reached=result.harmony_reached,
        )

    @staticmethod
    def _nan_marks():
        return {"time_to_detect": math.nan, "time_to_recover": math.nan, "min_order_parameter": math.nan}

    async def _wait_for_city(self):
        """Wait up to CITY_WAIT_S (wall clock) for a /sync/state with plazas, and CITY_SETTLE_S past the first one: a
        goal sent just after the city came up must not be refused, or run without a plaza, because this node's
        subscription has not caught up yet."""
        if self._city_settled():
            return
        waiter = Future()
        self.city_waiters.append(waiter)
        timer = self.create_timer(CITY_WAIT_S, lambda: waiter.done() or waiter.set_result(False), clock=self.steady)
        try:
            await waiter
        finally:
            self.destroy_timer(timer)

    def _city_settled(self):
        return (
            self.sync is not None
            and bool(self.sync.plazas)
            and self.first_sync_wall is not None
            and time.monotonic() - self.first_sync_wall >= CITY_SETTLE_S
        )

    def _start(self, program, scale, goal_handle):
        if self.sync is None or not self.sync.plazas:
            raise ProgramError("no plazas reporting on /sync/state: is the city running?")
        plazas = sorted(p.driver_id for p in self.sync.plazas)
        self.run = Run(Sequencer(program, plazas, scale), goal_handle)
        self._carry_out(self.run.sequencer.start(clock_seconds(self)))
        self._publish_state()

    # ------------------------------------------------------------------------------------------ stepping
    def _step(self):
        now = clock_seconds(self)
        if now <= 0.0:  # use_sim_time and no /clock yet
            return
        observation = self._observation(now)
        self._service_calls(now)
        if self.run is None and self.autostart is not None and self._city_up():
            program, self.autostart = self.autostart, None
            self._start(program, self.params["autostart_time_scale"], None)
        run = self.run
        if run is None:
            if self.pending_events:
                self._publish_state()
            return
        sequencer = run.sequencer
        if run.goal_handle is not None and run.goal_handle.is_cancel_requested:
            self._carry_out(sequencer.cancel(now, "cancelled by the client"))
        else:
            self._carry_out(sequencer.update(now, observation))
        if run.goal_handle is not None and run.goal_handle.status == GoalStatus.STATUS_EXECUTING:
            run.goal_handle.publish_feedback(self._feedback(now, observation))
            run.events = []
        self._publish_state()
        if sequencer.status != "running" and not self.calls:  # safe-state calls answered first
            self._finish(run)

    def _waiting_for_city(self):
        """Autostart is still waiting: say what is missing, and give up after autostart_wait_s."""
        if self.autostart is None or self.run is not None:
            return
        waited = self.steady.now().nanoseconds * 1e-9 - self.waiting_since
        missing = self._city_missing()
        limit = self.params["autostart_wait_s"]
        if waited < limit:
            self.get_logger().warning(
                f"waiting for the city to start {self.autostart.name} ({waited:.0f} of {limit:g} s): {missing}"
            )
            return
        self.get_logger().error(
            f"the city did not come up within {limit:g} s: {missing}; {self.autostart.name} is not started "
            "(the drivers' and synchronizer's own output says why)"
        )
        self.autostart = None
        if self.params["exit_when_done"]:
            raise SystemExit(1)

    def _city_missing(self) -> str:
        """What keeps the city from being up, for a person."""
        s = self.sync
        if s is None:
            return "no /sync/state from the synchronizer"
        if clock_seconds(self) - self.sync_arrival > self.params["state_timeout_s"]:
            return "the synchronizer's /sync/state stopped"
        if not s.plazas:
            return "the synchronizer hears no plaza (no jewel driver publishes its state)"
        plazas = ", ".join(f"{p.driver_id} {p.jewels_active}/{p.jewels_total}" for p in s.plazas)
        parts = [f"plazas reporting: {plazas}"]
        expected = self.params["expected_jewels"]
        if expected and s.jewels_active < 0.98 * expected:
            parts.append(f"{s.jewels_active} of {expected} expected jewels active")
        unserved = [p.driver_id for p in s.plazas if not self.drill_clients[p.driver_id].service_is_ready()]
        if unserved:
            parts.append(f"no inject_disruption service from {', '.join(unserved)}")
        if not self.sync_params.service_is_ready():
            parts.append("no /synchronizer/set_parameters service")
        return "; ".join(parts)

    def _city_up(self):
        s = self.sync
        if s is None or not s.plazas or clock_seconds(self) - self.sync_arrival > self.params["state_timeout_s"]:
            return False
        expected = self.params["expected_jewels"]
        # simulated links drop out now and then: 98 % of the expected jewels reporting is "up"
        if expected and s.jewels_active < 0.98 * expected:
            return False
        return all(self.drill_clients[p.driver_id].service_is_ready() for p in s.plazas) and (
            self.sync_params.service_is_ready()
        )

    def _finish(self, run):
        self.run, self.last_run = None, run
        self._summary(run)
        run.done.set_result(True)
        if run.goal_handle is None and self.params["exit_when_done"]:
            # The last /festival/state (FINISHED, and the program's last events) must reach its subscribers before
            # the process ends: a reliable writer that exits at once can take an unacknowledged sample with it
            # (`lumina view --until-done` waited for it forever, 1 run in 4).
            if not self.state_pub.wait_for_all_acked(RclpyDuration(seconds=FINAL_STATE_ACK_S)):
                self.get_logger().warning(
                    f"the final /festival/state was not acknowledged within {FINAL_STATE_ACK_S:g} s"
                )
            raise SystemExit(0 if run.sequencer.result.success else 1)

    def _feedback(self, now, observation):
        sequencer = self.run.sequencer
        phase = sequencer.phase
        return RunProgram.Feedback(
            phase=phase.name if phase else "",
            phase_index=max(0, sequencer.index),
            phase_count=len(sequencer.program.phases),
            phase_progress=sequencer.progress(now),
            time_in_phase=duration_msg(sequencer.time_in_phase(now)),
            order_parameter=observation.order_parameter if observation else math.nan,
            clusters=observation.clusters if observation else 0,
            events=self.run.events,
        )

    # ------------------------------------------------------------------------------------------ actions
    def _carry_out(self, actions):
        for action in actions:
            if isinstance(action, Event):
                self._event(action.level, action.kind, action.text)
            elif isinstance(action, SetLighting):
                self.lighting = action.scene
            elif isinstance(action, SetCoupling):
                self._set_sync_parameter("coupling_by_stage", list(action.gains))
            elif isinstance(action, SetReleased):
                self._set_sync_parameter("released_plazas", list(action.plazas) or [""])
            elif isinstance(action, InjectDrill):
                self._inject(action.drill)

    def _set_sync_parameter(self, name, value):
        kind = (
            ParameterType.PARAMETER_DOUBLE_ARRAY
            if name == "coupling_by_stage"
            else ParameterType.PARAMETER_STRING_ARRAY
        )
        field = "double_array_value" if kind == ParameterType.PARAMETER_DOUBLE_ARRAY else "string_array_value"
        parameter = Parameter(name=name, value=ParameterValue(type=kind, **{field: value}))
        self.calls.append(
            Call(
                self.sync_params,
                SetParameters.Request(parameters=[parameter]),
                f"synchronizer {name} = {value}",
                _parameter_refusal,
            )
        )

    def _inject(self, drill):
        request = InjectDisruption.Request(
            kind=int(drill.kind),
            fraction=float(drill.fraction),
            groups=int(drill.groups),
            separation=float(drill.separation),
            report_loss=float(drill.report_loss),
            report_corruption=float(drill.report_corruption),
            duration=float(drill.duration),
            seed=int(drill.seed),
        )
        for plaza in self.run.sequencer.plazas:
            if plaza not in self.drill_clients:
                self.drill_clients[plaza] = self.create_client(InjectDisruption, f"/{plaza}/inject_disruption")
            client = self.drill_clients[plaza]
            self.calls.append(
                Call(
                    client,
                    request,
                    f"{plaza} drill {DisruptionKind.name(drill.kind).lower()}",
                    lambda r: None if r.accepted else r.message,
                )
            )

    def _service_calls(self, now):
        """Send calls whose service is up, check answers, retry failures and time-outs."""
        for call in list(self.calls):
            if call.future is not None and call.future.done():
                response = call.future.result()
                problem = "no answer" if response is None else call.succeeded(response)
                if problem is None:
                    self.calls.remove(call)
                    continue
                self._retry(call, now, f"refused: {problem}")
            elif call.future is not None and now > call.deadline:
                call.future.cancel()
                self._retry(call, now, "timed out")
            elif call.future is None and call.deadline is not None and now > call.deadline:
                self._retry(call, now, "service not available")
            if call in self.calls and call.future is None and call.client.service_is_ready():
                call.future = call.client.call_async(call.request)
                call.deadline = now + self.params["call_timeout_s"]
            elif call in self.calls and call.deadline is None:
                call.deadline = now + self.params["call_timeout_s"]

    def _retry(self, call, now, why):
        call.attempt += 1
        call.future = None
        call.deadline = now + self.params["call_timeout_s"]
        if call.attempt >= self.params["call_attempts"]:
            self.calls.remove(call)
            self.calls_failed += 1
            text = f"{call.what}: {why}; gave up after {call.attempt} attempts"
            self.get_logger().error(text)
            self._event(EventLevel.ERROR, "call_failed", text)
        else:
            self._event(EventLevel.WARN, "call_retried", f"{call.what}: {why}; attempt {call.attempt + 1}")

    # ------------------------------------------------------------------------------------------ output
    def _event(self, level, kind, text):
        stamp = self.get_clock().now().to_msg()
        event = FestivalEvent(stamp=stamp, level=level, kind=kind, text=text)
        self.pending_events.append(event)
        if self.run is not None:
            self.run.events.append(event)
            self.run.all_events.append(event)
        if self.params["view_period_s"] > 0:
            mark = {EventLevel.INFO: " ", EventLevel.WARN: "!", EventLevel.ERROR: "X"}.get(level, " ")
            print(f"[{self._elapsed():7.2f} s] {mark} {kind}: {text}", flush=True)
        if level == EventLevel.WARN:
            self.get_logger().warning(f"{kind}: {text}")

    def _elapsed(self):
        run = self.run or self.last_run
        return clock_seconds(self) - run.sequencer.started if run and run.sequencer.started is not None else 0.0

    def _publish_state(self):
        msg = FestivalState(lighting_scene=self.lighting)
        msg.header.stamp = self.get_clock().now().to_msg()
        run = self.run or self.last_run
        if run is None:
            msg.status = FestivalStatus.IDLE
        else:
            sequencer = run.sequencer
            now = clock_seconds(self)
            msg.status = {
                "running": FestivalStatus.RUNNING,
                "finished": FestivalStatus.FINISHED,
            }.get(sequencer.status, FestivalStatus.ABORTED)
            msg.program = sequencer.program.name
            msg.phase = sequencer.phase.name if sequencer.phase else ""
            msg.phase_index = max(0, sequencer.index)
            msg.phase_count = len(sequencer.program.phases)
            msg.time_in_phase = duration_msg(sequencer.time_in_phase(now))
            msg.phase_duration = duration_msg(sequencer.planned_s() or 0.0)
        msg.events = self.pending_events
        self.pending_events = []
        self.state_pub.publish(msg)

    def _view(self):
        s, run = self.sync, self.run
        if s is None:
            return
        clusters = ", ".join(f"{c.center_frequency:.3f} Hz x{c.size}" for c in s.clusters) or "-"
        plazas = "  ".join(f"{p.driver_id} {bar(p.order_parameter, 5)} {p.order_parameter:.2f}" for p in s.plazas)
        phase = run.sequencer.phase.name if run and run.sequencer.phase else "idle"
        print(
            f"[{self._elapsed():7.2f} s] {phase:<22} r {bar(s.order_parameter)} {s.order_parameter:.3f}  "
            f"rhythm {s.collective_frequency:.3f} Hz  jewels {s.jewels_active}/{s.jewels_total}  "
            f"clusters [{clusters}]  trees {self.lighting or '-'} | {plazas}",
            flush=True,
        )

    def _summary(self, run):
        result, sequencer = run.sequencer.result, run.sequencer
        lines = [
            f"\n=== Lumina festival: {sequencer.program.name} ({sequencer.status}) ===",
            f"  phases completed                              {result.phases_completed:>7} of "
            f"{len(sequencer.program.phases)}",
            f"  night length                                  {result.elapsed_s:7.2f} s",
            f"  time to detect the disruption (clusters)      {result.time_to_detect_s:7.2f} s",
            f"  time to one rhythm (r >= {sequencer.program.harmony_order_parameter:.2f}, clusters resolved)  "
            f"{result.time_to_heal_s:7.2f} s",
            f"  time to harmony for good (every plaza back)   {result.time_to_recover_s:7.2f} s",
            f"  lowest r after the disruption                 {result.min_order_parameter:7.3f}",
            f"  r at the end (median of its last half second) {result.final_order_parameter:7.3f}",
            f"  plazas re-locked in the reflective sessions   "
            f"{sum(e.kind == 'plaza_relocked' for e in run.all_events):>7}",
            f"  result: {'harmony reached' if result.harmony_reached and result.success else 'harmony NOT reached'}: "
            f"{result.message}",
        ]
        print("\n".join(lines), flush=True)

    def _diagnostics(self):
        run = self.run
        values = {
            "program": run.sequencer.program.name if run else "",
            "phase": run.sequencer.phase.name if run and run.sequencer.phase else "",
            "lighting_scene": self.lighting,
            "calls_pending": len(self.calls),
            "calls_failed": self.calls_failed,
            "synchronizer_silent": self.synchronizer_silent,
            "silent_plazas": ",".join(sorted(self.silent_plazas)),
        }
        level = DiagnosticLevel.WARN if self.calls_failed or self.synchronizer_silent else DiagnosticLevel.OK
        message = f"running {values['program']}: {values['phase']}" if run else "idle"
        return [diagnostic_status(level, "festival", message, "", values)]

    def close(self):
        """The node stops mid-program: the safe state's calls go out at once (nobody spins for their answers)."""
        if self.run is not None:
            self._carry_out(self.run.sequencer.cancel(clock_seconds(self), "the orchestrator stopped"))
            for call in self.calls:
                if call.client.service_is_ready():
                    call.client.call_async(call.request)


def main(args=None):
    return run_node(FestivalOrchestrator, args, PARAMETERS)
