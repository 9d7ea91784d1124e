"""The figures of a night, from plain arrays (numpy + matplotlib with the Agg backend; no ROS).

Each ``*_figure`` function takes the arrays it draws (the dataclasses of :mod:`lumina_nodes.plots.extract`, or
None) and returns a matplotlib Figure; :data:`FIGURES` lists them with the file name each is saved under and what
it needs. Times are seconds since the night's origin on the node clock; the festival's phases, when known, are
shaded behind every time axis and named in a strip above it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt
import numpy as np

from lumina_nodes.constants import SleepStage

from .extract import Hypnograms, Night, Phases, Sync, Trees

TIME_LABEL = "time since the program started, s (node clock)"
#: a hypnogram's rows, top to bottom, as sleep scorers draw them
STAGE_ROWS = [SleepStage.W, SleepStage.REM, SleepStage.N1, SleepStage.N2, SleepStage.N3]
STAGE_COLOURS = {
    SleepStage.W: "#e8a33d",
    SleepStage.REM: "#c9463d",
    SleepStage.N1: "#7fb8d8",
    SleepStage.N2: "#3c78b4",
    SleepStage.N3: "#1d3c78",
}
#: at most this many hypnogram rows in one figure (the title says how many were left out)
MAX_PARTICIPANTS = 24
#: time columns of the tree strip
TREE_COLUMNS = 1200
PHASE_CMAP = plt.get_cmap("Pastel1")


def _phase_colour(k: int):
    return PHASE_CMAP(k % PHASE_CMAP.N)


def _time_axes(rows: int, phases: Phases | None, *, height: float = 6.0, ratios=None, own_axis: int = 0):
    """A figure with a phase strip on top (when phases are known) and ``rows`` data axes below it, the phases
    shaded in each. They share the strip's time axis, except the last ``own_axis`` ones (a zoom)."""
    ratios = list(ratios or [1] * rows)
    if phases is not None:  # a strip about 0.4 inch high, whatever the figure's height
        ratios = [sum(ratios) * 0.4 / max(height - 1.6, 1.0), *ratios]
    fig, axes = plt.subplots(
        len(ratios),
        1,
        figsize=(12.0, height),
        gridspec_kw={"height_ratios": ratios},
        squeeze=False,
        layout="constrained",
    )
    axes = list(axes[:, 0])
    for ax in axes[1 : len(axes) - own_axis]:
        ax.sharex(axes[0])
    for ax in axes[: len(axes) - own_axis - 1]:
        ax.tick_params(labelbottom=False)
    if phases is not None:
        _phase_strip(axes[0], phases)
        for ax in axes[1:]:
            _shade(ax, phases)
        return fig, axes[1:]
    return fig, axes


def _shade(ax, phases: Phases):
    for k, (start, end) in enumerate(zip(phases.start, phases.end, strict=True)):
        ax.axvspan(start, end, color=_phase_colour(int(phases.index[k])), alpha=0.45, lw=0, zorder=0)


def _phase_strip(ax, phases: Phases):
    """The phases as coloured spans, numbered from 1, with their names: inside a span wide enough for the name,
    else slanted above the strip."""
    total = max(float(phases.end[-1] - phases.start[0]), 1e-9)
    for k, (start, end, name) in enumerate(zip(phases.start, phases.end, phases.name, strict=True)):
        number = int(phases.index[k]) + 1
        ax.axvspan(start, end, color=_phase_colour(number - 1), lw=0)
        label = f"{number} {name.replace('_', ' ')}"
        if (end - start) / total > 0.0095 * len(label):
            ax.text((start + end) / 2, 0.5, label, ha="center", va="center", fontsize=8, clip_on=True)
        else:
            ax.text((start + end) / 2, 0.5, str(number), ha="center", va="center", fontsize=7, clip_on=True)
            ax.text(start, 1.08, label, ha="left", va="bottom", rotation=40, rotation_mode="anchor", fontsize=7)
    ax.set_yticks([])
    ax.set_ylim(0, 1)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def _mark_events(ax, phases: Phases, kinds, y: float = 0.03, colour=None):
    """Dotted lines at the festival's events of ``kinds``, labelled (events closer than 2 % of the night share
    one label)."""
    picked = [k for k, kind in enumerate(phases.event_kind) if kind in kinds]
    total = max(float(phases.end[-1] - phases.start[0]), 1e-9)
    groups = []
    for k in picked:
        if groups and phases.event_t[k] - phases.event_t[groups[-1][-1]] < 0.02 * total:
            groups[-1].append(k)
        else:
            groups.append([k])
    for group in groups:
        for k in group:
            ax.axvline(phases.event_t[k], color=colour(k) if colour else "0.3", lw=0.8, ls=":", zorder=1)
        text = ", ".join(_event_label(phases, k) for k in group)
        ax.text(
            phases.event_t[group[-1]],
            y,
            " " + text,
            rotation=90,
            fontsize=7,
            va="bottom",
            ha="left",
            color="0.2",
            transform=ax.get_xaxis_transform(),
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.6},
        )


def _event_label(phases: Phases, k: int) -> str:
    kind, text = phases.event_kind[k], phases.event_text[k]
    if kind in ("plaza_relocked", "plaza_rejoined") and text:
        return f"{text.split()[0]} {kind.removeprefix('plaza_')}"
    return kind.replace("_", " ")


def _finish(fig, axes, title: str, night: Night):
    axes[-1].set_xlabel(TIME_LABEL)
    if night.phases is not None:
        title += f"  |  program {night.phases.program}"
    fig.suptitle(title, fontsize=12, x=0.01, ha="left")
    fig.text(0.995, 0.002, night.path, ha="right", va="bottom", fontsize=6, color="0.5")
    return fig


def order_figure(night: Night, sync: Sync, phases: Phases | None):
    """r(t) and the lock fraction, and the collective frequency, over the night."""
    fig, (ax_r, ax_f) = _time_axes(2, phases, ratios=[1.4, 1])
    ax_r.plot(sync.t, sync.order_parameter, color="#1f3b73", lw=1.4, label="order parameter r")
    ax_r.plot(sync.t, sync.lock_fraction, color="#5aa06e", lw=0.9, alpha=0.9, label="lock fraction")
    ax_r.set_ylim(-0.02, 1.04)
    ax_r.set_ylabel("r, lock fraction")
    ax_r.legend(loc="lower right", fontsize=8, framealpha=0.8)
    ax_r.grid(alpha=0.3)
    if phases is not None:  # the moments the festival reported
        _mark_events(ax_r, phases, ("disruption_detected", "harmony_restored", "phase_timeout", "program_aborted"))
    ax_f.plot(sync.t, sync.collective_frequency, color="#8c3f8c", lw=1.2)
    ax_f.set_ylabel("collective frequency, Hz")
    ax_f.grid(alpha=0.3)
    return _finish(fig, [ax_r, ax_f], "The city's rhythm: order parameter and collective frequency", night)


def cluster_window(sync: Sync, phases: Phases | None) -> tuple[float, float] | None:
    """The disruption's time range: from the start of the program's ``disruption`` phase (or the first state with
    two or more clusters) to the end of the first run of states with two or more clusters from there (or the
    phase's end), with a margin; None when the night had neither."""
    span = phases.span("disruption") if phases is not None else None
    split = sync.cluster_count >= 2
    begin = span[0] if span else (float(sync.t[split][0]) if split.any() else None)
    if begin is None:
        return None
    after = np.flatnonzero(split & (sync.t >= begin - 0.5))
    finish = span[1] if span else begin
    if len(after):
        first = after[0]
        ended = np.flatnonzero(~split[first:])
        last = first + ended[0] - 1 if len(ended) else len(split) - 1
        finish = max(finish, float(sync.t[last]))
    margin = max(1.0, 0.2 * (finish - begin))
    return max(float(sync.t[0]), begin - margin), min(float(sync.t[-1]), finish + margin)


def _cluster_scatter(ax, sync: Sync, keep: np.ndarray, largest: float):
    ax.scatter(
        sync.cluster_t[keep],
        sync.cluster_frequency[keep],
        s=4 + 60 * sync.cluster_size[keep] / largest,
        c=plt.get_cmap("tab10")(sync.cluster_index[keep] % 10),
        alpha=0.6,
        lw=0,
        label="cluster centre (area: jewels in it; colour: index by frequency)",
    )


def clusters_figure(night: Night, sync: Sync, phases: Phases | None):
    """Centre frequency of every frequency cluster over time, marker area by cluster size: the whole night above,
    the disruption below. Clusters at 0 Hz (the synchronizer has no frequency estimate yet) are left out."""
    estimated = sync.cluster_frequency > 0
    largest = max(float(sync.cluster_size.max()), 1.0)
    window = cluster_window(sync, phases)
    if window is None:
        fig, (ax,) = _time_axes(1, phases, height=4.5)
    else:
        fig, (ax, zoom) = _time_axes(2, phases, height=8.0, ratios=[1, 1.2], own_axis=1)
    _cluster_scatter(ax, sync, estimated, largest)
    ax.plot(sync.t, sync.collective_frequency, color="0.2", lw=0.8, label="collective frequency")
    ax.set_ylabel("frequency, Hz")
    ax.grid(alpha=0.3)
    if window is None:
        ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
        most = int(sync.cluster_count.max())
        return _finish(fig, [ax], f"Frequency clusters (at most {most} at once; no disruption this night)", night)
    start, end = window
    ax.axvspan(start, end, fc="none", ec="0.3", lw=1.0, ls="--", zorder=2)
    ax.set_xlabel(TIME_LABEL, fontsize=8)
    inside = estimated & (sync.cluster_t >= start) & (sync.cluster_t <= end)
    _cluster_scatter(zoom, sync, inside, largest)
    shown = (sync.t >= start) & (sync.t <= end)
    zoom.plot(sync.t[shown], sync.collective_frequency[shown], color="0.2", lw=0.8, label="collective frequency")
    if phases is not None:  # the numbers of the phases the zoom shows
        for k, (a, b) in enumerate(zip(phases.start, phases.end, strict=True)):
            if b > start and a < end:
                label = f" {int(phases.index[k]) + 1} {phases.name[k].replace('_', ' ')}"
                zoom.text(max(a, start), 0.98, label, va="top", fontsize=7, transform=zoom.get_xaxis_transform())
    zoom.set_xlim(start, end)
    zoom.set_ylabel("frequency, Hz")
    zoom.set_title("the disruption (the dashed box above)", fontsize=9, loc="left")
    zoom.grid(alpha=0.3)
    zoom.legend(loc="lower right", fontsize=8, framealpha=0.8)
    most = int(sync.cluster_count[shown].max()) if shown.any() else 0
    return _finish(fig, [ax, zoom], f"Frequency clusters: up to {most} at once during the disruption", night)


def plazas_figure(night: Night, sync: Sync, phases: Phases | None):
    """The order parameter of each plaza alone over time; the plazas' re-locks marked."""
    fig, (ax,) = _time_axes(1, phases, height=5.5)
    colours = plt.get_cmap("tab10")
    for column, plaza in enumerate(sync.plazas):
        ax.plot(sync.t, sync.plaza_order[:, column], lw=1.1, color=colours(column % 10), label=plaza)
    if phases is not None:

        def plaza_colour(k):
            plaza = phases.event_text[k].split()[0] if phases.event_text[k] else ""
            return colours(sync.plazas.index(plaza) % 10) if plaza in sync.plazas else "0.3"

        _mark_events(ax, phases, ("plaza_relocked",), y=0.3, colour=plaza_colour)
    ax.set_ylim(-0.02, 1.04)
    ax.set_ylabel("order parameter of the plaza")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    return _finish(fig, [ax], "Per-plaza lock", night)


def stage_row(stage: np.ndarray) -> np.ndarray:
    """Hypnogram row of each stage code (W on top = 4 .. N3 = 0); NaN for UNKNOWN (not staged)."""
    lookup = np.full(256, np.nan)
    for row, code in enumerate(STAGE_ROWS):
        lookup[code] = len(STAGE_ROWS) - 1 - row
    return lookup[np.asarray(stage, np.uint8)]


def epoch_edges(t: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    """Edges of the stairs of a hypnogram: each epoch ends at its stamp and starts one epoch length earlier, or at
    the previous epoch's end where epochs overlap (hop shorter than the epoch)."""
    if not len(t):
        return np.zeros(1)
    return np.concatenate([[t[0] - epoch[0]], t])


def hypnograms_figure(night: Night, hyp: Hypnograms, phases: Phases | None):
    """One hypnogram per participant: the scored stage of each epoch (gaps: not staged, bad signal)."""
    shown = hyp.participants[:MAX_PARTICIPANTS]
    rows = len(shown)
    fig, axes = _time_axes(rows, phases, height=1.6 + 0.75 * rows)
    for ax, participant, plaza, t, epoch, stage in zip(
        axes, shown, hyp.plaza, hyp.t, hyp.epoch, hyp.stage, strict=False
    ):
        y = stage_row(stage)
        edges = epoch_edges(t, epoch)
        ax.stairs(y, edges, baseline=None, color="0.15", lw=1.3)
        known = ~np.isnan(y)
        ax.scatter(
            t[known] - epoch[known] / 2,
            y[known],
            c=[STAGE_COLOURS[int(s)] for s in stage[known]],
            s=14,
            zorder=3,
        )
        ax.set_yticks(range(len(STAGE_ROWS)), [SleepStage.name(s) for s in reversed(STAGE_ROWS)], fontsize=7)
        ax.set_ylim(-0.6, len(STAGE_ROWS) - 0.4)
        agreement = hyp.truth_agreement.get(participant)
        note = f", agrees with the backend's ground truth in {agreement[1]:.0%} of {agreement[0]}" if agreement else ""
        ax.set_title(
            f"{participant} ({plaza or 'no plaza'}): {int(known.sum())} of {len(y)} epochs staged{note}",
            fontsize=8,
            loc="left",
        )
        ax.grid(alpha=0.25, axis="x")
    more = f" (first {rows} of {len(hyp.participants)})" if len(hyp.participants) > rows else ""
    return _finish(fig, axes, f"Hypnograms: the Bio-Dream sensors' scored stages{more}", night)


def tree_strip(trees: Trees, columns: int = TREE_COLUMNS):
    """The trees' colours on a common time grid: (grid (c,), image (trees, c, 3) in 0..1, scale).

    Each column shows the frame each tree published last at that time (black before its first). Every colour is
    divided by the brightest channel value of the whole night (``scale``, 0..255), so hues and the relative
    brightness between trees and scenes stay as they were while a night-time dim palette is still visible.
    """
    start = min(float(t[0]) for t in trees.t)
    end = max(float(t[-1]) for t in trees.t)
    grid = np.linspace(start, end, columns) if end > start else np.array([start])
    scale = max(float(c.max()) for c in trees.colour)
    scale = scale if scale > 0 else 1.0
    image = np.zeros((len(trees.trees), len(grid), 3))
    for row, (t, colour) in enumerate(zip(trees.t, trees.colour, strict=True)):
        last = np.searchsorted(t, grid, side="right") - 1
        valid = last >= 0
        image[row, valid] = colour[last[valid]] / scale
    return grid, np.clip(image, 0, 1), scale


def trees_figure(night: Night, trees: Trees, phases: Phases | None):
    """Each SleepTree's mean pixel colour over the night, one row per tree."""
    grid, image, scale = tree_strip(trees)
    rows = len(trees.trees)
    fig, (ax,) = _time_axes(1, phases, height=1.8 + 0.35 * rows)
    half = (grid[1] - grid[0]) / 2 if len(grid) > 1 else 0.5
    ax.imshow(
        image,
        aspect="auto",
        interpolation="nearest",
        extent=(grid[0] - half, grid[-1] + half, rows - 0.5, -0.5),
    )
    ax.set_yticks(range(rows), trees.trees, fontsize=7)
    ax.set_xlim(grid[0] - half, grid[-1] + half)
    title = f"The SleepTrees' colours (mean pixel; the night's brightest channel, {scale:.0f} of 255, shown full)"
    return _finish(fig, [ax], title, night)


@dataclass(frozen=True)
class FigureSpec:
    file: str
    what: str
    topic: str  # the topic (fnmatch pattern) it is drawn from, for the note when it is skipped
    hint: str = ""  # why the topic may hold nothing to draw


FIGURES = [
    FigureSpec("order.png", "order parameter and collective frequency", "/sync/state"),
    FigureSpec("clusters.png", "cluster centre frequencies during the disruption", "/sync/state"),
    FigureSpec("plazas.png", "per-plaza lock", "/sync/state"),
    FigureSpec(
        "hypnograms.png",
        "the participants' hypnograms",
        "/biodream/samples",
        "a Bio-Dream sensor scores its first epoch once 30 s of EEG have arrived",
    ),
    FigureSpec("trees.png", "the SleepTrees' colours", "/trees/*/lighting"),
]


def skip_note(spec: FigureSpec, night: Night) -> str:
    """One line saying why ``spec`` was not drawn from ``night``."""
    hint = f" ({spec.hint})" if spec.hint else ""
    if not fnmatch.filter(night.topics, spec.topic):
        return f"skipped {spec.file} ({spec.what}): the bag has no {spec.topic} messages{hint}"
    return f"skipped {spec.file} ({spec.what}): nothing to draw in its {spec.topic} messages{hint}"


def build(spec: FigureSpec, night: Night):
    """The figure ``spec`` of ``night``, or None when the bag holds nothing it can draw."""
    sync, phases = night.sync, night.phases
    if spec.file == "order.png":
        return order_figure(night, sync, phases) if sync is not None else None
    if spec.file == "clusters.png":
        return clusters_figure(night, sync, phases) if sync is not None and len(sync.cluster_t) else None
    if spec.file == "plazas.png":
        return plazas_figure(night, sync, phases) if sync is not None and sync.plazas else None
    if spec.file == "hypnograms.png":
        return hypnograms_figure(night, night.hypnograms, phases) if night.hypnograms is not None else None
    if spec.file == "trees.png":
        return trees_figure(night, night.trees, phases) if night.trees is not None else None
    raise ValueError(f"unknown figure {spec.file!r}")


def save(fig, path, dpi: int = 110) -> None:
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
