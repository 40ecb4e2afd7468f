"""Top-1 accuracy: the class with the largest output is the label (image and text classification)."""

from __future__ import annotations

import numpy as np

from compress import stats
from compress.metrics import TaskMetric, _register


class TopOne(TaskMetric):
    """Per example: correct or not. Bounds: Wilson (value), paired bootstrap (retention); see :mod:`compress.stats`."""

    name = "accuracy"
    label = "top-1"
    higher_is_better = True
    kind = "bools"

    def outcomes(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return np.asarray(outputs).argmax(axis=1) == np.asarray(targets)

    def value(self, outcomes: np.ndarray) -> tuple[float, float]:
        est = stats.accuracy_bound(outcomes)
        return est.point, est.upper

    def retention(self, outcomes: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
        est = stats.retention_bound(outcomes, reference)
        return est.point, est.upper


TOP_ONE = _register(TopOne())
