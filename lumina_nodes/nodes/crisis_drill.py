"""Crisis drill: plays the city's famous night on a running city and shows it live.

The city locks; then the overlapping-frequency disruption is injected into every plaza (groups of jewels pushed
into frequency bands that beat against each other); the synchronizer must detect the clusters and heal the
city. The node prints a compact live view every `view_period_s`, then a summary (time to lock, to detect, to
recover) and exits: 0 when the city healed, 1 when a stage timed out. With `scenario:=watch` it only shows the
live view, until Ctrl-C. Launch it with on_exit="shutdown" so the end of the drill ends the launch.

Topics/services: subscribes /sync/state; calls <plaza>/inject_disruption of every plaza in SyncState.plazas.
"""

from rclpy.node import Node

from lumina_nodes.msg import ClusterState, SyncState
from lumina_nodes.nodes.common import STATE_QOS, Param, clock_seconds, declare_parameters, run_node
from lumina_nodes.srv import InjectDisruption

PARAMS = (
    Param(
        "scenario",
        "crisis",
        "crisis: lock, disrupt, heal, summarise, exit; watch: live view only.",
        choices=("crisis", "watch"),
        read_only=True,
    ),
    Param(
        "expected_jewels",
        0,
        "Jewels the city must report before the drill starts (0: any).",
        0,
        10_000_000,
        read_only=True,
    ),
    Param("lock_order_parameter", 0.95, "Order parameter counted as locked.", 0.5, 1.0, read_only=True),
    Param(
        "recovered_order_parameter",
        0.9,
        "Order parameter counted as healed after the disruption.",
        0.5,
        1.0,
        read_only=True,
    ),
    Param("hold_s", 3.0, "Time the city stays locked before the disruption, s.", 0.0, 600.0, read_only=True),
    Param(
        "disruption_fraction",
        1.0,
        "Fraction of each plaza's jewels pushed into overlapping bands.",
        0.0,
        1.0,
        read_only=True,
    ),
    Param("disruption_groups", 2, "Number of beating frequency groups.", 2, 10, read_only=True),
    Param("disruption_separation_hz", 0.1, "Distance between the group centres, Hz.", 0.001, 2.0, read_only=True),
    Param("stage_timeout_s", 60.0, "Longest a stage may take before the drill fails, s.", 1.0, 3600.0, read_only=True),
    Param("view_period_s", 1.0, "Period of the live view, s.", 0.1, 60.0, read_only=True),
)

BAR = " ▏▎▍▌▋▊▉█"


def bar(value, width=8):
    """Unicode bar of value in 0..1."""
    filled = max(0.0, min(1.0, value)) * width
    full = int(filled)
    partial = BAR[int((filled - full) * 8)] if full < width else ""
    return ("█" * full + partial).ljust(width)


class CrisisDrill(Node):
    def __init__(self):
        super().__init__("crisis_drill")
        self.p = declare_parameters(self, PARAMS)
        self.state = None
        self.stage = "waiting for the city"
        self.t0 = None  # node-clock time of the first SyncState
        self.stage_start = None
        self.marks = {}
        self.clients_by_plaza = {}
        self.lowest_r = 1.0  # lowest order parameter while the disruption is being healed
        self.exit_code = None
        self.create_subscription(SyncState, "/sync/state", self._on_state, STATE_QOS)
        self.create_timer(self.p["view_period_s"], self._view)
        self.create_timer(0.05, self._advance)
        print(f"Lumina crisis drill: scenario {self.p['scenario']}. Waiting for the city...", flush=True)

    def _on_state(self, msg):
        if self.state is None:
            self.t0 = self.stage_start = clock_seconds(self)
        self.state = msg
        if self.stage in ("overlapping frequencies injected: detecting", "clusters detected: healing"):
            self.lowest_r = min(self.lowest_r, msg.order_parameter)
        for plaza in msg.plazas:  # clients made early, so their services are discovered before the drill needs them
            if plaza.driver_id not in self.clients_by_plaza:
                self.clients_by_plaza[plaza.driver_id] = self.create_client(
                    InjectDisruption, f"/{plaza.driver_id}/inject_disruption"
                )

    def elapsed(self):
        return clock_seconds(self) - self.t0

    def _enter(self, stage):
        now = clock_seconds(self)
        self.marks[self.stage] = now - self.stage_start
        self.stage, self.stage_start = stage, now
        print(f"[{self.elapsed():7.2f} s] >>> {stage}", flush=True)

    def _advance(self):
        s = self.state
        if s is None or self.exit_code is not None or self.p["scenario"] == "watch":
            return
        in_stage = clock_seconds(self) - self.stage_start
        if self.stage != "waiting for the city" and in_stage > self.p["stage_timeout_s"]:
            self._finish(1, f'stage "{self.stage}" did not finish within {self.p["stage_timeout_s"]:g} s')
            return
        expected = self.p["expected_jewels"]
        if self.stage == "waiting for the city":
            # Simulated links drop out now and then, so 98 % of the expected jewels reporting is "up".
            ready = all(c.service_is_ready() for c in self.clients_by_plaza.values())
            if s.plazas and ready and s.jewels_active > 0 and (not expected or s.jewels_active >= 0.98 * expected):
                self._inject(
                    s, InjectDisruption.Request(kind=InjectDisruption.Request.KIND_PHASE_SCRAMBLE, fraction=1.0, seed=3)
                )
                self._enter("locking from random phases")
        elif self.stage == "locking from random phases":
            if in_stage > 0.2 and s.order_parameter >= self.p["lock_order_parameter"]:
                self._enter("locked: holding")
        elif self.stage == "locked: holding":
            if in_stage >= self.p["hold_s"]:
                self._inject(
                    s,
                    InjectDisruption.Request(
                        kind=InjectDisruption.Request.KIND_OVERLAPPING_FREQUENCIES,
                        fraction=self.p["disruption_fraction"],
                        groups=self.p["disruption_groups"],
                        separation=self.p["disruption_separation_hz"],
                        seed=7,
                    ),
                )
                self._enter("overlapping frequencies injected: detecting")
        elif self.stage == "overlapping frequencies injected: detecting":
            if len(s.clusters) >= 2:
                self._enter("clusters detected: healing")
        elif self.stage == "clusters detected: healing":
            resolved = all(c.resolution != ClusterState.RESOLUTION_NONE for c in s.clusters)
            if s.order_parameter >= self.p["recovered_order_parameter"] and resolved:
                self._enter("healed")
                how = {c.resolution for c in s.clusters}
                self._finish(
                    0,
                    "the city is whole again: "
                    + (
                        "the clusters were pulled onto one rhythm"
                        if how == {ClusterState.RESOLUTION_MERGING}
                        else "the clusters pulse on distinct channels"
                    ),
                )

    def _inject(self, s, request):
        """Send ``request`` to the inject_disruption service of every plaza; the answers are printed."""
        for plaza in s.plazas:
            client = self.clients_by_plaza[plaza.driver_id]
            if not client.service_is_ready():
                print(f"  ! plaza {plaza.driver_id}: inject_disruption service not available", flush=True)
                continue
            future = client.call_async(request)
            future.add_done_callback(
                lambda f, name=plaza.driver_id: print(
                    f"  {name}: {f.result().message if f.result() else f.exception()}", flush=True
                )
            )

    def _view(self):
        s = self.state
        if s is None:
            return
        clusters = ", ".join(f"{c.center_frequency:.3f} Hz x{c.size}" for c in s.clusters) or "-"
        plazas = "  ".join(f"{p.driver_id} {bar(p.order_parameter, 5)} {p.order_parameter:.2f}" for p in s.plazas)
        print(
            f"[{self.elapsed():7.2f} s] r {bar(s.order_parameter)} {s.order_parameter:.3f}  "
            f"rhythm {s.collective_frequency:.3f} Hz  locked {s.lock_fraction * 100:5.1f}%  "
            f"jewels {s.jewels_active}/{s.jewels_total}  clusters [{clusters}]  loop p99 "
            f"{s.timing.latency_p99 * 1e3:.1f} ms | {plazas}",
            flush=True,
        )

    def _finish(self, code, reason):
        self.exit_code = code
        m = self.marks
        print("\n=== Lumina crisis drill summary ===", flush=True)
        for label, key in (
            ("city up (all plazas reporting)", "waiting for the city"),
            (
                f"time to lock from random phases (r >= {self.p['lock_order_parameter']:.2f})",
                "locking from random phases",
            ),
            ("time to detect the clusters", "overlapping frequencies injected: detecting"),
            (
                f"time to heal (r >= {self.p['recovered_order_parameter']:.2f}, one rhythm)",
                "clusters detected: healing",
            ),
        ):
            print(f"  {label:<46} {m[key]:7.2f} s" if key in m else f"  {label:<46}       -", flush=True)
        if "clusters detected: healing" in m:
            print(f"  {'lowest r during the disruption':<46} {self.lowest_r:7.3f}", flush=True)
        print(f"  result: {reason}", flush=True)
        raise SystemExit(code)


def main(args=None):
    return run_node(CrisisDrill, args)
