"""Phase arithmetic shared by the models, backends and kernels (plain numpy, no rclpy).

One wrap for radians, one for cycles (rad / 2 pi). Both are trig-free and map onto the half-open interval, so a
phase of exactly +pi (or +0.5 cycle) comes back as -pi (-0.5), as the message contract ([-pi, pi)) says.
"""

import math

import numpy as np

TWO_PI = 2.0 * math.pi
INV_TWO_PI = 1.0 / TWO_PI


def wrap_phase(x, out=None):
    """Wrap radians to [-pi, pi).

    Parameters
    ----------
    x : float or array_like of float
        Phases, rad (any magnitude).
    out : ndarray, optional
        Array to write the result into (same shape as ``x``); the hot-path form, which allocates nothing more
        than one temporary.

    Returns
    -------
    float or ndarray
        ``x - 2 pi floor(x / 2 pi + 1/2)``, in [-pi, pi), float64 (or ``out``'s dtype).
    """
    if out is None and np.isscalar(x):
        y = float(x) - TWO_PI * math.floor(float(x) * INV_TWO_PI + 0.5)
        return y - TWO_PI if y >= math.pi else y
    turns = np.multiply(x, INV_TWO_PI)
    turns += 0.5
    np.floor(turns, out=turns)
    turns *= TWO_PI
    y = np.subtract(x, turns, out=out)
    # x just below an odd multiple of pi can round to exactly +pi in the subtraction
    np.subtract(y, TWO_PI, out=y, where=y >= math.pi)
    return y


def wrap_cycles(x, out=None):
    """Wrap cycles to [-0.5, 0.5): ``x - floor(x + 1/2)``. Scalar or array; ``out`` as in :func:`wrap_phase`."""
    if out is None and np.isscalar(x):
        y = float(x) - math.floor(float(x) + 0.5)
        return y - 1.0 if y >= 0.5 else y
    turns = np.add(x, 0.5)
    np.floor(turns, out=turns)
    y = np.subtract(x, turns, out=out)
    np.subtract(y, 1.0, out=y, where=y >= 0.5)
    return y
