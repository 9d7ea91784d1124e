"""``lumina bag``: record, play, info and reindex rosbag2 bags (MCAP storage), with ``ros2 bag``'s flags."""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import threading
import time

from lumina_nodes.bag import BagError

from .arguments import number

STORAGE_PRESETS = {"none": "none", "fastwrite": "none", "zstd_fast": "zstd", "zstd_small": "zstd"}


def _key_value(text):
    if "=" not in text or not text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return tuple(text.split("=", 1))


def _remap(text):
    if ":=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FROM:=TO, e.g. /old:=/new")
    old, new = text.split(":=", 1)
    if not old.startswith("/") or not new.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r}: both topic names must be absolute (start with /)")
    return old, new


def add_parser(commands) -> None:
    bag = commands.add_parser("bag", help="record and play rosbag2 bags (MCAP)", description=__doc__)
    verbs = bag.add_subparsers(dest="verb", metavar="VERB", required=True)

    record = verbs.add_parser(
        "record",
        help="record topics into a bag",
        description=_record.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    record.add_argument("topics_positional", nargs="*", metavar="TOPIC", help="topics to record")
    record.add_argument("--topics", nargs="+", default=[], metavar="TOPIC", help="topics to record")
    record.add_argument("-a", "--all", "--all-topics", dest="all", action="store_true", help="record every topic")
    record.add_argument("-e", "--regex", default="", help="record the topics matching this regular expression")
    record.add_argument("-x", "--exclude-regex", default="", help="leave out the topics matching this expression")
    record.add_argument("--exclude-topics", nargs="+", default=[], metavar="TOPIC", help="topics to leave out")
    record.add_argument("--include-hidden-topics", action="store_true", help="also record hidden topics (/_...)")
    record.add_argument("-o", "--output", default="", help="bag directory (default rosbag2_YYYY_MM_DD-HH_MM_SS)")
    record.add_argument("-s", "--storage", default="mcap", choices=["mcap"], help="storage (mcap only)")
    record.add_argument(
        "-b",
        "--max-bag-size",
        type=number(int, 0, 2**62),
        default=0,
        metavar="BYTES",
        help="start a new file before one passes this size (0: no limit)",
    )
    record.add_argument(
        "-d",
        "--max-bag-duration",
        type=number(float, 0, 1e9),
        default=0.0,
        metavar="S",
        help="start a new file after this many seconds (0: no limit)",
    )
    record.add_argument(
        "--storage-preset-profile",
        choices=sorted(STORAGE_PRESETS),
        default="none",
        help="MCAP writer preset as in rosbag2: zstd_fast / zstd_small compress the chunks with zstd",
    )
    record.add_argument(
        "--chunk-compression",
        choices=["none", "zstd", "lz4"],
        default=None,
        help="MCAP chunk compression (overrides the preset)",
    )
    record.add_argument(
        "--compression-mode", choices=["none", "file", "message"], default="none", help=argparse.SUPPRESS
    )
    record.add_argument("--compression-format", default="", help=argparse.SUPPRESS)
    record.add_argument(
        "-p",
        "--polling-interval",
        type=number(int, 10, 60_000),
        default=100,
        metavar="MS",
        help="how often to look for new topics, ms (default 100)",
    )
    record.add_argument(
        "--qos-depth",
        type=number(int, 1, 100_000),
        default=1000,
        help="keep-last depth of the recorder's subscriptions (default 1000)",
    )
    record.add_argument(
        "--custom-data",
        nargs="+",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="written into metadata.yaml custom_data",
    )
    record.add_argument("--node-name", default="lumina_bag_recorder", help="name of the recorder node")
    record.set_defaults(run=_record)

    play = verbs.add_parser(
        "play", help="play a bag", description=_play.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    play.add_argument("bag_path", help="bag directory or .mcap file")
    play.add_argument(
        "-r",
        "--rate",
        type=number(float, 0, 1000, low_open=True),
        default=1.0,
        help="playback speed factor, (0, 1000] (default 1)",
    )
    play.add_argument("-l", "--loop", action="store_true", help="play again from the start at the end")
    play.add_argument(
        "--start-offset",
        type=number(float, 0, 1e9),
        default=0.0,
        metavar="S",
        help="start this many seconds into the bag",
    )
    play.add_argument(
        "--playback-duration",
        type=number(float, 0, 1e9),
        default=0.0,
        metavar="S",
        help="play this many seconds of the bag (0: to the end)",
    )
    play.add_argument("--topics", nargs="+", default=None, metavar="TOPIC", help="play only these topics")
    play.add_argument(
        "-m",
        "--remap",
        nargs="+",
        type=_remap,
        default=[],
        metavar="FROM:=TO",
        help="publish a recorded topic under another name",
    )
    play.add_argument(
        "--clock",
        nargs="?",
        type=number(float, 0, 10_000, low_open=True),
        const=40.0,
        default=0.0,
        metavar="HZ",
        help="publish /clock with the bag time at HZ (default 40 when given)",
    )
    play.add_argument(
        "-d", "--delay", type=number(float, 0, 3600), default=0.0, metavar="S", help="wait this long before playing"
    )
    play.add_argument("-p", "--start-paused", action="store_true", help="start paused (SPACE resumes)")
    play.add_argument("--disable-keyboard-controls", action="store_true", help="SPACE does not pause/resume")
    play.add_argument(
        "--read-ahead-queue-size",
        type=number(int, 1, 1_000_000),
        default=1000,
        help="messages read ahead of playback (default 1000)",
    )
    play.add_argument("--node-name", default="lumina_bag_player", help="name of the player node")
    play.set_defaults(run=_play)

    info = verbs.add_parser("info", help="print what a bag holds", description=_info.__doc__)
    info.add_argument("bag_path", help="bag directory or .mcap file")
    info.add_argument("-v", "--verbose", action="store_true", help="also the offered QoS of each topic")
    info.set_defaults(run=_info)

    reindex = verbs.add_parser("reindex", help="recover a bag whose recorder was killed", description=_reindex.__doc__)
    reindex.add_argument("bag_path", help="bag directory")
    reindex.set_defaults(run=_reindex)


def _fail(message: str) -> int:
    print(f"lumina bag: error: {message}", file=sys.stderr)
    return 2


class _StopFlag:
    """SIGINT/SIGTERM set a flag the loop checks (the bag is then closed properly)."""

    def __init__(self):
        self.event = threading.Event()
        self.count = 0
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.count += 1
        self.event.set()


def _init_ros():
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    return rclpy


def _record(args) -> int:
    """Record topics into a rosbag2 bag (MCAP storage), as `ros2 bag record` does.

    Topics by name, -e/--regex or -a/--all (minus -x/--exclude-regex, --exclude-topics); topics that appear later are
    picked up. Ctrl-C or SIGTERM closes the bag. Missed messages (seq gaps of the messages that carry a seq
    counter: Lumina's jewel batches) are printed at the end and written into metadata.yaml (custom_data lumina.*).
    After a kill -9, `lumina bag reindex BAG` recovers every chunk written (chunks close at least once a second)."""
    topics = list(args.topics_positional) + list(args.topics)
    if not (topics or args.all or args.regex):
        return _fail("nothing to record: name topics, or use -a/--all or -e/--regex")
    if args.compression_mode != "none" or args.compression_format:
        return _fail(
            "--compression-mode/--compression-format (rosbag2 file and message compression) are not "
            "supported; MCAP compresses chunks instead: --storage-preset-profile zstd_fast or "
            "--chunk-compression zstd|lz4"
        )
    import re

    for flag, expression in (("--regex", args.regex), ("--exclude-regex", args.exclude_regex)):
        try:
            re.compile(expression)
        except re.error as error:
            return _fail(f"{flag} {expression!r}: not a regular expression ({error})")
    output = args.output or datetime.datetime.now().strftime("rosbag2_%Y_%m_%d-%H_%M_%S")
    compression = args.chunk_compression or STORAGE_PRESETS[args.storage_preset_profile]
    from lumina_nodes.bag.writer import BagWriter

    stop = _StopFlag()
    try:
        writer = BagWriter(
            output,
            compression=compression,
            max_bag_size=args.max_bag_size,
            max_bag_duration=args.max_bag_duration,
            custom_data=dict(args.custom_data),
        )
    except (BagError, ValueError) as error:
        return _fail(str(error))
    rclpy = _init_ros()
    from rclpy.experimental import EventsExecutor

    from lumina_nodes.nodes.bag_recorder import BagRecorder, TopicSelection

    selection = TopicSelection(
        topics, args.regex, args.all, args.exclude_regex, args.exclude_topics, args.include_hidden_topics
    )
    recorder = BagRecorder(writer, selection, qos_depth=args.qos_depth, node_name=args.node_name)
    executor = EventsExecutor()
    executor.add_node(recorder)
    tty = sys.stderr.isatty()
    print(f"[lumina bag] recording into {output} (Ctrl-C to stop)", file=sys.stderr)
    poll = args.polling_interval / 1000.0
    next_poll = next_progress = time.monotonic()
    finished = threading.Event()
    threading.Thread(target=_stop_watchdog, args=(stop, finished, writer, recorder), daemon=True).start()
    try:
        while not stop.event.is_set():
            now = time.monotonic()
            if now >= next_poll:
                recorder.discover()
                next_poll = now + poll
            if tty and now >= next_progress:
                _progress(writer, recorder)
                next_progress = now + 1.0
            executor.spin_once(timeout_sec=0.02)
            writer.tick()
    finally:
        finished.set()
        drops = recorder.drops()
        writer.custom_data.update(recorder.drop_custom_data())
        writer.close()
        if tty:
            sys.stderr.write("\n")
        executor.shutdown(timeout_sec=1.0)
        recorder.destroy_node()
        rclpy.try_shutdown()
    missed = sum(drops.values())
    print(
        f"[lumina bag] closed {output}: {writer.message_count} messages on {len(writer.topics)} topics, "
        f"{writer.bytes_written / 1e6:.1f} MB in {len(writer.files)} files; missed {missed}",
        file=sys.stderr,
    )
    for name, count in sorted(drops.items()):
        if count:
            print(f"[lumina bag]   missed on {name}: {count} (seq gaps)", file=sys.stderr)
    return 0


#: After a stop signal, the recorder's loop must have closed the bag within this many seconds.
STOP_DEADLINE_S = 3.0


def _stop_watchdog(stop, finished, writer, recorder):
    """Close the bag and exit if the loop is stuck in the middleware after a stop signal (it never returned)."""
    stop.event.wait()
    if finished.wait(STOP_DEADLINE_S):
        return
    print(
        f"[lumina bag] ERROR: the recorder did not stop within {STOP_DEADLINE_S:g} s (stuck in the middleware); "
        f"closing {writer.path} from the watchdog",
        file=sys.stderr,
    )
    writer.custom_data.update(recorder.drop_custom_data())
    writer.close()
    os._exit(1)


def _progress(writer, recorder):
    missed = sum(recorder.drops().values())
    sys.stderr.write(
        f"\r[lumina bag] {writer.message_count} messages, {writer.bytes_total / 1e6:.1f} MB, "
        f"{len(writer.topics)} topics, missed {missed}   "
    )
    sys.stderr.flush()


def _play(args) -> int:
    """Play a bag as `ros2 bag play` does: recorded spacing (scaled by --rate), recorded QoS, optional /clock.

    SPACE pauses and resumes when stdin is a terminal. Ctrl-C stops."""
    from lumina_nodes.bag.reader import BagReader

    try:
        reader = BagReader(args.bag_path)
    except BagError as error:
        return _fail(str(error))
    stop = _StopFlag()
    rclpy = _init_ros()
    from lumina_nodes.nodes.bag_player import BagPlayer

    try:
        player = BagPlayer(
            reader,
            topics=args.topics,
            remap=dict(args.remap),
            rate=args.rate,
            start_offset=args.start_offset,
            duration=args.playback_duration,
            loop=args.loop,
            clock_hz=args.clock,
            read_ahead=args.read_ahead_queue_size,
            node_name=args.node_name,
        )
    except (BagError, ValueError) as error:
        rclpy.try_shutdown()
        return _fail(str(error))
    if args.start_paused:
        player.paused.set()
    threading.Thread(target=lambda: (stop.event.wait(), player.stop()), daemon=True).start()
    keyboard = None
    if sys.stdin.isatty() and not args.disable_keyboard_controls:
        keyboard = _Keyboard(player)
        print("[lumina bag] SPACE pauses/resumes, Ctrl-C stops", file=sys.stderr)
    status = 0
    try:
        if args.delay:
            stop.event.wait(args.delay)
        player.wait_for_matching()
        player.play()
    except BagError as error:
        status = _fail(str(error))
    finally:
        if keyboard:
            keyboard.restore()
        late = sorted(player.lateness)
        p99 = late[int(0.99 * (len(late) - 1))] * 1e3 if late else 0.0
        print(f"[lumina bag] played {player.published} messages; lateness p99 {p99:.2f} ms", file=sys.stderr)
        player.destroy_node()
        rclpy.try_shutdown()
    return status


class _Keyboard:
    """SPACE toggles pause; the terminal is put in cbreak mode and restored at the end."""

    def __init__(self, player):
        import termios
        import tty

        self.fd = sys.stdin.fileno()
        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        self.player = player
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            key = os.read(self.fd, 1)
            if not key:
                return
            if key == b" ":
                self.player.toggle_pause()
                print("[lumina bag] paused" if self.player.paused.is_set() else "[lumina bag] resumed", file=sys.stderr)

    def restore(self):
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def _info(args) -> int:
    """Print what a bag holds (from the MCAP summaries: instant on big bags): files, size, duration, start and end,
    messages per topic with types, compression, and the messages the recorder missed."""
    from lumina_nodes.bag.reader import BagReader

    try:
        reader = BagReader(args.bag_path)
    except BagError as error:
        return _fail(str(error))
    print(format_info(reader, verbose=args.verbose))
    return 0


def _stamp(ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)
    return f"{moment:%b %d %Y %H:%M:%S}.{ns % 1_000_000_000:09d} UTC ({ns / 1e9:.9f})"


def format_info(reader, verbose=False) -> str:
    size = sum(f.size for f in reader.files)
    compression = sorted(set().union(*(f.compression for f in reader.files))) if reader.files else []
    custom = reader.custom_data
    lines = [
        f"Files:             {', '.join(f.path.name for f in reader.files)}",
        f"Bag size:          {_size(size)}",
        "Storage id:        mcap",
        f"ROS Distro:        {(reader.metadata or {}).get('ros_distro', 'unknown')}",
        f"Duration:          {(reader.end_ns - reader.start_ns) / 1e9:.9f}s",
        f"Start:             {_stamp(reader.start_ns)}",
        f"End:               {_stamp(reader.end_ns)}",
        f"Messages:          {reader.message_count}",
        f"Chunk compression: {', '.join(compression) or 'none'}",
        f"Missed messages:   {custom.get('lumina.dropped_total', 'not counted (not recorded by lumina bag)')}",
    ]
    first = True
    for topic in reader.topics.values():
        prefix = "Topic information: " if first else "                   "
        first = False
        lines.append(
            f"{prefix}Topic: {topic.name} | Type: {topic.type} | Count: {topic.message_count} | "
            f"Serialization Format: cdr"
        )
        if verbose:
            for q in topic.qos:
                lines.append(
                    f"{'':21}QoS: {q.get('reliability')}, {q.get('durability')}, {q.get('history')} {q.get('depth')}"
                )
    for key, value in sorted(custom.items()):
        if key.startswith("lumina.dropped."):
            lines.append(f"Missed on {key[len('lumina.dropped.') :]}: {value}")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


def _reindex(args) -> int:
    """Recover a bag whose recorder was killed: every complete chunk of each file is kept, the files get their
    summaries back, and metadata.yaml is rebuilt (the originals are kept as *.damaged)."""
    from lumina_nodes.bag.reindex import reindex

    try:
        for line in reindex(args.bag_path):
            print(f"[lumina bag] {line}")
    except BagError as error:
        return _fail(str(error))
    return 0
