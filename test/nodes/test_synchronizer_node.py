"""The synchronizer node over DDS: locks simulated plazas, rejects bad input, validates live parameters."""

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters

from lumina_nodes.fastpath import from_field, to_field
from lumina_nodes.msg import JewelCommandBatch, JewelStateBatch, SyncState
from lumina_nodes.nodes.common import BATCH_QOS, STATE_QOS


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


@pytest.fixture
def fake_driver(processes, ros_node):
    """A synchronizer following the driver /fake, played by the test: (state publisher, states, diagnostics)."""
    processes.start_node("synchronizer", "-p", "drivers:=[/fake]")
    states, diagnostics = [], []
    ros_node.node.create_subscription(SyncState, "/sync/state", states.append, STATE_QOS)
    ros_node.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    pub = ros_node.node.create_publisher(JewelStateBatch, "/fake/jewels/state", BATCH_QOS)
    ros_node.wait_for_subscribers("/fake/jewels/state")
    return pub, states, diagnostics


def test_bad_state_input_is_rejected_counted_and_never_used(fake_driver, processes, ros_node):
    pub, states, diagnostics = fake_driver
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
    mismatched = state_batch(ros_node, ids, good, freq)
    mismatched.phase = to_field(good[:7], np.float64)  # mismatched lengths: whole message
    pub.publish(mismatched)
    pub.publish(state_batch(ros_node, ids, good, freq, stamp_shift=3600.0))  # stamped an hour ahead

    def counted():
        values = latest_loop_values(diagnostics)
        return values.get("rejected_length_mismatch") == "10"

    ros_node.spin_until(counted, 10, "diagnostics counting the rejects")
    ros_node.spin_for(1.5)  # the next diagnostics round carries every counter
    values = latest_loop_values(diagnostics)
    rejected = {k[len("rejected_") :]: int(v) for k, v in values.items() if k.startswith("rejected_")}
    assert rejected.pop("length_mismatch") == 10
    assert sum(rejected.values()) >= 1 + 1 + 2 + 10, rejected
    assert any("future" in k or "stamp" in k for k, v in rejected.items() if v >= 10), rejected
    # the node keeps running and only valid jewels count
    ros_node.spin_until(lambda: states, 5, "sync state")
    assert processes.processes[0].running()
    assert states[-1].jewels_total <= 10


def set_parameter(ros_node, name, value):
    client = ros_node.node.create_client(SetParameters, "/synchronizer/set_parameters")
    assert client.wait_for_service(timeout_sec=10)
    parameter = Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))
    future = client.call_async(SetParameters.Request(parameters=[parameter]))
    ros_node.spin_until(future.done, 10, "set_parameters response")
    return future.result().results[0]


def test_live_gain_updates_are_validated(processes, ros_node):
    processes.start_node("synchronizer", "-p", "drivers:=[/none]")
    ok = set_parameter(ros_node, "kp", 3.0)
    assert ok.successful, ok.reason
    rejected = set_parameter(ros_node, "kp", -1.0)
    assert not rejected.successful and "kp" in rejected.reason
    rejected = set_parameter(ros_node, "max_offset_hz", 50.0)
    assert not rejected.successful and "max_offset_hz" in rejected.reason


@pytest.mark.parametrize("mode", ["kuramoto"])
def test_plain_kuramoto_mode_runs_as_reference(processes, ros_node, mode):
    start_city(processes, plazas=1, jewels=100, sync_args=("-p", f"mode:={mode}", "-p", "kuramoto_coupling:=2.507"))
    states = []
    ros_node.node.create_subscription(SyncState, "/sync/state", states.append, STATE_QOS)
    ros_node.spin_until(lambda: states and states[-1].jewels_active == 100, 20, "the plaza reporting")
    assert states[-1].mode == SyncState.MODE_KURAMOTO
    ros_node.spin_until(lambda: states[-1].order_parameter >= 0.9, 20, "plain Kuramoto reaching r >= 0.9")


def test_stale_elements_are_not_ingested_nor_counted_as_rejects(fake_driver, ros_node):
    pub, states, diagnostics = fake_driver
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
    diagnostics.clear()
    ros_node.spin_until(lambda: latest_loop_values(diagnostics), 5, "diagnostics")
    assert not any(k.startswith("rejected_") for k in latest_loop_values(diagnostics))


def test_biodream_feedback_is_taken_for_known_jewels_and_rejects_counted(fake_driver, ros_node):
    from lumina_nodes.msg import BioDreamSample

    pub, states, diagnostics = fake_driver
    pub.publish(state_batch(ros_node, np.arange(1, 11, dtype=np.uint32), np.zeros(10), np.ones(10)))
    ros_node.spin_until(lambda: states and states[-1].jewels_total == 10, 10, "the jewels registered")
    samples = ros_node.node.create_publisher(BioDreamSample, "/biodream/samples", STATE_QOS)
    ros_node.wait_for_subscribers("/biodream/samples")
    deep = BioDreamSample(
        participant_id="p1",
        jewel_id=3,
        stage=BioDreamSample.STAGE_N3,
        signal_quality=0.9,
        stage_probability=[0.0, 0.0, 0.1, 0.9, 0.0],
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
    diagnostics.clear()
    ros_node.spin_until(
        lambda: "rejected_biodream_invalid" in latest_loop_values(diagnostics), 10, "the invalid sample counted"
    )
    values = latest_loop_values(diagnostics)
    rejected = {k: v for k, v in values.items() if k.startswith("rejected_")}
    # the deep-sleep sample of jewel 3 was taken; only the other two were rejected
    assert rejected == {"rejected_biodream_unknown_jewel": "1", "rejected_biodream_invalid": "1"}
