"""Bad launch input is a LaunchError naming file:line and the element, never a Python traceback.

The last test fuzzes small launch files shaped like the schema (with hypothesis) and accepts nothing but a
result or a LaunchError.
"""

import io
import math
import textwrap
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumina_nodes.launch_runner import LaunchError, ProcessSpec, describe_launch_arguments, parse_launch_file, run
from lumina_nodes.launch_runner.schema import ACTION_TAGS, ACTIONS, SCHEMA


def write(tmp_path, text, name="test.launch.xml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).strip() + "\n")
    return str(path)


def launch_error(path, args=None):
    with pytest.raises(LaunchError) as info:
        parse_launch_file(path, args or {})
    return str(info.value)


# ------------------------------------------------------------------------------------------
# $(eval): the modules it imports and what the expression does
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "modules, module, error",
    [
        ("nosuchmodule", "nosuchmodule", "ModuleNotFoundError: No module named 'nosuchmodule'"),
        ("math, nosuchmodule", "nosuchmodule", "ModuleNotFoundError: No module named 'nosuchmodule'"),
        (".relative", ".relative", "TypeError"),
    ],
)
def test_eval_whose_module_cannot_be_imported(tmp_path, modules, module, error):
    path = write(
        tmp_path,
        f"""
        <launch>
          <let name="a" value="1"/>
          <executable cmd="x $(eval '1 + 1' '{modules}')"/>
        </launch>""",
    )
    msg = launch_error(path)
    assert msg.startswith(f"{path}:3: <executable>: attribute 'cmd': $(eval '1 + 1' '{modules}'): "), msg
    assert f"cannot import module '{module}'" in msg and error in msg, msg


def test_eval_that_exits_or_yields_a_nul_character(tmp_path):
    # exit() raises SystemExit, which is no Exception: it ended the runner without a word
    exits = write(tmp_path, '<launch>\n  <let name="a" value="$(eval \'exit(3)\')"/>\n</launch>', "exit.launch.xml")
    msg = launch_error(exits)
    assert msg.startswith(f"{exits}:2: <let>: attribute 'value': $(eval 'exit(3)')") and "SystemExit" in msg, msg
    # no argument, environment value or path can hold a NUL: Popen would fail with a traceback
    nul = write(tmp_path, "<launch>\n  <executable cmd=\"x $(eval 'chr(0)')\"/>\n</launch>", "nul.launch.xml")
    assert "the result contains a NUL character" in launch_error(nul)


# ------------------------------------------------------------------------------------------
# <set_parameter>: the value follows yaml rules
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("[1, 2", "yaml.safe_load() failed: expected ',' or ']', but got '<stream end>'"),
        ("$(var unclosed)", "yaml.safe_load() failed"),
        ("{a: 1}", "output type is not allowed, got dict"),
        ("null", "output type is not allowed, got NoneType"),
        ("[1, a]", "output type is not allowed, got list"),
    ],
)
def test_set_parameter_value_that_yaml_cannot_convert(tmp_path, value, fragment):
    path = write(
        tmp_path,
        f"""
        <launch>
          <let name="unclosed" value="[1, 2"/>
          <set_parameter name="x" value="{value}"/>
        </launch>""",
    )
    msg = launch_error(path)
    assert msg.startswith(f"{path}:3: <set_parameter>: parameter 'x': "), msg
    assert fragment in msg and "\n" not in msg, msg


# ------------------------------------------------------------------------------------------
# <executable cmd>, <node exec>: something to run
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["", "   ", "$(var blank)", "$(var blank) $(var empty)"])
def test_executable_with_an_empty_command(tmp_path, cmd):
    path = write(
        tmp_path,
        f"""
        <launch>
          <let name="blank" value="  "/>
          <let name="empty" value=""/>
          <executable cmd="{cmd}" launch-prefix="nice"/>
        </launch>""",
    )
    msg = launch_error(path)
    assert msg.startswith(f"{path}:4: <executable>: attribute 'cmd' is empty"), msg


def test_node_with_an_empty_executable(tmp_path):
    path = write(tmp_path, '<launch>\n  <let name="e" value=" "/>\n  <node exec="$(var e)"/>\n</launch>')
    assert launch_error(path).startswith(f"{path}:3: <node>: attribute 'exec' is empty")


# ------------------------------------------------------------------------------------------
# <arg> whose default is not one of its choices
# ------------------------------------------------------------------------------------------


def test_arg_default_outside_its_choices_fails_where_upstream_fails(tmp_path):
    # Upstream (launch 3.8.x, Kilted) checks a default against the choices in DeclareLaunchArgument's
    # constructor only for a plain str default: from XML the default is always a list of substitutions, so
    # the file parses and the value is checked when the <arg> runs, with execute()'s message.
    path = write(
        tmp_path,
        """
        <launch>
          <arg name="mode" default="c">
            <choice value="a"/>
            <choice value="b"/>
          </arg>
          <group if="false">
            <arg name="unused" default="z"><choice value="y"/></arg>
          </group>
          <executable cmd="x $(var mode)"/>
        </launch>""",
    )
    (mode, unused) = describe_launch_arguments(path)
    assert (mode.name, mode.default, mode.choices) == ("mode", "'c'", ["a", "b"])
    assert unused.conditional
    assert parse_launch_file(path, {"mode": "a"}).processes[0].cmd == ["x", "a"]
    msg = launch_error(path)
    assert msg == f"{path}:2: <arg>: Argument \"mode\" provided value \"c\" is not valid. Valid options are: ['a', 'b']"


# ------------------------------------------------------------------------------------------
# launch configurations the runner keeps its own state in
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, user",
    [
        ("global_params", '<set_parameter name="p" value="1"/><node exec="talker"/>'),
        ("ros_remaps", '<set_remap from="a" to="b"/><node exec="talker"/>'),
        ("anon", '<executable cmd="x $(anon n)"/>'),
    ],
)
def test_internal_launch_configuration_overwritten_by_let(tmp_path, name, user):
    path = write(tmp_path, f'<launch>\n  <let name="{name}" value="ab"/>\n  {user}\n</launch>')
    msg = launch_error(path)
    assert f"{path}:3: <" in msg and f"launch configuration '{name}' holds 'ab'" in msg, msg
    # from the command line too
    given = write(tmp_path, f"<launch>\n  {user}\n</launch>", "given.launch.xml")
    assert f"launch configuration '{name}' holds 'cd'" in launch_error(given, {name: "cd"})


# ------------------------------------------------------------------------------------------
# environment variables, timeouts
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "element",
    [
        '<set_env name="A=B" value="1"/>',
        '<append_env name="A=B" value="1"/>',
        '<executable cmd="x"><env name="A=B" value="1"/></executable>',
    ],
)
def test_environment_variable_name_with_an_equals_sign(tmp_path, element):
    path = write(tmp_path, f'<launch>\n  {element}\n  <executable cmd="y"/>\n</launch>')
    msg = launch_error(path)
    assert f"{path}:2: <" in msg and "invalid environment variable name 'A=B'" in msg, msg


@pytest.mark.parametrize("attr", ["sigterm_timeout", "sigkill_timeout", "respawn_delay"])
def test_timeout_that_is_not_a_number(tmp_path, attr):
    # float('nan') parses, but no elapsed time is ever >= nan: the escalation would never come
    path = write(tmp_path, f'<launch>\n  <executable cmd="x" {attr}="nan"/>\n</launch>')
    assert f"{path}:2: <executable>: attribute '{attr}' expected to be a non-negative value" in launch_error(path)
    config = write(tmp_path, '<launch>\n  <executable cmd="x"/>\n</launch>', "config.launch.xml")
    if attr != "respawn_delay":
        assert f"launch configuration '{attr}' must be non-negative" in launch_error(config, {attr: "nan"})


def test_process_that_cannot_be_started_fails_the_launch_without_a_traceback(tmp_path):
    # the parser refuses NUL characters and bad variable names; run() still must not crash on them
    spec = ProcessSpec(name="bad-1", cmd=["true", "a\x00b"], env={"PATH": "/usr/bin:/bin"})
    screen = io.StringIO()
    assert run([spec], log_dir=str(tmp_path / "log"), screen=screen, install_signal_handlers=False) == 1
    assert "failed to start process" in screen.getvalue()


def test_a_process_that_cannot_be_started_leaves_the_others_running(tmp_path):
    """As Kilted's launch: the failure is logged and the launch goes on (and fails at its end)."""
    bad = ProcessSpec(name="bad-1", cmd=["true", "a\x00b"], env={"PATH": "/usr/bin:/bin"})
    marker = tmp_path / "ran"
    good = ProcessSpec(name="good-2", cmd=["sh", "-c", f"sleep 1; touch {marker}"], env={"PATH": "/usr/bin:/bin"})
    screen = io.StringIO()
    assert run([bad, good], log_dir=str(tmp_path / "log"), screen=screen, install_signal_handlers=False) == 1
    assert marker.exists(), screen.getvalue()  # good-2 ran to its end instead of being stopped
    assert "[INFO] [good-2]: process has finished cleanly" in screen.getvalue()


# ------------------------------------------------------------------------------------------
# XML that cannot be read, nesting beyond the interpreter's recursion limit
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["bogus", "utf-32", "rot13", "idna"])
def test_xml_declaring_an_encoding_expat_cannot_read(tmp_path, encoding):
    path = tmp_path / "enc.launch.xml"
    path.write_text(f'<?xml version="1.0" encoding="{encoding}"?>\n<launch/>\n')
    msg = launch_error(str(path))
    assert msg.startswith(f"{path}:1: invalid XML: "), msg


def test_elements_or_substitutions_nested_too_deeply(tmp_path):
    deep_elements = tmp_path / "elements.launch.xml"
    deep_elements.write_text("<launch>\n" + "<group>" * 2000 + "</group>" * 2000 + "\n</launch>\n")
    msg = launch_error(str(deep_elements))
    assert msg.startswith(f"{deep_elements}:2: <group>: elements nested more than 100 deep"), msg
    deep_substitutions = tmp_path / "substitutions.launch.xml"
    value = "$(var " * 500 + "x" + ")" * 500
    deep_substitutions.write_text(f'<launch>\n<let name="a" value="{value}"/>\n</launch>\n')
    msg = launch_error(str(deep_substitutions))
    assert msg.startswith(f"{deep_substitutions}:2: <let>: attribute 'value': substitutions nested more than"), msg


def test_includes_nesting_elements_beyond_the_recursion_limit(tmp_path):
    # within the per-file limit, but 15 files deep: the static walk for --show-args and the run both recurse
    paths = [tmp_path / f"level{i}.launch.xml" for i in range(16)]
    for path, included in zip(paths, paths[1:], strict=False):
        path.write_text("<launch>" + "<group>" * 98 + f'<include file="{included}"/>' + "</group>" * 98 + "</launch>")
    paths[-1].write_text('<launch><executable cmd="x"/></launch>')
    with pytest.raises(LaunchError, match="nested too deeply"):
        describe_launch_arguments(str(paths[0]))
    assert launch_error(str(paths[0])).startswith(f"{paths[0]}: elements and includes nested too deeply")


# ------------------------------------------------------------------------------------------
# fuzz: small launch files shaped like the schema, with bad values
# ------------------------------------------------------------------------------------------

# Fragments of attribute values: the bad values above and their neighbours. No $(filename) (an include of
# itself doubles the work per level) and no eval that could do harm.
VALUE_FRAGMENTS = [
    *("", " ", "x", "a b", "1", "-1", "0.5", "nan", "true", "[1, 2", "[1, 2]", "[]", "{a: 1}", "null", "a=b"),
    *("/", "//", "'", '"', "\\", "$(", ")", ";", "global_params", "ros_remaps", "anon", "launch-prefix"),
    *("$(var x)", "$(var", "$(var x d)", "$(env NOPE)", "$(anon a)", "$(find-pkg-share nope)", "$(dirname)"),
    *("$(find-exec nope)", "$(not x)", "$(if x a b)", "$(if true a b)", "$(equals a)", " $(var x)"),
    *("$(eval '1+1')", "$(eval '1/0')", "$(eval 'x y')", "$(eval '1' nosuchmodule)", "$(eval 'exit()')"),
    "$(eval 'chr(0)')",
]
FUZZ_TAGS = sorted(tag for tag in SCHEMA if "/" not in tag) + ["timer", "bogus"]
values = st.lists(st.sampled_from(VALUE_FRAGMENTS), min_size=1, max_size=2).map("".join)


@st.composite
def elements(draw, tag, parent, depth):
    schema = SCHEMA.get(f"{parent}/{tag}", SCHEMA.get(tag))
    attributes = {}
    children = []
    if schema is not None:
        allowed = sorted(schema.attributes | ({"if", "unless"} if schema.is_action else set()))
        for name in allowed:
            # required attributes mostly there, optional ones now and then: most files get past the schema
            if draw(st.integers(0, 19)) > 0 if name in schema.required else draw(st.integers(0, 3)) == 0:
                attributes[name] = draw(values)
        if tag == "include":
            attributes["file"] = draw(st.sampled_from(["nope.launch.xml", "$(dirname)/inc.launch.xml", "x"]))
        pool = sorted(ACTION_TAGS) if schema.children == ACTIONS else sorted(schema.children)
        if tag == "group":
            pool.append("keep")
        if pool and depth < 3:
            tags = st.integers(0, 9).flatmap(lambda n: st.sampled_from(FUZZ_TAGS if n == 0 else pool))
            for child_tag in draw(st.lists(tags, max_size=3)):
                children.append(draw(elements(child_tag, tag, depth + 1)))
    text = "".join(f" {name}={quoteattr(value)}" for name, value in attributes.items())
    return f"<{tag}{text}>{''.join(children)}</{tag}>" if children else f"<{tag}{text}/>"


@st.composite
def launch_files(draw):
    body = draw(st.lists(st.sampled_from(sorted(ACTION_TAGS)).flatmap(lambda t: elements(t, "launch", 1)), max_size=4))
    text = f"<launch>{''.join(body)}</launch>"
    if draw(st.integers(0, 19)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # not well-formed
    return text


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    """The fuzzed file's directory, with the one file it may include."""
    directory = tmp_path_factory.mktemp("fuzz")
    (directory / "inc.launch.xml").write_text(
        '<launch><arg name="y" default="1"/><executable cmd="i $(var y)"/></launch>'
    )
    return directory


@settings(database=None, max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=launch_files(), arguments=st.dictionaries(st.sampled_from(["x", "global_params", "anon"]), values))
def test_malformed_launch_files_raise_only_launch_error(fuzz_dir, text, arguments):
    path = fuzz_dir / "fuzz.launch.xml"
    path.write_text(text)
    environ = {"PATH": "/usr/bin:/bin", "AMENT_PREFIX_PATH": str(fuzz_dir / "no_prefix")}
    for attempt in (
        lambda: parse_launch_file(str(path), arguments, environ=environ, params_dir=str(fuzz_dir)),
        lambda: describe_launch_arguments(str(path), environ=environ),
    ):
        try:
            result = attempt()
        except LaunchError:
            continue
        except (Exception, SystemExit) as error:  # SystemExit: $(eval 'exit()') once ended the runner silently
            raise AssertionError(f"{type(error).__name__} instead of a LaunchError: {error}") from error
        for process in getattr(result, "processes", []):
            assert process.cmd and any(arg.strip() for arg in process.cmd), process
            assert not math.isnan(process.sigterm_timeout + process.sigkill_timeout + process.respawn_delay)
