"""Torch programs for the Inductor-compiled runtime: fp32 and PT2E int8, as a CPU server deploys them.

Both ship ``torch.export.save`` bytes of an ExportedProgram (``.pt2``) that the
``torch-inductor`` runtime (:mod:`compress.runtimes.torch_inductor`) compiles
with freezing and the C++ wrapper. ``inductor_int8`` is the same PT2E program
as the eager ``int8`` technique (X86InductorQuantizer, calibrated on the
``calib`` split): compiled, its quantize/dequantize patterns become oneDNN
int8 kernels instead of reference ops around float kernels. ``inductor_fp32``
is the same network exported the same way, unquantized: the baseline
``inductor_int8`` is compared with (like with like).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np

from compress.registry import TechniqueConfig, check_range, register_handler
from compress.techniques.quantization import MAX_CALIBRATION, calibration_inputs
from compress.runtimes.base import Artefact
from compress.techniques.torch_export import pt2e_int8_program, program_bytes

log = logging.getLogger(__name__)

__all__ = ["InductorConfig", "fp32_program"]

MODES = ("fp32", "int8")


@dataclass(frozen=True)
class InductorConfig(TechniqueConfig):
    """An ExportedProgram for the Inductor-compiled torch runtime.

    Attributes:
        mode: ``"fp32"`` (the compiled reference) or ``"int8"`` (PT2E static int8:
            per-channel int8 weights, uint8 activations).
        calibration_size: images of the ``calib`` split (its first N) observed
            for activation ranges in ``"int8"`` mode (at most what the split holds).
    """

    stage = "export"
    mode: str = "fp32"
    calibration_size: int = 500

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        check_range("calibration_size", self.calibration_size, 1, MAX_CALIBRATION, integer=True)

    def is_fp32_reference(self) -> bool:
        return self.mode == "fp32"


def fp32_program(module, example: np.ndarray):
    """ExportedProgram of ``module`` (eval mode, not modified), batch axis dynamic, exported as
    :func:`~compress.techniques.torch_export.pt2e_int8_program` exports (strict)."""
    import torch

    if len(example) < 2:
        raise ValueError(f"example batch must hold at least 2 inputs, got {len(example)}")
    args = (torch.from_numpy(np.ascontiguousarray(example)),)
    dims = ({0: torch.export.Dim("batch", min=1)},)
    return torch.export.export(copy.deepcopy(module).eval(), args, dynamic_shapes=dims, strict=True)


@register_handler(InductorConfig, "torch", devices=lambda c: ("cpu",) if c.mode == "int8" else ("cpu", "cuda"),
                  why="the x86 PT2E int8 patterns lower to oneDNN CPU kernels")  # fmt: skip
def inductor(model, config: InductorConfig, ctx) -> Artefact:
    """``.pt2`` of the fp32 network, or of its PT2E int8 program calibrated on ``calib``."""
    calib_x = model.recipe.data("calib")[0]
    if config.mode == "int8":
        calib = calibration_inputs(model.recipe, config.calibration_size, "inductor_int8")
        log.info("inductor_int8 (PT2E): calibrating %s on %d inputs of the calib split", model.name, len(calib))
        program = pt2e_int8_program(model.native, calib_x[:2], calib)
    else:
        program = fp32_program(model.native, calib_x[:2])
    return Artefact(program_bytes(program), format="pt2", runtime="torch-inductor")
