"""The SleepTree controller in its own process: frames follow /sync/state, /biodream/samples and /festival/state;
parameters and fixture maps that cannot work are refused; sACN output to a real E1.31 receiver."""

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters

from lumina_nodes.constants import EXIT_CONFIG, FestivalStatus, SleepStage
from lumina_nodes.kernels.tree_lighting import STAGE_COLOURS
from lumina_nodes.msg import BioDreamSample, ClusterState, FestivalState, PlazaSync, SyncState, TreeLighting
from lumina_nodes.nodes.common import FESTIVAL_QOS, SAMPLES_QOS, STATE_QOS

FPS = 40.0


def sync_state(ros_node, t, frequency=0.8, r=1.0, clusters=None, plazas=("plaza_1", "plaza_2")):
    """A /sync/state at node time t: the collective pulse at ``frequency``; ``clusters`` [(size, Hz), ...]."""
    msg = SyncState(order_parameter=r, collective_frequency=frequency)
    msg.mean_phase = float(np.angle(np.exp(2j * np.pi * frequency * t)))
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(t * 1e9), 10**9)
    for i, (size, f) in enumerate(clusters or [(100, frequency)]):
        phase = float(np.angle(np.exp(2j * np.pi * f * t)))
        msg.clusters.append(ClusterState(index=i, size=size, center_frequency=f, mean_phase=phase))
    msg.plazas = [PlazaSync(driver_id=p, order_parameter=r) for p in plazas]
    return msg


class CityFeed:
    """Publishes /sync/state at 50 Hz from the test process (the synchronizer's part) and collects the trees."""

    def __init__(self, ros_node, trees, **state):
        self.ros_node, self.state = ros_node, state
        self.publisher = ros_node.node.create_publisher(SyncState, "/sync/state", STATE_QOS)
        self.frames = {tree: [] for tree in trees}
        for tree in trees:
            ros_node.node.create_subscription(
                TreeLighting, f"/trees/{tree}/lighting", self.frames[tree].append, STATE_QOS
            )
        self.diagnostics = []
        ros_node.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.timer = ros_node.node.create_timer(1 / 50, self.publish)

    def publish(self):
        t = self.ros_node.node.get_clock().now().nanoseconds * 1e-9
        self.publisher.publish(sync_state(self.ros_node, t, **self.state))

    def controller_values(self):
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.endswith("sleeptree_controller: controller"):
                    return {kv.key: kv.value for kv in status.values}
        return {}


def set_parameter(ros_node, name, value, kind):
    client = ros_node.node.create_client(SetParameters, "/sleeptree_controller/set_parameters")
    assert client.wait_for_service(timeout_sec=10)
    field = {ParameterType.PARAMETER_STRING: "string_value", ParameterType.PARAMETER_DOUBLE: "double_value"}[kind]
    request = SetParameters.Request(
        parameters=[Parameter(name=name, value=ParameterValue(type=kind, **{field: value}))]
    )
    future = client.call_async(request)
    ros_node.spin_until(future.done, 10, f"set {name}")
    return future.result().results[0]


def dominant_frequency(series, rate):
    x = np.asarray(series) - np.mean(series)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / rate)[1:][np.argmax(spectrum[1:])]


def test_trees_breathe_with_the_city_take_the_stage_colour_and_the_festival_cue(processes, ros_node):
    controller = processes.start_node(
        "sleeptree_controller",
        *("-p", "plazas:=2", "-p", "trees_per_plaza:=1", "-p", "pixels_per_tree:=20", "-p", "publish_rate_hz:=40.0"),
        *("-p", "crossfade_s:=0.5", "-p", "colour_fade_s:=0.5"),
    )
    trees = ("tree_plaza_1_1", "tree_plaza_2_1")
    feed = CityFeed(ros_node, trees, frequency=0.8, r=1.0)
    samples = ros_node.node.create_publisher(BioDreamSample, "/biodream/samples", SAMPLES_QOS)
    festival = ros_node.node.create_publisher(FestivalState, "/festival/state", FESTIVAL_QOS)
    ros_node.wait_for_subscribers("/sync/state")
    ros_node.wait_for_subscribers("/biodream/samples")

    # plaza_1's sleepers are in deep sleep (N3); plaza_2 has no sensor: it shows the city's stage
    def deep_sleep():
        for k in range(3):
            msg = BioDreamSample(participant_id=f"p{k}", plaza="plaza_1", stage=SleepStage.N3, epoch_duration=30.0)
            msg.stage_probability = np.eye(5, dtype=np.float32)[SleepStage.N3]
            msg.header.stamp = ros_node.node.get_clock().now().to_msg()
            samples.publish(msg)

    deep_sleep()
    ros_node.spin_for(3.0)
    for frames in feed.frames.values():
        frames.clear()
    ros_node.spin_for(8.0)
    for tree in trees:
        frames = feed.frames[tree]
        assert len(frames) >= 0.9 * 8.0 * FPS, len(frames)  # every frame published at publish_rate_hz 40
        rgb = np.array([np.frombuffer(bytes(f.rgb), np.uint8).reshape(-1, 3) for f in frames], float)
        assert rgb.shape[1:] == (20, 3)
        assert dominant_frequency(rgb.mean(axis=(1, 2)), FPS) == pytest.approx(0.8, abs=0.07)
        assert frames[-1].pulse_frequency == pytest.approx(0.8) and frames[-1].backend == "sim"
        level = (rgb.mean(axis=0)[0] / 255.0) ** (1 / 2.2)  # perceived colour of the tree's first pixel
        expected = STAGE_COLOURS[SleepStage.N3] / STAGE_COLOURS[SleepStage.N3].max()
        assert np.allclose(level / level.max(), expected, atol=0.08), (tree, level / level.max())
        # the night-time maximum holds (default 0.35 of full drive)
        assert rgb.max() <= round(0.35 * 255)
    values = feed.controller_values()
    # late frames are counted, not a speed test: a CI run with other work on both cores had 4 of 320
    assert values["scene"] == "harmony" and int(values["frames_late"]) <= 0.05 * 8.0 * FPS
    assert float(values["frame_rate_hz"]) == pytest.approx(FPS, rel=0.1)

    # the running festival phase asks for the aftermath glow; the operator's parameter overrides it
    cue = FestivalState(status=FestivalStatus.RUNNING, program="night", phase="aftermath", lighting_scene="aftermath")
    festival.publish(cue)
    ros_node.spin_until(lambda: feed.controller_values().get("scene") == "aftermath", 10, "the festival's cue")
    assert set_parameter(ros_node, "scene", "chaos", ParameterType.PARAMETER_STRING).successful
    ros_node.spin_until(lambda: feed.controller_values().get("scene") == "chaos", 10, "the operator's scene")
    refused = set_parameter(ros_node, "scene", "disco", ParameterType.PARAMETER_STRING)
    assert not refused.successful and "scene must be one of" in refused.reason
    refused = set_parameter(ros_node, "max_brightness", 1.5, ParameterType.PARAMETER_DOUBLE)
    assert not refused.successful
    # a lower night-time maximum is taken at once
    assert set_parameter(ros_node, "max_brightness", 0.1, ParameterType.PARAMETER_DOUBLE).successful
    ros_node.spin_for(1.5)
    assert max(max(f.rgb) for f in feed.frames[trees[0]][-10:]) <= round(0.1 * 255)
    assert feed.frames[trees[0]][-1].brightness == pytest.approx(0.1)

    # bad input is refused, counted and warned about, and the controller keeps going (two warnings from two places,
    # one throttled: rclpy's warn() alias once made that an exception that ended the node)
    bad = sync_state(ros_node, 1.0)
    bad.order_parameter = float("nan")
    feed.publisher.publish(bad)
    festival.publish(FestivalState(status=FestivalStatus.RUNNING, lighting_scene="disco"))
    ros_node.spin_until(
        lambda: (
            int(feed.controller_values().get("states_refused", 0)) >= 1
            and int(feed.controller_values().get("cues_refused", 0)) >= 1
        ),
        10,
        "the refusals counted",
    )
    assert controller.running(), controller.output()


def test_chaos_through_the_node_shows_two_beat_frequencies(processes, ros_node):
    processes.start_node(
        "sleeptree_controller",
        *("-p", "plazas:=1", "-p", "trees_per_plaza:=1", "-p", "pixels_per_tree:=50", "-p", "publish_rate_hz:=40.0"),
        *(
            "-p",
            "crossfade_s:=0.0",
        ),
    )
    feed = CityFeed(ros_node, ["tree_plaza_1_1"], r=0.3, clusters=[(50, 0.7), (50, 1.2)], plazas=("plaza_1",))
    ros_node.wait_for_subscribers("/sync/state")
    ros_node.spin_for(2.0)
    frames = feed.frames["tree_plaza_1_1"]
    frames.clear()
    ros_node.spin_for(10.0)
    rgb = np.array([np.frombuffer(bytes(f.rgb), np.uint8).reshape(-1, 3).sum(axis=1) for f in frames], float)
    assert feed.controller_values()["scene"] == "chaos"
    assert dominant_frequency(rgb[:, 10], FPS) == pytest.approx(0.7, abs=0.07)  # first band: cluster 0
    assert dominant_frequency(rgb[:, 40], FPS) == pytest.approx(1.2, abs=0.07)  # second band: cluster 1


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["-p", "publish_rate_hz:=50.0"], "publish_rate_hz 50 is above frame_rate_hz 40"),
        (["-p", "max_brightness:=1.5"], "max_brightness"),
        (["-p", "backend:=artnet"], "artnet"),
        (["-p", "fixtures_file:=/nonexistent/trees.yaml"], "/nonexistent/trees.yaml"),
    ],
)
def test_configurations_that_cannot_work_fail_with_a_clear_error(processes, arguments, message):
    controller = processes.start_node("sleeptree_controller", *arguments)
    assert controller.popen.wait(timeout=20) == EXIT_CONFIG
    assert message in controller.output()


def test_a_fixture_map_error_names_the_key(processes, tmp_path):
    bad = tmp_path / "trees.yaml"
    bad.write_text(
        "trees:\n"
        "  - {id: a, plaza: plaza_1, pixels: 10, colour_order: RGB, universe: 1, start_channel: 1}\n"
        "  - {id: b, plaza: plaza_1, pixels: 10, colour_order: RGB, universe: 64000, start_channel: 1}\n"
    )
    controller = processes.start_node("sleeptree_controller", "-p", f"fixtures_file:={bad}")
    assert controller.popen.wait(timeout=20) == EXIT_CONFIG
    assert "trees[1].universe" in controller.output() and "63999" in controller.output()


def test_sacn_frames_equal_the_published_frames_in_every_universe_and_streams_end_on_shutdown(
    processes, ros_node, tmp_path
):
    """A real E1.31 receiver in this process: the slots received equal the TreeLighting frames, for both universes
    of a GRB tree spanning two; a controller that cannot be reached is an ERROR and counted, the others go on;
    on shutdown every stream is terminated."""
    import signal
    import sys

    from harness import PEERS

    sys.path.insert(0, str(PEERS))
    from sacn_receiver import SacnReceiver

    fixtures = tmp_path / "trees.yaml"
    fixtures.write_text(
        "trees:\n"
        "  - {id: north, plaza: plaza_1, pixels: 200, colour_order: GRB, universe: 5, start_channel: 1}\n"
        "  - {id: lost, plaza: plaza_1, pixels: 4, colour_order: RGB, universe: 9, start_channel: 1,\n"
        "     destination: 0.0.0.1}\n"
    )
    with SacnReceiver() as receiver:
        controller = processes.start_node(
            "sleeptree_controller",
            *("-p", "backend:=sacn", "-p", f"fixtures_file:={fixtures}", "-p", "publish_rate_hz:=40.0"),
            *("-p", "sacn_source_name:=SleepTrees under test", "-p", "sacn_priority:=120"),
        )
        feed = CityFeed(ros_node, ["north", "lost"], frequency=0.8, r=1.0, plazas=("plaza_1",))
        ros_node.spin_until(lambda: len(feed.frames["north"]) >= 80 and len(feed.frames["lost"]) >= 80, 20, "frames")
        ros_node.spin_until(lambda: feed.controller_values(), 5, "diagnostics")
        frames = list(feed.frames["north"])
        controller.popen.send_signal(signal.SIGINT)
        assert controller.popen.wait(timeout=10) == 0
        receiver.wait(lambda: sum(p.option_StreamTerminated for p in receiver.packets) >= 6, 5, "terminations")
        packets = {u: receiver.of(u) for u in (5, 6)}
    assert not receiver.of(9)  # universe 9 went nowhere
    received = {u: {bytes(p.dmxData) for p in packets[u] if not p.option_StreamTerminated} for u in (5, 6)}
    assert all(p.sourceName == "SleepTrees under test" and p.priority == 120 for u in (5, 6) for p in packets[u])
    for u in (5, 6):
        assert [p.sequence for p in packets[u]] == [k % 256 for k in range(len(packets[u]))]  # nothing lost
        assert [p.option_StreamTerminated for p in packets[u][-3:]] == [True] * 3
    # each frame published, laid out here pixel by pixel (GRB, 170 whole pixels per universe), was sent
    matched = 0
    for frame in frames[1:-1]:
        rgb = np.frombuffer(bytes(frame.rgb), np.uint8).reshape(-1, 3)
        grb = rgb[:, [1, 0, 2]].reshape(-1)
        first = np.zeros(512, np.uint8)
        first[:510] = grb[:510]
        second = np.zeros(512, np.uint8)
        second[:90] = grb[510:]
        assert bytes(first) in received[5] and bytes(second) in received[6]
        matched += 1
    assert matched >= 78
    assert frames[-1].universe == 5 and frames[-1].start_channel == 1 and frames[-1].backend == "sacn"
    output = controller.output()
    assert "[ERROR]" in output and "universe 9: sending fails: 0.0.0.1" in output
    assert output.count("universe 9: sending fails") == 1  # logged once, counted after
    # every failed frame is counted after the one ERROR line (half a second of 40 Hz frames at least: on a loaded
    # machine the diagnostics read saw exactly 40, which a "> 40" bound refused)
    assert feed.frames["lost"][-1].frames_failed >= 20 and feed.frames["north"][-1].frames_failed == 0
    assert int(feed.controller_values()["frames_failed"]) >= 20
