"""``lumina bag play`` options between processes: --clock, --rate, --start-offset, --topics, --remap, --loop, and
pause/resume with SPACE on a terminal."""

import os
import pty
import time

import numpy as np
from rclpy.qos import QoSProfile
from rclpy.serialization import serialize_message
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String

from harness import package_executable
from lumina_nodes.bag.metadata import qos_entry
from lumina_nodes.bag.writer import BagWriter

START_NS = 1_700_000_000_000_000_000


def write_bag(path, seconds=2.0, hz=100):
    """/a and /b, String "a <i>" / "b <i>" at ``hz`` each, receive times exactly 1/hz apart from START_NS."""
    writer = BagWriter(path)
    a = writer.add_topic("/a", "std_msgs/msg/String", [qos_entry()])
    b = writer.add_topic("/b", "std_msgs/msg/String", [qos_entry()])
    for i in range(int(seconds * hz)):
        t = START_NS + i * 1_000_000_000 // hz
        writer.write(a, t, t, serialize_message(String(data=f"a {i}")))
        writer.write(b, t + 1, t + 1, serialize_message(String(data=f"b {i}")))
    writer.close()
    return path


def play(processes, bag, *args, **kwargs):
    """The player, with a 1 s delay so this test's subscriptions are discovered before the first message (a
    reliable message published before the match is lost to the subscriber, as with ros2 bag play)."""
    command = [package_executable("lumina"), "bag", "play", str(bag), "--delay", "1", *args]
    return processes.start(command, name="player", **kwargs)


def test_clock_follows_the_bag_time_at_the_rate(processes, ros_node, tmp_path):
    bag = write_bag(tmp_path / "b")
    clocks, texts = [], []
    ros_node.node.create_subscription(
        Clock, "/clock", lambda m: clocks.append((time.monotonic(), m.clock.sec * 10**9 + m.clock.nanosec)), 10
    )
    ros_node.node.create_subscription(String, "/a", lambda m: texts.append(m.data), QoSProfile(depth=1000))
    player = play(processes, bag, "--clock", "50", "-r", "2", "--disable-keyboard-controls")
    ros_node.spin_until(lambda: not player.running(), timeout=30, what="the end of the playback")
    assert player.popen.returncode == 0, player.output()
    ros_node.spin_for(0.5)
    assert texts == [f"a {i}" for i in range(200)]
    wall = [w for w, _ in clocks]
    bag_ns = [c for _, c in clocks]
    assert bag_ns == sorted(bag_ns) and START_NS <= bag_ns[0] < START_NS + 100_000_000
    assert bag_ns[-1] <= START_NS + 2_000_000_000
    # 2 s of bag at rate 2 with /clock at 50 Hz: about 50 messages, the bag time running twice as fast as the wall
    assert 40 <= len(clocks) <= 55, len(clocks)
    speed = (bag_ns[-1] - bag_ns[0]) / 1e9 / (wall[-1] - wall[0])
    assert 1.8 < speed < 2.2, speed


def test_start_offset_topics_remap_and_loop(processes, ros_node, tmp_path):
    bag = write_bag(tmp_path / "b")
    got_c, got_b = [], []
    ros_node.node.create_subscription(String, "/c", lambda m: got_c.append(m.data), QoSProfile(depth=1000))
    ros_node.node.create_subscription(String, "/b", lambda m: got_b.append(m.data), QoSProfile(depth=1000))
    args = ("--start-offset", "1.5", "--topics", "/a", "-m", "/a:=/c", "--loop", "--disable-keyboard-controls")
    play(processes, bag, *args)
    # from 1.5 s in: "a 150" .. "a 199", then again from "a 150"
    ros_node.spin_until(lambda: got_c.count("a 150") >= 2, timeout=30, what="the second loop")
    first = got_c.index("a 150")
    assert got_c[first : first + 51] == [f"a {i}" for i in range(150, 200)] + ["a 150"], got_c[:60]
    assert got_b == []


def test_space_pauses_and_resumes_on_a_terminal(processes, ros_node, tmp_path):
    bag = write_bag(tmp_path / "b", seconds=4.0, hz=50)
    arrivals = []
    ros_node.node.create_subscription(String, "/a", lambda m: arrivals.append(time.monotonic()), QoSProfile(depth=1000))
    controller, terminal = pty.openpty()
    player = play(processes, bag, stdin=terminal)
    ros_node.spin_until(lambda: len(arrivals) >= 25, timeout=30, what="playback under way")
    os.write(controller, b" ")
    player.wait_for_output("paused", timeout=10)
    ros_node.spin_for(0.3)  # messages in flight
    held = len(arrivals)
    ros_node.spin_for(1.5)
    assert len(arrivals) == held, "messages arrived while paused"
    os.write(controller, b" ")
    player.wait_for_output("resumed", timeout=10)
    ros_node.spin_until(lambda: not player.running(), timeout=30, what="the end of the playback after resume")
    ros_node.spin_for(0.5)
    assert player.popen.returncode == 0 and len(arrivals) == 200, (len(arrivals), player.output())
    gaps = np.diff(arrivals)
    assert max(gaps) > 1.5  # the pause, and nothing lost around it
    os.close(controller)
    os.close(terminal)
