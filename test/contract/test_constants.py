"""The ROS-free constants (lumina_nodes/constants.py) equal the generated interfaces' constants, both ways."""

import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from lumina_nodes import constants
from lumina_nodes.msg import BioDreamSample, ClusterState, FestivalEvent, FestivalState, JewelStateBatch, SyncState
from lumina_nodes.srv import InjectDisruption

MIRRORS = [
    (constants.JewelStatus, JewelStateBatch, "STATUS_"),
    (constants.DisruptionKind, InjectDisruption.Request, "KIND_"),
    (constants.SleepStage, BioDreamSample, "STAGE_"),
    (constants.ClusterResolution, ClusterState, "RESOLUTION_"),
    (constants.SyncMode, SyncState, "MODE_"),
    (constants.FestivalStatus, FestivalState, "STATUS_"),
    (constants.EventLevel, FestivalEvent, "LEVEL_"),
]


def message_constants(interface, prefix):
    """{name without prefix: value} of the constants the generated class declares (rosidl keeps them upper-case
    on the metaclass)."""
    return {
        name[len(prefix) :]: getattr(interface, name)
        for name in dir(interface)
        if name.startswith(prefix) and name.isupper() and isinstance(getattr(interface, name), int)
    }


@pytest.mark.parametrize("mirror, interface, prefix", MIRRORS, ids=[m[0].__name__ for m in MIRRORS])
def test_each_group_matches_its_interface(mirror, interface, prefix):
    generated = message_constants(interface, prefix)
    assert generated, f"{interface.__name__} declares no {prefix}* constants"
    assert mirror.members() == generated


def test_jewel_none_and_diagnostic_levels():
    assert constants.JEWEL_NONE == BioDreamSample.JEWEL_NONE
    levels = {name: getattr(DiagnosticStatus, name)[0] for name in ("OK", "WARN", "ERROR", "STALE")}
    assert constants.DiagnosticLevel.members() == levels
