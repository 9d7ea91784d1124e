"""``lumina plot BAG``: PNG figures of a recorded night (matplotlib, no display needed).

Written into ``-o DIR`` (default: ``BAG/plots/`` for a bag directory, ``NAME_plots/`` beside a bare ``.mcap``
file), one file per figure, each path printed as it is written:

  order.png       the order parameter r and lock fraction, and the collective frequency, over the night
  clusters.png    the frequency clusters' centre frequencies during the disruption (marker area: jewels in it)
  plazas.png      each plaza's own order parameter, with the plazas' re-locks marked
  hypnograms.png  each Bio-Dream participant's scored sleep stages (and the agreement with the backend's ground
                  truth where /diagnostics reported one)
  trees.png       each SleepTree's mean pixel colour over time, one row per tree

Times are the messages' header stamps (sim seconds under use_sim_time) since the festival program started; the
program's phases (from /festival/state) are shaded and named on every figure. A figure whose topics the bag does
not hold is skipped with a note; a path that is no readable bag is an error (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lumina_nodes.bag import BagError


def add_parser(commands) -> None:
    plot = commands.add_parser(
        "plot",
        help="PNG figures of a recorded night",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plot.add_argument("bag_path", help="bag directory or .mcap file (lumina bag record, make run's log/nights/...)")
    plot.add_argument(
        "-o", "--output", default="", metavar="DIR", help="folder for the PNG files (created; default: BAG/plots/)"
    )
    plot.add_argument("--dpi", type=int, default=110, help="resolution of the PNG files (default 110)")
    plot.set_defaults(run=_plot)


def default_output(bag: Path) -> Path:
    return bag / "plots" if bag.is_dir() else bag.with_name(bag.name.removesuffix(".mcap") + "_plots")


def _fail(message: str) -> int:
    print(f"lumina plot: error: {message}", file=sys.stderr)
    return 2


def _plot(args) -> int:
    from lumina_nodes.plots import extract  # matplotlib and the decoder load only for this verb

    bag = Path(args.bag_path)
    if not 10 <= args.dpi <= 1000:
        return _fail(f"--dpi {args.dpi} is out of range [10, 1000]")
    try:
        night = extract.read_night(bag)
    except BagError as error:
        return _fail(str(error))
    from lumina_nodes.plots import night as figures

    out = Path(args.output) if args.output else default_output(bag)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return _fail(f"{out}: cannot create the output folder: {error.strerror}")
    written = 0
    for spec in figures.FIGURES:
        fig = figures.build(spec, night)
        if fig is None:
            print(figures.skip_note(spec, night))
            continue
        path = out / spec.file
        try:
            figures.save(fig, path, dpi=args.dpi)
        except OSError as error:
            return _fail(f"{path}: cannot write: {error.strerror}")
        print(f"wrote {path}")
        written += 1
    if not written:
        print(f"lumina plot: {bag} holds none of the topics the figures need", file=sys.stderr)
    return 0
