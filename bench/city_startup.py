"""City start-up time: from `lumina_launch ... city.launch.xml` to every node matched and commands flowing.

For each preset, starts the city (scenario:=watch) in a private DDS domain and measures, from the launch
command, the time until the synchronizer follows every plaza (SyncState lists them all) and a first command
batch has arrived on every plaza's command topic. The small preset is the baseline of the ratio.
Last line: one JSON object.

    python bench/city_startup.py [--repeats 3]
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))
from harness import isolated_graph, package_executable
from lumina_nodes.msg import JewelCommandBatch, SyncState
from lumina_nodes.nodes.common import BATCH_QOS, STATE_QOS

PLAZAS = 4


def startup_seconds(size):
    with isolated_graph() as (manager, probe):
        first_command, states = {}, []
        for k in range(1, PLAZAS + 1):
            probe.node.create_subscription(
                JewelCommandBatch,
                f"/plaza_{k}/jewels/command",
                lambda msg, k=k: first_command.setdefault(k, time.monotonic()),
                BATCH_QOS,
            )
        probe.node.create_subscription(SyncState, "/sync/state", states.append, STATE_QOS)
        start = time.monotonic()
        manager.start(
            [
                package_executable("lumina_launch"),
                "lumina_nodes",
                "city.launch.xml",
                f"size:={size}",
                f"plazas:={PLAZAS}",
                "scenario:=watch",
            ],
            name=f"city-{size}",
        )
        probe.spin_until(
            lambda: len(first_command) == PLAZAS and states and len(states[-1].plazas) == PLAZAS,
            120,
            f"the {size} city up",
        )
        return max(first_command.values()) - start, states[-1].jewels_total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run per preset")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats

    results = {}
    print(f"{'preset':<8} {'jewels':>7} {'best s':>7} {'runs':>30}")
    for size in ("small", "large"):
        runs = [startup_seconds(size) for _ in range(repeats)]
        seconds = [s for s, _ in runs]
        results[size] = min(seconds)
        print(f"{size:<8} {runs[0][1]:>7} {min(seconds):>7.2f} {' '.join(f'{s:.2f}' for s in seconds):>30}")
    print(f"large vs small: {results['large'] / results['small']:.2f}x")
    print(
        json.dumps(
            {
                "small_s": round(results["small"], 3),
                "large_s": round(results["large"], 3),
                "ratio_large_small": round(results["large"] / results["small"], 3),
                "repeats": repeats,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
