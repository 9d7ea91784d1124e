"""Fixtures shared by the whole suite: see harness.py for what they guarantee."""

import os

import psutil
import pytest

from harness import DomainLease, ProcessManager, RosTestNode, child_environment

# The test process's own rclpy contexts discover only on this host, like every child process.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def ros_domain():
    """A DDS domain id no other running test uses."""
    lease = DomainLease()
    yield lease.domain_id
    lease.release()


@pytest.fixture
def ros_env(ros_domain, tmp_path):
    """Environment for child processes of this test."""
    return child_environment(ros_domain, tmp_path)


@pytest.fixture
def processes(request, ros_env, tmp_path):
    """Start processes (nodes, peers) for this test; all are stopped and checked gone at teardown.

    Their captured output is printed when the test fails.
    """
    manager = ProcessManager(ros_env, tmp_path)
    yield manager
    manager.stop_all()
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        print(manager.outputs())
    leftovers = []
    for proc in manager.leftovers():
        try:  # what it was, before it is killed (a killed process is a zombie until reaped: no cmdline then)
            leftovers.append((proc.pid, proc.cmdline(), proc.ppid()))
            proc.kill()
        except psutil.Error:
            pass
    assert not leftovers, f"processes outlived the test (pid, cmdline, parent): {leftovers}"


@pytest.fixture
def ros_node(ros_domain):
    """A ROS node in the test process, in this test's domain."""
    node = RosTestNode(ros_domain)
    yield node
    node.close()
