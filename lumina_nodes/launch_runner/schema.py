"""Launch XML elements: reading a file with line numbers, and the schema every element must follow.

The schema (elements, attributes, children) is the one launch_xml, launch and launch_ros define through
their parse methods; upstream rejects unknown elements and attributes, and so does this module, with
the file and line of the offending element. The whole file is validated and its substitutions parsed
before anything runs, like the launch frontend, which builds every action before executing any.
"""

from __future__ import annotations

import xml.parsers.expat
from typing import NamedTuple

from .description import LaunchError
from .substitutions import parse_substitution
from .values import PARAM_TYPES, coerce_to_type, is_valid_value


class XElement:
    """One element of a launch file, with its place in the file and its attributes' parsed templates."""

    __slots__ = ("tag", "attrib", "children", "line", "file", "text", "parsed", "key")

    def __init__(self, tag, attrib, line, file):
        self.tag = tag
        self.attrib = attrib
        self.children = []
        self.line = line
        self.file = file
        self.text = ""
        self.parsed = {}
        self.key = tag

    def where(self) -> str:
        return f"{self.file}:{self.line}: <{self.tag}>"

    def error(self, msg) -> LaunchError:
        return LaunchError(f"{self.where()}: {msg}")


# Validating and running recurse per level: far below Python's recursion limit, far above any real file.
MAX_DEPTH = 100


def _load_xml(path: str) -> XElement:
    parser = xml.parsers.expat.ParserCreate()
    stack: list[XElement] = []
    root: list[XElement] = []

    def start(tag, attrs):
        el = XElement(tag, dict(attrs), parser.CurrentLineNumber, path)
        if len(stack) >= MAX_DEPTH:
            raise el.error(f"elements nested more than {MAX_DEPTH} deep")
        if stack:
            stack[-1].children.append(el)
        else:
            root.append(el)
        stack.append(el)

    def end(tag):
        stack.pop()

    def chars(data):
        if stack:
            stack[-1].text += data

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        with open(path, "rb") as f:
            parser.ParseFile(f)
    except OSError as e:
        raise LaunchError(f"cannot read launch file '{path}': {e}") from e
    except xml.parsers.expat.ExpatError as e:
        raise LaunchError(
            f"{path}:{e.lineno}: invalid XML: {xml.parsers.expat.ErrorString(e.code)} (column {e.offset + 1})"
        ) from e
    except (LookupError, ValueError) as e:  # a declared encoding expat cannot use: unknown, multi-byte, not text
        raise LaunchError(f"{path}:{parser.CurrentLineNumber}: invalid XML: {e}") from e
    return root[0]


def read_launch_file(path: str) -> XElement:
    """The root <launch> element of ``path``, checked against the schema (LaunchError naming file:line)."""
    root = _load_xml(path)
    if root.tag != "launch":
        raise root.error(f"Expected 'launch' as root tag, got '{root.tag}'")
    _validate(root, None)
    return root


class ElementSchema(NamedTuple):
    is_action: bool  # an action takes if/unless and may stand wherever ACTIONS are allowed
    attributes: set[str]
    required: set[str]
    children: set[str] | str  # allowed child tags, or ACTIONS


ACTIONS = "ACTIONS"  # as children: any action
_PROC_ATTRS = {
    "cwd",
    "launch-prefix",
    "output",
    "respawn",
    "respawn_delay",
    "respawn_max_retries",
    "on_exit",
    "sigterm_timeout",
    "sigkill_timeout",
    "shell",
    "emulate_tty",
}
# keyed by tag, or by "parent/tag" where a tag means something else inside that parent
SCHEMA: dict[str, ElementSchema] = {
    "launch": ElementSchema(False, {"deprecated"}, set(), ACTIONS),
    "arg": ElementSchema(True, {"name", "default", "description"}, {"name"}, {"choice"}),
    "choice": ElementSchema(False, {"value"}, {"value"}, set()),
    "let": ElementSchema(True, {"name", "value"}, {"name", "value"}, set()),
    "include": ElementSchema(True, {"file"}, {"file"}, {"arg", "let"}),
    "include/arg": ElementSchema(False, {"name", "value"}, {"name", "value"}, set()),
    "include/let": ElementSchema(False, {"name", "value"}, {"name", "value"}, set()),
    "group": ElementSchema(True, {"scoped", "forwarding"}, set(), ACTIONS),
    "keep": ElementSchema(False, {"name", "value"}, {"name", "value"}, set()),
    "set_env": ElementSchema(True, {"name", "value"}, {"name", "value"}, set()),
    "unset_env": ElementSchema(True, {"name"}, {"name"}, set()),
    "append_env": ElementSchema(True, {"name", "value", "prepend", "separator"}, {"name", "value"}, set()),
    "push_ros_namespace": ElementSchema(True, {"namespace"}, {"namespace"}, set()),
    "push-ros-namespace": ElementSchema(True, {"namespace"}, {"namespace"}, set()),
    "set_parameter": ElementSchema(True, {"name", "value"}, {"name", "value"}, set()),
    "set_remap": ElementSchema(True, {"from", "to"}, {"from", "to"}, set()),
    "node": ElementSchema(
        True,
        _PROC_ATTRS | {"pkg", "exec", "name", "namespace", "exec_name", "args", "ros_args"},
        {"exec"},
        {"param", "remap", "env"},
    ),
    "executable": ElementSchema(True, _PROC_ATTRS | {"cmd", "name"}, {"cmd"}, {"env"}),
    "param": ElementSchema(False, {"name", "value", "type", "value-sep", "from", "allow_substs"}, set(), {"param"}),
    "remap": ElementSchema(False, {"from", "to"}, {"from", "to"}, set()),
    "env": ElementSchema(False, {"name", "value"}, {"name", "value"}, set()),
}
ACTION_TAGS = {tag for tag, schema in SCHEMA.items() if schema.is_action}
# attributes whose value is plain text (no substitution parsing), like upstream
_PLAIN_ATTRS = {
    ("arg", "name"),
    ("arg", "description"),
    ("choice", "value"),
    ("*", "output"),
    ("*", "on_exit"),
    ("param", "type"),
    ("param", "value-sep"),
    ("launch", "deprecated"),
}
_UPSTREAM_UNSUPPORTED = {
    "timer",
    "shutdown",
    "log",
    "reset",
    "reset_env",
    "for_each",
    "for",
    "set_parameters_from_file",
    "set_use_sim_time",
    "set_ros_log_dir",
    "ros_timer",
    "node_container",
    "load_composable_node",
    "composable_node",
    "scoped_include",
}


def _schema_key(el: XElement, parent: XElement | None) -> str:
    if parent is not None and parent.tag == "include" and el.tag in ("arg", "let"):
        return "include/" + el.tag
    return el.tag


def _validate(el: XElement, parent: XElement | None):
    """Check tags/attributes/children and pre-parse substitutions (whole file, like upstream)."""
    key = el.key = _schema_key(el, parent)
    if parent is not None:
        allowed_children = SCHEMA[parent.key].children
        if allowed_children == ACTIONS:
            ok = el.tag in ACTION_TAGS
        else:
            ok = el.tag in allowed_children
        if parent.tag == "group" and el.tag == "keep":
            ok = True
        if not ok:
            if el.tag in _UPSTREAM_UNSUPPORTED:
                raise el.error(
                    f"element <{el.tag}> (inside <{parent.tag}>) is a ROS 2 launch "
                    "element that lumina_launch does not support"
                )
            raise el.error(f"unknown or misplaced element <{el.tag}> inside <{parent.tag}>")
    is_action, allowed, required, _ = SCHEMA[key]
    if is_action:
        allowed = allowed | {"if", "unless"}
    unknown = [a for a in el.attrib if a not in allowed]
    if unknown:
        extra = ""
        if el.tag in ("node", "executable") and set(unknown) & {"node-name"}:
            extra = " (not supported by lumina_launch)"
        raise el.error(f"unexpected attribute(s) {sorted(unknown)}{extra}; allowed: {sorted(allowed)}")
    missing = [a for a in sorted(required) if a not in el.attrib]
    if missing:
        raise el.error(f"missing required attribute(s) {missing}")
    if "if" in el.attrib and "unless" in el.attrib:
        raise el.error("if and unless conditions can't be used simultaneously")
    if el.text.strip():
        raise el.error(f"unexpected text content {el.text.strip()!r}")
    for name, value in el.attrib.items():
        if (key, name) in _PLAIN_ATTRS or ("*", name) in _PLAIN_ATTRS:
            continue
        if el.tag == "param" and name == "value":
            continue  # typed parse below
        try:
            el.parsed[name] = parse_substitution(value)
        except ValueError as e:
            raise el.error(f"attribute '{name}': {e}") from e
    if el.tag == "param":
        _validate_param(el)
    if el.tag in ("node", "executable"):
        out = el.attrib.get("output")
        if out is not None and out not in ("log", "screen", "both", "own_log", "full"):
            raise el.error(f"invalid output '{out}': expected one of log, screen, both, own_log, full")
        if "on_exit" in el.attrib and el.attrib["on_exit"] != "shutdown":
            raise el.error(
                f"invalid on_exit '{el.attrib['on_exit']}': only 'shutdown' is supported (as in ROS 2 launch XML)"
            )
    for child in el.children:
        _validate(child, el)


def _validate_param(el: XElement):
    has_name = "name" in el.attrib
    has_from = "from" in el.attrib
    if has_name and has_from:
        raise el.error("name and from attributes are mutually exclusive")
    if not has_name and not has_from:
        raise el.error("param Entity should have name or from attribute")
    if has_from:
        extra = [a for a in el.attrib if a not in ("from", "allow_substs")]
        if extra or el.children:
            raise el.error(f"'from' param accepts only 'allow_substs', got {extra or 'children'}")
        return
    if "allow_substs" in el.attrib:
        raise el.error("'allow_substs' can only be used together with 'from' attribute")
    dtype = None
    if "type" in el.attrib:
        if el.attrib["type"] not in PARAM_TYPES:
            raise el.error(f"unknown param type '{el.attrib['type']}', expected one of {sorted(PARAM_TYPES)}")
        dtype = PARAM_TYPES[el.attrib["type"]]
    has_value = "value" in el.attrib
    if has_value and el.children:
        raise el.error("nested parameters and value attributes are mutually exclusive")
    if dtype is not None and el.children:
        raise el.error("nested parameters and type attributes are mutually exclusive")
    if not has_value and not el.children:
        raise el.error("either a value attribute or nested params are needed")
    if "value-sep" in el.attrib and not has_value:
        raise el.error("'value-sep' needs a 'value' attribute")
    for child in el.children:
        if "from" in child.attrib:
            raise el.error("nested <param> cannot use 'from'")
    if has_value:
        raw = el.attrib["value"]
        if "value-sep" in el.attrib:
            raw = raw.split(el.attrib["value-sep"])
        try:
            # entity.get_attr(..., data_type, can_be_str=True) then parse_if_substitutions
            if isinstance(raw, list):
                if dtype is not None and not dtype[1]:
                    raise ValueError(f"cannot convert a '-sep' list to '{el.attrib['type']}'")
                item_t = None if dtype is None else (dtype[0], False)
                typed = [coerce_to_type(x, item_t, can_be_str=True) for x in raw]
                if not is_valid_value(typed, can_be_str=True):
                    raise ValueError(f"cannot convert value to {item_t}. Got value={raw}")
            else:
                typed = coerce_to_type(raw, dtype, can_be_str=True)
            kinds = set()

            def parse_if(v):
                if isinstance(v, str):
                    t = parse_substitution(v)
                    if len(t) == 1 and isinstance(t[0], str):
                        kinds.add(str)
                        return t[0]
                    return t
                kinds.add(type(v))
                return v

            value = [parse_if(x) for x in typed] if isinstance(typed, list) else parse_if(typed)
            if len(kinds) > 1:
                raise ValueError("The result is a non-uniform list")
            if dtype is not None and not dtype[1] and not isinstance(value, list) and not isinstance(value, dtype[0]):
                raise ValueError(f"{raw!r} can not be converted to '{el.attrib['type']}'")
        except ValueError as e:
            raise el.error(f"attribute 'value': {e}") from e
        el.parsed["value"] = (value, dtype)
