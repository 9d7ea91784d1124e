"""sim_clock: /clock over DDS from its own process; a stall of that process slows sim time, never jumps it."""

import os
import signal
import time

from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


def test_a_stalled_sim_clock_slows_sim_time_and_says_so_instead_of_jumping(processes, ros_node):
    clock = processes.start_node("sim_clock", "-p", "speed:=4.0")
    ticks = []  # (sim s, wall s)

    def on_clock(msg):
        ticks.append((msg.clock.sec + msg.clock.nanosec * 1e-9, time.monotonic()))

    ros_node.node.create_subscription(Clock, "/clock", on_clock, CLOCK_QOS)
    ros_node.spin_until(lambda: len(ticks) >= 50, 20, "/clock")
    os.kill(clock.popen.pid, signal.SIGSTOP)  # a stall of the clock's process, 1 s of wall time
    time.sleep(1.0)
    os.kill(clock.popen.pid, signal.SIGCONT)
    ros_node.spin_for(6.0)
    sim = [t for t, _ in ticks]
    steps = [b - a for a, b in zip(sim, sim[1:], strict=False)]
    # each message at most 2 steps of 20 ms on (a timer late by up to a period catches up), never the stall's 4 s;
    # this best-effort reader may miss a message now and then
    assert max(steps) < 0.5, max(steps)
    assert min(steps) > 0.0
    # the 1 s stall cost 4 s of sim time over the run: sim time is behind 4x wall time, and the clock says why
    elapsed_sim, elapsed_wall = sim[-1] - sim[0], ticks[-1][1] - ticks[0][1]
    assert elapsed_sim < 4.0 * elapsed_wall - 2.0, (elapsed_sim, elapsed_wall)
    clock.wait_for_output(r"\[WARN\].*sim time runs at [0-9.]+x, not 4x", timeout=10)
