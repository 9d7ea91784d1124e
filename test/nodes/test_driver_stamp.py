"""The jewel driver stamps a state batch with the time it polled its backend at (issue 13 item 6): a snapshot's
sample ages are relative to that time, so header.stamp - sample_age is each sample's own time.

No DDS: JewelDriver._publish_state runs on a stand-in node whose clock moves 5 ms per read, as a slow poll of
many jewels makes it move, so a second clock read after polling would show in the stamp.
"""

from types import SimpleNamespace

import numpy as np
from rclpy.serialization import deserialize_message

from lumina_nodes.backends.jewel import make_jewel_backend
from lumina_nodes.fastpath import from_field
from lumina_nodes.msg import JewelStateBatch
from lumina_nodes.nodes.common import seconds
from lumina_nodes.nodes.jewel_driver import JewelDriver
from lumina_nodes.timing import LoopStats


class SteppingClock:
    """A node clock that advances ``step`` seconds every time it is read (integer nanoseconds)."""

    def __init__(self, start_s, step_s):
        self.ns, self.step = int(start_s * 1e9), int(step_s * 1e9)

    def now(self):
        ns = self.ns
        self.ns += self.step
        return SimpleNamespace(nanoseconds=ns, to_msg=lambda: SimpleNamespace(sec=ns // 10**9, nanosec=ns % 10**9))


def test_state_batch_stamp_is_the_poll_time_of_its_sample_ages():
    backend = make_jewel_backend("sim", first_id=1, count=200, seed=3, latency=0.01, dropout_rate=0.002)
    backend.start()
    polled, published = [], []
    poll = backend.poll
    backend.poll = lambda now: polled.append(now) or poll(now)
    clock = SteppingClock(1000.0, 0.005)
    node = SimpleNamespace(
        get_clock=lambda: clock,
        backend=backend,
        driver_id="plaza_t",
        seq=0,
        state_pub=SimpleNamespace(publish=published.append),
        stats=LoopStats(50.0),
    )
    for _ in range(5):
        JewelDriver._publish_state(node)
        clock.ns += int(0.02e9)
    assert len(published) == 5
    published = [deserialize_message(data, JewelStateBatch) for data in published]  # it publishes the CDR bytes
    for now, msg in zip(polled, published, strict=True):
        stamp = seconds(msg.header.stamp)
        assert abs(stamp - now) < 1e-6, (stamp, now)  # not a later clock read
        # the delivered samples' own times: the backend's report times, `latency` (+ jitter) before the poll
        sample_time = stamp - from_field(msg.sample_age, np.float64)
        fresh = from_field(msg.status, np.uint8) == 0
        assert np.all(sample_time[fresh] <= now - 0.01 + 1e-6)
