"""The jewel driver node in its own process: state batches, commands, rejects, the disruption drill."""

import subprocess
import sys

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile
from rclpy.serialization import serialize_message

from harness import package_executable
from lumina_nodes.constants import EXIT_CONFIG, JewelStatus
from lumina_nodes.fastpath import from_field, to_field
from lumina_nodes.msg import JewelCommandBatch, JewelStateBatch
from lumina_nodes.nodes.common import BATCH_QOS
from lumina_nodes.phase import wrap_phase
from lumina_nodes.srv import InjectDisruption

NS = "/plaza_t"
FIRST_ID, COUNT = 1001, 200


@pytest.fixture
def driver(processes, ros_node):
    process = processes.start_node(
        "jewel_driver",
        "-r",
        f"__ns:={NS}",
        "-p",
        f"first_id:={FIRST_ID}",
        "-p",
        f"jewel_count:={COUNT}",
        "-p",
        "seed:=3",
        "-p",
        "dropout_rate:=0.0",
    )
    states, diagnostics = [], []
    # a deep history here: the test checks what the driver publishes (every batch, in order), and a keep-last 5
    # reader loses batches whenever this process stalls for 100 ms (BATCH_QOS's choice for real readers)
    deep = QoSProfile(depth=500, reliability=BATCH_QOS.reliability, durability=BATCH_QOS.durability)
    ros_node.node.create_subscription(JewelStateBatch, f"{NS}/jewels/state", states.append, deep)
    ros_node.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    command_pub = ros_node.node.create_publisher(JewelCommandBatch, f"{NS}/jewels/command", BATCH_QOS)
    ros_node.wait_for_publishers(f"{NS}/jewels/state")
    ros_node.wait_for_subscribers(f"{NS}/jewels/command")
    ros_node.spin_until(lambda: len(states) >= 3, 10, "state batches")
    return process, states, diagnostics, command_pub


def latest_values(diagnostics, name_part):
    for array in reversed(diagnostics):
        for status in array.status:
            if name_part in status.name:
                return {kv.key: kv.value for kv in status.values}
    return {}


def command(ids, offsets, intensity=None, driver_id="plaza_t"):
    msg = JewelCommandBatch(driver_id=driver_id)
    msg.ids = to_field(ids, np.uint32)
    msg.frequency_offset = to_field(offsets, np.float64)
    if intensity is not None:
        msg.intensity = to_field(intensity, np.float32)
    return msg


def test_state_batches_describe_the_plaza(driver, ros_node):
    _, states, _, _ = driver
    states.clear()
    ros_node.spin_for(2.0)
    assert 80 <= len(states) <= 110, f"{len(states)} batches in 2 s at 50 Hz"
    seqs = [m.seq for m in states]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "batches lost or reordered"
    msg = states[-1]
    assert msg.driver_id == "plaza_t"
    ids = from_field(msg.ids, np.uint32)
    assert np.array_equal(np.sort(ids), np.arange(FIRST_ID, FIRST_ID + COUNT))
    phase = from_field(msg.phase, np.float64)
    frequency = from_field(msg.frequency, np.float64)
    assert np.all((phase >= -np.pi) & (phase < np.pi))
    assert 0.8 < frequency.mean() < 1.2 and 0.01 < frequency.std() < 0.15
    assert np.all(from_field(msg.sample_age, np.float64) >= 0)
    assert len(msg.intensity) == len(msg.status) == len(msg.frequency_offset) == COUNT
    # the stamps follow the 2 s of wall time the batches took
    first, last = states[0], states[-1]
    assert 1.5 < stamp_seconds(last) - stamp_seconds(first) < 2.5
    # phases advance at the reported frequencies: each fresh report, predicted from its measurement time
    # (stamp - sample_age) to the next batch's, lands on the next report (a phase that stood still would be off
    # by 2 pi f dt ~ 0.13 rad)
    residuals = []
    for before, after in zip(states[:-1], states[1:], strict=True):
        t0 = stamp_seconds(before) - from_field(before.sample_age, np.float64)
        t1 = stamp_seconds(after) - from_field(after.sample_age, np.float64)
        f0, f1 = from_field(before.frequency, np.float64), from_field(after.frequency, np.float64)
        predicted = from_field(before.phase, np.float64) + np.pi * (f0 + f1) * (t1 - t0)
        fresh = (from_field(before.status, np.uint8) | from_field(after.status, np.uint8)) & JewelStatus.STALE == 0
        residuals.append(wrap_phase(from_field(after.phase, np.float64) - predicted)[fresh])
    residuals = np.abs(np.concatenate(residuals))
    assert residuals.size > 50 * COUNT
    # (the model's phase diffusion makes a tail: a max of 0.054 rad was seen in 19,600 residuals)
    p50, p99, top = np.percentile(residuals, [50, 99, 100])
    assert p50 < 0.01 and p99 < 0.05 and top < 0.1, (p50, p99, top)


def test_commands_move_offsets_within_slew_limit(driver, ros_node):
    _, states, _, command_pub = driver
    ids = np.arange(FIRST_ID, FIRST_ID + COUNT, dtype=np.uint32)
    command_pub.publish(command(ids, np.full(COUNT, 0.2)))
    states.clear()
    ros_node.spin_for(0.3)
    early = from_field(states[-1].frequency_offset, np.float64)
    assert np.all(early < 0.2 - 0.02), "offset jumped instead of slewing at <= 0.5 Hz/s"
    ros_node.spin_until(
        lambda: np.allclose(from_field(states[-1].frequency_offset, np.float64), 0.2, atol=1e-6),
        3.0,
        "offsets reaching 0.2 Hz",
    )


def test_bad_commands_are_rejected_and_counted(driver, ros_node):
    _, states, diagnostics, command_pub = driver
    ids = np.arange(FIRST_ID, FIRST_ID + 10, dtype=np.uint32)
    offsets = np.full(10, 0.1)
    offsets[0] = np.nan  # non-finite
    offsets[1] = 0.9  # beyond the 0.25 Hz comfort limit
    bad_ids = ids.copy()
    bad_ids[2] = 999_999  # unknown id
    bad_ids[3] = bad_ids[4]  # duplicate: both rejected
    command_pub.publish(command(bad_ids, offsets))
    command_pub.publish(command(ids[:5], np.zeros(4)))  # length mismatch: whole batch
    command_pub.publish(command(ids, np.zeros(10), driver_id="plaza_x"))  # addressed to another driver
    command_pub.publish(command(ids, np.zeros(10), driver_id=""))  # addressed to no driver
    # bytes that are no command batch (the driver reads the bytes itself: fastpath.decode_command_batch)
    command_pub.publish(serialize_message(command(ids, np.zeros(10)))[:-9])
    diagnostics.clear()

    def counted():
        values = latest_values(diagnostics, "jewel_driver: driver")
        return values.get("command_batches_rejected") == "5"

    ros_node.spin_until(counted, 5, "diagnostics counting the rejected batches")
    values = latest_values(diagnostics, "jewel_driver: driver")
    assert values["command_rejected_non_finite"] == "1"
    assert values["command_rejected_offset_limit"] == "1"
    assert values["command_rejected_unknown_id"] == "1"
    assert values["command_rejected_duplicate_id"] == "2"
    assert values["command_rejected_length_mismatch"] == "5"
    assert values["command_elements_accepted"] == "5"
    assert values["command_rejected_wrong_driver"] == "10" and values["command_rejected_no_driver"] == "10"
    assert values["command_rejected_undecodable_batches"] == "1"

    # the valid elements of the mixed batch (ids[5:], 0.1 Hz) were applied, the rejected ones never used
    def offsets_now():
        latest = states[-1]
        offsets = from_field(latest.frequency_offset, np.float64)
        return dict(zip(from_field(latest.ids, np.uint32).tolist(), offsets, strict=True))

    ros_node.spin_until(
        lambda: all(abs(offsets_now()[i] - 0.1) < 1e-6 for i in ids[5:].tolist()), 3.0, "valid elements applied"
    )
    offset = offsets_now()
    assert [offset[i] for i in ids[:5].tolist()] == [0.0] * 5, "a rejected element was applied"
    assert offset[FIRST_ID + 10] == 0.0, "a jewel that was never commanded moved"


def test_disruption_drill_splits_frequencies_into_groups(driver, ros_node):
    _, states, _, _ = driver
    client = ros_node.node.create_client(InjectDisruption, f"{NS}/inject_disruption")
    assert client.wait_for_service(timeout_sec=10)
    request = InjectDisruption.Request(
        kind=InjectDisruption.Request.KIND_OVERLAPPING_FREQUENCIES, fraction=1.0, groups=2, separation=0.1, seed=5
    )
    future = client.call_async(request)
    ros_node.spin_until(future.done, 10, "inject_disruption response")
    response = future.result()
    assert response.accepted, response.message
    assert response.jewels_affected == COUNT
    states.clear()
    ros_node.spin_until(lambda: len(states) >= 2, 5, "state after the drill")
    msg = states[-1]
    natural = from_field(msg.frequency, np.float64) - from_field(msg.frequency_offset, np.float64)
    low, high = np.sort(natural)[: COUNT // 4], np.sort(natural)[-COUNT // 4 :]
    gap = np.diff(np.sort(natural)).max()
    assert high.mean() - low.mean() == pytest.approx(0.1, abs=0.03)
    assert gap > 0.03, "no gap between the two frequency groups"

    # requests that cannot work are refused with the reason, and the driver keeps going (issue 15, item 1)
    overlapping = InjectDisruption.Request.KIND_OVERLAPPING_FREQUENCIES
    for request, reason in (
        (InjectDisruption.Request(kind=9), "kind"),
        (InjectDisruption.Request(kind=overlapping, fraction=1.0, groups=4294967295, separation=0.1), "groups"),
        (InjectDisruption.Request(kind=overlapping, fraction=1.0, groups=2, separation=1e6), "separation"),
        (InjectDisruption.Request(kind=overlapping, fraction=1.0, groups=10, separation=1.0), "lowest band"),
        (InjectDisruption.Request(kind=overlapping, fraction=float("nan"), groups=2, separation=0.1), "fraction"),
        (InjectDisruption.Request(kind=InjectDisruption.Request.KIND_CLEAR, duration=-1.0), "duration"),
        (InjectDisruption.Request(kind=InjectDisruption.Request.KIND_LINK_DEGRADATION, report_loss=2.0), "report_loss"),
    ):
        bad = client.call_async(request)
        ros_node.spin_until(bad.done, 10, f"response to an invalid request ({reason})")
        assert not bad.result().accepted and reason in bad.result().message, bad.result().message
    states.clear()
    ros_node.spin_until(lambda: len(states) >= 2, 5, "state after the refused requests")
    assert (from_field(states[-1].frequency, np.float64) > 0).all()


def test_serial_driver_node_talks_to_the_emulator_on_a_pty(processes, ros_node, tmp_path):
    link = tmp_path / "ttyJEWEL"
    emulator = processes.start(
        [
            package_executable("jewel_emulator"),
            "--jewels",
            "6",
            "--first-id",
            "500",
            "--seed",
            "2",
            "--rate",
            "50",
            "--link",
            str(link),
        ],
        name="emulator",
    )
    emulator.wait_for_output(r"/dev/pts/\d+")
    # the bus carries ids 500..505; this gateway's plaza is 501..504 (first_id, jewel_count): the others are foreign
    processes.start_node(
        "jewel_driver",
        *("-r", "__ns:=/plaza_s", "-p", "backend:=serial", "-p", f"port:={link}"),
        *("-p", "first_id:=501", "-p", "jewel_count:=4"),
    )
    states = []
    ros_node.node.create_subscription(JewelStateBatch, "/plaza_s/jewels/state", states.append, BATCH_QOS)
    command_pub = ros_node.node.create_publisher(JewelCommandBatch, "/plaza_s/jewels/command", BATCH_QOS)
    ros_node.spin_until(lambda: states and len(states[-1].ids) == 4, 15, "states of the plaza's 4 emulated jewels")
    ros_node.spin_for(0.5)
    assert {len(m.ids) for m in states[-10:]} == {4}, "a jewel of another plaza was published"
    ids = from_field(states[-1].ids, np.uint32)
    assert sorted(ids.tolist()) == list(range(501, 505))
    assert np.all(np.abs(from_field(states[-1].phase, np.float64)) <= np.pi)
    ros_node.wait_for_subscribers("/plaza_s/jewels/command")
    command_pub.publish(command(ids, np.full(4, -0.1), driver_id="plaza_s"))
    ros_node.spin_until(
        lambda: np.allclose(from_field(states[-1].frequency_offset, np.float64), -0.1, atol=1e-3),
        5,
        "the emulated jewels applying the commanded offset",
    )


def test_driver_follows_sim_time_faster_than_real_time(processes, ros_node):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    clock_pub = ros_node.node.create_publisher(
        Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    )
    processes.start_node("jewel_driver", "-r", "__ns:=/plaza_sim", "-p", "jewel_count:=20", "-p", "use_sim_time:=true")
    states, diagnostics = [], []
    ros_node.node.create_subscription(JewelStateBatch, "/plaza_sim/jewels/state", states.append, BATCH_QOS)
    ros_node.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    command_pub = ros_node.node.create_publisher(JewelCommandBatch, "/plaza_sim/jewels/command", BATCH_QOS)
    ros_node.wait_for_subscribers("/clock")
    ros_node.wait_for_subscribers("/plaza_sim/jewels/command")
    ids = np.arange(1, 21, dtype=np.uint32)
    sim = 1000.0

    def tick(seconds):  # sim time runs 10x faster than the wall clock
        nonlocal sim
        for _ in range(int(seconds / 0.01)):
            sim += 0.1
            clock_pub.publish(Clock(clock=ros_node_time(sim)))
            for _ in range(5):  # a synchronizer's 50 Hz of sim time: 500 command batches per wall second
                command_pub.publish(command(ids, np.zeros(20), driver_id="plaza_sim"))
            ros_node.spin_for(0.01)

    tick(1.0)
    assert states, "no state batch under sim time"
    first = stamp_seconds(states[-1])
    tick(2.0)
    last = stamp_seconds(states[-1])
    assert 1000.0 <= first < 1012.0, first  # stamped with sim time, not the wall clock
    assert 15.0 < last - first < 25.0, (first, last)  # ~20 sim seconds in 2 wall seconds
    # max_command_rate_hz (100) counts on the node clock: at 10x, 500 batches per wall second are the 50 Hz of a
    # synchronizer on the same clock, none refused (on the wall clock, about 4 of 5 were)
    values = latest_values(diagnostics, "jewel_driver: driver")
    assert int(values["command_batches_accepted"]) > 1000, values
    assert "command_rejected_rate_limited" not in values, values


def stamp_seconds(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def ros_node_time(seconds):
    from builtin_interfaces.msg import Time

    return Time(sec=int(seconds), nanosec=int((seconds % 1) * 1e9))


def test_invalid_configuration_exits_with_a_clear_error(processes):
    driver = processes.start_node("jewel_driver", "-p", "backend:=serial")  # no port
    assert driver.popen.wait(timeout=20) == EXIT_CONFIG
    assert "backend 'serial' needs the 'port' parameter" in driver.output()
    sync = processes.start_node("synchronizer", "-p", "max_offset_hz:=-1.0")
    assert sync.popen.wait(timeout=20) == EXIT_CONFIG
    assert "max_offset_hz" in sync.output()


def test_a_missing_serial_device_is_logged_at_error_and_the_driver_keeps_trying(processes, tmp_path):
    """Issue 15 item 5: the reason was only on /diagnostics; the operator sees it in the log now."""
    port = tmp_path / "ttyNOTHERE"
    driver = processes.start_node("jewel_driver", "-p", "backend:=serial", "-p", f"port:={port}")
    driver.wait_for_output(rf"\[ERROR\].*jewel serial.*disconnected from {port}", timeout=20)
    assert driver.running()


def test_an_integer_for_a_double_parameter_is_the_number_meant(processes):
    """Issue 15 item 6: `sim_speed:=2` used to kill sim_clock with "expecting DOUBLE"; -1 gave a type message."""
    driver = processes.start_node("jewel_driver", "-p", "publish_rate_hz:=25")
    driver.wait_for_output(r"driver '.*' up: backend sim, 16 jewels, 25 Hz", timeout=20)
    clock = processes.start_node("sim_clock", "-p", "speed:=-1")
    assert clock.popen.wait(timeout=20) == EXIT_CONFIG
    out = clock.output()
    assert "speed" in out and "DOUBLE" not in out and "range" in out, out


def test_with_drills_false_there_is_no_inject_disruption_service(processes, ros_node):
    """A production plaza (drills:=false): it reports and takes commands, but no one can inject a disruption."""
    processes.start_node("jewel_driver", "-r", "__ns:=/plaza_p", "-p", "jewel_count:=10", "-p", "drills:=false")
    states = []
    ros_node.node.create_subscription(JewelStateBatch, "/plaza_p/jewels/state", states.append, BATCH_QOS)
    ros_node.spin_until(lambda: len(states) >= 10, 20, "state batches")
    ros_node.spin_until(
        lambda: "/plaza_p/jewel_driver/get_parameters" in dict(ros_node.node.get_service_names_and_types()),
        10,
        "the driver's services discovered",
    )
    services = dict(ros_node.node.get_service_names_and_types())
    assert "/plaza_p/inject_disruption" not in services, sorted(services)
    assert ros_node.node.count_subscribers("/plaza_p/jewels/command") == 1


def test_a_live_use_sim_time_switch_is_refused_and_the_plaza_keeps_reporting(processes, ros_node):
    """Switching a running driver to sim time used to stall its timers (the plaza fell silent, no diagnostic)."""
    processes.start_node("jewel_driver", "-r", "__ns:=/plaza_c", "-p", "jewel_count:=10")
    states = []
    ros_node.node.create_subscription(JewelStateBatch, "/plaza_c/jewels/state", states.append, BATCH_QOS)
    ros_node.spin_until(lambda: len(states) >= 5, 20, "state batches")
    result = subprocess.run(
        [package_executable("lumina"), "param", "set", "/plaza_c/jewel_driver", "use_sim_time", "true"],
        env=processes.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "use_sim_time is set at start-up only" in result.stderr, result.stderr
    seen = len(states)
    ros_node.spin_for(1.0)
    assert len(states) - seen >= 30, "the plaza stopped reporting"


# A second commander in its own process: valid zero offsets for every jewel of the plaza, as fast as it can
FLOODER = """
import sys, time
import numpy as np
import rclpy
from lumina_nodes.fastpath import to_field
from lumina_nodes.msg import JewelCommandBatch
from lumina_nodes.nodes.common import BATCH_QOS
topic, driver_id = sys.argv[1], sys.argv[4]
first, count, period = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[5])
rclpy.init()
node = rclpy.create_node("flooder")
pub = node.create_publisher(JewelCommandBatch, topic, BATCH_QOS)
ids = to_field(np.arange(first, first + count, dtype=np.uint32), np.uint32)
zeros = to_field(np.zeros(count), np.float64)
print("flooding", flush=True)
while True:
    pub.publish(JewelCommandBatch(driver_id=driver_id, ids=ids, frequency_offset=zeros))
    time.sleep(period)
"""


def start_flooder(processes, period_s=0.001):
    args = (f"{NS}/jewels/command", str(FIRST_ID), str(COUNT), "plaza_t", str(period_s))
    flooder = processes.start([sys.executable, "-c", FLOODER, *args], name="flooder")
    flooder.wait_for_output("flooding", timeout=20)
    return flooder


def test_a_second_commander_is_refused_while_the_synchronizer_commands(driver, ros_node, processes):
    """Issue 15 item 4: a flood of valid zero offsets from a second publisher pulled a plaza to r 0.18."""
    process, states, diagnostics, command_pub = driver
    ids = np.arange(FIRST_ID, FIRST_ID + COUNT, dtype=np.uint32)
    owner = ros_node.node.create_timer(0.02, lambda: command_pub.publish(command(ids, np.full(COUNT, 0.2))))
    ros_node.spin_for(0.5)  # the owner's batches taken first: the command topic is the owner's
    start_flooder(processes)
    ros_node.spin_for(2.0)
    offsets = from_field(states[-1].frequency_offset, np.float64)
    # every jewel at the owner's 0.2 Hz (slewed there at 0.5 Hz/s); the flood's zeros never applied
    assert np.all(np.abs(offsets - 0.2) < 1e-6), offsets
    values = latest_values(diagnostics, "jewel_driver: driver")
    assert int(values.get("command_rejected_foreign_publisher", "0")) > 100 * COUNT, values
    # the owner stops (its writer stays in the graph): after command_takeover_s the other publisher has the topic
    owner.cancel()
    process.wait_for_output(r"\[WARN\].*a new publisher took the command topic over", timeout=10)
    ros_node.spin_until(
        lambda: np.all(from_field(states[-1].frequency_offset, np.float64) == 0.0), 5, "the new owner's zeros"
    )


def test_commands_beyond_max_command_rate_hz_are_refused_and_counted(driver, ros_node, processes):
    _, states, diagnostics, _ = driver
    start_flooder(processes)  # the first commander, so the owner, at up to 1 kHz
    ros_node.spin_for(1.0)
    before = latest_values(diagnostics, "jewel_driver: driver")
    ros_node.spin_for(3.0)
    after = latest_values(diagnostics, "jewel_driver: driver")
    taken = int(after["command_batches_accepted"]) - int(before["command_batches_accepted"])
    refused = int(after.get("command_rejected_rate_limited", "0")) - int(
        before.get("command_rejected_rate_limited", "0")
    )
    # diagnostics come once a second: about 3 s of batches at the 100 Hz default, the rest refused
    assert 150 <= taken <= 450, (taken, refused)
    assert refused > 0 and refused % COUNT == 0, (taken, refused)
