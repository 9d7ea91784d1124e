"""Sleep Jewel wire protocol: CRC/COBS vectors, round trips of every message type, stream decoder fuzzing,
and the regression corpus in test/corpus/jewel_protocol/."""

import json
import math
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import CORPUS as CORPUS_ROOT
from lumina_nodes.backends.jewel import protocol as p

CORPUS = CORPUS_ROOT / "jewel_protocol"

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
f32 = st.floats(width=32, allow_nan=False)


def header():
    return {"jewel_id": u32, "seq": u16}


MSG_STRATEGIES = {
    p.Hello: st.builds(p.Hello, **header(), gateway_major=u8, gateway_minor=u8, nonce=u32),
    p.Identify: st.builds(
        p.Identify,
        **header(),
        fw_major=u8,
        fw_minor=u8,
        fw_patch=u16,
        comfort_limit=f32,
        max_slew=f32,
        state_rate=f32,
        bus_index=u16,
        bus_count=u16,
        nonce=u32,
    ),
    p.State: st.builds(
        p.State,
        **header(),
        device_time_us=st.integers(0, 2**64 - 1),
        phase=f32,
        frequency=f32,
        frequency_offset=f32,
        offset_target=f32,
        intensity=f32,
        status=u8,
        battery=u8,
    ),
    p.Command: st.builds(p.Command, **header(), frequency_offset=f32, intensity=f32),
    p.Heartbeat: st.builds(p.Heartbeat, **header(), time_us=st.integers(0, 2**64 - 1), flags=u8),
    p.Error: st.builds(
        p.Error,
        **header(),
        code=u8,
        ref_type=u8,
        ref_seq=u16,
        text=st.text(max_size=40).filter(lambda s: len(s.encode()) <= 200),
    ),
}
any_message = st.one_of(*MSG_STRATEGIES.values())


# ------------------------------------------------------------------------------------------- vectors
def test_crc16_check_values():
    assert p.crc16_ccitt_false(b"123456789") == 0x29B1  # catalogue check value of CRC-16/CCITT-FALSE
    assert p.crc16_ccitt_false(b"") == 0xFFFF
    assert p.crc16_ccitt_false(b"\x00") == 0xE1F0
    assert p.crc16_ccitt_false(bytes(range(256))) == 0x3FBD


@pytest.mark.parametrize(
    "raw,enc",
    [
        (b"", b"\x01"),
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
        (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    ],
)
def test_cobs_vectors(raw, enc):
    assert p.cobs_encode(raw) == enc
    assert p.cobs_decode(enc) == raw


@settings(database=None)  # failures worth keeping go to test/corpus/jewel_protocol/
@given(st.binary(max_size=1200))
def test_cobs_roundtrip(data):
    enc = p.cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert p.cobs_decode(enc) == data


def test_known_frame_bytes():
    """Golden frame, also written in docs/jewel_protocol.md."""
    frame = p.encode(p.Command(jewel_id=0x01020304, seq=1, frequency_offset=0.125, intensity=0.5))
    raw = p.cobs_decode(frame[1:-1])
    assert raw[:8] == bytes([0x10, 0x04, 0x01, 0x00, 0x04, 0x03, 0x02, 0x01])
    assert raw[8:16] == struct.pack("<ff", 0.125, 0.5)
    assert struct.unpack("<H", raw[16:])[0] == p.crc16_ccitt_false(raw[:16])
    assert frame == bytes.fromhex("000410040105040302010101023e0101043faeed00")
    assert frame[0] == 0 and frame[-1] == 0 and 0 not in frame[1:-1]


# ------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("cls", list(MSG_STRATEGIES))
def test_every_type_default_roundtrip(cls):
    msg = cls(jewel_id=42, seq=65535)
    assert p.decode_stream(p.encode(msg)) == [msg]


@settings(database=None, max_examples=300, deadline=None)
@given(any_message)
def test_roundtrip_any_message(msg):
    frame = p.encode(msg)
    assert len(frame) <= p.MAX_ENCODED + 2
    assert p.decode_stream(frame) == [msg]


def test_nan_passes_codec_unchanged():
    """The codec carries values; validating them is the backend's job (it must see the NaN to reject it)."""
    (m,) = p.decode_stream(p.encode(p.Command(1, 1, float("nan"), 0.5)))
    assert math.isnan(m.frequency_offset)


def test_newer_minor_accepts_known_fields_and_ignores_extension():
    body = p.Command(5, 9, 0.1, 0.25).body() + b"\xaa\xbb\xcc"  # v1.3 appended 3 bytes we do not know
    frame = p.build_frame(p.T_COMMAND, 5, 9, body, version=0x13)
    (m,) = p.decode_stream(frame)
    assert m.jewel_id == 5 and m.intensity == 0.25 and abs(m.frequency_offset - 0.1) < 1e-7


def test_same_minor_with_wrong_length_rejected():
    d = p.StreamDecoder()
    body = p.Command(5, 9, 0.1, 0.25).body()
    assert d.feed(p.build_frame(p.T_COMMAND, 5, 9, body + b"\x01")) == []
    assert d.feed(p.build_frame(p.T_COMMAND, 5, 9, body[:-1], version=0x17)) == []  # too short even for newer minor
    assert d.errors["bad_length"] == 2


def test_unknown_major_rejected_and_counted():
    d = p.StreamDecoder()
    body = p.Command(5, 9, 0.1, 0.25).body()
    assert d.feed(p.build_frame(p.T_COMMAND, 5, 9, body, version=0x20)) == []
    assert d.errors["unsupported_version"] == 1
    assert d.last_errors[-1].kind == "unsupported_version" and d.last_errors[-1].seq == 9


def test_unknown_type_counted_with_its_header():
    d = p.StreamDecoder()
    assert d.feed(p.build_frame(0x42, 7, 11, b"whatever")) == []
    assert d.errors["unknown_type"] == 1
    e = d.last_errors[-1]
    assert (e.msg_type, e.jewel_id, e.seq) == (0x42, 7, 11)


def test_crc_error_short_and_oversize():
    d = p.StreamDecoder()
    good = p.encode(p.Heartbeat(0, 1, 5, 0))
    assert d.feed(p.encode(p.Heartbeat(0, 1, 5, 0), corrupt_crc=True)) == []
    assert d.errors["crc"] == 1
    assert d.feed(b"\x00" + p.cobs_encode(b"\x10\x05\x00") + b"\x00") == []
    assert d.errors["short"] == 1
    assert d.feed(b"\x00" + b"\x07" * 5000 + b"\x00") == []  # oversize frame, delivered in one chunk
    for _ in range(50):  # and dribbled
        d.feed(b"\x09" * 100)
    assert d.errors["oversize"] == 2
    assert d.feed(good) == [p.Heartbeat(0, 1, 5, 0)]  # resynchronised at the next delimiter


# ------------------------------------------------------------------------------------------- fuzzing
@settings(database=None, max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.lists(st.integers(1, 300), max_size=40))
def test_random_bytes_never_raise(data, cuts):
    d = p.StreamDecoder()
    pos = 0
    for c in cuts:
        d.feed(data[pos : pos + c])
        pos += c
    d.feed(data[pos:])
    assert d.bytes_in == len(data)
    d.feed(b"\x00")
    # after a delimiter, a valid frame always comes through
    assert d.feed(p.encode(p.Heartbeat(1, 2, 3, 4))) == [p.Heartbeat(1, 2, 3, 4)]


@settings(database=None, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(any_message, st.binary(max_size=80)), min_size=1, max_size=25),
    st.lists(st.integers(1, 64), min_size=1, max_size=60),
    st.binary(max_size=400),
)
def test_chunked_stream_with_garbage_recovers_every_frame(items, cuts, lead):
    stream = bytearray(lead)  # junk before the first frame (may be a truncated frame)
    expected = []
    for msg, garbage in items:
        stream += garbage
        stream += p.encode(msg)
        expected.append(msg)
    d = p.StreamDecoder()
    got = []
    pos, i = 0, 0
    while pos < len(stream):
        c = cuts[i % len(cuts)]
        got.extend(d.feed(stream[pos : pos + c]))
        pos += c
        i += 1
    # every valid frame is recovered, in order (garbage could in principle form an extra valid frame)
    it = iter(got)
    assert all(any(g == m for g in it) for m in expected), (expected, got)
    assert d.frames_ok == len(got)


def test_truncated_frame_then_valid_frame():
    a = p.encode(p.State(3, 1, 10, 0.5, 1.0, 0.0, 0.0, 1.0, 0, 90))
    b = p.encode(p.State(3, 2, 20, 0.6, 1.0, 0.0, 0.0, 1.0, 0, 90))
    d = p.StreamDecoder()
    got = d.feed(a[:-7]) + d.feed(b)  # a lost its tail: its remains + b's leading delimiter form a bad frame
    assert [m.seq for m in got] == [2]
    assert sum(d.errors.values()) == 1


# ------------------------------------------------------------------------------------------- corpus
def corpus_files():
    return sorted(CORPUS.glob("*.bin"))


def test_corpus_present():
    assert len(corpus_files()) >= 8


@pytest.mark.parametrize("path", corpus_files(), ids=lambda pth: pth.name)
def test_corpus_replay(path):
    data = path.read_bytes()
    expect_path = path.with_suffix(".json")
    expect = json.loads(expect_path.read_text()) if expect_path.exists() else {}
    rng = random.Random(path.name)
    for chunking in ("whole", "bytewise", "random"):
        d = p.StreamDecoder()
        got = []
        if chunking == "whole":
            got = d.feed(data)
        elif chunking == "bytewise":
            for i in range(len(data)):
                got += d.feed(data[i : i + 1])
        else:
            pos = 0
            while pos < len(data):
                c = rng.randint(1, 97)
                got += d.feed(data[pos : pos + c])
                pos += c
        if "messages" in expect:
            assert len(got) == expect["messages"], chunking
        for k, v in expect.get("errors", {}).items():
            assert d.errors[k] == v, (chunking, k, dict(d.errors))
        if "types" in expect:
            assert [type(m).__name__ for m in got] == expect["types"]
