"""Test peer: publishes one seeded JewelStateBatch of n jewels, over and over, until SIGINT/SIGTERM.

The subscriber regenerates the same arrays from the seed (``make_batch_arrays``) and compares bit by bit.
"""

import argparse
import sys

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

from lumina_nodes.fastpath import to_field
from lumina_nodes.msg import JewelStateBatch


def make_batch_arrays(n, seed):
    """Seeded arrays with awkward float values (-0.0, subnormals, inf, NaN payloads) to prove bit-exactness."""
    rng = np.random.default_rng(seed)
    arrays = {
        "ids": rng.permutation(np.arange(1, n + 1, dtype=np.uint32) * 7),
        "phase": rng.uniform(-np.pi, np.pi, n),
        "frequency": rng.normal(1.0, 0.05, n),
        "frequency_offset": rng.uniform(-0.25, 0.25, n),
        "sample_age": rng.exponential(0.02, n),
        "intensity": rng.uniform(0, 1, n).astype(np.float32),
        "status": rng.integers(0, 8, n, dtype=np.uint8),
    }
    specials = np.array([-0.0, 5e-324, np.inf, -np.inf], dtype=np.float64)
    specials = np.concatenate(
        [specials, np.array([0x7FF8000000000001, 0xFFF0000000000ABC], dtype=np.uint64).view(np.float64)]
    )
    arrays["phase"][: specials.size] = specials
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--topic", default="jewels/state")
    args = parser.parse_args(argv)

    rclpy.init()
    node = rclpy.create_node("batch_publisher")
    pub = node.create_publisher(
        JewelStateBatch, args.topic, QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    )
    arrays = make_batch_arrays(args.n, args.seed)
    msg = JewelStateBatch(driver_id="peer")
    for name, values in arrays.items():
        setattr(msg, name, to_field(values, values.dtype))

    def publish():
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        msg.seq += 1

    node.create_timer(0.1, publish)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
