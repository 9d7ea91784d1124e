"""Generated ROS messages to plain data and YAML, and back (what rosidl_runtime_py does for ros2cli; it is not on
PyPI). One conversion for every verb: topic echo, pub, service call, param dump.

Messages are walked through ``get_fields_and_field_types()``; sequences (lists, ``array.array``, numpy arrays)
become lists, nested messages become dicts in field order.
"""

from __future__ import annotations

import array
import re
import sys

import numpy as np
import yaml

from .graph import CommandError, normalize_type

_SEQUENCE = re.compile(r"^sequence<(?P<item>[^,>]+)(,\s*\d+)?>$")
_ARRAY = re.compile(r"^(?P<item>.+)\[\d+\]$")
_FLOATS = ("float", "double")


def interface_class(type_name: str):
    """The generated class of 'pkg/msg/Type', 'pkg/srv/Type' or 'pkg/Type'; CommandError when it is not installed."""
    from lumina_nodes.nodes.bag_recorder import message_class

    try:
        return message_class(normalize_type(type_name))
    except ValueError as error:
        raise CommandError(str(error)) from None


def _item_type(field_type: str) -> str:
    """The element type of a field type: 'sequence<pkg/Type>', 'pkg/Type[3]', 'double' -> 'pkg/Type', 'double'."""
    match = _SEQUENCE.match(field_type) or _ARRAY.match(field_type)
    return match.group("item") if match else field_type


def is_message(value) -> bool:
    return hasattr(value, "get_fields_and_field_types")


def to_plain(msg, truncate_length: int | None = None, no_arr: bool = False, no_str: bool = False):
    """A message as nested dicts, lists and scalars (ros2 topic echo's --truncate-length/--no-arr/--no-str)."""
    out = {}
    for field, field_type in msg.get_fields_and_field_types().items():
        out[field] = _plain_value(getattr(msg, field), field_type, truncate_length, no_arr, no_str)
    return out


def _plain_value(value, field_type, truncate_length, no_arr, no_str):
    if is_message(value):
        return to_plain(value, truncate_length, no_arr, no_str)
    if isinstance(value, (list, tuple, array.array, np.ndarray)):
        if no_arr:
            return f"<{field_type}, length: {len(value)}>"
        items = value.tolist() if isinstance(value, (array.array, np.ndarray)) else list(value)
        shown = items if truncate_length is None else items[:truncate_length]
        plain = [_plain_value(v, field_type, truncate_length, no_arr, no_str) for v in shown]
        return plain + ["..."] if len(shown) < len(items) else plain
    if isinstance(value, str):
        if no_str:
            return f"<string length: {len(value)}>"
        if truncate_length is not None and len(value) > truncate_length:
            return value[:truncate_length] + "..."
        return value
    if isinstance(value, bytes):  # byte[] and a single byte
        return list(value) if len(value) != 1 else value[0]
    if isinstance(value, np.generic):
        return value.item()
    return value


def to_yaml(data) -> str:
    """Block-style YAML in the data's own key order, one document (no trailing separator)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=sys.maxsize)


def message_field(msg, path: str):
    """The value at a dotted field path ('header.stamp.sec'); CommandError naming the part that is missing."""
    value = msg
    for part in path.split("."):
        if not is_message(value) or part not in value.get_fields_and_field_types():
            fields = ", ".join(value.get_fields_and_field_types()) if is_message(value) else "none"
            raise CommandError(f"field '{part}' of --field {path!r} does not exist (fields here: {fields})")
        value = getattr(value, part)
    return value


def parse_values(text: str | None) -> dict:
    """The YAML mapping of a pub/call argument ('{a: 1, b: {c: 2}}'); CommandError when it is not one."""
    if text is None or not text.strip():
        return {}
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CommandError(f"the values are not YAML: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise CommandError(f"the values must be a YAML mapping like '{{field: value}}', not {text!r}")
    return values


def checked(message_class):
    """A new message whose setters check types and ranges (the generated checks are off by default in Kilted)."""
    return message_class(check_fields=True)


def fill(msg, values: dict, path: str = ""):
    """Set ``msg``'s fields from a mapping, nested messages from nested mappings; CommandError naming the field.

    ``msg`` should come from ``checked()``, so a value of the wrong type or out of range is refused."""
    fields = msg.get_fields_and_field_types()
    for name, value in values.items():
        where = f"{path}{name}"
        if name not in fields:
            raise CommandError(f"{type(msg).__name__} has no field '{where}' (fields: {', '.join(fields)})")
        item = _item_type(fields[name])
        item_class = interface_class(item) if "/" in item else None
        try:
            if item_class is not None and isinstance(value, list):
                value = [
                    fill(checked(item_class), v, f"{where}[{k}].") if isinstance(v, dict) else v
                    for k, v in enumerate(value)
                ]
            elif item_class is not None and isinstance(value, dict):
                value = fill(checked(item_class), value, f"{where}.")
            elif item in _FLOATS:  # YAML '5' for a float field is what a user means
                value = [_as_float(v) for v in value] if isinstance(value, list) else _as_float(value)
            setattr(msg, name, value)
        except (AssertionError, TypeError, ValueError, OverflowError) as error:
            detail = str(error).strip() or "the value does not fit the field"
            raise CommandError(f"field '{where}' ({fields[name]}) cannot take {value!r}: {detail}") from None
    return msg


def _as_float(value):
    """Whole numbers, and YAML 1.1's strings like '1e300' (no dot, so not a float to it), as floats."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value  # the field's own check refuses it, naming the field
    return value
