"""The planted regression of the gate's self-test (compress/techniques/planted.py)."""

import numpy as np
import pytest

from compress.judging import thresholds
from compress.techniques.planted import PlantedPruningConfig, plant, planted_chain


def test_the_planted_bug_zeroes_the_largest_entries_and_the_correct_pruner_the_smallest():
    a = np.arange(1, 21, dtype=np.float32).reshape(4, 5) * np.where(np.arange(20) % 2, 1, -1).reshape(4, 5)
    bias, ids = np.ones(5, np.float32), np.arange(20).reshape(4, 5)
    wrong, b, i = plant([a, bias, ids], PlantedPruningConfig(0.5, largest=True))
    assert set(np.abs(a[wrong == 0])) == set(range(11, 21)) and np.array_equal(wrong[wrong != 0], a[np.abs(a) <= 10])
    assert b is bias and i is ids  # 1-D arrays (biases, norms) and integer buffers are kept
    small = plant([a], PlantedPruningConfig(0.1, largest=False))[0]
    assert set(np.abs(a[small == 0])) == {1.0, 2.0} and a[0, 0] != 0 and (small != 0).sum() == 18
    assert plant([a], PlantedPruningConfig(0.01, largest=False))[0] is a  # nothing to zero in 20 entries


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half"])
def test_fraction_is_validated(bad):
    with pytest.raises(ValueError, match="fraction must be a number in"):
        PlantedPruningConfig(fraction=bad)


def test_on_a_trained_model_the_judge_fails_the_bug_and_passes_a_change_it_cannot_resolve():
    """Through the runner on the unit-tier torch model (trained once into the shared cache)."""
    from compress.runner import Runner

    runner = Runner(eval_threads=1)
    wrong = runner.evaluate("tiny_torch", "fp32", planted_chain(PlantedPruningConfig(0.5, largest=True))).metrics()
    small = runner.evaluate("tiny_torch", "fp32", planted_chain(PlantedPruningConfig(0.01, largest=False))).metrics()
    assert wrong["baseline_accuracy"] > 0.6 and wrong["sparsity"] > 0.45
    bounds = thresholds.parse("[tiny_torch.prune50]\nretention = { min = 0.9, last = 0.99 }\n")["tiny_torch.prune50"]
    assert wrong["retention_upper"] < 0.5 and bounds.violations(wrong)
    strict = thresholds.parse("[tiny_torch.float16]\nretention = { min = 0.999, last = 1.0 }\n")["tiny_torch.float16"]
    assert small["retention_upper"] >= 0.999 and not strict.violations(small)
