"""A recorded night as plain arrays: one pass over a bag's festival, synchronizer, Bio-Dream and SleepTree topics.

Messages are decoded with the bag's own ``ros2msg`` schemas (:meth:`BagReader.decoded_messages`, no rclpy), then
gathered per topic into numpy arrays. Times are the messages' header stamps (the node clock: sim seconds under
``use_sim_time``) in seconds since the night's origin: the start of the festival program when /festival/state
was recorded, else the first stamp of any series. Messages stamped 0 (sent before the node had a clock) are left
out. Every series is None when its topic is absent or holds no stamped message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from lumina_nodes.bag.reader import BagReader
from lumina_nodes.constants import FestivalStatus

SYNC_TOPIC = "/sync/state"
FESTIVAL_TOPIC = "/festival/state"
BIODREAM_TOPIC = "/biodream/samples"
DIAGNOSTICS_TOPIC = "/diagnostics"
TREE_TOPIC = re.compile(r"^/trees/([^/]+)/lighting$")


@dataclass
class Phases:
    """The festival program's phases (one span per phase entered, in order) and its events."""

    program: str
    start: np.ndarray  # (k,) s
    end: np.ndarray  # (k,) s
    name: list[str]
    index: np.ndarray  # (k,) the phase's index in the program
    event_t: np.ndarray  # (e,) s
    event_kind: list[str]
    event_text: list[str]

    def span(self, name: str):
        """(start, end) of the first span of the phase ``name``; None when the night never entered it."""
        for k, n in enumerate(self.name):
            if n == name:
                return float(self.start[k]), float(self.end[k])
        return None


@dataclass
class Sync:
    """/sync/state: the collective figures per message, the clusters flattened, the plazas as columns."""

    t: np.ndarray  # (n,) s
    order_parameter: np.ndarray  # (n,)
    collective_frequency: np.ndarray  # (n,) Hz
    lock_fraction: np.ndarray  # (n,)
    cluster_count: np.ndarray  # (n,)
    cluster_t: np.ndarray  # (m,) s: one row per cluster per message
    cluster_frequency: np.ndarray  # (m,) Hz, centre frequency
    cluster_size: np.ndarray  # (m,) active jewels
    cluster_index: np.ndarray  # (m,)
    plazas: list[str]  # driver ids, sorted
    plaza_order: np.ndarray  # (n, len(plazas)) order parameter per plaza, NaN where the plaza was not reported


@dataclass
class Hypnograms:
    """/biodream/samples: each participant's scored epochs (stamped at the epoch's end), by plaza and participant."""

    participants: list[str]
    plaza: list[str]
    t: list[np.ndarray]  # per participant (k,) s, end of each epoch
    epoch: list[np.ndarray]  # per participant (k,) s, epoch length
    stage: list[np.ndarray]  # per participant (k,) uint8 SleepStage codes (UNKNOWN: not staged)
    #: participant -> (epochs compared, agreement 0..1) with the backend's ground truth, from the last /diagnostics
    #: status of that participant that carried it (a sim or EDF backend); absent when none did
    truth_agreement: dict[str, tuple[int, float]] = field(default_factory=dict)


@dataclass
class Trees:
    """/trees/<tree>/lighting: each tree's mean pixel colour per frame published, sorted by tree id."""

    trees: list[str]
    t: list[np.ndarray]  # per tree (k,) s
    colour: list[np.ndarray]  # per tree (k, 3) mean R, G, B of the frame's pixels as sent, 0..255
    brightness: list[np.ndarray]  # per tree (k,) master brightness 0..1


@dataclass
class Night:
    path: str
    origin: float  # s, absolute node-clock time of t = 0
    phases: Phases | None
    sync: Sync | None
    hypnograms: Hypnograms | None
    trees: Trees | None
    #: topics of the bag, for the notes on what is missing
    topics: list[str] = field(default_factory=list)


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _duration(d) -> float:
    return d.sec + d.nanosec * 1e-9


class _Gather:
    """Per-topic lists filled message by message; turned into arrays once."""

    def __init__(self):
        self.festival = []  # (t, status, program, phase index, phase, time in phase)
        self.events = []  # (t, kind, text)
        self.sync = []  # (t, r, frequency, lock fraction, cluster count)
        self.clusters = []  # (t, centre frequency, size, index)
        self.plaza_rows = {}  # driver id -> (message row, order parameter) lists
        self.samples = {}  # participant -> {"plaza", "t", "epoch", "stage"}
        self.agreement = {}
        self.trees = {}  # tree -> (t list, colour list, brightness list)

    def festival_state(self, msg):
        for e in msg.events:
            t = e.stamp.sec + e.stamp.nanosec * 1e-9
            if t > 0:
                self.events.append((t, e.kind, e.text))
        t = _stamp(msg)
        if t > 0:
            self.festival.append((t, msg.status, msg.program, msg.phase_index, msg.phase, _duration(msg.time_in_phase)))

    def sync_state(self, msg):
        t = _stamp(msg)
        if t <= 0:
            return
        row = len(self.sync)
        self.sync.append((t, msg.order_parameter, msg.collective_frequency, msg.lock_fraction, len(msg.clusters)))
        self.clusters += [(t, c.center_frequency, c.size, c.index) for c in msg.clusters]
        for p in msg.plazas:
            rows, values = self.plaza_rows.setdefault(p.driver_id, ([], []))
            rows.append(row)
            values.append(p.order_parameter)

    def sample(self, msg):
        t = _stamp(msg)
        if t <= 0:
            return
        s = self.samples.setdefault(msg.participant_id, {"plaza": msg.plaza, "t": [], "epoch": [], "stage": []})
        s["t"].append(t)
        s["epoch"].append(msg.epoch_duration)
        s["stage"].append(msg.stage)

    def diagnostics(self, msg):
        for status in msg.status:
            if "participant " not in status.name:
                continue
            values = {kv.key: kv.value for kv in status.values}
            if "ground_truth_agreement" in values:
                participant = status.hardware_id or status.name.rsplit("participant ", 1)[1]
                try:
                    self.agreement[participant] = (
                        int(values["ground_truth_epochs"]),
                        float(values["ground_truth_agreement"]),
                    )
                except (KeyError, ValueError):
                    pass

    def lighting(self, tree, msg):
        t = _stamp(msg)
        if t <= 0:
            return
        pixels = np.frombuffer(msg.rgb, np.uint8)
        pixels = pixels[: len(pixels) // 3 * 3].reshape(-1, 3)
        colour = pixels.mean(axis=0) if len(pixels) else np.zeros(3)
        ts, colours, brightness = self.trees.setdefault(msg.tree_id or tree, ([], [], []))
        ts.append(t)
        colours.append(colour)
        brightness.append(msg.brightness)


def read_night(path) -> Night:
    """Read the night recorded in the bag at ``path`` (a bag directory or .mcap file). BagError when it is no
    readable bag."""
    reader = BagReader(path)
    topics = sorted(reader.topics)
    tree_topics = {name: m.group(1) for name in topics if (m := TREE_TOPIC.match(name))}
    wanted = [t for t in (SYNC_TOPIC, FESTIVAL_TOPIC, BIODREAM_TOPIC) if t in reader.topics] + list(tree_topics)
    if BIODREAM_TOPIC in reader.topics and DIAGNOSTICS_TOPIC in reader.topics:
        wanted.append(DIAGNOSTICS_TOPIC)
    g = _Gather()
    handlers = {
        SYNC_TOPIC: g.sync_state,
        FESTIVAL_TOPIC: g.festival_state,
        BIODREAM_TOPIC: g.sample,
        DIAGNOSTICS_TOPIC: g.diagnostics,
    }
    if wanted:
        for topic, _, msg in reader.decoded_messages(wanted):
            if topic in tree_topics:
                g.lighting(tree_topics[topic], msg)
            else:
                handlers[topic](msg)
    origin = _origin(g)
    return Night(
        path=str(path),
        origin=origin,
        phases=_phases(g, origin),
        sync=_sync(g, origin),
        hypnograms=_hypnograms(g, origin),
        trees=_trees(g, origin),
        topics=topics,
    )


def _origin(g: _Gather) -> float:
    running = [(t - in_phase) for t, status, _, index, _, in_phase in g.festival if _active(status) and index == 0]
    if running:
        return min(running)
    running = [t for t, status, *_ in g.festival if _active(status)]
    if running:
        return min(running)
    firsts = [rows[0][0] for rows in (g.sync, g.festival) if rows]
    firsts += [s["t"][0] for s in g.samples.values()] + [ts[0] for ts, _, _ in g.trees.values()]
    return min(firsts, default=0.0)


def _active(status) -> bool:
    return status in (FestivalStatus.RUNNING, FestivalStatus.PAUSED)


def _phases(g: _Gather, origin: float) -> Phases | None:
    rows = [r for r in g.festival if _active(r[1])]
    if not rows:
        return None
    t = np.array([r[0] for r in rows]) - origin
    index = np.array([r[3] for r in rows])
    in_phase = np.array([r[5] for r in rows])
    # a new span wherever the phase index changes (or the program restarts)
    new = np.ones(len(rows), bool)
    new[1:] = (index[1:] != index[:-1]) | ([rows[k][2] != rows[k - 1][2] for k in range(1, len(rows))])
    first = np.flatnonzero(new)
    start = np.maximum(t[first] - in_phase[first], np.concatenate([[-np.inf], t[first[1:] - 1]]))
    # a span ends where the next one starts; the last one at the program's end (the first message after it that is
    # no longer running) or its last message
    end = np.empty(len(first))
    end[:-1] = start[1:]
    finished = [r[0] - origin for r in g.festival if not _active(r[1]) and r[0] - origin > t[-1]]
    end[-1] = min(finished) if finished else t[-1]
    events = sorted(g.events)
    return Phases(
        program=rows[0][2],
        start=start,
        end=end,
        name=[rows[k][4] for k in first],
        index=index[first],
        event_t=np.array([e[0] for e in events], float) - origin,
        event_kind=[e[1] for e in events],
        event_text=[e[2] for e in events],
    )


def _sync(g: _Gather, origin: float) -> Sync | None:
    if not g.sync:
        return None
    a = np.array(g.sync, float)
    c = np.array(g.clusters, float).reshape(-1, 4)
    plazas = sorted(g.plaza_rows)
    plaza_order = np.full((len(a), len(plazas)), np.nan)
    for column, plaza in enumerate(plazas):
        rows, values = g.plaza_rows[plaza]
        plaza_order[rows, column] = values
    return Sync(
        t=a[:, 0] - origin,
        order_parameter=a[:, 1],
        collective_frequency=a[:, 2],
        lock_fraction=a[:, 3],
        cluster_count=a[:, 4].astype(int),
        cluster_t=c[:, 0] - origin,
        cluster_frequency=c[:, 1],
        cluster_size=c[:, 2],
        cluster_index=c[:, 3].astype(int),
        plazas=plazas,
        plaza_order=plaza_order,
    )


def _hypnograms(g: _Gather, origin: float) -> Hypnograms | None:
    if not g.samples:
        return None
    participants = sorted(g.samples, key=lambda p: (g.samples[p]["plaza"], _natural(p)))
    order = [np.argsort(g.samples[p]["t"], kind="stable") for p in participants]
    return Hypnograms(
        participants=participants,
        plaza=[g.samples[p]["plaza"] for p in participants],
        t=[np.array(g.samples[p]["t"])[o] - origin for p, o in zip(participants, order, strict=True)],
        epoch=[np.array(g.samples[p]["epoch"], float)[o] for p, o in zip(participants, order, strict=True)],
        stage=[np.array(g.samples[p]["stage"], np.uint8)[o] for p, o in zip(participants, order, strict=True)],
        truth_agreement={p: g.agreement[p] for p in participants if p in g.agreement},
    )


def _natural(name: str) -> tuple:
    """Sort key putting p2 before p10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def _trees(g: _Gather, origin: float) -> Trees | None:
    if not g.trees:
        return None
    trees = sorted(g.trees, key=_natural)
    return Trees(
        trees=trees,
        t=[np.array(g.trees[k][0]) - origin for k in trees],
        colour=[np.array(g.trees[k][1], float).reshape(-1, 3) for k in trees],
        brightness=[np.array(g.trees[k][2], float) for k in trees],
    )
