"""No NaN leaves the kernel (issue 14: a starved city published `locked nan%`): every figure of a tick is finite
with no jewels, before the first sample and when every jewel has fallen silent."""

import math

import numpy as np

from lumina_nodes.kernels.phase_lock import PhaseLockKernel

FIGURES = ("order_parameter", "mean_phase", "collective_frequency", "reference_frequency")
FIGURES += ("lock_fraction", "rms_phase_error")


def finite(result):
    bad = [name for name in FIGURES if not math.isfinite(getattr(result, name))]
    for table in (result.clusters, result.drivers):
        for name, values in vars(table).items():
            if isinstance(values, np.ndarray) and values.dtype.kind == "f" and not np.all(np.isfinite(values)):
                bad.append(f"{type(table).__name__}.{name}")
    return bad


def test_every_figure_is_finite_with_nothing_to_measure():
    kernel = PhaseLockKernel(64)
    assert finite(kernel.step(1.0)) == []  # no jewel at all
    ids = np.arange(1, 21, dtype=np.uint32)
    kernel.register(7, ids)
    assert finite(kernel.step(1.02)) == []  # jewels known, no sample yet
    kernel.ingest(7, ids, np.zeros(20), np.ones(20), np.zeros(20), 1.03, 1.04)
    locked = kernel.step(1.04)
    assert locked.jewels_active == 20 and finite(locked) == []
    silent = kernel.step(600.0)  # every jewel silent for minutes
    assert silent.jewels_active == 0 and finite(silent) == []
    assert (silent.lock_fraction, silent.rms_phase_error) == (0.0, 0.0)
