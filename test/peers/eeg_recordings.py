"""EDF+ recordings for the Bio-Dream tests: simulated sleep EEG of chosen stages, with stage annotations.

The EEG comes from lumina_nodes.models.eeg.SleepEegSimulator: its 30 s epochs whose ground-truth stage is the one
asked for (and that hold no artifact) are collected, in the order asked, per participant.
"""

import numpy as np
import pyedflib

from lumina_nodes.models.eeg import ARTIFACT_NONE, SleepEegSimulator

FS = 256
LABEL = "EEG Fpz-Cz"
ANNOTATION = {0: "W", 1: "1", 2: "2", 3: "3", 4: "R"}


def stage_epochs(stages, seed, max_hours=12.0):
    """(len(stages) * 30 * FS,) float64 uV: one simulated epoch of each stage code in ``stages``, in order."""
    simulator = SleepEegSimulator(1, 1, seed=seed)
    pool = {}
    wanted = {s: stages.count(s) for s in set(stages)}
    while any(len(pool.get(s, [])) < n for s, n in wanted.items()):
        if simulator.time > max_hours * 3600:
            raise RuntimeError(f"the simulated night of seed {seed} lacks clean epochs of stages {wanted}")
        block = simulator.read(30 * FS)[0, 0]
        middle = simulator.time - 15.0
        stage = int(simulator.stage_at(middle)[0])
        if int(simulator.artifact_at(middle)[0]) == ARTIFACT_NONE and stage in wanted:
            pool.setdefault(stage, []).append(block)
    taken = {s: iter(blocks) for s, blocks in pool.items()}
    return np.concatenate([next(taken[s]) for s in stages])


def write_edf(path, signals, stages=None, label=LABEL):
    """One EDF+ file of the uV ``signals`` (list of equal-length arrays, channel labels ``label``, ``label`` 2,
    ...), annotated with ``stages`` (one stage code per 30 s epoch) when given."""
    header = {
        "dimension": "uV",
        "sample_frequency": FS,
        "physical_max": 500.0,
        "physical_min": -500.0,
        "digital_max": 32767,
        "digital_min": -32768,
    }
    labels = [label if k == 0 else f"{label} {k + 1}" for k in range(len(signals))]
    with pyedflib.EdfWriter(str(path), len(signals), file_type=pyedflib.FILETYPE_EDFPLUS) as writer:
        writer.setSignalHeaders([{**header, "label": name} for name in labels])
        writer.writeSamples([np.clip(s, -500.0, 500.0) for s in signals])
        for k, stage in enumerate(stages or ()):
            writer.writeAnnotation(30.0 * k, 30.0, f"Sleep stage {ANNOTATION[stage]}")
    return labels
