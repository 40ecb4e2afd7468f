"""torch training is reproducible: the same recipe gives the same weights in any process state."""

import numpy as np
import pytest

from compress.models import torch_common
from compress.models.torch_classifier import TorchImageClassifier
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
