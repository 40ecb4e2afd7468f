"""Structured (channel) pruning: config and framework-neutral helpers.

Unlike magnitude pruning, which zeroes weights inside dense tensors, channel
pruning removes whole filters and everything that consumes them, so the model
that ships is physically smaller and does less arithmetic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from compress.registry import TechniqueConfig, check_range

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelPruningConfig(TechniqueConfig):
    """Remove the least important ``fraction`` of channels of every prunable layer.

    Attributes:
        fraction: share of channels removed from each prunable group, in [0.05, 0.9].
        importance: ``"l1"``: a filter's importance is the L1 norm of its weights.
        fine_tune_epochs: epochs of fine-tuning after the removal (fractions allowed).
        learning_rate: fine-tune learning rate.
    """

    fraction: float = 0.5
    importance: str = "l1"
    fine_tune_epochs: float = 1.0
    learning_rate: float = 5e-4

    def __post_init__(self) -> None:
        check_range("fraction", self.fraction, 0.05, 0.9)
        if self.importance not in ("l1",):
            raise ValueError(f"importance must be 'l1', got {self.importance!r}")
        check_range("fine_tune_epochs", self.fine_tune_epochs, 0.0, 20)
        check_range("learning_rate", self.learning_rate, 1e-7, 1.0)


def kept_channels(scores: np.ndarray, fraction: float, round_to: int = 1) -> np.ndarray:
    """Sorted indices of the channels to keep: the highest ``scores``.

    Removes ``floor(n * fraction)`` channels, rounded so the kept count is a
    multiple of ``round_to`` where possible, and always keeps at least one.
    """
    n = len(scores)
    keep = n - int(np.floor(n * fraction))
    if round_to > 1 and keep > round_to:
        keep = max(round_to, int(round(keep / round_to)) * round_to)
    keep = max(1, min(n, keep))
    # stable: ties keep the lower index, so the choice is deterministic
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return np.sort(order[:keep])


def fine_tune_pruned(model, pruned, config: ChannelPruningConfig, detail: str = "") -> list[np.ndarray]:
    """Log the parameter counts, fine-tune ``pruned`` as ``config`` says; its weights.

    ``model`` is the dense registered model (``.name``, ``.recipe``, ``.native``);
    what is returned is what the model cache stores for the pruned one.
    """
    recipe = model.recipe
    log.info("%s: pruned %.0f%% of the channels%s: %d -> %d parameters", model.name,
             config.fraction * 100, detail, recipe.count_params(model.native),
             recipe.count_params(pruned))  # fmt: skip
    if config.fine_tune_epochs > 0:
        recipe.fit(pruned, epochs=config.fine_tune_epochs, learning_rate=config.learning_rate,
                   label=f"channel-prune {model.name} {config.fraction:.0%}")  # fmt: skip
    return recipe.weights(pruned)
