"""The statistical accuracy gate: paired bootstrap retention bound, Wilson accuracy bound."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compress.judging import stats

N = 10_000
FP32_CORRECT = 8_866  # MobileNetV2's fp32 top-1 on the 10,000 test images: 0.8866
FLOOR = 0.99


def outcomes(both: int, only_compressed: int, only_fp32: int, neither: int, seed: int = 0):
    """Per-example correctness (compressed, fp32) with these 2x2 counts, in a shuffled order."""
    compressed = np.repeat([True, True, False, False], [both, only_compressed, only_fp32, neither])
    fp32 = np.repeat([True, False, True, False], [both, only_compressed, only_fp32, neither])
    order = np.random.default_rng(seed).permutation(compressed.size)
    return compressed[order], fp32[order]


def compressed_at(correct: int, only_compressed: int = 60):
    """A compressed model with ``correct`` right answers against the fp32 reference's 8,866,
    disagreeing with it on ~2% of the images, as int8 models do."""
    only_fp32 = FP32_CORRECT - correct + only_compressed
    return outcomes(FP32_CORRECT - only_fp32, only_compressed, only_fp32, N - FP32_CORRECT - only_compressed)


def test_one_image_short_of_the_floor_passes():
    short = math.ceil(FLOOR * FP32_CORRECT) - 1  # 8,777 correct: retention 0.98996
    est = stats.retention_bound(*compressed_at(short))
    assert est.point < FLOOR  # the old point comparison failed this pair
    assert est.upper >= FLOOR  # not 95% sure the true retention is below the floor: pass
    assert est.n == N and est.confidence == stats.CONFIDENCE == 0.95


@pytest.mark.parametrize(
    "correct, what",
    [
        (round(0.98 * FP32_CORRECT), "retention 0.98: 2 points down from 1.0, 1 under the floor"),
        (FP32_CORRECT - 200, "top-1 2 points down: 0.8866 -> 0.8666, retention 0.977"),
    ],
)
def test_a_real_regression_fails(correct, what):
    est = stats.retention_bound(*compressed_at(correct))
    assert est.upper < FLOOR, what
    assert est.point < est.upper < est.point + 0.01, "a tight bound on 10,000 examples"


def test_bound_matches_the_normal_approximation_and_detectable_drop():
    compressed, fp32 = compressed_at(math.ceil(FLOOR * FP32_CORRECT) - 1)
    counts = stats.paired_counts(compressed, fp32)
    assert (counts.both, counts.only_compressed, counts.only_fp32, counts.n) == (8_717, 60, 149, N)
    est = stats.retention_bound(compressed, fp32)
    margin = stats.detectable_drop(N, counts.discordant_rate, FP32_CORRECT / N)
    assert est.upper - est.point == pytest.approx(margin, rel=0.1)
    # the README's numbers: 10,000 images, 2% disagreement, fp32 top-1 0.88
    assert stats.detectable_drop(N, 0.02, 0.88) == pytest.approx(0.0026, abs=5e-5)
    assert stats.detectable_drop(N, 0.02, 0.88, power=0.95) == pytest.approx(0.0053, abs=5e-5)


def test_identical_outcomes_give_retention_one_with_a_tight_bound():
    _, fp32 = compressed_at(FP32_CORRECT)
    est = stats.retention_bound(fp32, fp32.copy())
    assert est.point == 1.0 and est.upper == 1.0  # no disagreement: nothing to resample


def test_the_bound_is_deterministic_and_depends_only_on_the_counts():
    a = stats.retention_bound(*compressed_at(8_700))
    b = stats.retention_bound(*compressed_at(8_700))
    assert a == b
    shuffled = stats.retention_bound(*outcomes(8_700 - 60, 60, 8_866 - 8_640, N - 8_866 - 60, seed=7))
    assert shuffled == a  # the examples' order does not matter
    # the Monte Carlo error the fixed seed freezes is far below the bound's margin
    other = stats.retention_bound(*compressed_at(8_700), seed=stats.SEED + 1)
    assert abs(other.upper - a.upper) < 2e-4


def test_accuracy_bound_is_wilson():
    _, fp32 = compressed_at(FP32_CORRECT)
    est = stats.accuracy_bound(fp32)
    assert est.point == 0.8866 and est.n == N
    assert 0.8866 < est.upper < 0.8866 + 1.645 * math.sqrt(0.8866 * 0.1134 / N) + 1e-4
    z2 = 1.6448536269514722**2
    assert stats.wilson_upper(0, N) == pytest.approx(z2 / (N + z2))  # Wilson at 0: z^2 / (n + z^2)
    assert stats.wilson_upper(N, N) == 1.0
    # an fp32 model one image short of its 0.88 floor is not a failure; 1 point under is
    assert stats.accuracy_bound(np.arange(N) < 8_799).upper >= 0.88
    assert stats.accuracy_bound(np.arange(N) < 8_700).upper < 0.88


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: stats.retention_bound([], []), "no examples"),
        (lambda: stats.retention_bound([True, False], [False, False]), "fp32 reference is never correct"),
        (lambda: stats.retention_bound([True] * 3, [True] * 4), "same examples: got 3 and 4"),
        (lambda: stats.retention_bound([[True]], [[True]]), "1-d array"),
        (lambda: stats.retention_bound([0, 2], [1, 1]), "booleans or 0/1"),
        (lambda: stats.retention_bound([True], [True], confidence=1.0), r"confidence must be in \[0.5, 1\)"),
        (lambda: stats.retention_bound([True], [True], samples=10), "samples must be >= 100"),
        (lambda: stats.accuracy_bound(np.array([], bool)), "no examples"),
        (lambda: stats.wilson_upper(5, 4), "0 <= correct <= n"),
        (lambda: stats.detectable_drop(0, 0.02, 0.9), "n must be > 0"),
        (lambda: stats.detectable_drop(100, 1.5, 0.9), r"discordant_rate must be in \[0, 1\]"),
        (lambda: stats.detectable_drop(100, 0.02, 0.0), r"accuracy \(of fp32\) must be in \(0, 1\]"),
    ],
)
def test_degenerate_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_zero_one_integers_are_outcomes_too():
    as_bool = stats.retention_bound([True, True, False], [True, False, True])
    assert stats.retention_bound([1, 1, 0], [1, 0, 1]) == as_bool


tables = st.tuples(*(st.integers(0, 400) for _ in range(4))).filter(lambda t: t[0] + t[2] > 0)


@settings(max_examples=60, deadline=None)
@given(tables)
def test_upper_bounds_are_never_below_the_point_estimate(counts):
    compressed, fp32 = outcomes(*counts)
    est = stats.retention_bound(compressed, fp32)
    assert est.upper >= est.point
    acc = stats.accuracy_bound(compressed)
    assert acc.point <= acc.upper <= 1.0
