"""A batch of 10,000 jewels crosses from one process to another over DDS, bit for bit."""

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy

from harness import PEERS
from lumina_nodes.fastpath import from_field
from lumina_nodes.msg import JewelStateBatch


def bits(array):
    return array.view(f"u{array.dtype.itemsize}")


def test_10000_jewel_batch_is_bit_exact_across_processes(processes, ros_node):
    import sys

    sys.path.insert(0, str(PEERS))
    from batch_publisher import make_batch_arrays

    received = []
    ros_node.node.create_subscription(
        JewelStateBatch,
        "/city/jewels/state",
        received.append,
        QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE),
    )
    publisher = processes.start_python(
        PEERS / "batch_publisher.py", "--n", "10000", "--seed", "11", "--topic", "/city/jewels/state"
    )
    ros_node.wait_for_publishers("/city/jewels/state")
    ros_node.spin_until(lambda: len(received) >= 2, 20, "two batches")

    expected = make_batch_arrays(10000, 11)
    for msg in received[:2]:
        assert msg.driver_id == "peer"
        for name, values in expected.items():
            got = from_field(getattr(msg, name), values.dtype)
            assert got.shape == values.shape, name
            assert np.array_equal(bits(got), bits(values)), f"{name} differs"
    assert received[1].seq == received[0].seq + 1
    assert publisher.running()
