"""The Bio-Dream sensor node in its own process: samples per participant per hop, a night faster than real time,
the EDF+ and BrainFlow backends, and configurations that cannot work."""

import signal
import sys

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy

from harness import PEERS
from lumina_nodes.constants import EXIT_CONFIG, JEWEL_NONE, SleepStage
from lumina_nodes.msg import BioDreamSample
from lumina_nodes.nodes.common import SAMPLES_QOS

sys.path.insert(0, str(PEERS))  # eeg_recordings


def stamp_seconds(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def subscribe(ros_node):
    samples, diagnostics = [], []
    ros_node.node.create_subscription(BioDreamSample, "/biodream/samples", samples.append, SAMPLES_QOS)
    ros_node.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    return samples, diagnostics


def latest_values(diagnostics, name_part):
    for array in reversed(diagnostics):
        for status in array.status:
            if name_part in status.name:
                return status, {kv.key: kv.value for kv in status.values}
    return None, {}


def test_sim_night_faster_than_real_time_one_sample_per_participant_per_hop(processes, ros_node):
    from rosgraph_msgs.msg import Clock

    samples, diagnostics = subscribe(ros_node)
    clock_pub = ros_node.node.create_publisher(
        Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    )
    processes.start_node(
        "biodream_sensor",
        *("-p", "participant_count:=3", "-p", "first_jewel_id:=101", "-p", "jewel_id_stride:=10"),
        *("-p", "hop_s:=10.0", "-p", "use_sim_time:=true", "-p", "seed:=4"),
    )
    ros_node.wait_for_publishers("/biodream/samples")
    # sim minutes in a few wall seconds: the node reads what its clock says is due; the clock runs until 27
    # epochs per participant (30 s to the first, then one every 10 s: 5 minutes) were scored
    sim = 1000.0
    while len(samples) < 3 * 27 and sim < 1600.0:
        sim += 0.5
        clock_pub.publish(Clock(clock=ros_time(sim)))
        ros_node.spin_for(0.005)
    assert len(samples) >= 3 * 27, f"{len(samples)} samples by sim time {sim}"
    by_participant = {}
    for msg in samples:
        by_participant.setdefault(msg.participant_id, []).append(msg)
    assert sorted(by_participant) == ["p101", "p111", "p121"]
    for pid, msgs in by_participant.items():
        assert {m.jewel_id for m in msgs} == {int(pid[1:])}
        stamps = np.array([stamp_seconds(m) for m in msgs])
        # the first epoch ends 30 s after the first sample, then one every hop (10 s), on the sim clock
        assert 1030.0 <= stamps[0] <= 1045.0, stamps[0]  # (the node reads from the first /clock it gets)
        assert np.allclose(np.diff(stamps), 10.0, atol=1e-6), np.diff(stamps)
        for m in msgs:
            p = np.asarray(m.stage_probability)
            if m.stage == SleepStage.UNKNOWN:
                assert np.all(p == 0) and m.signal_quality < 0.5
            else:
                assert abs(p.sum() - 1) < 1e-5 and m.stage == int(np.argmax(p)) and m.epoch_duration == 30.0
            assert np.isfinite([m.delta_power, m.theta_power, m.alpha_power, m.sigma_power]).all()
    # the three participants' EEG differ (seeded per participant, not copies)
    deltas = {pid: msgs[-1].delta_power for pid, msgs in by_participant.items()}
    assert len(set(deltas.values())) == 3

    # the diagnostics timer runs on the sim clock: keep it running until a report newer than the last epoch
    # arrives (the last report before the loop stopped can predate the 27th epoch)
    def sensor_values():
        return latest_values(diagnostics, "biodream_sensor: sensor")[1]

    stop = sim + 30.0
    while int(sensor_values().get("epochs_scored", 0)) < 27 and sim < stop:
        sim += 0.5
        clock_pub.publish(Clock(clock=ros_time(sim)))
        ros_node.spin_for(0.02)
    values = sensor_values()
    assert int(values["epochs_scored"]) >= 27 and int(values["samples_read"]) >= 290 * 256, values
    assert latest_values(diagnostics, "participant p111")[0] is not None


def test_participants_map_errors_name_the_key(processes, tmp_path):
    bad = tmp_path / "participants.yaml"
    bad.write_text("participants:\n  - id: a\n    jewel: 1\n  - id: b\n    jewel: one\n")
    sensor = processes.start_node("biodream_sensor", "-p", f"participants_file:={bad}")
    assert sensor.popen.wait(timeout=20) == EXIT_CONFIG
    assert "participants[1].jewel: must be a whole number" in sensor.output()
    twice = tmp_path / "twice.yaml"
    twice.write_text("participants:\n  - id: a\n    jewel: 1\n  - id: b\n    jewel: 1\n")
    sensor = processes.start_node("biodream_sensor", "-p", f"participants_file:={twice}")
    assert sensor.popen.wait(timeout=20) == EXIT_CONFIG
    assert "participants[1].jewel: jewel 1 is also worn by participants[0]" in sensor.output()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["-p", "backend:=edf", "-p", "edf_file:=/nonexistent.edf"], "needs a participants_file giving"),
        (["-p", "backend:=brainflow", "-p", "board_id:=0", "-p", "serial_port:=/dev/nonexistent"], "board"),
        (["-p", "hop_s:=40.0"], "hop"),
        (["-p", "backend:=tape"], "backend"),
    ],
    ids=["edf-without-labels", "board-that-will-not-open", "hop-longer-than-epoch", "unknown-backend"],
)
def test_configurations_that_cannot_work_exit_with_a_clear_error(processes, arguments, message):
    sensor = processes.start_node("biodream_sensor", *arguments)
    assert sensor.popen.wait(timeout=30) == EXIT_CONFIG, sensor.output()
    assert message in sensor.output() and "Traceback" not in sensor.output(), sensor.output()


def test_edf_recording_replayed_fast_is_staged_like_its_annotations(processes, ros_node, tmp_path):
    """An EDF+ file of simulated N2 and N3 with stage annotations, replayed at 20x: the staged epochs agree with
    the annotations (the node's own ground-truth comparison, and the published stages)."""
    from eeg_recordings import stage_epochs, write_edf

    stages = [SleepStage.N2] * 8 + [SleepStage.N3] * 8
    path = tmp_path / "night.edf"
    write_edf(path, [stage_epochs(stages, seed=21)], stages)
    participants = tmp_path / "participants.yaml"
    participants.write_text(f"participants:\n  - id: psg1\n    labels: [EEG Fpz-Cz]\n    file: {path}\n")
    samples, diagnostics = subscribe(ros_node)
    processes.start_node(
        "biodream_sensor",
        *("-p", "backend:=edf", "-p", f"participants_file:={participants}", "-p", "speed:=20.0"),
        *("-p", "hop_s:=30.0"),
    )
    ros_node.spin_until(lambda: len(samples) >= len(stages) - 1, 60, "every epoch of the recording")
    assert {m.participant_id for m in samples} == {"psg1"} and {m.jewel_id for m in samples} == {JEWEL_NONE}
    staged = [m.stage for m in samples[: len(stages)]]
    agreement = np.mean([s == t for s, t in zip(staged, stages[: len(staged)], strict=True)])
    assert agreement >= 0.75, (staged, stages)
    ros_node.spin_until(
        lambda: "ground_truth_agreement" in latest_values(diagnostics, "participant psg1")[1], 10, "ground truth"
    )
    _, values = latest_values(diagnostics, "participant psg1")
    assert float(values["ground_truth_agreement"]) >= 0.75


def ros_time(seconds):
    from builtin_interfaces.msg import Time

    return Time(sec=int(seconds), nanosec=int(round((seconds % 1) * 1e9)))


def test_brainflow_synthetic_board_on_the_wall_clock(processes, ros_node):
    """BrainFlow's synthetic board (offline, 250 Hz): two participants on channel pairs of one board, 5 s epochs
    every second; every sample is for a known participant and carries finite band powers."""
    samples, diagnostics = subscribe(ros_node)
    processes.start_node(
        "biodream_sensor",
        *("-p", "backend:=brainflow", "-p", "board_id:=-1", "-p", "participant_count:=2", "-p", "channels:=2"),
        *("-p", "epoch_s:=5.0", "-p", "hop_s:=1.0", "-p", "first_jewel_id:=7"),
    )
    ros_node.spin_until(lambda: len(samples) >= 6, 30, "samples from the synthetic board")
    assert {m.participant_id for m in samples} == {"p7", "p8"}
    assert {m.jewel_id for m in samples} == {7, 8}
    for m in samples:
        assert m.epoch_duration == 5.0 and 0.0 <= m.signal_quality <= 1.0
        assert np.isfinite([m.delta_power, m.theta_power, m.alpha_power, m.beta_power, m.gamma_power]).all()
        assert m.stage in set(SleepStage.members().values())
    # the two participants read different channels of the board
    first = {m.participant_id: m for m in samples[-2:]}
    assert first["p7"].delta_power != first["p8"].delta_power
    ros_node.spin_until(lambda: latest_values(diagnostics, "biodream_sensor: sensor")[0] is not None, 10, "diagnostics")
    _, values = latest_values(diagnostics, "biodream_sensor: sensor")
    assert values["backend"] == "brainflow" and float(values["sample_rate_hz"]) == 250.0


def stop_signals_taken(pid):
    """The process holds SIGINT and SIGTERM (blocked or caught, /proc/<pid>/status): the first line of the generated
    executable has run. Before that the interpreter itself is starting, and the kernel's default action applies."""
    mask = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
    taken = int(fields["SigBlk"], 16) | int(fields["SigCgt"], 16)
    return taken & mask == mask


def test_a_stop_signal_while_the_node_still_loads_is_a_clean_exit(processes):
    """A launch that ends at once (a short program on a small city) stops nodes that are still importing.

    The delays, counted from the moment the executable holds the stop signals (its first line), land in different
    stages of loading (numpy, rclpy, scipy, the backend) and in the running node; each must exit 0 without a
    traceback.
    """
    import time

    delays = (0.0, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.5, 3.0)
    sensors = [processes.start_node("biodream_sensor", "-r", f"__node:=loading_{i}") for i in range(len(delays))]
    taken, signalled = [None] * len(delays), [False] * len(delays)
    deadline = time.monotonic() + 20
    while not all(signalled):
        assert time.monotonic() < deadline, f"never took the stop signals: {taken}"
        for i, (sensor, delay) in enumerate(zip(sensors, delays, strict=True)):
            if taken[i] is None and stop_signals_taken(sensor.pid):
                taken[i] = time.monotonic()
            if taken[i] is not None and not signalled[i] and time.monotonic() >= taken[i] + delay:
                sensor.popen.send_signal(signal.SIGINT if i % 2 else signal.SIGTERM)
                signalled[i] = True
        time.sleep(0.001)
    sensors = [(sensor, None) for sensor in sensors]
    for delay, (sensor, _) in zip(delays, sensors, strict=True):
        assert sensor.popen.wait(timeout=20) == 0, (delay, sensor.output())
        assert "Traceback" not in sensor.output() and "KeyboardInterrupt" not in sensor.output(), delay
