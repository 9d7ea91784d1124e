"""SleepTree lighting: render time per frame of 10 trees x 1,000 RGB pixels, and the controller process's CPU share
at 40 Hz with sACN output to a loopback receiver.

1. Render: `TreeRenderer.render` plus `DmxLayout.pack` (the whole frame, every tree, into 60 universes) in this
   process, in each scene and in a cross-fade (two scenes at once), `--frames` frames each.
2. Process: the installed `sleeptree_controller` (backend sacn, 10 trees x 1,000 pixels from a fixture map, 40 Hz)
   in a private DDS domain, fed a /sync/state at 50 Hz with two clusters (the chaos scene), sending E1.31 to a
   receiver on 127.0.0.1:5568 in this process. CPU from the process table over `--duration` s; late frames and the
   frame rate from its /diagnostics; packets counted at the receiver. The same controller with the `sim` backend
   (no network) runs in the same run as the baseline: the ratio is the cost of the sACN output.

Targets: <= 1 ms per frame for all trees together, < 0.3 core, no late frames over 60 s. Last line: one JSON
object with `ms_per_frame`, `cpu_cores`, `frames_late`.

    python bench/sleeptree_render.py [--duration 60] [--frames 2000]
"""

import argparse
import fcntl
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))
from diagnostic_msgs.msg import DiagnosticArray

from harness import PEERS, isolated_graph
from lumina_nodes.backends.sleeptree.fixtures import load_fixtures
from lumina_nodes.kernels.tree_lighting import SCENES, LightingConfig, SyncView, TreeRenderer
from lumina_nodes.msg import ClusterState, PlazaSync, SyncState
from lumina_nodes.nodes.common import STATE_QOS

sys.path.insert(0, str(PEERS))
from sacn_receiver import LOCK_FILE

TREES, PIXELS, FPS = 10, 1000, 40.0
CLUSTERS = ((600, 0.95), (400, 1.05))  # (jewels, Hz)


def fixture_map(path):
    """10 trees of 1,000 pixels in 5 plazas, each tree from slot 1 of its own 6 universes."""
    lines = ["trees:"]
    for k in range(TREES):
        lines += [
            f"  - id: tree_{k + 1}",
            f"    plaza: plaza_{k // 2 + 1}",
            f"    pixels: {PIXELS}",
            "    colour_order: GRB",
            f"    universe: {1 + 6 * k}",
            "    start_channel: 1",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def sync_view(t):
    return SyncView(
        stamp=t,
        order_parameter=0.5,
        mean_phase=float(np.angle(np.exp(2j * np.pi * t))),
        collective_frequency=1.0,
        cluster_ids=np.arange(len(CLUSTERS)),
        cluster_sizes=np.array([c[0] for c in CLUSTERS], float),
        cluster_phases=np.angle(np.exp(2j * np.pi * np.array([c[1] for c in CLUSTERS]) * t)),
        cluster_frequencies=np.array([c[1] for c in CLUSTERS]),
        plaza_order={f"plaza_{q}": 0.5 + 0.1 * q for q in range(1, 6)},
    )


def render_times(fixtures, frames):
    """ms per frame (render + pack) for each scene and for a cross-fade; the slowest is the figure."""
    trees = fixtures.trees
    results = {}
    for scene in (*SCENES, "crossfade"):
        renderer = TreeRenderer([t.plaza for t in trees], [t.pixels for t in trees], LightingConfig(crossfade_s=0.0))
        renderer.request_scene("harmony" if scene == "crossfade" else scene)
        for k in range(50):  # warm-up, states in
            renderer.update_sync(sync_view(k / FPS))
            fixtures.layout.pack(renderer.render(k / FPS, 1 / FPS).rgb)
        if scene == "crossfade":
            renderer.request_scene("chaos")
            renderer.config = LightingConfig(crossfade_s=1e6)  # stays mid-fade: both scenes rendered every frame
        samples = np.empty(frames)
        for k in range(frames):
            t = (50 + k) / FPS
            if k % 5 == 0:
                renderer.update_sync(sync_view(t))
            start = time.perf_counter()
            fixtures.layout.pack(renderer.render(t, 1 / FPS).rgb)
            samples[k] = (time.perf_counter() - start) * 1e3
        results[scene] = {"p50": float(np.percentile(samples, 50)), "p99": float(np.percentile(samples, 99))}
    return results


class LoopbackReceiver:
    """Counts the E1.31 datagrams arriving on 127.0.0.1:5568 (the bench's stand-in for the fixtures); holds the
    port's lock (test/peers/sacn_receiver.py) so a test run at the same time waits instead of losing packets."""

    def __init__(self):
        self.lock = open(LOCK_FILE, "w")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 5568))
        self.sock.settimeout(0.2)
        self.packets, self.running = 0, True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                self.sock.recv(2048)
                self.packets += 1
            except TimeoutError:
                continue

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()
        fcntl.flock(self.lock, fcntl.LOCK_UN)
        self.lock.close()


def sync_message(t, stamp):
    msg = SyncState(order_parameter=0.5, mean_phase=float(np.angle(np.exp(2j * np.pi * t))), collective_frequency=1.0)
    msg.header.stamp = stamp
    for i, (size, frequency) in enumerate(CLUSTERS):
        phase = float(np.angle(np.exp(2j * np.pi * frequency * t)))
        msg.clusters.append(ClusterState(index=i, size=size, center_frequency=frequency, mean_phase=phase))
    msg.plazas = [PlazaSync(driver_id=f"plaza_{q}", order_parameter=0.5 + 0.1 * q) for q in range(1, 6)]
    return msg


def measure_process(backend, fixtures_file, duration):
    with isolated_graph() as (manager, probe):
        controller = manager.start_node(
            "sleeptree_controller", "-p", f"backend:={backend}", "-p", f"fixtures_file:={fixtures_file}"
        )
        publisher = probe.node.create_publisher(SyncState, "/sync/state", STATE_QOS)
        reports = []
        probe.node.create_subscription(
            DiagnosticArray,
            "/diagnostics",
            lambda msg: reports.extend(s for s in msg.status if s.name.endswith("sleeptree_controller: controller")),
            10,
        )
        probe.wait_for_subscribers("/sync/state", timeout=30)
        start = time.monotonic()

        def publish():
            publisher.publish(sync_message(time.monotonic() - start, probe.node.get_clock().now().to_msg()))

        probe.node.create_timer(1 / 50, publish)
        probe.spin_until(lambda: reports, 10, "the controller's diagnostics")
        probe.spin_for(3.0)  # warm-up
        receiver = LoopbackReceiver() if backend == "sacn" else None
        try:
            reports.clear()
            probe.spin_until(lambda: reports, 5, "diagnostics")
            before = {kv.key: kv.value for kv in reports[-1].values}
            process = psutil.Process(controller.pid)
            packets0 = receiver.packets if receiver else 0
            cpu0, t0 = sum(process.cpu_times()[:2]), time.monotonic()
            probe.spin_for(duration)
            cpu1, t1 = sum(process.cpu_times()[:2]), time.monotonic()
            packets = (receiver.packets if receiver else 0) - packets0
            reports.clear()
            probe.spin_until(lambda: reports, 5, "diagnostics")
            after = {kv.key: kv.value for kv in reports[-1].values}
        finally:
            if receiver:
                receiver.close()
        return {
            "backend": backend,
            "cpu_cores": (cpu1 - cpu0) / (t1 - t0),
            "frames_late": int(after["frames_late"]) - int(before["frames_late"]),
            "frames": int(after["frames_sent"]) - int(before["frames_sent"]),
            "frame_rate_hz": float(after["frame_rate_hz"]),
            "render_ms_p99": float(after["render_ms_p99"]),
            "packets_per_s": packets / (t1 - t0),
            "scene": after["scene"],
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per controller run")
    parser.add_argument("--frames", type=int, default=2000, help="frames timed per scene in the render part")
    parser.add_argument("--quick", action="store_true", help="10 s per run, 400 frames per scene")
    args = parser.parse_args(argv)
    duration, frames = (10.0, 400) if args.quick else (args.duration, args.frames)

    with tempfile.TemporaryDirectory() as folder:
        path = fixture_map(Path(folder) / "trees.yaml")
        fixtures = load_fixtures(str(path))
        render = render_times(fixtures, frames)
        print(f"render + pack, {TREES} trees x {PIXELS} pixels, {len(fixtures.universes)} universes (ms per frame)")
        for scene, row in render.items():
            print(f"  {scene:>10}  p50 {row['p50']:.3f}  p99 {row['p99']:.3f}")
        baseline = measure_process("sim", path, duration)
        result = measure_process("sacn", path, duration)
    print(f"\ncontroller process at {FPS:g} Hz, {duration:g} s, scene {result['scene']}")
    print(f"{'backend':>8} {'CPU cores':>10} {'frames/s':>9} {'late':>5} {'packets/s':>10} {'render p99 ms':>14}")
    for row in (baseline, result):
        print(
            f"{row['backend']:>8} {row['cpu_cores']:>10.3f} {row['frame_rate_hz']:>9.2f} {row['frames_late']:>5} "
            f"{row['packets_per_s']:>10.0f} {row['render_ms_p99']:>14.3f}"
        )
    ms_per_frame = max(row["p50"] for row in render.values())
    print(
        f"targets: <= 1 ms per frame ({'met' if ms_per_frame <= 1.0 else 'NOT met'}: slowest scene p50 "
        f"{ms_per_frame:.3f} ms), < 0.3 core ({'met' if result['cpu_cores'] < 0.3 else 'NOT met'}), no late frames "
        f"({'met' if result['frames_late'] == 0 else 'NOT met'}); sACN output vs the sim backend: "
        f"{result['cpu_cores'] / max(baseline['cpu_cores'], 1e-9):.2f}x CPU"
    )
    print(
        json.dumps(
            {
                "ms_per_frame": round(ms_per_frame, 4),
                "ms_per_frame_p99": round(max(row["p99"] for row in render.values()), 4),
                "cpu_cores": round(result["cpu_cores"], 4),
                "frames_late": result["frames_late"],
                "frame_rate_hz": round(result["frame_rate_hz"], 3),
                "packets_per_s": round(result["packets_per_s"], 1),
                "baseline_sim_cpu_cores": round(baseline["cpu_cores"], 4),
                "baseline_sim_frames_late": baseline["frames_late"],
                "duration_s": duration,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
