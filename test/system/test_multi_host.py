"""A city on several hosts: network namespaces joined by veth pairs on a bridge, one host per role.

Hosts (each a network namespace with one interface, ``city0``, on 10.77.0.0/24, no default route; the bridge
lives in a namespace of its own, so nothing here touches the machine's own network):

  ds    10.77.0.1  the Fast DDS discovery server (``fastdds discovery``, from the wheels)
  sync  10.77.0.2  the control host: control.launch.xml (the synchronizer and the festival orchestrator), and the
                   probe that prints the synchronizer's /sync/state (test/peers/sync_state_probe.py)
  p1    10.77.0.3  plaza_1's host: plaza.launch.xml (its jewel driver)
  p2    10.77.0.4  plaza_2's host: plaza.launch.xml (its jewel driver)

Each host runs what docs/multi_host.md's steps say, through lumina_launch.

Every process gets the test's ROS_DOMAIN_ID and what config/dds/multihost.env sets (ROS_DISCOVERY_SERVER, super
clients, SUBNET range, config/dds/fastdds_multihost.xml): the profile has no shared memory, so data between the
namespaces really crosses the veths. Packet loss is iptables' random drop (``tc netem`` is not in this kernel,
so there is no delay emulation). Needs root (``ip netns add``): skipped where that is refused. The namespaces,
links and processes are gone after the module, whatever happened (asserted).
docs/multi_host.md carries the figures this test prints.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import psutil
import pytest

from harness import PEERS, REPO, DomainLease, ProcessManager, child_environment, package_executable

SUBNET = "10.77.0"
HOSTS = {"ds": 1, "sync": 2, "p1": 3, "p2": 4}
DS_PORT = 11811
PLAZAS = {"p1": 1, "p2": 2}
JEWELS = 100  # per plaza
LOCK_R = 0.9
LOSS = 0.1
MODULE_DEADLINE_S = 90.0  # the whole module, set-up to teardown

pytestmark = pytest.mark.skipif(not shutil.which("ip"), reason="no ip command (iproute2) on this machine")


def run(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=20)


class Network:
    """The namespaces, bridge and veth pairs of the test; ``down()`` removes every one of them."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.switch = f"{prefix}-sw"
        self.namespaces = []

    def ns(self, host):
        return f"{self.prefix}-{host}"

    def address(self, host):
        return f"{SUBNET}.{HOSTS[host]}"

    def _add_ns(self, name):
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def up(self):
        self._add_ns(self.switch)
        run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.switch, "link", "set", "br0", "up")
        for host in HOSTS:
            ns, veth = self.ns(host), f"{self.prefix}{host}"
            self._add_ns(ns)
            # made in the root namespace, both ends moved out at once: the host end becomes city0 in its host
            run("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}b")
            run("ip", "link", "set", veth, "netns", ns)
            run("ip", "link", "set", f"{veth}b", "netns", self.switch)
            run("ip", "-n", ns, "link", "set", veth, "name", "city0")
            run("ip", "-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "city0")
            run("ip", "-n", ns, "link", "set", "city0", "up")
            run("ip", "-n", self.switch, "link", "set", f"{veth}b", "master", "br0")
            run("ip", "-n", self.switch, "link", "set", f"{veth}b", "up")
            routes = run("ip", "-n", ns, "route", "show").stdout
            assert "default" not in routes, routes  # only the connected /24: nothing can leave the test's hosts

    def pids(self):
        found = {}
        for name in self.namespaces:
            pids = run("ip", "netns", "pids", name, check=False).stdout.split()
            if pids:
                found[name] = pids
        return found

    def down(self):
        for name in reversed(self.namespaces):
            run("ip", "netns", "del", name, check=False)  # deleting a namespace deletes the veth ends in it

    def leftovers(self):
        namespaces = [n for n in run("ip", "netns", "list").stdout.split() if n.startswith(self.prefix)]
        links = [line for line in run("ip", "-o", "link").stdout.splitlines() if self.prefix in line]
        return namespaces, links


def multihost_environment(server):
    """What config/dds/multihost.env exports, read by sourcing it as a user would."""
    out = run(
        "bash", "-c", 'source "$0" "$1" >/dev/null && env -0', str(REPO / "config/dds/multihost.env"), server
    ).stdout
    names = (
        "ROS_DISCOVERY_SERVER",
        "ROS_SUPER_CLIENT",
        "ROS_AUTOMATIC_DISCOVERY_RANGE",
        "FASTDDS_DEFAULT_PROFILES_FILE",
    )
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {name: env[name] for name in names}


@dataclass
class City:
    net: Network
    processes: ProcessManager
    env: dict
    probe: object = None
    plazas: dict = field(default_factory=dict)
    t_sync: float = 0.0

    def start_plaza(self, host):
        """docs/multi_host.md step 3: the plaza's launch on its host (its driver; no Bio-Dream sensor here)."""
        k = PLAZAS[host]
        self.plazas[host] = self.start(
            host,
            *(package_executable("lumina_launch"), "lumina_nodes", "plaza.launch.xml"),
            *(f"plaza:=plaza_{k}", f"index:={k}", f"jewels_per_plaza:={JEWELS}", "drills:=false", "biodream:=none"),
            name=f"plaza_{k}",
        )
        return self.plazas[host]

    def driver_pid(self, host):
        """The pid of the jewel driver the plaza's launch runs now (None while it has none)."""
        try:
            children = psutil.Process(self.plazas[host].pid).children()
        except psutil.NoSuchProcess:
            return None
        for child in children:
            try:
                if "jewel_driver" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        return None

    def start(self, host, *cmd, name, env=None):
        return self.processes.start(
            ["ip", "netns", "exec", self.net.ns(host), *cmd], name=name, env={**self.env, **(env or {})}
        )

    def states(self, since=0.0):
        """(monotonic time, r, jewels active, jewels total, plazas) of each /sync/state the probe printed."""
        rows = re.findall(r"^state (\S+) (\S+) (\d+) (\d+) (\d+)$", self.probe.output(), re.M)
        rows = [(float(t), float(r), int(a), int(n), int(p)) for t, r, a, n, p in rows]
        return [row for row in rows if row[0] >= since]

    def wait_for(self, predicate, timeout, what, since=0.0):
        """The first state at or after ``since`` for which ``predicate(state)`` holds; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for state in self.states(since):
                if predicate(state):
                    return state
            assert self.probe.running(), self.probe.output()
            time.sleep(0.05)
        last = self.states()[-1:] or "none"
        raise AssertionError(f"no /sync/state with {what} within {timeout} s (last: {last})")


def locked(state):
    """The whole city locked: both plazas' jewels reporting and r at or above the bound."""
    _, r, active, total, plazas = state
    return plazas == len(PLAZAS) and active >= 0.95 * len(PLAZAS) * JEWELS and r >= LOCK_R


def _netns_refusal():
    name = f"lmchk{os.getpid()}"
    result = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if result.returncode != 0:
        return result.stderr.strip() or f"exit {result.returncode}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


@pytest.fixture(scope="module")
def city(request, tmp_path_factory):
    refusal = _netns_refusal()
    if refusal:
        pytest.skip(f"needs root to build the test's hosts: `ip netns add` was refused ({refusal})")
    started = time.monotonic()
    lease = DomainLease()
    tmp = tmp_path_factory.mktemp("multi_host")
    processes = ProcessManager(child_environment(lease.domain_id, tmp), tmp)
    net = Network(f"lm{os.getpid() % 100000}")
    try:
        net.up()
        server = f"{net.address('ds')}:{DS_PORT}"
        c = City(net, processes, multihost_environment(server))
        # fastdds (a Python script) imports its modules from its own folder: PYTHONSAFEPATH (env.sh) would stop it
        ds = c.start(
            "ds",
            *("env", "-u", "PYTHONSAFEPATH", "fastdds", "discovery"),
            *("-i", "0", "-l", net.address("ds"), "-p", str(DS_PORT)),
            name="discovery_server",
        )
        ds.wait_for_output(r"Server started", timeout=15)
        c.probe = c.start("sync", sys.executable, str(PEERS / "sync_state_probe.py"), name="probe")
        for host in PLAZAS:
            c.start_plaza(host)
        c.t_sync = time.monotonic()
        # docs/multi_host.md step 4: the city without its plazas, sized for the whole city
        c.start(
            "sync",
            *(package_executable("lumina_launch"), "lumina_nodes", "control.launch.xml"),
            *(f"plazas:={len(PLAZAS)}", f"jewels_per_plaza:={JEWELS}", "scenario:=watch", "lighting:=none"),
            name="control",
        )
        yield c
    finally:
        processes.stop_all()
        if request.session.testsfailed:
            print(processes.outputs())
        in_namespaces = net.pids()
        leftovers = processes.leftovers()
        for proc in leftovers:
            proc.kill()
        net.down()
        lease.release()
        namespaces, links = net.leftovers()
        elapsed = time.monotonic() - started
        print(f"multi-host module: {elapsed:.1f} s from set-up to teardown")
        assert not leftovers, f"processes outlived the test: {[(p.pid, p.cmdline()) for p in leftovers]}"
        assert not in_namespaces, f"processes left in the test's namespaces: {in_namespaces}"
        assert not namespaces and not links, f"left behind: namespaces {namespaces}, links {links}"
        assert elapsed < MODULE_DEADLINE_S, f"the multi-host test took {elapsed:.1f} s"


def test_city_locks_across_hosts(city):
    state = city.wait_for(locked, timeout=30, what=f"both plazas and r >= {LOCK_R}")
    print(f"multi-host: city locked {state[0] - city.t_sync:.2f} s after the control launch started (r {state[1]:.3f})")
    # it stays locked
    time.sleep(2.0)
    recent = city.states(time.monotonic() - 1.5)
    assert recent and all(locked(s) for s in recent), recent[:5]


def test_killed_driver_comes_back_and_the_city_relocks(city):
    city.wait_for(locked, timeout=20, what="a locked city before the kill")
    victim = city.driver_pid("p1")
    assert victim is not None, city.plazas["p1"].output()
    os.kill(victim, signal.SIGKILL)
    t_kill = time.monotonic()
    # the synchronizer sees plaza_1's jewels go silent, and plaza_1's launch respawns its driver (respawn_delay 1 s)
    city.wait_for(lambda s: s[2] <= JEWELS, timeout=10, what="plaza_1's jewels silent", since=t_kill)
    deadline = time.monotonic() + 10
    while city.driver_pid("p1") in (None, victim):
        assert time.monotonic() < deadline, (
            f"plaza_1's launch did not respawn its driver:\n{city.plazas['p1'].output()}"
        )
        time.sleep(0.02)
    t_restart = time.monotonic()
    back = city.wait_for(
        lambda s: s[2] >= 0.95 * len(PLAZAS) * JEWELS, timeout=20, what="plaza_1's jewels back", since=t_restart
    )
    relock = city.wait_for(locked, timeout=20, what="the city re-locked", since=back[0])
    rejoin_to_lock, restart_to_lock = relock[0] - back[0], relock[0] - t_restart
    print(
        f"multi-host: driver killed, respawned by its launch; its jewels back after {back[0] - t_restart:.2f} s, "
        f"city re-locked {rejoin_to_lock:.2f} s after they rejoined ({restart_to_lock:.2f} s after the restart)"
    )
    assert rejoin_to_lock <= 3.0, rejoin_to_lock
    assert restart_to_lock <= 10.0, restart_to_lock  # generous: a Python node's start-up on a busy 2-core machine


def iptables(city, host, *args):
    return run("ip", "netns", "exec", city.net.ns(host), "iptables", *args)


def test_order_parameter_holds_under_10_percent_packet_loss(city):
    if not shutil.which("iptables"):
        pytest.skip("no iptables (Debian package iptables) to drop packets: loss not emulated (tc netem is absent)")
    city.wait_for(locked, timeout=20, what="a locked city before the loss")
    for host in HOSTS:  # every datagram between two hosts passes one receiver's rule: 10% loss on every path
        iptables(city, host, "-A", "INPUT", "-i", "city0")  # counts what arrives
        iptables(city, host, "-A", "INPUT", "-i", "city0", "-m", "statistic", "--mode", "random",
                 "--probability", str(LOSS), "-j", "DROP")  # fmt: skip
    t_loss = time.monotonic()
    time.sleep(8.0)
    window = city.states(t_loss + 0.5)
    arrived = dropped = 0
    for host in HOSTS:
        rows = iptables(city, host, "-L", "INPUT", "-v", "-n", "-x").stdout.splitlines()[2:]
        counts = [int(row.split()[0]) for row in rows]
        arrived, dropped = arrived + counts[0], dropped + counts[1]
        iptables(city, host, "-F", "INPUT")
    assert len(window) > 200, f"{len(window)} states in 7.5 s of loss"
    lowest = min(s[1] for s in window)
    fewest = min(s[2] for s in window)
    print(
        f"multi-host: {LOSS:.0%} loss on every path ({dropped} of {arrived} datagrams dropped, "
        f"{dropped / max(arrived, 1):.1%}), {len(window)} states in 7.5 s: lowest r {lowest:.3f}, "
        f"fewest jewels active {fewest} of {len(PLAZAS) * JEWELS}"
    )
    assert dropped > 0.05 * arrived, (dropped, arrived)
    assert lowest >= LOCK_R, lowest


@pytest.mark.skip(
    reason="delay between hosts needs tc netem, which this kernel lacks ('Specified qdisc kind is unknown')"
)
def test_order_parameter_holds_under_20_ms_delay():
    """Issue 14 asks for 10% loss and 20 ms delay together; only the loss part can be emulated here."""
