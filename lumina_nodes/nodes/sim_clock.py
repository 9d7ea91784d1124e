"""Sim clock: publishes /clock running `speed` times faster than the wall clock, so a city launched with
use_sim_time:=true lives a night in a fraction of it.

The clock advances in steps of about `step_s` of sim time (default one 50 Hz period, so each node's 50 Hz timers
still fire once per step), published `speed / step_s` times per wall second. Sim time starts at
`start_time_s` (a fixed epoch: runs are repeatable). This node itself runs on the wall clock.

Sim time follows the wall clock x `speed`, but one message moves it at most `MAX_STEPS_PER_MESSAGE` steps (40 ms
of sim time by default): a timer late by up to a period catches up, a longer stall is given up, so on a machine
that cannot keep up sim time runs slower than `speed` (logged at WARN), as a simulator's real-time factor falls
under load, instead of jumping. A jump after a stall of this process moved every node's clock at once by the
stall x speed, and each control loop saw its reports that much late or early. Counting bare steps (one per
timer call) ran the default city at 2.3-2.6x on this 2-core machine even with nothing else running: a 200 Hz
timer among 12 processes is often a little late. 5 steps a message kept 4x under heavy load but left every
stall 4x as long in sim time (the medium city's plazas fell silent in 3 of 6 clean-run tests on a busy machine).
"""

import time

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from lumina_nodes.nodes.common import Param, StartupError, declare_parameters, run_node

PARAMETERS = (
    Param("speed", 4.0, "Sim seconds per wall second.", 0.01, 1000.0, read_only=True),
    Param("step_s", 0.02, "Sim time advanced per /clock message, s.", 0.0001, 1.0, read_only=True),
    Param("start_time_s", 1.8e9, "Sim time at start, s since the epoch.", 1.0, 4.0e9, read_only=True),
)


MAX_STEPS_PER_MESSAGE = 2  # the most sim time one /clock message moves on (in steps of step_s)
SPEED_WINDOW_S = 5.0  # wall s over which the achieved speed is measured
SLOW_FRACTION = 0.9  # below this fraction of `speed`, a WARN


class SimClock(Node):
    def __init__(self):
        super().__init__("sim_clock")
        self.p = declare_parameters(self, PARAMETERS)
        if self.get_parameter("use_sim_time").value:
            raise StartupError("sim_clock publishes /clock and cannot itself follow it (use_sim_time must be false)")
        # rclpy's clock QoS: what every use_sim_time subscriber requests.
        self.publisher = self.create_publisher(
            Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        )
        self.sim = self.p["start_time_s"]
        self.wall_start = time.monotonic()  # sim time = start_time_s + (wall - wall_start) x speed, if it keeps up
        self.window = (self.wall_start, self.sim)  # (wall s, sim s) where the achieved speed is measured from
        self.create_timer(self.p["step_s"] / self.p["speed"], self._publish)
        self.get_logger().info(f"/clock at {self.p['speed']:g}x wall time, {self.p['step_s'] * 1e3:g} ms steps")

    def _publish(self):
        wall = time.monotonic()
        target = self.p["start_time_s"] + (wall - self.wall_start) * self.p["speed"]
        largest = MAX_STEPS_PER_MESSAGE * self.p["step_s"]
        if target - self.sim > largest:  # behind by more than one message may move: the rest is given up
            self.wall_start += (target - self.sim - largest) / self.p["speed"]
            target = self.sim + largest
        self.sim = max(self.sim, target)
        sim = self.sim
        if wall - self.window[0] >= SPEED_WINDOW_S:
            achieved = (sim - self.window[1]) / (wall - self.window[0])
            self.window = (wall, sim)
            if achieved < SLOW_FRACTION * self.p["speed"]:
                self.get_logger().warning(
                    f"sim time runs at {achieved:.2f}x, not {self.p['speed']:g}x: the machine cannot keep up "
                    "(the night takes longer in wall time)",
                    throttle_duration_sec=10.0,
                )
        msg = Clock()
        msg.clock.sec, nanoseconds = divmod(int(sim * 1e9), 10**9)
        msg.clock.nanosec = nanoseconds
        self.publisher.publish(msg)


def main(args=None):
    return run_node(SimClock, args, PARAMETERS)
