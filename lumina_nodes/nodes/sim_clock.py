"""Sim clock: publishes /clock running `speed` times faster than the wall clock, so a city launched with
use_sim_time:=true lives a night in a fraction of it.

The clock advances in steps of `step_s` of sim time (default one 50 Hz period, so each node's 50 Hz timers
still fire once per step), published `speed / step_s` times per wall second. Sim time starts at
`start_time_s` (a fixed epoch: runs are repeatable). This node itself runs on the wall clock.
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
        self.wall_start = time.monotonic()
        self.create_timer(self.p["step_s"] / self.p["speed"], self._publish)
        self.get_logger().info(f"/clock at {self.p['speed']:g}x wall time, {self.p['step_s'] * 1e3:g} ms steps")

    def _publish(self):
        # From the wall clock, not by counting steps: a late timer does not slow sim time down.
        sim = self.p["start_time_s"] + (time.monotonic() - self.wall_start) * self.p["speed"]
        msg = Clock()
        msg.clock.sec, nanoseconds = divmod(int(sim * 1e9), 10**9)
        msg.clock.nanosec = nanoseconds
        self.publisher.publish(msg)


def main(args=None):
    return run_node(SimClock, args, PARAMETERS)
