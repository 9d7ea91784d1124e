"""The ``ros2msg`` schema text of a message type, built from the installed ``.msg`` files as rosbag2 builds it.

The root type's ``.msg`` text comes first; each dependency not seen yet follows once, after a line of 80 ``=`` and
``MSG: pkg/Type`` (rosbag2_cpp ``local_message_definition_source.cpp``). A type with only an ``.idl`` file gets
the ``ros2idl`` encoding with ``IDL: pkg/msg/Type`` sections.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from . import BagError

PRIMITIVES = frozenset(
    "bool byte char float32 float64 int8 uint8 int16 uint16 int32 uint32 int64 uint64 string wstring".split()
)
SEPARATOR = "=" * 80


def split_type(type_name: str) -> tuple[str, str, str]:
    """'pkg/msg/Type' or 'pkg/Type' -> (pkg, 'msg', Type); ValueError for anything else."""
    parts = type_name.strip().split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{type_name!r} is not a ROS type name like pkg/msg/Type")
    return parts[0], parts[1], parts[2]


@functools.cache
def share_directory(package: str) -> Path:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        return Path(get_package_share_directory(package))
    except (PackageNotFoundError, OSError) as error:  # EnvironmentError: no AMENT_PREFIX_PATH
        raise BagError(f"type package '{package}' not found in the ament index: {error}") from error


def field_types(msg_text: str, package: str) -> list[str]:
    """The non-primitive field types of a ``.msg`` text, as 'pkg/Type' (constants and comments skipped)."""
    found = []
    for line in msg_text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if len(tokens) < 2 or "=" in tokens[1] or (len(tokens) > 2 and tokens[2].startswith("=")):
            continue  # a constant: TYPE NAME=VALUE
        base = re.sub(r"(\[.*\]|<=\d+)$", "", tokens[0])
        base = re.sub(r"<=\d+$", "", base)
        if base in PRIMITIVES:
            continue
        if base == "Header":  # ROS 1 shorthand some .msg files still use
            base = "std_msgs/Header"
        found.append(base if "/" in base else f"{package}/{base}")
    return found


@functools.cache
def message_definition(type_name: str) -> tuple[str, str]:
    """(encoding, text) of the MCAP schema of ``type_name``: ('ros2msg', ...) or ('ros2idl', ...).

    BagError when the type's package or file is not installed.
    """
    package, kind, name = split_type(type_name)
    root = share_directory(package) / kind / f"{name}.msg"
    if not root.is_file():
        idl = share_directory(package) / kind / f"{name}.idl"
        if not idl.is_file():
            raise BagError(f"no definition of {type_name}: neither {root} nor {idl} exists")
        return "ros2idl", f"{SEPARATOR}\nIDL: {package}/{kind}/{name}\n{idl.read_text()}"
    text = root.read_text()
    seen = {f"{package}/{name}"}
    sections = [text]
    pending = field_types(text, package)
    while pending:
        dependency = pending.pop(0)
        if dependency in seen:
            continue
        seen.add(dependency)
        dep_package, _, dep_name = split_type(dependency)
        dep_path = share_directory(dep_package) / "msg" / f"{dep_name}.msg"
        if not dep_path.is_file():
            raise BagError(f"no definition of {dependency} (a field type of {type_name}): {dep_path} missing")
        dep_text = dep_path.read_text()
        sections.append(f"{SEPARATOR}\nMSG: {dep_package}/{dep_name}\n{dep_text}")
        pending.extend(field_types(dep_text, dep_package))
    return "ros2msg", "\n".join(sections)
