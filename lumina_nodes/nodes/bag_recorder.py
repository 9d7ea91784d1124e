"""Bag recorder node (``lumina bag record``): serialized subscriptions to the chosen topics, into a rosbag2 bag.

Topics are found as they appear (a graph poll every ``polling_interval``), each subscribed raw (CDR bytes, never
deserialised) with the QoS its publishers offer, adapted as rosbag2 does: reliable only if every publisher is,
transient local only if every publisher is. As in rosbag2 the offers are taken when the topic is found: they are
the channel's metadata in the MCAP file, which must equal metadata.yaml's. Messages are written in the callback,
so nothing queues inside the recorder: a message it could not take in time is lost in DDS.

Missed messages are counted from the gaps in the ``seq`` counters Lumina's batch messages carry (per sender) and
written into the bag's metadata (custom_data ``lumina.*``). A message of another type lost in DDS (a keep-last
queue overwritten while the recorder lagged) is not counted: the message info (whose publication sequence
numbers would show it) is not read, and the middleware's message-lost event is not used (see ``_subscribe``).

The executor is rclpy's EventsExecutor (it keeps up with 20,000 small messages/s where the SingleThreadedExecutor
keeps up with about 5,000, ../shared/ROS_ON_PYPI.md), turned one event at a time from this loop so subscriptions
created between turns are served. It passes a message's info only to a callback shaped as
``nodes.common.WithMessageInfo`` (found after this recorder was built; not used here yet), so a message's receive
time is taken in its callback (rosbag2 uses the middleware's receive stamp) and its publish time is written equal
to it.
"""

from __future__ import annotations

import importlib
import re
import time

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from lumina_nodes.bag import BagError
from lumina_nodes.bag.drops import SeqGapCounter, seq_reader
from lumina_nodes.bag.metadata import qos_entry


def message_class(type_name: str):
    """The generated class of 'pkg/msg/Type'; ValueError when it is not installed."""
    parts = type_name.split("/")
    if len(parts) != 3:
        raise ValueError(f"{type_name!r} is not a type name like pkg/msg/Type")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError) as error:
        raise ValueError(f"type {type_name} is not installed here ({error})") from error


def offered_qos(infos) -> list[dict]:
    """rosbag2's offered_qos_profiles entries of the publishers in ``infos`` (TopicEndpointInfo list)."""
    entries = []
    for info in infos:
        q = info.qos_profile
        entries.append(
            qos_entry(
                history=_name(q.history),
                depth=q.depth,
                reliability=_name(q.reliability),
                durability=_name(q.durability),
                deadline_ns=q.deadline.nanoseconds,
                lifespan_ns=q.lifespan.nanoseconds,
                liveliness=_name(q.liveliness),
                liveliness_lease_duration_ns=q.liveliness_lease_duration.nanoseconds,
                avoid_ros_namespace_conventions=q.avoid_ros_namespace_conventions,
            )
        )
    return entries


def _name(policy) -> str:
    return policy.name.lower()


def adapted_qos(offers: list[dict], depth: int) -> QoSProfile:
    """The subscription QoS for a topic's offers (rosbag2's adapt_request_to_offers), keep-last ``depth``."""
    reliable = bool(offers) and all(o["reliability"] == "reliable" for o in offers)
    latched = bool(offers) and all(o["durability"] == "transient_local" for o in offers)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


class TopicSelection:
    """Which topics to record: names, or a regex, or all; minus exclusions. Hidden topics need ``hidden``."""

    def __init__(self, topics=(), regex="", all_topics=False, exclude_regex="", exclude_topics=(), hidden=False):
        self.topics = set(topics)
        self.regex = re.compile(regex) if regex else None
        self.all = all_topics
        self.exclude = re.compile(exclude_regex) if exclude_regex else None
        self.exclude_topics = set(exclude_topics)
        self.hidden = hidden

    def __call__(self, name: str) -> bool:
        if name in self.exclude_topics or (self.exclude and self.exclude.search(name)):
            return False
        if name in self.topics:
            return True
        if not self.hidden and any(part.startswith("_") for part in name.split("/")):
            return False
        return self.all or bool(self.regex and self.regex.search(name))


class BagRecorder(Node):
    """Records the selected topics into ``writer`` (a :class:`lumina_nodes.bag.writer.BagWriter`)."""

    def __init__(self, writer, selection: TopicSelection, *, qos_depth=1000, node_name="lumina_bag_recorder"):
        super().__init__(node_name)
        self.writer = writer
        self.selection = selection
        self.qos_depth = qos_depth
        self.subscribed: dict[str, dict] = {}  # name -> {id, sub, seq}
        self.warned: set[str] = set()

    def discover(self) -> None:
        """Subscribe to every selected topic that has publishers and is not recorded yet."""
        for name, types in self.get_topic_names_and_types():
            if name in self.subscribed or not self.selection(name):
                continue
            if len(types) != 1:
                self._warn_once(name, f"topic {name} has several types ({', '.join(types)}): not recorded")
                continue
            infos = self.get_publishers_info_by_topic(name)
            if not infos:
                continue
            type_name = types[0]
            try:
                msg_type = message_class(type_name)
                offers = offered_qos(infos)
                topic_id = self.writer.add_topic(name, type_name, offers, str(infos[0].topic_type_hash))
            except (ValueError, BagError) as error:  # an unknown type must not stop the others' recording
                self._warn_once(name, f"topic {name} ({type_name}) not recorded: {error}")
                continue
            schema_text = self.writer.definition(type_name)[1]
            read = seq_reader(schema_text)
            entry = {
                "id": topic_id,
                "seq": SeqGapCounter(read) if read else None,
            }
            entry["sub"] = self._subscribe(name, msg_type, offers, entry)
            self.subscribed[name] = entry
            self.get_logger().info(f"recording {name} ({type_name})")

    def _subscribe(self, name, msg_type, offers, entry):
        writer, topic_id, counter = self.writer, entry["id"], entry["seq"]
        if counter is None:

            def on_message(data):
                now = time.time_ns()
                writer.write(topic_id, now, now, data)

        else:
            add = counter.add

            def on_message(data):
                now = time.time_ns()
                writer.write(topic_id, now, now, data)
                add(data)

        # No message-lost event callback: with rmw_fastrtps_cpp 9.3.3 it deadlocked the recorder under heavy
        # loss (gdb: the executor thread inside the event, holding its lock, waiting for the reader's lock, which
        # a shared-memory receive thread held while waiting for the event's lock).
        return self.create_subscription(msg_type, name, on_message, adapted_qos(offers, self.qos_depth), raw=True)

    def _warn_once(self, key, text):
        if key not in self.warned:
            self.warned.add(key)
            self.get_logger().warning(text)

    def drops(self) -> dict[str, int]:
        """Per topic with a ``seq`` counter: the messages missed (seq gaps)."""
        return {name: entry["seq"].missed for name, entry in self.subscribed.items() if entry["seq"]}

    def drop_custom_data(self) -> dict[str, str]:
        drops = self.drops()
        data = {"lumina.dropped_total": str(sum(drops.values()))}
        data.update({f"lumina.dropped.{name}": str(missed) for name, missed in drops.items() if missed})
        data["lumina.drop_counting"] = (
            "seq gaps of the topics whose messages carry a seq counter: "
            + (", ".join(sorted(drops)) or "none")
            + "; losses on other topics are not counted"
        )
        return data
