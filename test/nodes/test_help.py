"""Every executable answers --help (and -h) with its usage and exits 0, without starting a node; a node's help
lists every parameter it declares."""

import configparser
import subprocess

import pytest

from harness import REPO, package_executable


def executables():
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return [
        line.split("=")[0].strip() for line in parser["options.entry_points"]["console_scripts"].split("\n") if line
    ]


@pytest.mark.parametrize("executable", executables())
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_executable_answers_help(executable, flag, ros_env):
    run = subprocess.run(
        [package_executable(executable), flag], env=ros_env, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: ") and executable in run.stdout.splitlines()[0]
    assert "up:" not in run.stdout + run.stderr  # no node started (each node logs "... up: ..." when it runs)


def test_a_node_help_lists_every_declared_parameter(ros_env):
    from lumina_nodes.kernels.phase_lock import SyncConfig
    from lumina_nodes.nodes.synchronizer import NODE_PARAMS

    run = subprocess.run(
        [package_executable("synchronizer"), "--help"], env=ros_env, capture_output=True, text=True, timeout=30
    )
    for name in [p.name for p in NODE_PARAMS] + [f.name for f, _ in SyncConfig.settings()]:
        assert f"\n  {name} (default " in run.stdout, name
    assert "  mode (default 'controller'): one of: controller, kuramoto." in run.stdout
    assert "Valid: [0, 100] rad/s." in run.stdout  # the settings' own descriptions and ranges
