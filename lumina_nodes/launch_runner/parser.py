"""Launch XML -> resolved process specifications, with ROS 2 launch semantics.

The parser reads a launch XML file (with line numbers), validates every element and attribute
up front (like the launch frontend, which builds all actions before running any), then
*executes* the description in document order against a launch context (launch configurations,
environment, pushed namespace, global params/remaps), exactly as `ros2 launch` would, and
produces a list of :class:`ProcessSpec` - plain data that the supervisor in ``runner.py`` runs.

Nothing here imports rclpy or the launch packages.
"""

from __future__ import annotations

import importlib
import math
import os
import pathlib
import random
import shlex
import shutil
import socket
import tempfile
import xml.parsers.expat
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

__all__ = [
    "LaunchError",
    "ProcessSpec",
    "ParamFile",
    "LaunchArgument",
    "LaunchResult",
    "parse_launch_file",
    "describe_launch_arguments",
    "format_show_args",
    "parse_substitution",
    "get_package_prefix",
    "get_package_share_directory",
    "find_launch_file_in_package",
]


class LaunchError(Exception):
    """Any error in a launch description; the message names file, line and element."""


# --------------------------------------------------------------------------------------------
# Data produced by the parser
# --------------------------------------------------------------------------------------------


@dataclass
class ParamFile:
    """A --params-file passed to a node: generated (content set) or user file (content None)."""

    path: str
    content: str | None = None

    @property
    def generated(self) -> bool:
        return self.content is not None


@dataclass
class ProcessSpec:
    """One fully resolved process, as ros2 launch would start it."""

    name: str  # process label, e.g. 'talker-1' (used in the output prefix)
    cmd: list[str]  # exact argv
    env: dict[str, str]  # full child environment
    cwd: str | None = None
    output: str = "log"  # log | screen | both | own_log | full
    respawn: bool = False
    respawn_delay: float = 0.0
    respawn_max_retries: int = -1  # <0: infinite
    required: bool = False  # on_exit="shutdown"
    sigterm_timeout: float = 5.0
    sigkill_timeout: float = 5.0
    shell: bool = False
    emulate_tty: bool = False  # stdout/stderr are ptys (isatty() true), like upstream
    param_files: list[ParamFile] = field(default_factory=list)
    node_name: str | None = None  # full node name if name and namespace known
    is_node: bool = False
    source: str = ""  # 'file:line' of the <node>/<executable> element

    @property
    def generated_param_files(self) -> list[ParamFile]:
        return [p for p in self.param_files if p.generated]


@dataclass
class LaunchArgument:
    name: str
    default: str | None  # description of the default, like ros2 launch -s (or None)
    description: str
    choices: list[str] | None
    conditional: bool


@dataclass
class LaunchResult:
    processes: list[ProcessSpec]
    warnings: list[str]
    configurations: dict[str, object]


# --------------------------------------------------------------------------------------------
# XML loading with line numbers
# --------------------------------------------------------------------------------------------


class XElement:
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


def _load_xml(path: str) -> XElement:
    parser = xml.parsers.expat.ParserCreate()
    stack: list[XElement] = []
    root: list[XElement] = []

    def start(tag, attrs):
        el = XElement(tag, dict(attrs), parser.CurrentLineNumber, path)
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
    return root[0]


# --------------------------------------------------------------------------------------------
# Substitution grammar (launch/share/launch/frontend/grammar.lark)
# --------------------------------------------------------------------------------------------


class Subst:
    __slots__ = ("name", "args")

    def __init__(self, name, args):
        self.name = name
        self.args = args

    def __repr__(self):
        return f"Subst({self.name!r}, {self.args!r})"


Template = list[str | Subst]

# name -> (min args, max args); None = unbounded
SUBSTITUTIONS = {
    "var": (1, 2),
    "env": (1, 2),
    "find-pkg-share": (1, 1),
    "find-pkg-prefix": (1, 1),
    "exec-in-pkg": (2, 2),
    "find-exec": (1, 1),
    "eval": (1, 2),
    "not": (1, 1),
    "and": (2, 2),
    "or": (2, 2),
    "any": (0, None),
    "all": (0, None),
    "equals": (2, 2),
    "not-equals": (2, 2),
    "dirname": (0, 0),
    "filename": (0, 0),
    "anon": (1, 1),
    "if": (3, 3),
}

_ID_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ID_CHARS = _ID_START | set("0123456789_-")


class _SubstParser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.n = len(text)

    def fail(self, msg):
        raise ValueError(f"{msg} at column {self.i + 1} of {self.s!r}")

    def at_subst(self):
        return self.s.startswith("$(", self.i)

    def template(self) -> Template:
        return self._scan("", None)

    def _scan(self, stops, mode, closing=None) -> Template:
        """Text and substitutions up to a character of ``stops`` (left unread), the ``closing`` quote (read), or
        the end of the input (an error while a ``closing`` quote is awaited). ``mode`` is passed on to nested
        substitutions. A backslash escapes the next character; a '$' not starting '$(' is text."""
        start = self.i
        parts: Template = []
        buf: list[str] = []
        while True:
            if self.i >= self.n:
                if closing is None:
                    break
                self.i = start - 1
                self.fail("unterminated quoted string")
            c = self.s[self.i]
            if c == closing:
                self.i += 1
                break
            if c == "\\" and self.i + 1 < self.n:
                buf.append(self.s[self.i + 1])
                self.i += 2
            elif self.at_subst():
                if buf:
                    parts.append("".join(buf))
                    buf = []
                parts.append(self.substitution(mode))
            elif c in stops:
                break
            else:
                buf.append(c)
                self.i += 1
        if buf:
            parts.append("".join(buf))
        return parts

    def substitution(self, mode) -> Subst:
        start = self.i
        self.i += 2  # '$('
        j = self.i
        if j >= self.n or self.s[j] not in _ID_START:
            self.fail('expected a substitution name after "$("')
        while j < self.n and self.s[j] in _ID_CHARS:
            j += 1
        name = self.s[self.i : j]
        self.i = j
        args: list[Template] = []
        if self.i < self.n and self.s[self.i] == " ":
            while True:
                self.i += 1  # the single separating space
                args.append(self.value(mode))
                if self.i < self.n and self.s[self.i] == " ":
                    continue
                break
        if self.i >= self.n or self.s[self.i] != ")":
            self.fail(f"unterminated substitution starting at column {start + 1}")
        self.i += 1
        if name not in SUBSTITUTIONS:
            raise ValueError(f"unknown substitution '$({name} ...)' in {self.s!r}")
        lo, hi = SUBSTITUTIONS[name]
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = str(lo) if lo == hi else f"{lo}..{hi if hi is not None else 'n'}"
            raise ValueError(f"substitution '{name}' expects {want} argument(s), got {len(args)} in {self.s!r}")
        return Subst(name, args)

    def value(self, mode) -> Template:
        if self.i < self.n and mode is None and self.s[self.i] in "'\"":
            return self.quoted(self.s[self.i])
        parts = self._scan(" ()" + ("'\"" if mode is None else mode), mode)
        if not parts:
            self.fail("empty substitution argument")
        return parts

    def quoted(self, q) -> Template:
        self.i += 1  # the opening quote
        return self._scan("", q, closing=q) or [""]


def parse_substitution(text: str) -> Template:
    """Parse a launch frontend string into text and substitutions (raises ValueError)."""
    if not text:
        return [""]
    return _SubstParser(text).template()


def _describe(t: Template) -> str:
    """Like Substitution.describe() joined with ' + ' (used by --show-args)."""
    out = []
    for p in t:
        if isinstance(p, str):
            out.append(f"'{p}'")
        elif p.name == "var":
            out.append("LaunchConfig(" + " + ".join(_describe(a) for a in p.args[:1]) + ")")
        elif p.name == "env":
            out.append("EnvVar(" + " + ".join(_describe(a) for a in p.args[:1]) + ")")
        else:
            out.append(f"{p.name}(" + " ".join(_describe(a) for a in p.args) + ")")
    return " + ".join(out)


# --------------------------------------------------------------------------------------------
# ament index
# --------------------------------------------------------------------------------------------


def _ament_prefixes(environ=None) -> list[str]:
    environ = os.environ if environ is None else environ
    value = environ.get("AMENT_PREFIX_PATH", "")
    if not value:
        raise LookupError("Environment variable 'AMENT_PREFIX_PATH' is not set or empty")
    return [p for p in value.split(os.pathsep) if p]


def get_package_prefix(pkg: str, environ=None) -> str:
    prefixes = _ament_prefixes(environ)
    for prefix in prefixes:
        marker = os.path.join(prefix, "share", "ament_index", "resource_index", "packages", pkg)
        if os.path.isfile(marker):
            return prefix
    raise LookupError(f"package '{pkg}' not found, searching: {prefixes}")


def get_package_share_directory(pkg: str, environ=None) -> str:
    return os.path.join(get_package_prefix(pkg, environ), "share", pkg)


def find_launch_file_in_package(pkg: str, file_name: str, environ=None) -> str:
    """Like ros2launch get_share_file_path_from_package (recursive, error on duplicates)."""
    share = get_package_share_directory(pkg, environ)
    matches = []
    for root, dirs, files in os.walk(share):
        dirs.sort()
        if file_name in files:
            matches.append(os.path.join(root, file_name))
    if not matches:
        raise LookupError(
            f"file '{file_name}' was not found in the share directory of package '{pkg}' which is at '{share}'"
        )
    if len(matches) > 1:
        raise LookupError(
            f"file '{file_name}' was found more than once in the share directory of package '{pkg}': {matches}"
        )
    return matches[0]


# --------------------------------------------------------------------------------------------
# Type coercion (launch/utilities/type_utils.py)
# --------------------------------------------------------------------------------------------

_TYPE_IDS = {
    "str": (str, False),
    "int": (int, False),
    "float": (float, False),
    "bool": (bool, False),
    "list_of_str": (str, True),
    "list_of_int": (int, True),
    "list_of_float": (float, True),
    "list_of_bool": (bool, True),
}
_SCALARS = (int, float, bool, str)


def _valid_value(v, can_be_str=False) -> bool:
    if isinstance(v, list):
        if not v:
            return True
        t = type(v[0])
        if not isinstance(v[0], _SCALARS):
            return False
        return all(type(x) is t or (can_be_str and isinstance(x, str)) for x in v)
    return isinstance(v, _SCALARS)


def _coerce(value: str, dtype, can_be_str=False):
    """coerce_to_type(value, data_type) with dtype = None | (scalar_type, is_list)."""

    def as_yaml(v, err):
        if not v:
            return v
        try:
            out = yaml.safe_load(v)
        except Exception as e:
            if can_be_str:
                return v
            raise ValueError(f"{err}: yaml.safe_load() failed: {e}") from e
        if not _valid_value(out, can_be_str):
            raise ValueError(f"{err}: output type is not allowed, got {type(out).__name__}")
        return out

    if dtype is None:
        return as_yaml(value, f"Failed to convert '{value}' using yaml rules")
    t, is_list = dtype
    valid = (str, t) if can_be_str else t
    if is_list:
        out = as_yaml(value, f"Cannot convert value '{value}' to a list of '{t.__name__}'")
        if not isinstance(out, list) or not all(isinstance(x, valid) for x in out):
            raise ValueError(f"Cannot convert value '{value}' to a list of '{t.__name__}'")
        return out
    if t is str:
        return value
    if t in (int, float):
        try:
            return t(value)
        except ValueError:
            if can_be_str:
                return value
            raise ValueError(f"Cannot convert value '{value}' to '{t.__name__}'") from None
    out = as_yaml(value, f"Failed to convert '{value}' to 'bool'")
    if isinstance(out, valid):
        return out
    raise ValueError(f"Cannot convert value '{value}' to 'bool'")


def _typed_bool(value: str) -> bool:
    return _coerce(value, (bool, False))


def evaluate_condition_expression(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise ValueError(
        f"invalid condition expression '{value}': expected one of ['true', '1', 'false', '0'] (case-insensitive)"
    )


def _str_is_bool(s: str) -> bool:
    return s.lower() in ("true", "false", "1", "0")


def _str_is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------
# Namespaces (launch_ros/utilities/namespace_utils.py)
# --------------------------------------------------------------------------------------------


def make_namespace_absolute(ns: str | None) -> str | None:
    if ns is None:
        return None
    return ns if ns.startswith("/") else "/" + ns


def prefix_namespace(base_ns: str | None, ns: str | None) -> str | None:
    if base_ns is None and ns is None:
        return None
    if ns is None:
        combined = base_ns
    elif not base_ns or ns.startswith("/"):
        combined = ns
    else:
        combined = ("" if base_ns == "/" else base_ns) + "/" + ns
    if combined != "/":
        combined = combined.rstrip("/")
    return make_namespace_absolute(combined)


# --------------------------------------------------------------------------------------------
# Element schema: tag -> (is_action, allowed attrs, required attrs, allowed children)
# --------------------------------------------------------------------------------------------

ACTIONS = "ACTIONS"
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
SCHEMA = {
    "launch": (False, {"deprecated"}, set(), ACTIONS),
    "arg": (True, {"name", "default", "description"}, {"name"}, {"choice"}),
    "choice": (False, {"value"}, {"value"}, set()),
    "let": (True, {"name", "value"}, {"name", "value"}, set()),
    "include": (True, {"file"}, {"file"}, {"arg", "let"}),
    "include/arg": (False, {"name", "value"}, {"name", "value"}, set()),
    "include/let": (False, {"name", "value"}, {"name", "value"}, set()),
    "group": (True, {"scoped", "forwarding"}, set(), ACTIONS),
    "keep": (False, {"name", "value"}, {"name", "value"}, set()),
    "set_env": (True, {"name", "value"}, {"name", "value"}, set()),
    "unset_env": (True, {"name"}, {"name"}, set()),
    "append_env": (True, {"name", "value", "prepend", "separator"}, {"name", "value"}, set()),
    "push_ros_namespace": (True, {"namespace"}, {"namespace"}, set()),
    "push-ros-namespace": (True, {"namespace"}, {"namespace"}, set()),
    "set_parameter": (True, {"name", "value"}, {"name", "value"}, set()),
    "set_remap": (True, {"from", "to"}, {"from", "to"}, set()),
    "node": (
        True,
        _PROC_ATTRS | {"pkg", "exec", "name", "namespace", "exec_name", "args", "ros_args"},
        {"exec"},
        {"param", "remap", "env"},
    ),
    "executable": (True, _PROC_ATTRS | {"cmd", "name"}, {"cmd"}, {"env"}),
    "param": (False, {"name", "value", "type", "value-sep", "from", "allow_substs"}, set(), {"param"}),
    "remap": (False, {"from", "to"}, {"from", "to"}, set()),
    "env": (False, {"name", "value"}, {"name", "value"}, set()),
}
ACTION_TAGS = {t for t, s in SCHEMA.items() if s[0]}
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
    allowed_children = SCHEMA[parent.key][3] if parent is not None else None
    if parent is not None:
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
        if el.attrib["type"] not in _TYPE_IDS:
            raise el.error(f"unknown param type '{el.attrib['type']}', expected one of {sorted(_TYPE_IDS)}")
        dtype = _TYPE_IDS[el.attrib["type"]]
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
                typed = [_coerce(x, item_t, can_be_str=True) for x in raw]
                if not _valid_value(typed, can_be_str=True):
                    raise ValueError(f"cannot convert value to {item_t}. Got value={raw}")
            else:
                typed = _coerce(raw, dtype, can_be_str=True)
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


# --------------------------------------------------------------------------------------------
# Launch context
# --------------------------------------------------------------------------------------------


class _Context:
    def __init__(self, environ: dict[str, str], params_dir: str | None):
        self.base_env = dict(environ)
        self.env = dict(environ)
        self.configs: dict[str, object] = {}
        self.file_stack: list[str] = []
        self.counter = 0
        self.processes: list[ProcessSpec] = []
        self.warnings: list[str] = []
        self.params_dir = params_dir
        self.node_names: dict[str, int] = {}
        self.files_cache: dict[str, XElement] = {}

    # -- substitutions ---------------------------------------------------------------------
    def resolve(self, t: Template) -> str:
        return "".join(p if isinstance(p, str) else self.perform(p) for p in t)

    def perform(self, s: Subst) -> str:
        a = s.args
        n = s.name
        if n == "var":
            name = self.resolve(a[0])
            if name in self.configs:
                return str(self.configs[name])
            if len(a) > 1:
                return self.resolve(a[1])
            raise ValueError(f"launch configuration '{name}' does not exist")
        if n == "env":
            name = self.resolve(a[0])
            if name in self.env:
                return self.env[name]
            if len(a) > 1:
                return self.resolve(a[1])
            raise ValueError(f"environment variable '{name}' does not exist")
        if n in ("find-pkg-share", "find-pkg-prefix"):
            pkg = self.resolve(a[0])
            try:
                prefix = get_package_prefix(pkg, self.base_env)
            except LookupError as e:
                raise ValueError(str(e)) from None
            return prefix if n == "find-pkg-prefix" else os.path.join(prefix, "share", pkg)
        if n == "exec-in-pkg":
            return self.exec_in_pkg(self.resolve(a[0]), self.resolve(a[1]))
        if n == "find-exec":
            name = self.resolve(a[0])
            found = shutil.which(name, path=self.env.get("PATH", os.defpath))
            if found is None:
                raise ValueError(f"executable '{name}' not found on the PATH")
            return found
        if n == "eval":
            expr = self.resolve(a[0])
            modules = ["math"]
            if len(a) > 1:
                modules = [m.strip() for m in self.resolve(a[1]).split(",") if m.strip()]
            local = {}
            for mname in modules:
                mod = importlib.import_module(mname)
                if mname == "math":
                    local.update(vars(mod))
                local[mname] = mod
            try:
                return str(eval(expr, {}, local))
            except Exception as e:
                raise ValueError(f"$(eval) of {expr!r} failed: {type(e).__name__}: {e}") from e
        if n in ("not", "and", "or", "any", "all"):
            vals = []
            for arg in a:
                v = self.resolve(arg)
                try:
                    vals.append(_typed_bool(v))
                except (TypeError, ValueError) as e:
                    raise ValueError(f"$({n}): {e}") from e
            if n == "not":
                r = not vals[0]
            elif n == "and":
                r = vals[0] and vals[1]
            elif n == "or":
                r = vals[0] or vals[1]
            elif n == "any":
                r = any(vals)
            else:
                r = all(vals)
            return str(r).lower()
        if n in ("equals", "not-equals"):
            left, right = self.resolve(a[0]), self.resolve(a[1])
            if _str_is_bool(left) and _str_is_bool(right):
                eq = (left.lower() in ("true", "1")) == (right.lower() in ("true", "1"))
            elif _str_is_float(left) and _str_is_float(right):
                eq = math.isclose(float(left), float(right))
            else:
                eq = left == right
            return str(eq if n == "equals" else not eq).lower()
        if n == "if":
            cond = evaluate_condition_expression(self.resolve(a[0]))
            return self.resolve(a[1] if cond else a[2])
        if n == "dirname":
            return os.path.dirname(self.file_stack[-1])
        if n == "filename":
            return self.file_stack[-1]
        if n == "anon":
            name = self.resolve(a[0])
            anon = dict(self.configs.get("anon", {}))
            if name not in anon:
                raw = f"{name}_{socket.gethostname()}_{os.getpid()}_{random.randint(0, 2**63)}"
                anon[name] = raw.replace(".", "_").replace("-", "_").replace(":", "_")
                self.configs["anon"] = anon
            return anon[name]
        raise ValueError(f"unknown substitution {n}")  # pragma: no cover (checked at parse)

    def exec_in_pkg(self, exe: str, pkg: str) -> str:
        try:
            prefix = get_package_prefix(pkg, self.base_env)
        except LookupError as e:
            raise ValueError(str(e)) from None
        libexec = os.path.join(prefix, "lib", pkg)
        if not os.path.isdir(libexec):
            raise ValueError(f"package '{pkg}' found at '{prefix}', but libexec directory '{libexec}' does not exist")
        found = shutil.which(exe, path=libexec)
        if found is None:
            raise ValueError(f"executable '{exe}' not found on the libexec directory '{libexec}'")
        return found


# --------------------------------------------------------------------------------------------
# Executing the description
# --------------------------------------------------------------------------------------------


def _r(ctx: _Context, el: XElement, attr: str, default=None) -> str | None:
    if attr not in el.attrib:
        return default
    try:
        return ctx.resolve(el.parsed[attr])
    except ValueError as e:
        raise el.error(f"attribute '{attr}': {e}") from e


def _condition_ok(ctx: _Context, el: XElement) -> bool:
    for attr, want in (("if", True), ("unless", False)):
        if attr in el.attrib:
            try:
                return evaluate_condition_expression(_r(ctx, el, attr)) is want
            except ValueError as e:
                raise el.error(f"attribute '{attr}': {e}") from e
    return True


def _typed_attr(ctx, el, attr, kind, default):
    v = _r(ctx, el, attr)
    if v is None:
        return default
    try:
        if kind is bool:
            return _typed_bool(v)
        out = kind(v)
    except ValueError:
        raise el.error(f"attribute '{attr}' expected to be of type '{kind.__name__}', got {v!r}") from None
    if out < 0 and kind is float:
        raise el.error(f"attribute '{attr}' expected to be a non-negative value but got `{v}`")
    return out


def _load(ctx: _Context, path: str, where: XElement | None = None) -> XElement:
    path = os.path.abspath(path)
    if path in ctx.files_cache:
        return ctx.files_cache[path]
    if not (path.endswith((".xml", ".launch"))):
        msg = (
            f"launch file '{path}' is not a launch XML file (.xml / .launch.xml); "
            "Python and YAML launch files are not supported by lumina_launch"
        )
        raise where.error(msg) if where is not None else LaunchError(msg)
    if not os.path.isfile(path):
        msg = f"launch file '{path}' does not exist"
        raise where.error(msg) if where is not None else LaunchError(msg)
    root = _load_xml(path)
    if root.tag != "launch":
        raise root.error(f"Expected 'launch' as root tag, got '{root.tag}'")
    _validate(root, None)
    ctx.files_cache[path] = root
    return root


def _run_entities(ctx: _Context, elements: Sequence[XElement]):
    for el in elements:
        if not _condition_ok(ctx, el):
            continue
        HANDLERS[el.tag](ctx, el)


def _do_arg(ctx, el):
    name = el.attrib["name"]
    choices = [c.attrib["value"] for c in el.children if c.tag == "choice"] or None
    desc = el.attrib.get("description")
    if name not in ctx.configs:
        if "default" not in el.attrib:
            raise el.error(
                f'Required launch argument "{name}" (description: "{_arg_description(desc, choices)}") was not provided'
            )
        ctx.configs[name] = _r(ctx, el, "default")
    if choices is not None and ctx.configs[name] not in choices:
        raise el.error(
            f'Argument "{name}" provided value "{ctx.configs[name]}" is not valid. Valid options are: {choices}'
        )


def _do_let(ctx, el):
    ctx.configs[_r(ctx, el, "name")] = _r(ctx, el, "value")


def _do_set_env(ctx, el):
    ctx.env[_r(ctx, el, "name")] = _r(ctx, el, "value")


def _do_unset_env(ctx, el):
    ctx.env.pop(_r(ctx, el, "name"), None)


def _do_append_env(ctx, el):
    name = _r(ctx, el, "name")
    value = _r(ctx, el, "value")
    prepend = _typed_attr(ctx, el, "prepend", bool, False)
    sep = _r(ctx, el, "separator", os.pathsep)
    if name in ctx.env and ctx.env[name]:
        value = value + sep + ctx.env[name] if prepend else ctx.env[name] + sep + value
    ctx.env[name] = value


def _do_push_ns(ctx, el):
    ns = _r(ctx, el, "namespace")
    ctx.configs["ros_namespace"] = make_namespace_absolute(prefix_namespace(ctx.configs.get("ros_namespace"), ns))


def _do_set_parameter(ctx, el):
    name = _r(ctx, el, "name")
    value = _coerce(_r(ctx, el, "value"), None)
    ctx.configs["global_params"] = list(ctx.configs.get("global_params", [])) + [(name, value)]


def _do_set_remap(ctx, el):
    pair = (_r(ctx, el, "from"), _r(ctx, el, "to"))
    ctx.configs["ros_remaps"] = list(ctx.configs.get("ros_remaps", [])) + [pair]


def _do_group(ctx, el):
    scoped = _typed_attr(ctx, el, "scoped", bool, True)
    forwarding = _typed_attr(ctx, el, "forwarding", bool, True)
    keeps = [c for c in el.children if c.tag == "keep"]
    actions = [c for c in el.children if c.tag != "keep"]
    if not scoped:
        for k in keeps:
            ctx.configs[_r(ctx, k, "name")] = _r(ctx, k, "value")
        _run_entities(ctx, actions)
        return
    saved_configs, saved_env = ctx.configs, ctx.env
    ctx.configs, ctx.env = dict(saved_configs), dict(saved_env)
    try:
        if forwarding:
            for k in keeps:
                ctx.configs[_r(ctx, k, "name")] = _r(ctx, k, "value")
        else:
            kept = {_r(ctx, k, "name"): _r(ctx, k, "value") for k in keeps}
            ctx.env = dict(ctx.base_env)
            ctx.configs = kept
        _run_entities(ctx, actions)
    finally:
        ctx.configs, ctx.env = saved_configs, saved_env


def _declared_args(ctx: _Context, root: XElement, *, conditional=False, ild=None, out=None, seen_files=None):
    """get_launch_arguments_with_include_launch_description_actions (static walk)."""
    if out is None:
        out = []
    if seen_files is None:
        seen_files = set()
    for el in root.children:
        cond = conditional or "if" in el.attrib or "unless" in el.attrib
        if el.tag == "arg":
            if el.attrib["name"] not in (e.attrib["name"] for e, _, _ in out):
                out.append((el, cond, ild))
        elif el.tag == "group":
            _declared_args(ctx, el, conditional=cond, ild=ild, out=out, seen_files=seen_files)
        elif el.tag == "include":
            # try_get_launch_description_without_context: only if the path resolves statically
            tmp = _Context(ctx.base_env, None)
            tmp.file_stack = []  # $(dirname) is not available without context
            try:
                path = os.path.abspath(tmp.resolve(el.parsed["file"]))
                sub = _load(ctx, path)
            except (ValueError, LaunchError, IndexError):
                continue
            if path in seen_files:
                continue
            names = [(a.attrib["name"]) for a in el.children]
            _declared_args(
                ctx,
                sub,
                conditional=cond,
                ild=(ild or []) + names,
                out=out,
                seen_files=seen_files | {path},
            )
    return out


def _arg_description(desc, choices):
    if choices is not None:
        if desc is None:
            return "One of: " + str(choices)
        return desc + ("" if desc.endswith(".") else ".") + " Valid choices are: " + str(choices)
    return desc if desc is not None else "no description given"


def _include_file(ctx: _Context, path: str, given: list[tuple[str, Template, XElement]], where: XElement | None):
    root = _load(ctx, path, where)
    given_names = []
    for name_t, _, gel in given:
        try:
            given_names.append(ctx.resolve(name_t) if not isinstance(name_t, str) else name_t)
        except ValueError as e:
            raise gel.error(str(e)) from e
    for argel, cond, ild in _declared_args(ctx, root):
        if cond or "default" in argel.attrib:
            continue
        names = given_names + (ild or [])
        if argel.attrib["name"] not in names:
            desc = _arg_description(
                argel.attrib.get("description"), [c.attrib["value"] for c in argel.children] or None
            )
            msg = (
                f"Included launch description missing required argument "
                f"'{argel.attrib['name']}' (description: '{desc}'), given: "
                f"[{', '.join(given_names)}]"
            )
            raise argel.error(msg) if where is None else where.error(msg + f" (declared at {argel.where()})")
    # SetLaunchConfiguration for every argument, in order, in the *current* scope (no push/pop)
    for (_, value_t, gel), name in zip(given, given_names, strict=False):
        try:
            ctx.configs[name] = ctx.resolve(value_t) if not isinstance(value_t, str) else value_t
        except ValueError as e:
            raise gel.error(f"attribute 'value': {e}") from e
    if len(ctx.file_stack) >= 40:
        msg = f"launch files include each other too deeply (more than 40 nested includes, last: '{path}')"
        raise where.error(msg) if where is not None else LaunchError(msg)
    if "deprecated" in root.attrib:
        ctx.warnings.append(f"launch file '{path}' is deprecated: {root.attrib['deprecated']}")
    ctx.file_stack.append(os.path.abspath(path))
    try:
        _run_entities(ctx, root.children)
    finally:
        ctx.file_stack.pop()


def _do_include(ctx, el):
    path = _r(ctx, el, "file")
    given = [(c.parsed["name"], c.parsed["value"], c) for c in el.children]
    _include_file(ctx, path, given, el)


def _param_value(ctx, el: XElement):
    value, dtype = el.parsed["value"]
    item_t = None if dtype is None else (dtype[0], False)

    def perform(t, typ):
        try:
            return _coerce(ctx.resolve(t), typ)
        except ValueError as e:
            raise el.error(f"param '{el.attrib.get('name')}': {e}") from e

    if (
        isinstance(value, list)
        and value
        and isinstance(value[0], (str, Subst))
        and any(isinstance(p, Subst) for p in value)
    ):
        # a single template (list of parts)
        return perform(value, dtype)
    if isinstance(value, list):
        out = [perform(x, item_t) if isinstance(x, list) else x for x in value]
        if not _valid_value(out):
            raise el.error(f"param '{el.attrib.get('name')}': the output list is not uniform")
        return out
    return value


def _param_dict(ctx, el: XElement, prefix: str, out: dict[str, object]):
    name = _r(ctx, el, "name")
    full = prefix + name
    if el.children:
        for child in el.children:
            _param_dict(ctx, child, full + ".", out)
    else:
        out[full] = _param_value(ctx, el)


def _write_params(ctx, content: str) -> str:
    with tempfile.NamedTemporaryFile(mode="w", prefix="launch_params_", delete=False, dir=ctx.params_dir) as h:
        h.write(content)
        return h.name


def _do_process(ctx: _Context, el: XElement):
    is_node = el.tag == "node"
    env = dict(ctx.env)
    for c in el.children:
        if c.tag == "env":
            env[_r(ctx, c, "name")] = _r(ctx, c, "value")
    env.setdefault("PYTHONUNBUFFERED", "1")
    cmd: list[str] = []
    node_full_name = None
    param_files: list[ParamFile] = []
    if is_node:
        exe = _r(ctx, el, "exec")
        pkg = _r(ctx, el, "pkg")
        if pkg is not None:
            try:
                exe_path = ctx.exec_in_pkg(exe, pkg)
            except ValueError as e:
                raise el.error(str(e)) from e
        else:
            exe_path = exe
        cmd.append(exe_path)
        if "args" in el.attrib:
            cmd += _cmdline(ctx, el, "args")
        if "ros_args" in el.attrib:
            cmd += ["--ros-args"] + _cmdline(ctx, el, "ros_args")
        cmd.append("--ros-args")
        name = _r(ctx, el, "name")
        if name is not None:
            if not name or "/" in name or name[0].isdigit() or not all(ch.isalnum() or ch == "_" for ch in name):
                raise el.error(f"invalid node name '{name}'")
            cmd += ["-r", f"__node:={name}"]
        ns = _r(ctx, el, "namespace")
        ns = make_namespace_absolute(prefix_namespace(ctx.configs.get("ros_namespace"), ns))
        if ns is not None:
            bad = [
                tok
                for tok in ns.split("/")[1:]
                if tok and not ((tok[0].isalpha() or tok[0] == "_") and all(ch.isalnum() or ch == "_" for ch in tok))
            ]
            if bad or "//" in ns:
                raise el.error(f"invalid namespace '{ns}'")
            cmd += ["-r", f"__ns:={ns}"]
        if name is not None and ns is not None:
            node_full_name = prefix_namespace(ns, name)
        for gname, gvalue in ctx.configs.get("global_params", []):
            cmd += ["-p", f"{gname}:={gvalue}"]
        for p in (c for c in el.children if c.tag == "param"):
            if "from" in p.attrib:
                path = _r(ctx, p, "from")
                allow = _typed_attr(ctx, p, "allow_substs", bool, False)
                if allow:
                    try:
                        with open(path) as f:
                            text = yaml.safe_dump(yaml.safe_load(f.read()))
                    except Exception as e:
                        raise p.error(
                            f"The parameter file '{path}' is not a valid yaml file, before applying substitutions ({e})"
                        ) from e
                    try:
                        parsed = ctx.resolve(parse_substitution(text))
                        yaml.safe_load(parsed)
                    except Exception as e:
                        raise p.error(f"substitutions in parameter file '{path}' failed: {e}") from e
                    param_files.append(ParamFile(_write_params(ctx, parsed), parsed))
                else:
                    if not os.path.isfile(path):
                        ctx.warnings.append(f"{p.where()}: Parameter file path is not a file: {path}")
                        continue
                    param_files.append(ParamFile(str(pathlib.Path(path)), None))
            else:
                params: dict[str, object] = {}
                _param_dict(ctx, p, "", params)
                key = node_full_name if node_full_name is not None else "/**"
                content = yaml.dump({key: {"ros__parameters": params}}, default_flow_style=False)
                param_files.append(ParamFile(_write_params(ctx, content), content))
        for pf in param_files:
            cmd += ["--params-file", pf.path]
        remaps = list(ctx.configs.get("ros_remaps", []))
        remaps += [(_r(ctx, c, "from"), _r(ctx, c, "to")) for c in el.children if c.tag == "remap"]
        for src, dst in remaps:
            cmd += ["-r", f"{src}:={dst}"]
        label = _r(ctx, el, "exec_name")
        if node_full_name is not None:
            count = ctx.node_names.get(node_full_name, 0) + 1
            ctx.node_names[node_full_name] = count
            if count > 1:
                ctx.warnings.append(
                    f"{el.where()}: there are now at least {count} nodes with "
                    f"the name {node_full_name} created within this launch "
                    "context"
                )
    else:
        cmd = _cmdline(ctx, el, "cmd")
        if not cmd:
            raise el.error("attribute 'cmd' is empty")
        label = _r(ctx, el, "name")
    # launch-prefix (attribute, else the 'launch-prefix' launch configuration, like ExecuteLocal)
    prefix = _r(ctx, el, "launch-prefix")
    if prefix is None:
        prefix = str(ctx.configs.get("launch-prefix", ""))
    try:
        cmd = shlex.split(prefix) + cmd
    except ValueError as e:
        raise el.error(f"launch-prefix {prefix!r}: {e}") from e
    if label is None:
        label = os.path.basename(cmd[0])  # after the prefix, as in Executable.prepare()
    sigterm = _typed_attr(ctx, el, "sigterm_timeout", float, None)
    if sigterm is None:
        sigterm = _config_float(ctx, el, "sigterm_timeout")
    sigkill = _typed_attr(ctx, el, "sigkill_timeout", float, None)
    if sigkill is None:
        sigkill = _config_float(ctx, el, "sigkill_timeout")
    ctx.counter += 1
    spec = ProcessSpec(
        name=f"{label}-{ctx.counter}",
        cmd=cmd,
        env=env,
        cwd=_r(ctx, el, "cwd"),
        output=el.attrib.get("output", "log"),
        respawn=_typed_attr(ctx, el, "respawn", bool, False),
        respawn_delay=_typed_attr(ctx, el, "respawn_delay", float, 0.0),
        respawn_max_retries=_typed_attr(ctx, el, "respawn_max_retries", int, -1),
        required=el.attrib.get("on_exit") == "shutdown",
        sigterm_timeout=sigterm,
        sigkill_timeout=sigkill,
        shell=_typed_attr(ctx, el, "shell", bool, False),
        emulate_tty=_typed_attr(ctx, el, "emulate_tty", bool, False),
        param_files=param_files,
        node_name=node_full_name,
        is_node=is_node,
        source=f"{el.file}:{el.line}",
    )
    ctx.processes.append(spec)


def _config_float(ctx, el, name) -> float:
    v = ctx.configs.get(name, "5")
    try:
        out = float(v)
    except (TypeError, ValueError):
        raise el.error(f"launch configuration '{name}' must be a number, got {v!r}") from None
    if out < 0:
        raise el.error(f"launch configuration '{name}' must be non-negative, got {v!r}")
    return out


def _cmdline(ctx: _Context, el: XElement, attr: str) -> list[str]:
    """ExecuteProcess._parse_cmdline + substitution: split text with shlex, keep subs whole."""
    result: list[list[str | Subst]] = []
    arg: list[str | Subst] = []
    try:
        for part in el.parsed[attr]:
            if isinstance(part, str):
                tokens = shlex.split(part)
                if not tokens:
                    result.append(arg)
                    arg = []
                    continue
                if part[0].isspace() and arg:
                    result.append(arg)
                    arg = []
                arg.append(tokens[0])
                if len(tokens) > 1:
                    result.append(arg)
                    arg = [tokens[-1]]
                if len(tokens) > 2:
                    result.extend([x] for x in tokens[1:-1])
                if part[-1].isspace():
                    result.append(arg)
                    arg = []
            else:
                arg.append(part)
        if arg:
            result.append(arg)
        return [ctx.resolve(a) for a in result]
    except ValueError as e:
        raise el.error(f"attribute '{attr}': {e}") from e


HANDLERS = {
    "arg": _do_arg,
    "let": _do_let,
    "include": _do_include,
    "group": _do_group,
    "set_env": _do_set_env,
    "unset_env": _do_unset_env,
    "append_env": _do_append_env,
    "push_ros_namespace": _do_push_ns,
    "push-ros-namespace": _do_push_ns,
    "set_parameter": _do_set_parameter,
    "set_remap": _do_set_remap,
    "node": _do_process,
    "executable": _do_process,
}


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def parse_launch_file(
    path: str,
    launch_arguments: dict[str, str] | Sequence[tuple[str, str]] | None = None,
    *,
    environ: dict[str, str] | None = None,
    params_dir: str | None = None,
) -> LaunchResult:
    """Resolve a launch XML file like `ros2 launch <path> k:=v ...` and return its processes.

    ``launch_arguments`` are set as launch configurations before the file runs (the root file
    is included with them, as ros2 launch does).  Generated parameter files are written to
    ``params_dir`` (default: the system temp dir, like upstream's /tmp/launch_params_*).
    """
    if launch_arguments is None:
        launch_arguments = []
    if isinstance(launch_arguments, dict):
        launch_arguments = list(launch_arguments.items())
    ctx = _Context(os.environ if environ is None else environ, params_dir)
    given = [(k, v, None) for k, v in launch_arguments]
    try:
        _include_file(ctx, path, given, None)
    except LaunchError:
        remove_generated_param_files(ctx.processes)
        raise
    return LaunchResult(ctx.processes, ctx.warnings, ctx.configs)


def remove_generated_param_files(processes):
    """Delete the parameter files generated for ``processes`` (ProcessSpecs); missing ones are fine."""
    for p in processes:
        for pf in p.generated_param_files:
            try:
                os.unlink(pf.path)
            except OSError:
                pass


def describe_launch_arguments(path: str, *, environ=None) -> list[LaunchArgument]:
    ctx = _Context(os.environ if environ is None else environ, None)
    root = _load(ctx, path)
    out = []
    for el, cond, _ in _declared_args(ctx, root):
        choices = [c.attrib["value"] for c in el.children] or None
        default = _describe(el.parsed["default"]) if "default" in el.attrib else None
        out.append(
            LaunchArgument(
                el.attrib["name"], default, _arg_description(el.attrib.get("description"), choices), choices, cond
            )
        )
    return out


def format_show_args(args: list[LaunchArgument]) -> str:
    """Same text as `ros2 launch -s` (print_arguments_of_launch_description)."""
    lines = ["Arguments (pass arguments as '<name>:=<value>'):"]
    any_cond = False
    for a in args:
        msg = "\n    '" + a.name + "':"
        if a.conditional:
            any_cond = True
            msg += "*"
        msg += "\n        " + "\n        ".join(a.description.splitlines())
        if a.default is not None:
            msg += f"\n        (default: {a.default})"
        lines.append(msg)
    if args:
        if any_cond:
            lines.append("* argument(s) which are only used if specific conditions occur")
    else:
        lines.append("No arguments.")
    return "\n".join(lines) + "\n"
