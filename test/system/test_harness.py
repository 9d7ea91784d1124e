"""The harness itself: a process that escapes its graph is caught, in benches (isolated_graph) as in tests."""

import sys
import time

import pytest

from harness import LAUNCH_FIXTURES, isolated_graph, package_executable


def test_isolated_graph_fails_when_a_process_outlives_it():
    with pytest.raises(AssertionError, match="processes outlived the graph") as caught:
        with isolated_graph("harness_probe") as (manager, _):
            # a grandchild in its own session escapes the process-group kill, as an orphaned node would
            manager.start(["sh", "-c", "setsid sleep 60 & sleep 0.2"], name="escaper")
            time.sleep(0.5)
    assert "sleep" in str(caught.value)


def test_a_launch_the_harness_stops_leaves_no_process_behind(tmp_path):
    """Issue 15 item 19: the harness gives a process 5 s after SIGINT, then SIGTERM, then SIGKILL at 10 s, just
    before the launch's own SIGKILL escalation (sigterm_timeout + sigkill_timeout = 10 s): a node holding off
    SIGINT and SIGTERM (loading its modules on a loaded machine) outlived the killed launch with PPID 1. The
    launch now kills what still runs on the harness's SIGTERM, so nothing outlives the graph."""
    pidfile = tmp_path / "pids"
    launch_file = tmp_path / "stubborn.launch.xml"
    launch_file.write_text(
        f'<launch><executable cmd="{sys.executable} {LAUNCH_FIXTURES / "fake_node.py"}" name="stubborn">'
        f'<env name="FAKE_IGNORE" value="INT,TERM"/><env name="FAKE_SLEEP" value="60"/>'
        f'<env name="FAKE_PIDFILE" value="{pidfile}"/></executable></launch>'
    )
    with isolated_graph("harness_probe") as (manager, _):
        launch = manager.start([package_executable("lumina_launch"), str(launch_file)], name="launch")
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pidfile.exists(), launch.output()
    # isolated_graph raised if the stubborn node had outlived it; the launch itself says it had to kill it
    assert "got SIGTERM again during shutdown: killing every process still running" in launch.output()
