"""Test peer: prints one line per /sync/state message, for a test that cannot hold the subscription itself.

A test whose synchronizer runs in another network namespace (test/system/test_multi_host.py) starts this peer in
that namespace. Each line: ``state <monotonic s> <order_parameter> <jewels_active> <jewels_total> <plazas>``
(CLOCK_MONOTONIC is one clock for every namespace of the machine, so the test compares it with its own). Runs
until SIGINT/SIGTERM.
"""

import time

import rclpy
from rclpy.executors import ExternalShutdownException

from lumina_nodes.msg import SyncState
from lumina_nodes.nodes.common import STATE_QOS


def main():
    rclpy.init()
    node = rclpy.create_node("sync_state_probe")

    def on_state(msg):
        print(
            f"state {time.monotonic():.3f} {msg.order_parameter:.4f} {msg.jewels_active} {msg.jewels_total} "
            f"{len(msg.plazas)}",
            flush=True,
        )

    node.create_subscription(SyncState, "/sync/state", on_state, STATE_QOS)
    print("probe ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
