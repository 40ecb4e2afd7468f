"""Post-training quantization configs (framework-neutral) and int8 arithmetic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compress.data.fashion_mnist import CALIB_SIZE
from compress.registry import TechniqueConfig, check_range


@dataclass(frozen=True)
class Float32Config(TechniqueConfig):
    """Convert without quantization: the reference artefact of a model."""

    stage = "export"

    def is_fp32_reference(self) -> bool:
        return True


@dataclass(frozen=True)
class DynamicRangeConfig(TechniqueConfig):
    """Weights stored as int8, activations computed in float."""

    stage = "export"


@dataclass(frozen=True)
class Float16Config(TechniqueConfig):
    """Weights stored as float16."""

    stage = "export"


@dataclass(frozen=True)
class BFloat16Config(TechniqueConfig):
    """Weights stored as bfloat16 and computed in bfloat16 (float32 in and out)."""

    stage = "export"


@dataclass(frozen=True)
class Int8Config(TechniqueConfig):
    """Full-integer quantization with int8 input and output.

    Attributes:
        calibration_size: images of the ``calib`` split (its first N) used to
            estimate activation ranges; 1 to 5,000.
    """

    stage = "export"
    calibration_size: int = 500

    def __post_init__(self) -> None:
        check_range("calibration_size", self.calibration_size, 1, CALIB_SIZE, integer=True)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """Affine quantization ``q = clip(round(x / scale) + zero_point)``."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, dtype=np.float64) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Inverse of :func:`quantize` (exact up to rounding): ``(q - zero_point) * scale``."""
    return ((np.asarray(q, dtype=np.float64) - zero_point) * scale).astype(np.float32)
