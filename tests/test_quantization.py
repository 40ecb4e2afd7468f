import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from compress.affine import dequantize, quantize
from tests.strategies import scales, zero_points


@given(scale=scales, zp=zero_points, data=st.data())
def test_int8_round_trip_within_half_a_step(scale, zp, data):
    lo, hi = (-128 - zp) * scale, (127 - zp) * scale  # the representable range
    x = data.draw(arrays(np.float64, st.integers(1, 64), elements=st.floats(lo, hi)))
    back = dequantize(quantize(x, scale, zp), scale, zp).astype(np.float64)
    # float32 output adds relative rounding on top of the half step
    assert np.all(np.abs(back - x) <= scale / 2 + 1e-6 * np.maximum(np.abs(x), scale))


@given(scale=scales, zp=zero_points)
def test_out_of_range_values_saturate(scale, zp):
    q = quantize(np.array([-1e30, 1e30]), scale, zp)
    assert q.dtype == np.int8 and q.tolist() == [-128, 127]


def test_uint8_and_known_values():
    assert quantize(np.array([0.0, 0.5, 1.0]), 1 / 255, 0, np.uint8).tolist() == [0, 128, 255]
    assert dequantize(np.array([-128, 0, 127]), 0.5, -1).tolist() == [-63.5, 0.5, 64.0]
