"""Shared pieces of the built-in recipes (the contract itself: :mod:`compress.recipe`)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from compress.recipe import Recipe

__all__ = ["Recipe", "FirstImagesSplits", "StepHook"]


class FirstImagesSplits(Recipe):
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
