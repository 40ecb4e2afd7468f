"""Unstructured magnitude pruning: config and framework-neutral helpers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compress.registry import TechniqueConfig, check_range


@dataclass(frozen=True)
class MagnitudePruningConfig(TechniqueConfig):
    """Zero the smallest-magnitude weights, ramping sparsity during a short fine-tune.

    Attributes:
        final_sparsity: fraction of each prunable kernel set to zero, in [0.05, 0.98].
        fine_tune_epochs: epochs of fine-tuning (fractions allowed), in (0, 20].
        ramp_fraction: share of the fine-tune over which sparsity ramps from 0
            to ``final_sparsity`` (PolynomialDecay); the rest trains at final sparsity.
        frequency: steps between mask updates. tfmot's default (100) never
            reaches the final sparsity in a short fine-tune; keep it small.
        learning_rate: fine-tune learning rate.
    """

    final_sparsity: float = 0.5
    fine_tune_epochs: float = 3.0
    ramp_fraction: float = 0.34
    frequency: int = 20
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        check_range("final_sparsity", self.final_sparsity, 0.05, 0.98)
        check_range("fine_tune_epochs", self.fine_tune_epochs, 0.01, 20)
        check_range("ramp_fraction", self.ramp_fraction, 0.05, 1.0)
        check_range("frequency", self.frequency, 1, 10_000, integer=True)
        check_range("learning_rate", self.learning_rate, 1e-7, 1.0)


def sparsity(arrays: list[np.ndarray]) -> float:
    """Fraction of exact zeros over all elements of ``arrays``."""
    total = sum(a.size for a in arrays)
    if total == 0:
        raise ValueError("no weights to measure sparsity on")
    return sum(int(np.count_nonzero(a == 0)) for a in arrays) / total
