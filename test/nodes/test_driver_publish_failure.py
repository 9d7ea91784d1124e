"""A state batch the middleware refuses (rclpy's RCLError, a RuntimeError: "cannot publish data", seen once at
100,000 jewels on a starved machine) is counted and warned about, never the end of the driver; the batch counter
still advances, so the loss shows downstream as a sequence gap.

No DDS: JewelDriver._publish_state runs on a stand-in node whose publisher refuses its second batch.
"""

from types import SimpleNamespace

from rclpy.serialization import deserialize_message

from lumina_nodes.backends.jewel import make_jewel_backend
from lumina_nodes.msg import JewelStateBatch
from lumina_nodes.nodes.jewel_driver import JewelDriver
from lumina_nodes.timing import LoopStats


class Clock:
    def __init__(self):
        self.ns = 1000 * 10**9

    def now(self):
        ns = self.ns
        return SimpleNamespace(nanoseconds=ns, to_msg=lambda: SimpleNamespace(sec=ns // 10**9, nanosec=ns % 10**9))


def test_a_refused_state_batch_is_counted_not_a_crash():
    backend = make_jewel_backend("sim", first_id=1, count=20, seed=3)
    backend.start()
    published, warnings = [], []

    def publish(data):
        if len(published) == 1 and not warnings:
            raise RuntimeError("Failed to publish: cannot publish data")
        published.append(data)

    clock = Clock()
    node = SimpleNamespace(
        get_clock=lambda: clock,
        get_logger=lambda: SimpleNamespace(warning=lambda text, **kw: warnings.append(text)),
        backend=backend,
        driver_id="plaza_t",
        seq=0,
        publish_failures=0,
        state_pub=SimpleNamespace(publish=publish),
        stats=LoopStats(50.0),
    )
    for _ in range(3):
        JewelDriver._publish_state(node)
        clock.ns += 20_000_000
    assert node.publish_failures == 1 and len(warnings) == 1 and "cannot publish data" in warnings[0]
    assert [deserialize_message(d, JewelStateBatch).seq for d in published] == [0, 2]  # the lost batch: a gap
    assert node.seq == 3
