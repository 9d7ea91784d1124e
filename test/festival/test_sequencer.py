"""The festival's phase machine (lumina_nodes.festival.sequencer) without ROS: durations, conditions with
hysteresis, timeouts and fallbacks, the reflective sessions, cancel, and the result's marks."""

import math

import pytest

from lumina_nodes.festival.program import parse_program
from lumina_nodes.festival.sequencer import (
    NOMINAL_COUPLING,
    Event,
    InjectDrill,
    Observation,
    Sequencer,
    SetCoupling,
    SetLighting,
    SetReleased,
)

PLAZAS = ("plaza_1", "plaza_2", "plaza_3")


def observe(r=0.97, clusters=1, plazas=None, lock=0.9):
    return Observation(r, lock, clusters, plazas if plazas is not None else dict.fromkeys(PLAZAS, r))


def run(sequencer, observations, start=0.0, dt=0.1):
    """Step through ``observations`` (one per dt); all actions, with their times."""
    actions = []
    for k, observation in enumerate(observations):
        actions += [(start + k * dt, a) for a in sequencer.update(start + k * dt, observation)]
    return actions


def events(actions):
    return [a.kind for _, a in actions if isinstance(a, Event)]


PROGRAM = """
program: test
phases:
  - name: settle
    lighting: harmony
    coupling_by_stage: [1, 1, 1, 1, 1]
    duration: 1
  - name: lock
    until:
      order_parameter: {at_least: 0.95, for: 1}
    timeout: 5
    fallback: calm
  - name: calm
    lighting: aftermath
    plazas: [plaza_1]
    duration: 1
"""


def test_phases_move_on_by_duration_and_by_held_conditions():
    seq = Sequencer(parse_program(PROGRAM), PLAZAS)
    first = seq.start(0.0)
    assert SetLighting("harmony") in first and SetCoupling((1.0,) * 5) in first
    run(seq, [observe()] * 10)  # 0.0 .. 0.9
    assert seq.phase.name == "settle"
    run(seq, [observe()], start=1.0)
    assert seq.phase.name == "lock"
    # r dips below 0.95 in the middle of the hold: the hold restarts (hysteresis in time)
    run(seq, [observe(0.96)] * 8 + [observe(0.90)] + [observe(0.96)] * 9, start=1.1)
    assert seq.phase.name == "lock"
    actions = run(seq, [observe(0.96)] * 3, start=2.9)
    assert seq.phase.name == "calm"
    assert SetReleased(("plaza_2", "plaza_3")) in [a for _, a in actions]
    run(seq, [observe()] * 11, start=3.2)
    assert seq.status == "finished" and seq.result.phases_completed == 3


def test_a_stale_state_breaks_the_hold():
    seq = Sequencer(parse_program(PROGRAM), PLAZAS)
    seq.start(0.0)
    run(seq, [observe()] * 11)
    run(seq, [observe()] * 6 + [None] + [observe()] * 6, start=1.1)  # no fresh state at 1.7
    assert seq.phase.name == "lock"


def test_a_timeout_goes_to_the_named_fallback_and_abort_ends_in_a_safe_state():
    seq = Sequencer(parse_program(PROGRAM), PLAZAS)
    seq.start(0.0)
    actions = run(seq, [observe(0.5)] * 70)
    assert "phase_timeout" in events(actions) and seq.phase.name == "calm"
    aborting = PROGRAM.replace("fallback: calm", "fallback: abort")
    seq = Sequencer(parse_program(aborting), PLAZAS)
    seq.start(0.0)
    actions = [a for _, a in run(seq, [observe(0.5)] * 70)]
    assert seq.status == "aborted" and not seq.result.success
    assert actions[-4:] == seq.safe_state()
    assert InjectDrill in {type(a) for a in actions[-4:]} and SetCoupling(NOMINAL_COUPLING) in actions


def test_time_scale_shortens_every_time():
    seq = Sequencer(parse_program(PROGRAM), PLAZAS, time_scale=0.1)
    seq.start(0.0)
    run(seq, [observe()] * 3, dt=0.05)  # settle: 0.1 s
    assert seq.phase.name == "lock"
    with pytest.raises(ValueError, match="time_scale"):
        Sequencer(parse_program(PROGRAM), PLAZAS, time_scale=0.0)


SESSIONS = """
program: sessions
phases:
  - name: rejoin
    sessions: {order_parameter: 0.9, for: 0.5, timeout_each: 4}
    fallback: abort
"""


def test_reflective_sessions_bring_plazas_back_one_at_a_time():
    seq = Sequencer(parse_program(SESSIONS), PLAZAS)
    assert SetReleased(("plaza_2", "plaza_3")) in seq.start(0.0)
    order = {"plaza_1": 0.5, "plaza_2": 0.95, "plaza_3": 0.95}
    # plaza_2 is locked already but must wait for plaza_1
    run(seq, [observe(plazas=order)] * 10)
    assert seq.joined == 1
    order["plaza_1"] = 0.93
    actions = run(seq, [observe(plazas=order)] * 7, start=1.0)
    assert events(actions) == ["plaza_relocked", "plaza_rejoined"]
    assert SetReleased(("plaza_3",)) in [a for _, a in actions]
    actions = run(seq, [observe(plazas=order)] * 7, start=1.7)
    assert SetReleased(()) in [a for _, a in actions]
    actions = run(seq, [observe(plazas=order)] * 7, start=2.4)
    assert seq.status == "finished"
    assert events(actions)[-2:] == ["plaza_relocked", "program_finished"]


def test_a_plaza_that_does_not_relock_times_out():
    seq = Sequencer(parse_program(SESSIONS), PLAZAS)
    seq.start(0.0)
    actions = run(seq, [observe(plazas={"plaza_1": 0.5})] * 45)
    assert seq.status == "aborted" and "plaza_1 not re-locked within 4 s" in seq.result.message
    assert SetReleased(()) in [a for _, a in actions]  # no plaza is left released


NIGHT = """
program: night
harmony_order_parameter: 0.9
phases:
  - name: disruption
    drill: {kind: overlapping_frequencies, groups: 2, separation: 0.1}
    duration: 0.2
  - name: chaos
    until:
      clusters: {at_least: 2, for: 0.2}
    timeout: 5
  - name: heal
    until:
      order_parameter: {at_least: 0.9, for: 0.5}
    timeout: 5
"""


def test_the_result_marks_detection_recovery_and_the_lowest_r():
    seq = Sequencer(parse_program(NIGHT), PLAZAS)
    start = seq.start(10.0)
    assert any(isinstance(a, InjectDrill) and a.drill.groups == 2 for a in start)
    states = [observe(0.99)] * 5 + [observe(0.8, clusters=2)] * 5 + [observe(0.6, clusters=2)] * 5
    states += [observe(0.85)] * 3 + [observe(0.95)] * 10
    actions = run(seq, states, start=10.0)
    assert seq.status == "finished" and seq.result.success and seq.result.harmony_reached
    assert seq.result.time_to_detect_s == pytest.approx(0.5)
    assert seq.result.time_to_recover_s == pytest.approx(1.3)
    assert seq.result.min_order_parameter == pytest.approx(0.6)
    assert events(actions).index("disruption_detected") < events(actions).index("harmony_restored")


def test_cancel_returns_the_city_to_a_safe_state_once():
    seq = Sequencer(parse_program(NIGHT), PLAZAS)
    seq.start(0.0)
    actions = seq.cancel(1.0, "operator cancelled")
    assert seq.status == "cancelled" and actions[1:] == seq.safe_state()
    assert seq.cancel(2.0) == [] and seq.update(2.0, observe()) == []
    assert math.isnan(seq.result.time_to_detect_s)


def test_harmony_counts_resolved_clusters_as_one_rhythm():
    """The synchronizer pulls two natural-frequency bands onto one rhythm and keeps reporting both (resolved):
    that is harmony; two unresolved bands are not, whatever r says."""
    seq = Sequencer(parse_program(NIGHT), PLAZAS)
    seq.start(0.0)
    states = [observe(0.99)] * 3 + [observe(0.8, clusters=2)] * 3
    states += [Observation(0.97, 0.9, 2, dict.fromkeys(PLAZAS, 0.97), unresolved_clusters=2)] * 5
    run(seq, states)
    assert not seq.result.harmony_reached
    run(seq, [Observation(0.97, 0.9, 2, dict.fromkeys(PLAZAS, 0.97), unresolved_clusters=0)] * 8, start=1.1)
    assert seq.result.harmony_reached and seq.result.healed_at == pytest.approx(1.1)


#: NIGHT with reflective sessions before the healing phase.
NIGHT_WITH_SESSIONS = NIGHT.replace(
    "  - name: heal\n",
    "  - name: sessions\n    sessions: {order_parameter: 0.9, for: 0.2, timeout_each: 5}\n  - name: heal\n",
)


def test_harmony_counts_only_once_every_plaza_is_back():
    program = parse_program(NIGHT_WITH_SESSIONS)
    seq = Sequencer(program, PLAZAS)
    seq.start(0.0)
    chaos = Observation(0.9, 0.9, 2, dict.fromkeys(PLAZAS, 0.9), unresolved_clusters=2)
    run(seq, [observe(0.99)] * 3 + [chaos] * 4)  # detected at 0.3
    assert seq.phase.name == "sessions" and seq.result.healed_at is None
    run(seq, [observe(0.97, plazas={"plaza_1": 0.5})] * 9, start=0.7)  # r whole but plazas released: no harmony
    assert seq.result.healed_at is None and not seq.result.harmony_reached
    run(seq, [observe(0.97)] * 30, start=1.6)
    assert seq.status == "finished" and seq.result.harmony_reached
    assert seq.result.harmony_at > 1.6 and seq.result.time_to_recover_s == pytest.approx(seq.result.harmony_at - 0.3)


def test_harmony_reached_before_the_sessions_counts_again_only_after_them():
    """The synchronizer heals the clusters during chaos (one rhythm); the sessions then release plazas: harmony
    is the moment every plaza is back, not the earlier healing."""
    program = parse_program(NIGHT_WITH_SESSIONS)
    seq = Sequencer(program, PLAZAS)
    seq.start(0.0)
    run(seq, [observe(0.99)] * 3 + [observe(0.95, clusters=2)] * 4)  # resolved clusters: whole at once
    assert seq.phase.name == "sessions" and seq.result.healed_at is not None
    run(seq, [observe(0.97)] * 30, start=0.7)
    assert seq.status == "finished" and seq.result.harmony_reached
    assert seq.result.harmony_at > seq.result.healed_at + 0.5  # after the last plaza came back


LONG_NIGHT = (
    NIGHT
    + """  - name: aftermath
    duration: 2
"""
)


def test_harmony_lost_again_by_the_end_of_the_night_is_not_reported_as_reached():
    """Issue 14: a starved city once printed "healed" while r was 0.799 at the end."""
    seq = Sequencer(parse_program(LONG_NIGHT), PLAZAS)
    seq.start(10.0)
    states = [observe(0.99)] * 5 + [observe(0.6, clusters=2)] * 5 + [observe(0.95)] * 10  # healed
    states += [observe(0.95)] * 10 + [observe(0.79)] * 15  # the aftermath falls apart before its end
    run(seq, states, start=10.0)
    result = seq.result
    assert seq.status == "finished" and result.harmony_at is not None
    assert not result.success and result.final_order_parameter == pytest.approx(0.79)
    assert "lost again: r 0.790 over the night's last 0.5 s, below 0.90" in result.message


def test_one_dip_at_the_end_does_not_decide_the_night():
    seq = Sequencer(parse_program(LONG_NIGHT), PLAZAS)
    seq.start(10.0)
    states = [observe(0.99)] * 5 + [observe(0.6, clusters=2)] * 5 + [observe(0.95)] * 10
    states += [observe(0.95)] * 13 + [observe(0.2)] + [observe(0.95)] * 10  # the night ends at 3.5 s: dip at 3.3
    run(seq, states, start=10.0)
    assert seq.status == "finished" and seq.result.success and seq.result.message == "harmony reached"
    assert seq.result.final_order_parameter == pytest.approx(0.95)
