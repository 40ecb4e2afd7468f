"""Export of torch models to ONNX for onnxruntime: fp32, dynamic int8, static int8 (QDQ); and the
same quantizations of a model that is an ONNX graph already (framework ``onnx``).

The graph comes from ``torch.onnx.export``'s TorchScript exporter
(``dynamo=False``): the torch.export-based default needs ``onnxscript``, which
the suite does not install. BatchNorm is folded into the convs (eval mode,
constant folding) and the batch axis is dynamic. onnxslim was measured and left
out: it only removes Identity nodes that onnxruntime removes itself (same size,
same latency), and quantization runs ``quant_pre_process`` anyway.

Measured on this x86 CPU (resnet18 at 32 px, one thread, batch 1): fp32 1.06 ms,
u8s8 per-channel QDQ int8 0.70 ms, dynamic int8 (ConvInteger) 4.7 ms. Dynamic
quantization gives each ConvInteger weight ONE scale: a conv whose channels
differ widely in range (BatchNorm folded into a depthwise conv) loses most of
its channels to zero (tiny_torch: top-1 0.66 -> 0.41).

A model of framework ``onnx`` (:class:`compress.models.vision.ready_onnx.ReadyOnnx`: a team's
``model.onnx``, measured as it is) is its own fp32 artefact: ``fp32`` ships the graph's
bytes unchanged, and ``onnx_dynamic`` / ``onnx_int8`` quantize that graph with the same
code as a torch model's (``onnx_fp32`` would be the same bytes again: it does not apply).
"""

from __future__ import annotations

import io
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compress.registry import TechniqueConfig, check_range, export_base, register_handler
from compress.techniques.quantization import MAX_CALIBRATION, Float32Config, calibration_inputs
from compress.runtimes.base import Artefact

log = logging.getLogger(__name__)

__all__ = ["OnnxConfig", "export_onnx", "OPSET", "INPUT", "OUTPUT"]

MODES = ("fp32", "dynamic", "int8")
CALIBRATIONS = ("minmax", "percentile")
OPSET = 17
INPUT, OUTPUT = "input", "logits"
GRAPH = "onnx"  # the framework of a model that is an ONNX graph (compress.models.vision.ready_onnx)


@dataclass(frozen=True)
class OnnxConfig(TechniqueConfig):
    """Export to ONNX for onnxruntime, optionally quantized by ``onnxruntime.quantization``.

    Attributes:
        mode: ``"fp32"`` (no quantization: the onnxruntime reference),
            ``"dynamic"`` (int8 weights, activations quantized at run time) or
            ``"int8"`` (static QDQ: per-channel int8 weights, uint8 activations).
        calibration_size: images of the ``calib`` split (its first N) that
            estimate activation ranges in ``"int8"`` mode (at most what the split holds).
        op_types: ``"int8"`` mode: the operator types whose inputs are quantized
            (empty: every type onnxruntime quantizes). A transformer's residual adds,
            masks and softmax carry outliers that one uint8 range cannot hold:
            ``("MatMul", "Gemm", "Gather")`` keeps them in float.
        calibration: ``"int8"`` mode: how a range is taken from the calibration
            activations: ``"minmax"`` or ``"percentile"`` (the 0.001-99.999 percentiles
            of a histogram: an outlier no longer sets the scale).
    """

    stage = "export"
    mode: str = "fp32"
    calibration_size: int = 500
    op_types: tuple[str, ...] = ()
    calibration: str = "minmax"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        check_range("calibration_size", self.calibration_size, 1, MAX_CALIBRATION, integer=True)
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}; got {self.calibration!r}")
        if not isinstance(self.op_types, tuple) or not all(isinstance(t, str) and t for t in self.op_types):
            raise ValueError(f"op_types must be a tuple of ONNX operator names; got {self.op_types!r}")

    def is_fp32_reference(self) -> bool:
        return self.mode == "fp32"

    def unsupported_by(self, recipe) -> str | None:
        """An ONNX graph's fp32 export is the graph itself: its ``fp32`` pair (the same bytes)."""
        if self.mode == "fp32" and recipe.framework == GRAPH:
            return "the model is an ONNX graph already: its fp32 pair measures that graph as it is"
        return None


def export_onnx(module, example: np.ndarray) -> bytes:
    """ONNX bytes of ``module`` (eval mode) at opset 17, batch axis dynamic, constants folded."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.filterwarnings("ignore", ".*legacy TorchScript-based ONNX export.*", DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\.")
        torch.onnx.export(
            module.eval(),
            (torch.from_numpy(np.ascontiguousarray(example)),),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            do_constant_folding=True,
        )
    return buf.getvalue()


def _calibration_reader(calib: np.ndarray, batch_size: int = 50, name: str = INPUT):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """Feeds ``calib`` in batches to the graph's input ``name`` (min/max over batches = min/max over images)."""

        def __init__(self):
            self._batches = iter(range(0, len(calib), batch_size))

        def get_next(self):
            i = next(self._batches, None)
            return None if i is None else {name: np.ascontiguousarray(calib[i : i + batch_size])}

    return Reader()


def graph_input(data: bytes) -> str:
    """The name of the first input of the ONNX graph ``data`` that is not an initializer (what
    calibration feeds): :data:`INPUT` for the suite's exports, a team's graph names its own."""
    import onnx

    graph = onnx.load_from_string(data).graph
    weights = {i.name for i in graph.initializer}
    return next(i.name for i in graph.input if i.name not in weights)


def quantize_onnx(data: bytes, mode: str, calib: np.ndarray | None = None, *, op_types: tuple[str, ...] = (),
                  calibration: str = "minmax", symbolic_shapes: bool = True) -> bytes:  # fmt: skip
    """``data`` quantized by onnxruntime after ``quant_pre_process``.

    ``"dynamic"``: ``quantize_dynamic`` with int8 weights. ``"int8"``:
    ``quantize_static`` on ``calib``, QDQ, per-channel int8 weights, uint8
    activations (u8s8: the fast combination on x86; s8s8 per-tensor was slower),
    the inputs of ``op_types`` (empty: every type) with ranges by ``calibration``.

    On an x86 CPU without VNNI or AMX (:func:`compress.machine.int8_dot_product`), ONNX Runtime's
    u8s8 kernels sum pairs of products in saturating int16, so the artefact is built for that CPU:
    static int8 stores uint8 weights (u8u8, no saturation), dynamic 7-bit int8 weights
    (``reduce_range``). Measured on a 2-core AMD EPYC (Zen 3, AVX2): EfficientNet-Lite0's static
    int8 kept 0.880 of its top-1 as u8s8, 0.979 with 7-bit weights, 0.997 as u8u8.

    Raises:
        ValueError: ``mode`` is not dynamic/int8, or int8 without ``calib``.
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)  # fmt: skip
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from compress.machine import int8_dot_product

    if mode not in ("dynamic", "int8"):
        raise ValueError(f"quantize mode must be 'dynamic' or 'int8', got {mode!r}")
    saturates = not int8_dot_product()
    if mode == "int8" and (calib is None or len(calib) == 0):
        raise ValueError("int8 quantization needs calibration images")
    with tempfile.TemporaryDirectory() as d:
        src, pre, out = Path(d, "model.onnx"), Path(d, "pre.onnx"), Path(d, "quant.onnx")
        src.write_bytes(data)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=not symbolic_shapes)
        if mode == "dynamic":
            # per-channel: one scale per output channel. A single per-tensor scale
            # rounds most channels of a BatchNorm-folded depthwise conv to zero.
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=saturates)  # fmt: skip
        else:
            method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[calibration]
            # the percentile calibrater stacks every batch's activations into one array: equal batches
            batch = 50 if calibration == "minmax" else max(d for d in range(1, 51) if len(calib) % d == 0)
            reader = _calibration_reader(calib, batch, graph_input(data))
            quantize_static(
                str(pre), str(out), reader, quant_format=QuantFormat.QDQ,
                per_channel=True, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QUInt8 if saturates else QuantType.QInt8,
                op_types_to_quantize=list(op_types) or None, calibrate_method=method,
            )  # fmt: skip
        return out.read_bytes()


def float_graph(model, config: OnnxConfig, ctx, export) -> bytes:
    """The fp32 ONNX graph that ``config`` quantizes: ``export()`` for ``onnx_fp32``; for a quantized
    mode, the model's fp32 ONNX artefact as the runner has it (exported once for all of them), or
    ``export()`` without a runner."""
    base = export_base(config, model.framework)
    if base is None or ctx is None:
        return export()
    return ctx.exported(model, base).data


def fp32_graph(config: OnnxConfig) -> OnnxConfig | None:
    """The export a quantized ONNX artefact starts from (``register_handler``'s ``base``): the fp32 graph."""
    return config.replace(mode="fp32") if config.mode != "fp32" else None


def _quantized(model, config: OnnxConfig, data: bytes) -> bytes:
    """``data`` (the fp32 graph) quantized as ``config.mode`` says, calibrated on the recipe's
    ``calib`` split in ``"int8"`` mode; ``data`` itself in ``"fp32"`` mode."""
    if config.mode == "fp32":
        return data
    calib = calibration_inputs(model.recipe, config.calibration_size, "onnx int8") if config.mode == "int8" else None
    if calib is not None:
        log.info("onnx int8: calibrating %s on %d inputs of the calib split", model.name, len(calib))
    return quantize_onnx(data, config.mode, calib, op_types=config.op_types, calibration=config.calibration)


@register_handler(OnnxConfig, "torch", devices=("cpu", "cuda"), base=fp32_graph)  # cuda: where onnxruntime has the provider
def onnx_export(model, config: OnnxConfig, ctx) -> Artefact:
    """Export ``model.native`` to ONNX; quantize it as ``config.mode`` says."""
    data = float_graph(model, config, ctx, lambda: export_onnx(model.native, model.recipe.data("calib")[0][:1]))
    return Artefact(_quantized(model, config, data), format="onnx", runtime="onnxruntime")


# -- a model that is an ONNX graph (framework "onnx"): its native model is the graph's bytes ------------


@register_handler(Float32Config, GRAPH, devices=("cpu", "cuda"))
def graph_fp32(model, config: Float32Config, ctx) -> Artefact:
    """The graph itself, byte for byte: the model's fp32 reference (size ratio 1, retention 1)."""
    return Artefact(model.native, format="onnx", runtime="onnxruntime")


def _the_graph(config: OnnxConfig) -> Float32Config | None:
    """The export a quantized ONNX graph starts from (``register_handler``'s ``base``): its fp32 artefact."""
    return Float32Config() if config.mode != "fp32" else None


@register_handler(OnnxConfig, GRAPH, devices=("cpu", "cuda"), base=_the_graph)
def graph_quantized(model, config: OnnxConfig, ctx) -> Artefact:
    """The graph quantized by onnxruntime as ``config.mode`` says (the torch models' code)."""
    data = float_graph(model, config, ctx, lambda: model.native)
    return Artefact(_quantized(model, config, data), format="onnx", runtime="onnxruntime")
