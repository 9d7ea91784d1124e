"""One Bio-Dream sensor process, 64 participants x 2 channels at 256 Hz, a scored epoch every second: CPU and
latency from the end of an epoch to its samples' publication.

Runs the installed `biodream_sensor` (sim backend, wall clock) as its own process in a private DDS domain,
receives its /biodream/samples in this process for `--duration` seconds, and reads the sensor's CPU time from
the process table. Latency: the receive time here minus the epoch-end stamp of each participant's sample (both
on this host's clock), so it covers scoring, publishing and delivery: `latency_p99_ms` is the node's own figure
(from its /diagnostics: epoch end to the last sample of the epoch published), `delivery_p99_ms` the receiver's
(to each sample's arrival here, which adds this process's per-message callback cost). A baseline sensor with 1
participant runs the same way in the same run; the cost of the participants shows as a ratio. Last line: one JSON
object.

    python bench/biodream_throughput.py [--participants 64] [--duration 60]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))
from diagnostic_msgs.msg import DiagnosticArray

from harness import isolated_graph
from lumina_nodes.msg import BioDreamSample
from lumina_nodes.nodes.common import SAMPLES_QOS

EPOCH_S = 30.0


def measure(participants, duration, hop_s):
    with isolated_graph() as (manager, probe):
        sensor = manager.start_node(
            "biodream_sensor",
            *("-p", f"participant_count:={participants}", "-p", "channels:=2", "-p", f"hop_s:={hop_s}"),
        )
        latencies = []

        def received(msg):
            latencies.append(time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))

        probe.node.create_subscription(BioDreamSample, "/biodream/samples", received, SAMPLES_QOS)
        reports = []
        probe.node.create_subscription(
            DiagnosticArray,
            "/diagnostics",
            lambda msg: reports.extend(s for s in msg.status if s.name.endswith("biodream_sensor: sensor")),
            10,
        )
        probe.wait_for_publishers("/biodream/samples", timeout=30)
        # the first epoch needs 30 s of EEG; measure from the second one on
        probe.spin_until(lambda: len(latencies) >= 2 * participants, EPOCH_S + 30, "the first scored epochs")
        process = psutil.Process(sensor.pid)
        cpu0, t0, n0 = sum(process.cpu_times()[:2]), time.monotonic(), len(latencies)
        probe.spin_for(duration)
        cpu1, t1, n1 = sum(process.cpu_times()[:2]), time.monotonic(), len(latencies)
        window = np.array(latencies[n0:n1]) * 1e3
        reports.clear()
        probe.spin_until(lambda: reports, 5, "the sensor's diagnostics")
        node = {kv.key: float(kv.value) for kv in reports[-1].values if kv.key.startswith("latency_")}
        return {
            "participants": participants,
            "samples_per_s": (n1 - n0) / (t1 - t0),
            "cpu_cores": (cpu1 - cpu0) / (t1 - t0),
            "latency_p50_ms": node["latency_p50_s"] * 1e3,
            "latency_p99_ms": node["latency_p99_s"] * 1e3,
            "delivery_p50_ms": float(np.percentile(window, 50)),
            "delivery_p99_ms": float(np.percentile(window, 99)),
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=64)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per run (after warm-up)")
    parser.add_argument("--hop", type=float, default=1.0, help="seconds between scored epochs")
    parser.add_argument("--quick", action="store_true", help="10 s per run")
    args = parser.parse_args(argv)
    duration = 10.0 if args.quick else args.duration

    baseline = measure(1, duration, args.hop)
    result = measure(args.participants, duration, args.hop)
    print(
        f"{'participants':>12} {'samples/s':>10} {'CPU cores':>10} {'publish p50':>12} {'publish p99':>12} "
        f"{'delivery p50':>13} {'delivery p99':>13}  (ms)"
    )
    for row in (baseline, result):
        print(
            f"{row['participants']:>12} {row['samples_per_s']:>10.1f} {row['cpu_cores']:>10.3f} "
            f"{row['latency_p50_ms']:>12.1f} {row['latency_p99_ms']:>12.1f} {row['delivery_p50_ms']:>13.1f} "
            f"{row['delivery_p99_ms']:>13.1f}"
        )
    met_cpu, met_latency = result["cpu_cores"] < 0.25, result["latency_p99_ms"] < 100.0
    print(
        f"targets: < 0.25 core ({'met' if met_cpu else 'NOT met'}), p99 < 100 ms "
        f"({'met' if met_latency else 'NOT met'}); CPU vs the 1-participant baseline "
        f"{result['cpu_cores'] / max(baseline['cpu_cores'], 1e-9):.1f}x, p99 vs baseline "
        f"{result['latency_p99_ms'] / max(baseline['latency_p99_ms'], 1e-9):.1f}x"
    )
    print(
        json.dumps(
            {
                **{k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()},
                "baseline_cpu_cores": round(baseline["cpu_cores"], 4),
                "baseline_latency_p99_ms": round(baseline["latency_p99_ms"], 3),
                "duration_s": duration,
                "hop_s": args.hop,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
