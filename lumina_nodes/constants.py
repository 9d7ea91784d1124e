"""The constants of the interface contract, for the code that does not import rclpy (models, backends, kernels).

Each class mirrors one group of constants of a generated interface, member for member (``JewelStatus.STALE`` is
``JewelStateBatch.STATUS_STALE``); test/contract/test_constants.py checks that they still match the generated
messages. Nodes may use either; ROS-free code uses these.

The members are plain ints, not enum members: numpy treats only plain Python ints as "weak" scalars, so
``status_array |= JewelStatus.STALE`` keeps the array's uint8 dtype (an IntFlag member makes it int64 and fails).
"""


class Constants:
    """A group of named int constants; ``members()`` lists them, ``name(value)`` looks one up."""

    @classmethod
    def members(cls) -> dict[str, int]:
        return {k: v for k, v in vars(cls).items() if k.isupper() and isinstance(v, int)}

    @classmethod
    def name(cls, value: int) -> str:
        """The member's name; ValueError when ``value`` is none of the members."""
        for key, member in cls.members().items():
            if member == value:
                return key
        raise ValueError(f"{value!r} is not a {cls.__name__} ({', '.join(cls.members())})")


class JewelStatus(Constants):
    """``JewelStateBatch.STATUS_*``: per-jewel status bits."""

    OK = 0
    STALE = 1
    LOW_BATTERY = 2
    FAULT = 4


class DisruptionKind(Constants):
    """``InjectDisruption.Request.KIND_*``: the drills a driver can inject."""

    OVERLAPPING_FREQUENCIES = 0
    PHASE_SCRAMBLE = 1
    LINK_DEGRADATION = 2
    CLEAR = 3


class SleepStage(Constants):
    """``BioDreamSample.STAGE_*``: AASM sleep stages (UNKNOWN: no valid staging)."""

    W = 0
    N1 = 1
    N2 = 2
    N3 = 3
    REM = 4
    UNKNOWN = 255


#: ``BioDreamSample.JEWEL_NONE``: the participant wears no jewel.
JEWEL_NONE = 0xFFFFFFFF


class ClusterResolution(Constants):
    """``ClusterState.RESOLUTION_*``: how the synchronizer resolves a frequency cluster."""

    NONE = 0
    MERGING = 1
    SEPARATE_CHANNEL = 2


class SyncMode(Constants):
    """``SyncState.MODE_*``: the synchronizer's control law."""

    CONTROLLER = 0
    KURAMOTO = 1


class FestivalStatus(Constants):
    """``FestivalState.STATUS_*``."""

    IDLE = 0
    RUNNING = 1
    PAUSED = 2
    FINISHED = 3
    ABORTED = 4


class EventLevel(Constants):
    """``FestivalEvent.LEVEL_*``."""

    INFO = 0
    WARN = 1
    ERROR = 2


#: Exit status of a node whose configuration cannot work (sysexits' EX_CONFIG): run_node exits with it after the FATAL
#: line, and lumina_launch stops respawning a process that exits with it twice in a row (the same mistake again).
EXIT_CONFIG = 78


class DiagnosticLevel(Constants):
    """``diagnostic_msgs/DiagnosticStatus`` levels (the message stores them as one byte)."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3
