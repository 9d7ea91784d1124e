"""Multi-process test harness: isolated DDS domains, managed node processes, a ROS node in the test process.

Every process a test starts runs in its own session (process group), in a DDS domain no other running test
uses, with discovery limited to this host. Teardown sends SIGINT, then SIGTERM, then SIGKILL to the whole
group, and a process still alive afterwards (found by a per-test token in its environment) fails the test.
"""

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

# DDS domains handed to tests. 0 (the default) and env.sh's 77 stay free for people running the city.
TEST_DOMAIN_RANGE = range(100, 230)
TOKEN_VARIABLE = "LUMINA_TEST_TOKEN"

# Shared test data, found from any test folder.
TEST_ROOT = Path(__file__).resolve().parent
REPO = TEST_ROOT.parent
PEERS = TEST_ROOT / "peers"
CORPUS = TEST_ROOT / "corpus"
LAUNCH_FIXTURES = TEST_ROOT / "launch_fixtures"


class DomainLease:
    """Holds an exclusive lock on one DDS domain id for the lifetime of a test, across concurrent test runs."""

    def __init__(self, domains=TEST_DOMAIN_RANGE):
        lock_dir = Path(tempfile.gettempdir()) / "lumina-test-domains"
        lock_dir.mkdir(exist_ok=True)
        start = os.getpid() % len(domains)
        for k in range(len(domains)):
            domain = domains[(start + k) % len(domains)]
            handle = open(lock_dir / f"{domain}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.domain_id, self._handle = domain, handle
            return
        raise RuntimeError("no free DDS domain id for this test")

    def release(self):
        self._handle.close()


def package_executable(name, package="lumina_nodes"):
    """Path of ``<prefix>/lib/<package>/<name>`` found through AMENT_PREFIX_PATH, as ``ros2 run`` does."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        path = Path(prefix) / "lib" / package / name
        if prefix and os.access(path, os.X_OK):
            return str(path)
    raise FileNotFoundError(
        f"executable {name!r} of package {package!r} not found in AMENT_PREFIX_PATH "
        "(run make setup, then source env.sh)"
    )


class ManagedProcess:
    """One child process with its output captured to a file."""

    def __init__(self, name, cmd, env, log_dir, stdin=subprocess.DEVNULL):
        self.name, self.cmd = name, list(cmd)
        self.log_path = Path(log_dir) / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            self.cmd,
            env=env,
            stdin=stdin,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self):
        return self.popen.pid

    def output(self):
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def running(self):
        return self.popen.poll() is None

    def wait_for_output(self, pattern, timeout=20.0):
        """Wait until the output matches the regular expression; return the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.output())
            if match:
                return match
            if not self.running():
                raise AssertionError(
                    f"{self.name} exited with {self.popen.returncode} before printing {pattern!r}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not print {pattern!r} within {timeout} s:\n{self.output()}")
            time.sleep(0.05)

    def _signal_group(self, sig):
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, sigint_timeout=5.0, sigterm_timeout=5.0):
        """SIGINT, then SIGTERM, then SIGKILL to the process group; return the exit code of the process."""
        for sig, timeout in ((signal.SIGINT, sigint_timeout), (signal.SIGTERM, sigterm_timeout), (signal.SIGKILL, 5.0)):
            if self.popen.poll() is not None:
                break
            self._signal_group(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
        self._signal_group(signal.SIGKILL)  # grandchildren left in the group
        self._log.close()
        return self.popen.returncode


class ProcessManager:
    """Starts processes for one test in its DDS domain and guarantees none outlives the test."""

    def __init__(self, env, log_dir):
        self.env, self.log_dir = env, Path(log_dir)
        self.processes = []

    def start(self, cmd, name=None, env=None, stdin=subprocess.DEVNULL):
        """Start ``cmd``; ``stdin``: a file descriptor to read from (e.g. a pty's terminal end), default none."""
        name = name or Path(cmd[0]).name
        name = f"{name}-{len(self.processes) + 1}"
        process = ManagedProcess(name, cmd, {**self.env, **(env or {})}, self.log_dir, stdin)
        self.processes.append(process)
        return process

    def start_node(self, executable, *ros_args, name=None, env=None):
        """Start an installed lumina_nodes executable, like ``ros2 run lumina_nodes <executable>``."""
        cmd = [package_executable(executable)]
        if ros_args:
            cmd += ["--ros-args", *ros_args]
        return self.start(cmd, name=name or executable, env=env)

    def start_python(self, script, *args, name=None, env=None):
        return self.start([sys.executable, str(script), *args], name=name or Path(script).stem, env=env)

    def outputs(self):
        return "\n".join(f"----- {p.name} ({' '.join(p.cmd)}) -----\n{p.output()}" for p in self.processes)

    def stop_all(self):
        for process in self.processes:
            process.stop()

    def leftovers(self):
        """Processes still alive that were started by this test (matched by the token in their environment)."""
        token = f"{TOKEN_VARIABLE}={self.env[TOKEN_VARIABLE]}".encode()
        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                with open(f"/proc/{proc.pid}/environ", "rb") as f:
                    if token in f.read().split(b"\0"):
                        found.append(proc)
            except (OSError, psutil.Error):
                continue
        found = [p for p in found if p.pid != os.getpid()]
        # a grandchild SIGKILLed by stop() a moment ago may not be reaped yet: give it a second to go
        _, alive = psutil.wait_procs(found, timeout=1.0)
        return [p for p in alive if _not_zombie(p)]


def _not_zombie(proc):
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def child_environment(domain_id, tmp_path):
    """Environment for the processes of one test: its own domain, loopback discovery, a token, logs in tmp."""
    env = dict(os.environ)
    env.update(
        {
            "ROS_DOMAIN_ID": str(domain_id),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
            "ROS_LOG_DIR": str(tmp_path / "ros_log"),
            "PYTHONUNBUFFERED": "1",
            TOKEN_VARIABLE: uuid.uuid4().hex,
        }
    )
    return env


class RosTestNode:
    """A ROS node in the test process, in the test's domain, with helpers that wait instead of sleeping."""

    def __init__(self, domain_id, name="test_probe"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, predicate, timeout, what="condition"):
        """Spin until ``predicate()`` is true; fail with ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)

    def spin_for(self, duration):
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, deadline - time.monotonic())))

    def wait_for_publishers(self, topic, count=1, timeout=20.0):
        self.spin_until(lambda: self.node.count_publishers(topic) >= count, timeout, f"{count} publisher(s) on {topic}")

    def wait_for_subscribers(self, topic, count=1, timeout=20.0):
        self.spin_until(
            lambda: self.node.count_subscribers(topic) >= count, timeout, f"{count} subscriber(s) on {topic}"
        )

    def close(self):
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@contextlib.contextmanager
def isolated_graph(probe_name="bench_probe"):
    """A private DDS domain with a ProcessManager and a probe RosTestNode, all torn down on exit.

    For benchmarks, which run outside pytest's fixtures. Yields (manager, probe); when the body fails, the
    processes' output is printed to stderr.
    """
    lease = DomainLease()
    tmp = Path(tempfile.mkdtemp(prefix="lumina-"))
    manager = ProcessManager(child_environment(lease.domain_id, tmp), tmp)
    probe = RosTestNode(lease.domain_id, probe_name)
    try:
        yield manager, probe
    except BaseException:
        print(manager.outputs(), file=sys.stderr)
        raise
    finally:
        probe.close()
        manager.stop_all()
        leftovers = []
        for proc in manager.leftovers():
            try:
                leftovers.append((proc.pid, proc.cmdline()))
                proc.kill()
            except psutil.Error:
                pass
        lease.release()
    # as the tests' `processes` fixture: a process that outlives its graph is a defect, not noise
    if leftovers:
        raise AssertionError(f"processes outlived the graph: {leftovers}")
