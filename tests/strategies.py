"""Hypothesis strategies shared by the unit tests."""

from hypothesis import strategies as st

finite = dict(allow_nan=False, allow_infinity=False)

# Affine int8 quantization parameters as converters produce them.
scales = st.floats(min_value=1e-6, max_value=1e3, **finite)
zero_points = st.integers(min_value=-128, max_value=127)
sparsities = st.floats(min_value=0.05, max_value=0.98, **finite)
bad_sparsities = st.one_of(
    st.floats(max_value=0.0499, **finite), st.floats(min_value=0.9801, **finite), st.just(float("nan"))
)
