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
