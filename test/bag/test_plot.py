"""``lumina plot`` on a real recorded night: the small city plays a festival program under the launch runner with
``record:=``, then the figures are drawn from its bag (a subprocess, as a user runs it) and checked as pictures;
the extracted series are checked against an independent read of the bag (mcap + mcap_ros2), and the figures'
artists against the series. A bag without some topics skips those figures with a note; a path that is no bag fails
with a clear message."""

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness import REPO, DomainLease, ProcessManager, child_environment, package_executable

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ["order.png", "clusters.png", "plazas.png", "hypnograms.png", "trees.png"]
#: the default program with a long aftermath, so that the Bio-Dream sensors (first epoch after 30 s of EEG) score
#: an epoch or two before the night ends: about 75 sim s, 19 s of wall time at sim_speed 4
AFTERMATH_S = 50.0


def lumina(*args):
    return [package_executable("lumina"), *args]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """(bag path, launch output) of one small-city festival night, recorded by the launch's record:= argument."""
    tmp = tmp_path_factory.mktemp("plot_night")
    program = yaml.safe_load((REPO / "config/programs/sleep_art_festival.yaml").read_text())
    aftermath = next(p for p in program["phases"] if p["name"] == "aftermath")
    aftermath["duration"] = AFTERMATH_S
    program_path = tmp / "long_aftermath.yaml"
    program_path.write_text(yaml.safe_dump(program))
    bag = tmp / "night"
    lease = DomainLease()
    manager = ProcessManager(child_environment(lease.domain_id, tmp), tmp)
    try:
        city = manager.start(
            [
                package_executable("lumina_launch"),
                *("lumina_nodes", "city.launch.xml", "size:=small", "lighting:=sim"),
                *("use_sim_time:=true", "sim_speed:=4.0", f"program:={program_path}", f"record:={bag}"),
            ],
            name="city",
        )
        try:
            code = city.popen.wait(timeout=120)
        except subprocess.TimeoutExpired:
            code = None
        output = city.output()
        assert code == 0, output
        assert re.search(r"closed .*night: \d+ messages on \d+ topics", output), output
    finally:
        manager.stop_all()
        for leftover in manager.leftovers():
            leftover.kill()
        lease.release()
    return bag, output


@pytest.fixture(scope="module")
def plotted(night):
    """(output folder, stdout) of ``lumina plot BAG`` with the default output folder (the bag's plots/)."""
    bag, _ = night
    run = subprocess.run(lumina("plot", str(bag)), env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return bag / "plots", run.stdout


def png(path):
    """The image as (h, w, 3) floats 0..1, after checking it is a PNG."""
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return matplotlib.image.imread(path)[..., :3]


def pixels_near(image, hex_colour, tolerance=12 / 255):
    target = np.array([int(hex_colour[k : k + 2], 16) for k in (1, 3, 5)]) / 255
    return int(np.all(np.abs(image - target) <= tolerance, axis=-1).sum())


def independent_read(bag):
    """Every message of the topics the figures use, decoded by mcap_ros2's own reader, file by file."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out = {}
    for path in sorted(Path(bag).glob("*.mcap")):
        with open(path, "rb") as stream:
            reader = make_reader(stream, decoder_factories=[DecoderFactory()])
            for _, channel, _, msg in reader.iter_decoded_messages(log_time_order=True):
                if channel.topic in ("/sync/state", "/festival/state", "/biodream/samples") or channel.topic.startswith(
                    "/trees/"
                ):
                    out.setdefault(channel.topic, []).append(msg)
    return out


def stamp(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def test_plot_draws_every_figure_of_a_recorded_night(plotted):
    out, stdout = plotted
    assert [line.split()[1] for line in stdout.splitlines() if line.startswith("wrote ")] == [
        str(out / name) for name in FIGURES
    ], stdout
    for name in FIGURES:
        image = png(out / name)
        height, width, _ = image.shape
        assert width >= 1000 and height >= 400, (name, image.shape)
        # not blank: much of it is not the white background, in many colours, with real contrast
        inked = np.any(image < 0.95, axis=-1).mean()
        colours = len(np.unique((image * 255).astype(np.uint8).reshape(-1, 3), axis=0))
        assert inked > 0.1 and colours > 100 and image.std() > 0.1, (name, inked, colours, image.std())
    # the plotted series are there in their own colours
    # a flat r near 1 drawn between two pixel rows is anti-aliased away from its colour: a locked night has less of it
    assert pixels_near(png(out / "order.png"), "#1f3b73") > 300, "no r(t) line in order.png"
    assert pixels_near(png(out / "order.png"), "#8c3f8c") > 500, "no collective frequency line in order.png"
    plazas = png(out / "plazas.png")
    # the four plazas' lines (tab10); while every plaza is locked at r ~ 1 the later lines cover the earlier ones,
    # so the first may show few pixels or none (260 in one CI run, under 100 in another): the last one drawn is
    # whole, the four together are there (test_the_figures_draw_the_extracted_series checks each line's data)
    inks = {colour: pixels_near(plazas, colour) for colour in ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")}
    assert inks["#d62728"] > 100 and sum(inks.values()) > 400, inks
    assert pixels_near(png(out / "hypnograms.png"), "#e8a33d", 20 / 255) > 50, "no staged (W) epochs drawn"


def test_the_tree_strip_shows_the_trees_recorded_colours(night, plotted):
    from lumina_nodes.plots.extract import read_night
    from lumina_nodes.plots.night import tree_strip

    out, _ = plotted
    trees = read_night(night[0]).trees
    _, _, scale = tree_strip(trees)
    image = png(out / "trees.png")
    # the five most frequent frame colours of the night (scaled as the figure scales them) are painted in it
    frames = np.concatenate(trees.colour) / scale
    rounded, counts = np.unique(np.round(frames * 255).astype(int), axis=0, return_counts=True)
    for colour in rounded[np.argsort(counts)[-5:]]:
        hex_colour = "#" + "".join(f"{int(c):02x}" for c in np.clip(colour, 0, 255))
        assert pixels_near(image, hex_colour, 3 / 255) > 100, f"tree colour {hex_colour} not painted in trees.png"


def test_extracted_series_equal_an_independent_read_of_the_bag(night):
    from lumina_nodes.plots.extract import read_night

    bag, output = night
    got = read_night(bag)
    raw = independent_read(bag)
    # the origin: the program's start, as the orchestrator's first running state says
    festival = [m for m in raw["/festival/state"] if m.status == 1 and stamp(m) > 0]
    start = stamp(festival[0]) - (festival[0].time_in_phase.sec + festival[0].time_in_phase.nanosec * 1e-9)
    assert got.origin == pytest.approx(start, abs=1e-6)
    # r(t), frequency, the clusters and the plazas
    states = [m for m in raw["/sync/state"] if stamp(m) > 0]
    sync = got.sync
    assert len(states) > 200 and len(sync.t) == len(states)
    np.testing.assert_allclose(sync.t, [stamp(m) - start for m in states], atol=1e-6)
    np.testing.assert_array_equal(sync.order_parameter, [m.order_parameter for m in states])
    np.testing.assert_array_equal(sync.collective_frequency, [m.collective_frequency for m in states])
    np.testing.assert_array_equal(sync.cluster_frequency, [c.center_frequency for m in states for c in m.clusters])
    np.testing.assert_array_equal(sync.cluster_size, [c.size for m in states for c in m.clusters])
    assert sync.cluster_count.max() >= 2, "the disruption's clusters are missing"
    assert sync.plazas == ["plaza_1", "plaza_2", "plaza_3", "plaza_4"]
    for column, plaza in enumerate(sync.plazas):
        expected = [next((p.order_parameter for p in m.plazas if p.driver_id == plaza), np.nan) for m in states]
        np.testing.assert_array_equal(sync.plaza_order[:, column], expected)
    # the festival's phases, in the program's order, each started where the orchestrator said
    assert got.phases.name == [
        p["name"] for p in yaml.safe_load((REPO / "config/programs/sleep_art_festival.yaml").read_text())["phases"]
    ]
    printed = [float(t) for t in re.findall(r"\[\s*([\d.]+) s\]\s+phase_started", output)]
    np.testing.assert_allclose(got.phases.start, printed, atol=0.02)
    assert got.phases.end[-1] > got.phases.start[-1] + AFTERMATH_S * 0.9
    # the hypnograms: every participant's stages, in time order
    samples = [m for m in raw["/biodream/samples"] if stamp(m) > 0]
    hyp = got.hypnograms
    # (a sensor's first epoch comes 35 to 60 sim s into the night, so a loaded machine may end it before some)
    assert hyp.participants == sorted({m.participant_id for m in samples}, key=lambda p: int(p[1:]))
    assert len(hyp.participants) >= 4 and sum(len(s) for s in hyp.stage) == len(samples)
    for participant, t, stage in zip(hyp.participants, hyp.t, hyp.stage, strict=True):
        mine = sorted((stamp(m), m.stage) for m in samples if m.participant_id == participant)
        np.testing.assert_allclose(t, [s - start for s, _ in mine], atol=1e-6)
        np.testing.assert_array_equal(stage, [s for _, s in mine])
    assert set(hyp.truth_agreement) <= set(hyp.participants) and hyp.truth_agreement, "no ground-truth agreement"
    # the trees: each frame's mean pixel colour
    trees = got.trees
    assert len(trees.trees) == 8
    for tree, t, colour in zip(trees.trees, trees.t, trees.colour, strict=True):
        frames = [m for m in raw[f"/trees/{tree}/lighting"] if stamp(m) > 0]
        np.testing.assert_allclose(t, [stamp(m) - start for m in frames], atol=1e-6)
        expected = [np.frombuffer(m.rgb, np.uint8).reshape(-1, 3).mean(axis=0) for m in frames]
        np.testing.assert_allclose(colour, expected)


def test_the_figures_draw_the_extracted_series(night):
    import matplotlib.pyplot as plt

    from lumina_nodes.plots import night as figures
    from lumina_nodes.plots.extract import read_night

    got = read_night(night[0])
    sync = got.sync
    fig = figures.order_figure(got, sync, got.phases)
    ax_r, ax_f = fig.axes[1], fig.axes[2]  # below the phase strip
    np.testing.assert_array_equal(ax_r.lines[0].get_xdata(), sync.t)
    np.testing.assert_array_equal(ax_r.lines[0].get_ydata(), sync.order_parameter)
    np.testing.assert_array_equal(ax_f.lines[0].get_ydata(), sync.collective_frequency)
    assert [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("6 ")] == ["6 reflective sessions"]
    plt.close(fig)

    fig = figures.clusters_figure(got, sync, got.phases)
    whole, zoom = fig.axes[1], fig.axes[2]
    estimated = sync.cluster_frequency > 0
    np.testing.assert_array_equal(whole.collections[-1].get_offsets()[:, 1], sync.cluster_frequency[estimated])
    start, end = zoom.get_xlim()
    shown = zoom.collections[-1].get_offsets()
    assert len(shown) and np.all((shown[:, 0] >= start) & (shown[:, 0] <= end))
    disruption = got.phases.span("disruption")
    assert start < disruption[0] < end, (start, end, disruption)
    plt.close(fig)

    fig = figures.plazas_figure(got, sync, got.phases)
    lines = [line for line in fig.axes[1].lines if line.get_label() in sync.plazas]
    assert [line.get_label() for line in lines] == sync.plazas
    for column, line in enumerate(lines):
        np.testing.assert_array_equal(line.get_ydata(), sync.plaza_order[:, column])
    plt.close(fig)

    hyp = got.hypnograms
    fig = figures.hypnograms_figure(got, hyp, got.phases)
    rows = fig.axes[1:]
    assert len(rows) == len(hyp.participants)
    for ax, stage in zip(rows, hyp.stage, strict=True):
        (stairs,) = [p for p in ax.patches if p.__class__.__name__ == "StepPatch"]
        np.testing.assert_array_equal(stairs.get_data().values, figures.stage_row(stage))
    plt.close(fig)

    fig = figures.trees_figure(got, got.trees, got.phases)
    (image,) = fig.axes[1].images
    np.testing.assert_array_equal(image.get_array(), figures.tree_strip(got.trees)[1])
    assert image.get_array().max() == pytest.approx(1.0)  # the brightest channel is shown full
    plt.close(fig)


def test_a_bag_without_some_topics_skips_their_figures_with_a_note(night, tmp_path, ros_env):
    from lumina_nodes.bag.reader import BagReader
    from lumina_nodes.bag.writer import BagWriter

    reader = BagReader(night[0])
    partial = tmp_path / "only_sync"
    writer = BagWriter(partial)
    info = reader.topics["/sync/state"]
    topic = writer.add_topic(info.name, info.type, info.qos, info.type_hash)
    for _, recv, send, data in reader.messages(["/sync/state"]):
        writer.write(topic, recv, send, data)
    writer.close()
    out = tmp_path / "figures"
    run = subprocess.run(
        lumina("plot", str(partial), "-o", str(out)), env=ros_env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[:3] == [f"wrote {out / name}" for name in ("order.png", "clusters.png", "plazas.png")], lines
    assert lines[3].startswith("skipped hypnograms.png") and "/biodream/samples" in lines[3], lines
    assert lines[4].startswith("skipped trees.png") and "/trees/*/lighting" in lines[4], lines
    assert len(lines) == 5 and sorted(p.name for p in out.iterdir()) == ["clusters.png", "order.png", "plazas.png"]
    assert pixels_near(png(out / "order.png"), "#1f3b73") > 300  # no phases known: still the r line (bound as above)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "no such bag"),
        ("empty_directory", "not a bag"),
        ("text_file", "not a readable MCAP file"),
    ],
)
def test_what_is_no_bag_fails_with_a_clear_message(kind, message, tmp_path, ros_env):
    path = tmp_path / kind
    if kind == "empty_directory":
        path.mkdir()
    elif kind == "text_file":
        path.write_text("these are not the bytes of a bag\n" * 10)
    run = subprocess.run(lumina("plot", str(path)), env=ros_env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith("lumina plot: error: ") and message in run.stderr, run.stderr
    assert str(path) in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert not (tmp_path / "plots").exists() and not list(tmp_path.glob("*_plots")), "made an output folder"


def test_plot_help_names_every_figure(ros_env):
    run = subprocess.run(lumina("plot", "--help"), env=ros_env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and run.stdout.startswith("usage: lumina plot"), run.stderr
    for name in FIGURES:
        assert name in run.stdout, name
    top = subprocess.run(lumina("--help"), env=ros_env, capture_output=True, text=True, timeout=30)
    assert re.search(r"^\s+plot\s+PNG figures of a recorded night", top.stdout, re.M), top.stdout
