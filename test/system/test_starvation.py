"""A city starved of CPU (a hog on both cores, bounded in time) degrades gracefully: no NaN on any topic, and the
lock is back within 3 s of the hog ending (issue 14)."""

import math
import sys
import time

from harness import package_executable

HOG_S = 6.0
HOG = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end:\n    pass\n"


def floats(msg, path=""):
    """(path, value) of every float field of a message, nested messages and sequences included."""
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        if isinstance(value, float):
            yield f"{path}{name}", value
        elif hasattr(value, "get_fields_and_field_types"):
            yield from floats(value, f"{path}{name}.")
        elif isinstance(value, (list, tuple)):
            for k, item in enumerate(value):
                if hasattr(item, "get_fields_and_field_types"):
                    yield from floats(item, f"{path}{name}[{k}].")
        elif hasattr(value, "dtype") and value.dtype.kind == "f":
            for k, item in enumerate(value.tolist()):
                yield f"{path}{name}[{k}]", item


def test_a_city_starved_of_cpu_publishes_no_nan_and_relocks_within_3_s(processes, ros_node):
    from lumina_nodes.msg import JewelCommandBatch, SyncState
    from lumina_nodes.nodes.common import BATCH_QOS, STATE_QOS

    city = processes.start(
        [
            package_executable("lumina_launch"),
            *("lumina_nodes", "city.launch.xml", "size:=small", "scenario:=watch", "lighting:=sim", "biodream:=none"),
        ],
        name="city",
    )
    states, bad = [], []

    def on_state(msg):
        states.append((time.monotonic(), msg.order_parameter))
        bad.extend((p, v) for p, v in floats(msg) if not math.isfinite(v))

    ros_node.node.create_subscription(SyncState, "/sync/state", on_state, STATE_QOS)
    for k in range(1, 5):
        ros_node.node.create_subscription(
            JewelCommandBatch,
            f"/plaza_{k}/jewels/command",
            lambda msg: bad.extend((p, v) for p, v in floats(msg) if not math.isfinite(v)),
            BATCH_QOS,
        )
    ros_node.spin_until(lambda: states and states[-1][1] >= 0.95, 60, "the city locked")
    # two busy processes per core: the city gets about a third of the machine for HOG_S seconds
    hogs = [processes.start([sys.executable, "-c", HOG.format(s=HOG_S)], name="hog") for _ in range(4)]
    ros_node.spin_for(HOG_S)
    for hog in hogs:
        assert hog.popen.wait(timeout=10) == 0
    hog_end = time.monotonic()
    ros_node.spin_until(lambda: states[-1][0] > hog_end and states[-1][1] >= 0.9, 10, "the lock back after the hog")
    relock = states[-1][0] - hog_end
    during = [r for t, r in states if hog_end - HOG_S <= t <= hog_end]
    lowest = min(during, default=float("nan"))
    print(f"starved {HOG_S:g} s: {len(during)} states, lowest r {lowest:.3f}, relock {relock:.2f} s")
    assert not bad, bad[:10]
    assert relock <= 3.0, relock
    # Shut the city down with time to spare: after a starved run a node can take longer than the harness's 5 s
    # SIGINT budget to leave, and a launch killed before its nodes leaves them behind (seen once in CI).
    city.stop(sigint_timeout=30.0, sigterm_timeout=10.0)
