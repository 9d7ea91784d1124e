"""What every Lumina node shares: QoS profiles of the streams, parameter declaration with descriptors and
ranges, the /diagnostics publisher, and the standard main() of a node process."""

import gc
import inspect
import math
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future

from lumina_nodes.constants import EXIT_CONFIG
from lumina_nodes.settings import settings_of

# QoS of each stream (docs/qos.md explains the choices).
# Jewel state and command batches: reliable so a recorder sees every batch, shallow so a slow reader gets the
# newest batch instead of a backlog.
BATCH_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
# Synchronizer and festival state, tree frames.
STATE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
# Bio-Dream samples: one message per participant per hop, published in a burst per sensor, so the history holds
# many bursts (a shallow keep-last would overwrite most of a 64-participant burst before it is delivered).
SAMPLES_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1000,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
# Festival state: latched, so a late joiner (a monitor, a restarted tree controller) gets the current phase at once.
FESTIVAL_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
DIAGNOSTICS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class Param:
    """A parameter with its descriptor: name, default, description, and an optional inclusive range."""

    name: str
    default: object
    description: str
    low: float | None = None
    high: float | None = None
    read_only: bool = False
    choices: tuple = ()

    def descriptor(self):
        text = self.description
        if self.choices:
            text += f" One of: {', '.join(map(str, self.choices))}."
        descriptor = ParameterDescriptor(description=text, read_only=self.read_only)
        if self.low is not None and isinstance(self.default, float):
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(self.low), to_value=float(self.high), step=0.0)
            ]
        elif self.low is not None and isinstance(self.default, int) and not isinstance(self.default, bool):
            descriptor.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=0)]
        return descriptor


def params_from_settings(config_class):
    """One Param per field of a settings dataclass (lumina_nodes.settings): name, default, description with the
    valid values, range, read-only flag and choices all from the field's Setting.

    Open low bounds (value > low) are declared as [low, high]: the dataclass's validate(), run at start-up and in
    the node's set-parameters callback, refuses low itself.
    """
    return tuple(
        Param(
            field.name,
            field.default,
            item.description if item.choices else item.summary(),
            item.low,
            item.high,
            read_only=item.read_only,
            choices=item.choices,
        )
        for field, item in settings_of(config_class)
    )


def declare_parameters(node, params):
    """Declare ``params`` (iterable of Param) on ``node``; return {name: value} after overrides.

    An override of the wrong type, outside its range or its choices raises StartupError saying which.
    """
    values = {}
    overrides = getattr(node, "_parameter_overrides", {})  # rclpy keeps --ros-args/-p and params-file values here
    for param in params:
        override = overrides.get(param.name)
        if isinstance(param.default, float) and override is not None and override.type_ == Parameter.Type.INTEGER:
            # `speed:=2` or `value="2"` for a double parameter: the number the user meant, not a type error
            overrides[param.name] = Parameter(param.name, Parameter.Type.DOUBLE, float(override.value))
        try:
            values[param.name] = node.declare_parameter(param.name, param.default, param.descriptor()).value
        except ParameterException as error:
            raise StartupError(f"invalid parameter {param.name}: {error}") from error
    for param in params:
        if param.choices and values[param.name] not in param.choices:
            raise StartupError(f"parameter {param.name}={values[param.name]!r} is not one of {param.choices}")
    return values


def check_choices(params, changes):
    """Reject parameter updates outside the declared choices; returns SetParametersResult."""
    by_name = {p.name: p for p in params}
    for change in changes:
        param = by_name.get(change.name)
        if param is not None and param.choices and change.value not in param.choices:
            return SetParametersResult(
                successful=False, reason=f"{change.name} must be one of {param.choices}, got {change.value!r}"
            )
    return SetParametersResult(successful=True)


def diagnostic_status(level, name, message, hardware_id="", values=None):
    """A DiagnosticStatus with key/values from a dict (values are formatted as text); ``level`` is a
    lumina_nodes.constants.DiagnosticLevel member (the message stores it as one byte)."""
    return DiagnosticStatus(
        level=bytes([level]),
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=str(k), value=_format(v)) for k, v in (values or {}).items()],
    )


def _format(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class DiagnosticsPublisher:
    """Publishes the node's statuses on /diagnostics every ``period`` seconds (and on demand).

    ``collect`` returns a list of DiagnosticStatus; names are prefixed with the node's full name, as
    diagnostic_updater does.
    """

    def __init__(self, node, collect, period=1.0):
        self._node, self._collect = node, collect
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self._timer = node.create_timer(period, self.publish)

    def publish(self):
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        prefix = self._node.get_fully_qualified_name().lstrip("/")
        for status in self._collect():
            status.name = f"{prefix}: {status.name}"
            msg.status.append(status)
        self._publisher.publish(msg)


class WithMessageInfo:
    """A subscription callback ``callback(message, info)`` that works under both of rclpy's executors: the
    SingleThreadedExecutor calls a two-argument callback with two arguments, the EventsExecutor (rclpy 9.1) with
    one ``(message, info)`` tuple. The signature rclpy inspects is the two-argument one, so it passes the info."""

    __signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_ONLY) for name in ("message", "info")]
    )

    def __init__(self, callback):
        self.callback = callback

    def __call__(self, *args):
        return self.callback(*(args[0] if len(args) == 1 else args))


def publisher_gid(info):
    """The DDS writer gid (bytes) in a subscription callback's message info, or None."""
    gid = info.get("publisher_gid") if info else None
    return bytes(gid["data"]) if gid else None


class TopicOwner:
    """Trust on first use for one topic: it belongs to the publisher (DDS writer gid) whose message was taken
    first. Another publisher's messages are refused while the owner is there; the owner loses the topic once it
    has left the graph (asked at most every 0.25 s) or sent nothing taken for ``takeover_s`` (a respawned
    process is a new writer). ``now``: the caller's clock, s. docs/architecture.md has the rules built on it."""

    GRAPH_CHECK_S = 0.25

    def __init__(self, node, topic, takeover_s):
        self.node, self.topic, self.takeover_s = node, topic, float(takeover_s)
        self.gid = None  # the owner's writer gid
        self.last_taken = None
        self.checked = -math.inf  # when the graph was last asked whether the owner is still there

    def foreign(self, gid, now) -> bool:
        """Whether a message of ``gid`` is not the owner's and must be refused."""
        if gid is None or self.gid is None or gid == self.gid:
            return False
        if self.last_taken is None or now - self.last_taken >= self.takeover_s:
            return False
        if now - self.checked >= min(self.GRAPH_CHECK_S, self.takeover_s):
            self.checked = now
            gids = {bytes(info.endpoint_gid) for info in self.node.get_publishers_info_by_topic(self.topic)}
            if self.gid not in gids:
                return False
        return True

    def taken(self, gid, now) -> bool:
        """Record a message of ``gid`` taken at ``now``; True when that publisher took the topic over."""
        self.last_taken = now
        if gid is None or gid == self.gid:
            return False
        took_over = self.gid is not None
        self.gid = gid
        return took_over

    def reset(self):
        """No owner: the next message taken makes its publisher the owner."""
        self.gid = self.last_taken = None


def clock_seconds(node):
    """The node clock now, float seconds (sim time under use_sim_time)."""
    return node.get_clock().now().nanoseconds * 1e-9


def seconds(time_msg):
    """builtin_interfaces/Time -> float seconds."""
    return time_msg.sec + time_msg.nanosec * 1e-9


# How long a node may take to tear down before run_node gives up waiting for it, and to be gone after a stop
# signal whatever its main thread is doing: both inside launch's 5 s sigterm_timeout, so a hang ends before
# launch escalates.
SHUTDOWN_TIMEOUT_S = 3.0
STOP_DEADLINE_S = 4.5


def node_help(node_class, params=()) -> str:
    """The --help text of a node executable: usage, the node module's docstring, and every parameter with its
    default, meaning, valid values and whether it is read-only."""
    module = sys.modules[node_class.__module__]
    executable = os.path.basename(sys.argv[0]) or node_class.__name__
    lines = [
        f"usage: {executable} [--ros-args [-p name:=value ...] [--params-file FILE] [-r __ns:=/ns] ...]",
        "",
        (module.__doc__ or "").strip(),
    ]
    if params:
        lines += ["", "parameters (ros2 param describe gives the same; set with -p name:=value):"]
        for param in params:
            valid = ""
            if param.choices:
                valid = f" one of: {', '.join(map(str, param.choices))}."
            elif param.low is not None:
                valid = f" range [{param.low}, {param.high}]."
            flags = " read-only." if param.read_only else ""
            lines.append(f"  {param.name} (default {param.default!r}):{valid}{flags}")
            lines.append(f"      {param.description}")
    return "\n".join(lines)


def run_node(node_class, args=None, params=(), executor_class=SingleThreadedExecutor):
    """Standard main of a node process: init, spin, clean exit on Ctrl-C or SIGTERM (exit code 0).

    ``-h``/``--help`` before ``--ros-args`` prints :func:`node_help` (``params``: the node's Param table) instead.

    ``executor_class``: rclpy's SingleThreadedExecutor, or for the nodes on the city's 50 Hz loop (the synchronizer
    and the jewel drivers) its EventsExecutor: callbacks straight from the middleware's events, without the wait
    set the SingleThreadedExecutor rebuilds in Python for every callback. Measured (bench/loop_latency.py, its
    4 x 1-jewel baseline): synchronizer 0.40 -> 0.21 core, the four drivers 0.51 -> 0.35. The EventsExecutor has
    no guard conditions (the Foxglove bridge's wake-up), passes a subscription's message info only to a
    WithMessageInfo callback, and with it two sim-time tests of other nodes failed once (a festival start 0.7 s
    off, a Bio-Dream epoch late), not looked into: those nodes keep the SingleThreadedExecutor.

    The node's own SIGINT/SIGTERM handlers only ask the spin loop to stop. rclpy's default handlers chain to
    Python's KeyboardInterrupt, which can land inside a pybind11 call and surface as a RuntimeError from
    take_message (seen in CI as a node dying with exit code 1 on a clean shutdown).
    A node that cannot start (invalid parameters, missing device) logs why and exits with EXIT_CONFIG (78).
    Teardown runs under a watchdog: Fast DDS 3.2 can deadlock while it destroys a participant
    (eProsima/Fast-DDS#6502); after SHUTDOWN_TIMEOUT_S the process logs it and exits without waiting.
    """
    argv = sys.argv[1:] if args is None else list(args)[1:]
    own = argv[: argv.index("--ros-args")] if "--ros-args" in argv else argv
    if "-h" in own or "--help" in own:
        print(node_help(node_class, params))
        return 0
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    _start_stop_deadline(node_class.__name__)
    node, code, crash = None, 0, None
    logger = rclpy.logging.get_logger(node_class.__name__)
    try:
        node = node_class()
        logger = node.get_logger()
        node.add_on_set_parameters_callback(lambda changes: _refuse_clock_switch(node, changes))
        # Everything built at start-up is long-lived: keep it out of the cyclic collector, whose full
        # collections otherwise show up as loop-latency spikes.
        gc.collect()
        gc.freeze()
        executor = executor_class()
        executor.add_node(node)
        # 0.1 s at a time, the stop signal looked at between; a new future each time, as each call adds a done
        # callback to the one it is given (one future for the whole night would collect 36,000 an hour)
        while not stop.is_set() and rclpy.ok():
            executor.spin_until_future_complete(Future(), timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except StartupError as error:
        logger.fatal(str(error))
        code = EXIT_CONFIG
    except BaseException as error:
        crash, code = error, 1
        raise
    finally:
        teardown = threading.Thread(target=_tear_down, args=(node,), name="teardown", daemon=True)
        teardown.start()
        teardown.join(SHUTDOWN_TIMEOUT_S)
        if teardown.is_alive():
            logger.error(
                f"shutdown did not finish within {SHUTDOWN_TIMEOUT_S:g} s (a DDS teardown deadlock, "
                "eProsima/Fast-DDS#6502, or a device that does not close); exiting without waiting for it"
            )
            if crash is not None:  # it would never propagate past os._exit
                traceback.print_exception(crash)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        # The process is ending: a further stop signal (ros2 launch's process group gets one Ctrl-C twice) must not
        # kill it once the interpreter has restored the default handlers on its way out.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
    return code


def _refuse_clock_switch(node, changes):
    """use_sim_time is chosen at start-up: switched under running timers, a node's clock jumps (wall time to sim
    time or back) and its timers stall, so a live set is refused with the reason instead."""
    for change in changes:
        if change.name == "use_sim_time" and change.value != node.get_parameter("use_sim_time").value:
            return SetParametersResult(
                successful=False,
                reason="use_sim_time is set at start-up only (-p use_sim_time:=true, or the launch argument "
                "use_sim_time): switching clocks under running timers would stall the node",
            )
    return SetParametersResult(successful=True)


def _start_stop_deadline(name):
    """Exit STOP_DEADLINE_S after the first stop signal even if the main thread never runs Python again.

    Python runs a signal handler only between bytecodes of the main thread; one blocked inside the middleware
    (Fast DDS can deadlock while remote participants vanish, eProsima/Fast-DDS#6502) would ignore SIGINT and
    SIGTERM until launch kills it. The C-level handler still writes the signal to the wakeup fd; this thread
    waits on it. It reports on stderr with a plain write: the logging lock may be held by the blocked thread.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch():
        os.read(read_fd, 1)
        time.sleep(STOP_DEADLINE_S)
        os.write(
            2,
            f"[ERROR] [{time.time():.9f}] [{name}]: still running {STOP_DEADLINE_S:g} s after the stop signal "
            "(blocked in the middleware: eProsima/Fast-DDS#6502); exiting without waiting for it\n".encode(),
        )
        os._exit(0)

    threading.Thread(target=watch, name="stop deadline", daemon=True).start()


def _tear_down(node):
    try:
        if node is not None:
            if hasattr(node, "close"):
                node.close()
            node.destroy_node()
    finally:
        rclpy.try_shutdown()


class StartupError(RuntimeError):
    """Raised by a node constructor when its configuration cannot work; run_node reports it and exits EXIT_CONFIG."""
