"""Bag player node (``lumina bag play``): publishes a bag's messages with their recorded spacing.

Each topic gets a publisher of its recorded type with the QoS its recorded publishers offered (reliable and
transient local only when every one did, as rosbag2's player adapts them). Messages are due at
``start + (recv - first_recv) / rate`` on the monotonic clock: the player sleeps until shortly before each one and
spins the last ``SPIN_S`` (a sleep alone overshoots, rosbag2#1963), and the start is
taken only once the read-ahead queue holds the first messages, so they are not late either (rosbag2 PR #2025).
A reader thread fills the read-ahead queue (decompression never delays a due message). ``/clock`` is published
with the bag time at ``clock_hz`` when asked (``--clock``), for graphs on sim time.
"""

from __future__ import annotations

import queue
import threading
import time

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from lumina_nodes.bag import BagError
from lumina_nodes.nodes.bag_recorder import message_class

#: The last part of every wait is spun, not slept (a sleep overshoots by up to ~0.1 ms here; spinning longer
#: costs a core at 1 kHz and gets the player preempted on a busy machine).
SPIN_S = 0.0003
_END = object()


def playback_qos(offers: list[dict]) -> QoSProfile:
    reliable = not offers or all(o.get("reliability") == "reliable" for o in offers)
    latched = bool(offers) and all(o.get("durability") == "transient_local" for o in offers)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        # deep enough for a burst at --rate 10 (the recorded depth is unknown: the graph reports 0)
        depth=1000 if not latched else 1,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


class BagPlayer(Node):
    """Plays ``reader`` (a :class:`lumina_nodes.bag.reader.BagReader`).

    ``topics``: names to play (None: all); ``remap``: {recorded name: published name}; ``rate`` > 0;
    ``start_offset`` s into the bag; ``duration`` s of bag time to play (0: to the end); ``loop``;
    ``clock_hz`` (0: no /clock); ``read_ahead`` messages.
    """

    def __init__(
        self,
        reader,
        *,
        topics=None,
        remap=None,
        rate=1.0,
        start_offset=0.0,
        duration=0.0,
        loop=False,
        clock_hz=0.0,
        read_ahead=1000,
        node_name="lumina_bag_player",
    ):
        super().__init__(node_name)
        self.reader = reader
        self.rate = float(rate)
        self.loop = loop
        self.clock_hz = float(clock_hz)
        self.read_ahead = int(read_ahead)
        names = [t for t in reader.topics if topics is None or t in topics]
        missing = sorted(set(topics or ()) - set(reader.topics))
        if missing:
            raise BagError(
                f"{reader.path}: no topic {', '.join(missing)} in the bag (it has {', '.join(reader.topics)})"
            )
        self.topic_names = names
        remap = remap or {}
        self.publishers_by_topic = {}
        for name in names:
            info = reader.topics[name]
            msg_type = message_class(info.type)
            self.publishers_by_topic[name] = self.create_publisher(
                msg_type, remap.get(name, name), playback_qos(info.qos)
            )
        self.clock_pub = self.create_publisher(Clock, "/clock", QoSProfile(depth=1)) if self.clock_hz else None
        self.first_ns = reader.start_ns + int(start_offset * 1e9)
        self.end_ns = self.first_ns + int(duration * 1e9) if duration else None
        self.paused = threading.Event()
        self.stopped = threading.Event()
        self.published = 0
        self.lateness: list[float] = []  # s, per message: actual publish time - due time

    def wait_for_matching(self, timeout: float = 2.0, settle: float = 0.3) -> None:
        """Wait (up to ``timeout`` s) until every subscription the graph knows on the played topics has matched
        its publisher, and the graph has been quiet for ``settle`` s: a reliable message published before the
        match is lost to that subscriber."""
        publishers = list(self.publishers_by_topic.values()) + ([self.clock_pub] if self.clock_pub else [])
        deadline = time.monotonic() + timeout
        quiet_since, last = time.monotonic(), None
        while time.monotonic() < deadline and not self.stopped.is_set():
            counts = [(p.get_subscription_count(), self.count_subscribers(p.topic_name)) for p in publishers]
            if counts != last:
                quiet_since, last = time.monotonic(), counts
            elif all(matched >= known for matched, known in counts) and time.monotonic() - quiet_since >= settle:
                return
            time.sleep(0.01)

    def toggle_pause(self):
        if self.paused.is_set():
            self.paused.clear()
        else:
            self.paused.set()

    def stop(self):
        self.stopped.set()

    def play(self) -> None:
        """Play (each loop) until the end of the bag or :meth:`stop`."""
        while not self.stopped.is_set():
            self._play_once()
            if not self.loop:
                return

    def _fill(self, q: queue.Queue):
        try:
            for item in self.reader.messages(self.topic_names, start_ns=self.first_ns, end_ns=self.end_ns):
                while not self.stopped.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self.stopped.is_set():
                    return
            q.put(_END)
        except BagError as error:
            q.put(error)

    def _play_once(self):
        q: queue.Queue = queue.Queue(maxsize=self.read_ahead)
        filler = threading.Thread(target=self._fill, args=(q,), daemon=True, name="bag-read-ahead")
        filler.start()
        # Start the clock once the queue is primed, so the first messages are on time too.
        deadline = time.monotonic() + 5.0
        while q.qsize() < min(self.read_ahead, 100) and filler.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        start = time.monotonic()
        next_clock = start
        while not self.stopped.is_set():
            item = q.get()
            if item is _END:
                break
            if isinstance(item, BagError):
                raise item
            topic, recv_ns, _, data = item
            due = start + (recv_ns - self.first_ns) / 1e9 / self.rate
            while True:
                if self.paused.is_set():
                    paused_at = time.monotonic()
                    while self.paused.is_set() and not self.stopped.is_set():
                        time.sleep(0.01)
                    shift = time.monotonic() - paused_at
                    start += shift
                    due += shift
                    next_clock += shift
                if self.stopped.is_set():
                    return
                now = time.monotonic()
                if self.clock_pub is not None and next_clock <= min(due, now):
                    self._publish_clock(start, next_clock)
                    next_clock += 1.0 / self.clock_hz
                    continue
                wake = min(due, next_clock) if self.clock_pub is not None else due
                remaining = wake - now
                if remaining <= 0:
                    if wake == due or now >= due:
                        break
                    continue
                if remaining > SPIN_S:
                    time.sleep(min(remaining - SPIN_S, 0.05))
            self.publishers_by_topic[topic].publish(data)
            self.lateness.append(time.monotonic() - due)
            self.published += 1
        filler.join(timeout=1.0)

    def _publish_clock(self, start, at):
        bag_ns = self.first_ns + int((at - start) * self.rate * 1e9)
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(bag_ns, 1_000_000_000)
        self.clock_pub.publish(msg)
