"""Perplexity of a causal language model: ``exp`` of the mean next-token loss (lower is better).

The outputs are next-token logits ``(N, T, vocab)`` for token blocks ``(N, T)``; the
targets are the blocks themselves: position ``t`` predicts token ``t + 1``. Per
example (a block), the outcome is its mean loss in nats over its ``T - 1``
predicted tokens; blocks have equal length, so the mean over blocks is the mean
over tokens and ``exp`` of it is the split's perplexity. Retention is
``fp32 perplexity / perplexity`` (above 1 is better, as for top-1). Bounds: normal
approximations over blocks, paired for retention (:func:`compress.judging.stats.perplexity_bound`,
:func:`compress.judging.stats.loss_retention_bound`).
"""

from __future__ import annotations

import numpy as np

from compress.judging import stats
from compress.metrics import Detect, Metric, TaskMetric, _register, register

PERPLEXITY_METRIC = register(Metric(
    "perplexity", "perplexity", False, "{:.2f}", description="perplexity on the language model's held-out text",
    bound=True, confidence=True, notable=0.5, detect=Detect(0.03, "relative", True, False), digits=2, order=110,
))  # fmt: skip


def token_losses(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Mean next-token cross-entropy (nats) of each block: ``logits[:, t]`` scored on ``tokens[:, t + 1]``."""
    logits = np.asarray(logits, dtype=np.float32)[:, :-1]
    targets = np.asarray(tokens)[:, 1:]
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"logits {logits.shape} do not match token blocks {np.asarray(tokens).shape}")
    peak = logits.max(axis=-1, keepdims=True)
    # exp in float32 (after the shift every term is in (0, 1]), summed in float64: within 1e-8 nats
    # of doing it all in float64, at a tenth of the time
    log_z = np.log(np.exp(logits - peak).sum(axis=-1, dtype=np.float64)) + peak[..., 0]
    picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return (log_z - picked).mean(axis=1)


class Perplexity(TaskMetric):
    descriptor = PERPLEXITY_METRIC
    kind = "floats"
    chunk = 32  # 32 blocks of 128 tokens over a 4,096 vocabulary: 67 MB of logits at a time

    def outcomes(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return token_losses(outputs, targets)

    def value(self, outcomes: np.ndarray) -> tuple[float, float]:
        est = stats.perplexity_bound(outcomes)
        return est.point, est.lower

    def retention(self, outcomes: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
        est = stats.loss_retention_bound(outcomes, reference)
        return est.point, est.upper


PERPLEXITY = _register(Perplexity())
