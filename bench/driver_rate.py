"""One jewel driver process with 10,000 simulated jewels at 50 Hz: achieved rate, jitter, CPU.

Runs the installed `jewel_driver` as its own process in a private DDS domain, receives its state batches in
this process for `--duration` seconds, and reads the driver's CPU time from the process table. A baseline
driver with 1 jewel runs the same way in the same run, so the cost of the jewels shows as a ratio.
Last line: one JSON object.

    python bench/driver_rate.py [--jewels 10000] [--duration 20]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))
from harness import isolated_graph
from lumina_nodes.msg import JewelStateBatch
from lumina_nodes.nodes.common import BATCH_QOS


def measure(jewels, duration, rate_hz):
    with isolated_graph() as (manager, probe):
        driver = manager.start_node(
            "jewel_driver", "-r", "__ns:=/bench", "-p", f"jewel_count:={jewels}", "-p", f"publish_rate_hz:={rate_hz}"
        )
        arrivals = []
        probe.node.create_subscription(
            JewelStateBatch,
            "/bench/jewels/state",
            lambda msg: arrivals.append((time.monotonic(), msg.header.stamp)),
            BATCH_QOS,
        )
        probe.wait_for_publishers("/bench/jewels/state")
        probe.spin_until(lambda: len(arrivals) >= 10, 20, "first batches")
        process = psutil.Process(driver.pid)
        cpu0, t0, n0 = sum(process.cpu_times()[:2]), time.monotonic(), len(arrivals)
        probe.spin_for(duration)
        cpu1, t1, n1 = sum(process.cpu_times()[:2]), time.monotonic(), len(arrivals)
        stamps = np.array([s.sec + s.nanosec * 1e-9 for _, s in arrivals[n0:n1]])
        intervals = np.diff(stamps)
        return {
            "jewels": jewels,
            "rate_hz": (n1 - n0) / (t1 - t0),
            "jitter_ms": float(intervals.std() * 1e3),
            "max_interval_ms": float(intervals.max() * 1e3),
            "cpu_cores": (cpu1 - cpu0) / (t1 - t0),
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jewels", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="5 s per run")
    args = parser.parse_args(argv)
    duration = 5.0 if args.quick else args.duration

    baseline = measure(1, duration, args.rate)
    result = measure(args.jewels, duration, args.rate)
    print(f"{'jewels':>8} {'rate Hz':>9} {'jitter ms':>10} {'max gap ms':>11} {'CPU cores':>10}")
    for row in (baseline, result):
        print(
            f"{row['jewels']:>8} {row['rate_hz']:>9.2f} {row['jitter_ms']:>10.2f} {row['max_interval_ms']:>11.1f} "
            f"{row['cpu_cores']:>10.3f}"
        )
    print(
        f"target: holds {args.rate:g} Hz with under half a core; CPU vs 1-jewel baseline "
        f"{result['cpu_cores'] / max(baseline['cpu_cores'], 1e-9):.1f}x"
    )
    print(
        json.dumps(
            {
                **{k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()},
                "target_rate_hz": args.rate,
                "baseline_cpu_cores": round(baseline["cpu_cores"], 4),
                "duration_s": duration,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
