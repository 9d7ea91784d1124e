"""Lock under late reports and late commands: the phase-locking kernel in the closed loop of
lumina_nodes/models/loop_sim.py (as bench/sync_lock.py), with the loop's delays raised.

Under use_sim_time at 4x a 100 ms stall of one process is 0.4 sim s of delay in the loop; with other nodes on a
2-core machine, reports reached the synchronizer most of a second (sim) late and the city lost its lock. The
kernel carries each report and estimate forward at the rate midway between the jewel's reported frequency and
its commanded one (kernel docstring); this bench measures what that leaves of the lock. Figures are on the
*true* simulated phases after 10 s (the lock is taken at random phases at t = 0): the lowest r over the last
10 s, and t95 (the first time r >= 0.95). The baseline is the same loop with the nominal delays (reports one
tick late, commands at once), in the same run: ``r_min_ratio_to_baseline`` per case.

    python bench/sync_delay.py [--quick] [--jewels 1000] [--seconds 20]

Last line: one JSON object.
"""

import argparse
import json

import numpy as np

from lumina_nodes.kernels.phase_lock import PhaseLockKernel, SyncConfig
from lumina_nodes.models.loop_sim import TICK_S, LoopSim, run_loop

#: (report delay, command delay) in ticks of 20 ms; the first is the baseline
CASES = ((1, 0), (10, 5), (20, 5), (30, 10), (40, 10), (10, 25))
QUICK_CASES = ((1, 0), (20, 5), (40, 10))


def run_case(report_ticks, command_ticks, jewels, seconds, seed):
    sim = LoopSim(jewels, np.random.default_rng(seed))
    kernel = PhaseLockKernel(jewels, SyncConfig())
    # the synchronizer widens its silence window by the skew it measures under sim time (sim_clock_lag_s x speed)
    kernel.set_clock_skew(1.0)
    t, r, _ = run_loop(sim, kernel, seconds, delay_ticks=report_ticks, command_delay_ticks=command_ticks)
    locked = np.nonzero(r >= 0.95)[0]
    return {
        "report_delay_s": round(report_ticks * TICK_S, 3),
        "command_delay_s": round(command_ticks * TICK_S, 3),
        "r_min_last_10s": float(r[t > seconds - 10.0].min()),
        "t95_s": float(t[locked[0]]) if locked.size else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="three cases instead of six")
    parser.add_argument("--jewels", type=int, default=1000, help="simulated jewels (default 1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="loop time per case, s (>= 12; default 20)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.jewels < 1 or args.seconds < 12.0:
        parser.error("--jewels must be >= 1 and --seconds >= 12")
    results = [run_case(*case, args.jewels, args.seconds, args.seed) for case in (QUICK_CASES if args.quick else CASES)]
    base = results[0]["r_min_last_10s"]
    print(f"{'report s':>9} {'command s':>10} {'r min':>7} {'ratio':>6} {'t95 s':>6}")
    for res in results:
        res["r_min_ratio_to_baseline"] = res["r_min_last_10s"] / base
        t95 = "-" if res["t95_s"] is None else f"{res['t95_s']:.2f}"
        print(
            f"{res['report_delay_s']:9.2f} {res['command_delay_s']:10.2f} {res['r_min_last_10s']:7.3f} "
            f"{res['r_min_ratio_to_baseline']:6.3f} {t95:>6}"
        )
    print(json.dumps({"jewels": args.jewels, "seconds": args.seconds, "seed": args.seed, "cases": results}))


if __name__ == "__main__":
    main()
