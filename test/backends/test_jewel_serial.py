"""Serial backend against the jewel emulator running as a separate process on a pty."""

import math
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from harness import REPO
from lumina_nodes.backends.jewel import make_jewel_backend
from lumina_nodes.backends.jewel import protocol as p
from lumina_nodes.backends.jewel.serial import SerialJewelBackend
from lumina_nodes.constants import JewelStatus


def wait_until(pred, timeout=5.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class Emulators:
    """Starts jewel_emulator processes and guarantees none is left behind."""

    def __init__(self):
        self.procs = []

    def start(self, link, *args):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.Popen(
            [sys.executable, "-m", "lumina_nodes.tools.jewel_emulator", "--link", str(link), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(REPO),
        )
        self.procs.append(proc)
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)
        assert ready, "emulator printed nothing"
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), (path, proc.poll())
        assert wait_until(lambda: os.path.islink(link) and os.readlink(link) == path, 5.0)
        return proc, path

    def stop_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(3.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(3.0)
            for f in (proc.stdout, proc.stderr):
                f.close()
        left = [proc.pid for proc in self.procs if proc.poll() is None]
        assert not left, f"emulator processes left running: {left}"


@pytest.fixture
def emu():
    e = Emulators()
    yield e
    e.stop_all()


@pytest.fixture
def backends():
    made = []

    def make(**kw):
        b = SerialJewelBackend(**kw)
        made.append(b)
        b.start()
        return b

    yield make
    for b in made:
        b.close()
        assert b._thread is None


def fresh(b, n):
    s = b.poll(time.monotonic())
    return s if len(s) == n and np.all(s.status & JewelStatus.STALE == 0) else None


def diag(b, name):
    return next(d for d in b.diagnostics() if d[1] == f"jewel serial: {name}")


# ------------------------------------------------------------------------------------------------ tests
def test_states_arrive_with_plausible_phases(emu, backends, tmp_path):
    link = tmp_path / "bus"
    emu.start(link, "--jewels", 4, "--first-id", 100, "--seed", 3, "--rate", 50)
    b = backends(port=str(link), first_id=100, count=4)
    s1 = wait_until(lambda: fresh(b, 4), 5.0)
    assert s1 is not None, b.diagnostics()
    t1 = time.monotonic()
    s1 = b.poll(t1)
    assert list(s1.ids) == [100, 101, 102, 103] and s1.ids.dtype == np.uint32
    time.sleep(0.5)
    t2 = time.monotonic()
    s2 = b.poll(t2)
    for s in (s1, s2):
        assert np.all((s.phase >= -math.pi) & (s.phase < math.pi))
        assert np.all((s.frequency > 0.7) & (s.frequency < 1.4))
        assert np.all((s.sample_age >= 0) & (s.sample_age < 0.2)), s.sample_age
        assert s.intensity.dtype == np.float32 and s.status.dtype == np.uint8
    # phases advance by their frequency between the two measurement times
    dt = (t2 - s2.sample_age) - (t1 - s1.sample_age)
    resid = np.angle(np.exp(1j * (s2.phase - s1.phase - 2 * math.pi * 0.5 * (s1.frequency + s2.frequency) * dt)))
    assert np.max(np.abs(resid)) < 0.3, resid
    lvl, _, msg, vals = diag(b, "jewels")
    assert lvl == 0 and vals["identified"] == "4" and vals["firmware"] == "1.0.0", (msg, vals)
    assert diag(b, "link")[0] == 0


def test_repeats_are_stale_and_fresh_samples_move_forward_in_time(emu, backends, tmp_path):
    """JewelStateBatch's contract: an element with no new report since the last batch is STALE; a fresh one was
    measured after the one before it (else the synchronizer rejects it as out of order, issue 15 item 11)."""
    link = tmp_path / "bus"
    emu.start(link, "--jewels", 3, "--first-id", 10, "--seed", 4, "--rate", 50)
    b = backends(port=str(link), first_id=10, count=3)
    assert wait_until(lambda: fresh(b, 3), 5.0) is not None, b.diagnostics()
    last = np.full(3, -np.inf)
    fresh_count = stale_count = 0
    end = time.monotonic() + 2.0
    while time.monotonic() < end:  # polls at ~200 Hz, 4x the jewels' STATE rate
        t = time.monotonic()
        s = b.poll(t)
        new = (s.status & JewelStatus.STALE) == 0
        sample_time = t - s.sample_age
        assert np.all(sample_time[new] > last[new]), (sample_time - last)[new]
        last[new] = sample_time[new]
        fresh_count += int(new.sum())
        stale_count += int((~new).sum())
        time.sleep(0.005)
    # about 50 fresh samples per jewel per second; the other polls repeat them, flagged STALE
    assert 3 * 2.0 * 50 * 0.6 < fresh_count < 3 * 2.0 * 50 * 1.2, fresh_count
    assert stale_count > fresh_count, (stale_count, fresh_count)


def test_commands_change_emulated_offsets(emu, backends, tmp_path):
    link = tmp_path / "bus"
    emu.start(link, "--jewels", 4, "--first-id", 7, "--seed", 1)
    b = backends(port=str(link))  # no id range: learn the jewels from the bus
    assert wait_until(lambda: fresh(b, 4), 5.0) is not None
    wait_until(lambda: diag(b, "jewels")[3]["identified"] == "4", 3.0)
    ids = [7, 8, 9, 10]
    target = [0.2, -0.15, 0.0, 0.1]
    res = b.apply_command(ids, target, [0.8, 0.8, 0.8, 0.8], time.monotonic())
    assert res.accepted == 4 and res.ok, res
    bad = b.apply_command(
        [7, 99, 8, 9, 9], [0.3, 0.0, float("nan"), 0.1, 0.1], [0.5, 0.5, 0.5, 0.5, 0.5], time.monotonic()
    )
    assert bad.accepted == 0
    assert (
        bad.rejected["offset_limit"],
        bad.rejected["unknown_id"],
        bad.rejected["non_finite"],
        bad.rejected["duplicate_id"],
    ) == (1, 1, 1, 2)
    mism = b.apply_command([7, 8], [0.1], [0.5, 0.5], time.monotonic())
    assert mism.accepted == 0 and mism.rejected["length_mismatch"] == 2
    # slew 0.5 Hz/s: 0.2 Hz takes 0.4 s; allow for link and scheduling
    time.sleep(1.2)

    def settled():
        s = b.poll(time.monotonic())
        return s if np.allclose(s.frequency_offset, target, atol=1e-4) else None

    s = wait_until(settled, 3.0)
    assert s is not None, b.poll(time.monotonic()).frequency_offset
    assert np.allclose(s.intensity, 0.8, atol=1e-6)
    # the device NACKs a command for a jewel it does not have (sent raw, bypassing validation)
    b._write(p.encode(p.Command(4242, 1, 0.0, 0.5)), "test")
    assert wait_until(lambda: b.nacks["unknown_jewel"] >= 1, 3.0)
    assert "unknown_jewel" in diag(b, "commands")[3]["last_nack"]


def test_garbage_crc_errors_and_unknown_types_counted(emu, backends, tmp_path):
    link = tmp_path / "bus"
    emu.start(link, "--jewels", 3, "--garbage-rate", 0.2, "--crc-error-rate", 0.1, "--unknown-type-rate", 0.1)
    b = backends(port=str(link), reader_thread=False)  # poll mode: poll() does the reading
    got = []
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        got.append(b.poll(time.monotonic()))
        time.sleep(0.02)
    vals = diag(b, "link")[3]
    assert int(vals["err_crc"]) > 5 and int(vals["err_unknown_type"]) > 5, vals
    assert int(vals["err_cobs"]) + int(vals["err_short"]) + int(vals["bytes_discarded"]) > 0
    assert int(vals["frames_ok"]) > 200
    # with a third of the frames broken, one poll can find a jewel whose last frame was lost: fresh ones keep coming
    end = time.monotonic() + 2.0
    snapshot = fresh(b, 3)
    while snapshot is None and time.monotonic() < end:
        time.sleep(0.02)
        snapshot = fresh(b, 3)
    assert snapshot is not None
    assert vals["connected"] == "True" and vals["internal_errors"] == "0"


def test_device_silence_makes_jewels_stale(emu, backends, tmp_path):
    link = tmp_path / "bus"
    proc, _ = emu.start(link, "--jewels", 2, "--silent-after", 1.5)
    b = backends(port=str(link), stale_timeout=0.3)
    assert wait_until(lambda: fresh(b, 2), 5.0) is not None
    t_fresh = time.monotonic()
    # every poll between two STATEs flags repeats STALE; silence shows as reports older than stale_timeout
    s = wait_until(lambda: (lambda s: s if np.all(s.sample_age > 0.3) else None)(b.poll(time.monotonic())), 4.0)
    assert s is not None and np.all(s.status & JewelStatus.STALE)
    lvl, _, msg, _ = diag(b, "jewels")
    assert lvl == 2 and "stale" in msg
    assert proc.poll() is None and diag(b, "link")[3]["connected"] == "True"
    assert time.monotonic() - t_fresh < 4.0


def test_emulator_killed_and_restarted_reconnects(emu, backends, tmp_path):
    link = tmp_path / "bus"
    proc, _ = emu.start(link, "--jewels", 3, "--first-id", 20, "--seed", 5)
    b = backends(port=str(link), first_id=20, count=3, reconnect_initial=0.05, reconnect_max=0.4)
    assert wait_until(lambda: fresh(b, 3), 5.0) is not None
    proc.kill()  # no clean-up: the symlink is left dangling
    proc.wait(3.0)
    assert wait_until(lambda: diag(b, "link")[3]["connected"] == "False", 3.0), b.diagnostics()
    assert diag(b, "link")[0] == 2
    s = b.poll(time.monotonic())
    assert len(s) == 3 and np.all(s.status & JewelStatus.STALE)
    time.sleep(1.5)  # several failed re-opens; backoff must stay capped
    vals = diag(b, "link")[3]
    assert float(vals["backoff_s"]) <= 0.4 and int(vals["open_failures"]) >= 2
    hellos = b.counters["hello_sent"]
    # a swapped device: the same ids, a stricter comfort limit
    emu.start(link, "--jewels", 3, "--first-id", 20, "--seed", 6, "--comfort-limit", 0.1)
    assert wait_until(lambda: fresh(b, 3), 5.0) is not None, b.diagnostics()
    vals = diag(b, "link")[3]
    assert int(vals["reconnects"]) >= 1 and int(vals["disconnects"]) >= 1
    assert diag(b, "link")[0] in (0, 1)
    # HELLO again on reconnect, and the new device's IDENTIFY sets its limit (docs/jewel_protocol.md section 5)
    assert b.counters["hello_sent"] > hellos
    assert wait_until(lambda: all(b.jewels[j].comfort_limit == pytest.approx(0.1) for j in (20, 21, 22)), 5.0)


def test_port_absent_at_start_then_appears(emu, backends, tmp_path):
    link = tmp_path / "late"
    b = backends(port=str(link), reconnect_initial=0.05, reconnect_max=0.2)
    for _ in range(20):
        assert len(b.poll(time.monotonic())) == 0
        time.sleep(0.03)
    lvl, _, msg, vals = diag(b, "link")
    assert lvl == 2 and "disconnected" in msg and int(vals["open_failures"]) >= 2
    res = b.apply_command([1], [0.1], [0.5], 0.0)
    assert res.accepted == 0 and res.rejected["unknown_id"] == 1
    emu.start(link, "--jewels", 2)
    assert wait_until(lambda: fresh(b, 2), 5.0) is not None


def test_command_while_link_down_is_rejected_not_dropped(emu, backends, tmp_path):
    link = tmp_path / "bus"
    proc, _ = emu.start(link, "--jewels", 2, "--first-id", 1)
    b = backends(port=str(link), reconnect_initial=1.0, reconnect_max=2.0)
    assert wait_until(lambda: fresh(b, 2), 5.0) is not None
    proc.terminate()
    assert proc.wait(3.0) == 0
    assert wait_until(lambda: not b.connected, 3.0)
    res = b.apply_command([1, 2], [0.1, 0.1], [0.5, 0.5], time.monotonic())
    assert res.accepted == 0 and res.rejected["link_down"] == 2


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "exit-after"])
def test_emulator_exits_cleanly(emu, tmp_path, how):
    link = tmp_path / "bus"
    args = ["--jewels", 2] + (["--exit-after", 0.5] if how == "exit-after" else [])
    proc, _ = emu.start(link, *args)
    if how != "exit-after":
        time.sleep(0.3)
        proc.send_signal(getattr(signal, how))
    assert proc.wait(5.0) == 0
    assert not os.path.lexists(link)  # its symlink is removed
    assert "states_sent=" in proc.stderr.read()


def test_factory_and_bad_parameters():
    with pytest.raises(ValueError):
        make_jewel_backend("nonsense")
    with pytest.raises(ValueError):
        make_jewel_backend("serial", port="")
    with pytest.raises(ValueError):
        make_jewel_backend("serial", port="/dev/null", first_id=3)
    b = make_jewel_backend("serial", port="loop://", reader_thread=False)
    assert isinstance(b, SerialJewelBackend)
    b.start()
    assert len(b.poll(0.0)) == 0  # loop:// echoes our own HELLO/HEARTBEAT: counted as unexpected, no crash
    b.poll(0.0)
    b.close()
    assert int(diag(b, "link")[3]["unexpected_rx"]) >= 1


def test_backend_logic_over_loopback():
    """Frames injected into a pyserial loop:// port: clock mapping, invalid values, foreign ids, restarts."""
    clock = [1000.0]
    b = SerialJewelBackend(
        port="loop://", reader_thread=False, first_id=5, count=2, stale_timeout=0.5, clock=lambda: clock[0]
    )
    b.start()
    try:

        def send(*msgs):
            b._ser.write(b"".join(p.encode(m) for m in msgs))
            return b.poll(clock[0])

        assert len(b.poll(clock[0])) == 0 and b.connected  # poll mode: the first poll opens the port
        # device clock starts at 50 s; first report arrives 2 ms after measurement (the best seen)
        s = send(p.Identify(5, 1, 2, 3, 4, 0.2), p.State(5, 2, 50_000_000, 1.0, 1.1, 0.0, 0.0, 0.5, 0, 90))
        assert list(s.ids) == [5] and s.sample_age[0] == pytest.approx(0.0)
        # 1 s later a report measured 0.1 s before it arrived (queued): its age shows the 0.1 s
        clock[0] += 1.0
        s = send(p.State(5, 3, 50_900_000, 1.5, 1.1, 0.0, 0.0, 0.5, 0, 90))
        assert s.sample_age[0] == pytest.approx(0.1, abs=1e-3) and s.phase[0] == pytest.approx(1.5)
        # non-finite values are never used: FAULT, last good values kept
        s = send(p.State(5, 4, 51_000_000, float("nan"), 1.1, 0.0, 0.0, 0.5, 0, 90))
        assert s.status[0] & JewelStatus.FAULT and s.phase[0] == pytest.approx(1.5)
        # device flags pass through; ids outside the range are ignored and counted
        s = send(
            p.State(5, 5, 51_000_000, 0.5, 1.1, 0.0, 0.0, 0.5, p.ST_LOW_BATTERY | p.ST_FAULT, 9),
            p.State(99, 1, 1, 0.0, 1.0, 0.0, 0.0, 0.5, 0, 90),
        )
        assert s.status[0] == JewelStatus.LOW_BATTERY | JewelStatus.FAULT and list(s.ids) == [5]
        assert diag(b, "link")[3]["foreign_id_frames"] == "1"
        # device restarted: its clock went back to 0; the mapping is re-anchored
        s = send(p.State(5, 1, 10_000, 0.25, 1.1, 0.0, 0.0, 0.5, 0, 90))
        assert s.sample_age[0] == pytest.approx(0.0) and diag(b, "jewels")[3]["device_clock_resets"] == "1"
        # jewel 6 reports without having identified: the gateway asks it with a HELLO
        hello_before = b.counters["hello_sent"]
        s = send(p.State(6, 1, 5_000_000, 0.0, 1.0, 0.0, 0.0, 0.5, 0, 90))
        b.poll(clock[0])
        assert list(s.ids) == [5, 6] and b.counters["hello_sent"] > hello_before
        # comfort limit from IDENTIFY (0.2) applies to jewel 5; jewel 6 uses the default (0.25)
        r = b.apply_command([5, 6], [0.22, 0.22], [0.5, 0.5], clock[0])
        assert r.accepted == 1 and r.rejected["offset_limit"] == 1
        # nothing for 0.5 s -> STALE
        clock[0] += 0.6
        s = b.poll(clock[0])
        assert np.all(s.status & JewelStatus.STALE)
        assert diag(b, "link")[3]["internal_errors"] == "0"
    finally:
        b.close()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(database=None, max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.builds(
                lambda i, s, ph, f: p.encode(p.State(i, s, s * 20000, ph, f, 0.0, 0.0, 0.5, 0, 50)),
                st.integers(0, 12),
                st.integers(0, 0xFFFF),
                st.floats(width=32),
                st.floats(width=32),
            ),
        ),
        max_size=30,
    )
)
def test_backend_never_raises_on_any_byte_stream(chunks):
    b = SerialJewelBackend(port="loop://", reader_thread=False, first_id=1, count=10, clock=lambda: 5.0)
    b.start()
    try:
        for c in chunks:
            b._on_bytes(c, 5.0)
            s = b.poll(5.0)
            assert np.all(np.isfinite(s.phase)) and np.all(np.isfinite(s.sample_age))
            assert np.all((s.phase >= -math.pi) & (s.phase < math.pi))
        b.diagnostics()
        assert b.counters["internal_errors"] == 0
    finally:
        b.close()


def test_node_parameters_accepted_by_factory():
    """The driver node's own parameter mapping (nodes/jewel_driver.py) builds each backend from its defaults."""
    from lumina_nodes.nodes.common import StartupError
    from lumina_nodes.nodes.jewel_driver import PARAMETERS, backend_parameters

    defaults = {param.name: param.default for param in PARAMETERS}
    sim = make_jewel_backend("sim", **backend_parameters({**defaults, "backend": "sim"}))
    assert len(sim.poll(1.0)) == defaults["jewel_count"]
    assert sim.model.p.comfort_limit == defaults["comfort_limit_hz"]
    values = {**defaults, "backend": "serial", "port": "/nonexistent/jewel"}
    ser = make_jewel_backend("serial", **backend_parameters(values))
    ser.start()
    assert len(ser.poll(1.0)) == 0 and ser.default_limit == defaults["comfort_limit_hz"]
    ser.close()
    with pytest.raises(StartupError, match="needs the 'port' parameter"):
        backend_parameters({**defaults, "backend": "serial"})
    zero = make_jewel_backend("serial", **backend_parameters({**values, "comfort_limit_hz": 0.0, "port": "loop://"}))
    assert zero.default_limit == 0.0
