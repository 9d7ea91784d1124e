"""End to end: the small city through the launch runner plays the crisis drill and heals."""
import re

from harness import package_executable


def test_small_city_locks_detects_and_heals_the_overlapping_frequencies(processes):
    run = processes.start([package_executable('lumina_launch'), 'lumina_nodes', 'city.launch.xml', 'size:=small'],
                           name='city')
    assert run.popen.wait(timeout=120) == 0, run.output()
    out = run.output()
    lock = float(re.search(r'time to lock from random phases \(r >= 0.95\)\s+([\d.]+) s', out).group(1))
    detect = float(re.search(r'time to detect the clusters\s+([\d.]+) s', out).group(1))
    heal = float(re.search(r'time to heal \(r >= 0.90, one rhythm\)\s+([\d.]+) s', out).group(1))
    assert lock < 5.0 and detect < 3.0 and heal < 5.0, (lock, detect, heal)
    assert 'the city is whole again' in out
    assert re.search(r'process\[crisis_drill-\d+\] exited and has on_exit=.shutdown.', out)
    assert out.count('process has finished cleanly') == 6  # synchronizer, 4 drivers, the drill


def test_killed_driver_and_synchronizer_respawn_and_the_city_relocks(processes, ros_node):
    import time

    import psutil
    from lumina_nodes.msg import SyncState
    from lumina_nodes.nodes.common import STATE_QOS

    run = processes.start([package_executable('lumina_launch'), 'lumina_nodes', 'city.launch.xml', 'size:=small',
                           'scenario:=watch'], name='city')
    states = []
    ros_node.node.create_subscription(SyncState, '/sync/state', states.append, STATE_QOS)
    ros_node.spin_until(lambda: states and states[-1].order_parameter >= 0.95 and len(states[-1].plazas) == 4,
                        30, 'the city locked')

    def child(fragment):
        for process in psutil.Process(run.pid).children(recursive=True):
            try:
                if process.status() != psutil.STATUS_ZOMBIE and any(fragment in a for a in process.cmdline()):
                    return process
            except psutil.Error:  # exited while we looked
                continue
        return None

    for victim in ('__ns:=/plaza_1', 'synchronizer'):
        old = child(victim)
        assert old is not None, f'no process for {victim}'
        old.kill()  # kill -9
        ros_node.spin_until(lambda: (c := child(victim)) is not None and c.pid != old.pid, 15,
                            f'{victim} respawned')
        restarted = time.monotonic()
        states.clear()

        def relocked():
            return (states and states[-1].order_parameter >= 0.9 and len(states[-1].plazas) == 4
                    and all(p.jewels_active > 0 for p in states[-1].plazas))

        ros_node.spin_until(relocked, 10, f'the city locked again after {victim} restarted')
        assert time.monotonic() - restarted <= 3.0, f'{time.monotonic() - restarted:.2f} s to relock after {victim}'
    assert run.running()
