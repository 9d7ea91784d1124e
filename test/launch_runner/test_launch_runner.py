"""Tests for lumina_nodes.launch_runner (lumina_launch): parsing meaning and supervision.

The expected command lines and parameter files are what ros2 launch (launch 3.x /
launch_ros 0.2x) produces for the same XML: see /work/shared/ROS_ANCHORS.md sections 1-2.
"""

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import yaml

from harness import LAUNCH_FIXTURES as FIXTURES
from harness import REPO
from lumina_nodes.launch_runner import LaunchError, describe_launch_arguments, format_show_args, parse_launch_file
from lumina_nodes.launch_runner.cli import main as cli_main

FAKE = FIXTURES / "fake_node.py"

PY = sys.executable


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


@pytest.fixture
def prefix(tmp_path, monkeypatch):
    """A fake install prefix with packages 'demo' (exec talker) and 'other' (no lib dir)."""
    pfx = tmp_path / "install"
    index = pfx / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    for pkg in ("demo", "other"):
        (index / pkg).write_text("")
        (pfx / "share" / pkg / "launch" / "sub").mkdir(parents=True)
    lib = pfx / "lib" / "demo"
    lib.mkdir(parents=True)
    talker = lib / "talker"
    talker.write_text(f"#!{PY}\n" + FAKE.read_text())
    talker.chmod(0o755)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(pfx))
    return pfx


def write(tmp_path, text, name="test.launch.xml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).strip() + "\n")
    return str(p)


def parse(path, args=None, tmp_path=None):
    return parse_launch_file(path, args or {}, params_dir=str(tmp_path) if tmp_path else None)


def cmd_of(result, name):
    for p in result.processes:
        if p.name == name:
            return p.cmd
    raise AssertionError(f"no process {name}: {[p.name for p in result.processes]}")


def launch_error(path, args=None):
    with pytest.raises(LaunchError) as info:
        parse_launch_file(path, args or {})
    return str(info.value)


# ------------------------------------------------------------------------------------------
# parsing: exact node command line and generated parameter files
# ------------------------------------------------------------------------------------------


def test_node_command_line_and_param_files(prefix, tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # env.sh sets it: the runner must add it itself
    path = write(
        tmp_path,
        f"""
        <launch>
          <arg name="rate" default="10"/>
          <node pkg="demo" exec="talker" name="talker" namespace="ns1" output="screen"
                args="--foo 'a b' $(var rate)x" ros_args="--log-level debug">
            <param from="{FIXTURES}/params.yaml"/>
            <param name="rate" value="$(var rate)"/>
            <param name="group">
              <param name="gain" value="1.5"/>
              <param name="inner"><param name="flag" value="true"/></param>
            </param>
            <param name="names" value="a;b;c" value-sep=";"/>
            <param name="ints" value="[1, 2, 3]"/>
            <param name="as_str" value="5" type="str"/>
            <param name="label" value="hello world"/>
            <remap from="chatter" to="/out"/>
            <remap from="~/in" to="in2"/>
            <env name="MY_ENV" value="v-$(var rate)"/>
          </node>
        </launch>""",
    )
    res = parse(path, {"rate": "7"}, tmp_path)
    (spec,) = res.processes
    assert spec.name == "talker-1"
    gen = [pf for pf in spec.param_files if pf.generated]
    assert len(gen) == 6  # one generated file per top-level <param name=...>, like launch_ros
    exe = str(prefix / "lib" / "demo" / "talker")
    assert spec.cmd == [
        exe,
        "--foo",
        "a b",
        "7x",
        "--ros-args",
        "--log-level",
        "debug",
        "--ros-args",
        "-r",
        "__node:=talker",
        "-r",
        "__ns:=/ns1",
        "--params-file",
        str(FIXTURES / "params.yaml"),
        *[x for pf in gen for x in ("--params-file", pf.path)],
        "-r",
        "chatter:=/out",
        "-r",
        "~/in:=in2",
    ]
    assert [pf.content for pf in gen] == [
        "/ns1/talker:\n  ros__parameters:\n    rate: 7\n",
        "/ns1/talker:\n  ros__parameters:\n    group.gain: 1.5\n    group.inner.flag: true\n",
        '/ns1/talker:\n  ros__parameters:\n    names:\n    - "a"\n    - "b"\n    - "c"\n',
        "/ns1/talker:\n  ros__parameters:\n    ints:\n    - 1\n    - 2\n    - 3\n",
        '/ns1/talker:\n  ros__parameters:\n    as_str: "5"\n',
        '/ns1/talker:\n  ros__parameters:\n    label: "hello world"\n',
    ]
    for pf in gen:
        assert Path(pf.path).read_text() == pf.content
        assert os.path.basename(pf.path).startswith("launch_params_")
    assert spec.env["MY_ENV"] == "v-7"
    assert spec.env["PYTHONUNBUFFERED"] == "1"
    assert spec.output == "screen" and spec.node_name == "/ns1/talker"


def test_param_file_key_is_wildcard_without_name_or_namespace(prefix, tmp_path):
    path = write(
        tmp_path,
        """
        <launch>
          <node pkg="demo" exec="talker" name="only_name"><param name="a" value="1"/></node>
          <node pkg="demo" exec="talker" namespace="only_ns"><param name="a" value="x"/></node>
          <node pkg="demo" exec="talker" exec_name="bare"/>
        </launch>""",
    )
    res = parse(path, tmp_path=tmp_path)
    a, b, c = res.processes
    assert a.param_files[0].content == "/**:\n  ros__parameters:\n    a: 1\n"
    assert a.cmd[1:] == ["--ros-args", "-r", "__node:=only_name", "--params-file", a.param_files[0].path]
    assert b.param_files[0].content == '/**:\n  ros__parameters:\n    a: "x"\n'
    assert b.cmd[1:4] == ["--ros-args", "-r", "__ns:=/only_ns"]
    # no name, no namespace: just the trailing --ros-args, label from exec_name
    assert c.cmd == [str(prefix / "lib/demo/talker"), "--ros-args"] and c.name == "bare-3"


def test_missing_executable_and_package_errors(prefix, tmp_path):
    msg = launch_error(write(tmp_path, '<launch>\n<node pkg="demo" exec="nope"/>\n</launch>'))
    assert "nope" in msg and ":2:" in msg and "<node>" in msg
    msg = launch_error(write(tmp_path, '<launch>\n\n<node pkg="ghost" exec="x"/>\n</launch>'))
    assert "package 'ghost' not found" in msg and ":3:" in msg
    msg = launch_error(write(tmp_path, '<launch><node pkg="other" exec="x"/></launch>'))
    assert "libexec directory" in msg


def test_namespaces_push_and_group_scoping(prefix, tmp_path):
    path = write(
        tmp_path,
        """
        <launch>
          <group>
            <push_ros_namespace namespace="robot"/>
            <node pkg="demo" exec="talker" name="a"/>
            <node pkg="demo" exec="talker" name="b" namespace="sub/"/>
            <node pkg="demo" exec="talker" name="c" namespace="/abs"/>
            <group>
              <push-ros-namespace namespace="inner"/>
              <node pkg="demo" exec="talker" name="d"/>
            </group>
            <node pkg="demo" exec="talker" name="e"/>
          </group>
          <node pkg="demo" exec="talker" name="f"/>
          <group scoped="false"><push_ros_namespace namespace="/leak"/></group>
          <node pkg="demo" exec="talker" name="g"/>
        </launch>""",
    )
    res = parse(path, tmp_path=tmp_path)
    ns = {p.cmd[3].split(":=")[1]: (p.cmd[5] if len(p.cmd) > 5 else None) for p in res.processes}
    assert ns == {
        "a": "__ns:=/robot",
        "b": "__ns:=/robot/sub",
        "c": "__ns:=/abs",
        "d": "__ns:=/robot/inner",
        "e": "__ns:=/robot",
        "f": None,
        "g": "__ns:=/leak",
    }


def test_include_is_not_scoped_but_group_is(tmp_path):
    res = parse(str(FIXTURES / "include_parent.launch.xml"), tmp_path=tmp_path)
    cmds = {p.name.rsplit("-", 1)[0]: p.cmd for p in res.processes}
    assert [p.name for p in res.processes] == ["inc-1", "after_include-2", "inc-3", "after_group-4"]
    assert res.processes[0].cmd == ["prog", "first", "dflt", str(FIXTURES)]
    # args, lets and set_env of the included file leak into the including scope
    assert cmds["after_include"] == ["after", "first", "dflt", "from_include", "first"]
    assert res.processes[0].env["INC_ENV"] == "first"
    assert res.processes[2].cmd == ["prog", "scoped", "other", str(FIXTURES)]
    # ... but not out of a <group>
    assert cmds["after_group"] == ["after_group", "first", "dflt", "first"]


def test_include_missing_required_argument(tmp_path):
    path = write(
        tmp_path,
        f"""
        <launch>
          <include file="{FIXTURES}/included.launch.xml">
            <arg name="inc_default" value="x"/>
          </include>
        </launch>""",
    )
    msg = launch_error(path)
    # like ros2 launch, the root file's (static) argument check already walks into includes
    assert "Included launch description missing required argument 'inc_required'" in msg
    assert f"{FIXTURES}/included.launch.xml:2: <arg>" in msg
    # an include whose path needs the context is checked when it is executed
    path = write(
        tmp_path,
        f"""
        <launch>
          <let name="dir" value="{FIXTURES}"/>
          <include file="$(var dir)/included.launch.xml">
            <arg name="inc_default" value="x"/>
          </include>
        </launch>""",
        "late.launch.xml",
    )
    msg = launch_error(path)
    assert "missing required argument 'inc_required'" in msg and "given: [inc_default]" in msg
    assert f"{path}:3: <include>" in msg


def test_required_arg_and_choices(tmp_path):
    path = write(
        tmp_path,
        """
        <launch>
          <arg name="mode" default="a" description="Mode">
            <choice value="a"/>
            <choice value="b"/>
          </arg>
          <group if="true">
            <arg name="needed"/>
          </group>
          <executable cmd="x $(var mode) $(var needed)"/>
        </launch>""",
    )
    assert parse(path, {"needed": "1", "mode": "b"}).processes[0].cmd == ["x", "b", "1"]
    msg = launch_error(path, {"needed": "1", "mode": "c"})
    assert 'Argument "mode" provided value "c" is not valid' in msg and ":2: <arg>" in msg
    msg = launch_error(path)
    assert 'Required launch argument "needed"' in msg and ":7: <arg>" in msg
    # the root file is "included" with the command line arguments, like ros2 launch
    root_required = write(tmp_path, '<launch><arg name="x"/></launch>', "r.launch.xml")
    assert "missing required argument 'x'" in launch_error(root_required)


def test_if_unless_conditions(tmp_path):
    path = write(
        tmp_path,
        """
        <launch>
          <arg name="on" default="True"/>
          <executable cmd="a" if="$(var on)"/>
          <executable cmd="b" unless="$(var on)"/>
          <executable cmd="c" if="1"/>
          <executable cmd="d" if=" FALSE "/>
          <executable cmd="e" unless="0"/>
          <group if="false"><executable cmd="f"/><let name="z" value="1"/></group>
          <let name="y" value="set" unless="true"/>
          <executable cmd="g $(var y default_y)"/>
        </launch>""",
    )
    assert [p.cmd for p in parse(path).processes] == [["a"], ["c"], ["e"], ["g", "default_y"]]
    assert [p.cmd for p in parse(path, {"on": "false"}).processes] == [["b"], ["c"], ["e"], ["g", "default_y"]]
    msg = launch_error(path, {"on": "yes"})
    assert "invalid condition" in msg and ":3: <executable>" in msg
    both = write(tmp_path, '<launch>\n<let name="a" value="b" if="1" unless="1"/>\n</launch>', "both.launch.xml")
    assert "if and unless conditions can't be used simultaneously" in launch_error(both)


def test_substitutions(prefix, tmp_path, monkeypatch):
    monkeypatch.setenv("LR_TEST_ENV", "env value")
    monkeypatch.delenv("LR_UNSET", raising=False)
    path = write(
        tmp_path,
        """
        <launch>
          <arg name="n" default="3"/>
          <arg name="flag" default="true"/>
          <let name="nested" value="$(var n)$(var n)"/>
          <executable name="subs" cmd="x
            $(var nested)
            $(var missing fallback)
            $(env LR_TEST_ENV)
            $(env LR_UNSET '')_empty
            $(find-pkg-share demo)
            $(find-pkg-prefix other)
            $(eval '$(var n) * 2')
            $(eval 'floor(2.7)')
            $(eval '\\'-\\'.join([\\'a\\', \\'b\\'])')
            $(not $(var flag))
            $(and $(var flag) false)
            $(or $(var flag) false)
            $(equals $(var n) 3.0)
            $(equals true 1)
            $(not-equals a b)
            $(dirname)
            $(var 'n')
            \\$(var n)
            pre$(var n)post"/>
          <executable name="anon" cmd="$(anon node) $(anon node) $(anon other)"/>
        </launch>""",
    )
    res = parse(path)
    assert res.processes[0].cmd == [
        "x",
        "33",
        "fallback",
        "env value",
        "_empty",
        str(prefix / "share" / "demo"),
        str(prefix),
        "6",
        "2",
        "a-b",
        "false",
        "false",
        "true",
        "true",
        "true",
        "true",
        str(tmp_path),
        "3",
        "$(var",
        "n)",
        "pre3post",
    ]
    a1, a2, a3 = res.processes[1].cmd
    assert a1 == a2 != a3 and a1.startswith("node_")
    # a substitution result is one argument even if it contains spaces (not shlex-split)
    path2 = write(
        tmp_path,
        """
        <launch>
          <let name="two" value="a b"/>
          <executable cmd="x $(var two) y$(var two)z"/>
        </launch>""",
        "two.launch.xml",
    )
    assert parse(path2).processes[0].cmd == ["x", "a b", "ya bz"]


@pytest.mark.parametrize(
    "attr, message",
    [
        ("$(var undefined_thing)", "launch configuration 'undefined_thing' does not exist"),
        ("$(env LR_SURELY_UNSET_VAR)", "environment variable 'LR_SURELY_UNSET_VAR' does not exist"),
        ("$(not maybe)", "$(not)"),
        ("$(bogus x)", "unknown substitution '$(bogus ...)'"),
        ("$(var a b c)", "substitution 'var' expects 1..2 argument(s), got 3"),
        ("$(var x", "unterminated substitution"),
    ],
)
def test_substitution_errors_name_the_line(tmp_path, attr, message):
    path = write(tmp_path, f'<launch>\n  <let name="a" value="1"/>\n  <executable cmd="x {attr}"/>\n</launch>')
    msg = launch_error(path)
    assert message in msg and f"{path}:3: <executable>" in msg


@pytest.mark.parametrize(
    "body, line, fragment",
    [
        ('<launch>\n  <timer period="1"/>\n</launch>', 2, "lumina_launch does not support"),
        ('<launch>\n  <nodez pkg="x" exec="y"/>\n</launch>', 2, "unknown or misplaced element"),
        ('<launch>\n  <node exec="y" colour="red"/>\n</launch>', 2, "unexpected attribute(s) ['colour']"),
        (
            '<launch>\n  <group>\n    <node pkg="x"/>\n  </group>\n</launch>',
            3,
            "missing required attribute(s) ['exec']",
        ),
        (
            '<launch>\n\n  <node exec="y">\n    <param name="p"/>\n  </node>\n</launch>',
            4,
            "either a value attribute or nested params are needed",
        ),
        (
            '<launch>\n  <node exec="y">\n    <param name="p" from="f"/>\n  </node>\n</launch>',
            3,
            "name and from attributes are mutually exclusive",
        ),
        ('<launch>\n  <executable cmd="y" output="loud"/>\n</launch>', 2, "invalid output 'loud'"),
        ('<launch>\n  <executable cmd="y" on_exit="restart"/>\n</launch>', 2, "invalid on_exit"),
        ('<launch>\n  <env name="a" value="b"/>\n</launch>', 2, "unknown or misplaced element"),
        (
            '<launch>\n  <executable cmd="y"><env name="a" value="b" if="1"/></executable>\n</launch>',
            2,
            "unexpected attribute(s) ['if']",
        ),
        ('<launch>\n  <node exec="y" node-name="x"/>\n</launch>', 2, "not supported by lumina_launch"),
        (
            '<launch>\n  <node exec="y"><param name="p" value="x" type="complex"/></node>\n</launch>',
            2,
            "unknown param type 'complex'",
        ),
        (
            '<launch>\n  <node exec="y"><param name="p" value="abc" type="int"/></node>\n</launch>',
            2,
            "can not be converted to 'int'",
        ),
        ("<lunch/>", 1, "Expected 'launch' as root tag"),
        ('<launch>\n  <arg name="a">\n</launch>', 3, "invalid XML"),
    ],
)
def test_unsupported_or_invalid_xml_is_an_error_with_line(tmp_path, body, line, fragment):
    path = write(tmp_path, body)
    msg = launch_error(path)
    assert fragment in msg, msg
    assert f"{path}:{line}:" in msg, msg


def test_invalid_element_in_untaken_branch_is_still_an_error(tmp_path):
    # ros2 launch parses the whole file before executing anything
    path = write(tmp_path, '<launch>\n<group if="false">\n<bogus/>\n</group>\n</launch>')
    assert ":3: <bogus>" in launch_error(path)


def test_param_from_allow_substs_set_env_and_executable(prefix, tmp_path):
    path = write(
        tmp_path,
        f"""
        <launch>
          <arg name="robot" default="r2d2"/>
          <set_env name="GLOBAL_ENV" value="g-$(var robot)"/>
          <node pkg="demo" exec="talker" name="n">
            <param from="{FIXTURES}/subst_params.yaml" allow_substs="true"/>
            <param from="{tmp_path}/does_not_exist.yaml"/>
          </node>
          <executable cmd="{PY} -c 'print(1)'" cwd="{tmp_path}" name="exe" respawn="true"
                      respawn_delay="0.5" on_exit="shutdown" launch-prefix="nice -n 5"/>
        </launch>""",
    )
    res = parse(path, tmp_path=tmp_path)
    node, exe = res.processes
    (pf,) = node.param_files  # the missing file is skipped with a warning, like launch_ros
    assert pf.generated and yaml.safe_load(pf.content) == {"/**": {"ros__parameters": {"robot": "r2d2", "rate": 5}}}
    assert node.cmd[-2:] == ["--params-file", pf.path]
    assert any("Parameter file path is not a file" in w for w in res.warnings)
    assert node.env["GLOBAL_ENV"] == "g-r2d2"
    assert exe.cmd == ["nice", "-n", "5", PY, "-c", "print(1)"]
    assert (exe.name, exe.cwd, exe.respawn, exe.respawn_delay, exe.required) == (
        "exe-2",
        str(tmp_path),
        True,
        0.5,
        True,
    )
    # the label defaults to the basename of argv[0] *after* the launch prefix (upstream)
    res = parse(path, {"launch-prefix": "time -p"}, tmp_path)
    assert res.processes[0].name == "time-1" and res.processes[0].cmd[:2] == ["time", "-p"]
    assert res.processes[1].cmd[:3] == ["nice", "-n", "5"]
    assert (exe.sigterm_timeout, exe.sigkill_timeout) == (5.0, 5.0)
    res = parse(path, {"sigterm_timeout": "1", "sigkill_timeout": "2.5"}, tmp_path)
    assert (res.processes[1].sigterm_timeout, res.processes[1].sigkill_timeout) == (1.0, 2.5)


def test_global_actions_env_actions_and_group_forwarding(prefix, tmp_path, monkeypatch):
    monkeypatch.setenv("LR_BASE", "base")
    monkeypatch.setenv("LR_PATHLIKE", "/a")
    path = write(
        tmp_path,
        """
        <launch>
          <arg name="outer" default="o"/>
          <set_env name="LR_SET" value="s"/>
          <append_env name="LR_PATHLIKE" value="/b"/>
          <append_env name="LR_PATHLIKE" value="/z" prepend="true"/>
          <unset_env name="LR_BASE"/>
          <group>
            <set_parameter name="use_sim_time" value="true"/>
            <set_remap from="tf" to="/robot/tf"/>
            <node pkg="demo" exec="talker" name="n1">
              <param name="p" value="1"/>
              <remap from="a" to="b"/>
            </node>
          </group>
          <node pkg="demo" exec="talker" name="n2"/>
          <group forwarding="false">
            <keep name="kept" value="$(var outer)-k"/>
            <executable cmd="x $(var kept) $(var outer unset)" name="fwd"/>
          </group>
        </launch>""",
    )
    res = parse(path, tmp_path=tmp_path)
    n1, n2, fwd = res.processes
    assert n1.cmd[1:] == [
        "--ros-args",
        "-r",
        "__node:=n1",
        "-p",
        "use_sim_time:=True",
        "--params-file",
        n1.param_files[0].path,
        "-r",
        "tf:=/robot/tf",
        "-r",
        "a:=b",
    ]
    assert n2.cmd[1:] == ["--ros-args", "-r", "__node:=n2"]  # group-scoped global actions
    assert n1.env["LR_SET"] == "s" and n1.env["LR_PATHLIKE"] == "/z:/a:/b"
    assert "LR_BASE" not in n1.env
    # forwarding=false: only <keep> configurations, environment reset to the original one
    assert fwd.cmd == ["x", "o-k", "unset"]
    assert fwd.env["LR_BASE"] == "base" and "LR_SET" not in fwd.env


# ------------------------------------------------------------------------------------------
# CLI: show-args, print, package lookup
# ------------------------------------------------------------------------------------------


def test_show_args_matches_ros2_launch_with_defaults_evaluated(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    assert cli_main(["-s", str(FIXTURES / "show_args.launch.xml")]) == 0
    assert capsys.readouterr().out == (
        "Arguments (pass arguments as '<name>:=<value>'):\n"
        "\n    'robot':\n        Robot name\n        (default: 'r1')\n"
        "\n    'mode':\n        One of: ['r1_fast', 'slow']\n"
        "        (default: 'r1_fast', from LaunchConfig('robot') + '_fast')\n"
        "\n    'plain':\n        no description given\n"
        "\n    'level':\n        Log level. Valid choices are: ['info', 'debug']\n"
        "        (default: 'info')\n"
        "\n    'cond':*\n        no description given\n        (default: 'x')\n"
        "* argument(s) which are only used if specific conditions occur\n"
    )
    args = describe_launch_arguments(str(FIXTURES / "include_parent.launch.xml"))
    assert args == []  # includes via $(dirname) cannot be described without a context
    assert format_show_args(args).endswith("No arguments.\n")


def test_show_args_of_the_city_evaluates_defaults_and_leaves_out_what_the_include_sets():
    city = {a.name: a for a in describe_launch_arguments(str(REPO / "launch" / "city.launch.xml"))}
    assert city["jewels_per_plaza"].default.startswith("'250', from eval(")
    assert city["replay_start"].default.startswith("'0.0', from if(")
    # plaza.launch.xml's arguments that city.launch.xml sets in its includes are not the user's to pass
    assert not {"plaza", "index", "port", "participants", "participants_file"} & set(city), sorted(city)
    assert {"driver", "size", "plazas", "foxglove", "record"} <= set(city)


def test_cli_package_lookup_and_print(prefix, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # generated params files go here
    share = prefix / "share" / "demo" / "launch" / "sub"
    (share / "demo.launch.xml").write_text(
        '<launch><arg name="who" default="w"/>'
        '<node pkg="demo" exec="talker" name="$(var who)"><param name="p" value="1"/></node>'
        "</launch>"
    )
    assert cli_main(["-p", "demo", "demo.launch.xml", "who:=bob"]) == 0
    out = capsys.readouterr().out
    talker = prefix / "lib" / "demo" / "talker"
    assert "[talker-1]" in out
    assert f"cmd: {talker} --ros-args -r __node:=bob --params-file /" in out
    assert "  params-file (generated) " in out
    assert "    /**:\n      ros__parameters:\n        p: 1" in out
    # duplicates in the share directory are an error, like ros2 launch
    (prefix / "share" / "demo" / "launch" / "demo.launch.xml").write_text("<launch/>")
    assert cli_main(["-p", "demo", "demo.launch.xml"]) == 2
    assert "was found more than once" in capsys.readouterr().err
    assert cli_main(["-p", "demo", "nothing.launch.xml"]) == 2
    assert "was not found in the share directory" in capsys.readouterr().err
    assert cli_main(["-p", str(share / "demo.launch.xml"), "bad_arg"]) == 2
    assert "malformed launch argument 'bad_arg'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# supervision (the runner runs as a subprocess, like `lumina_launch`)
# ------------------------------------------------------------------------------------------


def start_runner(path, tmp_path, *args):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [PY, "-m", "lumina_nodes.launch_runner", str(path), "--log-dir", str(tmp_path / "logs"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=str(REPO),
    )


def run_launch(path, tmp_path, *args, timeout=30):
    proc = start_runner(path, tmp_path, *args)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def fake(name, env="", attrs=""):
    envs = "".join(f'<env name="{k}" value="{v}"/>' for k, v in (kv.split("=", 1) for kv in env.split() if kv))
    return f'<executable cmd="{PY} {FAKE}" name="{name}" {attrs}>{envs}</executable>'


def pid_lines(pidfile):
    if not Path(pidfile).exists():
        return []
    return [ln.split() for ln in Path(pidfile).read_text().splitlines()]


def test_output_prefixing_logs_and_failure_status(tmp_path):
    path = write(
        tmp_path,
        f"""
        <launch>
          {fake("scr", "FAKE_OUT=out1|out2 FAKE_ERR=err1", 'output="screen"')}
          {fake("quiet", "FAKE_OUT=hidden FAKE_ERR=shown FAKE_EXIT=3")}
        </launch>""",
    )
    rc, out = run_launch(path, tmp_path)
    assert rc != 0, out  # a node failed: unlike ros2 launch, the runner reports it
    lines = out.splitlines()
    for expected in ("[scr-1] out1", "[scr-1] out2", "[scr-1] err1", "[quiet-2] shown"):
        assert expected in lines, out
    assert "[quiet-2] hidden" not in lines  # output=log: stdout only goes to the log files
    assert any(ln.startswith("[INFO] [scr-1]: process started with pid [") for ln in lines)
    assert any(ln.startswith("[INFO] [scr-1]: process has finished cleanly [pid ") for ln in lines)
    died = [ln for ln in lines if ln.startswith("[ERROR] [quiet-2]: process has died [pid ")]
    assert died and f"exit code 3, cmd '{PY} {FAKE}']." in died[0]
    logs = tmp_path / "logs"
    # stdout and stderr are read by separate threads: their order in the log is not defined
    assert sorted((logs / "quiet-2.log").read_text().splitlines()) == ["hidden", "shown"]
    launch_log = (logs / "launch.log").read_text()
    assert "[quiet-2] hidden" in launch_log and "process has died" in launch_log
    # all good -> 0
    ok = write(tmp_path, f"<launch>{fake('ok', 'FAKE_OUT=x')}</launch>", "ok.launch.xml")
    assert run_launch(ok, tmp_path)[0] == 0


def test_respawn_with_delay_and_required_node_ends_launch(tmp_path):
    pidfile = tmp_path / "pids"
    path = write(
        tmp_path,
        f"""
        <launch>
          {fake("flappy", f"FAKE_PIDFILE={pidfile} FAKE_EXIT=0", 'respawn="true" respawn_delay="0.6"')}
          {fake("sleeper", "FAKE_SLEEP=60")}
          {fake("boss", "FAKE_SLEEP=2.5", 'on_exit="shutdown"')}
        </launch>""",
    )
    t0 = time.monotonic()
    rc, out = run_launch(path, tmp_path)
    elapsed = time.monotonic() - t0
    assert rc == 0, out  # sleeper stopped by the runner's SIGINT counts as clean
    assert elapsed < 10, out  # the required node ended the launch (sleeper would run 60 s)
    starts = [float(t) for role, pid, t in pid_lines(pidfile) if role == "node"]
    assert 3 <= len(starts) <= 6, (starts, out)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(g >= 0.55 for g in gaps), gaps
    assert out.count("[INFO] [flappy-1]: process started with pid") == len(starts)
    assert "sending signal 'SIGINT' to process[sleeper-2]" in out


def test_a_configuration_error_twice_in_a_row_is_not_respawned_again(tmp_path):
    """A node that exits with EXIT_CONFIG (its FATAL configuration error) twice is given up on; one that crashes
    otherwise keeps being respawned; the rest of the launch goes on and the launch fails."""
    from lumina_nodes.constants import EXIT_CONFIG

    pidfile = tmp_path / "pids"
    respawn = 'respawn="true" respawn_delay="0.2"'
    path = write(
        tmp_path,
        f"""
        <launch>
          {fake("misconfigured", f"FAKE_PIDFILE={pidfile} FAKE_EXIT={EXIT_CONFIG}", respawn)}
          {fake("crashy", "FAKE_EXIT=1", respawn)}
          {fake("boss", "FAKE_SLEEP=3", 'on_exit="shutdown"')}
        </launch>""",
    )
    rc, out = run_launch(path, tmp_path)
    assert rc != 0, out
    assert out.count("[INFO] [misconfigured-1]: process started with pid") == 2, out
    assert len([p for p in pid_lines(pidfile) if p[0] == "node"]) == 2
    assert (
        f"process[misconfigured-1] exited with a configuration error (exit code {EXIT_CONFIG}) twice in a row: "
        "not respawned again" in out
    )
    assert out.count("[INFO] [crashy-2]: process started with pid") >= 5, out  # a crash is respawned as before


def test_sigterm_to_runner_kills_everything_with_escalation(tmp_path):
    pidfile = tmp_path / "pids"
    path = write(
        tmp_path,
        f"""
        <launch>
          {fake("stubborn", f"FAKE_PIDFILE={pidfile} FAKE_IGNORE=INT FAKE_GRANDCHILD=1 FAKE_SLEEP=60")}
          {fake("polite", f"FAKE_PIDFILE={pidfile} FAKE_SLEEP=60")}
        </launch>""",
    )
    proc = start_runner(path, tmp_path, "sigterm_timeout:=1.5", "sigkill_timeout:=1.5")
    try:
        deadline = time.monotonic() + 10
        while len(pid_lines(pidfile)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = {role + pid: int(pid) for role, pid, _ in pid_lines(pidfile)}
        assert len(pids) == 3, pids
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    # stubborn ignores SIGINT: SIGTERM after sigterm_timeout (1.5 s), which ends it cleanly
    assert 1.4 <= elapsed < 4.5, (elapsed, out)
    assert (
        "process[stubborn-1] failed to terminate '1.5' seconds after receiving 'SIGINT', escalating to 'SIGTERM'"
    ) in out
    assert "SIGKILL" not in out
    assert proc.returncode == 0, out
    for pid in pids.values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, (pid, out)


def test_sigkill_escalation_timing_and_failure_status(tmp_path):
    pidfile = tmp_path / "pids"
    path = write(
        tmp_path,
        f"""
        <launch>
          {fake("immortal", f"FAKE_PIDFILE={pidfile} FAKE_IGNORE=INT,TERM FAKE_SLEEP=60")}
          {fake("quick", "FAKE_SLEEP=0.3", 'on_exit="shutdown"')}
        </launch>""",
    )
    t0 = time.monotonic()
    rc, out = run_launch(path, tmp_path, "sigterm_timeout:=1", "sigkill_timeout:=1")
    elapsed = time.monotonic() - t0
    assert rc != 0, out  # immortal had to be SIGKILLed
    assert "escalating to 'SIGTERM'" in out and "escalating to 'SIGKILL'" in out
    assert 2.0 <= elapsed < 7.0, (elapsed, out)
    (pid,) = [int(p) for role, p, _ in pid_lines(pidfile)]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    died = [ln for ln in out.splitlines() if "[immortal-1]: process has died" in ln]
    assert died and "exit code -9" in died[0]


def test_idle_launch_stops_leftover_grandchildren(tmp_path):
    pidfile = tmp_path / "pids"
    path = write(
        tmp_path,
        f"""
        <launch>
          {fake("parent", f"FAKE_PIDFILE={pidfile} FAKE_GRANDCHILD=1 FAKE_SLEEP=0.3")}
        </launch>
        """,
    )
    rc, out = run_launch(path, tmp_path, timeout=20)
    roles = {role: int(pid) for role, pid, _ in pid_lines(pidfile)}
    assert set(roles) == {"node", "grandchild"}, out
    assert "still has running processes" in out
    assert (
        not psutil.pid_exists(roles["grandchild"])
        or psutil.Process(roles["grandchild"]).status() == psutil.STATUS_ZOMBIE
    )
    assert rc == 0, out  # the grandchild stopped on SIGINT


def test_node_from_package_runs_with_exact_argv(prefix, tmp_path):
    path = write(
        tmp_path,
        """
        <launch>
          <node pkg="demo" exec="talker" name="t" namespace="n" output="screen">
            <env name="FAKE_ARGV" value="1"/>
            <remap from="a" to="b"/>
          </node>
        </launch>""",
    )
    rc, out = run_launch(path, tmp_path)
    assert rc == 0, out
    argv = [json.loads(ln.split("ARGV ", 1)[1]) for ln in out.splitlines() if "ARGV " in ln]
    assert argv == [["--ros-args", "-r", "__node:=t", "-r", "__ns:=/n", "-r", "a:=b"]], out


def test_children_die_if_the_runner_is_killed_abruptly(tmp_path):
    pidfile = tmp_path / "pids"
    path = write(tmp_path, f"<launch>{fake('child', f'FAKE_PIDFILE={pidfile} FAKE_SLEEP=60')}</launch>")
    proc = start_runner(path, tmp_path)
    try:
        deadline = time.monotonic() + 10
        while not pid_lines(pidfile) and time.monotonic() < deadline:
            time.sleep(0.05)
        (child,) = [int(pid) for _, pid, _ in pid_lines(pidfile)]
        proc.kill()  # SIGKILL: the runner cannot clean up; PR_SET_PDEATHSIG does
        proc.communicate(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.05)
        else:
            psutil.Process(child).kill()
            pytest.fail("child survived the runner being SIGKILLed")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_emulate_tty_gives_the_child_a_terminal(tmp_path):
    code = "import sys; print('tty', sys.stdout.isatty(), sys.stderr.isatty())"
    path = write(
        tmp_path,
        f"""
        <launch>
          <executable cmd="{PY} -c &quot;{code}&quot;" name="tty" output="screen"
                      emulate_tty="true"/>
          <executable cmd="{PY} -c &quot;{code}&quot;" name="pipe" output="screen"/>
        </launch>""",
    )
    rc, out = run_launch(path, tmp_path)
    assert rc == 0, out
    lines = out.splitlines()
    assert "[tty-1] tty True True" in lines and "[pipe-2] tty False False" in lines, out


def test_string_params_stay_strings_for_the_node_as_under_kilted(prefix, tmp_path):
    """Strings are written double-quoted (Kilted launch_ros 0.28.1+), so rcl's parameter parser, which a node
    uses on --params-file, reads '1e3' and 'true' given as strings as STRING, and numbers as numbers."""
    import rclpy
    from rclpy.parameter import Parameter

    path = write(
        tmp_path,
        """
        <launch>
          <node pkg="demo" exec="talker" name="typed">
            <param name="exp" value="1e3" type="str"/>
            <param name="flag" value="true" type="str"/>
            <param name="number" value="2.5"/>
          </node>
        </launch>""",
    )
    (proc,) = parse(path, tmp_path=tmp_path).processes
    args = ["--ros-args", *[x for pf in proc.param_files for x in ("--params-file", pf.path)]]
    context = rclpy.Context()
    rclpy.init(args=args, context=context)
    try:
        node = rclpy.create_node("typed", context=context, automatically_declare_parameters_from_overrides=True)
        types = {name: node.get_parameter(name).type_ for name in ("exp", "flag", "number")}
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    assert types == {
        "exp": Parameter.Type.STRING,
        "flag": Parameter.Type.STRING,
        "number": Parameter.Type.DOUBLE,
    }


def test_print_leaves_no_parameter_files_behind(tmp_path):
    """`lumina_launch -p` prints each generated parameter file's contents and removes the files afterwards."""
    from harness import package_executable

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    run = subprocess.run(
        [package_executable("lumina_launch"), "lumina_nodes", "city.launch.xml", "size:=small", "-p"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("params-file (generated)") >= 10 and "ros__parameters" in run.stdout
    assert list(tmp_path.rglob("launch_params_*")) == []


ORPHAN_AT_FORK = """
import os, sys, time
from lumina_nodes.launch_runner.runner import _child_setup

runner = os.getpid()
preexec = _child_setup(runner)  # made before the fork, as Supervisor.start does
child = os.fork()
if child:
    print(child, flush=True)
    os._exit(0)  # the runner dies between the fork and the child's prctl (SIGKILLed while it starts a process)
while os.getppid() == runner:
    time.sleep(0.01)
preexec()  # what subprocess runs in the child before exec
os.execvp("sleep", ["sleep", "30"])
"""


def test_a_child_forked_as_the_runner_dies_does_not_exec(tmp_path):
    """Issue 15 item 19: a runner killed while it starts (or respawns) a process left that process running with
    PPID 1 for good: the death signal is armed after the fork, when the runner may already be gone. The child
    checks its parent once armed and does not exec (measured before the fix: 2 of 20 runners SIGKILLed in their
    start loop left a survivor; after: 0 of 30)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([PY, "-c", ORPHAN_AT_FORK], env=env, capture_output=True, text=True, timeout=30)
    child = int(run.stdout.split()[0])
    deadline = time.monotonic() + 5
    try:
        while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                pytest.fail(f"the child of a dead runner went on: {psutil.Process(child).cmdline()}")
            time.sleep(0.05)
    finally:
        if psutil.pid_exists(child):
            psutil.Process(child).kill()


def test_sigterm_again_during_shutdown_kills_what_still_runs_at_once(tmp_path):
    """A second stop signal of the SIGTERM kind comes from a supervisor about to SIGKILL the runner (the harness
    5 s after its SIGINT, a service manager at its timeout): the runner SIGKILLs what still runs at once instead
    of being killed before its own escalation, which left the processes that hold off SIGINT and SIGTERM behind."""
    pidfile = tmp_path / "pids"
    path = write(
        tmp_path, f"<launch>{fake('immortal', f'FAKE_PIDFILE={pidfile} FAKE_IGNORE=INT,TERM FAKE_SLEEP=60')}</launch>"
    )
    proc = start_runner(path, tmp_path)
    try:
        deadline = time.monotonic() + 10
        while not pid_lines(pidfile) and time.monotonic() < deadline:
            time.sleep(0.05)
        ((_, child, _),) = pid_lines(pidfile)
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert elapsed < 2.0, (elapsed, out)  # not sigterm_timeout + sigkill_timeout (10 s) after the SIGINT
    assert "got SIGTERM again during shutdown: killing every process still running" in out
    assert "sending signal 'SIGKILL' to process[immortal-1]" in out
    assert proc.returncode != 0, out  # a process had to be SIGKILLed
    child = int(child)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE, out


def test_a_node_respawning_during_shutdown_is_not_started_again(tmp_path):
    """The respawn race of issue 15 item 19: a node that dies over and over (respawn_delay 0 and 0.1) while the
    launch stops. Nothing is started after the stop signal, and no process of the launch survives it."""
    pidfile = tmp_path / "pids"
    flappy = f"FAKE_PIDFILE={pidfile} FAKE_SLEEP=0.05 FAKE_EXIT=1"
    path = write(
        tmp_path,
        f"""
        <launch>
          {fake("flappy", flappy, 'respawn="true" respawn_delay="0.0"')}
          {fake("slow_flappy", flappy, 'respawn="true" respawn_delay="0.1"')}
        </launch>""",
    )
    proc = start_runner(path, tmp_path)
    try:
        deadline = time.monotonic() + 10
        while len(pid_lines(pidfile)) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, _, after = out.partition("user interrupted with ctrl-c (SIGINT)")
    assert after and "process started" not in after, out
    for _, pid, _ in pid_lines(pidfile):
        assert not psutil.pid_exists(int(pid)) or psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE, out
