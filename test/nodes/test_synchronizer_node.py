"""The synchronizer node over DDS: locks simulated plazas, rejects bad input and never uses it, declares its
parameters from the SyncConfig settings and validates live updates against them, takes Bio-Dream feedback."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
from rclpy.parameter import parameter_value_to_python
from rclpy.serialization import serialize_message

from lumina_nodes.fastpath import from_field, to_field
from lumina_nodes.kernels.phase_lock import SyncConfig
from lumina_nodes.msg import BioDreamSample, JewelCommandBatch, JewelStateBatch, SyncState
from lumina_nodes.nodes.common import BATCH_QOS, SAMPLES_QOS, STATE_QOS
from lumina_nodes.phase import TWO_PI, wrap_phase

SETTINGS = {field.name: setting for field, setting in SyncConfig.settings()}


def start_city(processes, plazas=2, jewels=100, sync_args=()):
    for k in range(1, plazas + 1):
        processes.start_node(
            "jewel_driver",
            "-r",
            f"__ns:=/plaza_{k}",
            "-p",
            f"jewel_count:={jewels}",
            "-p",
            f"first_id:={(k - 1) * jewels + 1}",
            "-p",
            f"seed:={k}",
        )
    return processes.start_node("synchronizer", *sync_args)


def test_synchronizer_locks_two_simulated_plazas(processes, ros_node):
    start_city(processes)
    states, commands = [], []
    ros_node.node.create_subscription(SyncState, "/sync/state", states.append, STATE_QOS)
    ros_node.node.create_subscription(JewelCommandBatch, "/plaza_2/jewels/command", commands.append, BATCH_QOS)
    ros_node.spin_until(lambda: states and states[-1].jewels_active == 200, 20, "both plazas reporting")
    started = states[-1].header.stamp.sec + states[-1].header.stamp.nanosec * 1e-9
    ros_node.spin_until(lambda: states[-1].order_parameter >= 0.95, 10, "r >= 0.95")
    locked = states[-1].header.stamp.sec + states[-1].header.stamp.nanosec * 1e-9
    assert locked - started < 6.0
    ros_node.spin_for(3.0)
    last = states[-1]
    assert last.order_parameter > 0.99
    assert last.rms_phase_error < 0.1
    assert last.lock_fraction > 0.9
    assert {p.driver_id for p in last.plazas} == {"plaza_1", "plaza_2"}
    assert all(p.order_parameter > 0.95 for p in last.plazas)
    assert 0.9 < last.collective_frequency < 1.1
    assert last.timing.ticks > 100 and last.timing.latency_p50 < 0.02
    # commands go to the right driver, cover its jewels, stay inside the comfort limit
    command = commands[-1]
    assert command.driver_id == "plaza_2"
    assert sorted(from_field(command.ids, np.uint32).tolist()) == list(range(101, 201))
    offsets = from_field(command.frequency_offset, np.float64)
    assert np.all(np.abs(offsets) <= 0.25 + 1e-12)
    assert len(command.intensity) == 0


def state_batch(ros_node, ids, phase, frequency, offset=None, age=None, stamp_shift=0.0, driver_id="fake"):
    n = len(ids)
    msg = JewelStateBatch(driver_id=driver_id)
    now = ros_node.node.get_clock().now().nanoseconds * 1e-9 + stamp_shift
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
    msg.ids = to_field(ids, np.uint32)
    msg.phase = to_field(phase, np.float64)
    msg.frequency = to_field(frequency, np.float64)
    msg.frequency_offset = to_field(np.zeros(n) if offset is None else offset, np.float64)
    msg.sample_age = to_field(np.zeros(n) if age is None else age, np.float64)
    return msg


def latest_loop_values(diagnostics):
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name.endswith("synchronizer: loop"):
                return {kv.key: kv.value for kv in status.values}
    return {}


def follow_fake_driver(processes, ros_node, *sync_args):
    """A synchronizer following the driver /fake, which the test plays: its state publisher and what it hears."""
    processes.start_node("synchronizer", "-p", "drivers:=[/fake]", *sync_args)
    fake = SimpleNamespace(states=[], diagnostics=[], commands=[])
    ros_node.node.create_subscription(SyncState, "/sync/state", fake.states.append, STATE_QOS)
    ros_node.node.create_subscription(DiagnosticArray, "/diagnostics", fake.diagnostics.append, 10)
    ros_node.node.create_subscription(JewelCommandBatch, "/fake/jewels/command", fake.commands.append, BATCH_QOS)
    fake.pub = ros_node.node.create_publisher(JewelStateBatch, "/fake/jewels/state", BATCH_QOS)
    ros_node.wait_for_subscribers("/fake/jewels/state")
    # the graph can list the synchronizer's subscription before this writer has matched it: a batch published in
    # between is not delivered (volatile), or arrives after its samples expired (seen once in CI)
    ros_node.spin_until(lambda: fake.pub.get_subscription_count() >= 1, 10, "the state writer matched")
    return fake


@pytest.fixture
def fake_driver(processes, ros_node):
    return follow_fake_driver(processes, ros_node)


def command_offsets(command):
    """{jewel id: commanded offset, Hz} of one JewelCommandBatch."""
    ids = from_field(command.ids, np.uint32).tolist()
    return dict(zip(ids, from_field(command.frequency_offset, np.float64).tolist(), strict=True))


def test_bad_state_input_is_rejected_counted_and_never_used(fake_driver, processes, ros_node):
    pub, states, diagnostics = fake_driver.pub, fake_driver.states, fake_driver.diagnostics
    ids = np.arange(1, 11, dtype=np.uint32)
    good = np.linspace(-3, 3, 10)
    freq = np.full(10, 1.0)

    phase = good.copy()
    phase[0] = np.nan  # non-finite phase: that element only
    pub.publish(state_batch(ros_node, ids, phase, freq))
    bad_freq = freq.copy()
    bad_freq[1] = -1.0  # impossible frequency
    pub.publish(state_batch(ros_node, ids, good, bad_freq))
    dup = ids.copy()
    dup[3] = dup[2]  # duplicate ids: both rejected
    pub.publish(state_batch(ros_node, dup, good, freq))
    ros_node.spin_for(0.2)  # the fake driver's publisher keeps the last 5 batches (BATCH_QOS): not a burst of 7
    none = ids.copy()
    none[4] = 0xFFFFFFFF  # JEWEL_NONE, "no jewel": never a jewel id
    pub.publish(state_batch(ros_node, none, good, freq))
    mismatched = state_batch(ros_node, ids, good, freq)
    mismatched.phase = to_field(good[:7], np.float64)  # mismatched lengths: whole message
    pub.publish(mismatched)
    # ten more jewels, at 2 Hz, whose only report is stamped an hour ahead
    pub.publish(state_batch(ros_node, ids + 10, good, 2 * freq, stamp_shift=3600.0))

    def counted():
        values = latest_loop_values(diagnostics)
        return values.get("rejected_length_mismatch") == "10"

    ros_node.spin_until(counted, 10, "diagnostics counting the rejects")
    ros_node.spin_for(1.5)  # the next diagnostics round carries every counter
    values = latest_loop_values(diagnostics)
    rejected = {k[len("rejected_") :]: int(v) for k, v in values.items() if k.startswith("rejected_")}
    assert rejected == {
        "non_finite": 1,
        "bad_frequency": 1,
        "duplicate_id": 2,
        "reserved_id": 1,
        "length_mismatch": 10,
        "future_sample": 10,
    }
    # the node keeps running and only valid samples count: jewels 1..10 at 1 Hz (had the 2 Hz jewels or the
    # -1 Hz sample been used, the collective frequency would show it; the NaN phase would make r NaN)
    assert processes.processes[0].running()
    reporting = [m for m in states if m.jewels_active]
    assert reporting and max(m.jewels_active for m in reporting) == 10
    assert all(m.collective_frequency == 1.0 and math.isfinite(m.order_parameter) for m in reporting)


def call(ros_node, service_type, name, request):
    """Call a service from the test node, as a `ros2 service call` would; return the response."""
    client = ros_node.node.create_client(service_type, name)
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(request)
    ros_node.spin_until(future.done, 10, f"{name} response")
    return future.result()


def set_parameter(ros_node, name, value):
    """Set one double parameter of the synchronizer, as `ros2 param set` would; return its SetParametersResult."""
    parameter = Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))
    request = SetParameters.Request(parameters=[parameter])
    return call(ros_node, SetParameters, "/synchronizer/set_parameters", request).results[0]


def test_declared_parameters_are_the_config_settings(processes, ros_node):
    """What `ros2 param describe /synchronizer <name>` shows for each SyncConfig field is its Setting."""
    processes.start_node("synchronizer", "-p", "drivers:=[/none]")
    names = list(SETTINGS)
    described = call(
        ros_node, DescribeParameters, "/synchronizer/describe_parameters", DescribeParameters.Request(names=names)
    )
    values = call(ros_node, GetParameters, "/synchronizer/get_parameters", GetParameters.Request(names=names))
    defaults = SyncConfig()
    for name, descriptor, value in zip(names, described.descriptors, values.values, strict=True):
        setting = SETTINGS[name]
        assert descriptor.name == name
        assert setting.description in descriptor.description, (name, descriptor.description)
        assert descriptor.read_only == setting.read_only, name
        assert parameter_value_to_python(value) == getattr(defaults, name), name
        if setting.low is None:  # a name or a flag
            assert not descriptor.floating_point_range and not descriptor.integer_range, name
        elif setting.integer:
            assert descriptor.type == ParameterType.PARAMETER_INTEGER, name
            assert (descriptor.integer_range[0].from_value, descriptor.integer_range[0].to_value) == (
                setting.low,
                setting.high,
            ), name
        else:
            assert descriptor.type == ParameterType.PARAMETER_DOUBLE, name
            assert (descriptor.floating_point_range[0].from_value, descriptor.floating_point_range[0].to_value) == (
                setting.low,
                setting.high,
            ), name


def test_live_updates_are_validated_against_the_settings_and_applied(processes, ros_node):
    processes.start_node("synchronizer", "-p", "drivers:=[/none]")
    states = []
    ros_node.node.create_subscription(SyncState, "/sync/state", states.append, STATE_QOS)
    ok = set_parameter(ros_node, "lock_threshold_rad", 0.2)
    assert ok.successful, ok.reason
    ros_node.spin_until(lambda: states and states[-1].lock_threshold == 0.2, 5, "the new lock threshold in use")
    # beyond the declared range: refused by the descriptor, naming the range
    kp = SETTINGS["kp"]
    rejected = set_parameter(ros_node, "kp", kp.high + 1.0)
    assert not rejected.successful and f"Min: {kp.low}, Max: {kp.high}" in rejected.reason, rejected.reason
    threshold = SETTINGS["lock_threshold_rad"]
    rejected = set_parameter(ros_node, "lock_threshold_rad", 4.0)
    assert not rejected.successful and f"Max: {threshold.high}" in rejected.reason, rejected.reason
    # an open low bound, which a descriptor range cannot express: refused by SyncConfig.validate()
    offset = SETTINGS["max_offset_hz"]
    rejected = set_parameter(ros_node, "max_offset_hz", offset.low)
    assert offset.low_open and not rejected.successful
    assert f"max_offset_hz must be in {offset.range_text()}" in rejected.reason, rejected.reason
    rejected = set_parameter(ros_node, "rate_hz", 20.0)
    assert not rejected.successful and "read-only" in rejected.reason, rejected.reason
    # the refused threshold is not in use
    states.clear()
    ros_node.spin_until(lambda: states, 5, "sync state")
    assert states[-1].lock_threshold == 0.2


@pytest.mark.parametrize("mode", ["kuramoto"])
def test_plain_kuramoto_mode_runs_as_reference(processes, ros_node, mode):
    start_city(processes, plazas=1, jewels=100, sync_args=("-p", f"mode:={mode}", "-p", "kuramoto_coupling:=2.507"))
    states = []
    ros_node.node.create_subscription(SyncState, "/sync/state", states.append, STATE_QOS)
    ros_node.spin_until(lambda: states and states[-1].jewels_active == 100, 20, "the plaza reporting")
    assert states[-1].mode == SyncState.MODE_KURAMOTO
    ros_node.spin_until(lambda: states[-1].order_parameter >= 0.9, 20, "plain Kuramoto reaching r >= 0.9")


def test_stale_elements_are_not_ingested_nor_counted_as_rejects(fake_driver, ros_node):
    pub, states, diagnostics = fake_driver.pub, fake_driver.states, fake_driver.diagnostics
    msg = state_batch(ros_node, np.arange(1, 11, dtype=np.uint32), np.zeros(10), np.ones(10), age=np.full(10, 5.0))
    status = np.zeros(10, np.uint8)
    status[:4] = JewelStateBatch.STATUS_STALE  # these repeat 5 s old reports
    status[4] = JewelStateBatch.STATUS_FAULT
    msg.status = to_field(status, np.uint8)
    msg.sample_age = to_field(np.where(status, 5.0, 0.0), np.float64)
    pub.publish(msg)
    # the stale and faulty jewels are known (their ids get slots and commands) but carry no sample
    ros_node.spin_until(lambda: states and states[-1].jewels_total == 10, 10, "the batch registered")
    assert states[-1].jewels_active == 5
    ros_node.spin_until(lambda: fake_driver.commands, 5, "a command batch")
    assert sorted(command_offsets(fake_driver.commands[-1])) == list(range(1, 11))
    diagnostics.clear()
    ros_node.spin_until(lambda: latest_loop_values(diagnostics), 5, "diagnostics")
    assert not any(k.startswith("rejected_") for k in latest_loop_values(diagnostics))


def test_biodream_sample_scales_the_coupling_of_its_jewel_only(processes, ros_node):
    # P-only control (ki 0): a settled command is coupling scale * kp * phase error. These jewels ignore their
    # commands, which the estimate filter's plant model does not expect (it carries an estimate forward at a rate
    # between reported and commanded): estimate_gain 1 takes every report as it is, so the errors are the reports'
    stage_gains = [1.0, 1.0, 0.8, 0.5, 0.9]
    fake = follow_fake_driver(
        processes, ros_node, "-p", "ki:=0.0", "-p", "estimate_gain:=1.0", "-p", f"coupling_by_stage:={stage_gains}"
    )
    ids = np.arange(1, 11, dtype=np.uint32)
    ahead = np.zeros(10)
    ahead[2:5] = 0.3  # jewels 3, 4 and 5 run 0.3 rad ahead of the others: the same phase error

    def report():  # jewels at exactly 1 Hz that ignore their commands: the errors stay constant
        msg = state_batch(ros_node, ids, np.zeros(10), np.ones(10))
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        msg.phase = to_field(wrap_phase(ahead + TWO_PI * stamp), np.float64)  # the phases at the stamp exactly
        fake.pub.publish(msg)

    ros_node.node.create_timer(0.02, report)
    ros_node.spin_until(lambda: fake.states and fake.states[-1].jewels_active == 10, 10, "the jewels reporting")
    ros_node.spin_for(1.0)  # commands settle through the slew limit
    before = command_offsets(fake.commands[-1])
    assert abs(before[3]) > 0.05
    assert before[3] == pytest.approx(before[4], rel=1e-3) and before[3] == pytest.approx(before[5], rel=1e-3)

    samples = ros_node.node.create_publisher(BioDreamSample, "/biodream/samples", SAMPLES_QOS)
    ros_node.wait_for_subscribers("/biodream/samples")
    probabilities = [0.0, 0.0, 0.1, 0.9, 0.0]
    deep = BioDreamSample(
        participant_id="p1",
        jewel_id=3,
        stage=BioDreamSample.STAGE_N3,
        signal_quality=0.9,
        stage_probability=probabilities,
    )
    unknown = BioDreamSample(
        participant_id="p2",
        jewel_id=999,
        stage=BioDreamSample.STAGE_N2,
        signal_quality=0.9,
        stage_probability=[0.0, 0.0, 1.0, 0.0, 0.0],
    )
    broken = BioDreamSample(
        participant_id="p3",
        jewel_id=4,
        stage=BioDreamSample.STAGE_N2,
        signal_quality=0.9,
        stage_probability=[float("nan"), 0.0, 1.0, 0.0, 0.0],
    )
    for sample in (deep, unknown, broken):
        samples.publish(sample)
    fake.diagnostics.clear()
    ros_node.spin_until(
        lambda: "rejected_biodream_invalid" in latest_loop_values(fake.diagnostics), 10, "the invalid sample counted"
    )
    values = latest_loop_values(fake.diagnostics)
    assert {k: v for k, v in values.items() if k.startswith("rejected_")} == {
        "rejected_biodream_unknown_jewel": "1",
        "rejected_biodream_invalid": "1",
    }
    ros_node.spin_for(1.0)
    after = command_offsets(fake.commands[-1])
    # the deep-sleep sample was taken: jewel 3's coupling is the expected stage gain over its probabilities
    expected_scale = float(np.dot(probabilities, stage_gains))
    assert after[3] / after[5] == pytest.approx(expected_scale, rel=0.02), (after, expected_scale)
    # the rejected sample of jewel 4 changed nothing, nor did the sample of jewel 3 change anyone else's (the ratio
    # above already fails on a scale given to everyone; 5 % here: the commands are in the approach law's sqrt regime,
    # where a 0.5 ms re-anchoring of the reference after a stall of the loaded test process moves them ~4 %)
    assert after[4] == pytest.approx(after[5], rel=1e-3), (before, after)
    assert after[5] == pytest.approx(before[5], rel=0.05), (before, after)


def release(ros_node, plazas):
    """Set the synchronizer's released_plazas, as the orchestrator does; its SetParametersResult."""
    value = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=plazas)
    request = SetParameters.Request(parameters=[Parameter(name="released_plazas", value=value)])
    return call(ros_node, SetParameters, "/synchronizer/set_parameters", request).results[0]


def test_a_released_plaza_runs_free_and_rejoins(processes, ros_node):
    """released_plazas (the festival's reflective sessions): the plaza's jewels leave the collective field and
    their commands slew to 0 within the comfort limits; back in, they are pulled into the rhythm again."""
    start_city(processes)
    states, commands = [], []
    ros_node.node.create_subscription(SyncState, "/sync/state", states.append, STATE_QOS)
    ros_node.node.create_subscription(JewelCommandBatch, "/plaza_2/jewels/command", commands.append, BATCH_QOS)
    ros_node.spin_until(
        lambda: states and states[-1].order_parameter >= 0.95 and states[-1].jewels_active == 200, 30, "lock"
    )
    refused = release(ros_node, ["p"] * 65)
    assert not refused.successful and "released_plazas takes up to 64" in refused.reason
    assert release(ros_node, ["plaza_2"]).successful
    ros_node.spin_until(lambda: states[-1].jewels_active == 100 and states[-1].jewels_silent == 100, 5, "plaza_2 out")
    # 0.25 Hz at 0.5 Hz/s: at most 0.5 s to zero; never a step larger than the slew allows
    ros_node.spin_until(
        lambda: np.abs(from_field(commands[-1].frequency_offset, np.float64)).max() == 0.0, 5, "0 offsets"
    )
    offsets = np.array([from_field(c.frequency_offset, np.float64) for c in commands[-100:]])
    assert np.abs(np.diff(offsets, axis=0)).max() <= 0.5 * 0.1 + 1e-9  # slew x the largest tick gap here
    assert release(ros_node, [""]).successful
    ros_node.spin_until(lambda: states[-1].jewels_active == 200, 5, "plaza_2 back")
    ros_node.spin_until(
        lambda: states[-1].order_parameter >= 0.95 and all(p.order_parameter >= 0.9 for p in states[-1].plazas),
        15,
        "plaza_2 re-locked",
    )


def test_set_rhythm_requests_are_range_checked(processes, ros_node):
    """A reference may not jump (slew above the jewels' own limit) nor go where jewels cannot pulse (issue 15,
    item 4); a valid request is taken."""
    from lumina_nodes.srv import SetRhythm

    processes.start_node("synchronizer", "-p", "drivers:=[/none]")
    for frequency, slew, reason in (
        (1.0, 1e300, "slew_rate must be in (0, 0.5] Hz/s"),
        (1.0, 0.0, "slew_rate must be in (0, 0.5]"),
        (1.0, float("nan"), "slew_rate"),
        (-1.0, 0.01, "frequency must be 0 (follow the population) or in [0.1, "),
        (1e6, 0.01, "frequency must be 0"),
        (float("inf"), 0.01, "frequency must be 0"),
    ):
        response = call(ros_node, SetRhythm, "/sync/set_rhythm", SetRhythm.Request(frequency=frequency, slew_rate=slew))
        assert not response.accepted and reason in response.message, response.message
    response = call(ros_node, SetRhythm, "/sync/set_rhythm", SetRhythm.Request(frequency=1.1, slew_rate=0.01))
    assert response.accepted and "steering to 1.1 Hz" in response.message


def test_invalid_reports_and_stale_elements_are_counted_never_a_crash(fake_driver, processes, ros_node):
    """Issue 13 finding 5 through the node: a negative natural frequency, NaN sample ages and a phase beyond 2**36
    rad are counted rejects (WARN on /diagnostics); an unwrapped phase counter is taken; STALE/FAULT elements,
    whatever they carry, are neither used nor counted (the node passes them masked, not as a subset)."""
    pub, states, diagnostics = fake_driver.pub, fake_driver.states, fake_driver.diagnostics
    ids = np.arange(1, 21, dtype=np.uint32)
    phase = np.linspace(-3, 3, 20) + TWO_PI * 40.0  # an unwrapped counter 40 cycles on: taken
    freq, offset, age = np.full(20, 1.0), np.zeros(20), np.zeros(20)
    freq[0], offset[0] = 0.5, 10.0  # natural frequency -9.5 Hz
    age[1] = np.nan  # no sample time
    phase[2] = 1e12  # beyond 2**36 rad
    msg = state_batch(ros_node, ids, phase, freq, offset, age)
    status = np.zeros(20, np.uint8)
    status[[5, 6]] = JewelStateBatch.STATUS_STALE
    status[7] = JewelStateBatch.STATUS_FAULT | JewelStateBatch.STATUS_STALE
    garbage = from_field(msg.frequency, np.float64).copy()
    garbage[[5, 6, 7]] = -3.0  # stale/faulty elements: never looked at
    msg.frequency = to_field(garbage, np.float64)
    msg.status = to_field(status, np.uint8)
    pub.publish(msg)

    def counted():
        values = latest_loop_values(diagnostics)
        return "rejected_bad_phase" in values

    ros_node.spin_until(counted, 10, "diagnostics counting the rejects")
    values = latest_loop_values(diagnostics)
    rejected = {k[len("rejected_") :]: int(v) for k, v in values.items() if k.startswith("rejected_")}
    assert rejected == {"bad_natural_frequency": 1, "bad_sample_time": 1, "bad_phase": 1}
    loop = [s for a in diagnostics for s in a.status if s.name.endswith("synchronizer: loop")][-1]
    assert loop.level == b"\x01"  # WARN
    assert processes.processes[0].running()
    reporting = [m for m in states if m.jewels_active]  # a single batch: active until silence_timeout_s
    assert reporting and {m.jewels_active for m in reporting} == {20 - 3 - 3}
    assert all(m.collective_frequency == 1.0 for m in reporting)
    assert states[-1].jewels_total == 20  # the stale jewels are registered (commanded), just not sampled


# ------------------------------------------------------------------------------ issue 15, items 2 and 3: spoofed state
def locked_batch(ros_node, ids, driver_id="fake"):
    """A batch of jewels at exactly 1 Hz, all at the same phase (the plaza's r is 1), stamped now."""
    now = ros_node.node.get_clock().now().nanoseconds * 1e-9
    n = len(ids)
    return state_batch(ros_node, ids, np.full(n, wrap_phase(TWO_PI * now)), np.full(n, 1.0), driver_id=driver_id)


def keep_reporting(ros_node, pub, ids, driver_id="fake"):
    """A timer that publishes the fake driver's locked batch every 20 ms (spun by spin_until/spin_for)."""
    return ros_node.node.create_timer(0.02, lambda: pub.publish(locked_batch(ros_node, ids, driver_id)))


def loop_value(diagnostics, key):
    return int(float(latest_loop_values(diagnostics).get(key, "0")))


def test_an_oversized_batch_is_rejected_whole_and_registers_no_slot(processes, ros_node):
    fake = follow_fake_driver(processes, ros_node, "-p", "max_batch_jewels:=1000")
    ids = np.arange(1, 11, dtype=np.uint32)
    keep_reporting(ros_node, fake.pub, ids)
    ros_node.spin_until(lambda: fake.states and fake.states[-1].jewels_total == 10, 20, "the fake plaza reporting")
    flood = np.arange(100_000, 105_000, dtype=np.uint32)  # 5,000 valid-looking new ids, above the bound
    fake.pub.publish(locked_batch(ros_node, flood))
    ros_node.spin_until(
        lambda: loop_value(fake.diagnostics, "batches_rejected_batch_too_large") >= 1, 10, "the flood counted"
    )
    ros_node.spin_for(0.3)
    assert max(s.jewels_total for s in fake.states) == 10  # no slot was ever added for the flood
    assert int(float(latest_loop_values(fake.diagnostics)["jewel_slots"])) == 10
    assert all(len(c.ids) == 10 for c in fake.commands)  # nothing of it relayed to the driver


def test_bytes_that_are_no_state_batch_are_rejected_and_counted_and_the_plaza_keeps_its_lock(processes, ros_node):
    fake = follow_fake_driver(processes, ros_node)
    ids = np.arange(1, 11, dtype=np.uint32)
    keep_reporting(ros_node, fake.pub, ids)
    ros_node.spin_until(lambda: fake.states and fake.states[-1].jewels_total == 10, 20, "the fake plaza reporting")
    good = serialize_message(locked_batch(ros_node, ids))
    # the synchronizer reads the batch's bytes itself (fastpath.decode_state_batch): a count past the end, cut
    # bytes and big-endian CDR, published as they are
    past_end = bytearray(good)
    past_end[-4:] = (10**6).to_bytes(4, "little")  # the status count (the test's batches have no status)
    for data in (bytes(past_end), good[: len(good) // 2], b"\x00\x00\x00\x00" + good[4:]):
        fake.pub.publish(data)
    ros_node.spin_until(
        lambda: loop_value(fake.diagnostics, "batches_rejected_undecodable") >= 3, 10, "the three counted"
    )
    ros_node.spin_for(0.5)
    assert processes.processes[0].running()
    assert fake.states[-1].jewels_active == 10 and fake.states[-1].order_parameter > 0.99
    assert all(len(c.ids) == 10 for c in fake.commands)


def test_slots_of_jewels_silent_past_the_timeout_are_reclaimed(processes, ros_node):
    fake = follow_fake_driver(processes, ros_node, "-p", "reclaim_after_s:=1.0")
    ids = np.arange(1, 11, dtype=np.uint32)
    keep_reporting(ros_node, fake.pub, ids)
    ros_node.spin_until(lambda: fake.states and fake.states[-1].jewels_total == 10, 20, "the fake plaza reporting")
    fake.pub.publish(locked_batch(ros_node, np.arange(1, 3001, dtype=np.uint32)))  # once: 2,990 more jewels
    ros_node.spin_until(lambda: fake.states[-1].jewels_total == 3000, 10, "the extra jewels registered")
    ros_node.spin_until(lambda: fake.states[-1].jewels_total == 10, 15, "their slots reclaimed after they fell silent")
    ros_node.spin_for(0.5)
    last = fake.states[-1]
    assert last.jewels_total == 10 and last.jewels_active == 10
    assert sorted(from_field(fake.commands[-1].ids, np.uint32).tolist()) == list(range(1, 11))


def test_a_second_publisher_on_a_drivers_topic_is_rejected_and_the_plaza_keeps_its_r(fake_driver, ros_node):
    ids = np.arange(1, 21, dtype=np.uint32)
    keep_reporting(ros_node, fake_driver.pub, ids)
    states = fake_driver.states
    ros_node.spin_until(
        lambda: states and states[-1].plazas and states[-1].plazas[0].order_parameter > 0.99, 20, "the plaza at r 1"
    )
    spoof = ros_node.node.create_publisher(JewelStateBatch, "/fake/jewels/state", BATCH_QOS)  # a second gid
    ros_node.spin_until(lambda: spoof.get_subscription_count() >= 1, 10, "the spoofer matched")
    rng = np.random.default_rng(3)
    first = len(states)

    def flood():
        spoof.publish(state_batch(ros_node, ids, rng.uniform(-math.pi, math.pi, ids.size), np.full(ids.size, 1.0)))

    ros_node.node.create_timer(0.005, flood)  # valid-looking, scattered phases, 4x the driver's rate
    ros_node.spin_until(
        lambda: loop_value(fake_driver.diagnostics, "batches_rejected_foreign_publisher") >= 100,
        20,
        "the spoofer's batches rejected and counted",
    )
    during = states[first:]
    assert during and min(s.plazas[0].order_parameter for s in during if s.plazas) > 0.99


def test_a_batch_claiming_another_drivers_ids_is_rejected_for_those_ids(processes, ros_node):
    fake = follow_fake_driver(processes, ros_node, "-p", "drivers:=[/fake, /evil]")
    ids = np.arange(1, 11, dtype=np.uint32)
    keep_reporting(ros_node, fake.pub, ids)
    ros_node.spin_until(lambda: fake.states and fake.states[-1].jewels_total == 10, 20, "the fake plaza reporting")
    evil = ros_node.node.create_publisher(JewelStateBatch, "/evil/jewels/state", BATCH_QOS)
    ros_node.spin_until(lambda: evil.get_subscription_count() >= 1, 10, "the evil writer matched")
    keep_reporting(ros_node, evil, np.arange(6, 16, dtype=np.uint32), driver_id="evil")  # 5 of fake's ids
    ros_node.spin_until(lambda: loop_value(fake.diagnostics, "rejected_id_conflict") >= 50, 20, "conflicts counted")
    plazas = {p.driver_id: p for p in fake.states[-1].plazas}
    assert plazas["fake"].jewels_total == 10 and plazas["fake"].jewels_active == 10
    assert plazas["evil"].jewels_total == 5  # only its own ids 11..15
    assert fake.states[-1].jewels_total == 15


def test_an_all_rejected_batch_changes_nothing_the_synchronizer_commands(fake_driver, ros_node):
    ids = np.arange(1, 11, dtype=np.uint32)
    keep_reporting(ros_node, fake_driver.pub, ids)
    commands = fake_driver.commands
    ros_node.spin_until(lambda: len(commands) >= 10, 20, "commands to the fake driver")
    first = len(commands)
    bad = state_batch(ros_node, np.arange(500, 510, dtype=np.uint32), np.zeros(10), np.full(10, -1.0), driver_id="evil")
    fake_driver.pub.publish(bad)  # every element rejected (bad_frequency), and another driver_id
    ros_node.spin_until(
        lambda: loop_value(fake_driver.diagnostics, "batches_rejected_all_elements_rejected") >= 1,
        10,
        "the batch counted",
    )
    ros_node.spin_for(0.3)
    after = commands[first:]
    assert after and {c.driver_id for c in after} == {"fake"}
    assert all(sorted(from_field(c.ids, np.uint32).tolist()) == list(range(1, 11)) for c in after)


def test_a_phantom_namespace_that_stops_reporting_is_dropped(processes, ros_node):
    processes.start_node("synchronizer", "-p", "driver_timeout_s:=1.0")
    diagnostics = []
    ros_node.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    phantom = ros_node.node.create_publisher(JewelStateBatch, "/evil/jewels/state", BATCH_QOS)
    ros_node.spin_until(lambda: phantom.get_subscription_count() >= 1, 20, "the synchronizer following /evil")
    ids = np.arange(700, 710, dtype=np.uint32)
    timer = keep_reporting(ros_node, phantom, ids, driver_id="evil")
    ros_node.spin_until(lambda: ros_node.node.count_publishers("/evil/jewels/command") >= 1, 10, "commands to /evil")
    timer.cancel()  # the phantom falls silent
    ros_node.spin_until(
        lambda: (
            loop_value(diagnostics, "drivers_dropped") >= 1
            and not ros_node.node.count_publishers("/evil/jewels/command")
        ),
        15,
        "/evil dropped and its command publisher gone",
    )
    assert loop_value(diagnostics, "jewel_slots") == 0  # its jewels' slots freed
    keep_reporting(ros_node, phantom, ids, driver_id="evil")  # it reports again: followed again
    ros_node.spin_until(lambda: ros_node.node.count_publishers("/evil/jewels/command") >= 1, 10, "/evil followed again")
