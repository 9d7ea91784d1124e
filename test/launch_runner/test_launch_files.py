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
    assert {path.name for path in LAUNCH_FILES} >= {"city.launch.xml", "plaza.launch.xml"}


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
