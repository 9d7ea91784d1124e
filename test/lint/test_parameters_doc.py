"""docs/parameters.md is generated from the nodes' parameter tables and must be current; every numeric parameter
of every node has a range."""

import subprocess
import sys

import pytest

from harness import REPO


def test_parameters_doc_is_current():
    result = subprocess.run(
        [sys.executable, "-m", "lumina_nodes.nodes.parameters_doc", "--check", str(REPO / "docs" / "parameters.md")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def all_parameters():
    from lumina_nodes.nodes.parameters_doc import node_modules

    return [(m.__name__.rsplit(".", 1)[1], p) for m in node_modules() for p in m.PARAMETERS]


def test_every_node_with_an_executable_has_a_parameter_table():
    from lumina_nodes.nodes.parameters_doc import node_modules

    documented = {m.__name__.rsplit(".", 1)[1] for m in node_modules()}
    config = (REPO / "setup.cfg").read_text()
    executables = {
        line.split("=")[0].strip()
        for line in config.splitlines()
        if "= lumina_nodes.nodes." in line and line.strip().endswith(":main")
    }
    assert executables and executables <= documented, executables - documented


@pytest.mark.parametrize("node, param", all_parameters(), ids=lambda v: getattr(v, "name", v))
def test_every_numeric_parameter_has_a_range(node, param):
    if isinstance(param.default, (int, float)) and not isinstance(param.default, bool) and not param.choices:
        assert param.low is not None and param.high is not None, f"{node}.{param.name} has no range"
        assert param.low <= param.default <= param.high, f"{node}.{param.name}: default outside its range"
