"""The feedback loop, every part a process: a Bio-Dream sensor stages two participants from an EDF+ recording,
the synchronizer scales the pull on each one's jewel by their stage, and a participant's falling into deep sleep
changes the corrections commanded to their jewel only.

The driver is played by the test (its jewels hold constant phase errors and ignore their commands), and the
synchronizer runs P-only (ki 0), so a settled command is exactly coupling scale * kp * phase error: the ratio of
a worn jewel's command to an unworn one with the same error is that wearer's coupling scale.
"""

import sys

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray

from harness import PEERS
from lumina_nodes.constants import SleepStage
from lumina_nodes.fastpath import from_field, to_field
from lumina_nodes.msg import BioDreamSample, JewelCommandBatch, JewelStateBatch
from lumina_nodes.nodes.common import BATCH_QOS, SAMPLES_QOS
from lumina_nodes.phase import TWO_PI, wrap_phase

sys.path.insert(0, str(PEERS))  # eeg_recordings

STAGE_GAINS = [1.0, 1.0, 0.8, 0.4, 0.9]  # W N1 N2 N3 REM
EPOCHS_N2 = 6  # the recording: 6 epochs of N2 for both, then 6 more of N3 (A) or N2 (B)


def test_deep_sleep_of_one_participant_changes_only_their_jewels_corrections(processes, ros_node, tmp_path):
    from eeg_recordings import stage_epochs, write_edf

    a_stages = [SleepStage.N2] * EPOCHS_N2 + [SleepStage.N3] * EPOCHS_N2
    b_stages = [SleepStage.N2] * (2 * EPOCHS_N2)
    a_file, b_file = tmp_path / "a.edf", tmp_path / "b.edf"
    write_edf(a_file, [stage_epochs(a_stages, seed=31)], a_stages)
    write_edf(b_file, [stage_epochs(b_stages, seed=32)], b_stages)
    participants = tmp_path / "participants.yaml"
    participants.write_text(
        "participants:\n"
        f"  - {{id: A, jewel: 3, labels: [EEG Fpz-Cz], file: {a_file}}}\n"
        f"  - {{id: B, jewel: 5, labels: [EEG Fpz-Cz], file: {b_file}}}\n"
    )

    processes.start_node(
        "synchronizer", "-p", "drivers:=[/fake]", "-p", "ki:=0.0", "-p", f"coupling_by_stage:={STAGE_GAINS}"
    )
    commands, samples, diagnostics = [], [], []
    ros_node.node.create_subscription(JewelCommandBatch, "/fake/jewels/command", commands.append, BATCH_QOS)
    ros_node.node.create_subscription(BioDreamSample, "/biodream/samples", samples.append, SAMPLES_QOS)
    ros_node.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    driver = ros_node.node.create_publisher(JewelStateBatch, "/fake/jewels/state", BATCH_QOS)
    ros_node.wait_for_subscribers("/fake/jewels/state")
    ids = np.arange(1, 8, dtype=np.uint32)
    ahead = np.where(np.isin(ids, [3, 4, 5]), 0.3, 0.0)  # jewels 3 (A), 4 (nobody) and 5 (B): the same error

    def report():  # 1 Hz jewels that ignore their commands: the phase errors stay constant
        now = ros_node.node.get_clock().now().nanoseconds * 1e-9
        msg = JewelStateBatch(driver_id="fake")
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        msg.ids = to_field(ids, np.uint32)
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        msg.phase = to_field(wrap_phase(ahead + TWO_PI * stamp), np.float64)  # the phases at the stamp exactly
        msg.frequency = to_field(np.ones(len(ids)), np.float64)
        msg.frequency_offset = to_field(np.zeros(len(ids)), np.float64)
        msg.sample_age = to_field(np.zeros(len(ids)), np.float64)
        driver.publish(msg)

    ros_node.node.create_timer(0.02, report)
    ros_node.spin_until(lambda: len(commands) > 50, 20, "the synchronizer commanding the jewels")

    # the recording replayed at 10x: a scored 30 s epoch every 3 s
    processes.start_node(
        "biodream_sensor",
        *("-p", "backend:=edf", "-p", f"participants_file:={participants}", "-p", "speed:=10.0", "-p", "hop_s:=30.0"),
    )
    history = []  # (A's stage, B's stage, A's scale, B's scale) after each pair of samples

    def scales():
        offsets = dict(
            zip(
                from_field(commands[-1].ids, np.uint32).tolist(),
                from_field(commands[-1].frequency_offset, np.float64).tolist(),
                strict=True,
            )
        )
        return offsets[3] / offsets[4], offsets[5] / offsets[4]

    seen = 0

    def follow():
        nonlocal seen
        while len(samples) >= seen + 2:
            pair = {m.participant_id: m for m in samples[seen : seen + 2]}
            seen += 2
            ros_node.spin_for(0.6)  # the new scales reach the commands through the 0.5 Hz/s slew limit
            history.append((pair["A"].stage, pair["B"].stage, *scales()))
        return len(history) >= 2 * EPOCHS_N2 - 1

    ros_node.spin_until(follow, 90, "every epoch of the recording scored and applied")
    a_stage, b_stage, a_scale, b_scale = (np.array(column) for column in zip(*history, strict=True))
    # A is staged N2 early and N3 late; B N2 throughout (a stager may miss an epoch at the switch)
    assert np.mean(a_stage[: EPOCHS_N2 - 2] == SleepStage.N2) >= 0.75, history
    assert np.mean(a_stage[EPOCHS_N2 + 1 :] == SleepStage.N3) >= 0.75, history
    assert np.mean(b_stage == SleepStage.N2) >= 0.75, history
    # while both sleep in N2 their jewels are pulled alike; once A is in N3, A's pull drops and B's does not
    early, late = slice(1, EPOCHS_N2 - 1), slice(EPOCHS_N2 + 2, None)
    assert np.allclose(a_scale[early], b_scale[early], atol=0.1), history
    assert np.median(a_scale[late]) < np.median(a_scale[early]) - 0.2, history
    assert abs(np.median(b_scale[late]) - np.median(b_scale[early])) < 0.1, history
    assert np.median(a_scale[late]) < 0.6 < np.median(b_scale[late]), history
