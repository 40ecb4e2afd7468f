"""torch training is reproducible: the same recipe gives the same weights in any process state."""

import numpy as np
import pytest

from compress.models import torch_common
from compress.models.vision.torch_classifier import TorchImageClassifier
from tests.test_data import needs_real

torch = pytest.importorskip("torch")

RECIPE = TorchImageClassifier("tiny_torch", input_size=28, channels=1, epochs=1, batch_size=64,
                              learning_rate=1e-2, train_size=1024)  # fmt: skip


@needs_real
def test_weights_do_not_depend_on_the_process_thread_count():
    """The runtimes leave torch at their own thread count; a fit after them must not change.

    Without a fixed training thread count, this fit on 2 threads and on 1 gave
    different weights (reductions split over threads add up in another order).
    """
    before = torch.get_num_threads()
    trained = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            trained.append(RECIPE.weights(RECIPE.train("tiny_torch")))
            assert torch.get_num_threads() == threads, "fit must restore the thread count"
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*trained, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fit_trains_on_the_fixed_thread_count(monkeypatch):
    seen = []
    monkeypatch.setattr(torch_common, "_fit", lambda *a, **k: seen.append(torch.get_num_threads()))
    torch_common.fit(None, None, None, epochs=1, learning_rate=1e-3, batch_size=1, seed=0, label="x")
    assert seen == [torch_common.TRAIN_THREADS]


def _old_order(rng, n, batch_size):
    """The batches every fit drew before length grouping existed (cached models depend on it)."""
    order = rng.permutation(n)
    return [np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size)]


@pytest.mark.parametrize("n", [1, 100, 1000, 7958])
def test_without_lengths_the_batches_are_the_ones_every_cached_model_was_trained_on(n):
    new = torch_common.batch_order(np.random.default_rng(3), n, 32)
    old = _old_order(np.random.default_rng(3), n, 32)
    assert len(new) == len(old)
    for a, b in zip(new, old, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [1, 31, 1600, 1601, 7958])
def test_length_grouped_batches_see_every_example_once_in_as_many_steps(n):
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 80, size=n)
    batches = torch_common.batch_order(np.random.default_rng(1), n, 32, lengths)
    assert len(batches) == -(-n // 32), "an epoch keeps its number of optimizer steps"
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(n))
    assert all(len(b) <= 32 for b in batches)


def test_length_grouped_batches_pad_far_less_and_stay_shuffled():
    lengths = np.random.default_rng(0).integers(5, 60, size=6400)
    padded = lambda batches: sum(len(b) * lengths[b].max() for b in batches)  # noqa: E731
    plain = torch_common.batch_order(np.random.default_rng(1), len(lengths), 32)
    grouped = torch_common.batch_order(np.random.default_rng(1), len(lengths), 32, lengths)
    assert padded(grouped) < 0.6 * padded(plain)
    first = [lengths[b].max() for b in grouped[:50]]
    assert first != sorted(first) and first != sorted(first, reverse=True), "batch order is shuffled"
    again = torch_common.batch_order(np.random.default_rng(1), len(lengths), 32, lengths)
    assert all(np.array_equal(a, b) for a, b in zip(grouped, again, strict=True)), "seeded"


def test_lengths_must_be_one_per_example():
    with pytest.raises(ValueError, match="one per example"):
        torch_common.batch_order(np.random.default_rng(0), 10, 4, np.ones(9))
