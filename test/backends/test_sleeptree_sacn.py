"""The lighting backends (lumina_nodes.backends.sleeptree: sim, sacn): the E1.31 output against real receivers on
loopback (the library's own packet encoder and decoder, and its stock receiver), the sim output, and the checks.

Every test that lets a SacnLighting send holds UDP port 5568 (a receiver, or ``port_lock``), so concurrent test
runs never see each other's packets."""

import sys
import threading
import time

import numpy as np
import pytest
import sacn
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import PEERS
from lumina_nodes.backends.sleeptree import Universe, make_lighting_backend
from lumina_nodes.backends.sleeptree.fixtures import Tree, fixture_map
from lumina_nodes.backends.sleeptree.sacn import SacnLighting, source_cid
from lumina_nodes.backends.sleeptree.sim import SimLighting
from lumina_nodes.constants import DiagnosticLevel

sys.path.insert(0, str(PEERS))
from sacn_receiver import SacnReceiver, port_lock


def library_packet(universe, data, sequence, priority=100, source_name="Lumina SleepTrees", terminated=False):
    """The packet as the sacn library builds it."""
    return bytes(
        sacn.DataPacket(
            cid=source_cid(source_name),
            sourceName=source_name,
            universe=universe,
            priority=priority,
            dmxData=tuple(int(x) for x in data),
            sequence=sequence,
            streamTerminated=terminated,
        ).getBytes()
    )


def statuses(backend):
    return {name: (level, message, values) for level, name, message, values in backend.diagnostics()}


source_names = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1).filter(
    lambda s: len(s.encode("utf-8")) <= 63
)


@settings(max_examples=40, deadline=None)
@given(
    universes=st.lists(st.integers(1, 63999), min_size=1, max_size=4, unique=True),
    priority=st.integers(0, 200),
    source_name=source_names,
    sequence=st.integers(0, 255),
    seed=st.integers(0, 2**32 - 1),
)
def test_packets_are_byte_for_byte_the_librarys(universes, priority, source_name, sequence, seed):
    frames = np.random.default_rng(seed).integers(0, 256, (len(universes), 512), np.uint8)
    with port_lock():  # close() sends the terminations to 127.0.0.1:5568, where no one listens while we hold it
        backend = SacnLighting([Universe(u) for u in universes], priority=priority, source_name=source_name)
        try:
            backend.sequence[:] = sequence
            for step in range(2):  # the second packet: the next sequence number (255 wraps to 0)
                backend._stage(frames)
                for row, universe in enumerate(universes):
                    expected = library_packet(universe, frames[row], (sequence + step) % 256, priority, source_name)
                    assert bytes(backend.packets[row]) == expected
        finally:
            backend.close()
    # the terminations: the last frame's slots with the Stream_Terminated option
    for row, universe in enumerate(universes):
        expected = library_packet(universe, frames[row], (sequence + 4) % 256, priority, source_name, terminated=True)
        assert bytes(backend.packets[row]) == expected


def test_frames_reach_a_receiver_slot_for_slot_in_every_universe_and_streams_end_on_close():
    # north: 300 GRB pixels from universe 11 slot 1 (170 whole pixels, then 130 from slot 1 of universe 12);
    # gate: 20 BGR pixels from slot 100 of universe 13
    fixtures = fixture_map([Tree("north", "plaza_1", 300, "GRB", 11, 1), Tree("gate", "plaza_1", 20, "BGR", 13, 100)])
    assert [u.number for u in fixtures.universes] == [11, 12, 13]
    rng = np.random.default_rng(9)
    n = 260  # past sequence 255
    with SacnReceiver() as receiver:
        backend = make_lighting_backend("sacn", fixtures.universes, priority=150, source_name="trees under test")
        sent = []
        for _ in range(n):
            rgb = rng.integers(0, 256, (320, 3), np.uint8)
            sent.append(rgb)
            result = backend.send(fixtures.layout.pack(rgb))
            assert (result.sent, result.failed, result.errors) == (3, 0, ())
        backend.close()
        receiver.wait(lambda: len(receiver.packets) >= 3 * (n + 3), 5, "every packet")
        before = backend.packets.copy()
        backend.close()  # idempotent: nothing more is sent, nothing changes
        assert np.array_equal(backend.packets, before)
        receiver.settle()
        assert len(receiver.datagrams) == 3 * (n + 3)
        assert receiver.undecodable == 0 and receiver.discovery == []  # nothing but data packets by default
        for row, universe in enumerate((11, 12, 13)):
            packets = receiver.of(universe)
            assert [p.sequence for p in packets] == [k % 256 for k in range(n + 3)]
            assert {(p.priority, p.sourceName) for p in packets} == {(150, "trees under test")}
            assert [p.option_StreamTerminated for p in packets] == [False] * n + [True] * 3
            last = fixtures.layout.pack(sent[-1])[row]
            for k, raw in enumerate(receiver.raw_of(universe)[-3:]):
                assert raw == library_packet(universe, last, (n + k) % 256, 150, "trees under test", terminated=True)
        # slot values, computed here pixel by pixel
        for k in [*range(0, n, 13), n - 1]:
            rgb = sent[k]
            data = {u: np.array(receiver.of(u)[k].dmxData, np.uint8) for u in (11, 12, 13)}
            for p in range(300):
                universe, slot = (11, 3 * p) if p < 170 else (12, 3 * (p - 170))
                r, g, b = rgb[p]
                assert list(data[universe][slot : slot + 3]) == [g, r, b], (k, p)
            for p in range(20):
                r, g, b = rgb[300 + p]
                assert list(data[13][99 + 3 * p : 102 + 3 * p]) == [b, g, r], (k, p)
            assert not data[11][510:].any() and not data[12][390:].any()
            assert not data[13][:99].any() and not data[13][159:].any()
    assert statuses(backend)["universe 12"][2]["frames_sent"] == n


def test_the_stock_sacn_receiver_takes_the_stream_and_lets_go_at_once_on_close():
    """The library's own receiver (as a lighting desk or visualiser would run it) gets the data, and the
    Stream_Terminated packets end the universe at once instead of after its 2.5 s timeout."""
    with port_lock():
        receiver = sacn.sACNreceiver(bind_address="127.0.0.1")  # on Linux it binds ("", 5568): it only receives
        try:
            data, events = [], []
            receiver.register_listener("universe", lambda packet: data.append(packet.dmxData[:3]), universe=21)
            receiver.register_listener(
                "availability", lambda universe, changed: events.append((time.monotonic(), universe, changed))
            )
            receiver.start()
            with SacnLighting([Universe(21)], source_name="stock receiver test") as backend:
                frame = np.zeros((1, 512), np.uint8)
                for k in range(10):
                    frame[0, :3] = (k, 2 * k, 3 * k)
                    assert backend.send(frame).sent == 1
                    time.sleep(0.01)
                deadline = time.monotonic() + 3
                while (9, 18, 27) not in data and time.monotonic() < deadline:
                    time.sleep(0.005)
                assert data[-1] == (9, 18, 27) and [e[1:] for e in events] == [(21, "available")]
                closed = time.monotonic()
            while len(events) < 4 and time.monotonic() < closed + 3:
                time.sleep(0.005)
            # the library reports 'timeout' for each of the three Stream_Terminated packets
            assert [e[1:] for e in events] == [(21, "available")] + [(21, "timeout")] * 3
            assert events[1][0] - closed < 0.5, events  # its own timeout would take 2.5 s
        finally:
            receiver.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("sACN")]


def test_a_destination_where_nothing_listens_still_gets_every_frame_and_reads_warn():
    """Nothing listens on 127.0.0.1:5568 (we hold the port's lock): the kernel answers with ICMP port unreachable,
    which the connected socket reports on a later send as 'Connection refused' and which stops that send. The
    backend sends that packet again, counts no failure, and reports the universes WARN 'nothing listens there'."""
    frames = np.zeros((2, 512), np.uint8)
    backend = SacnLighting([Universe(1), Universe(2)])
    try:
        with port_lock():
            results = [backend.send(frames) for _ in range(20)]  # never raises
            for _ in results:
                time.sleep(0.002)
            results += [backend.send(frames) for _ in range(20)]
            assert all((r.sent, r.failed) == (2, 0) for r in results)
            status = statuses(backend)
            for universe in (1, 2):
                level, message, values = status[f"universe {universe}"]
                assert level == DiagnosticLevel.WARN, (level, message)
                assert message == "sent, but nothing listens there: 127.0.0.1: Connection refused (port unreachable)"
                assert values["frames_failed"] == 0 and values["frames_sent"] == 40
        # a receiver comes up: every frame from now on arrives, and the warning clears failing_hold_s later
        backend.failing_hold_s = 0.3
        with SacnReceiver() as receiver:
            for k in range(10):
                frames[:, 0] = k
                backend.send(frames)
                time.sleep(0.002)
            receiver.wait(lambda: len(receiver.of(1)) >= 10 and len(receiver.of(2)) >= 10, 5, "every frame")
            assert [p.dmxData[0] for p in receiver.of(1)][-10:] == list(range(10))
            time.sleep(0.3)
            backend.send(frames)
            assert {level for level, *_ in backend.diagnostics()} == {DiagnosticLevel.OK}
            backend.close()
            receiver.wait(lambda: sum(p.option_StreamTerminated for p in receiver.packets) == 6, 5, "terminations")
    finally:
        with port_lock():
            backend.close()


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"priority": 201}, "priority: must be a whole number in 0..200 (E1.31), got 201"),
        ({"priority": -1}, "priority: must be a whole number in 0..200"),
        ({"priority": True}, "priority: must be a whole number in 0..200"),
        ({"priority": 100.0}, "priority: must be a whole number in 0..200"),
        ({"source_name": ""}, "source_name: must be 1..63 bytes of UTF-8 without NUL, got 0 bytes"),
        ({"source_name": "x" * 64}, "source_name: must be 1..63 bytes of UTF-8 without NUL, got 64 bytes"),
        ({"source_name": "ä" * 32}, "source_name: must be 1..63 bytes of UTF-8 without NUL, got 64 bytes"),
        ({"source_name": "a\0b"}, "source_name: must be 1..63 bytes of UTF-8 without NUL"),
        ({"source_name": 7}, "source_name: must be a text, got 7"),
        ({"bind_address": "localhost"}, "bind_address: 'localhost' is not an IPv4 address"),
        ({"bind_address": "239.255.0.1"}, "bind_address: 239.255.0.1 is not a local unicast address"),
        ({"bind_address": "192.0.2.1"}, "bind_address 192.0.2.1: cannot bind: Cannot assign requested address"),
        ({"multicast": "yes"}, "multicast: must be true or false, got 'yes'"),
        ({"universe_discovery": 1}, "universe_discovery: must be true or false, got 1"),
        ({"colour": 1}, "colour: not a parameter of the sacn lighting backend"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(parameters, message):
    with pytest.raises(ValueError) as error:
        make_lighting_backend("sacn", [Universe(1)], **parameters)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "universes, message",
    [
        ([Universe(1, "255.255.255.255")], "universe 1 destination: 255.255.255.255 is the broadcast address"),
        ([Universe(2, "239.255.0.2")], "universe 2 destination: 239.255.0.2 is a multicast address"),
        ([Universe(3, "0.0.0.0")], "universe 3 destination: 0.0.0.0 is the unspecified address"),
        ([Universe(4, "10.0.0")], "universe 4 destination: '10.0.0' is not an IPv4 address"),
        ([Universe(4, "::1")], "universe 4 destination: '::1' is not an IPv4 address"),
        ([Universe(64000)], "universe 64000: must be a whole number in 1..63999"),
        ([Universe(0)], "universe 0: must be a whole number in 1..63999"),
        ([Universe(True)], "universe True: must be a whole number"),
        ([Universe(5), Universe(5)], "universe 5: listed twice"),
        ([], "universes: at least one universe is needed"),
    ],
)
def test_bad_universes_are_refused(universes, message):
    with pytest.raises(ValueError) as error:
        SacnLighting(universes)
    assert message in str(error.value)


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="unknown lighting backend 'artnet'; choose one of sim, sacn"):
        make_lighting_backend("artnet", [Universe(1)])


def test_a_bad_frame_is_refused_and_counted_not_raised():
    with SacnReceiver() as receiver:
        with SacnLighting([Universe(1), Universe(2)]) as backend:
            for frames in (np.zeros((1, 512), np.uint8), np.zeros((2, 512), np.int64), [[0] * 512] * 2):
                result = backend.send(frames)
                assert (result.sent, result.failed, result.failed_rows) == (0, 2, (0, 1))
                assert result.errors[0].startswith("frames must be uint8 of shape (2, 512), got ")
            level, message, values = statuses(backend)["universe 2"]
            assert level == DiagnosticLevel.ERROR and message.startswith("sending fails: frames must be uint8")
            assert values["frames_failed"] == 3 and values["frames_sent"] == 0
            backend.failing_hold_s = 0.0
            assert backend.send(np.zeros((2, 512), np.uint8)).sent == 2
            assert statuses(backend)["universe 2"][0] == DiagnosticLevel.OK
        receiver.wait(lambda: len(receiver.packets) == 2 * 4, 5, "the good frame and the terminations")
    assert backend.send(np.zeros((2, 512), np.uint8)).errors == ("closed", "closed")  # after close: refused


def test_the_sim_output_keeps_the_last_frame_and_never_touches_the_network():
    backend = make_lighting_backend("sim", [Universe(4), Universe(9, "10.1.2.3")])
    assert isinstance(backend, SimLighting) and backend.name == "sim" and backend.last_frames is None
    frames = np.random.default_rng(2).integers(0, 256, (2, 512), np.uint8)
    assert backend.send(frames) == backend.send(frames)
    assert backend.send(frames).sent == 2 and backend.frames == 3
    frames[0, 0] ^= 0xFF  # a copy was kept, not the caller's array
    assert backend.last_frames[0, 0] == frames[0, 0] ^ 0xFF and np.array_equal(backend.last_frames[1], frames[1])
    assert backend.send(frames[:1]).failed == 2 and backend.frames == 3
    level, name, message, values = backend.diagnostics()[1]
    assert (name, level, values["destination"], values["frames_sent"], values["frames_failed"]) == (
        "universe 9",
        DiagnosticLevel.ERROR,
        "10.1.2.3",
        3,
        1,
    )
    backend.close()
    backend.close()
    assert backend.send(frames).failed == 2 and backend.frames == 3
    with pytest.raises(ValueError, match="colour: not a parameter of the sim lighting backend"):
        make_lighting_backend("sim", [Universe(1)], colour=1)
