"""Test peer: publishes known streams for the recorder, waits for it first, prints what it published.

Streams (each message's content is a function of its index, so a reader can check every one):
  /bag_test/chatter        std_msgs/String "msg <i>"                  --rate Hz, reliable keep-last 10
  /bag_test/jewels/state   JewelStateBatch, --jewels elements, seq i  --batch-rate Hz, reliable keep-last 5
  /bag_test/latched        std_msgs/String "latched", once before the recorder subscribes (transient local)
Publishes for --duration s (or until SIGINT), then prints ``published chatter=<n> state=<n> latched=1``.
"""

import argparse
import signal
import time

import numpy as np
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from lumina_nodes.fastpath import to_field
from lumina_nodes.msg import JewelStateBatch


def state_batch(i, jewels):
    msg = JewelStateBatch(driver_id="bag_test", seq=i)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_800_000_000 + i // 50, (i % 50) * 20_000_000
    ids = np.arange(1, jewels + 1, dtype=np.uint32)
    msg.ids = to_field(ids, np.uint32)
    msg.phase = to_field(np.full(jewels, (i % 100) / 100.0), np.float64)
    msg.frequency = to_field(np.full(jewels, 1.0), np.float64)
    msg.frequency_offset = to_field(np.zeros(jewels), np.float64)
    msg.sample_age = to_field(np.zeros(jewels), np.float64)
    msg.intensity = to_field(np.ones(jewels, np.float32), np.float32)
    return msg


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--batch-rate", type=float, default=50.0)
    parser.add_argument("--jewels", type=int, default=250)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--wait-subscribers", type=int, default=1, help="recorder subscriptions to wait for per topic")
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("bag_source")
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    chatter = node.create_publisher(String, "/bag_test/chatter", 10)
    state = node.create_publisher(
        JewelStateBatch, "/bag_test/jewels/state", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    )
    latched = node.create_publisher(
        String, "/bag_test/latched", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    )
    latched.publish(String(data="latched"))
    deadline = time.monotonic() + 30
    while (
        not stop
        and time.monotonic() < deadline
        and (
            chatter.get_subscription_count() < args.wait_subscribers
            or state.get_subscription_count() < args.wait_subscribers
        )
    ):
        time.sleep(0.01)
    print("subscribed", flush=True)
    time.sleep(0.3)  # the recorder's reader has matched the writers (discovery both ways)
    n_chat = n_state = 0
    start = time.monotonic()
    while not stop and time.monotonic() - start < args.duration:
        now = time.monotonic() - start
        while n_chat < now * args.rate:
            chatter.publish(String(data=f"msg {n_chat}"))
            n_chat += 1
        while n_state < now * args.batch_rate:
            state.publish(state_batch(n_state, args.jewels))
            n_state += 1
        time.sleep(0.001)
    time.sleep(0.5)  # reliable delivery of the last messages
    print(f"published chatter={n_chat} state={n_state} latched=1", flush=True)
    while not stop:
        time.sleep(0.05)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
