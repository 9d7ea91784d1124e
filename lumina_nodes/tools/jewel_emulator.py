"""jewel_emulator: a Sleep Jewel device bus on a pseudo-terminal, for tests and for running the serial driver
without hardware.

    jewel_emulator --jewels 4 --first-id 100 --seed 1 --rate 50 --link /tmp/jewelbus

prints the pty slave path (e.g. /dev/pts/7) as its first stdout line, then serves the protocol of
docs/jewel_protocol.md: answers HELLO with one IDENTIFY per jewel, streams STATE frames (--rate per jewel),
sends a bus HEARTBEAT at 1 Hz, applies COMMAND frames (NACKs bad ones with ERROR). The jewels are a
SleeperModel driven by the wall clock (times --time-scale).

Misbehaviour for tests: --garbage-rate P (random bytes before a frame), --crc-error-rate P (frame with a bad
CRC), --unknown-type-rate P (extra frame of an unknown type), --silent-after S (stop sending), --exit-after S.
SIGINT/SIGTERM: clean exit, status 0. A stats line goes to stderr at exit.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import select
import signal
import sys
import time
import tty
from collections import Counter

from lumina_nodes.backends.jewel import protocol as p
from lumina_nodes.models.sleeper import SleeperModel, SleeperParams

FW = (1, 0, 0)
UNKNOWN_TYPE = 0x60


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="jewel_emulator", description=__doc__.split("\n\n")[0])
    ap.add_argument("--jewels", type=int, default=4, help="number of jewels on the bus (default 4)")
    ap.add_argument("--first-id", type=int, default=1, help="id of the first jewel (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=50.0, help="STATE frames per second per jewel (default 50)")
    ap.add_argument("--link", default=None, help="create this symlink to the pty slave (replaced atomically)")
    ap.add_argument("--comfort-limit", type=float, default=0.25, help="Hz (default 0.25)")
    ap.add_argument("--max-slew", type=float, default=0.5, help="Hz/s (default 0.5)")
    ap.add_argument("--time-scale", type=float, default=1.0, help="model seconds per wall second")
    ap.add_argument("--garbage-rate", type=float, default=0.0)
    ap.add_argument("--crc-error-rate", type=float, default=0.0)
    ap.add_argument("--unknown-type-rate", type=float, default=0.0)
    ap.add_argument("--silent-after", type=float, default=None, help="stop sending after S seconds")
    ap.add_argument("--exit-after", type=float, default=None, help="exit (status 0) after S seconds")
    a = ap.parse_args(argv)
    if a.jewels < 1 or a.first_id < 1 or a.first_id + a.jewels - 1 > 0xFFFFFFFE:
        ap.error("need --jewels >= 1 and ids within 1..0xFFFFFFFE")
    if not (a.rate > 0 and math.isfinite(a.rate)):
        ap.error("--rate must be > 0")
    for name in ("garbage_rate", "crc_error_rate", "unknown_type_rate"):
        if not 0.0 <= getattr(a, name) <= 1.0:
            ap.error(f"--{name.replace('_', '-')} must be in [0, 1]")
    return a


class Emulator:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.ids = list(range(a.first_id, a.first_id + a.jewels))
        self.index = {j: k for k, j in enumerate(self.ids)}
        self.model = SleeperModel(
            a.jewels, seed=a.seed, params=SleeperParams(comfort_limit=a.comfort_limit, max_slew=a.max_slew)
        )
        self.rng = random.Random(a.seed ^ 0x5EED)
        self.decoder = p.StreamDecoder()
        self.stats = Counter()
        self.seqs: dict = {}
        self.stop = False
        self.master = self.slave = -1
        self.path = ""
        self.link_made = False
        self.t0 = time.monotonic()

    # ----------------------------------------------------------------------------------------- pty
    def open(self) -> str:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # raw before anyone writes: no echo, no line discipline
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        if self.a.link:
            tmp = f"{self.a.link}.tmp{os.getpid()}"
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            os.symlink(self.path, tmp)
            os.replace(tmp, self.a.link)
            self.link_made = True
        return self.path

    def close(self) -> None:
        if self.link_made:
            try:
                if os.readlink(self.a.link) == self.path:
                    os.unlink(self.a.link)
            except OSError:
                pass
        for fd in (self.master, self.slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = -1

    def _next_seq(self, jewel_id: int = p.JEWEL_BUS) -> int:
        """Sequence numbers count per jewel_id (docs/jewel_protocol.md), so a gateway can spot lost frames."""
        s = self.seqs[jewel_id] = (self.seqs.get(jewel_id, 0) + 1) & 0xFFFF
        return s

    def send(self, data: bytes) -> None:
        try:
            n = os.write(self.master, data)
            self.stats["bytes_out"] += n
            if n < len(data):
                self.stats["partial_writes"] += 1
        except BlockingIOError:
            self.stats["frames_dropped_full"] += 1  # nobody is reading the slave: drop, never block
        except OSError:
            self.stats["write_errors"] += 1

    def device_us(self) -> int:
        return int((time.monotonic() - self.t0) * 1e6)

    def silent(self) -> bool:
        return self.a.silent_after is not None and time.monotonic() - self.t0 >= self.a.silent_after

    def send_msg(self, msg: p.Message, misbehave: bool = False) -> None:
        if self.silent():
            self.stats["suppressed_silent"] += 1
            return
        a, rng = self.a, self.rng
        out = bytearray()
        if misbehave and a.garbage_rate and rng.random() < a.garbage_rate:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
            self.stats["garbage_sent"] += 1
        bad_crc = bool(misbehave and a.crc_error_rate and rng.random() < a.crc_error_rate)
        self.stats["crc_errors_sent"] += bad_crc
        out += p.encode(msg, corrupt_crc=bad_crc)
        if misbehave and a.unknown_type_rate and rng.random() < a.unknown_type_rate:
            out += p.build_frame(
                UNKNOWN_TYPE, msg.jewel_id, self._next_seq(msg.jewel_id), bytes(rng.randrange(256) for _ in range(6))
            )
            self.stats["unknown_types_sent"] += 1
        self.send(bytes(out))

    # ----------------------------------------------------------------------------------------- protocol
    def identify(self, jewel_ids, nonce: int) -> None:
        for j in jewel_ids:
            self.send_msg(
                p.Identify(
                    j,
                    self._next_seq(j),
                    FW[0],
                    FW[1],
                    FW[2],
                    self.a.comfort_limit,
                    self.a.max_slew,
                    self.a.rate,
                    self.index[j],
                    len(self.ids),
                    nonce,
                )
            )
            self.stats["identify_sent"] += 1

    def nack(self, code: int, ref: p.Message, text: str, jewel_id: int | None = None) -> None:
        self.stats[f"nack_{p.ERROR_NAMES.get(code, code)}"] += 1
        jid = ref.jewel_id if jewel_id is None else jewel_id
        self.send_msg(p.Error(jid, self._next_seq(jid), code, ref.TYPE, ref.seq, text))

    def handle(self, msg: p.Message) -> None:
        self.stats[f"rx_{type(msg).__name__.lower()}"] += 1
        if isinstance(msg, p.Hello):
            if msg.jewel_id in (p.JEWEL_BUS, p.JEWEL_BROADCAST):
                self.identify(self.ids, msg.nonce)
            elif msg.jewel_id in self.index:
                self.identify([msg.jewel_id], msg.nonce)
        elif isinstance(msg, p.Command):
            k = self.index.get(msg.jewel_id)
            if k is None:
                self.nack(p.E_UNKNOWN_JEWEL, msg, "no such jewel on this bus")
            elif not p.finite(msg.frequency_offset, msg.intensity):
                self.nack(p.E_NOT_FINITE, msg, "non-finite command value")
            elif abs(msg.frequency_offset) > self.a.comfort_limit + 1e-6 or not 0.0 <= msg.intensity <= 1.0:
                self.nack(p.E_OUT_OF_RANGE, msg, "offset beyond comfort limit or intensity outside 0..1")
            else:
                self.model.set_offset_target([k], [msg.frequency_offset])
                self.model.set_intensity([k], [msg.intensity])
                self.stats["commands_applied"] += 1

    def on_bytes(self, data: bytes) -> None:
        for msg in self.decoder.feed(data):
            self.handle(msg)
        for e in self.decoder.last_errors[-4:]:  # NACK what the gateway should know about (bounded)
            if e.kind == "unknown_type":
                self.send_msg(
                    p.Error(
                        e.jewel_id,
                        self._next_seq(e.jewel_id),
                        p.E_UNKNOWN_TYPE,
                        e.msg_type & 0xFF,
                        e.seq & 0xFFFF,
                        "unknown message type",
                    )
                )
            elif e.kind == "unsupported_version":
                self.send_msg(
                    p.Error(
                        p.JEWEL_BUS,
                        self._next_seq(),
                        p.E_UNSUPPORTED_VERSION,
                        e.msg_type & 0xFF,
                        e.seq & 0xFFFF,
                        "unsupported major version",
                    )
                )
        self.decoder.last_errors.clear()

    def send_states(self) -> None:
        m = self.model
        t_us = self.device_us()
        freq = m.frequency
        low = m.battery < 15.0
        for k, j in enumerate(self.ids):
            status = p.ST_LOW_BATTERY if low[k] else p.ST_OK
            self.send_msg(
                p.State(
                    j,
                    self._next_seq(j),
                    t_us,
                    float(m.phase[k]),
                    float(freq[k]),
                    float(m.offset[k]),
                    float(m.offset_target[k]),
                    float(m.intensity[k]),
                    status,
                    int(max(0.0, min(100.0, m.battery[k]))),
                ),
                misbehave=True,
            )
            self.stats["states_sent"] += 1

    # ----------------------------------------------------------------------------------------- main loop
    def run(self) -> int:
        a = self.a
        period = 1.0 / a.rate
        next_tick = time.monotonic()
        next_hb = next_tick + 1.0
        last = next_tick
        while not self.stop:
            now = time.monotonic()
            if a.exit_after is not None and now - self.t0 >= a.exit_after:
                break
            timeout = max(0.0, min(next_tick, next_hb) - now)
            try:
                r, _, _ = select.select([self.master], [], [], timeout)
            except InterruptedError:
                continue
            if r:
                try:
                    data = os.read(self.master, 4096)
                except (BlockingIOError, InterruptedError):
                    data = b""
                except OSError:
                    data = b""
                    time.sleep(0.01)
                if data:
                    self.stats["bytes_in"] += len(data)
                    self.on_bytes(data)
            now = time.monotonic()
            if now >= next_tick:
                self.model.advance((now - last) * a.time_scale)
                last = now
                self.send_states()
                next_tick += period
                if next_tick < now - 1.0:  # fell far behind (e.g. suspended): do not burst
                    next_tick = now + period
            if now >= next_hb:
                self.send_msg(p.Heartbeat(p.JEWEL_BUS, self._next_seq(), self.device_us(), 0))
                next_hb += 1.0
        return 0


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    emu = Emulator(a)

    def _stop(signum, frame):
        emu.stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        path = emu.open()
    except OSError as exc:
        print(f"jewel_emulator: cannot open a pty / link: {exc}", file=sys.stderr, flush=True)
        emu.close()
        return 1
    print(path, flush=True)
    try:
        rc = emu.run()
    finally:
        emu.close()
        dec = emu.decoder.stats()
        print(
            "jewel_emulator: " + " ".join(f"{k}={v}" for k, v in sorted({**emu.stats, **dec}.items())),
            file=sys.stderr,
            flush=True,
        )
    return rc


if __name__ == "__main__":
    sys.exit(main())
