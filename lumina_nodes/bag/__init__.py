"""rosbag2 bags, MCAP storage (no rclpy): the file side of ``lumina bag``.

A bag is a directory as rosbag2 (Jazzy/Kilted) writes it: ``metadata.yaml`` (BagMetadata version 9) and
``<name>_<k>.mcap`` files with the ``ros2`` MCAP profile (schemas ``ros2msg``, message encoding ``cdr``,
channel metadata ``offered_qos_profiles`` and ``topic_type_hash``, and a ``rosbag2`` metadata record), so
``ros2 bag info|play`` and Foxglove open it. The container is written and read with the ``mcap`` library.

Modules: ``metadata`` (metadata.yaml and the QoS entries), ``definitions`` (the ``ros2msg`` schema text of a
type, from the installed ``.msg`` files), ``writer`` (:class:`BagWriter`: splitting, chunk flushing, metadata),
``reader`` (:class:`BagReader`: info from the summaries, messages in receive-time order over every file),
``reindex`` (recovery of a bag whose recorder was killed), ``drops`` (the sequence counters that find missed
messages).
"""

from __future__ import annotations


class BagError(Exception):
    """A bag that cannot be read or written as asked; the message names the file (and offset) at fault."""
