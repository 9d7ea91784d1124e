"""Launch XML -> resolved process specifications, with ROS 2 launch semantics.

The parser reads and validates a launch file (``schema.py``), then *executes* the description in
document order against a launch context (launch configurations, environment, pushed namespace,
global params/remaps), exactly as `ros2 launch` would, and produces a list of :class:`ProcessSpec` -
plain data that the supervisor in ``runner.py`` runs.

Nothing here imports rclpy or the launch packages.
"""

from __future__ import annotations

import os
import pathlib
import shlex
import sys
import tempfile
from collections.abc import Sequence

import yaml

from .ament_index import find_executable_in_package
from .description import (
    LaunchArgument,
    LaunchError,
    LaunchResult,
    ParamFile,
    ProcessSpec,
    remove_generated_param_files,
)
from .schema import XElement, read_launch_file
from .substitutions import Subst, SubstitutionContext, Template, describe, parse_substitution
from .values import coerce_to_type, evaluate_condition_expression, is_valid_value, to_bool

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
# Launch context
# --------------------------------------------------------------------------------------------


class _Context(SubstitutionContext):
    """The launch context of one parse: what substitutions see, plus what the walk produces."""

    def __init__(self, environ: dict[str, str], params_dir: str | None):
        super().__init__(environ)
        self.counter = 0
        self.processes: list[ProcessSpec] = []
        self.warnings: list[str] = []
        self.params_dir = params_dir
        self.node_names: dict[str, int] = {}
        self.files_cache: dict[str, XElement] = {}


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
            return to_bool(v)
        out = kind(v)
    except ValueError:
        raise el.error(f"attribute '{attr}' expected to be of type '{kind.__name__}', got {v!r}") from None
    if kind is float and not out >= 0:  # nan too: no elapsed time is ever >= nan
        raise el.error(f"attribute '{attr}' expected to be a non-negative value but got `{v}`")
    return out


def _internal(ctx: _Context, el: XElement, name: str, kind: type, keeper: str):
    """SubstitutionContext.internal with the element's place in the error."""
    try:
        return ctx.internal(name, kind, keeper)
    except ValueError as e:
        raise el.error(str(e)) from e


def _env_name(ctx: _Context, el: XElement) -> str:
    name = _r(ctx, el, "name")
    if "=" in name:  # the child's environment could not be built: Popen fails
        raise el.error(f"invalid environment variable name {name!r}: a name cannot contain '='")
    return name


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
    root = read_launch_file(path)
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
    ctx.env[_env_name(ctx, el)] = _r(ctx, el, "value")


def _do_unset_env(ctx, el):
    ctx.env.pop(_r(ctx, el, "name"), None)


def _do_append_env(ctx, el):
    name = _env_name(ctx, el)
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
    try:
        value = coerce_to_type(_r(ctx, el, "value"), None)
    except ValueError as e:
        raise el.error(f"parameter '{name}': {e}") from e
    ctx.configs["global_params"] = _internal(ctx, el, "global_params", list, "<set_parameter>") + [(name, value)]


def _do_set_remap(ctx, el):
    pair = (_r(ctx, el, "from"), _r(ctx, el, "to"))
    ctx.configs["ros_remaps"] = _internal(ctx, el, "ros_remaps", list, "<set_remap>") + [pair]


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
            tmp = SubstitutionContext(ctx.base_env)  # no file: $(dirname) is not available without context
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
            return coerce_to_type(ctx.resolve(t), typ)
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
        if not is_valid_value(out):
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


class _QuotedStr(str):
    """A string parameter value: written double-quoted, as Kilted's launch_ros (0.28.1+, ros2/launch_ros#436)
    writes every string, so '1e3' or 'true' given as a string stays a string for the node's YAML parser."""


class _ParamDumper(yaml.SafeDumper):
    pass


_ParamDumper.add_representer(
    _QuotedStr, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style='"')
)


def _params_yaml(key: str, params: dict) -> str:
    def quoted(value):
        if isinstance(value, str):
            return _QuotedStr(value)
        if isinstance(value, list):
            return [quoted(v) for v in value]
        return value

    values = {name: quoted(value) for name, value in params.items()}
    return yaml.dump({key: {"ros__parameters": values}}, Dumper=_ParamDumper, default_flow_style=False)


def _write_params(ctx, content: str) -> str:
    with tempfile.NamedTemporaryFile(mode="w", prefix="launch_params_", delete=False, dir=ctx.params_dir) as h:
        h.write(content)
        return h.name


def _do_process(ctx: _Context, el: XElement):
    is_node = el.tag == "node"
    env = dict(ctx.env)
    for c in el.children:
        if c.tag == "env":
            env[_env_name(ctx, c)] = _r(ctx, c, "value")
    env.setdefault("PYTHONUNBUFFERED", "1")
    cmd: list[str] = []
    node_full_name = None
    param_files: list[ParamFile] = []
    if is_node:
        exe = _r(ctx, el, "exec")
        if not exe.strip():
            raise el.error("attribute 'exec' is empty")
        pkg = _r(ctx, el, "pkg")
        if pkg is not None:
            try:
                exe_path = find_executable_in_package(exe, pkg, ctx.base_env)
            except LookupError as e:
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
        for gname, gvalue in _internal(ctx, el, "global_params", list, "<set_parameter>"):
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
                content = _params_yaml(key, params)
                param_files.append(ParamFile(_write_params(ctx, content), content))
        for pf in param_files:
            cmd += ["--params-file", pf.path]
        remaps = list(_internal(ctx, el, "ros_remaps", list, "<set_remap>"))
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
        # cmd="" still gives one (empty) argument, like upstream's _parse_cmdline
        if not any(arg.strip() for arg in cmd):
            raw = el.attrib["cmd"]
            raise el.error("attribute 'cmd' is empty" + (f": {raw!r} resolved to {cmd!r}" if raw.strip() else ""))
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
    if not out >= 0:  # nan too
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
        try:
            _include_file(ctx, path, given, None)
        except RecursionError:
            raise _nested_too_deeply(path) from None
    except LaunchError:
        remove_generated_param_files(ctx.processes)
        raise
    return LaunchResult(ctx.processes, ctx.warnings, ctx.configs)


def _nested_too_deeply(path: str) -> LaunchError:
    """Each file's elements and substitutions have a nesting limit; includes nest those again."""
    return LaunchError(
        f"{path}: elements and includes nested too deeply (beyond Python's recursion limit, {sys.getrecursionlimit()})"
    )


def describe_launch_arguments(path: str, *, environ=None) -> list[LaunchArgument]:
    """The arguments a user can pass (``ros2 launch -s``), defaults evaluated.

    Unlike ros2 launch, an argument of an included file that the include sets itself is left out (the user
    cannot set it), and a default that is a substitution shows its value from the defaults before it, then the
    substitution: ``'250', from eval(...)``."""
    ctx = _Context(os.environ if environ is None else environ, None)
    root = _load(ctx, path)
    try:
        declared = _declared_args(ctx, root)
    except RecursionError:
        raise _nested_too_deeply(path) from None
    out = []
    for el, cond, passed_by_include in declared:
        name = el.attrib["name"]
        if passed_by_include and name in passed_by_include:
            continue
        choices = [c.attrib["value"] for c in el.children] or None
        default = None
        if "default" in el.attrib:
            default = described = describe(el.parsed["default"])
            try:
                value = ctx.resolve(el.parsed["default"])
            except (ValueError, LaunchError, KeyError, IndexError):
                value = None  # needs what only a launch has (a file's directory, a running context)
            if value is not None:
                ctx.configs.setdefault(name, value)
                if described != repr(value):
                    default = f"{value!r}, from {described}"
        out.append(
            LaunchArgument(name, default, _arg_description(el.attrib.get("description"), choices), choices, cond)
        )
    return out
