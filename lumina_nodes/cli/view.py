"""``lumina view``: the city at a glance in a terminal of 80 columns, live.

On a terminal, one short status line and a per-plaza table redrawn in place (rich), with the latest festival
events and the WARN/ERROR lines every node logs to /rosout below it. Not on a terminal (a pipe, a log file), a
plain status line every ``--period`` seconds and each event or problem as its own line, none longer than 80
characters.

Reads /sync/state, /festival/state and /rosout, so it works on any running city of the domain (the one
``make run`` starts, a replayed bag, a city on other hosts).
"""

from __future__ import annotations

import collections
import copy
import math
import signal
import sys
import time

from lumina_nodes.constants import EventLevel, FestivalStatus

from .arguments import number
from .graph import add_discovery_arguments, graph_session, run_verb

WIDTH = 80
DONE_GRACE_S = 1.0  # --until-done: seconds the view stays after the program ended
#: /rosout levels (rcl_interfaces/msg/Log): WARN 30, ERROR 40, FATAL 50.
LOG_NAMES = {30: "WARN", 40: "ERROR", 50: "FATAL"}
STATUS_NAMES = {v: k.lower() for k, v in FestivalStatus.members().items()}
BARS = " ▏▎▍▌▋▊▉█"


def add_parser(commands) -> None:
    parser = commands.add_parser("view", help="the city live in an 80-column terminal", description=__doc__)
    parser.add_argument(
        "--period", type=number(float, 0.05, 60.0), default=1.0, help="seconds between redraws (0.05..60, default 1)"
    )
    parser.add_argument(
        "--until-done",
        action="store_true",
        help="exit when a festival program that was seen running has finished or been aborted",
    )
    parser.add_argument("--timeout", type=number(float, 0.001, 86400.0), help="exit after this many seconds")
    parser.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    add_discovery_arguments(parser)
    parser.set_defaults(run=run_verb(_view, "view"))


def bar(value: float, width: int) -> str:
    """A bar of ``value`` in 0..1, ``width`` characters, eighths at its end."""
    filled = max(0.0, min(1.0, value if math.isfinite(value) else 0.0)) * width
    full = int(filled)
    partial = BARS[int((filled - full) * 8)] if full < width else ""
    return ("█" * full + partial).ljust(width)


def clip(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class CityView:
    """What the view shows, kept from the messages (duck-typed: any object with the message fields)."""

    def __init__(self, events: int = 6):
        self.sync = None
        self.festival = None
        self.events = collections.deque(maxlen=events)
        self.new_lines = []  # events and problems not yet printed (plain mode)
        self.seen_running = False

    def on_sync(self, msg) -> None:
        self.sync = msg

    def on_festival(self, msg) -> None:
        self.festival = msg
        self.seen_running |= msg.status == FestivalStatus.RUNNING
        for event in msg.events:
            mark = {EventLevel.WARN: "!", EventLevel.ERROR: "X"}.get(event.level, " ")
            self._add(f"{mark} {event.kind}: {event.text}")

    def on_log(self, msg) -> None:
        # the orchestrator's WARN lines are its events, shown from /festival/state already
        if msg.level in LOG_NAMES and not (msg.level == 30 and msg.name.endswith("festival_orchestrator")):
            self._add(f"{LOG_NAMES[msg.level][0]} [{msg.name}] {msg.msg}")

    def _add(self, line: str) -> None:
        self.events.append(line)
        self.new_lines.append(line)

    @property
    def done(self) -> bool:
        return (
            self.seen_running
            and self.festival is not None
            and self.festival.status in (FestivalStatus.FINISHED, FestivalStatus.ABORTED)
        )

    def status_line(self) -> str:
        """One line: festival phase, r, collective frequency, jewels, clusters."""
        phase = "no festival"
        if self.festival is not None and self.festival.status != FestivalStatus.IDLE:
            f = self.festival
            phase = f"{f.phase or STATUS_NAMES.get(f.status, '?')} {f.phase_index + 1}/{f.phase_count}"
            if f.status != FestivalStatus.RUNNING:
                phase = f"{STATUS_NAMES.get(f.status, '?')} ({f.program})"
        if self.sync is None:
            return clip(f"{phase:<22} waiting for /sync/state")
        s = self.sync
        return clip(
            f"{phase:<22} r {s.order_parameter:5.3f} {bar(s.order_parameter, 6)} {s.collective_frequency:6.3f} Hz"
            f"  {s.jewels_active}/{s.jewels_total}  cl {len(s.clusters)}"
        )

    def plaza_rows(self) -> list[tuple[str, ...]]:
        if self.sync is None:
            return []
        return [
            (
                p.driver_id,
                f"{p.jewels_active}/{p.jewels_total}",
                f"{p.order_parameter:5.3f}",
                bar(p.order_parameter, 10),
                f"{100 * p.lock_fraction:5.1f}%",
                f"{p.last_report_age * 1e3:6.0f}",
            )
            for p in sorted(self.sync.plazas, key=lambda p: p.driver_id)
        ]

    def cluster_line(self) -> str:
        if self.sync is None or not self.sync.clusters:
            return "clusters: one rhythm"
        parts = [f"{c.center_frequency:.3f} Hz x{c.size}" for c in self.sync.clusters]
        return clip("clusters: " + ", ".join(parts))

    def plain_lines(self) -> list[str]:
        """Plain mode: the status line, then events and problems since the last call."""
        lines = [clip(line) for line in self.new_lines] + [self.status_line()]
        self.new_lines = []
        return lines

    def renderable(self):
        """Terminal mode: a rich group (status, table, clusters, events) 80 columns wide."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, width=WIDTH, header_style="bold")
        for name, justify in (
            ("plaza", "left"),
            ("jewels", "right"),
            ("r", "right"),
            ("", "left"),
            ("locked", "right"),
            ("age ms", "right"),
        ):
            table.add_column(name, justify=justify, no_wrap=True)
        for row in self.plaza_rows():
            table.add_row(*row)
        events = [Text(clip(line), no_wrap=True, overflow="ellipsis") for line in self.events]
        self.new_lines = []
        return Group(
            Text(self.status_line(), style="bold", no_wrap=True),
            table,
            Text(self.cluster_line(), no_wrap=True),
            *events,
        )


def _stop(signum, frame):
    raise KeyboardInterrupt


def _view(args):
    from rcl_interfaces.msg import Log

    from lumina_nodes.msg import FestivalState, SyncState
    from lumina_nodes.nodes.common import FESTIVAL_QOS, STATE_QOS

    signal.signal(signal.SIGTERM, _stop)  # make run ends the view with SIGTERM: the terminal is restored
    view = CityView()
    live = None
    terminal = sys.stdout.isatty() and not args.plain
    with graph_session(args.spin_time) as graph:
        node = graph.node
        node.create_subscription(SyncState, "/sync/state", view.on_sync, STATE_QOS)
        # FESTIVAL_QOS keeps the latest state for late joiners; a deeper history here keeps every event of a burst
        festival_qos = copy.copy(FESTIVAL_QOS)
        festival_qos.depth = 100
        node.create_subscription(FestivalState, "/festival/state", view.on_festival, festival_qos)
        node.create_subscription(Log, "/rosout", view.on_log, 100)
        if terminal:
            from rich.console import Console
            from rich.live import Live

            live = Live(view.renderable(), console=Console(width=WIDTH), auto_refresh=False)
            live.start()
        end = time.monotonic() + args.timeout if args.timeout else math.inf
        next_draw = time.monotonic()
        try:
            grace_set = False
            while time.monotonic() < end:
                if args.until_done and view.done and not grace_set:
                    # the program's last events and the city's last states may still be on their way
                    end, grace_set = min(end, time.monotonic() + DONE_GRACE_S), True
                graph.executor.spin_once(timeout_sec=0.02)
                if time.monotonic() >= next_draw:
                    next_draw += args.period
                    if live is not None:
                        live.update(view.renderable(), refresh=True)
                    else:
                        print("\n".join(view.plain_lines()), flush=True)
        finally:
            if live is not None:
                live.update(view.renderable(), refresh=True)
                live.stop()
            elif view.new_lines:
                print("\n".join(view.plain_lines()), flush=True)
