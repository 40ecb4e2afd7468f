"""Affine int8 arithmetic shared by runtimes and techniques (a leaf module: imports no other part of the suite)."""

from __future__ import annotations

import numpy as np

__all__ = ["quantize", "dequantize"]


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """Affine quantization ``q = clip(round(x / scale) + zero_point)``."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, dtype=np.float64) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Inverse of :func:`quantize` (exact up to rounding): ``(q - zero_point) * scale``."""
    return ((np.asarray(q, dtype=np.float64) - zero_point) * scale).astype(np.float32)
