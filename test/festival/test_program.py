"""Festival programs (lumina_nodes.festival.program): the default loads; every mistake is named with line and key."""

import pytest

from harness import REPO
from lumina_nodes.constants import DisruptionKind
from lumina_nodes.festival.program import ProgramError, load_program, parse_program, resolve_program

PROGRAMS = REPO / "config" / "programs"


def test_the_default_program_tells_the_night_act_by_act():
    program = load_program(str(PROGRAMS / "sleep_art_festival.yaml"))
    assert [p.name for p in program.phases] == [
        "gathering",
        "synchronised_slumber",
        "disruption",
        "chaos",
        "feedback_loop",
        "reflective_sessions",
        "harmony",
        "aftermath",
    ]
    chaos = program.phases[3]
    assert chaos.until[0].metric == "clusters" and chaos.lighting == "chaos"  # detected, not scripted
    assert program.phases[2].drill.kind == DisruptionKind.OVERLAPPING_FREQUENCIES
    assert program.phases[5].sessions is not None
    assert resolve_program("sleep_art_festival", str(PROGRAMS)).endswith("sleep_art_festival.yaml")


def test_an_unknown_program_name_lists_the_known_ones():
    with pytest.raises(ProgramError, match=r"no such program \(known: .*sleep_art_festival"):
        resolve_program("carnival", str(PROGRAMS))


GOOD_PHASE = "  - name: a\n    duration: 1\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("phases: [\n", "p.yaml:2: not valid YAML"),
        ("- 1\n", "p.yaml:1: a program is a mapping"),
        ("program: x\nphases: []\n", "p.yaml:2: phases: must be a list of one or more phases"),
        ("program: x\nstage: 1\nphases:\n" + GOOD_PHASE, "p.yaml:2: stage: unknown key"),
        ("phases:\n" + GOOD_PHASE, "p.yaml:1: program: must be the program's name"),
        (
            "program: x\nphases:\n  - name: a\n    lighting: disco\n    duration: 1\n",
            "p.yaml:4: phases[0].lighting: unknown scene 'disco'",
        ),
        ("program: x\nphases:\n  - name: a\n", "p.yaml:3: phases[0]: needs a 'duration', an 'until' or 'sessions'"),
        (
            "program: x\nphases:\n  - name: a\n    until:\n      order_parameter: {at_least: 0.9}\n",
            "p.yaml:3: phases[0].timeout: a phase with 'until' needs a 'timeout'",
        ),
        (
            "program: x\nphases:\n  - name: a\n    timeout: 5\n    until:\n      r: {at_least: 0.9}\n",
            "p.yaml:6: phases[0].until.r: unknown metric",
        ),
        (
            "program: x\nphases:\n  - name: a\n    timeout: 5\n    until:\n"
            "      order_parameter: {at_least: 1.5, for: 1}\n",
            "p.yaml:6: phases[0].until.order_parameter.at_least: 1.5 is out of range 0.0..1.0",
        ),
        (
            "program: x\nphases:\n  - name: a\n    timeout: 5\n    until:\n      clusters: {above: 1}\n",
            "phases[0].until.clusters: must be {at_least: value, for: seconds}",
        ),
        ("program: x\nphases:\n  - name: a\n    duration: -1\n", "p.yaml:4: phases[0].duration: -1 is out of range"),
        ("program: x\nphases:\n  - name: a\n    duration: true\n", "phases[0].duration: must be a number"),
        (
            "program: x\nphases:\n  - name: a\n    duration: 1\n    coupling_by_stage: [1, 1, 1]\n",
            "p.yaml:5: phases[0].coupling_by_stage: must be 5 gains",
        ),
        (
            "program: x\nphases:\n  - name: a\n    duration: 1\n    coupling_by_stage: [1, 1, 1, 3, 1]\n",
            "phases[0].coupling_by_stage[3]: 3 is out of range 0.0..2.0",
        ),
        (
            "program: x\nphases:\n  - name: a\n    duration: 1\n    drill: {kind: earthquake}\n",
            "p.yaml:5: phases[0].drill: needs a kind, one of overlapping_frequencies",
        ),
        (
            "program: x\nphases:\n  - name: a\n    duration: 1\n"
            "    drill: {kind: overlapping_frequencies, groups: 4294967295}\n",
            "phases[0].drill.groups: 4294967295 is out of range 2..10",
        ),
        (
            "program: x\nphases:\n  - name: a\n    duration: 1\n"
            "    drill: {kind: overlapping_frequencies, separation: 1000000.0}\n",
            "phases[0].drill.separation: 1000000.0 is out of range 0.001..2.0",
        ),
        (
            "program: x\nphases:\n" + GOOD_PHASE + GOOD_PHASE,
            "p.yaml:5: phases[1].name: 'a' is also the name of phases[0]",
        ),
        (
            "program: x\nphases:\n  - name: a\n    duration: 1\n    fallback: nowhere\n",
            "p.yaml:5: phases[0].fallback: 'nowhere' is no phase of the program",
        ),
        (
            "program: x\nphases:\n  - name: a\n    plazas: [plaza_1]\n    sessions: {order_parameter: 0.9}\n",
            "phases[0].sessions: a sessions phase takes no 'until' or 'plazas'",
        ),
        (
            "program: x\nphases:\n  - name: a\n    duration: 1\n    plazas: plaza_1\n",
            "phases[0].plazas: must be 'all' or a list",
        ),
    ],
)
def test_program_errors_name_the_line_and_key(text, message):
    with pytest.raises(ProgramError) as error:
        parse_program(text, "p.yaml")
    assert message in str(error.value), str(error.value)


def test_every_problem_is_reported_at_once():
    text = "program: x\nphases:\n  - name: a\n    lighting: disco\n    duration: 1\n  - name: b\n    duration: -2\n"
    with pytest.raises(ProgramError) as error:
        parse_program(text, "p.yaml")
    assert str(error.value).splitlines() == [
        "p.yaml:4: phases[0].lighting: unknown scene 'disco' (one of harmony, chaos, recovery, aftermath)",
        "p.yaml:7: phases[1].duration: -2 is out of range 0.0..86400.0",
        "p.yaml:6: phases[1]: needs a 'duration', an 'until' or 'sessions': otherwise it never ends",
    ]
