"""PSNR of a super-resolved image against the original high-resolution one (higher is better).

The outputs are upscaled images ``(N, H, W, 3)`` as the generator returns them
(pixel values, nominally in [0, 255]); they are clipped to [0, 255] and rounded
to 8 bits first, as an image viewer or a saved PNG would have them. The targets
are the original ``uint8`` RGB images. Per example (one image tile): its PSNR in dB
on the luma channel, as the super-resolution literature reports it (ITU-R BT.601
``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``, unrounded), over every pixel,
``10 log10(255^2 / MSE)`` (no border is shaved; every artefact and the bicubic
floor are scored on the same pixels). The
split's value is the mean PSNR over tiles; retention is ``mean PSNR / fp32 mean
PSNR``. Bounds: normal approximations over tiles, paired for retention
(:func:`compress.judging.stats.mean_bound`, :func:`compress.judging.stats.mean_retention_bound`).
"""

from __future__ import annotations

import numpy as np

from compress.judging import stats
from compress.metrics import Detect, Metric, TaskMetric, _register, register

PSNR_DB = register(Metric(
    "psnr", "PSNR", True, "{:.3f}", "dB", description="dB, mean PSNR of a super-resolution model's upscaled test tiles",
    bound=True, confidence=True, notable=0.1, detect=Detect(0.3, "dB", False, False), order=120, heading="PSNR dB",
))  # fmt: skip
# a super-resolution model's extras (compress.models.generative.super_resolution): SSIM (luma) against the originals, and
# dB of PSNR over bicubic upscaling of the same tiles: a generator must beat the classical floor
SSIM = register(Metric("ssim", "SSIM", True, "{:.4f}", ceiling=1.0, order=150, markdown_order=125))
PSNR_OVER_BICUBIC = register(Metric("psnr_over_bicubic", "PSNR over bicubic", True, "{:+.2f}", "dB", bound=True))

#: PSNR of an image equal to its target: finite, so that per-example statistics stay defined.
IDENTICAL_DB = 100.0


def to_pixels(images: np.ndarray) -> np.ndarray:
    """Generator outputs as 8-bit pixels: clipped to [0, 255] and rounded."""
    return np.clip(np.rint(np.asarray(images, dtype=np.float32)), 0, 255).astype(np.uint8)


_BT601 = np.array([65.481, 128.553, 24.966]) / 255.0


def luma(images: np.ndarray) -> np.ndarray:
    """BT.601 luma ``Y`` in [16, 235] (float64) of RGB images ``(..., 3)`` with values in [0, 255]."""
    a = np.asarray(images)
    if a.shape[-1] != 3:
        raise ValueError(f"expected RGB images (last axis 3), got shape {a.shape}")
    return 16.0 + a.astype(np.float64) @ _BT601


def psnr_per_image(images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """PSNR (dB, peak 255) of each 8-bit RGB image's luma against its target's, over all its pixels;
    :data:`IDENTICAL_DB` where they are equal."""
    a, b = np.asarray(images), np.asarray(targets)
    if a.shape != b.shape:
        raise ValueError(f"images {a.shape} and targets {b.shape} differ in shape")
    diff = luma(a) - luma(b)
    mse = (diff * diff).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(255.0**2 / mse)
    return np.where(mse == 0, IDENTICAL_DB, db)


class PSNR(TaskMetric):
    descriptor = PSNR_DB
    kind = "floats"
    chunk = 16  # 16 upscaled tiles at a time

    def outcomes(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return psnr_per_image(to_pixels(outputs), targets)

    def value(self, outcomes: np.ndarray) -> tuple[float, float]:
        est = stats.mean_bound(outcomes)
        return est.point, est.upper

    def retention(self, outcomes: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
        est = stats.mean_retention_bound(outcomes, reference)
        return est.point, est.upper

    def describe(self, value: float) -> str:
        return f"PSNR (Y) {value:.3f} dB"


PSNR_METRIC = _register(PSNR())
