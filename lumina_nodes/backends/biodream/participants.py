"""Who a Bio-Dream sensor serves: participant ids, the jewel each wears, where their EEG comes from (no rclpy).

A participant map is YAML (``config/biodream_participants.yaml`` is the example)::

    participants:
      - id: p0001          # unique, 1..64 characters
        jewel: 1           # optional: the jewel this participant wears (absent: none)
        channels: [0, 1]   # brainflow: indices into the board's EEG channels
        labels: [EEG Fpz-Cz, EEG Pz-Oz]   # edf: signal labels in the recording
        file: night1.edf   # edf, optional: this participant's own recording (relative to the map's folder)

Every participant has the same number of channels (1..4). Errors name the key, e.g.
``participants[2].jewel: must be a whole number in [0, 4294967294], got 'x'``.
"""

from __future__ import annotations

import dataclasses
import os

import yaml

from ...constants import JEWEL_NONE
from .params import MAX_CHANNELS

MAX_PARTICIPANTS = 1024
KEYS = ("id", "jewel", "channels", "labels", "file")


@dataclasses.dataclass(frozen=True)
class Participant:
    """One participant: ``jewel`` is JEWEL_NONE when they wear none; ``channels``/``labels``/``file`` are what
    the brainflow and edf backends need (empty when not given)."""

    id: str
    jewel: int = JEWEL_NONE
    channels: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    file: str = ""


def load_participants(path: str) -> list[Participant]:
    """The participants of the YAML map at ``path``; ValueError naming the file and key of the first problem."""
    try:
        with open(path, encoding="utf-8") as stream:
            document = yaml.safe_load(stream)
    except OSError as error:
        raise ValueError(f"participants_file {path!r}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"participants_file {path!r}: not valid YAML: {error}".replace("\n", " ")) from None
    try:
        return parse_participants(document, os.path.dirname(os.path.abspath(path)))
    except ValueError as error:
        raise ValueError(f"participants_file {path!r}: {error}") from None


def parse_participants(document, base_dir: str = ".") -> list[Participant]:
    """The participants of a parsed map (see the module docstring); ValueError naming the key."""
    if not isinstance(document, dict) or set(document) != {"participants"}:
        raise ValueError("expected one key, 'participants', holding a list")
    entries = document["participants"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_PARTICIPANTS:
        raise ValueError(f"participants: must be a list of 1..{MAX_PARTICIPANTS} entries")
    participants = [_participant(entry, f"participants[{k}]", base_dir) for k, entry in enumerate(entries)]
    seen = {}
    for k, p in enumerate(participants):
        if p.id in seen:
            raise ValueError(f"participants[{k}].id: {p.id!r} is also participants[{seen[p.id]}].id")
        seen[p.id] = k
    jewels = {}
    for k, p in enumerate(participants):
        if p.jewel != JEWEL_NONE and p.jewel in jewels:
            raise ValueError(
                f"participants[{k}].jewel: jewel {p.jewel} is also worn by participants[{jewels[p.jewel]}]"
            )
        jewels[p.jewel] = k
    for key in ("channels", "labels"):
        counts = {len(getattr(p, key)) for p in participants}
        if len(counts) > 1:
            raise ValueError(f"participants[*].{key}: every participant needs the same number, got {sorted(counts)}")
    return participants


def generated_participants(count: int, first_jewel: int, jewel_stride: int, prefix: str = "p") -> list[Participant]:
    """``count`` participants ``<prefix><jewel>`` wearing jewels first_jewel, first_jewel + stride, ...
    (first_jewel < 0: no jewels, ids ``<prefix>1``...)."""
    if first_jewel < 0:
        return [Participant(f"{prefix}{k + 1}") for k in range(count)]
    last = first_jewel + (count - 1) * jewel_stride
    if last >= JEWEL_NONE:
        raise ValueError(f"first_jewel_id {first_jewel} + {count - 1} x {jewel_stride} passes the largest jewel id")
    return [
        Participant(f"{prefix}{first_jewel + k * jewel_stride}", first_jewel + k * jewel_stride) for k in range(count)
    ]


def _participant(entry, where: str, base_dir: str) -> Participant:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: must be a mapping with keys {', '.join(KEYS)}")
    unknown = sorted(set(map(str, entry)) - set(KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} (known: {', '.join(KEYS)})")
    pid = entry.get("id")
    if not isinstance(pid, str) or not 1 <= len(pid) <= 64 or not pid.isprintable():
        raise ValueError(f"{where}.id: must be a text of 1..64 printable characters, got {pid!r}")
    jewel = entry.get("jewel")
    if jewel is None:
        jewel = JEWEL_NONE
    elif isinstance(jewel, bool) or not isinstance(jewel, int) or not 0 <= jewel < JEWEL_NONE:
        raise ValueError(f"{where}.jewel: must be a whole number in [0, {JEWEL_NONE - 1}], got {jewel!r}")
    channels = entry.get("channels", [])
    if (
        not isinstance(channels, list)
        or len(channels) > MAX_CHANNELS
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in channels)
    ):
        raise ValueError(
            f"{where}.channels: must be a list of 1..{MAX_CHANNELS} channel indices >= 0, got {channels!r}"
        )
    labels = entry.get("labels", [])
    if not isinstance(labels, list) or len(labels) > MAX_CHANNELS or not all(isinstance(x, str) and x for x in labels):
        raise ValueError(f"{where}.labels: must be a list of 1..{MAX_CHANNELS} signal labels, got {labels!r}")
    file = entry.get("file", "")
    if not isinstance(file, str):
        raise ValueError(f"{where}.file: must be a path, got {file!r}")
    if file and not os.path.isabs(file):
        file = os.path.join(base_dir, file)
    return Participant(pid, jewel, tuple(channels), tuple(labels), file)
