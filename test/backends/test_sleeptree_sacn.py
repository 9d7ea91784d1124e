"""The E1.31 output (lumina_nodes.backends.sleeptree.sacn) against real receivers on loopback: the library's own
packet encoder and decoder, and the library's stock receiver."""

import sys
import threading
import time

import numpy as np
import pytest
import sacn

from harness import PEERS
from lumina_nodes.backends.sleeptree import Universe, make_lighting_backend
from lumina_nodes.backends.sleeptree.fixtures import Tree, fixture_map
from lumina_nodes.backends.sleeptree.sacn import SacnLighting, source_cid

sys.path.insert(0, str(PEERS))
from sacn_receiver import SacnReceiver


def test_packets_are_byte_for_byte_the_librarys():
    rng = np.random.default_rng(5)
    backend = SacnLighting([Universe(3), Universe(63999)], priority=42, source_name="Bäume der Stadt")
    try:
        for _ in range(3):
            frames = rng.integers(0, 256, (2, 512), np.uint8)
            backend.packets[:, 126:] = frames
            backend._send_all()
            for row, universe in enumerate((3, 63999)):
                packet = sacn.DataPacket(
                    cid=source_cid("Bäume der Stadt"),
                    sourceName="Bäume der Stadt",
                    universe=universe,
                    priority=42,
                    dmxData=tuple(int(x) for x in frames[row]),
                    sequence=int(backend.sequence[row] - 1),
                )
                assert bytes(backend.packets[row]) == bytes(packet.getBytes())
        backend.packets[:, 112] |= 0x40
        packet.option_StreamTerminated = True
        assert bytes(backend.packets[1]) == bytes(packet.getBytes())
    finally:
        backend.close()


def test_frames_reach_a_receiver_slot_for_slot_in_every_universe_and_streams_end_on_close():
    fixtures = fixture_map([Tree("north", "plaza_1", 300, "GRB", 11, 1), Tree("gate", "plaza_1", 20, "BGR", 13, 100)])
    assert [u.number for u in fixtures.universes] == [11, 12, 13]
    rng = np.random.default_rng(9)
    with SacnReceiver() as receiver:
        backend = make_lighting_backend("sacn", fixtures.universes, priority=150, source_name="trees under test")
        sent = []
        for _ in range(20):
            rgb = rng.integers(0, 256, (320, 3), np.uint8)
            sent.append(rgb)
            result = backend.send(fixtures.layout.pack(rgb))
            assert result.sent == 3 and result.failed == 0
        backend.close()
        backend.close()  # idempotent
        receiver.wait(lambda: len(receiver.packets) >= 3 * 23, 5, "every packet")
        assert receiver.undecodable == 0
        for universe in (11, 12, 13):
            packets = receiver.of(universe)
            assert [p.sequence for p in packets] == list(range(23))
            assert {(p.priority, p.sourceName) for p in packets} == {(150, "trees under test")}
            assert [p.option_StreamTerminated for p in packets] == [False] * 20 + [True] * 3
        # slot values, computed here pixel by pixel: north's GRB pixels 0..169 in universe 11 and 170..299 in 12,
        # gate's BGR pixels from slot 100 of universe 13
        for k, rgb in enumerate(sent):
            data = {u: np.array(receiver.of(u)[k].dmxData, np.uint8) for u in (11, 12, 13)}
            for p in range(300):
                universe, slot = (11, 3 * p) if p < 170 else (12, 3 * (p - 170))
                r, g, b = rgb[p]
                assert list(data[universe][slot : slot + 3]) == [g, r, b], (k, p)
            for p in range(20):
                r, g, b = rgb[300 + p]
                assert list(data[13][99 + 3 * p : 102 + 3 * p]) == [b, g, r], (k, p)
            assert not data[12][390:].any() and not data[13][:99].any() and not data[13][159:].any()


def test_the_stock_sacn_receiver_takes_the_stream_and_lets_go_at_once_on_close():
    """The library's own receiver (as a lighting desk or visualiser would run it) gets the data, and the
    Stream_Terminated packets end the universe at once instead of after its 2.5 s timeout."""
    import fcntl

    from sacn_receiver import LOCK_FILE

    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the port's lock, as SacnReceiver takes it: the stock receiver binds 5568
        receiver = sacn.sACNreceiver(bind_address="127.0.0.1")
        data, events = [], []
        receiver.register_listener("universe", lambda packet: data.append(packet.dmxData), universe=21)
        receiver.register_listener(
            "availability", lambda universe, changed: events.append((time.monotonic(), universe, changed))
        )
        receiver.start()
        backend = SacnLighting([Universe(21)])
        try:
            frame = np.zeros((1, 512), np.uint8)
            for k in range(10):
                frame[0, :3] = (k, 2 * k, 3 * k)
                backend.send(frame)
                time.sleep(0.025)
            deadline = time.monotonic() + 3
            while not (data and data[-1][:3] == (9, 18, 27)) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert data and data[-1][:3] == (9, 18, 27)
            closed = time.monotonic()
            backend.close()
            deadline = closed + 2.0
            while not any(e[2] == "timeout" for e in events) and time.monotonic() < deadline:
                time.sleep(0.01)
            ends = [t for t, universe, changed in events if changed == "timeout" and universe == 21]
            assert ends and ends[0] - closed < 0.5, events
        finally:
            backend.close()
            receiver.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("sACN")]


def test_a_send_that_fails_is_counted_and_reported_not_raised():
    # a destination no route leads to: the kernel refuses the send at once (EINVAL/ENETUNREACH), nothing leaves
    backend = SacnLighting([Universe(1, "127.0.0.1"), Universe(2, "0.0.0.1")], bind_address="127.0.0.1")
    try:
        result = backend.send(np.zeros((2, 512), np.uint8))
        assert result.sent == 1 and result.failed_rows == (1,) and "0.0.0.1" in result.errors[0]
        statuses = {name: (level, message, values) for level, name, message, values in backend.diagnostics()}
        level, message, values = statuses["universe 2"]
        assert level == 2 and message.startswith("sending fails") and values["frames_failed"] == 1
        assert statuses["universe 1"][0] == 0 and statuses["universe 1"][2]["frames_sent"] == 1
    finally:
        backend.close()


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"priority": 201}, "priority: must be a whole number in 0..200"),
        ({"source_name": ""}, "source_name: must be 1..63 bytes"),
        ({"source_name": "x" * 64}, "source_name: must be 1..63 bytes"),
        ({"bind_address": "localhost"}, "bind_address: 'localhost' is not an IPv4 address"),
        ({"bind_address": "192.0.2.1"}, "bind_address 192.0.2.1: cannot bind"),
        ({"colour": 1}, "colour: not a parameter of the sacn backend"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(parameters, message):
    with pytest.raises(ValueError, match=message):
        make_lighting_backend("sacn", [Universe(1)], **parameters)


def test_bad_universes_are_refused():
    with pytest.raises(ValueError, match="255.255.255.255 is not a unicast address"):
        SacnLighting([Universe(1, "255.255.255.255")])
    with pytest.raises(ValueError, match="must be in 1..63999"):
        SacnLighting([Universe(64000)])
    with pytest.raises(ValueError, match="unknown lighting backend 'artnet'"):
        make_lighting_backend("artnet", [Universe(1)])
