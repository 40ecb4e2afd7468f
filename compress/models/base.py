"""What every model recipe provides (Keras and torch alike).

A recipe is a frozen dataclass; every field is part of the cache key of the
weights it trains, so changing a field retrains. The runner, the techniques and
the runtimes only use the members below.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol, Sequence

import numpy as np


class Recipe(Protocol):
    framework: str  # "keras" or "torch": selects technique handlers
    seed: int
    batch_size: int

    def data(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Model-ready ``(x float32, y int64)`` of ``train`` / ``calib`` / ``test``.

        Layout is the framework's own: NHWC for Keras, NCHW for torch.
        """

    def train(self, label: str) -> Any:
        """Build and train (or load pretrained and fit a head); the native model."""

    def weights(self, native: Any) -> list[np.ndarray]:
        """Every array needed to restore ``native`` (what the cache stores)."""

    def load(self, weights: Sequence[np.ndarray]) -> Any:
        """The native model holding ``weights``.

        Shape-aware: when the arrays are smaller than the dense architecture's
        (a structurally pruned model), the architecture is rebuilt to match.
        """

    def fit(self, native: Any, *, epochs: float, learning_rate: float, label: str,
            callbacks: Sequence[Any] = ()) -> None:  # fmt: skip
        """Fine-tune ``native`` in place on the train split (fractions of epochs allowed)."""

    def count_params(self, native: Any) -> int:
        """Trainable parameters of ``native``."""


class FirstImagesSplits:
    """``data``, ``fine_tune_data`` and ``steps_per_epoch`` of a recipe that trains
    and fine-tunes on the first images of the ``train`` split.

    The recipe gives ``_images(split, limit)`` (model-ready ``(x, y)`` of the first
    ``limit`` images, None: all; memoized), ``_limit(split)`` (how many images
    :meth:`data` returns, None: all), ``fine_tune_size`` (None: every image
    :meth:`data` has for ``train``) and ``batch_size``.
    """

    def data(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Model-ready ``(x, y)`` of a split, cut to the recipe's limit for it."""
        return self._images(split, self._limit(split))

    def fine_tune_data(self) -> tuple[np.ndarray, np.ndarray]:
        """What ``fit`` trains on: the first ``fine_tune_size`` training images."""
        n, have = self.fine_tune_size, self._limit("train")
        if n is None or have is None or n <= have:  # a view of data("train"): no second copy
            x, y = self.data("train")
            return x[:n], y[:n]
        return self._images("train", n)

    def steps_per_epoch(self) -> int:
        """Optimizer steps of one fine-tune epoch."""
        return math.ceil(len(self.fine_tune_data()[1]) / self.batch_size)


StepHook = Callable[[int], None]  # called with the global step after each optimizer step
