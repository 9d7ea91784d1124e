"""The project's launch files (launch/) checked like xmllint would, against the launch XML schema the runner
implements (the elements and attributes launch_xml, launch and launch_ros accept), and resolved by the runner.

A schema error names file:line, the element and the unknown element or attribute; the fixtures with one
typo each show what such an error says.
"""

import pytest

from harness import LAUNCH_FIXTURES, REPO
from lumina_nodes.launch_runner import LaunchError, describe_launch_arguments, parse_launch_file
from lumina_nodes.launch_runner.schema import read_launch_file

LAUNCH_FILES = sorted(path for path in (REPO / "launch").iterdir() if path.is_file())

# Arguments a file declares without a default, as its includer gives them.
REQUIRED_ARGUMENTS = {"plaza.launch.xml": {"plaza": "plaza_1", "index": "1"}}


def test_the_launch_directory_is_checked():
    assert {path.name for path in LAUNCH_FILES} >= {"city.launch.xml", "control.launch.xml", "plaza.launch.xml"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_file_uses_only_known_elements_and_attributes(path):
    read_launch_file(str(path))


def argument_variants(path):
    """The defaults, then every choice of every argument that has choices, one argument at a time."""
    required = REQUIRED_ARGUMENTS.get(path.name, {})
    yield required
    for argument in describe_launch_arguments(str(path)):
        for choice in argument.choices or []:
            yield {**required, argument.name: choice}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_file_resolves_for_every_argument_choice(path, tmp_path):
    for arguments in argument_variants(path):
        result = parse_launch_file(str(path), arguments, params_dir=str(tmp_path))
        assert result.processes, arguments
        # a warning here is a parameter file that is not where the launch file says
        assert result.warnings == [], arguments


@pytest.mark.parametrize(
    "fixture, error",
    [
        ("unknown_element.launch.xml", ":4: <parm>: unknown or misplaced element <parm> inside <node>"),
        ("unknown_attribute.launch.xml", ":4: <node>: unexpected attribute(s) ['respwan']"),
    ],
)
def test_unknown_element_or_attribute_is_named_with_file_and_line(fixture, error):
    path = LAUNCH_FIXTURES / fixture
    with pytest.raises(LaunchError) as schema_error:
        read_launch_file(str(path))
    assert str(schema_error.value).startswith(f"{path}{error}")
    # the runner refuses the file with the same message
    with pytest.raises(LaunchError) as parse_error:
        parse_launch_file(str(path))
    assert str(parse_error.value) == str(schema_error.value)


def processes_of(name, arguments, tmp_path):
    """{full node name, else the process label without its number: (executable, generated parameter files)}."""
    result = parse_launch_file(str(REPO / "launch" / name), arguments, params_dir=str(tmp_path))
    assert result.warnings == [], result.warnings
    out = {}
    for spec in result.processes:
        label = spec.name.rsplit("-", 1)[0]
        out[spec.node_name or label] = (spec.cmd[0], [pf.content for pf in spec.param_files if pf.generated])
    return out


def test_control_launch_is_the_city_without_its_plazas(tmp_path):
    """Issue 14: a city on several hosts runs control.launch.xml on its control host (everything but the plazas,
    for the whole city's plazas and jewels) and plaza.launch.xml on each plaza's host (docs/multi_host.md)."""
    city_args = {"plazas": "2", "size": "small", "use_sim_time": "true", "record": str(tmp_path / "bag")}
    control = processes_of("control.launch.xml", city_args, tmp_path)
    assert set(control) == {"recorder", "sim_clock", "synchronizer", "sleeptree_controller", "festival_orchestrator"}
    city = processes_of("city.launch.xml", city_args, tmp_path)
    # the same processes as the whole city's, with the same command lines and parameters: the city's own parts
    assert {name: city[name] for name in control} == control
    assert set(city) - set(control) == {
        f"/plaza_{k}/{node}" for k in (1, 2) for node in ("jewel_driver", "biodream_sensor")
    }
    # sized for the whole city, whose plazas run elsewhere
    assert "initial_capacity: 50" in "".join(control["synchronizer"][1])
    assert "expected_jewels: 50" in "".join(control["festival_orchestrator"][1])
    assert "plazas: 2" in "".join(control["sleeptree_controller"][1])
    # its arguments are the city's, but for local_plazas, which it sets (lumina_launch -s)
    shown = {a.name for a in describe_launch_arguments(str(REPO / "launch" / "control.launch.xml"))}
    city_shown = {a.name for a in describe_launch_arguments(str(REPO / "launch" / "city.launch.xml"))}
    assert shown == city_shown - {"local_plazas"} and {"plazas", "jewels_per_plaza", "scenario"} <= shown
    # city.launch.xml local_plazas:=false is the same thing
    assert processes_of("city.launch.xml", {**city_args, "local_plazas": "false"}, tmp_path) == control
    # and a plaza's host runs that plaza only
    plaza_args = {"plaza": "plaza_2", "index": "2", "jewels_per_plaza": "25", "use_sim_time": "true"}
    plaza = processes_of("plaza.launch.xml", {**plaza_args, "replay_start": "1800000003.0"}, tmp_path)
    assert plaza == {name: city[name] for name in ("/plaza_2/jewel_driver", "/plaza_2/biodream_sensor")}


@pytest.mark.parametrize(
    "name, arguments, message",
    [
        ("city.launch.xml", {"local_plazas": "no"}, 'Argument "local_plazas" provided value "no" is not valid'),
        ("control.launch.xml", {"plazas": "0"}, 'Argument "plazas" provided value "0" is not valid'),
        ("control.launch.xml", {"plazas": "9"}, 'Argument "plazas" provided value "9" is not valid'),
    ],
)
def test_a_city_argument_out_of_its_choices_is_refused_with_a_message(name, arguments, message, tmp_path):
    with pytest.raises(LaunchError, match=message) as refused:
        parse_launch_file(str(REPO / "launch" / name), arguments, params_dir=str(tmp_path))
    assert "Valid options are: [" in str(refused.value)
