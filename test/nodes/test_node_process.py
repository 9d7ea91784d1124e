"""The standard main of a node process (nodes.common.run_node), run in its own process: a teardown that hangs
(Fast DDS can deadlock while it destroys a participant, eProsima/Fast-DDS#6502), a main thread blocked in the
middleware, and repeated stop signals all end in exit code 0."""

import signal
import subprocess
import sys
import time

import pytest

from harness import REPO

HANGING_NODE = """
import threading, time
from rclpy.node import Node
from lumina_nodes.nodes.common import run_node

class HangsOnClose(Node):
    def __init__(self):
        super().__init__("hangs_on_close")
        self.get_logger().info("up")

    def close(self):
        threading.Event().wait()  # never returns, as a deadlocked teardown

raise SystemExit(run_node(HangsOnClose))
"""


def stop_once_it_prints(script, marker, env, timeout):
    """Run ``script`` in its own interpreter, SIGINT it once it has printed ``marker``; (exit code, seconds from
    the signal to the exit, output after the marker)."""
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 30
    output = ""
    while marker not in output and time.monotonic() < deadline:
        output += process.stdout.readline()
    process.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    rest, _ = process.communicate(timeout=timeout)
    return process.returncode, time.monotonic() - stopped, output + rest


def test_a_teardown_that_hangs_ends_in_an_error_and_exit_0_after_the_timeout(ros_env):
    from lumina_nodes.nodes.common import SHUTDOWN_TIMEOUT_S

    code, took, output = stop_once_it_prints(HANGING_NODE, "up", ros_env, SHUTDOWN_TIMEOUT_S + 20)
    assert code == 0, output
    assert SHUTDOWN_TIMEOUT_S - 0.5 <= took <= SHUTDOWN_TIMEOUT_S + 5
    assert "[ERROR]" in output and "shutdown did not finish within" in output, output


BLOCKED_NODE = """
import time
from rclpy.node import Node
from lumina_nodes.nodes.common import run_node

class BlocksItsThread(Node):
    def __init__(self):
        super().__init__("blocks_its_thread")
        self.get_logger().info("up")
        self.create_timer(0.2, self.block)

    def block(self):
        self.get_logger().info("blocking")
        time.sleep(3600)  # as a call stuck in the middleware: the signal handler never gets to stop the loop

raise SystemExit(run_node(BlocksItsThread))
"""


def test_a_node_whose_main_thread_is_blocked_still_exits_after_a_stop_signal(ros_env):
    from lumina_nodes.nodes.common import STOP_DEADLINE_S

    code, took, output = stop_once_it_prints(BLOCKED_NODE, "blocking", ros_env, STOP_DEADLINE_S + 20)
    assert code == 0, output
    assert STOP_DEADLINE_S - 0.5 <= took <= STOP_DEADLINE_S + 2.0
    assert "[ERROR]" in output and "still running 4.5 s after the stop signal" in output, output


@pytest.mark.parametrize("executable", ["jewel_driver", "sleeptree_controller"])
def test_two_stop_signals_in_a_row_are_one_clean_exit(executable, processes):
    """Under ros2 launch the nodes share the launcher's process group, so one Ctrl-C reaches them twice (issue 15,
    item 17): two SIGINTs 10 ms apart, once the node runs, still end it with exit code 0 and no traceback."""
    node = processes.start_node(executable)
    node.wait_for_output(r" up: ", 30)
    node.popen.send_signal(signal.SIGINT)
    time.sleep(0.01)
    node.popen.send_signal(signal.SIGINT)
    assert node.popen.wait(timeout=10) == 0, node.output()
    assert "Traceback" not in node.output()
