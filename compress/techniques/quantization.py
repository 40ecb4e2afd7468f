"""Post-training quantization configs (framework-neutral) and int8 arithmetic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compress.registry import TechniqueConfig, check_range


# Upper bound of a config's calibration_size. What a model can give is its own recipe's ``calib``
# split (:func:`calibration_inputs` says when it has fewer): techniques know no dataset.
MAX_CALIBRATION = 100_000


def calibration_inputs(recipe, size: int, what: str = "") -> np.ndarray:
    """The first ``size`` inputs of ``recipe``'s ``calib`` split (never test data).

    Raises:
        ValueError: the split holds fewer than ``size`` (the message names both counts).
    """
    x = recipe.data("calib")[0]
    if len(x) < size:
        raise ValueError(f"{what or 'calibration'}: calibration_size {size} is more than the "
                         f"{len(x)} inputs of this model's calib split; lower calibration_size")  # fmt: skip
    return x[:size]


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
class Int8WeightOnlyConfig(TechniqueConfig):
    """Linear weights stored as int8 (per output channel), dequantized in the matmul; activations float."""

    stage = "export"


@dataclass(frozen=True)
class Int8Config(TechniqueConfig):
    """Full-integer quantization with int8 input and output.

    Attributes:
        calibration_size: inputs of the model's ``calib`` split (its first N) used to
            estimate activation ranges (at most what the split holds).
    """

    stage = "export"
    calibration_size: int = 500

    def __post_init__(self) -> None:
        check_range("calibration_size", self.calibration_size, 1, MAX_CALIBRATION, integer=True)
