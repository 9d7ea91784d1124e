"""Replay jewel backend: a recorded night's jewel states, played back as the live driver published them.

The states come from one ``JewelStateBatch`` topic of a bag (``lumina bag record``, or any rosbag2 MCAP bag).
Batch k is due when the node clock has advanced ``(stamp_k - stamp_0) / rate`` since ``start`` (stamps are the
recorded ``header.stamp``, so a night recorded on sim time replays on sim time). ``stamp_0`` is the first stamp
over *every* jewel state topic of the bag, so drivers replaying different plazas of one bag with the same
``start`` keep the plazas' recorded phase relations; ``start`` 0 means "at this driver's first poll" (then each
plaza starts on its own and their relative phases are not the recorded ones). Each poll returns the newest
batch that is due: its ids, phases, frequencies, offsets, intensities and status bits as recorded, with
``sample_age`` grown by how far the poll is past the batch's stamp (in bag seconds), so the phase is still
"measured at stamp - age". At the end of the bag the backend either starts over (``loop``) or reports no jewels
and says so in its diagnostics.

Commands are validated like a live backend's and counted, but they do not change the recording: the jewels
pulse as they did that night, whatever the synchronizer asks now.
"""

from __future__ import annotations

import numpy as np

from lumina_nodes.bag import BagError
from lumina_nodes.constants import DiagnosticLevel

from .base import Diagnostic, JewelBackend, JewelSnapshot
from .commands import CommandResult, validate_command

STATE_TYPE = "lumina_nodes/msg/JewelStateBatch"


class ReplayJewelBackend(JewelBackend):
    name = "replay"

    def __init__(
        self,
        bag: str,
        topic: str,
        rate: float = 1.0,
        loop: bool = False,
        start: float = 0.0,
        comfort_limit: float = 0.25,
    ):
        from lumina_nodes.bag.reader import BagReader

        if not bag:
            raise ValueError("backend 'replay' needs the 'bag' parameter (a bag directory or .mcap file)")
        if not 0.01 <= rate <= 100.0:
            raise ValueError(f"replay rate {rate} is out of range [0.01, 100]")
        try:
            self.reader = BagReader(bag)
        except BagError as error:
            raise ValueError(str(error)) from error
        states = [t.name for t in self.reader.topics.values() if t.type == STATE_TYPE]
        info = self.reader.topics.get(topic)
        if info is None or info.type != STATE_TYPE:
            raise ValueError(
                f"{bag}: no {STATE_TYPE} topic {topic!r} in the bag (its jewel state topics: "
                f"{', '.join(states) or 'none'}); set bag_topic"
            )
        if not info.message_count:
            raise ValueError(f"{bag}: topic {topic} has no messages")
        from rosbags.typesys import Stores, get_typestore
        from rosbags.typesys.msg import get_types_from_msg

        self.typestore = get_typestore(Stores.EMPTY)
        self.typestore.register(get_types_from_msg(info.schema_text, STATE_TYPE))
        if start < 0:
            raise ValueError(f"replay start {start} must be >= 0 (0: at the first poll)")
        self.start_at = float(start)
        self.first_stamp = min(self._first_stamp(name) for name in states)
        self.bag, self.topic, self.rate, self.loop = str(bag), topic, float(rate), bool(loop)
        self.comfort_limit = float(comfort_limit)
        self.counters = {"batches_replayed": 0, "polls": 0, "loops": 0, "commands_accepted": 0, "commands_rejected": 0}
        self.known_ids = np.zeros(0, np.uint32)
        self.ended = False
        self._messages = None
        self._current = None  # (stamp_s, decoded message)
        self._served = None  # the batch the last poll returned
        self._next = None
        self._start_now = None
        self._start_stamp = None

    def _first_stamp(self, topic):
        for _, _, _, data in self.reader.messages([topic]):
            stamp = self.typestore.deserialize_cdr(data, STATE_TYPE).header.stamp
            return stamp.sec + stamp.nanosec * 1e-9
        return float("inf")

    def start(self) -> None:
        self._rewind()

    def _rewind(self):
        self._messages = self.reader.messages([self.topic])
        self._current = None
        self._next = self._read()
        self._start_now = None
        if self._next is None:
            self.ended = True

    def _read(self):
        try:
            _, _, _, data = next(self._messages)
        except StopIteration:
            return None
        except BagError:
            return None
        msg = self.typestore.deserialize_cdr(data, STATE_TYPE)
        return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, msg

    def poll(self, now: float) -> JewelSnapshot:
        self.counters["polls"] += 1
        if self._next is None and self.loop and self.counters["batches_replayed"]:
            self.counters["loops"] += 1
            self._rewind()
        if self._start_now is None and self._next is not None:
            # the first pass starts at `start` (or now); a loop starts over at once
            self._start_now = (self.start_at or now) if not self.counters["loops"] else now
            self._start_stamp = self.first_stamp if not self.counters["loops"] else self._next[0]
        if self._start_now is None:
            self.ended = True
            return JewelSnapshot.empty(now)
        target = self._start_stamp + (now - self._start_now) * self.rate
        while self._next is not None and self._next[0] <= target:
            self._current = self._next
            self.counters["batches_replayed"] += 1
            self._next = self._read()
        if self._next is None and self._current is not None and self._current is self._served and not self.loop:
            self.ended = True  # the last batch has been served: the recording is over
        if self._current is None or self.ended:
            return JewelSnapshot.empty(now)
        self._served = self._current
        stamp, msg = self._current
        self.known_ids = np.unique(msg.ids.astype(np.uint32))
        n = len(msg.ids)
        status = msg.status if len(msg.status) == n else np.zeros(n, np.uint8)
        return JewelSnapshot(
            now,
            msg.ids.astype(np.uint32),
            msg.phase.astype(np.float64),
            msg.frequency.astype(np.float64),
            msg.frequency_offset.astype(np.float64),
            msg.sample_age.astype(np.float64) + max(0.0, target - stamp),
            msg.intensity.astype(np.float32),
            status.astype(np.uint8),
        )

    def apply_command(self, ids, frequency_offset, intensity, now: float) -> CommandResult:
        result, *_ = validate_command(ids, frequency_offset, intensity, self.known_ids, self.comfort_limit)
        self.counters["commands_accepted"] += result.accepted
        self.counters["commands_rejected"] += result.rejected_total
        return result

    def diagnostics(self) -> list[Diagnostic]:
        level, message = DiagnosticLevel.OK, f"replaying {self.topic} of {self.bag}"
        if self._current is None and not self.ended:
            message = f"waiting for the replay start ({self.start_at:.3f} s on the node clock)"
        if self.ended:
            level, message = DiagnosticLevel.WARN, f"recording ended ({self.topic} of {self.bag}); publishing no jewels"
        return [
            (
                level,
                "jewel replay",
                message,
                {
                    **{k: str(v) for k, v in self.counters.items()},
                    "rate": f"{self.rate:g}",
                    "loop": str(self.loop),
                    "batches_in_bag": str(self.reader.topics[self.topic].message_count),
                    "commands_change_recording": "False",
                },
            )
        ]
