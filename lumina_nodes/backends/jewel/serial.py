"""`serial` jewel backend: a gateway speaking docs/jewel_protocol.md to a device bus over pyserial (no rclpy).

* A reader thread (default; ``reader_thread=False`` makes ``poll()`` read instead) opens the port, sends HELLO,
  reads whatever bytes arrived, decodes them with the incremental StreamDecoder and keeps the latest STATE per
  jewel. It re-sends HELLO every ``hello_interval`` until jewels identified themselves (and for any jewel that
  reports without having identified), and sends a gateway HEARTBEAT every ``heartbeat_interval``.
* Any error of the port (it vanished, read/write failed, could not be opened) closes it and retries the open
  with exponential backoff ``reconnect_initial`` * 2^n, capped at ``reconnect_max``; the backoff resets once a
  valid frame arrives on the new connection. Nothing raises out of the backend; everything is counted and
  shown by ``diagnostics()``.
* Device time -> host time: per jewel, offset = min over reports of (host receive time - device time), with a
  small allowance for clock drift (``drift_allowance`` s/s); a device clock going backwards (device restart)
  resets it. The measurement time of a report is device time + offset on the host monotonic clock, and
  ``sample_age`` = host monotonic now - that (so queueing delay on the host shows up, transit latency below
  the best-seen one does not). Ages are real seconds whatever the caller's clock is.
* A jewel is STALE when no valid STATE arrived from it for ``stale_timeout`` s (or the port is down); FAULT
  when its device reports FAULT or its last STATE carried non-finite values (those values are never used);
  LOW_BATTERY as the device reports. A snapshot holds the jewels that have sent at least one valid STATE.
* Commands are validated exactly like every backend (see commands.validate_command). A jewel's comfort limit is
  the stricter of the ``comfort_limit`` parameter and the limit in its IDENTIFY (``max_slew`` is the
  assumed slew until IDENTIFY says otherwise; informational, the device does the slewing); accepted elements
  are sent as COMMAND frames, or rejected as ``link_down`` when the port is not connected or the write fails.
  Device NACKs (ERROR frames) are counted per code.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...constants import DiagnosticLevel, JewelStatus
from ...phase import wrap_phase
from . import protocol as p
from .base import Diagnostic, JewelBackend, JewelSnapshot
from .commands import REJECT_REASONS, CommandResult, validate_command

try:  # pyserial is only needed when the default factory is used
    import serial  # type: ignore
except ImportError:  # pragma: no cover
    serial = None


@dataclass
class _Jewel:
    jewel_id: int
    identified: bool = False
    fw: str = "?"
    comfort_limit: float = 0.25
    max_slew: float = 0.5
    state_rate: float = 0.0
    has_state: bool = False
    phase: float = 0.0
    frequency: float = 0.0
    offset: float = 0.0
    offset_target: float = 0.0
    intensity: float = 0.0
    dev_status: int = 0
    battery: int = 0
    rx_mono: float = -math.inf  # host time the last valid STATE arrived
    meas_mono: float = -math.inf  # host time the last valid STATE was measured (mapped device time)
    clock_off: float | None = None
    last_dev_t: float = -math.inf
    invalid: bool = False  # last STATE had non-finite values
    states: int = 0
    states_polled: int = 0  # `states` at the last poll: no new STATE since then makes the element STALE
    last_seq: int = -1
    seq_gaps: int = 0
    hello_asked: float = -math.inf


def _default_factory(port: str, baudrate: int, timeout: float, write_timeout: float):
    if serial is None:
        raise RuntimeError("pyserial is not installed")
    return serial.serial_for_url(port, baudrate=baudrate, timeout=timeout, write_timeout=write_timeout)


class SerialJewelBackend(JewelBackend):
    name = "serial"

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        first_id: int | None = None,
        count: int | None = None,
        stale_timeout: float = 0.5,
        hello_interval: float = 1.0,
        heartbeat_interval: float = 1.0,
        reconnect_initial: float = 0.1,
        reconnect_max: float = 5.0,
        reader_thread: bool = True,
        comfort_limit: float = 0.25,
        max_slew: float = 0.5,
        read_timeout: float = 0.05,
        write_timeout: float = 0.2,
        drift_allowance: float = 1e-4,
        serial_factory: Callable | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not port:
            raise ValueError("serial backend needs a port (device path or pyserial URL)")
        for name, v in (
            ("stale_timeout", stale_timeout),
            ("hello_interval", hello_interval),
            ("heartbeat_interval", heartbeat_interval),
            ("reconnect_initial", reconnect_initial),
            ("reconnect_max", reconnect_max),
        ):
            if not (math.isfinite(float(v)) and float(v) > 0):
                raise ValueError(f"{name} must be finite and > 0, got {v}")
        for name, v in (("comfort_limit", comfort_limit), ("max_slew", max_slew)):
            if not (math.isfinite(float(v)) and float(v) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        if (first_id is None) != (count is None):
            raise ValueError("give both first_id and count (the accepted id range), or neither")
        self.port = str(port)
        self.baudrate = int(baudrate)
        self.id_range: tuple[int, int] | None = None
        if first_id is not None:
            self.id_range = (int(first_id), int(first_id) + int(count))  # [lo, hi)
        self.stale_timeout = float(stale_timeout)
        self.hello_interval = float(hello_interval)
        self.heartbeat_interval = float(heartbeat_interval)
        self.reconnect_initial = float(reconnect_initial)
        self.reconnect_max = max(float(reconnect_max), float(reconnect_initial))
        self.use_thread = bool(reader_thread)
        # used for a jewel until its IDENTIFY tells its own limits; the gateway never allows more than this
        self.default_limit = float(comfort_limit)
        self.default_slew = float(max_slew)
        self.read_timeout = float(read_timeout)
        self.write_timeout = float(write_timeout)
        self.drift_allowance = float(drift_allowance)
        self._factory = serial_factory or _default_factory
        self._clock = clock

        self._lock = threading.RLock()  # jewel records, counters, connection state
        self._wlock = threading.Lock()  # writes to the port
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ser = None
        self.connected = False
        self._backoff = self.reconnect_initial
        self._next_open = -math.inf
        self._got_frame_since_open = False
        self._last_hello = -math.inf
        self._last_hb = -math.inf
        self._seqs: dict[int, int] = {}
        self._nonce = 0
        self.decoder = p.StreamDecoder()
        self.jewels: dict[int, _Jewel] = {}
        self.counters: Counter = Counter()
        self.cmd_rejected: Counter = Counter()
        self.nacks: Counter = Counter()
        self.last_error = ""
        self.last_nack = ""
        self.last_command_message = ""
        self._diag_err_seen = 0
        self.started = False

    # ----------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self.started:
            return
        self.started = True
        self._stop.clear()
        if self.use_thread:
            self._thread = threading.Thread(target=self._run, name=f"jewel-serial:{self.port}", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        with self._lock:
            self._close_port()
        self.started = False

    # ----------------------------------------------------------------------------------------- port
    def _close_port(self) -> None:
        ser, self._ser = self._ser, None
        self.connected = False
        if ser is not None:
            try:
                ser.close()
            except Exception:
                pass

    def _try_open(self, now: float) -> None:
        try:
            ser = self._factory(self.port, self.baudrate, self.read_timeout, self.write_timeout)
        except Exception as exc:
            with self._lock:
                self.counters["open_failures"] += 1
                self.last_error = f"open {self.port}: {exc}"
                self._schedule_reopen(now)
            return
        with self._lock:
            self._ser = ser
            self.connected = True
            self._got_frame_since_open = False
            self.decoder.reset()
            self.counters["opens"] += 1
            if self.counters["opens"] > 1:
                self.counters["reconnects"] += 1
            self._last_hello = -math.inf
        self._periodic(now)

    def _schedule_reopen(self, now: float) -> None:
        self._next_open = now + self._backoff
        self._backoff = min(self._backoff * 2.0, self.reconnect_max)

    def _lost(self, exc: BaseException, where: str) -> None:
        with self._lock:
            if self._ser is None:
                return
            self.counters["disconnects"] += 1
            self.last_error = f"{where}: {exc}"
            self._close_port()
            self.decoder.reset()
            for j in self.jewels.values():
                # the device may restart, or be swapped, while we are away: a new clock, and a new IDENTIFY to
                # ask for (HELLO on reconnect, docs/jewel_protocol.md section 5) with its own comfort limit
                j.clock_off = None
                j.identified = False
                j.hello_asked = -math.inf
            self._schedule_reopen(self._clock())

    def _write(self, data: bytes, where: str) -> bool:
        ser = self._ser
        if ser is None:
            return False
        try:
            with self._wlock:
                ser.write(data)
            with self._lock:
                self.counters["bytes_out"] += len(data)
            return True
        except Exception as exc:
            if serial is not None and isinstance(exc, serial.SerialTimeoutException):
                with self._lock:
                    self.counters["write_timeouts"] += 1
                    self.last_error = f"{where}: write timeout"
                return False
            self._lost(exc, where)
            return False

    def _next_seq(self, jewel_id: int = p.JEWEL_BUS) -> int:
        """Per jewel_id sequence counters (docs/jewel_protocol.md)."""
        with self._lock:
            s = self._seqs[jewel_id] = (self._seqs.get(jewel_id, 0) + 1) & 0xFFFF
        return s

    def _send_hello(self, jewel_id: int = p.JEWEL_BUS) -> None:
        self._nonce = (self._nonce + 1) & 0xFFFFFFFF
        if self._write(p.encode(p.Hello(jewel_id, self._next_seq(jewel_id), nonce=self._nonce)), "hello"):
            with self._lock:
                self.counters["hello_sent"] += 1

    def _periodic(self, now: float) -> None:
        if self._ser is None:
            return
        with self._lock:
            need_hello = (
                not any(j.identified for j in self.jewels.values()) and now - self._last_hello >= self.hello_interval
            )
            ask = []
            for j in self.jewels.values():
                if not j.identified and j.has_state and now - j.hello_asked >= self.hello_interval:
                    j.hello_asked = now
                    ask.append(j.jewel_id)
            if need_hello:
                self._last_hello = now
            hb = now - self._last_hb >= self.heartbeat_interval
            if hb:
                self._last_hb = now
        if need_hello:
            self._send_hello()
        for jid in ask[:8]:
            self._send_hello(jid)
        if hb:
            if self._write(
                p.encode(p.Heartbeat(p.JEWEL_BUS, self._next_seq(), int(now * 1e6) & (2**64 - 1), 0)), "heartbeat"
            ):
                with self._lock:
                    self.counters["heartbeats_sent"] += 1

    def _pump(self, blocking: bool) -> None:
        """One round: open if due, read what is there, handle it, periodic sends. Never raises."""
        now = self._clock()
        if self._ser is None:
            if now >= self._next_open:
                self._try_open(now)
            if self._ser is None:
                if blocking:
                    self._stop.wait(max(0.0, min(0.05, self._next_open - now)))
                return
        ser = self._ser
        try:
            if blocking:
                n = ser.in_waiting
                data = ser.read(n if n > 0 else 1)  # waits up to read_timeout for the first byte
                if data:
                    n = ser.in_waiting
                    if n > 0:
                        data += ser.read(n)
            else:
                n = ser.in_waiting
                data = ser.read(n) if n > 0 else b""
        except Exception as exc:
            self._lost(exc, "read")
            return
        if data:
            self._on_bytes(data, self._clock())
        self._periodic(self._clock())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._pump(blocking=True)
            except Exception as exc:
                with self._lock:
                    self.counters["internal_errors"] += 1
                    self.last_error = f"internal: {exc!r}"
                self._stop.wait(0.05)

    # ----------------------------------------------------------------------------------------- decode
    def _accept_id(self, jid: int) -> bool:
        return self.id_range is None or self.id_range[0] <= jid < self.id_range[1]

    def _on_bytes(self, data: bytes, rx: float) -> None:
        with self._lock:
            msgs = self.decoder.feed(data)
            if msgs and not self._got_frame_since_open:
                self._got_frame_since_open = True
                self._backoff = self.reconnect_initial
            for m in msgs:
                self._handle(m, rx)
            self.decoder.last_errors.clear()

    def _jewel(self, jid: int) -> _Jewel | None:
        if not self._accept_id(jid) or jid in (p.JEWEL_BUS, p.JEWEL_BROADCAST):
            self.counters["foreign_id_frames"] += 1
            return None
        j = self.jewels.get(jid)
        if j is None:
            j = self.jewels[jid] = _Jewel(jid, comfort_limit=self.default_limit, max_slew=self.default_slew)
        return j

    def _track_seq(self, m: p.Message) -> None:
        j = self.jewels.get(m.jewel_id)
        if j is not None and isinstance(m, (p.State, p.Identify, p.Error)):
            if j.last_seq >= 0 and ((m.seq - j.last_seq) & 0xFFFF) > 1:
                j.seq_gaps += 1
            j.last_seq = m.seq

    def _handle(self, m: p.Message, rx: float) -> None:
        self._track_seq(m)
        if isinstance(m, p.State):
            self.counters["states_rx"] += 1
            j = self._jewel(m.jewel_id)
            if j is None:
                return
            if not p.finite(m.phase, m.frequency, m.frequency_offset, m.intensity):
                j.invalid = True
                self.counters["states_invalid"] += 1
                return
            dev_t = m.device_time_us * 1e-6
            sample_off = rx - dev_t
            if j.clock_off is None or dev_t < j.last_dev_t:
                if j.clock_off is not None:
                    self.counters["device_clock_resets"] += 1
                j.clock_off = sample_off
            else:
                j.clock_off = min(j.clock_off + self.drift_allowance * max(rx - j.rx_mono, 0.0), sample_off)
            j.last_dev_t = dev_t
            # a later STATE was measured later: the offset filter's corrections never move a sample before the
            # one already delivered (the synchronizer would reject it as out of order)
            j.meas_mono = max(dev_t + j.clock_off, j.meas_mono)
            j.rx_mono = rx
            j.invalid = False
            j.has_state = True
            j.phase = wrap_phase(m.phase)
            j.frequency, j.offset, j.offset_target = m.frequency, m.frequency_offset, m.offset_target
            j.intensity, j.dev_status, j.battery = m.intensity, m.status, m.battery
            j.states += 1
        elif isinstance(m, p.Identify):
            self.counters["identify_rx"] += 1
            j = self._jewel(m.jewel_id)
            if j is None:
                return
            j.identified = True
            j.fw = f"{m.fw_major}.{m.fw_minor}.{m.fw_patch}"
            # the effective limit is the stricter of the device's and the gateway's (comfort_limit parameter)
            if math.isfinite(m.comfort_limit) and m.comfort_limit >= 0:
                j.comfort_limit = min(float(m.comfort_limit), self.default_limit)
            else:
                self.counters["identify_invalid"] += 1
            if math.isfinite(m.max_slew) and m.max_slew >= 0:
                j.max_slew = float(m.max_slew)
            j.state_rate = float(m.state_rate)
        elif isinstance(m, p.Heartbeat):
            self.counters["heartbeats_rx"] += 1
        elif isinstance(m, p.Error):
            name = p.ERROR_NAMES.get(m.code, f"code_{m.code}")
            self.nacks[name] += 1
            self.counters["nacks_rx"] += 1
            self.last_nack = f"jewel {m.jewel_id}: {name} (type 0x{m.ref_type:02x} seq {m.ref_seq}): {m.text}"
        else:  # HELLO / COMMAND coming from the device side
            self.counters["unexpected_rx"] += 1

    # ----------------------------------------------------------------------------------------- interface
    def poll(self, now: float) -> JewelSnapshot:
        if not self.started:
            self.start()
        if not self.use_thread:
            try:
                self._pump(blocking=False)
            except Exception as exc:
                with self._lock:
                    self.counters["internal_errors"] += 1
                    self.last_error = f"internal: {exc!r}"
        mono = self._clock()
        with self._lock:
            js = [self.jewels[k] for k in sorted(self.jewels) if self.jewels[k].has_state]
            self.counters["polls"] += 1
            if not js:
                return JewelSnapshot.empty(float(now))
            ids = np.array([j.jewel_id for j in js], dtype=np.uint32)
            phase = np.array([j.phase for j in js], dtype=np.float64)
            freq = np.array([j.frequency for j in js], dtype=np.float64)
            off = np.array([j.offset for j in js], dtype=np.float64)
            inten = np.clip(np.array([j.intensity for j in js], dtype=np.float32), 0.0, 1.0)
            age = np.maximum(mono - np.array([j.meas_mono for j in js]), 0.0)
            rx_age = mono - np.array([j.rx_mono for j in js])
            dev = np.array([j.dev_status for j in js], dtype=np.uint8)
            invalid = np.array([j.invalid for j in js], dtype=bool)
            # JewelStateBatch's contract: STALE = no fresh report in this batch (a repeat of the last one)
            repeat = np.array([j.states == j.states_polled for j in js], dtype=bool)
            for j in js:
                j.states_polled = j.states
            connected = self.connected
        status = np.zeros(len(js), np.uint8)
        status[repeat | (rx_age > self.stale_timeout) | (not connected)] |= JewelStatus.STALE
        status[((dev & p.ST_FAULT) != 0) | invalid] |= JewelStatus.FAULT
        status[(dev & p.ST_LOW_BATTERY) != 0] |= JewelStatus.LOW_BATTERY
        return JewelSnapshot(float(now), ids, phase, freq, off, age, inten, status)

    def apply_command(self, ids, frequency_offset, intensity, now: float) -> CommandResult:
        with self._lock:
            known = sorted(k for k, j in self.jewels.items() if j.identified or j.has_state)
            limits = np.array([self.jewels[k].comfort_limit for k in known]) if known else self.default_limit
        res, idx, off, inten = validate_command(ids, frequency_offset, intensity, np.array(known, np.int64), limits)
        if len(idx):
            with self._lock:  # NaN intensity: keep the jewel's current one
                inten = [
                    v if np.isfinite(v) else self.jewels[known[i]].intensity for i, v in zip(idx, inten, strict=True)
                ]
            frames = b"".join(
                p.encode(p.Command(known[i], self._next_seq(known[i]), float(o), float(v)))
                for i, o, v in zip(idx, off, inten, strict=True)
            )
            if not self._write(frames, "command"):
                res.rejected["link_down"] += res.accepted
                res.accepted = 0
                bad = {k: v for k, v in res.rejected.items() if v}
                res.message = f"accepted 0/{sum(bad.values())}, rejected {bad} (port {self.port} not connected)"
        with self._lock:
            self.counters["command_batches"] += 1
            self.counters["commands_sent"] += res.accepted
            self.cmd_rejected.update({r: c for r, c in res.rejected.items() if c})
            self.last_command_message = res.message
        return res

    def diagnostics(self) -> list[Diagnostic]:
        mono = self._clock()
        with self._lock:
            c = self.counters
            dec = self.decoder.stats()
            errs = sum(self.decoder.errors.values())
            new_errs = errs - self._diag_err_seen
            self._diag_err_seen = errs
            if self.connected:
                level = DiagnosticLevel.WARN if new_errs else DiagnosticLevel.OK
                msg = f"connected to {self.port}" + (f"; {new_errs} bad frames since last report" if new_errs else "")
            else:
                level = DiagnosticLevel.ERROR
                msg = f"disconnected from {self.port}; retry in {max(self._next_open - mono, 0.0):.2f} s" + (
                    f" ({self.last_error})" if self.last_error else ""
                )
            link = {
                "port": self.port,
                "connected": str(self.connected),
                "opens": str(c["opens"]),
                "reconnects": str(c["reconnects"]),
                "disconnects": str(c["disconnects"]),
                "open_failures": str(c["open_failures"]),
                "backoff_s": f"{self._backoff:g}",
                "bytes_out": str(c["bytes_out"]),
                "write_timeouts": str(c["write_timeouts"]),
                "hello_sent": str(c["hello_sent"]),
                "heartbeats_sent": str(c["heartbeats_sent"]),
                "heartbeats_rx": str(c["heartbeats_rx"]),
                "unexpected_rx": str(c["unexpected_rx"]),
                "foreign_id_frames": str(c["foreign_id_frames"]),
                "internal_errors": str(c["internal_errors"]),
                "last_error": self.last_error,
                **{k: str(v) for k, v in dec.items()},
            }
            js = list(self.jewels.values())
            seen = [j for j in js if j.has_state]
            stale = sum(1 for j in seen if mono - j.rx_mono > self.stale_timeout or not self.connected)
            fault = sum(1 for j in seen if j.invalid or j.dev_status & p.ST_FAULT)
            low = sum(1 for j in seen if j.dev_status & p.ST_LOW_BATTERY)
            if not seen:
                jl, jm = DiagnosticLevel.WARN, "no jewel has reported yet"
            elif stale == len(seen):
                jl, jm = DiagnosticLevel.ERROR, f"all {len(seen)} jewels stale (no STATE for {self.stale_timeout:g} s)"
            elif stale or fault:
                jl, jm = DiagnosticLevel.WARN, f"{stale} stale, {fault} faulted of {len(seen)} jewels"
            else:
                jl, jm = DiagnosticLevel.OK, f"{len(seen)} jewels reporting"
            jv = {
                "jewels": str(len(seen)),
                "identified": str(sum(j.identified for j in js)),
                "stale": str(stale),
                "fault": str(fault),
                "low_battery": str(low),
                "states_rx": str(c["states_rx"]),
                "states_invalid": str(c["states_invalid"]),
                "seq_gaps": str(sum(j.seq_gaps for j in js)),
                "device_clock_resets": str(c["device_clock_resets"]),
                "identify_rx": str(c["identify_rx"]),
                "firmware": ",".join(sorted({j.fw for j in js if j.identified})) or "-",
            }
            rej = sum(self.cmd_rejected.values())
            cl = DiagnosticLevel.WARN if (rej or self.nacks) else DiagnosticLevel.OK
            cv = {
                "batches": str(c["command_batches"]),
                "sent": str(c["commands_sent"]),
                **{f"rejected_{r}": str(self.cmd_rejected[r]) for r in REJECT_REASONS},
                **{f"nack_{k}": str(v) for k, v in self.nacks.items()},
                "last_nack": self.last_nack,
            }
            cm = self.last_command_message or "no commands yet"
        return [
            (level, "jewel serial: link", msg, link),
            (jl, "jewel serial: jewels", jm, jv),
            (cl, "jewel serial: commands", cm, cv),
        ]
