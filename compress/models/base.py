"""What every model recipe provides (Keras and torch alike).

A recipe is a frozen dataclass; every field is part of the cache key of the
weights it trains, so changing a field retrains. The runner, the techniques and
the runtimes only use the members below.
"""

from __future__ import annotations

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


StepHook = Callable[[int], None]  # called with the global step after each optimizer step
