"""Top-1 accuracy: the class with the largest output is the label (image and text classification)."""

from __future__ import annotations

import numpy as np

from compress.judging import stats
from compress.metrics import Detect, Metric, TaskMetric, _register, register

ACCURACY = register(Metric(
    "accuracy", "top-1", True, "{:.4f}", ceiling=1.0, description="top-1 on the model's test split",
    bound=True, confidence=True, notable=0.002, detect=Detect(0.01, "points", False, True), order=100,
))  # fmt: skip
# agreement of ImageNet top-1 on real photos with the fp32 artefact (compress.models.vision.efficientnet_probe)
PHOTO_AGREEMENT = register(Metric("photo_agreement", "photo agreement", True, "{:.2f}", ceiling=1.0, order=220,
                                  heading="photos", markdown=False))  # fmt: skip


class TopOne(TaskMetric):
    """Per example: correct or not. Bounds: Wilson (value), paired bootstrap (retention); see :mod:`compress.judging.stats`."""

    descriptor = ACCURACY
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
