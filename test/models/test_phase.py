"""The one phase wrap (lumina_nodes/phase.py): range [-pi, pi) for every finite input, value exact."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumina_nodes.phase import TWO_PI, wrap_cycles, wrap_phase

finite = st.floats(allow_nan=False, allow_infinity=False)


@given(st.lists(finite, min_size=1, max_size=50))
def test_wrap_phase_range_and_value_for_any_finite_input(values):
    x = np.array(values)
    y = wrap_phase(x)
    assert np.all((y >= -math.pi) & (y < math.pi)), (x, y)
    # the same angle as the exact IEEE remainder, to a few units in the last place of x
    exact = np.array([math.remainder(v, TWO_PI) for v in values])
    difference = y - exact
    difference -= TWO_PI * np.rint(difference / TWO_PI)
    with np.errstate(over="ignore"):  # the spacing of the largest floats is inf: any difference is fine there
        ulp = np.spacing(np.abs(x))
    assert np.all(np.abs(difference) <= 8 * ulp + 1e-12), (x, y, exact)
    assert [wrap_phase(v) for v in values] == pytest.approx(list(y), abs=1e-12)


@given(st.lists(finite, min_size=1, max_size=50))
def test_wrap_cycles_range(values):
    y = wrap_cycles(np.array(values))
    assert np.all((y >= -0.5) & (y < 0.5))
    assert all(-0.5 <= wrap_cycles(v) < 0.5 for v in values)


def test_half_open_edges_and_out_argument():
    assert wrap_phase(math.pi) == -math.pi and wrap_phase(-math.pi) == -math.pi
    assert wrap_cycles(0.5) == -0.5
    x = np.array([math.pi, 3 * math.pi, -3 * math.pi, 7.0, 1e300])
    out = np.empty_like(x)
    assert wrap_phase(x, out=out) is out
    assert out[:3] == pytest.approx([-math.pi] * 3)
    assert out[3] == pytest.approx(7.0 - TWO_PI)
    assert -math.pi <= out[4] < math.pi
    assert math.isnan(wrap_phase(math.inf)) and np.isnan(wrap_phase(np.array([np.nan]))).all()
