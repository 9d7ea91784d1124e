"""Parameter checks shared by every Bio-Dream backend (no rclpy).

Each raises ValueError with a message that starts with the parameter's name, so the node can show it as it is.
Ranges are :class:`lumina_nodes.settings.Setting` objects, written once per backend in its ``SETTINGS`` table
(which the node may also use for its parameter descriptors).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence

from ...settings import Setting

#: Channels per participant a Bio-Dream Interface headband has.
MAX_CHANNELS = 4

#: The rule every backend shares for clock jumps (see :mod:`.clock`).
MAX_CHUNK = Setting(
    "Most seconds of samples one read returns; when more is due at once (a clock jump), the older samples are "
    "skipped and counted.",
    "s",
    0.0,
    86400.0,
    low_open=True,
)


def checked(settings: dict[str, Setting], **values) -> dict:
    """``values`` checked against ``settings`` (each by its name): ints for integer settings, floats for the
    rest. ValueError naming the first bad one."""
    out = {}
    for name, value in values.items():
        problem = settings[name].problem(name, value)
        if problem is not None:
            raise ValueError(problem)
        out[name] = int(value) if settings[name].integer else float(value)
    return out


def channel_groups(name: str, value, item: Callable[[str], object], unique: bool = True) -> list[list]:
    """Per participant, the channels they wear: a list with one entry per participant, each a list of channels,
    a comma-separated string of them (``"EEG Fpz-Cz,EEG Pz-Oz"``, ``"0,1"``: what a ROS string-array parameter
    holds), or one channel. ``item`` turns one channel into its value (ValueError when it is not one).

    Every participant has the same number of channels, 1..MAX_CHANNELS, and (``unique``) no channel is worn
    twice.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ValueError(
            f"{name} must be a non-empty list with one entry (channel list) per participant, got {value!r}"
        )
    groups = []
    for k, entry in enumerate(value):
        if isinstance(entry, str):
            raw = [part.strip() for part in entry.split(",")]
        elif isinstance(entry, Sequence):
            raw = list(entry)
        else:
            raw = [entry]
        try:
            groups.append([item(x) for x in raw])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}[{k}]: {exc}") from None
    sizes = {len(g) for g in groups}
    if len(sizes) != 1 or not 1 <= sizes.pop() <= MAX_CHANNELS:
        raise ValueError(
            f"{name}: every participant needs the same number of channels, 1..{MAX_CHANNELS}; "
            f"got {[len(g) for g in groups]}"
        )
    if unique:
        no_channel_twice(name, [x for g in groups for x in g])
    return groups


def no_channel_twice(name: str, channels: list) -> None:
    """ValueError naming ``name`` when a channel appears more than once in ``channels``."""
    twice = sorted(repr(x) for x, c in Counter(channels).items() if c > 1)
    if twice:
        raise ValueError(f"{name}: channels worn by more than one participant or twice: {', '.join(twice)}")


def existing_file(name: str, value) -> str:
    """``value`` as an absolute path of a readable regular file; ValueError naming ``name`` otherwise."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{name} must be a file path, got {value!r}")
    path = os.path.abspath(os.fspath(value))
    if not os.path.exists(path):
        raise ValueError(f"{name}: no such file {path!r}")
    if not os.path.isfile(path):
        raise ValueError(f"{name}: {path!r} is not a regular file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{name}: {path!r} is not readable")
    return path
