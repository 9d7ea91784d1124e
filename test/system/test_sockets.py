"""Every socket of a running city, listed: nothing listens beyond loopback (docs/security.md says what is bound)."""

import ipaddress
import os
import time
from pathlib import Path

import psutil
import pytest

from harness import DomainLease, package_executable

# DDS ports of domain d (RTPS port mapping): 7400 + 250 d .. 7400 + 250 (d + 1) - 1
PORT_BASE, DOMAIN_GAIN = 7400, 250


@pytest.fixture
def ros_domain():
    """A domain whose DDS ports all lie below the kernel's ephemeral port range (a test-only range, 80-99, beside
    the harness's 100-229). A send-only socket's ephemeral port then never falls among the domain's receive ports:
    in domain 153 a driver's send socket on 192.0.2.2:45808 was taken for a DDS receive socket (a CI run)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    domains = range(80, min(100, (low - PORT_BASE) // DOMAIN_GAIN))
    if not domains:
        pytest.skip(f"the ephemeral port range starts at {low}: no domain's DDS ports lie below it")
    lease = DomainLease(domains)
    yield lease.domain_id
    lease.release()


def city_sockets(root_pid):
    """(process name, kind, local address) of every inet socket of the launch and its descendants."""
    root = psutil.Process(root_pid)
    found = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            cmdline = proc.cmdline()
            name = f"{proc.pid} {os.path.basename(cmdline[1] if len(cmdline) > 1 else proc.name())}"
            for conn in proc.net_connections(kind="inet"):
                kind = "tcp" if conn.type == 1 else "udp"
                found.append((name, kind, conn.status, conn.laddr.ip, conn.laddr.port))
        except psutil.Error:
            continue
    return found


def test_a_running_city_listens_on_loopback_only(processes, ros_domain):
    run = processes.start(
        [
            package_executable("lumina_launch"),
            *("lumina_nodes", "city.launch.xml", "size:=small", "scenario:=watch"),
            *("foxglove:=true", "foxglove_port:=0"),  # every kind of node, the E1.31 sender and the WebSocket bridge
        ],
        name="city",
    )
    run.wait_for_output(r"synchronizer\].*following driver /plaza_4", timeout=60)
    run.wait_for_output(r"foxglove bridge up", timeout=60)
    # every node of the city has its sockets: 4 drivers, 4 Bio-Dream sensors, the synchronizer, the trees, the
    # festival and the bridge (the sensors come last: they import scipy first)
    deadline = time.monotonic() + 60
    while len({s[0] for s in city_sockets(run.pid)}) < 12 and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)
    sockets = city_sockets(run.pid)
    assert len({s[0] for s in sockets}) >= 12, sorted({s[0] for s in sockets})
    # DDS's well-known ports of this domain (discovery and user data, every participant id)
    dds = range(PORT_BASE + DOMAIN_GAIN * ros_domain, PORT_BASE + DOMAIN_GAIN * (ros_domain + 1))
    beyond = []
    for name, kind, status, ip, port in sockets:
        loopback = ipaddress.ip_address(ip).is_loopback
        if kind == "tcp" and status == psutil.CONN_LISTEN and not loopback:
            beyond.append((name, "TCP listener", ip, port))
        if kind == "udp" and not loopback and (port in dds or ipaddress.ip_address(ip).is_multicast):
            beyond.append((name, "DDS receive socket", ip, port))
    assert not beyond, beyond
    # what remains beyond loopback is rmw_fastrtps's send-only UDPv4 pair per participant (docs/security.md)
    send_only = [(n, ip) for n, kind, _, ip, _ in sockets if kind == "udp" and not ipaddress.ip_address(ip).is_loopback]
    per_process = {n: [ip for m, ip in send_only if m == n] for n in {n for n, _ in send_only}}
    assert all(len(ips) == len(set(ips)) for ips in per_process.values()), per_process
