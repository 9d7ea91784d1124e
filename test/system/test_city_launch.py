"""End to end: the small city through the launch runner plays the crisis drill and heals."""

import re

import pytest

from harness import package_executable


@pytest.mark.parametrize("clock", ["wall", "sim"])
def test_small_city_locks_detects_and_heals_the_overlapping_frequencies(processes, clock):
    sim_args = ["use_sim_time:=true", "sim_speed:=4.0"] if clock == "sim" else []
    run = processes.start(
        [package_executable("lumina_launch"), "lumina_nodes", "city.launch.xml", "size:=small", *sim_args], name="city"
    )
    assert run.popen.wait(timeout=120) == 0, run.output()
    out = run.output()
    lock = float(re.search(r"time to lock from random phases \(r >= 0.95\)\s+([\d.]+) s", out).group(1))
    detect = float(re.search(r"time to detect the clusters\s+([\d.]+) s", out).group(1))
    heal = float(re.search(r"time to heal \(r >= 0.90, one rhythm\)\s+([\d.]+) s", out).group(1))
    assert lock < 5.0 and detect < 3.0 and heal < 5.0, (lock, detect, heal)
    assert "the city is whole again" in out
    assert re.search(r"process\[crisis_drill-\d+\] exited and has on_exit=.shutdown.", out)
    # synchronizer, 4 drivers, the drill (and the sim clock)
    assert out.count("process has finished cleanly") == 6 + (clock == "sim")


def test_killed_driver_and_synchronizer_respawn_and_the_city_relocks(processes, ros_node):
    import time

    import psutil

    from lumina_nodes.msg import JewelStateBatch, SyncState
    from lumina_nodes.nodes.common import BATCH_QOS, STATE_QOS

    run = processes.start(
        [package_executable("lumina_launch"), "lumina_nodes", "city.launch.xml", "size:=small", "scenario:=watch"],
        name="city",
    )
    states = []
    ros_node.node.create_subscription(SyncState, "/sync/state", states.append, STATE_QOS)
    ros_node.spin_until(
        lambda: states and states[-1].order_parameter >= 0.95 and len(states[-1].plazas) == 4, 30, "the city locked"
    )

    def child(fragment):
        for process in psutil.Process(run.pid).children(recursive=True):
            try:
                if process.status() != psutil.STATUS_ZOMBIE and any(fragment in a for a in process.cmdline()):
                    return process
            except psutil.Error:  # exited while we looked
                continue
        return None

    driver_states = []
    ros_node.node.create_subscription(JewelStateBatch, "/plaza_1/jewels/state", driver_states.append, BATCH_QOS)
    # A restart counts from the first message of the restarted node seen here: the driver's batch counter and
    # the synchronizer's tick counter start again from zero.
    driver_seq = lambda: driver_states[-1].seq if driver_states else 0
    sync_ticks = lambda: states[-1].timing.ticks if states else 0
    for victim, counter in (("__ns:=/plaza_1", driver_seq), ("synchronizer", sync_ticks)):
        old = child(victim)
        assert old is not None, f"no process for {victim}"
        ros_node.spin_for(0.5)
        before = counter()
        old.kill()  # kill -9
        ros_node.spin_until(
            lambda victim=victim, old=old: (c := child(victim)) is not None and c.pid != old.pid,
            15,
            f"{victim} respawned",
        )
        ros_node.spin_until(
            lambda counter=counter, before=before: counter() < before, 15, f"the restarted {victim} publishing"
        )
        back = time.monotonic()

        def relocked():
            return (
                states
                and states[-1].order_parameter >= 0.9
                and len(states[-1].plazas) == 4
                and all(p.jewels_active > 0 for p in states[-1].plazas)
            )

        ros_node.spin_until(relocked, 10, f"the city locked again after {victim} restarted")
        print(f"relocked {time.monotonic() - back:.2f} s after {victim} restarted")
        assert time.monotonic() - back <= 3.0, f"{time.monotonic() - back:.2f} s to relock after {victim}"
    assert run.running()
