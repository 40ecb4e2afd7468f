"""Determinism helpers shared by models and techniques (imports no other part of the suite but
:mod:`compress.frameworks`, when TensorFlow is seeded).

Float reductions split over another number of threads add up in another order.
Over thousands of training steps that is another model; over a calibration
pass it is another activation range, hence other int8 bytes (EfficientNet-Lite0's
PT2E int8 calibrated on one thread and on two differed). Everything that
derives weights or quantization parameters from float arithmetic in torch runs
on :data:`TORCH_THREADS` intra-op threads, whatever the process ran before.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = ["TORCH_THREADS", "torch_threads", "set_determinism"]

# One thread took 410 s for ResNet18's 3 epochs here, two 180 s; the count is part
# of every torch model's cache key (compress.models.torch_common.TRAIN_THREADS).
TORCH_THREADS = 1


@contextlib.contextmanager
def torch_threads(n: int = TORCH_THREADS) -> Iterator[None]:
    """Run the block on ``n`` torch intra-op threads, restoring the previous count after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def set_determinism(seed: int) -> None:
    """Seed every generator TensorFlow uses and make its kernels deterministic."""
    from compress.frameworks import tensorflow

    tf = tensorflow()
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
